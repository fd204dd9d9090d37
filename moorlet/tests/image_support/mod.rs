//! Shared by the image tests: temp dirs that clean up (mounts first), and tree checks.

#![allow(dead_code)] // each test file uses a part

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use moorlet::image::{unmount_rootfs, ImageStore};

/// A directory under /tmp removed (with any rootfs mounted under it) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("moorlet-image-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    pub fn store(&self) -> ImageStore {
        ImageStore::open(&self.join("store")).expect("open the store")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // containers are made under <dir>/c*: unmount their rootfs before removing anything
        if let Ok(entries) = fs::read_dir(&self.0) {
            for e in entries.flatten() {
                if e.path().join("rootfs").exists() {
                    let _ = unmount_rootfs(&e.path());
                }
            }
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Names in a directory, sorted ([] when it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

pub fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: c and n are NUL-terminated; buf is a live buffer of buf.len() bytes.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(r).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let p = path.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

/// The store's content: (blobs, layers, tmp entries, images).
pub fn contents(root: &Path, store: &ImageStore) -> (Vec<String>, Vec<String>, Vec<String>, usize) {
    (
        names(&root.join("blobs/sha256")),
        names(&root.join("layers")),
        names(&root.join("tmp")),
        store.list().expect("list").len(),
    )
}
