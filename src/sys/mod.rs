//! Thin wrappers for the system calls nix does not cover (clone3, openat2, the new mount API,
//! pidfds). Each returns an owned fd or an io::Error carrying errno.

pub mod fault;
pub mod fds;
pub mod pages;
pub mod procfs;
pub mod sha256;
pub mod terminal;
pub mod time;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A non-negative syscall return the kernel defines as an int (an fd or a pid), which the
/// raw syscall interface widens to a long.
#[allow(clippy::cast_possible_truncation)]
pub fn int(ret: libc::c_long) -> libc::c_int {
    ret as libc::c_int
}

/// open(2) flags as open_how's u64: a negative int is no valid set of flags (EINVAL, as the
/// kernel answers unknown bits).
pub fn open_how_flags(flags: libc::c_int) -> io::Result<u64> {
    u64::try_from(flags).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A positive int constant (a clone flag, a signal number) as the u64 clone's arguments take.
#[allow(clippy::cast_sign_loss)]
const fn flag64(f: libc::c_int) -> u64 {
    f as u64
}

fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = int(cvt(ret)?);
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What fork returned: in the parent the child's pid, in the child zero.
pub enum Forked {
    Parent(libc::pid_t),
    Child,
}

/// What clone3 returned: in the parent the child's pid and a pidfd for it, in the child nothing.
pub enum Cloned {
    Parent(libc::pid_t, OwnedFd),
    Child,
}

/// clone3 without a new stack: the child continues like after fork(2), in a copy of the caller's
/// memory. The caller must be single-threaded (see [`crate::spawn::child::ensure_single_threaded`]). The parent
/// always gets a pidfd (CLONE_PIDFD), so it waits for this child and no other.
pub fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<Cloned> {
    let mut args: libc::clone_args = unsafe_zeroed_clone_args();
    let mut pidfd: libc::c_int = -1;
    args.flags = flags | flag64(libc::CLONE_PIDFD);
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    // With CLONE_PARENT the kernel wants no exit signal: the child inherits ours (SIGCHLD).
    args.exit_signal = if flags & flag64(libc::CLONE_PARENT) != 0 {
        0
    } else {
        flag64(libc::SIGCHLD)
    };
    if let Some(fd) = cgroup_fd {
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = u64::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    }
    // SAFETY: clone_args is fully initialised and its size passed, its pidfd field points to a
    // live int; without CLONE_VM the child gets its own copy of memory, so returning twice from
    // this function is the fork(2) contract.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match cvt(ret)? {
        0 => Ok(Cloned::Child),
        // SAFETY: with CLONE_PIDFD the kernel stored a new fd, ours alone, in `pidfd`.
        pid => Ok(Cloned::Parent(int(pid), unsafe { OwnedFd::from_raw_fd(pidfd) })),
    }
}

/// waitid(P_PIDFD, WEXITED): reaps the child behind `pidfd` and returns its exit code, 128+N
/// for death by signal N. Only our own children (ECHILD otherwise).
pub fn pidfd_reap(pidfd: BorrowedFd) -> io::Result<i32> {
    const P_PIDFD: libc::idtype_t = 3;
    loop {
        // SAFETY: siginfo_t is plain data filled by waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let id = libc::id_t::try_from(pidfd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: a valid out pointer; the pidfd is borrowed for the call.
        let ret = unsafe { libc::waitid(P_PIDFD, id, &mut info, libc::WEXITED) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid with WEXITED filled a CLD_* siginfo, whose status field is valid.
        let status = unsafe { info.si_status() };
        return Ok(if info.si_code == libc::CLD_EXITED {
            status
        } else {
            128 + status
        });
    }
}

fn unsafe_zeroed_clone_args() -> libc::clone_args {
    // SAFETY: clone_args is a plain C struct of integers; all-zero is its documented default.
    unsafe { std::mem::zeroed() }
}

/// openat2(2) with the given resolve flags.
pub fn openat2(dirfd: BorrowedFd, path: &CStr, flags: u64, mode: u64, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is a plain C struct; zero is valid for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags | libc::O_CLOEXEC as u64;
    how.mode = mode;
    how.resolve = resolve;
    loop {
        // SAFETY: path is NUL-terminated, how is initialised and its size passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match owned(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r,
        }
    }
}

/// open_tree(2): a detached copy of the mount tree at `path` (or an fd for it).
pub fn open_tree(dirfd: RawFd, path: &CStr, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated; the kernel validates the flags.
    owned(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            path.as_ptr(),
            flags | libc::OPEN_TREE_CLOEXEC,
        )
    })
}

/// move_mount(2) from a detached mount fd onto a target fd (both as empty paths).
pub fn move_mount_fd(from: BorrowedFd, to: BorrowedFd) -> io::Result<()> {
    let empty = c"";
    // SAFETY: both paths are empty NUL-terminated strings and the fds are valid.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    cvt(ret).map(drop)
}

/// mount_setattr(2) on the mount `fd` refers to.
pub fn mount_setattr(fd: BorrowedFd, recursive: bool, set: u64, clear: u64, propagation: u64) -> io::Result<()> {
    mount_setattr_userns(fd, recursive, set, clear, propagation, None)
}

/// mount_setattr(2) with a user namespace for MOUNT_ATTR_IDMAP.
pub fn mount_setattr_userns(
    fd: BorrowedFd,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
    userns: Option<BorrowedFd>,
) -> io::Result<()> {
    // SAFETY: mount_attr is a plain C struct; zero is valid for every field.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    if let Some(ns) = userns {
        attr.userns_fd = u64::try_from(ns.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    }
    attr.attr_set = set;
    attr.attr_clr = clear;
    attr.propagation = propagation;
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: the path is empty and NUL-terminated, attr is initialised and its size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags.unsigned_abs(),
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    cvt(ret).map(drop)
}

/// pidfd_open(2): a stable handle on a process, immune to pid reuse once opened.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// pidfd_getfd(2): a copy of descriptor `fd` of the process behind `pidfd` (close-on-exec).
pub fn pidfd_getfd(pidfd: BorrowedFd, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; flags must be 0.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })
}

/// pidfd_send_signal(2).
pub fn pidfd_send_signal(pidfd: BorrowedFd, signal: i32) -> io::Result<()> {
    // SAFETY: a NULL siginfo means "as kill(2) would send it".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cvt(ret).map(drop)
}

/// fork(2) as the plain clone syscall with SIGCHLD: no clone3 (which glibc's fork and
/// posix_spawn may try first, and which a seccomp profile listing only classic syscalls denies
/// with EPERM) and no atfork handlers. The child may only make raw system calls before execve or
/// _exit; the caller must be single-threaded or hold no lock the child needs.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: clone with only an exit signal and a NULL stack behaves like fork(2): the child
    // gets its own copy of memory and returns here a second time.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match cvt(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(int(pid))),
    }
}

/// pipe2(2) with O_CLOEXEC: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Waits for our child `pid` with wait4, at most `timeout` when one is given; returns its wait
/// status, or None when the time ran out (the child is then still running and unreaped). Polls
/// with WNOHANG and growing sleeps rather than a pidfd, so it works under any seccomp profile.
pub fn wait_child(pid: libc::pid_t, timeout: Option<std::time::Duration>) -> io::Result<Option<libc::c_int>> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        let mut status = 0;
        let flags = if deadline.is_some() { libc::WNOHANG } else { 0 };
        // SAFETY: wait4 on our own child with a valid status pointer and no rusage.
        let ret = unsafe { libc::wait4(pid, &mut status, flags, std::ptr::null_mut()) };
        if ret == pid {
            return Ok(Some(status));
        }
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        let Some(deadline) = deadline else { continue };
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// Waits until the process behind `pidfd` has exited, or `timeout_ms` passes (-1: forever).
/// Returns whether it exited.
pub fn pidfd_wait_exit(pidfd: BorrowedFd, timeout_ms: i32) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    // Any negative timeout waits forever, as poll(2) takes it.
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    loop {
        match poll(&mut [PollFd::new(pidfd, PollFlags::POLLIN)], timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return Ok(r? > 0),
        }
    }
}

/// prctl(2) with integer arguments, for the options nix has no wrapper for (the capability
/// bounding and ambient sets).
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the options used by moor take integer arguments only.
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Writes all of `data` to a raw fd, retrying on EINTR.
pub fn write_all(fd: BorrowedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Non-dumpable: nothing in the container may ptrace this process or open its /proc files
/// (CVE-2016-9962); a new process inherits it until its execve.
pub fn set_non_dumpable() -> crate::error::Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| crate::error::Error::sys("PR_SET_DUMPABLE", e))
}

/// The clean signal state a fresh program expects: nothing blocked, every disposition default.
/// For a process cloned from moor (or its caller) that runs moor's code and then execs.
pub fn reset_signals() {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Raw: nix's Signal has no real-time signals.
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler; no Rust code runs in a signal context.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}
