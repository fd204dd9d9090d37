//! Unpacks a layer blob (gzip, zstd or plain tar) into a directory that overlayfs can stack.
//!
//! A layer is hostile input: names are taken apart component by component, `..` and absolute
//! names are refused, and every parent is walked with fds and O_NOFOLLOW, refusing a symlinked
//! parent, so no entry can write outside the layer's directory. Docker's whiteouts become
//! overlayfs whiteouts: `.wh.NAME` a 0/0 character device, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on the directory. The uncompressed stream is hashed as it is
//! read and must match the config's diff id.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fchmodat, fstatat, futimens, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use super::digest::{Digest, HashingReader};
use super::ImageError;

const OPAQUE: &str = ".wh..wh..opq";

/// Unpacks `src` (the blob `blob`) into `dest`, which must not exist. Returns the bytes its
/// regular files hold.
pub(crate) fn unpack(blob: &Digest, src: &Path, diff_id: &Digest, dest: &Path) -> Result<u64, ImageError> {
    let layer = blob.to_string();
    let file = File::open(src).map_err(|e| ImageError::io("open layer blob", src, e))?;
    let decoder = decoder(&format!("layer {layer}"), file)?;
    std::fs::DirBuilder::new()
        .create(dest)
        .map_err(|e| ImageError::io("create directory", dest, e))?;
    let root_fd = open_dir(None, dest.as_os_str()).map_err(|e| ImageError::io("open", dest, e.into()))?;
    let mut hashing = HashingReader::new(decoder);
    let mut unpacker = Unpacker {
        layer: &layer,
        root: root_fd,
        cached: None,
        size: 0,
        dir_times: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(|e| unpacker.err("", "read tar", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| unpacker.err("", "read tar entry", e))?;
            unpacker.entry(entry)?;
        }
    }
    unpacker.restore_dir_times()?;
    let (actual, _) = hashing.finish().map_err(|e| unpacker.err("", "read tar", e))?;
    if actual != *diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("layer {layer} (uncompressed)"),
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(unpacker.size)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// A blob's compression, from its first bytes (media types are not always right: Docker's
/// `.tar.gzip` names, archives without any); the file is left at its start.
pub(crate) fn compression(file: &mut File) -> std::io::Result<Compression> {
    let mut magic = [0u8; 4];
    let n = read_up_to(file, &mut magic)?;
    file.rewind()?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// The blob's content, decompressed as its first bytes say.
pub(crate) fn decoder(what: &str, mut file: File) -> Result<Box<dyn Read>, ImageError> {
    let kind = compression(&mut file).map_err(|e| ImageError::format(what, format!("read: {e}")))?;
    let buffered = BufReader::with_capacity(1 << 16, file);
    Ok(match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(super::zstd::Frames::new(buffered)),
        Compression::None => Box::new(buffered),
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn open_dir(dirfd: Option<RawFd>, name: &OsStr) -> Result<OwnedFd, Errno> {
    let fd = openat(
        dirfd,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat just returned this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What an entry says about the file besides its data.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Meta {
        let h = entry.header();
        let mut meta = Meta {
            uid: h.uid().ok().and_then(|u| u32::try_from(u).ok()).unwrap_or(0),
            gid: h.gid().ok().and_then(|g| u32::try_from(g).ok()).unwrap_or(0),
            mode: h.mode().unwrap_or(0o644),
            mtime: h.mtime().ok().and_then(|t| i64::try_from(t).ok()).unwrap_or(0),
            xattrs: Vec::new(),
        };
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let Ok(key) = ext.key() else { continue };
                // pax records carry ids too large for the header
                let number = ext.value().ok().and_then(|v| v.parse::<u32>().ok());
                match (key, number) {
                    ("uid", Some(v)) => meta.uid = v,
                    ("gid", Some(v)) => meta.gid = v,
                    _ => {}
                }
                if let Some(xattr) = key.strip_prefix("SCHILY.xattr.") {
                    // overlayfs reads its own trusted.overlay.* xattrs (redirects, metacopy): a
                    // layer may not set them; whiteouts and opaque dirs come only from .wh. entries
                    if !xattr.starts_with("trusted.overlay.") {
                        meta.xattrs.push((xattr.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        meta
    }
}

struct Unpacker<'a> {
    layer: &'a str,
    root: OwnedFd,
    /// The last parent directory walked to, kept while entries stay in it.
    cached: Option<(Vec<OsString>, OwnedFd)>,
    size: u64,
    /// Directories' mtimes, set again at the end: creating their entries changed them.
    dir_times: Vec<(Vec<OsString>, i64)>,
}

enum Walk {
    Create,
    Existing,
}

impl Unpacker<'_> {
    fn err(&self, entry: &str, op: &'static str, source: std::io::Error) -> ImageError {
        ImageError::Unpack {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            op,
            source,
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: &str) -> ImageError {
        ImageError::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        }
    }

    /// An entry's name as components, refusing what could leave the layer.
    fn components(&self, name: &[u8]) -> Result<Vec<OsString>, ImageError> {
        let shown = String::from_utf8_lossy(name);
        if name.starts_with(b"/") {
            return Err(self.unsafe_entry(&shown, "absolute name"));
        }
        let mut out = Vec::new();
        for c in name.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(self.unsafe_entry(&shown, "'..' in the name")),
                c => out.push(OsStr::from_bytes(c).to_os_string()),
            }
        }
        Ok(out)
    }

    /// The directory holding `parents`, walked from the layer's root without following a
    /// symlink; missing directories are created (tar archives may omit them) when asked.
    fn parent(&mut self, entry: &str, parents: &[OsString], walk: Walk) -> Result<RawFd, ImageError> {
        if self.cached.as_ref().is_some_and(|(p, _)| p.as_slice() == parents) {
            if let Some((_, fd)) = &self.cached {
                return Ok(fd.as_raw_fd());
            }
        }
        self.cached = None;
        let mut current: Option<OwnedFd> = None;
        for c in parents {
            let dirfd = current.as_ref().map_or(self.root.as_raw_fd(), |f| f.as_raw_fd());
            match fstatat(Some(dirfd), c.as_os_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    return Err(self.unsafe_entry(entry, "a parent directory is a symlink"))
                }
                Ok(_) => return Err(self.unsafe_entry(entry, "a parent is not a directory")),
                Err(Errno::ENOENT) if matches!(walk, Walk::Create) => {
                    mkdirat(Some(dirfd), c.as_os_str(), Mode::from_bits_truncate(0o755))
                        .map_err(|e| self.err(entry, "create parent directory", e.into()))?;
                }
                Err(e) => return Err(self.err(entry, "stat parent", e.into())),
            }
            let next = open_dir(Some(dirfd), c).map_err(|e| self.err(entry, "open parent", e.into()))?;
            current = Some(next);
        }
        let fd = match current {
            Some(fd) => fd,
            None => nix::unistd::dup(self.root.as_raw_fd())
                // SAFETY: dup just returned this fd, and nothing else owns it.
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .map_err(|e| self.err(entry, "dup", e.into()))?,
        };
        let raw = fd.as_raw_fd();
        self.cached = Some((parents.to_vec(), fd));
        Ok(raw)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ImageError> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(()); // archive-wide pax records (a comment, git archive's commit id)
        }
        let meta = Meta::of(&mut entry);
        let mut comps = self.components(&raw_name)?;
        let Some(last) = comps.pop() else {
            // the layer's root itself ("./"): only a directory, whose attributes apply to the root
            if kind != EntryType::Directory {
                return Err(self.unsafe_entry(&name, "a non-directory entry for the layer's root"));
            }
            let fd = self.root.as_raw_fd();
            self.dir_times.push((Vec::new(), meta.mtime));
            return self.attributes(&name, &meta, fd);
        };
        let last_bytes = last.as_bytes();
        let parent = self.parent(&name, &comps, Walk::Create)?;

        if last_bytes == OPAQUE.as_bytes() {
            return set_xattr(parent, "trusted.overlay.opaque", b"y")
                .map_err(|e| self.err(&name, "set trusted.overlay.opaque", e));
        }
        if last_bytes.starts_with(b".wh..wh.") {
            return Ok(()); // aufs bookkeeping (.wh..wh.plnk and the like): nothing to stack
        }
        if let Some(hidden) = last_bytes.strip_prefix(b".wh.") {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.unsafe_entry(&name, "a whiteout of nothing"));
            }
            let hidden = OsStr::from_bytes(hidden);
            self.remove(&name, parent, hidden)?;
            return mknodat(Some(parent), hidden, SFlag::S_IFCHR, Mode::empty(), libc::makedev(0, 0))
                .map_err(|e| self.err(&name, "create whiteout", e.into()));
        }

        let existing = fstatat(Some(parent), last.as_os_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        let existing_dir = existing.is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        if existing.is_ok() && !(kind == EntryType::Directory && existing_dir) {
            self.remove(&name, parent, &last)?;
        }
        let perm = Mode::from_bits_truncate(0o600);
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let fd = openat(
                    Some(parent),
                    last.as_os_str(),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    perm,
                )
                .map_err(|e| self.err(&name, "create file", e.into()))?;
                // SAFETY: openat just returned this fd, and nothing else owns it.
                let mut file = unsafe { File::from_raw_fd(fd) };
                let n = std::io::copy(&mut entry, &mut file).map_err(|e| self.err(&name, "write file", e))?;
                self.size += n;
                self.attributes(&name, &meta, file.as_raw_fd())
            }
            EntryType::Directory => {
                if !existing_dir {
                    mkdirat(Some(parent), last.as_os_str(), Mode::from_bits_truncate(0o700))
                        .map_err(|e| self.err(&name, "create directory", e.into()))?;
                }
                let dir = open_dir(Some(parent), &last).map_err(|e| self.err(&name, "open directory", e.into()))?;
                let mut path = comps.clone();
                path.push(last.clone());
                self.dir_times.push((path, meta.mtime));
                self.attributes(&name, &meta, dir.as_raw_fd())
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&name, "a symlink without a target"))?
                    .into_owned();
                symlinkat(OsStr::from_bytes(&target), Some(parent), last.as_os_str())
                    .map_err(|e| self.err(&name, "create symlink", e.into()))?;
                self.chown_at(&name, &meta, parent, &last)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&name, "a hard link without a target"))?
                    .into_owned();
                let mut tcomps = self.components(&target)?;
                let tlast = tcomps
                    .pop()
                    .ok_or_else(|| self.unsafe_entry(&name, "a hard link to the layer's root"))?;
                // the target's parent fd, held apart from the entry's own (which the walk caches)
                let tparent = self.parent(&name, &tcomps, Walk::Existing)?;
                let tparent = nix::unistd::dup(tparent)
                    // SAFETY: dup just returned this fd, and nothing else owns it.
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                    .map_err(|e| self.err(&name, "dup", e.into()))?;
                let parent = self.parent(&name, &comps, Walk::Create)?;
                match fstatat(
                    Some(tparent.as_raw_fd()),
                    tlast.as_os_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                        return Err(self.unsafe_entry(&name, "a hard link to a directory"))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(self.err(&name, "hard link target", e.into())),
                }
                linkat(
                    Some(tparent.as_raw_fd()),
                    tlast.as_os_str(),
                    Some(parent),
                    last.as_os_str(),
                    nix::fcntl::AtFlags::empty(),
                )
                .map_err(|e| self.err(&name, "create hard link", e.into()))
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                        let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                        let sflag = if kind == EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (sflag, libc::makedev(major, minor))
                    }
                };
                mknodat(Some(parent), last.as_os_str(), sflag, perm, dev)
                    .map_err(|e| self.err(&name, "create device node", e.into()))?;
                self.chown_at(&name, &meta, parent, &last)?;
                let mode = Mode::from_bits_truncate(meta.mode & 0o7777);
                fchmodat(Some(parent), last.as_os_str(), mode, FchmodatFlags::FollowSymlink)
                    .map_err(|e| self.err(&name, "chmod", e.into()))
            }
            other => Err(self.unsafe_entry(&name, &format!("unsupported tar entry type {other:?}"))),
        }
    }

    fn chown_at(&self, name: &str, meta: &Meta, parent: RawFd, last: &OsStr) -> Result<(), ImageError> {
        let (uid, gid) = (meta.uid, meta.gid);
        fchownat(
            Some(parent),
            last,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err(name, "chown", e.into()))
    }

    /// Owner, mode (after the owner: chown clears set-id bits), xattrs, mtime.
    fn attributes(&self, name: &str, meta: &Meta, fd: RawFd) -> Result<(), ImageError> {
        fchown(fd, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
            .map_err(|e| self.err(name, "chown", e.into()))?;
        fchmod(fd, Mode::from_bits_truncate(meta.mode & 0o7777)).map_err(|e| self.err(name, "chmod", e.into()))?;
        for (key, value) in &meta.xattrs {
            match set_xattr(fd, key, value) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(self.err(name, "set xattr", e)),
                Ok(()) => {}
            }
        }
        let t = TimeSpec::new(meta.mtime, 0);
        futimens(fd, &t, &t).map_err(|e| self.err(name, "set mtime", e.into()))
    }

    fn restore_dir_times(&mut self) -> Result<(), ImageError> {
        for (mut path, mtime) in std::mem::take(&mut self.dir_times) {
            let shown = path.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/");
            let t = TimeSpec::new(mtime, 0);
            let dir = match path.pop() {
                None => nix::unistd::dup(self.root.as_raw_fd())
                    // SAFETY: dup just returned this fd, and nothing else owns it.
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                Some(last) => {
                    let parent = self.parent(&shown, &path, Walk::Existing)?;
                    open_dir(Some(parent), &last)
                }
            };
            match dir {
                Ok(dir) => futimens(dir.as_raw_fd(), &t, &t).map_err(|e| self.err(&shown, "set mtime", e.into()))?,
                // replaced by a later entry of the layer: its own attributes stand
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                Err(e) => return Err(self.err(&shown, "open directory", e.into())),
            }
        }
        Ok(())
    }

    /// Removes `name` under `parent` (a directory with all it holds), without following symlinks.
    fn remove(&self, entry: &str, parent: RawFd, name: &OsStr) -> Result<(), ImageError> {
        // The walk's cached directory is `parent` itself, never below `name`: it stays valid.
        remove_at(parent, name).map_err(|e| self.err(entry, "remove the existing entry", e.into()))
    }
}

fn remove_at(parent: RawFd, name: &OsStr) -> Result<(), Errno> {
    match fstatat(Some(parent), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            let dir = open_dir(Some(parent), name)?;
            let mut listing = nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd())?)?;
            let children: Vec<OsString> = listing
                .iter()
                .filter_map(Result::ok)
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
                .filter(|n| n != "." && n != "..")
                .collect();
            for child in children {
                remove_at(dir.as_raw_fd(), &child)?;
            }
            unlinkat(Some(parent), name, UnlinkatFlags::RemoveDir)
        }
        Ok(_) => unlinkat(Some(parent), name, UnlinkatFlags::NoRemoveDir),
    }
}

fn set_xattr(fd: RawFd, key: &str, value: &[u8]) -> std::io::Result<()> {
    let key = CString::new(key).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: key is a NUL-terminated string and value a live slice of value.len() bytes, both
    // outliving the call; fd is open.
    let r = unsafe { libc::fsetxattr(fd, key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
