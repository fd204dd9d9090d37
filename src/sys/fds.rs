//! Fd hygiene: nothing but stdio and the fds the caller asked to preserve reaches the workload.

use std::os::fd::RawFd;
use std::sync::OnceLock;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::error::{Error, Result};

/// The first fd from 3 up that was not open when moor started (see [`note_inherited`]).
static INHERITED_END: OnceLock<RawFd> = OnceLock::new();

fn first_closed_from_3() -> RawFd {
    let mut fd = 3;
    // F_GETFD only reads fd flags; a closed fd answers EBADF. The walk ends at the first gap,
    // so it is bounded by the number of fds the caller passed.
    while fcntl(fd, FcntlArg::F_GETFD).is_ok() {
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
    // Setting FD_CLOEXEC on a possibly-closed fd is harmless.
    let mark = |fd: RawFd| {
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
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
            let soft =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
            let top = RawFd::try_from(soft.min(1 << 20)).unwrap_or(1 << 20);
            (RawFd::try_from(first).unwrap_or(RawFd::MAX)..top).for_each(mark);
        }
    }
}

/// Clears close-on-exec on the preserved fds 3..3+count.
pub fn keep(count: u32) {
    for fd in 3..3 + i64::from(count) {
        let Ok(fd) = RawFd::try_from(fd) else { return };
        // An fd that is not open just fails with EBADF.
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()));
    }
}

/// How many fds systemd socket activation passed to this process (fds 3..3+N), kept open into
/// the container like `--preserve-fds`. As with sd_listen_fds(3) and runc, `LISTEN_FDS` counts
/// only when `LISTEN_PID` names this process, so a variable inherited from a socket-activated
/// ancestor never lets that ancestor's fds reach a workload.
///
/// For the CLI (a process that may be socket-activated itself): the library never reads the
/// environment; its callers pass the sockets as [`crate::CreateOptions::extra_fds`].
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
pub(crate) fn listen_env(count: u32) -> Vec<String> {
    match count {
        0 => Vec::new(),
        n => vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()],
    }
}

/// The standard streams of a container's process, given by the caller as its own fds; without
/// them the process inherits the runtime's fds 0-2.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: std::os::fd::OwnedFd,
    pub stdout: std::os::fd::OwnedFd,
    pub stderr: std::os::fd::OwnedFd,
}

/// Placeholders in the free slots among fds 3..3+n, held from the start of an operation until
/// its clone: every fd moor opens meanwhile gets a higher number, so the child can move the
/// caller's extra fds to 3..3+n (see [`install`]) without clobbering one of moor's own.
pub(crate) struct Reserved(#[allow(dead_code)] Vec<std::os::fd::OwnedFd>);

/// The fd number the `i`th extra fd gets (3 + i).
fn slot(i: usize) -> Result<RawFd> {
    RawFd::try_from(i)
        .ok()
        .and_then(|i| i.checked_add(3))
        .ok_or_else(|| Error::sys("extra fds", std::io::Error::from_raw_os_error(libc::EMFILE)))
}

pub(crate) fn reserve_low(n: usize) -> Result<Reserved> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut held = Vec::new();
    if n == 0 {
        return Ok(Reserved(held));
    }
    let null = std::fs::File::open("/dev/null").map_err(|e| Error::path("cannot open", "/dev/null", e))?;
    for fd in 3..slot(n)? {
        // EBADF means the slot is free.
        if fcntl(fd, FcntlArg::F_GETFD).is_ok() || fd == null.as_raw_fd() {
            continue;
        }
        // The lowest free fd from `fd` on: `fd` itself.
        let got = fcntl(null.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(fd))
            .map_err(|e| Error::sys("reserve the extra fds' slots", e))?;
        // SAFETY: F_DUPFD_CLOEXEC just returned this fd; nothing else owns it.
        held.push(unsafe { OwnedFd::from_raw_fd(got) });
    }
    Ok(Reserved(held))
}

/// In the new process: the caller's stdio (if given) becomes fds 0-2 and its extra fds become
/// 3, 4, ... (inherited by the workload; everything above is closed at its execve). Each is
/// first copied above every target, so sources that sit on each other's targets are safe.
pub(crate) fn install(stdio: Option<&Stdio>, extra: &[std::os::fd::OwnedFd]) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut moves: Vec<(RawFd, RawFd)> = Vec::new();
    if let Some(s) = stdio {
        moves.extend([
            (s.stdin.as_raw_fd(), 0),
            (s.stdout.as_raw_fd(), 1),
            (s.stderr.as_raw_fd(), 2),
        ]);
    }
    for (i, fd) in extra.iter().enumerate() {
        moves.push((fd.as_raw_fd(), slot(i)?));
    }
    let above = slot(extra.len())?;
    let mut temps = Vec::with_capacity(moves.len());
    for (src, _) in &moves {
        // The copy is ours until closed below.
        let tmp = fcntl(*src, FcntlArg::F_DUPFD_CLOEXEC(above))
            .map_err(|e| Error::sys(format!("duplicate the caller's fd {src}"), e))?;
        temps.push(tmp);
    }
    for (tmp, (src, target)) in temps.into_iter().zip(moves) {
        // dup2 onto a target slot: the reservation made sure none of moor's own fds is there;
        // the result is inheritable across execve.
        let r = nix::unistd::dup2(tmp, target);
        let _ = nix::unistd::close(tmp);
        r.map_err(|e| Error::sys(format!("move the caller's fd {src} to {target}"), e))?;
    }
    Ok(())
}
