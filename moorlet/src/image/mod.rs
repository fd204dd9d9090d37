//! The image store: OCI and Docker images imported from archives or pulled from a registry v2,
//! kept as digest-verified blobs, with each layer unpacked once (per diff id) and shared by every
//! image that has it; a container's rootfs is an overlayfs over those layers.
//!
//! On disk, under the store's root:
//! - `blobs/sha256/<hex>`: manifests, configs and layer blobs, each verified against its digest.
//! - `layers/<diff id hex>/root`: an unpacked layer (whiteouts in overlayfs form), and
//!   `layers/<hex>/size`, the bytes its files take.
//! - `index.json`: the images (id, names, manifest, layers, config); written last, so an
//!   interrupted import or pull leaves at most unreferenced blobs and layers, which `prune` removes.
//! - `tmp/`: each import's or pull's staging directory, renamed into place only when complete.
//! - `gc.lock` (imports and pulls share it, `remove` and `prune` take it alone) and
//!   `index.lock` (index updates), so that several threads or processes may use one store.

mod digest;
mod import;
mod oci;
mod overlay;
mod pull;
mod reference;
mod staging;
mod store;
mod unpack;
mod zstd;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use overlay::{mount_rootfs, unmount_rootfs};
pub use reference::normalize;
pub use store::ImageStore;

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<hex of the config blob's digest>`, as Docker and containerd name image ids.
    pub id: String,
    /// Normalized references (`docker.io/library/busybox:latest`); empty for an image whose
    /// names all moved to newer images.
    pub names: Vec<String>,
    pub config: ImageConfig,
    /// Bytes its unpacked layers take (the sum of their files' sizes).
    pub size: u64,
}

/// What a container takes from its image's config (the OCI image-spec `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Ids of the images removed.
    pub images: Vec<String>,
    /// Unpacked layers removed.
    pub layers: usize,
    /// Blobs removed.
    pub blobs: usize,
    /// Bytes of blobs and unpacked files freed.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {reason}")]
    Format { what: String, reason: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: size mismatch: the descriptor says {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: String,
    },
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("{what}: no linux/amd64 image in the index (platforms: {platforms})")]
    NoPlatform { what: String, platforms: String },
    #[error("layer {layer}, entry {entry:?}: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}, entry {entry:?}: {op}: {source}")]
    Unpack {
        layer: String,
        entry: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image reference {reference:?} is ambiguous: it matches {ids}")]
    Ambiguous { reference: String, ids: String },
    #[error("registry {url}: {reason}")]
    Registry { url: String, reason: String },
    #[error("registry {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{op} {}: {source}", path.display())]
    Mount {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::Format {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
