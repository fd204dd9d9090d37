//! `exec`: the agent names the container (moor's root and id); the client, a single-threaded
//! process, enters it with `moor::Runtime` itself, so the terminal and stdio are its own.

use std::path::Path;

use anyhow::{Context, Result};

use crate::api::{self, ExecTarget, Request};

pub fn run(
    socket: &Path,
    namespace: &str,
    pod: &str,
    container: Option<String>,
    stdin: bool,
    tty: bool,
    command: Vec<String>,
) -> Result<()> {
    // The process that enters a container must not run from a writable moorlet binary
    // (CVE-2019-5736): re-execute from a read-only view first (a no-op the second time).
    moor::caller::ensure_protected().map_err(|e| anyhow::anyhow!(moor::report(&e)))?;
    let data = api::call(
        socket,
        &Request::ExecTarget {
            namespace: namespace.into(),
            name: pod.into(),
            container,
        },
        |_| {},
    )?;
    let target: ExecTarget = serde_json::from_value(data).context("the agent's exec answer")?;
    let rt = moor::Runtime::new(&target.moor_root);
    let mut process = rt
        .process_template(&target.id)
        .map_err(|e| anyhow::anyhow!(moor::report(&e)))?;
    process.set_args(Some(command));
    process.set_terminal(Some(tty));
    let stdio = if tty {
        None
    } else {
        use std::os::fd::AsFd;
        let input = if stdin {
            std::io::stdin().as_fd().try_clone_to_owned().context("dup stdin")?
        } else {
            std::fs::File::open("/dev/null")
                .context("cannot open /dev/null")?
                .into()
        };
        Some(moor::Stdio {
            stdin: input,
            stdout: std::io::stdout().as_fd().try_clone_to_owned().context("dup stdout")?,
            stderr: std::io::stderr().as_fd().try_clone_to_owned().context("dup stderr")?,
        })
    };
    let opts = moor::ExecOptions {
        process: Some(process),
        stdio,
        ..Default::default()
    };
    let code = rt
        .exec(&target.id, &opts)
        .map_err(|e| anyhow::anyhow!(moor::report(&e)))?;
    std::process::exit(code);
}
