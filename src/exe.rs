//! The process that enters a container must never run from a writable inode of the moor
//! binary (CVE-2019-5736): a container that reaches it through /proc/PID/exe could overwrite
//! the host's moor. Commands that enter a container (create, run, exec) therefore re-execute
//! moor once from a sealed memfd copy; every other command runs directly, at no cost.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

const SEALS: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// True when this process already runs from a sealed memfd.
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS only reads the file's seals; a regular file answers EINVAL.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-executes the current command from a sealed memfd copy of the binary, unless already
/// sealed. Returns only on error or when already sealed.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let mut exe = File::open("/proc/self/exe").map_err(|e| Error::sys("open /proc/self/exe", e))?;
    // SAFETY: memfd_create with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"moor".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(Error::last_os("memfd_create"));
    }
    // SAFETY: the kernel just returned this fd.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut copy = File::from(memfd);
    std::io::copy(&mut exe, &mut copy).map_err(|e| Error::sys("copy moor into a memfd", e))?;
    // SAFETY: F_ADD_SEALS with a valid seal mask on our memfd.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(Error::last_os("seal the moor memfd"));
    }
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
    // the call; AT_EMPTY_PATH executes the memfd itself.
    unsafe {
        libc::execveat(
            copy.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(Error::last_os("re-execute moor from a sealed memfd"))
}
