//! The process that enters a container must never run from a writable inode of the moor
//! binary (CVE-2019-5736): a container that reaches it through /proc/PID/exe could overwrite
//! the host's moor. Commands that enter a container (create, run, exec) therefore re-execute
//! moor once from a read-only view of itself: a detached, read-only bind mount of the binary
//! (open_tree + mount_setattr: no copy), or where that is not allowed a sealed memfd copy.
//! A moor already running from a read-only mount or a sealed memfd does nothing; every other
//! command runs directly, at no cost.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::error::{Error, Result};

const SEALS: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// True when this process already runs from a binary nobody can write: a read-only mount or a
/// sealed memfd.
pub fn is_protected() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    if nix::sys::statvfs::fstatvfs(&exe).is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)) {
        return true;
    }
    // A regular file answers EINVAL.
    fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS).is_ok_and(|seals| seals & SEALS == SEALS)
}

/// Re-executes the current command from a read-only view of the binary, unless it already runs
/// from one. Returns only when already protected, or with the error of the last attempt.
pub fn ensure_protected() -> Result<()> {
    if is_protected() {
        return Ok(());
    }
    if let Ok(view) = read_only_view() {
        exec_self(view.as_raw_fd());
    }
    let copy = sealed_copy()?;
    exec_self(copy.as_raw_fd());
    Err(Error::last_os("re-execute moor from a protected copy"))
}

/// A detached bind mount of the binary, made read-only before anything can reach it: writes
/// through /proc/PID/exe then fail with EROFS, and only the host could remount it.
fn read_only_view() -> Result<OwnedFd> {
    let tree = crate::sys::open_tree(libc::AT_FDCWD, c"/proc/self/exe", libc::OPEN_TREE_CLONE)
        .map_err(|e| Error::sys("clone a mount of moor", e))?;
    crate::sys::mount_setattr(tree.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
        .map_err(|e| Error::sys("make moor's mount read-only", e))?;
    Ok(tree)
}

fn sealed_copy() -> Result<File> {
    let mut exe = File::open("/proc/self/exe").map_err(|e| Error::sys("open /proc/self/exe", e))?;
    let fd = memfd_create(
        c"moor",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(|e| Error::sys("memfd_create", e))?;
    let mut copy = File::from(fd);
    std::io::copy(&mut exe, &mut copy).map_err(|e| Error::sys("copy moor into a memfd", e))?;
    fcntl(
        copy.as_raw_fd(),
        FcntlArg::F_ADD_SEALS(SealFlag::from_bits_retain(SEALS)),
    )
    .map_err(|e| Error::sys("seal the moor memfd", e))?;
    Ok(copy)
}

/// execveat of `fd` with our own argv and environment; returns only on failure.
fn exec_self(fd: RawFd) {
    let args: Vec<std::ffi::CString> = std::env::args_os()
        .filter_map(|a| std::ffi::CString::new(a.into_encoded_bytes()).ok())
        .collect();
    let env: Vec<std::ffi::CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            std::ffi::CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated strings that outlive
    // the call; AT_EMPTY_PATH executes the file behind `fd` itself.
    unsafe { libc::execveat(fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH) };
}
