//! `tmpcopyup` (a runc/crun mount option): a tmpfs mounted over a directory of the image
//! starts with a copy of what the image had there. Copied fd to fd, never following symlinks.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode};

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
        return Err(Error::refused("tmpcopyup", "directory tree too deep"));
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
        let Ok(st) = fstatat(Some(src_fd), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let what = || format!("tmpcopyup {}", name.to_string_lossy());
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                mkdirat(
                    Some(dst.as_raw_fd()),
                    name.as_c_str(),
                    Mode::from_bits_truncate(st.st_mode & 0o7777),
                )
                .map_err(|e| Error::sys(what(), e))?;
                // SAFETY: a plain borrow of the directory stream's fd for the duration of the call.
                let sub_src =
                    open_dir(unsafe { BorrowedFd::borrow_raw(src_fd) }, &name).map_err(|e| Error::sys(what(), e))?;
                let sub_dst = open_dir(dst, &name).map_err(|e| Error::sys(what(), e))?;
                copy_tree(sub_src.as_fd(), sub_dst.as_fd(), depth + 1)?;
            }
            libc::S_IFREG => {
                let from = openat(
                    Some(src_fd),
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::sys(what(), e))?;
                // SAFETY: openat just returned this fd; nothing else owns it.
                let from = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(from) });
                // O_EXCL|O_NOFOLLOW on the fresh tmpfs.
                let to = openat(
                    Some(dst.as_raw_fd()),
                    name.as_c_str(),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(st.st_mode & 0o7777),
                )
                .map_err(|e| Error::sys(what(), e))?;
                // SAFETY: openat just returned this fd; nothing else owns it.
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
                let target =
                    std::ffi::CString::new(buf).map_err(|_| Error::refused(what(), "a NUL byte in the link"))?;
                nix::unistd::symlinkat(target.as_c_str(), Some(dst.as_raw_fd()), name.as_c_str())
                    .map_err(|e| Error::sys(what(), e))?;
            }
            // Devices, fifos and sockets are not copied (runc copies regular content only too).
            _ => continue,
        }
        // Ownership as in the image, without following links.
        let _ = nix::unistd::fchownat(
            Some(dst.as_raw_fd()),
            name.as_c_str(),
            Some(nix::unistd::Uid::from_raw(st.st_uid)),
            Some(nix::unistd::Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}
