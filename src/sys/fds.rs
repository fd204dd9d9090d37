//! Fd hygiene: nothing but stdio and the fds the caller asked to preserve reaches the workload.

use std::os::fd::RawFd;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The first fd from 3 up that was not open when moor started (see [`note_inherited`]).
static INHERITED_END: OnceLock<RawFd> = OnceLock::new();

fn first_closed_from_3() -> RawFd {
    let mut fd = 3;
    // SAFETY: F_GETFD only reads fd flags; a closed fd answers EBADF. The walk ends at the first
    // gap, so it is bounded by the number of fds the caller passed.
    while unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
        fd += 1;
    }
    fd
}

/// Notes which fds the caller passed (3, 4, ... up to the first closed one), before moor opens
/// any of its own (the log file, the state directory): only those may be preserved.
pub fn note_inherited() {
    INHERITED_END.get_or_init(first_closed_from_3);
}

/// Checks that the socket-activation fds and `preserve` more (3, 4, ...) were all passed by the
/// caller, as runc does (it stats each one): a fd moor opened itself must never be handed to the
/// workload, and the check also bounds how many fds the workload can be given.
pub fn check_preserved(preserve: u32) -> Result<()> {
    let end = u64::try_from(INHERITED_END.get().copied().unwrap_or_else(first_closed_from_3)).unwrap_or(0);
    let base = 3 + u64::from(listen_fds());
    let want = base + u64::from(preserve);
    if want <= end {
        return Ok(());
    }
    let what = if end < base {
        format!("LISTEN_FDS={}: fd {end} is not open", listen_fds())
    } else {
        format!(
            "--preserve-fds {preserve}: unable to stat preserved-fd {} (of {preserve}): fd {end} is not open",
            end - base
        )
    };
    Err(Error::sys(what, std::io::Error::from_raw_os_error(libc::EBADF)))
}

/// For commands that put a process into a container: checks the preserved fds and marks every
/// other inherited fd close-on-exec, so nothing the caller leaked can ride along.
pub fn seal_inherited(preserve: u32) -> Result<()> {
    check_preserved(preserve)?;
    cloexec_from(3 + preserve + listen_fds());
    Ok(())
}

/// Marks every fd from `first` upward close-on-exec. Used at the start of create (so nothing
/// the caller leaked can ride along) and before the workload's seccomp filter goes in.
pub fn cloexec_from(first: u32) {
    // CLOSE_RANGE_CLOEXEC is 4.
    #[allow(clippy::cast_possible_wrap)]
    let cloexec = libc::CLOSE_RANGE_CLOEXEC as libc::c_int;
    // SAFETY: close_range only changes fd flags.
    let r = unsafe { libc::close_range(first, libc::c_uint::MAX, cloexec) };
    if r == 0 {
        return;
    }
    // Kernels before 5.11: walk the open fds instead, or every fd below the fd limit.
    let mark = |fd: RawFd| {
        // SAFETY: setting FD_CLOEXEC on a possibly-closed fd is harmless.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    };
    match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => {
            let fds: Vec<RawFd> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            fds.into_iter()
                .filter(|fd| i64::from(*fd) >= i64::from(first))
                .for_each(mark);
        }
        Err(_) => {
            // SAFETY: getrlimit fills a plain struct.
            let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
            // SAFETY: valid out pointer.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
            let top = RawFd::try_from(lim.rlim_cur.min(1 << 20)).unwrap_or(1 << 20);
            (RawFd::try_from(first).unwrap_or(RawFd::MAX)..top).for_each(mark);
        }
    }
}

/// Clears close-on-exec on the preserved fds 3..3+count.
pub fn keep(count: u32) {
    for fd in 3..3 + i64::from(count) {
        let Ok(fd) = RawFd::try_from(fd) else { return };
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
