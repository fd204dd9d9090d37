//! Typed errors of the moor library. Messages keep runc's wording where callers match on it:
//! "does not exist", "already exists", "container not running", "no such process".

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0} does not exist")]
    DoesNotExist(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container not running: {0}")]
    NotRunning(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("config.json: {field}: {reason}")]
    Config { field: String, reason: String },
    #[error("{what} {path}: {source}")]
    Path {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: io::Error },
    #[error("error running hook ({hook}) {path}: {reason}")]
    Hook {
        hook: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A step inside the container failed; the init process reported it before exiting.
    #[error("container init: {0}")]
    Init(String),
    #[error("linux.seccomp: {0}")]
    Seccomp(moor_seccomp::Error),
    #[error("cgroup: {0}")]
    Cgroup(moor_cgroups::Error),
    /// create, run and exec clone and then run code in the child, which a lock held by another
    /// thread at the clone would deadlock: threaded callers use [`crate::Helper`].
    #[error("the calling process has {threads} threads: create, run and exec need a single-threaded caller (use moor::Helper)")]
    ThreadedCaller { threads: usize },
    /// The helper process is gone (killed, or it failed): its requests cannot be answered.
    #[error("moor helper: {0}")]
    HelperGone(String),
    /// An error the helper reported whose kind does not cross its socket: its text.
    #[error("{0}")]
    Remote(String),
}

impl Error {
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn path(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Path {
            what,
            path: path.into(),
            source,
        }
    }

    /// Wraps the current OS error (errno) with a description of what failed.
    pub fn last_os(what: impl Into<String>) -> Self {
        Error::Sys {
            what: what.into(),
            source: io::Error::last_os_error(),
        }
    }

    pub fn sys(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Sys {
            what: "system call".into(),
            source: e.into(),
        }
    }
}

/// Adds a description of what failed to nix and io results.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

// The library errors carry their cause in their message; no `source()` chain, so callers that
// print chains (anyhow's `{:#}`) do not repeat it.
impl From<moor_seccomp::Error> for Error {
    fn from(e: moor_seccomp::Error) -> Self {
        Error::Seccomp(e)
    }
}

impl From<moor_cgroups::Error> for Error {
    fn from(e: moor_cgroups::Error) -> Self {
        Error::Cgroup(e)
    }
}
