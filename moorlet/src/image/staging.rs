//! Staging: where one import or pull puts its verified blobs and unpacked layers until they
//! are all there, then renames them into the store and indexes the images.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

use super::digest::{Digest, HashingReader};
use super::store::{fsync_dir, io_err, nix_err, read_size, ImageStore, LayerRecord, Record};
use super::{Image, ImageConfig, ImageError};

/// What an import or pull found for one image, ready to be committed.
pub(crate) struct NewImage {
    pub id: Digest,
    pub names: Vec<String>,
    pub manifest: Digest,
    pub layers: Vec<(Digest, Digest)>,
    pub config: ImageConfig,
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
        let dir = store.root().join("tmp").join(name);
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
        fsync_dir(&self.store.root().join("blobs/sha256"))?;
        fsync_dir(&self.store.root().join("layers"))?;

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
