//! One module per command that is more than a call into the library.

use anyhow::{Context, Result};

pub mod checkpoint;
pub mod create;
pub mod events;
pub mod exec;
pub mod inspect;
pub mod list;
pub mod ps;
pub mod restore;
pub mod spec;
pub mod update;

/// Commands that put a process into a container first re-execute moor from a sealed copy. The
/// caller's fds are sealed only in that copy, so it can still read `exec -p /dev/fd/N`.
pub fn enter_sealed(preserve_fds: u32) -> Result<()> {
    moor::caller::ensure_protected().context("protect the moor binary")?;
    moor::caller::seal_inherited(preserve_fds)?;
    Ok(())
}

/// The fds 3..3+n this process was given to pass on (socket activation, --preserve-fds), checked
/// open by `enter_sealed`; taken once, for the one operation that hands them to the container.
pub fn inherited_fds(n: u32) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    (3..)
        .take(n as usize)
        // SAFETY: inherited fds that nothing else in this process owns or uses.
        .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
        .collect()
}

/// An input document's error, with the offending field when it is inside.
pub fn json_error(input: &str, (field, why): (String, String)) -> anyhow::Error {
    if field.is_empty() {
        anyhow::anyhow!("{input}: {why}")
    } else {
        anyhow::anyhow!("{input}: {field}: {why}")
    }
}
