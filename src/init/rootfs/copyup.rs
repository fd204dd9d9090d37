//! `tmpcopyup` (a runc/crun mount option): a tmpfs mounted over a directory of the image
//! starts with a copy of what the image had there. Copied fd to fd, never following symlinks.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::sys;

fn open_dir(parent: BorrowedFd, name: &CStr) -> std::io::Result<OwnedFd> {
    sys::openat2(
        parent,
        name,
        (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) as u64,
        0,
        libc::RESOLVE_BENEATH,
    )
}

/// Copies the tree under `src` (the directory the tmpfs now hides) into `dst` (the new tmpfs).
pub fn copy_tree(src: BorrowedFd, dst: BorrowedFd, depth: u32) -> Result<()> {
    if depth > 64 {
        return Err(Error::Init("tmpcopyup: directory tree too deep".into()));
    }
    let src_dir = open_dir(src, c".").map_err(|e| Error::sys("tmpcopyup: open source", e))?;
    let mut dir = nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(src_dir))
        .map_err(|e| Error::sys("tmpcopyup: read source", e))?;
    let entries: Vec<(std::ffi::CString, Option<nix::dir::Type>)> = dir
        .iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != c"." && e.file_name() != c"..")
        .map(|e| (e.file_name().to_owned(), e.file_type()))
        .collect();
    let src_fd = dir.as_raw_fd();
    for (name, _) in entries {
        // SAFETY: stat is plain data filled by fstatat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid dirfd, NUL-terminated name, AT_SYMLINK_NOFOLLOW.
        if unsafe { libc::fstatat(src_fd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            continue;
        }
        let what = || format!("tmpcopyup {}", name.to_string_lossy());
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                // SAFETY: valid dirfd and NUL-terminated name.
                if unsafe { libc::mkdirat(dst.as_raw_fd(), name.as_ptr(), st.st_mode & 0o7777) } != 0 {
                    return Err(Error::last_os(what()));
                }
                // SAFETY: a plain borrow of the directory stream's fd for the duration of the call.
                let sub_src =
                    open_dir(unsafe { BorrowedFd::borrow_raw(src_fd) }, &name).map_err(|e| Error::sys(what(), e))?;
                let sub_dst = open_dir(dst, &name).map_err(|e| Error::sys(what(), e))?;
                copy_tree(sub_src.as_fd(), sub_dst.as_fd(), depth + 1)?;
            }
            libc::S_IFREG => {
                // SAFETY: valid dirfd and name; O_NOFOLLOW.
                let from = unsafe {
                    libc::openat(
                        src_fd,
                        name.as_ptr(),
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                };
                if from < 0 {
                    return Err(Error::last_os(what()));
                }
                // SAFETY: the kernel just returned this fd.
                let from = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(from) });
                // SAFETY: valid dirfd and name; O_EXCL|O_NOFOLLOW on the fresh tmpfs.
                let to = unsafe {
                    libc::openat(
                        dst.as_raw_fd(),
                        name.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                        st.st_mode & 0o7777,
                    )
                };
                if to < 0 {
                    return Err(Error::last_os(what()));
                }
                // SAFETY: the kernel just returned this fd.
                let mut to = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(to) });
                std::io::copy(&mut &from, &mut to).map_err(|e| Error::sys(what(), e))?;
            }
            libc::S_IFLNK => {
                let mut buf = vec![0u8; libc::PATH_MAX as usize];
                // SAFETY: buf is valid for its length.
                let n = unsafe { libc::readlinkat(src_fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    return Err(Error::last_os(what()));
                }
                buf.truncate(n.unsigned_abs());
                let target = std::ffi::CString::new(buf).map_err(|_| Error::Init(what()))?;
                // SAFETY: valid dirfd and NUL-terminated strings.
                if unsafe { libc::symlinkat(target.as_ptr(), dst.as_raw_fd(), name.as_ptr()) } != 0 {
                    return Err(Error::last_os(what()));
                }
            }
            // Devices, fifos and sockets are not copied (runc copies regular content only too).
            _ => continue,
        }
        // SAFETY: valid dirfd and name; ownership as in the image, without following links.
        unsafe {
            libc::fchownat(
                dst.as_raw_fd(),
                name.as_ptr(),
                st.st_uid,
                st.st_gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
    }
    Ok(())
}
