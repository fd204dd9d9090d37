//! The store itself: the index of images, blobs and unpacked layers, the locks, and the staging
//! directory through which every import and pull puts its content in place.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::digest::{Digest, HashingReader};
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
struct Index {
    images: Vec<Record>,
}

impl Record {
    fn image(&self) -> Image {
        Image {
            id: self.id.clone(),
            names: self.names.clone(),
            config: self.config.clone(),
            size: self.size,
        }
    }
}

/// What an import or pull found for one image, ready to be committed.
pub(crate) struct NewImage {
    pub id: Digest,
    pub names: Vec<String>,
    pub manifest: Digest,
    pub layers: Vec<(Digest, Digest)>,
    pub config: ImageConfig,
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

    fn lock(&self, name: &str, arg: FlockArg) -> Result<Flock<File>, ImageError> {
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

    fn read_index(&self) -> Result<Index, ImageError> {
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
    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
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

fn read_size(layer: &Path) -> u64 {
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

static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

/// One import's or pull's work area under tmp/: verified blobs and unpacked layers wait there
/// until `commit` renames them into the store and indexes the images. Dropped uncommitted, it is
/// removed, so a failed import stores nothing.
pub(crate) struct Staging<'s> {
    store: &'s ImageStore,
    dir: PathBuf,
    blobs: HashSet<Digest>,
    layers: HashSet<Digest>,
    _gc: Flock<File>,
}

impl<'s> Staging<'s> {
    pub fn new(store: &'s ImageStore) -> Result<Staging<'s>, ImageError> {
        // Shared: imports run side by side; prune waits for them.
        let gc = store.lock("gc.lock", FlockArg::LockShared)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = store.root.join("tmp").join(name);
        for d in [dir.join("blobs"), dir.join("layers")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(io_err("create directory", &d))?;
        }
        Ok(Staging {
            store,
            dir,
            blobs: HashSet::new(),
            layers: HashSet::new(),
            _gc: gc,
        })
    }

    /// The staging directory (removed with the staging).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a blob is, in the store or staged here.
    pub fn blob(&self, digest: &Digest) -> Option<PathBuf> {
        if self.blobs.contains(digest) {
            return Some(self.dir.join("blobs").join(digest.hex()));
        }
        let p = self.store.blob_path(digest);
        p.is_file().then_some(p)
    }

    /// Copies a blob in, hashing it on the way: with `expected`, a different digest is refused;
    /// with `size`, reading stops past it and a different length is refused. Returns the digest.
    pub fn put_blob(
        &mut self,
        what: &str,
        reader: impl Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<Digest, ImageError> {
        if let Some(d) = expected {
            if self.blob(d).is_some() {
                return Ok(d.clone());
            }
        }
        let part = self
            .dir
            .join("blobs")
            .join(format!("part-{}", STAGING_SEQ.fetch_add(1, Ordering::Relaxed)));
        let result = self.copy_blob(what, &part, reader, expected, size);
        if result.is_err() {
            let _ = fs::remove_file(&part);
        }
        result
    }

    fn copy_blob(
        &mut self,
        what: &str,
        part: &Path,
        reader: impl Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<Digest, ImageError> {
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(part)
            .map_err(io_err("create", part))?;
        let limit = size.map_or(u64::MAX, |s| s.saturating_add(1));
        let mut hashing = HashingReader::new(reader.take(limit));
        std::io::copy(&mut hashing, &mut file).map_err(|e| ImageError::Format {
            what: what.to_string(),
            reason: format!("reading the blob: {e}"),
        })?;
        let (digest, count) = hashing.finish().map_err(io_err("read", part))?;
        if let Some(s) = size {
            if count != s {
                return Err(ImageError::SizeMismatch {
                    what: what.to_string(),
                    expected: s,
                    actual: if count > s {
                        format!("more than {s}")
                    } else {
                        count.to_string()
                    },
                });
            }
        }
        if let Some(e) = expected {
            if *e != digest {
                return Err(ImageError::DigestMismatch {
                    what: what.to_string(),
                    expected: e.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        file.sync_all().map_err(io_err("fsync", part))?;
        let dest = self.dir.join("blobs").join(digest.hex());
        fs::rename(part, &dest).map_err(io_err("rename", &dest))?;
        self.blobs.insert(digest.clone());
        Ok(digest)
    }

    /// A small document (manifest, index, config) from a stored or staged blob.
    pub fn read_document(&self, what: &str, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let path = self
            .blob(digest)
            .ok_or_else(|| ImageError::format(what, format!("blob {digest} is missing")))?;
        read_bounded(what, &path, super::oci::MAX_DOCUMENT)
    }

    /// A staged or stored blob's compression.
    pub fn compression(&self, digest: &Digest) -> Result<super::unpack::Compression, ImageError> {
        let path = self
            .blob(digest)
            .ok_or_else(|| ImageError::format(format!("blob {digest}"), "missing"))?;
        let mut file = File::open(&path).map_err(io_err("open", &path))?;
        super::unpack::compression(&mut file).map_err(io_err("read", &path))
    }

    /// Unpacks a layer blob unless its diff id is already unpacked in the store or staged.
    pub fn unpack(&mut self, blob: &Digest, diff_id: &Digest) -> Result<(), ImageError> {
        if self.layers.contains(diff_id) || self.store.layer_path(diff_id).join("root").is_dir() {
            return Ok(());
        }
        let src = self
            .blob(blob)
            .ok_or_else(|| ImageError::format(format!("layer {blob}"), "blob is missing"))?;
        let dest = self.dir.join("layers").join(diff_id.hex());
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dest)
            .map_err(io_err("create directory", &dest))?;
        let size = super::unpack::unpack(blob, &src, diff_id, &dest.join("root"))?;
        let size_path = dest.join("size");
        fs::write(&size_path, size.to_string()).map_err(io_err("write", &size_path))?;
        self.layers.insert(diff_id.clone());
        Ok(())
    }

    /// Puts the staged content in place, then indexes the images (last, so that no reader sees
    /// an image whose content is not all there).
    pub fn commit(self, images: Vec<NewImage>) -> Result<Vec<Image>, ImageError> {
        let dir = File::open(&self.dir).map_err(io_err("open", &self.dir))?;
        nix::unistd::syncfs(dir.as_raw_fd()).map_err(nix_err("syncfs", &self.dir))?;
        for d in &self.blobs {
            let from = self.dir.join("blobs").join(d.hex());
            let to = self.store.blob_path(d);
            fs::rename(&from, &to).map_err(io_err("rename into place", &to))?;
        }
        for d in &self.layers {
            let from = self.dir.join("layers").join(d.hex());
            let to = self.store.layer_path(d);
            match nix::fcntl::renameat2(None, &from, None, &to, nix::fcntl::RenameFlags::RENAME_NOREPLACE) {
                // another import unpacked the same layer first: theirs serves, ours goes with tmp
                Ok(()) | Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY) => {}
                Err(e) => return Err(ImageError::io("rename into place", &to, e.into())),
            }
        }
        fsync_dir(&self.store.root.join("blobs/sha256"))?;
        fsync_dir(&self.store.root.join("layers"))?;

        let _lock = self.store.lock("index.lock", FlockArg::LockExclusive)?;
        let mut index = self.store.read_index()?;
        let mut out = Vec::new();
        for new in images {
            let size = new
                .layers
                .iter()
                .map(|(_, diff)| read_size(&self.store.layer_path(diff)))
                .sum();
            for r in &mut index.images {
                if r.id != new.id.as_str() {
                    r.names.retain(|n| !new.names.contains(n));
                }
            }
            let record = Record {
                id: new.id.to_string(),
                names: Vec::new(),
                manifest: new.manifest.to_string(),
                layers: new
                    .layers
                    .iter()
                    .map(|(d, diff)| LayerRecord {
                        digest: d.to_string(),
                        diff_id: diff.to_string(),
                    })
                    .collect(),
                config: new.config,
                size,
            };
            let i = match index.images.iter().position(|r| r.id == record.id) {
                Some(i) => {
                    let names = std::mem::take(&mut index.images[i].names);
                    index.images[i] = Record { names, ..record };
                    i
                }
                None => {
                    index.images.push(record);
                    index.images.len() - 1
                }
            };
            for n in new.names {
                if !index.images[i].names.contains(&n) {
                    index.images[i].names.push(n);
                }
            }
            out.push(index.images[i].image());
        }
        self.store.write_index(&index)?;
        Ok(out)
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        // Best effort: what is left is removed by the next prune.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Reads a whole file of at most `max` bytes.
pub(crate) fn read_bounded(what: &str, path: &Path, max: u64) -> Result<Vec<u8>, ImageError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path))?;
    if bytes.len() as u64 > max {
        return Err(ImageError::format(what, format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// Images with the same content found under several names are one image with all the names.
pub(crate) fn merge_names(images: Vec<NewImage>) -> Vec<NewImage> {
    let mut by_id: HashMap<Digest, usize> = HashMap::new();
    let mut out: Vec<NewImage> = Vec::new();
    for img in images {
        match by_id.get(&img.id) {
            Some(&i) => {
                for n in img.names {
                    if !out[i].names.contains(&n) {
                        out[i].names.push(n);
                    }
                }
            }
            None => {
                by_id.insert(img.id.clone(), out.len());
                out.push(img);
            }
        }
    }
    out
}
