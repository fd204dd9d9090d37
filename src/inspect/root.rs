//! What the container's root and cgroup hold: its mounts judged from mountinfo, the device
//! nodes under its /dev, its device rules and limits. Paths inside the root are resolved from
//! /proc/<pid>/root with RESOLVE_IN_ROOT and never followed: the container's symlinks cannot lead
//! the walk out of it.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

use moor_cgroups::Mode;
use oci_spec::runtime::Linux;

use super::proc::read;
use super::{config, mountinfo, DeviceNode, Devices, Filesystem, Limits, DEFAULT_MASKED, DEFAULT_READONLY};
use crate::error::{Error, Result};
use crate::runtime::state::ContainerState;
use crate::sys;

/// The devices every container gets (runtime-spec "Default Devices").
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];
const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
/// A hostile /dev could hold millions of entries; an audit lists this many at most.
const MAX_DEV_ENTRIES: usize = 4096;
/// cgroup v1's "unlimited" memory limit (PAGE_COUNTER_MAX in bytes, rounded to pages): anything
/// this high is no limit.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

/// The container's root, as seen through its init.
pub fn open_root(pid: i32) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/root");
    fs::File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| Error::path("cannot open the container's root", path, e))
}

/// lstat of `path` inside the container's root, resolved in that root.
fn stat_in_root(root: &OwnedFd, path: &str) -> Option<libc::stat> {
    let rel = CString::new(path.trim_start_matches('/')).ok()?;
    let flags = u64::try_from(libc::O_PATH | libc::O_NOFOLLOW).ok()?;
    let fd = sys::openat2(root.as_fd(), &rel, flags, 0, IN_ROOT).ok()?;
    // SAFETY: stat is plain data; fstat fills it from an fd we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and st is a valid out-pointer.
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0).then_some(st)
}

fn is_type(st: &libc::stat, ty: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == ty
}

pub fn filesystem(pid: i32, root: &OwnedFd, linux: &Linux) -> Result<Filesystem> {
    let (mounts, _) = mountinfo::parse(&read(pid, "mountinfo")?);
    // The host's mounts: pid 1's, else moor's own (see host_ns).
    let host_text = read(1, "mountinfo").or_else(|_| {
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::path("cannot read", "/proc/self/mountinfo", e))
    })?;
    let (host, _) = mountinfo::parse(&host_text);
    let exists = |p: &str| stat_in_root(root, p).is_some();
    let mut masked: Vec<String> = DEFAULT_MASKED.iter().map(|s| s.to_string()).collect();
    masked.extend(
        linux
            .masked_paths()
            .iter()
            .flatten()
            .filter(|p| !masked.contains(p))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut readonly: Vec<String> = DEFAULT_READONLY.iter().map(|s| s.to_string()).collect();
    readonly.extend(
        linux
            .readonly_paths()
            .iter()
            .flatten()
            .filter(|p| !readonly.contains(p))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut host_binds = mountinfo::host_binds(&mounts, &host, |dest| {
        stat_in_root(root, dest).is_some_and(|st| is_type(&st, libc::S_IFSOCK))
    });
    // A masked file is the container's /dev/null bound over it (itself the host's): the mask,
    // not a host path given to the container.
    host_binds.retain(|b| !(b.host_path.as_deref() == Some("/dev/null") && masked.contains(&b.destination)));
    // In a user namespace device nodes cannot be made, so the runtime binds the host's own at
    // the same path: the default devices and linux.devices, reported under devices.
    let mut devices: Vec<String> = DEFAULT_DEVICES.iter().map(|d| d.to_string()).collect();
    devices.extend(linux.devices().iter().flatten().map(|d| d.path().display().to_string()));
    host_binds
        .retain(|b| !(b.host_path.as_deref() == Some(b.destination.as_str()) && devices.contains(&b.destination)));
    Ok(Filesystem {
        root_readonly: mountinfo::at(&mounts, "/").is_some_and(|m| m.readonly),
        masked_paths: masked
            .iter()
            .map(|p| mountinfo::masked(&mounts, p, exists(p)))
            .collect(),
        readonly_paths: readonly
            .iter()
            .map(|p| mountinfo::readonly(&mounts, p, exists(p)))
            .collect(),
        host_binds,
        sys_writable: mountinfo::containing(&mounts, "/sys").is_some_and(|m| m.mount_point == "/sys" && !m.readonly),
    })
}

/// Device nodes directly under the container's /dev, listed without following any symlink.
fn dev_nodes(root: &OwnedFd) -> Vec<DeviceNode> {
    let Ok(flags) = u64::try_from(libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) else {
        return Vec::new();
    };
    let Ok(dev) = sys::openat2(root.as_fd(), c"dev", flags, 0, IN_ROOT) else {
        return Vec::new();
    };
    // Dir owns the fd from here (and closes it if fdopendir fails).
    let Ok(mut dir) = nix::dir::Dir::from_fd(dev.into_raw_fd()) else {
        return Vec::new();
    };
    let dirfd = dir.as_raw_fd();
    let mut nodes = Vec::new();
    for entry in dir.iter().take(MAX_DEV_ENTRIES).flatten() {
        let name = entry.file_name();
        // SAFETY: stat is plain data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: dirfd is open for the loop, name is NUL-terminated, no symlink is followed.
        if unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            continue;
        }
        let kind = if is_type(&st, libc::S_IFCHR) {
            'c'
        } else if is_type(&st, libc::S_IFBLK) {
            'b'
        } else {
            continue;
        };
        nodes.push(DeviceNode {
            path: format!("/dev/{}", name.to_string_lossy()),
            kind,
            major: u64::from(libc::major(st.st_rdev)),
            minor: u64::from(libc::minor(st.st_rdev)),
        });
    }
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    nodes
}

pub fn devices(state: &ContainerState, root: &OwnedFd, linux: &Linux) -> Devices {
    let nodes = dev_nodes(root);
    let v1 = state
        .cgroup()
        .filter(|c| c.mode() != Mode::Unified)
        .and_then(|c| c.v1_dir("devices").map(|d| d.join("devices.list")))
        .and_then(|p| fs::read_to_string(p).ok());
    if let Some(list) = v1 {
        let rules: Vec<String> = list.lines().map(str::to_string).collect();
        return Devices {
            rules_source: "cgroup v1 devices.list".into(),
            all_allowed: rules.iter().any(|r| r.trim() == "a *:* rwm"),
            rules,
            nodes,
        };
    }
    // cgroup v2 enforces devices with an eBPF program that cannot be read back as rules.
    let (rules, all_allowed) = config::device_rules(linux);
    Devices {
        rules_source: "config (cgroup v2 eBPF program)".into(),
        rules,
        all_allowed,
        nodes,
    }
}

pub fn limits(state: &ContainerState) -> Limits {
    let Some(cg) = state.cgroup() else {
        return Limits {
            source: "no cgroup recorded".into(),
            ..Default::default()
        };
    };
    match cg.stats() {
        Ok(s) => Limits {
            memory: s.memory.map(|m| m.usage.limit).filter(|l| *l < V1_UNLIMITED),
            pids: s.pids.map(|p| p.limit).filter(|l| *l != u64::MAX),
            source: "cgroup".into(),
        },
        Err(e) => Limits {
            source: format!("cgroup unreadable: {e}"),
            ..Default::default()
        },
    }
}
