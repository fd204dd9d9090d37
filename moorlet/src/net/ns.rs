//! A pod's net, ipc and uts namespaces, each held by an nsfs bind mount under
//! `<state>/run/ns/<uid>/` (no infra process).
//!
//! They are made by a fresh thread that unshares its own namespaces and bind-mounts
//! /proc/thread-self/ns/X onto the files, then ends. This is safe in the threaded agent, unlike a
//! fork: the thread is an ordinary thread (it may allocate, lock, log), the net, ipc and uts
//! namespaces belong to the thread alone (unshare(2) allows them in a multithreaded process,
//! unlike CLONE_NEWNS or CLONE_NEWUSER), no other code ever runs in them there, and the
//! thread's exit drops its references: the bind mounts alone keep the namespaces.

use super::{NetError, PodNamespaces};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
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
    let hostname = hostname.to_string();
    let flags = wanted.iter().fold(CloneFlags::empty(), |acc, (_, f, _)| acc | *f);
    let mounts: Vec<(&'static str, PathBuf)> = wanted.iter().map(|(k, _, p)| (*k, p.clone())).collect();
    let made = std::thread::Builder::new()
        .name("moorlet-ns".into())
        .spawn(move || in_new_namespaces(flags, &hostname, &mounts))
        .map_err(|e| NetError::io("start the namespace thread for", pod_dir, e))?
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Invalid {
                field: "namespaces".into(),
                value: String::new(),
                reason: "the namespace thread panicked",
            })
        });
    if let Err(e) = made {
        let _ = remove(pod_dir);
        return Err(e);
    }
    Ok(result)
}

/// Runs on its own thread, which ends right after.
fn in_new_namespaces(flags: CloneFlags, hostname: &str, mounts: &[(&'static str, PathBuf)]) -> Result<(), NetError> {
    nix::sched::unshare(flags).map_err(|e| NetError::os("unshare namespaces for", "/proc/thread-self", e))?;
    if flags.contains(CloneFlags::CLONE_NEWUTS) {
        nix::unistd::sethostname(hostname).map_err(|e| NetError::Io {
            op: "set the hostname",
            path: PathBuf::from(hostname),
            source: e.into(),
        })?;
    }
    let tid = nix::unistd::gettid();
    for (kind, target) in mounts {
        let source = PathBuf::from(format!("/proc/self/task/{tid}/ns/{kind}"));
        mount(Some(&source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| NetError::os("bind-mount the namespace onto", target, e))?;
    }
    Ok(())
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
