use std::path::PathBuf;

/// What went wrong preparing a pod's volumes: each variant names the field (spec.volumes[i]...)
/// or path, and the OS error. Never carries a secret's data.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
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
    #[error("{field}: {kind} {name:?} not found (and the volume is not optional)")]
    Missing {
        field: String,
        kind: &'static str,
        name: String,
    },
    #[error("{field}: key {key:?} not found in {kind} {name:?} (and the volume is not optional)")]
    MissingKey {
        field: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("{field}: {path}: {reason}")]
    HostPath {
        field: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{field}: this volume type is not supported by moorlet")]
    Unsupported { field: String },
}

impl VolumeError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VolumeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn os(op: &'static str, path: impl Into<PathBuf>, errno: nix::errno::Errno) -> Self {
        VolumeError::io(op, path, std::io::Error::from(errno))
    }

    pub(crate) fn invalid(field: impl Into<String>, value: impl Into<String>, reason: &'static str) -> Self {
        VolumeError::Invalid {
            field: field.into(),
            value: value.into(),
            reason,
        }
    }
}
