//! Fault injection for the crash tests, compiled only with the `fault-injection` feature (CI
//! builds moor with it; release builds never have it). `create` and `exec` pass numbered points
//! in the parent, in the order of their story; with the feature:
//!
//! - `MOOR_FAULT=<point>:kill` SIGKILLs moor at that point (what a caller's timeout does),
//!   `MOOR_FAULT=<point>:fail` makes the step fail there (the error path's cleanup); at a
//!   [`point_queued`] the kill waits until the peer has sent its next message, so moor dies
//!   with it unread (the peer then sees ECONNRESET rather than EOF);
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

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point_queued(_name: &'static str, _socket: std::os::fd::BorrowedFd) -> Result<()> {
    Ok(())
}

/// A point where moor is about to read `socket`; a kill here waits for the message first.
#[cfg(feature = "fault-injection")]
pub(crate) fn point_queued(name: &'static str, socket: std::os::fd::BorrowedFd) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    if std::env::var("MOOR_FAULT").is_ok_and(|f| f == format!("{name}:kill")) {
        // At most 10 s, then the kill comes anyway.
        let _ = poll(
            &mut [PollFd::new(socket, PollFlags::POLLIN)],
            PollTimeout::from(10_000u16),
        );
    }
    point(name)
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
            // Nothing after it runs.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
            Ok(())
        }
        Some(_) => Err(crate::error::Error::sys(
            format!("injected fault at {name}"),
            std::io::Error::from_raw_os_error(libc::EIO),
        )),
        None => Ok(()),
    }
}
