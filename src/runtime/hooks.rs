//! OCI hooks: each runs with the container state on stdin, its own args and env, and an
//! optional timeout after which it is killed.
//!
//! startContainer hooks run in init after the container's seccomp filter is in, so a hook is
//! started with the syscalls every profile that lets a program run allows: pipe2, the plain
//! clone syscall, dup2, execve, wait4, nanosleep and kill. std's `Command` is not used: glibc's
//! posix_spawn tries clone3 first and falls back only on ENOSYS, and std waits with pidfds.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Hook;

use crate::error::{Error, Result};
use crate::sys::{self, Forked};

/// The environment a hook without `env` gets, as runc's hooks (Go's exec.Cmd with a nil Env)
/// inherit it from the process that runs them.
#[derive(Clone, Copy)]
pub enum Inherit<'a> {
    /// Hooks run by the runtime itself (prestart, createRuntime, poststart, poststop): the
    /// runtime's own environment.
    Runtime,
    /// Hooks run by init in the container (createContainer, startContainer): init's environment,
    /// which in runc is the container process's `env`.
    Container(&'a [String]),
}

/// Runs `hooks` in order with the runtime's environment; the first failure stops the run.
pub fn run(kind: &'static str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    run_with(kind, hooks, state, Inherit::Runtime)
}

/// Runs `hooks` in order; the first failure stops the run and is returned.
pub fn run_with(kind: &'static str, hooks: &[Hook], state: &[u8], inherit: Inherit) -> Result<()> {
    for hook in hooks {
        run_one(kind, hook, state, inherit)?;
    }
    Ok(())
}

/// Runs hooks whose failure is only a warning (poststart, poststop).
pub fn run_warn(kind: &'static str, hooks: &[Hook], state: &[u8]) {
    for hook in hooks {
        if let Err(e) = run_one(kind, hook, state, Inherit::Runtime) {
            crate::warn(&crate::error::report(&e));
        }
    }
}

fn cstring(bytes: &[u8]) -> std::result::Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{:?} contains a NUL byte", String::from_utf8_lossy(bytes)))
}

fn run_one(kind: &'static str, hook: &Hook, state: &[u8], inherit: Inherit) -> Result<()> {
    let fail = |reason: String| Error::Hook {
        hook: kind,
        path: hook.path().clone(),
        reason,
    };
    let timeout = match hook.timeout() {
        Some(t) if t <= 0 => return Err(fail(format!("timeout must be positive, got {t}"))),
        Some(t) => Some(Duration::from_secs(t.unsigned_abs())),
        None => None,
    };
    // Armed before anything that may wait: the hook, and the writer feeding its stdin.
    let deadline = timeout.map(|t| Instant::now() + t);
    let path = cstring(hook.path().as_os_str().as_bytes()).map_err(fail)?;
    // As Go's exec.Cmd: no args means the path alone as argv[0].
    let argv: Vec<CString> = match hook.args().as_deref() {
        Some(args) if !args.is_empty() => args
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<std::result::Result<_, _>>(),
        _ => Ok(vec![path.clone()]),
    }
    .map_err(fail)?;
    let envp: Vec<CString> = match (hook.env().as_deref(), inherit) {
        (Some(env), _) | (None, Inherit::Container(env)) => env
            .iter()
            .map(|e| cstring(e.as_bytes()))
            .collect::<std::result::Result<_, _>>(),
        (None, Inherit::Runtime) => std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(&kv)
            })
            .collect(),
    }
    .map_err(fail)?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());

    let io_err = |what: &str, e: std::io::Error| fail(format!("{what}: {e}"));
    let (stdin_rd, stdin_wr) = sys::pipe().map_err(|e| io_err("pipe", e))?;
    // The state goes into the pipe before the hook starts when it fits, so a hook that exits
    // without reading cannot make us write into a closed pipe (SIGPIPE is at its default in
    // init). A larger state is fed by a throwaway writer process.
    let writer = if fits_in_pipe(&stdin_wr, state.len()) {
        sys::write_all(stdin_wr.as_fd(), state).map_err(|e| io_err("write the state", e))?;
        drop(stdin_wr);
        None
    } else {
        let pid = spawn_writer(&stdin_rd, stdin_wr, state).map_err(|e| io_err("fork", e))?;
        Some(pid)
    };
    let started = start_hook(&path, &argv_ptrs, &envp_ptrs, stdin_rd);
    let result = started
        .map_err(|e| io_err("fork", e))
        .and_then(|(pid, err_rd)| wait_hook(pid, &err_rd, timeout, deadline).map_err(fail));
    if let Some(writer) = writer {
        // It ends once every reader of the hook's stdin is gone (EPIPE) or it has written
        // everything; a process the hook left behind with its stdin unread must not hold us
        // past the deadline.
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Ok(None) = sys::wait_child(writer, left) {
            // Our own unreaped child: its pid cannot have been reused.
            let _ = kill(Pid::from_raw(writer), Signal::SIGKILL);
            let _ = sys::wait_child(writer, None);
        }
    }
    result
}

/// Forks and execs the hook with `stdin` as its stdin; returns its pid and the pipe that
/// carries execve's errno when the exec fails.
fn start_hook(
    path: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    stdin: OwnedFd,
) -> std::io::Result<(libc::pid_t, OwnedFd)> {
    let (err_rd, err_wr) = sys::pipe()?;
    match sys::fork()? {
        Forked::Child => {
            // Only raw system calls from here: stdin is the state, stdout and stderr go to our
            // stderr (visible to the caller, never mixed into stdout).
            dup_onto(stdin.as_raw_fd(), 0);
            dup_onto(2, 1);
            // SAFETY: path, argv and envp are NUL-terminated and NULL-terminated arrays built
            // before the fork.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
            let _ = sys::write_all(err_wr.as_fd(), &errno.to_ne_bytes());
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(127) }
        }
        Forked::Parent(pid) => Ok((pid, err_rd)),
    }
}

/// Waits for the hook: its exec error, its exit status, or the deadline (then it is killed).
fn wait_hook(
    pid: libc::pid_t,
    err_rd: &OwnedFd,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
) -> std::result::Result<(), String> {
    // The error pipe closes at a successful execve (close-on-exec) or carries execve's errno.
    let mut buf = [0u8; 4];
    let n = loop {
        match nix::unistd::read(err_rd.as_raw_fd(), &mut buf) {
            Err(nix::errno::Errno::EINTR) => {}
            r => break r,
        }
    };
    if n == Ok(4) {
        let _ = sys::wait_child(pid, None);
        let e = std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf));
        return Err(format!("cannot start: {e}"));
    }
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let status = match sys::wait_child(pid, left) {
        Ok(Some(status)) => status,
        Ok(None) => {
            // Our own unreaped child: its pid cannot have been reused.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = sys::wait_child(pid, None);
            let secs = timeout.map(|t| t.as_secs()).unwrap_or_default();
            // runc's words.
            return Err(format!("hook ran past specified timeout of {secs}.0s"));
        }
        Err(e) => return Err(format!("wait: {e}")),
    };
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, code) => Err(format!("exit status {code}")),
        _ => Err(signal_status(status)),
    }
}

/// A death by signal in the words of Go's exit status, which runc prints and its tests match:
/// "signal: bad system call (core dumped)".
fn signal_status(status: libc::c_int) -> String {
    let sig = libc::WTERMSIG(status);
    // SAFETY: strsignal returns a static string for a known signal and a thread-local buffer
    // otherwise; it is copied out at once.
    let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) }.to_string_lossy();
    let mut words = name.to_lowercase();
    if libc::WCOREDUMP(status) {
        words.push_str(" (core dumped)");
    }
    format!("signal: {words}")
}

/// Whether `len` bytes fit into the pipe without blocking, growing it when needed and allowed.
fn fits_in_pipe(pipe: &OwnedFd, len: usize) -> bool {
    let fits =
        |size: nix::Result<libc::c_int>| size.is_ok_and(|size| usize::try_from(size).is_ok_and(|size| len <= size));
    if fits(fcntl(pipe.as_raw_fd(), FcntlArg::F_GETPIPE_SZ)) {
        return true;
    }
    let Ok(want) = libc::c_int::try_from(len) else {
        return false;
    };
    // The kernel rounds up or refuses (EPERM above pipe-max-size).
    fits(fcntl(pipe.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(want)))
}

/// A child that writes `state` into the pipe and exits; it dies quietly (EPIPE or SIGPIPE) when
/// the hook closes its stdin early.
fn spawn_writer(read_end: &OwnedFd, write_end: OwnedFd, state: &[u8]) -> std::io::Result<libc::pid_t> {
    match sys::fork()? {
        Forked::Child => {
            // Without our copy of the read end, a hook that stops reading ends the write.
            // An fd of this child's own copy of the table.
            let _ = nix::unistd::close(read_end.as_raw_fd());
            let _ = sys::write_all(write_end.as_fd(), state);
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Forked::Parent(pid) => Ok(pid),
    }
}

/// dup2 that also works when `fd` already is `target` (then only close-on-exec is cleared).
fn dup_onto(fd: RawFd, target: RawFd) {
    // Failures leave the hook without that stdio stream, as with a closed one.
    let _ = if fd == target {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map(drop)
    } else {
        nix::unistd::dup2(fd, target).map(drop)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str) -> Hook {
        serde_json::from_value(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]})).unwrap()
    }

    /// More than any pipe may hold (pipe-max-size is 1 MiB by default): fed by a writer child.
    const BIG: usize = 3 << 20;

    #[test]
    fn a_state_larger_than_a_pipe_reaches_the_hook_whole() {
        let out = std::env::temp_dir().join(format!("moor-hook-test-{}", std::process::id()));
        let script = format!("wc -c > {}", out.display());
        run("test", &[hook(&script)], &vec![b'x'; BIG]).unwrap();
        let count = std::fs::read_to_string(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        assert_eq!(count.trim(), BIG.to_string());
    }

    #[test]
    fn a_hook_that_ignores_a_large_state_neither_hangs_nor_fails() {
        run("test", &[hook("exit 0")], &vec![b'x'; BIG]).unwrap();
    }

    /// The hook leaves a process behind that holds its stdin without reading: the writer child
    /// feeding a state larger than the pipe is stopped at the hook's deadline.
    #[test]
    fn a_leftover_reader_of_the_state_does_not_outlast_the_timeout() {
        // Without effective capabilities (per thread) the pipe cannot grow past pipe-max-size,
        // so the state needs the writer child, as for a rootless moor.
        let took = std::thread::spawn(|| {
            crate::init::capabilities::apply(&crate::init::capabilities::Sets::default(), 0).unwrap();
            let mut h = hook("exec 3<&0; sleep 6 <&3 & exit 0");
            h.set_timeout(Some(1));
            let began = Instant::now();
            run("test", &[h], &vec![b'x'; BIG]).unwrap();
            began.elapsed()
        })
        .join()
        .unwrap();
        assert!(took < Duration::from_secs(4), "took {took:?}");
    }

    #[test]
    fn exit_status_and_exec_errors_are_reported() {
        let e = run("test", &[hook("exit 3")], b"{}").unwrap_err().to_string();
        assert!(e.contains("exit status 3"), "{e}");
        let missing: Hook = serde_json::from_value(serde_json::json!({"path": "/nonexistent/hook"})).unwrap();
        let e = run("test", &[missing], b"{}").unwrap_err().to_string();
        assert!(e.contains("cannot start") && e.contains("No such file"), "{e}");
    }
}
