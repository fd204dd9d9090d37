//! The OCI image-spec and Docker schema-2 documents the store reads (they share a shape).

use std::collections::HashMap;

use serde::Deserialize;

use super::digest::Digest;
use super::staging::{NewImage, Staging};
use super::{ImageConfig, ImageError};

pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Manifests, indexes and configs are small; a larger one is refused before it is read whole.
pub(crate) const MAX_DOCUMENT: u64 = 4 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest, ImageError> {
        Digest::parse(&self.digest)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
}

/// A manifest or an index: which one is told by `manifests` (an index) or `layers` (a manifest),
/// since `mediaType` is optional in OCI documents.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
}

pub(crate) enum Parsed {
    Index(Vec<Descriptor>),
    Manifest {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

pub(crate) fn parse_document(what: &str, bytes: &[u8]) -> Result<Parsed, ImageError> {
    let doc: Document = serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })?;
    if let Some(mt) = &doc.media_type {
        if mt.contains("schema1") || mt.contains("v1+prettyjws") {
            return Err(ImageError::format(what, format!("unsupported media type {mt}")));
        }
    }
    match (doc.manifests, doc.config, doc.layers) {
        (Some(manifests), None, _) => Ok(Parsed::Index(manifests)),
        (None, Some(config), Some(layers)) => Ok(Parsed::Manifest { config, layers }),
        _ => Err(ImageError::format(
            what,
            "neither an image index (manifests) nor an image manifest (config and layers)",
        )),
    }
}

/// The linux/amd64 entry of an index; an index of one entry without a platform is taken as is.
pub(crate) fn select_platform<'a>(what: &str, manifests: &'a [Descriptor]) -> Result<&'a Descriptor, ImageError> {
    if let Some(d) = manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
    }) {
        return Ok(d);
    }
    if let [only] = manifests {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let platforms: Vec<String> = manifests
        .iter()
        .map(|d| {
            d.platform
                .as_ref()
                .map_or_else(|| "unspecified".to_string(), |p| format!("{}/{}", p.os, p.architecture))
        })
        .collect();
    Err(ImageError::NoPlatform {
        what: what.to_string(),
        platforms: platforms.join(", "),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContainerConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// The config blob parsed and checked against its manifest: its diff ids, one per layer.
pub(crate) fn parse_config(
    what: &str,
    bytes: &[u8],
    layer_count: usize,
) -> Result<(ImageConfig, Vec<Digest>), ImageError> {
    let file: ConfigFile = serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })?;
    if file.rootfs.kind != "layers" {
        return Err(ImageError::format(
            what,
            format!("rootfs.type is {:?}, not \"layers\"", file.rootfs.kind),
        ));
    }
    if let (Some(os), Some(arch)) = (&file.os, &file.architecture) {
        if os != "linux" || arch != "amd64" {
            return Err(ImageError::NoPlatform {
                what: what.to_string(),
                platforms: format!("{os}/{arch}"),
            });
        }
    }
    if file.rootfs.diff_ids.len() != layer_count {
        return Err(ImageError::format(
            what,
            format!(
                "rootfs.diff_ids has {} entries but the manifest has {layer_count} layers",
                file.rootfs.diff_ids.len()
            ),
        ));
    }
    let diff_ids = file
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let c = file.config.unwrap_or_default();
    let config = ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.filter(|s| !s.is_empty()),
        user: c.user.filter(|s| !s.is_empty()),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
    };
    Ok((config, diff_ids))
}

/// Where an image's blobs come from (a layout, an archive, a registry).
pub(crate) trait Blobs {
    /// Copies the blob a descriptor names into staging (unless it is there), checking its size
    /// and digest.
    fn put(&self, staging: &mut Staging, desc: &Descriptor) -> Result<Digest, ImageError>;
}

/// The image a descriptor names (an index resolved to its linux/amd64 manifest): its blobs
/// verified into staging and its layers unpacked.
pub(crate) fn fetch(
    blobs: &dyn Blobs,
    staging: &mut Staging,
    desc: &Descriptor,
    names: Vec<String>,
    depth: usize,
) -> Result<NewImage, ImageError> {
    let digest = blobs.put(staging, desc)?;
    let what = format!("manifest {digest}");
    match parse_document(&what, &staging.read_document(&what, &digest)?)? {
        Parsed::Index(manifests) => {
            if depth >= 4 {
                return Err(ImageError::format(what, "image indexes nested more than 4 deep"));
            }
            let chosen = select_platform(&what, &manifests)?.clone();
            fetch(blobs, staging, &chosen, names, depth + 1)
        }
        Parsed::Manifest { config, layers } => {
            let id = blobs.put(staging, &config)?;
            let config_what = format!("config {id}");
            let (config, diff_ids) =
                parse_config(&config_what, &staging.read_document(&config_what, &id)?, layers.len())?;
            let mut out = Vec::new();
            for (layer, diff_id) in layers.iter().zip(diff_ids) {
                let blob = blobs.put(staging, layer)?;
                staging.unpack(&blob, &diff_id)?;
                out.push((blob, diff_id));
            }
            Ok(NewImage {
                id,
                names,
                manifest: digest,
                layers: out,
                config,
            })
        }
    }
}
