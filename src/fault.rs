//! Fault injection for the crash tests, compiled only with the `fault-injection` feature (CI
//! builds moor with it; release builds never have it). `create` and `exec` pass numbered points
//! in the parent, in the order of their story; with the feature:
//!
//! - `MOOR_FAULT=<point>:kill` SIGKILLs moor at that point (what a caller's timeout does),
//!   `MOOR_FAULT=<point>:fail` makes the step fail there (the error path's cleanup);
//! - `MOOR_FAULT_TRACE=<file>` appends the name of every point passed, one a line, so a test
//!   learns the points of a run instead of keeping its own list.
//!
//! Only the parent calls [`point`]; init and the processes `exec` clones never do.

use crate::error::Result;

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_name: &'static str) -> Result<()> {
    Ok(())
}

#[cfg(feature = "fault-injection")]
pub(crate) fn point(name: &'static str) -> Result<()> {
    use std::io::Write;

    if let Some(trace) = std::env::var_os("MOOR_FAULT_TRACE") {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(trace) {
            let _ = writeln!(f, "{name}");
        }
    }
    let Ok(fault) = std::env::var("MOOR_FAULT") else {
        return Ok(());
    };
    match fault.strip_prefix(name).and_then(|a| a.strip_prefix(':')) {
        Some("kill") => {
            // SAFETY: kill(2) on ourselves; nothing after it runs.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            Ok(())
        }
        Some(_) => Err(crate::error::Error::sys(
            format!("injected fault at {name}"),
            std::io::Error::from_raw_os_error(libc::EIO),
        )),
        None => Ok(()),
    }
}
