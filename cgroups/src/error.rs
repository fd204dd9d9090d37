//! Error type: every variant says what failed, on which path or OCI field, and the OS error.

use std::io;
use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A filesystem operation on a cgroup path failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing a resource value failed; `field` is the OCI field, e.g. `linux.resources.memory.limit`.
    #[error("{field}: writing {value:?} to {path}: {source}")]
    Write {
        field: String,
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    /// The configuration holds an invalid value.
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },

    /// The field is valid but cannot be applied on this host (mode, kernel, missing controller).
    #[error("{field}: {msg}")]
    Unsupported { field: String, msg: String },

    /// The cgroups path (or container id) cannot be used.
    #[error("invalid cgroups path {path:?}: {msg}")]
    InvalidPath { path: String, msg: String },

    /// The systemd cgroup driver was requested but systemd is not running (or not usable).
    #[error("systemd cgroup driver requested for cgroupsPath {path:?}, but {msg}")]
    SystemdUnavailable { path: String, msg: String },

    /// systemd refused or failed a request about the container's unit.
    #[error("systemd: {op} {unit}: {msg}")]
    Systemd {
        op: &'static str,
        unit: String,
        msg: String,
    },

    /// Rootless: the caller may not create the container's cgroup in any hierarchy.
    #[error("this rootless user cannot write to the cgroup hierarchy ({0})")]
    RootlessDenied(String),

    /// A statistics file does not hold what its format says: which line, and why.
    #[error("{path}: line {line}: {msg}")]
    Parse { path: PathBuf, line: usize, msg: String },

    /// The cgroup layout of this host could not be understood.
    #[error("cgroup setup: {0}")]
    Setup(String),

    /// A bpf(2) call failed while installing the v2 device filter.
    #[error("linux.resources.devices: bpf {op}: {source}{log}")]
    Bpf {
        op: &'static str,
        #[source]
        source: io::Error,
        log: String,
    },

    /// Waiting for the kernel (freeze, emptying a cgroup) took too long.
    #[error("{what}: timed out after {millis} ms")]
    Timeout { what: String, millis: u64 },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            msg: msg.into(),
        }
    }

    pub(crate) fn unsupported(field: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Unsupported {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
