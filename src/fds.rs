//! Fd hygiene: nothing but stdio and the fds the caller asked to preserve reaches the workload.

use std::os::fd::RawFd;
use std::sync::OnceLock;

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

/// How many fds systemd socket activation passed to this process (fds 3..3+N), kept open into
/// the container like `--preserve-fds`. As with sd_listen_fds(3) and runc, `LISTEN_FDS` counts
/// only when `LISTEN_PID` names this process, so a variable inherited from a socket-activated
/// ancestor never lets that ancestor's fds reach a workload.
///
/// Decided once, in the runtime's own process (the CLI and [`crate::Runtime::create`] ask before
/// the clone): init is a copy of that process under another pid and reuses the answer.
pub fn listen_fds() -> u32 {
    static COUNT: OnceLock<u32> = OnceLock::new();
    *COUNT.get_or_init(|| {
        let for_us = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
        if !for_us {
            return 0;
        }
        std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// What runc appends to the init's `process.env` when it was socket-activated, so that the
/// workload accepts the fds: `LISTEN_FDS=N` and `LISTEN_PID=1` (the workload is pid 1 of its pid
/// namespace). Empty when there is nothing to pass. `exec` gets neither the fds nor these.
pub fn listen_env() -> Vec<String> {
    match listen_fds() {
        0 => Vec::new(),
        n => vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()],
    }
}
