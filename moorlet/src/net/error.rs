use std::path::PathBuf;

/// What went wrong in a pod's network: each variant names the path or field, and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{field}: {value:?} is not valid: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("hostPort {port}/{protocol} is already used by pod {pod}")]
    HostPortInUse { port: u16, protocol: String, pod: String },
    #[error("CNI config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}")]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u64,
        msg: String,
    },
}

impl NetError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn os(op: &'static str, path: impl Into<PathBuf>, errno: nix::errno::Errno) -> Self {
        NetError::io(op, path, std::io::Error::from(errno))
    }
}
