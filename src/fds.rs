//! Fd hygiene: nothing but stdio and the fds the caller asked to preserve reaches the workload.

use std::os::fd::RawFd;

/// Marks every fd from `first` upward close-on-exec. Used at the start of create (so nothing
/// the caller leaked can ride along) and as the last step before execve.
pub fn cloexec_from(first: RawFd) {
    // SAFETY: close_range only changes fd flags.
    let r = unsafe {
        libc::close_range(
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    if r != 0 {
        // Kernels before 5.11: walk the open fds instead.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<RawFd> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            for fd in fds.into_iter().filter(|fd| *fd >= first) {
                // SAFETY: setting FD_CLOEXEC on a possibly-closed fd is harmless.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

/// Clears close-on-exec on the preserved fds 3..3+count.
pub fn keep(count: u32) {
    for fd in 3..3 + count as RawFd {
        // SAFETY: clearing fd flags; an fd that is not open just fails with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
}

/// How many fds systemd socket activation passes (LISTEN_FDS), which runc also preserves.
pub fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
