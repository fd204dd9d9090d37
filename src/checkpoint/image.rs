//! The image directory: where CRIU writes a checkpoint, and what moor adds to it (the
//! container's stdio as `descriptors.json`, runc's file and format). On restore the directory
//! is hostile input: it may come from another machine or another user. Everything moor reads
//! in it is opened relative to the directory's fd, never following a symlink, bounded in size,
//! and checked before CRIU is pointed at it; errors name the file.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// runc's name: a checkpoint made by either runtime restores with the other.
pub const DESCRIPTORS: &str = "descriptors.json";
/// Where CRIU links a dump to its parent (`--prev-images-dir`).
const PARENT_LINK: &str = "parent";
/// descriptors.json holds three short strings; anything larger is not one moor wrote.
const MAX_DESCRIPTORS: u64 = 64 * 1024;

/// An image (or work) directory, held open.
pub struct ImageDir {
    pub path: PathBuf,
    fd: OwnedFd,
}

/// Creates `path` (and its parents) when missing, mode 0700 as CRIU's images hold the
/// container's memory, and opens it. Relative paths are made absolute from the current
/// directory: CRIU resolves `--prev-images-dir` from the images directory, not from here.
pub fn create_dir(path: &Path, flag: &'static str) -> Result<ImageDir> {
    let path = absolute(path, flag)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&path)
        .map_err(|e| Error::path("cannot create", &path, e))
        .map_err(|e| Error::context(flag, e))?;
    open_dir(&path, flag)
}

/// Opens an existing directory (a symlink to one is followed: it is the caller's own path).
pub fn open_dir(path: &Path, flag: &'static str) -> Result<ImageDir> {
    let path = absolute(path, flag)?;
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::context(flag, Error::path("cannot open", &path, e)))?;
    Ok(ImageDir {
        path,
        fd: OwnedFd::from(fd),
    })
}

use std::os::unix::fs::OpenOptionsExt;

fn absolute(path: &Path, flag: &'static str) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::Flag {
            flag,
            reason: "an empty path".into(),
        });
    }
    std::path::absolute(path).map_err(|e| Error::context(flag, Error::path("cannot resolve", path, e)))
}

/// Checks `--parent-path` as runc does: relative (CRIU resolves it from the images directory),
/// and naming a directory that exists there.
pub fn check_parent(images: &ImageDir, parent: &Path) -> Result<()> {
    if parent.is_absolute() {
        return Err(Error::Flag {
            flag: "--parent-path",
            reason: "must be relative".into(),
        });
    }
    let real = images.path.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Flag {
            flag: "--parent-path",
            reason: format!("invalid --parent-path: stat {}: not a directory", real.display()),
        }),
        Err(e) => Err(Error::Flag {
            flag: "--parent-path",
            reason: format!("invalid --parent-path: stat {}: {e}", real.display()),
        }),
    }
}

impl ImageDir {
    fn name(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `descriptors.json`: what init's fds 0-2 were (`pipe:[N]`, a path, ...), read
    /// from /proc. A symlink planted under that name is not followed.
    pub fn write_descriptors(&self, pid: i32) -> Result<()> {
        let fds: Vec<String> = (0..3)
            .map(|fd| {
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let data = serde_json::to_vec(&fds).map_err(|e| Error::sys("encode descriptors", e))?;
        let file = self.name(DESCRIPTORS);
        let fd = self
            .openat(
                DESCRIPTORS,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
            .map_err(|e| Error::path("cannot write", &file, e))?;
        crate::sys::write_all(fd.as_fd(), &data).map_err(|e| Error::path("cannot write", &file, e))
    }

    /// The pipes among the checkpointed stdio, as (fd, CRIU's key `pipe:[inode]`): restore
    /// hands the caller's fd of the same number to CRIU in their place. Other entries (a path,
    /// /dev/null) CRIU reopens itself. Anything that is not a well-formed pipe key is left out:
    /// a key is passed to CRIU's command line.
    pub fn read_pipes(&self) -> Result<Vec<(i32, String)>> {
        let file = self.name(DESCRIPTORS);
        let data = self.read_small(DESCRIPTORS, MAX_DESCRIPTORS)?;
        let fds: Vec<String> = serde_json::from_slice(&data)
            .map_err(|e| Error::refused(file.display().to_string(), format!("not a JSON list of strings: {e}")))?;
        if fds.len() > 3 {
            return Err(Error::refused(
                file.display().to_string(),
                format!("{} entries, where there are 3 (stdin, stdout, stderr)", fds.len()),
            ));
        }
        Ok((0..).zip(fds).filter(|(_, key)| is_pipe_key(key)).collect())
    }

    /// Refuses names CRIU would follow out of the directory on restore: its log file (CRIU
    /// writes it as root, so a planted symlink would overwrite any host file), and a parent
    /// link that is absolute (a dump's parent lies beside it, never elsewhere on the host).
    pub fn check_for_restore(&self, log_in_here: bool) -> Result<()> {
        if log_in_here {
            if let Some(m) = self.lstat(super::criu::RESTORE_LOG)? {
                if !m.file_type().is_file() {
                    return Err(Error::refused(
                        self.name(super::criu::RESTORE_LOG).display().to_string(),
                        "not a regular file (CRIU would write its log through it)",
                    ));
                }
            }
        }
        if let Some(m) = self.lstat(PARENT_LINK)? {
            let file = self.name(PARENT_LINK);
            if !m.file_type().is_symlink() {
                return Err(Error::refused(
                    file.display().to_string(),
                    "not a symlink to the parent images",
                ));
            }
            let target = std::fs::read_link(&file).map_err(|e| Error::path("cannot read", &file, e))?;
            if target.is_absolute() {
                return Err(Error::refused(
                    file.display().to_string(),
                    format!("points to the absolute path {}", target.display()),
                ));
            }
        }
        Ok(())
    }

    fn lstat(&self, name: &str) -> Result<Option<std::fs::Metadata>> {
        match std::fs::symlink_metadata(self.name(name)) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::path("cannot stat", self.name(name), e)),
        }
    }

    fn openat(&self, name: &str, flags: i32) -> std::io::Result<OwnedFd> {
        let c = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: openat on our directory fd with a NUL-terminated name; the result is checked.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, 0o600) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: openat just returned this fd; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A regular file of the directory, at most `max` bytes, not through a symlink.
    fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let file = self.name(name);
        let fd = self
            .openat(
                name,
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
            .map_err(|e| Error::path("cannot open", &file, e))?;
        let f = std::fs::File::from(fd);
        let m = f.metadata().map_err(|e| Error::path("cannot stat", &file, e))?;
        if !m.file_type().is_file() {
            return Err(Error::refused(file.display().to_string(), "not a regular file"));
        }
        if m.size() > max {
            return Err(Error::refused(
                file.display().to_string(),
                format!("{} bytes, more than the {max} it can be", m.size()),
            ));
        }
        let mut data = Vec::new();
        f.take(max)
            .read_to_end(&mut data)
            .map_err(|e| Error::path("cannot read", &file, e))?;
        Ok(data)
    }
}

/// `pipe:[N]` with N a decimal inode number.
fn is_pipe_key(key: &str) -> bool {
    key.strip_prefix("pipe:[")
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> (PathBuf, ImageDir) {
        let p = std::env::temp_dir().join(format!("moor-unit-img-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        let d = create_dir(&p, "--image-path").unwrap();
        (p, d)
    }

    #[test]
    fn only_well_formed_pipe_keys_reach_criu() {
        assert!(is_pipe_key("pipe:[12345]"));
        for bad in [
            "pipe:[]",
            "pipe:[1a]",
            "pipe:[1]:x",
            "/dev/null",
            "pipe:[1] --x",
            "socket:[1]",
        ] {
            assert!(!is_pipe_key(bad), "{bad}");
        }
    }

    #[test]
    fn descriptors_are_read_back_bounded_and_not_through_a_symlink() {
        let (p, d) = dir("desc");
        std::fs::write(p.join(DESCRIPTORS), br#"["/dev/null","pipe:[42]","pipe:[x]"]"#).unwrap();
        assert_eq!(d.read_pipes().unwrap(), vec![(1, "pipe:[42]".to_string())]);
        std::fs::write(p.join(DESCRIPTORS), br#"["a","b","c","d"]"#).unwrap();
        assert!(d.read_pipes().unwrap_err().to_string().contains(DESCRIPTORS));
        std::fs::write(p.join(DESCRIPTORS), b"{").unwrap();
        assert!(d.read_pipes().unwrap_err().to_string().contains(DESCRIPTORS));
        std::fs::remove_file(p.join(DESCRIPTORS)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join(DESCRIPTORS)).unwrap();
        let e = d.read_pipes().unwrap_err().to_string();
        assert!(e.contains(DESCRIPTORS), "{e}");
        // Writing through the planted symlink fails too, and the target is untouched.
        assert!(d.write_descriptors(nix::unistd::getpid().as_raw()).is_err());
        std::fs::remove_dir_all(&p).unwrap();
    }

    #[test]
    fn a_log_symlink_or_an_absolute_parent_is_refused() {
        let (p, d) = dir("restore");
        d.check_for_restore(true).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", p.join(super::super::criu::RESTORE_LOG)).unwrap();
        assert!(d
            .check_for_restore(true)
            .unwrap_err()
            .to_string()
            .contains("restore.log"));
        d.check_for_restore(false).unwrap();
        std::os::unix::fs::symlink("/etc", p.join(PARENT_LINK)).unwrap();
        assert!(d.check_for_restore(false).unwrap_err().to_string().contains("parent"));
        std::fs::remove_dir_all(&p).unwrap();
    }
}
