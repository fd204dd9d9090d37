//! The store itself: the index of images, blobs and unpacked layers, the locks, and the staging
//! directory through which every import and pull puts its content in place.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::reference::Reference;
use super::{Image, ImageConfig, ImageError, PruneReport};

/// The image store rooted at one directory. Every method takes `&self`: threads may share one
/// store, and several processes may open the same root (file locks order them).
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    pub names: Vec<String>,
    pub manifest: String,
    pub layers: Vec<LayerRecord>,
    pub config: ImageConfig,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    /// The (possibly compressed) blob.
    pub digest: String,
    /// The digest of the uncompressed tar: the unpacked layer's name.
    pub diff_id: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    pub images: Vec<Record>,
}

impl Record {
    pub fn image(&self) -> Image {
        Image {
            id: self.id.clone(),
            names: self.names.clone(),
            config: self.config.clone(),
            size: self.size,
        }
    }
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ImageError + 'a {
    move |e| ImageError::io(op, path, e)
}

pub(crate) fn nix_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::errno::Errno) -> ImageError + 'a {
    move |e| ImageError::io(op, path, std::io::Error::from(e))
}

/// Makes `path` durable in its directory (after a create or rename).
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        for dir in [
            root.to_path_buf(),
            root.join("blobs/sha256"),
            root.join("layers"),
            root.join("tmp"),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err("create directory", &dir))?;
        }
        Ok(ImageStore {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub(crate) fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    pub(crate) fn lock(&self, name: &str, arg: FlockArg) -> Result<Flock<File>, ImageError> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open lock", &path))?;
        Flock::lock(file, arg).map_err(|(_, e)| ImageError::io("lock", &path, e.into()))
    }

    pub(crate) fn read_index(&self) -> Result<Index, ImageError> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
                what: path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::io("read", &path, e)),
        }
    }

    /// Called with index.lock held, so one temp name serves.
    pub(crate) fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let path = self.root.join("index.json");
        let tmp = self.root.join("index.json.tmp");
        let bytes = serde_json::to_vec_pretty(index).map_err(|source| ImageError::Json {
            what: "index.json".to_string(),
            source,
        })?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))?;
        fsync_dir(&self.root)
    }

    pub fn import(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        super::import::import(self, path)
    }

    pub fn pull(&self, reference: &str) -> Result<Image, ImageError> {
        super::pull::pull(self, reference)
    }

    pub fn get(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let index = self.read_index()?;
        Ok(find(&index, reference)?.map(|i| index.images[i].image()))
    }

    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        Ok(self.read_index()?.images.iter().map(Record::image).collect())
    }

    /// Removes a name (the image stays while it has other names) or, given an id, the image.
    /// Its blobs and layers are freed by `prune`.
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let _lock = self.lock("index.lock", FlockArg::LockExclusive)?;
        let mut index = self.read_index()?;
        let i = find(&index, reference)?.ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        let by_name = Reference::parse(reference)
            .ok()
            .and_then(|r| r.tagged_name())
            .filter(|n| index.images[i].names.contains(n));
        match by_name {
            Some(name) if index.images[i].names.len() > 1 => index.images[i].names.retain(|n| *n != name),
            _ => {
                index.images.remove(i);
            }
        }
        self.write_index(&index)
    }

    pub fn prune(&self, in_use: &HashSet<String>) -> Result<PruneReport, ImageError> {
        // Alone: no import or pull is between writing its blobs and indexing them.
        let _gc = self.lock("gc.lock", FlockArg::LockExclusive)?;
        let _index_lock = self.lock("index.lock", FlockArg::LockExclusive)?;
        let mut index = self.read_index()?;
        let in_use: HashSet<String> = in_use
            .iter()
            .map(|id| {
                if id.starts_with("sha256:") {
                    id.clone()
                } else {
                    format!("sha256:{id}")
                }
            })
            .collect();
        let mut report = PruneReport::default();
        index.images.retain(|r| {
            let keep = in_use.contains(&r.id);
            if !keep {
                report.images.push(r.id.clone());
            }
            keep
        });
        self.write_index(&index)?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for r in &index.images {
            blobs.insert(hex_of(&r.id));
            blobs.insert(hex_of(&r.manifest));
            for l in &r.layers {
                blobs.insert(hex_of(&l.digest));
                layers.insert(hex_of(&l.diff_id));
            }
        }
        let blob_dir = self.root.join("blobs/sha256");
        for (name, path) in read_dir_names(&blob_dir)? {
            if !blobs.contains(&name) {
                let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&path).map_err(io_err("remove blob", &path))?;
                report.blobs += 1;
                report.bytes += size;
            }
        }
        let layer_dir = self.root.join("layers");
        for (name, path) in read_dir_names(&layer_dir)? {
            if !layers.contains(&name) {
                report.bytes += read_size(&path);
                fs::remove_dir_all(&path).map_err(io_err("remove layer", &path))?;
                report.layers += 1;
            }
        }
        // What interrupted imports and pulls left behind.
        let tmp = self.root.join("tmp");
        for (_, path) in read_dir_names(&tmp)? {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        }
        Ok(report)
    }

    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        let index = self.read_index()?;
        let record = index
            .images
            .iter()
            .find(|r| r.id == image.id)
            .ok_or_else(|| ImageError::NotFound(image.id.clone()))?;
        record
            .layers
            .iter()
            .map(|l| {
                let dir = self.layer_path(&Digest::parse(&l.diff_id)?).join("root");
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(ImageError::NotFound(format!(
                        "{} (its layer {} is not unpacked)",
                        image.id, l.diff_id
                    )))
                }
            })
            .collect()
    }
}

fn hex_of(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).to_string()
}

fn read_dir_names(dir: &Path) -> Result<Vec<(String, PathBuf)>, ImageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        out.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
    }
    Ok(out)
}

pub(crate) fn read_size(layer: &Path) -> u64 {
    fs::read_to_string(layer.join("size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The image a reference names: a name first (as Docker does), then an id or a unique id prefix.
fn find(index: &Index, reference: &str) -> Result<Option<usize>, ImageError> {
    if let Ok(r) = Reference::parse(reference) {
        let found = match (&r.digest, r.tagged_name()) {
            (Some(d), _) => index.images.iter().position(|i| i.manifest == *d || i.id == *d),
            (None, Some(name)) => index.images.iter().position(|i| i.names.contains(&name)),
            (None, None) => None,
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let matches: Vec<usize> = (0..index.images.len())
        .filter(|&i| hex_of(&index.images[i].id).starts_with(prefix))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(ImageError::Ambiguous {
            reference: reference.to_string(),
            ids: many
                .iter()
                .map(|&i| index.images[i].id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
