//! Path resolution inside the container's root, through fds only: every lookup is an openat2
//! with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS from the rootfs fd, so symlinks planted in a
//! hostile rootfs resolve inside it and can never point moor at the host.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::sys;

const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Error::config("path", format!("{p:?} contains NUL")))
}

/// The components of a container path, without "." and with ".." resolved lexically (openat2
/// would keep it inside the root anyway).
pub fn clean(p: &Path) -> Vec<&std::ffi::OsStr> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Opens `path` inside `root` as an O_PATH fd.
pub fn open_in_root(root: BorrowedFd, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    open_file_in_root(root, path, flags | libc::O_PATH)
}

/// Opens `path` inside `root` with the given open flags (for files moor reads or writes).
pub fn open_file_in_root(root: BorrowedFd, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel: std::path::PathBuf = clean(path).into_iter().collect();
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".").to_path_buf()
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    sys::openat2(root, &c, sys::open_how_flags(flags)?, 0, IN_ROOT)
}

/// Where `path` leads inside `root`, as a clean absolute container path: the part that exists
/// resolved in the root (symlinks included), the rest, which `ensure_in_root` would create as
/// plain directories and files, appended as spelled.
pub fn resolve_in_root(root: BorrowedFd, path: &Path) -> io::Result<PathBuf> {
    let parts = clean(path);
    let root_path = host_path(root)?;
    for n in (0..=parts.len()).rev() {
        let prefix: PathBuf = parts[..n].iter().collect();
        let fd = match open_in_root(root, &prefix, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        // The kernel's name of the inode (components never contain '/', so the prefix test is
        // exact); RESOLVE_IN_ROOT kept it below the root.
        let inside = host_path(fd.as_fd())?
            .strip_prefix(&root_path)
            .map(Path::to_path_buf)
            .map_err(|_| io::Error::from_raw_os_error(libc::EXDEV))?;
        let mut out = PathBuf::from("/").join(inside);
        out.extend(&parts[n..]);
        return Ok(out);
    }
    Err(io::Error::from_raw_os_error(libc::ENOENT))
}

fn host_path(fd: BorrowedFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The kind of inode to create at a mount target that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Opens (creating when missing) the directory chain of `path` inside `root` and the final
/// component as `kind`. Each new inode is made with mkdirat/openat relative to the verified fd
/// of its parent.
pub fn ensure_in_root(root: BorrowedFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    let parts = clean(path);
    let mut dir = dup(root).map_err(|e| Error::sys("dup rootfs fd", e))?;
    for (i, name) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let so_far: std::path::PathBuf = parts[..=i].iter().collect();
        let want_dir = !last || kind == Kind::Dir;
        match open_in_root(root, &so_far, 0) {
            Ok(fd) => {
                if want_dir && !is_dir(fd.as_fd()) {
                    return Err(Error::refused(
                        so_far.display().to_string(),
                        "exists in the rootfs and is not a directory",
                    ));
                }
                dir = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("resolve {} in the rootfs", so_far.display()), e)),
        }
        let cname = cstr(Path::new(name))?;
        if want_dir {
            match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), cname.as_c_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Error::sys(format!("mkdir {} in the rootfs", so_far.display()), e)),
            }
        } else {
            // O_NOFOLLOW so a raced symlink fails.
            let fd = nix::fcntl::openat(
                Some(dir.as_raw_fd()),
                cname.as_c_str(),
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map_err(|e| Error::sys(format!("create {} in the rootfs", so_far.display()), e))?;
            let _ = nix::unistd::close(fd);
        }
        dir = open_in_root(root, &so_far, 0)
            .map_err(|e| Error::sys(format!("open {} in the rootfs", so_far.display()), e))?;
    }
    Ok(dir)
}

pub fn dup(fd: BorrowedFd) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    Ok(nix::sys::stat::fstat(fd.as_raw_fd())?)
}

pub fn is_dir(fd: BorrowedFd) -> bool {
    fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// "/proc/self/fd/N": the path form of an fd for mount(2), valid while the host's /proc is
/// still mounted (before pivot_root).
pub fn fd_path(fd: BorrowedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::clean;
    use crate::init::rootfs::validate::container_path;
    use std::path::Path;

    fn parts(p: &str) -> Vec<&str> {
        clean(Path::new(p)).into_iter().map(|c| c.to_str().unwrap()).collect()
    }

    #[test]
    fn dot_is_dropped_and_dotdot_removes_the_previous_component() {
        assert_eq!(parts("/a/./b/../c"), ["a", "c"]);
        assert_eq!(parts("/a/b/c/../../d"), ["a", "d"]);
    }

    #[test]
    fn dotdot_never_climbs_above_the_root() {
        assert_eq!(parts("/../../etc/passwd"), ["etc", "passwd"]);
        assert_eq!(parts("/a/../../../b"), ["b"]);
        assert!(parts("../..").is_empty());
        assert!(parts("/").is_empty());
    }

    #[test]
    fn repeated_and_trailing_slashes_add_nothing() {
        assert_eq!(parts("//a///b/"), ["a", "b"]);
        assert_eq!(parts("a/b"), parts("/a/b"));
    }

    #[test]
    fn container_paths_are_absolute_and_clean() {
        assert_eq!(container_path(Path::new("../../proc/self")), Path::new("/proc/self"));
        assert_eq!(container_path(Path::new("/dev/./shm/")), Path::new("/dev/shm"));
        assert_eq!(container_path(Path::new("")), Path::new("/"));
    }
}
