//! OCI hooks: each runs with the container state on stdin, its own args and env, and an
//! optional timeout after which it is killed.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};
use crate::sys;

/// Runs `hooks` in order; the first failure stops the run and is returned.
pub fn run(kind: &'static str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for hook in hooks {
        run_one(kind, hook, state)?;
    }
    Ok(())
}

/// Runs hooks whose failure is only a warning (poststart, poststop).
pub fn run_warn(kind: &'static str, hooks: &[Hook], state: &[u8]) {
    for hook in hooks {
        if let Err(e) = run_one(kind, hook, state) {
            crate::warn(&format!("{e}"));
        }
    }
}

fn run_one(kind: &'static str, hook: &Hook, state: &[u8]) -> Result<()> {
    let fail = |reason: String| Error::Hook {
        hook: kind,
        path: hook.path().clone(),
        reason,
    };
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Hook output goes to moor's stderr: visible to the caller, never mixed into stdout.
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| fail(e.to_string()))?;
    let stdout = stderr.try_clone().map_err(|e| fail(e.to_string()))?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    if let Some(timeout) = hook.timeout() {
        if timeout <= 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("timeout must be positive, got {timeout}")));
        }
        let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| fail(e.to_string()))?;
        let ms = i32::try_from(timeout.saturating_mul(1000)).unwrap_or(i32::MAX);
        if !sys::pidfd_wait_exit(pidfd.as_fd(), ms).map_err(|e| fail(e.to_string()))? {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("timed out after {timeout}s")));
        }
    }
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!("failed: {status}")));
    }
    Ok(())
}
