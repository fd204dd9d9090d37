//! Loading a compiled filter with seccomp(2).

use std::os::fd::{FromRawFd, OwnedFd};

use crate::{Compiled, Error};

/// Loads `c` into the calling thread (all threads with TSYNC) with `seccomp(2)`.
///
/// Never sets no_new_privs: the caller does that in its own order (without it, and without
/// CAP_SYS_ADMIN in the user namespace, the kernel answers EACCES). Allocates nothing, so it may
/// run in a child after fork().
pub(crate) fn install(c: &Compiled) -> Result<Option<OwnedFd>, Error> {
    // compile() refuses programs over 4096 instructions, so this cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let len = c.program.len() as libc::c_ushort;
    let prog = libc::sock_fprog {
        len,
        filter: c.program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points to `c.program`, which outlives the call; the kernel copies the
    // instructions and does not write through the pointer. The other arguments are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            libc::c_ulong::from(c.flags),
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        let source = std::io::Error::last_os_error();
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) => " (no_new_privs is not set and the caller lacks CAP_SYS_ADMIN)",
            Some(libc::EINVAL) => " (a flag or action is not supported by this kernel)",
            Some(libc::ESRCH) => " (TSYNC: another thread could not be synchronized)",
            _ => "",
        };
        return Err(Error::Install {
            flags: c.flags,
            source,
            hint,
        });
    }
    let new_listener = c.flags & crate::compile::flag(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER) != 0;
    if new_listener {
        let fd = libc::c_int::try_from(ret).map_err(|_| Error::Install {
            flags: c.flags,
            source: std::io::Error::from_raw_os_error(libc::EBADF),
            hint: " (the kernel returned an invalid listener fd)",
        })?;
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a non-negative return is a new fd that
        // nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    if ret > 0 {
        // TSYNC without TSYNC_ESRCH reports the thread that could not be synchronized.
        return Err(Error::Tsync(ret));
    }
    Ok(None)
}
