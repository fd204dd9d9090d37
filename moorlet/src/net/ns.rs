//! A pod's net, ipc and uts namespaces, each held by an nsfs bind mount under
//! `<state>/run/ns/<uid>/` (no infra process).
//!
//! They are made by a short-lived forked child that unshares them (and sets the hostname) and
//! waits; the parent bind-mounts /proc/<child>/ns/X onto the files, then lets it exit. No
//! thread is started: the per-pod monitor that calls this is single-threaded and must stay so
//! (moor's Runtime refuses threaded callers), and the agent is threaded, where a forked child
//! inherits other threads' locks held forever. So the child makes only raw system calls
//! (unshare, sethostname, write, read, _exit: async-signal-safe, no allocation, every argument
//! prepared before the fork), which is safe in either caller.

use super::{NetError, PodNamespaces};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const KINDS: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
];

/// Makes `dir` a shared mount point (as `ip netns` does with /run/netns), so that unmounting a
/// namespace file also unmounts the copies made when a process cloned a mount namespace.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), NetError> {
    std::fs::create_dir_all(dir).map_err(|e| NetError::io("create directory", dir, e))?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EINVAL) => {} // not a mount point yet
        Err(e) => return Err(NetError::os("make shared", dir, e)),
    }
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(dir), dir, None::<&str>, bind, None::<&str>)
        .map_err(|e| NetError::os("bind-mount onto itself", dir, e))?;
    mount(None::<&str>, dir, None::<&str>, shared, None::<&str>).map_err(|e| NetError::os("make shared", dir, e))
}

pub(crate) fn is_nsfs_path(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == libc::NSFS_MAGIC)
}

/// Creates the namespaces a pod does not share with the host, or finds them made already.
pub(crate) fn create(
    pod_dir: &Path,
    hostname: &str,
    host_network: bool,
    host_ipc: bool,
) -> Result<PodNamespaces, NetError> {
    let wanted: Vec<(&'static str, CloneFlags, PathBuf)> = KINDS
        .iter()
        .filter(|(kind, _)| match *kind {
            "ipc" => !host_ipc,
            _ => !host_network, // a hostNetwork pod has the node's hostname too
        })
        .map(|(kind, flag)| (*kind, *flag, pod_dir.join(kind)))
        .collect();
    let path_of = |kind: &str| wanted.iter().find(|(k, _, _)| *k == kind).map(|(_, _, p)| p.clone());
    let result = PodNamespaces {
        net: path_of("net"),
        ipc: path_of("ipc"),
        uts: path_of("uts"),
    };
    if wanted.is_empty() {
        return Ok(result);
    }
    // An agent that restarts finds the namespaces of running pods: they are kept as they are.
    if wanted.iter().all(|(_, _, p)| is_nsfs_path(p)) {
        return Ok(result);
    }
    remove(pod_dir)?;
    std::fs::create_dir_all(pod_dir).map_err(|e| NetError::io("create directory", pod_dir, e))?;
    for (_, _, path) in &wanted {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| NetError::io("create", path, e))?;
    }
    let flags = wanted.iter().fold(CloneFlags::empty(), |acc, (_, f, _)| acc | *f);
    let mounts: Vec<(&'static str, PathBuf)> = wanted.iter().map(|(k, _, p)| (*k, p.clone())).collect();
    if let Err(e) = in_new_namespaces(flags, hostname, &mounts) {
        let _ = remove(pod_dir);
        return Err(e);
    }
    Ok(result)
}

/// The child's report: 0, or the failed step (1 unshare, 2 sethostname) << 16 | errno.
fn child_error(code: i32) -> NetError {
    let errno = nix::errno::Errno::from_raw(code & 0xffff);
    let op = if code >> 16 == 2 {
        "set the hostname in the new uts namespace"
    } else {
        "unshare the pod's namespaces"
    };
    NetError::os(op, "/proc/self/ns", errno)
}

fn in_new_namespaces(flags: CloneFlags, hostname: &str, mounts: &[(&'static str, PathBuf)]) -> Result<(), NetError> {
    let name = std::ffi::CString::new(hostname).map_err(|_| NetError::Invalid {
        field: "spec.hostname".into(),
        value: hostname.into(),
        reason: "must not contain NUL",
    })?;
    let set_hostname = flags.contains(CloneFlags::CLONE_NEWUTS);
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| NetError::os("create a pipe for", "the namespace child", e))
    };
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (ready_w_raw, go_r_raw) = (ready_w.as_raw_fd(), go_r.as_raw_fd());
    let (ready_r_raw, go_w_raw) = (ready_r.as_raw_fd(), go_w.as_raw_fd());
    let raw_flags = flags.bits();
    // SAFETY: fork has no memory-safety preconditions of its own; what the child may do is the
    // point: it runs only the async-signal-safe calls below on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: raw system calls on fds and a C string that were valid before the fork and
        // are still valid in the child's copy of memory; _exit ends the child without running
        // any of the parent's Rust code (no destructor, no atexit).
        unsafe {
            // The parent's ends: with go_w open here, the read below would never see EOF.
            libc::close(ready_r_raw);
            libc::close(go_w_raw);
            let mut code: i32 = 0;
            if libc::unshare(raw_flags) != 0 {
                code = (1 << 16) | *libc::__errno_location();
            } else if set_hostname && libc::sethostname(name.as_ptr(), name.as_bytes().len()) != 0 {
                code = (2 << 16) | *libc::__errno_location();
            }
            let bytes = code.to_ne_bytes();
            libc::write(ready_w_raw, bytes.as_ptr().cast(), bytes.len());
            // Until the parent has bind-mounted the namespaces: it closes its end (or dies).
            let mut byte = 0u8;
            libc::read(go_r_raw, (&raw mut byte).cast(), 1);
            libc::_exit(0);
        }
    }
    if pid < 0 {
        return Err(NetError::io(
            "fork the namespace child for",
            "/proc/self/ns",
            std::io::Error::last_os_error(),
        ));
    }
    let child = nix::unistd::Pid::from_raw(pid);
    drop((ready_w, go_r));
    let mounted = (|| {
        let mut report = [0u8; 4];
        let mut file = std::fs::File::from(ready_r);
        std::io::Read::read_exact(&mut file, &mut report)
            .map_err(|e| NetError::io("read the report of the namespace child", "/proc/self/ns", e))?;
        let code = i32::from_ne_bytes(report);
        if code != 0 {
            return Err(child_error(code));
        }
        for (kind, target) in mounts {
            let source = PathBuf::from(format!("/proc/{child}/ns/{kind}"));
            mount(Some(&source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| NetError::os("bind-mount the namespace onto", target, e))?;
        }
        Ok(())
    })();
    drop(go_w);
    // Our own child only; another reaper (a subreaper's waitpid(-1)) may have taken it: ECHILD.
    while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(child, None) {}
    mounted
}

/// Unmounts and removes the namespace files; idempotent.
pub(crate) fn remove(pod_dir: &Path) -> Result<(), NetError> {
    for (kind, _) in KINDS {
        let path = pod_dir.join(kind);
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(NetError::os("unmount", &path, e)),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::io("remove", &path, e)),
        }
    }
    match std::fs::remove_dir(pod_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("remove", pod_dir, e)),
    }
}
