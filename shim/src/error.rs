//! The shim's typed errors: what failed, on which path or flag, and the OS error.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("flag -{flag}: {reason}")]
    Flag { flag: String, reason: String },
    #[error("{what} {path}: {source}")]
    Path {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: io::Error },
    #[error("{path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
    #[error("{0}")]
    Moor(#[from] moor::Error),
    #[error("protobuf: {0}")]
    Proto(#[from] protobuf::Error),
    #[error("ttrpc: {0}")]
    Ttrpc(#[from] containerd_shim_protos::ttrpc::Error),
}

impl Error {
    pub fn path(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Path {
            what,
            path: path.into(),
            source,
        }
    }

    pub fn sys(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            what: what.into(),
            source: source.into(),
        }
    }

    pub fn flag(flag: &str, reason: impl Into<String>) -> Self {
        Error::Flag {
            flag: flag.to_string(),
            reason: reason.into(),
        }
    }
}
