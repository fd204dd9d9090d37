//! Import of an OCI image layout directory, an oci-archive (a layout in a tar) or a
//! docker-archive (`docker save`: manifest.json, configs and layer tars).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::digest::Digest;
use super::oci::{self, Blobs, Descriptor, Parsed, MAX_DOCUMENT};
use super::reference::normalize;
use super::staging::{merge_names, NewImage, Staging};
use super::store::{io_err, ImageStore};
use super::unpack::{compression, decoder, Compression};
use super::{Image, ImageError};

pub(crate) fn import(store: &ImageStore, path: &Path) -> Result<Vec<Image>, ImageError> {
    let meta = std::fs::metadata(path).map_err(io_err("stat", path))?;
    let mut staging = Staging::new(store)?;
    let source = if meta.is_dir() {
        Source::Dir(path.to_path_buf())
    } else {
        Source::tar(&decompressed(path, &staging)?)?
    };
    let images = if source.has("manifest.json") {
        docker_archive(&source, &mut staging)?
    } else if source.has("index.json") {
        oci_layout(&source, &mut staging)?
    } else {
        return Err(ImageError::format(
            path.display().to_string(),
            "neither an OCI image layout (index.json) nor a docker-archive (manifest.json)",
        ));
    };
    staging.commit(merge_names(images))
}

/// The archive itself, or for a compressed one (`docker save | gzip`) a decompressed copy in
/// staging: members are read at their offsets, which a compressed stream does not have.
fn decompressed(path: &Path, staging: &Staging) -> Result<PathBuf, ImageError> {
    let mut file = File::open(path).map_err(io_err("open", path))?;
    if compression(&mut file).map_err(io_err("read", path))? == Compression::None {
        return Ok(path.to_path_buf());
    }
    let copy = staging.dir().join("archive.tar");
    let mut out = File::create(&copy).map_err(io_err("create", &copy))?;
    let what = path.display().to_string();
    std::io::copy(&mut decoder(&what, file)?, &mut out)
        .map_err(|e| ImageError::format(what, format!("decompressing: {e}")))?;
    Ok(copy)
}

/// Where the files of a layout or an archive are read from.
enum Source {
    Dir(PathBuf),
    /// A tar file and its regular files: name → (offset of the data, size).
    Tar {
        path: PathBuf,
        files: HashMap<String, (u64, u64)>,
    },
}

/// A tar member's name without `./` or `/` prefixes and `.` components; None if it has `..`.
fn clean(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl Source {
    fn tar(path: &Path) -> Result<Source, ImageError> {
        let what = path.display().to_string();
        let bad = |e: std::io::Error| ImageError::format(what.clone(), format!("not a readable tar archive: {e}"));
        let file = File::open(path).map_err(io_err("open", path))?;
        let mut archive = tar::Archive::new(file);
        let mut files = HashMap::new();
        let mut links = Vec::new();
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = clean(&name) else { continue };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    files.insert(name, (entry.raw_file_position(), entry.size()));
                }
                // docker 25's `save` links the legacy layer paths to the OCI blobs
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name_bytes() {
                        links.push((
                            name,
                            entry.header().entry_type(),
                            String::from_utf8_lossy(&target).into_owned(),
                        ));
                    }
                }
                _ => {}
            }
        }
        for (name, kind, target) in links {
            let resolved = if kind == tar::EntryType::Symlink && !target.starts_with('/') {
                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                clean(&format!("{dir}/{target}"))
            } else {
                clean(&target)
            };
            if let Some(found) = resolved.and_then(|t| files.get(&t).copied()) {
                files.insert(name, found);
            }
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            files,
        })
    }

    fn what(&self, name: &str) -> String {
        match self {
            Source::Dir(dir) => dir.join(name).display().to_string(),
            Source::Tar { path, .. } => format!("{}:{name}", path.display()),
        }
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(name).is_file(),
            Source::Tar { files, .. } => files.contains_key(name),
        }
    }

    /// A member's content and size. Names come from digests or from a docker-archive's
    /// manifest.json (then cleaned of `..` for a directory, and only looked up for a tar).
    fn open(&self, name: &str) -> Result<(Box<dyn Read>, u64), ImageError> {
        let missing = || ImageError::format(self.what(name), "missing");
        match self {
            Source::Dir(dir) => {
                let path = dir.join(clean(name).ok_or_else(missing)?);
                let file = File::open(&path).map_err(io_err("open", &path))?;
                let meta = file.metadata().map_err(io_err("stat", &path))?;
                if !meta.is_file() {
                    return Err(ImageError::format(self.what(name), "not a regular file"));
                }
                Ok((Box::new(file), meta.len()))
            }
            Source::Tar { path, files } => {
                let &(offset, size) = clean(name).and_then(|n| files.get(&n)).ok_or_else(missing)?;
                let mut file = File::open(path).map_err(io_err("open", path))?;
                file.seek(SeekFrom::Start(offset)).map_err(io_err("seek", path))?;
                Ok((Box::new(file.take(size)), size))
            }
        }
    }

    fn read_document(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let (reader, size) = self.open(name)?;
        if size > MAX_DOCUMENT {
            return Err(ImageError::format(
                self.what(name),
                format!("larger than {MAX_DOCUMENT} bytes"),
            ));
        }
        let mut bytes = Vec::new();
        reader
            .take(MAX_DOCUMENT)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::format(self.what(name), format!("read: {e}")))?;
        Ok(bytes)
    }
}

impl Blobs for Source {
    fn put(&self, staging: &mut Staging, desc: &Descriptor) -> Result<Digest, ImageError> {
        let digest = desc.digest()?;
        if staging.blob(&digest).is_some() {
            return Ok(digest);
        }
        let name = format!("blobs/sha256/{}", digest.hex());
        let (reader, _) = self.open(&name)?;
        staging.put_blob(
            &format!("blob {digest} ({})", self.what(&name)),
            reader,
            Some(&digest),
            Some(desc.size),
        )
    }
}

fn oci_layout(source: &Source, staging: &mut Staging) -> Result<Vec<NewImage>, ImageError> {
    let what = source.what("index.json");
    let Parsed::Index(descriptors) = oci::parse_document(&what, &source.read_document("index.json")?)? else {
        return Err(ImageError::format(what, "is an image manifest, not an image index"));
    };
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for desc in &descriptors {
        if let Some(p) = &desc.platform {
            if p.os != "linux" || p.architecture != "amd64" {
                skipped.push(format!("{}/{}", p.os, p.architecture));
                continue;
            }
        }
        images.push(oci::fetch(source, staging, desc, names_of(desc)?, 0)?);
    }
    if images.is_empty() {
        return Err(ImageError::NoPlatform {
            what,
            platforms: skipped.join(", "),
        });
    }
    Ok(images)
}

/// An image's names from its index entry: containerd's full name first, else the OCI ref name.
fn names_of(desc: &Descriptor) -> Result<Vec<String>, ImageError> {
    let name = desc
        .annotations
        .get("io.containerd.image.name")
        .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name"));
    Ok(match name {
        Some(n) => vec![normalize(n)?],
        None => Vec::new(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_archive(source: &Source, staging: &mut Staging) -> Result<Vec<NewImage>, ImageError> {
    let what = source.what("manifest.json");
    let entries: Vec<DockerManifest> =
        serde_json::from_slice(&source.read_document("manifest.json")?).map_err(|source| ImageError::Json {
            what: what.clone(),
            source,
        })?;
    if entries.is_empty() {
        return Err(ImageError::format(what, "lists no image"));
    }
    let mut images = Vec::new();
    for entry in entries {
        let (reader, size) = source.open(&entry.config)?;
        let config_what = source.what(&entry.config);
        let id = staging.put_blob(&config_what, reader, None, Some(size))?;
        let (config, diff_ids) = oci::parse_config(
            &config_what,
            &staging.read_document(&config_what, &id)?,
            entry.layers.len(),
        )?;
        let mut layers = Vec::new();
        let mut descriptors = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
            let (reader, size) = source.open(name)?;
            let digest = staging.put_blob(&source.what(name), reader, None, Some(size))?;
            staging.unpack(&digest, &diff_id)?;
            descriptors.push(serde_json::json!({
                "mediaType": staging.compression(&digest)?.media_type(),
                "digest": digest.to_string(),
                "size": size,
            }));
            layers.push((digest, diff_id));
        }
        // A docker-archive has no manifest blob: the store keeps one, as every image has one.
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": id.to_string(),
                "size": size,
            },
            "layers": descriptors,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|source| ImageError::Json {
            what: format!("{what}: the manifest made for it"),
            source,
        })?;
        let manifest = staging.put_blob(&what, &bytes[..], None, None)?;
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| normalize(t))
            .collect::<Result<Vec<_>, _>>()?;
        images.push(NewImage {
            id,
            names,
            manifest,
            layers,
            config,
        });
    }
    Ok(images)
}
