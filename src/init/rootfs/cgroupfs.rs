//! The container's view of /sys/fs/cgroup. On a unified host that is one cgroup2 mount. On
//! v1 and hybrid hosts it is a tmpfs holding one entry per hierarchy, each a bind of the
//! container's own cgroup directory (what a cgroup namespace would show, and the only form a
//! user namespace may mount). Read-only only when the config says "ro", as with runc (its
//! default spec does).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::mounts;
use super::paths::{self, Kind};
use crate::error::{Error, Result};
use crate::spec::mount_options::Options;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One line of /proc/PID/cgroup: hierarchy controllers and the path in it, as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    controllers: String,
    path: String,
}

impl Membership {
    pub fn new(controllers: String, path: String) -> Membership {
        Membership { controllers, path }
    }
}

/// The cgroups of `pid` as the host sees them (read by the parent, before init's cgroup
/// namespace would hide the paths).
pub fn memberships(pid: &str) -> Vec<Membership> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some(Membership {
                controllers: it.next()?.to_string(),
                path: it.next()?.to_string(),
            })
        })
        .collect()
}

fn unified_host() -> bool {
    nix::sys::statfs::statfs(c"/sys/fs/cgroup")
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

pub fn mount(
    root: BorrowedFd,
    target: BorrowedFd,
    dest: &Path,
    typ: &str,
    opts: &Options,
    field: &str,
    cgroups: &[Membership],
) -> Result<()> {
    let err = |e: std::io::Error| Error::config(field, format!("mount cgroup on {}: {e}", dest.display()));
    let flags = opts.flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if typ == "cgroup2" || unified_host() {
        return match mounts::mount_fs(target, "cgroup2", "cgroup2", flags, "") {
            // In a user namespace the kernel may refuse a new cgroup2 mount: EPERM without a
            // cgroup namespace of our own, EBUSY over the cgroup2 a rootless /sys bind brought
            // along. Bind the container's own cgroup instead, as runc does.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EBUSY)) => {
                let Some(own) = cgroups.iter().find(|m| m.controllers.is_empty()) else {
                    return Err(err(e));
                };
                let src = Path::new(CGROUP_ROOT).join(own.path.trim_start_matches('/'));
                let c = std::ffi::CString::new(src.as_os_str().as_encoded_bytes())
                    .map_err(|_| Error::config(field, "NUL in cgroup path"))?;
                let tree = crate::sys::open_tree(libc::AT_FDCWD, &c, libc::OPEN_TREE_CLONE).map_err(err)?;
                crate::sys::mount_setattr(tree.as_fd(), false, ro_attrs(flags), 0, 0).map_err(err)?;
                crate::sys::move_mount_fd(tree.as_fd(), target).map_err(err)
            }
            r => r.map_err(err),
        };
    }
    // The tmpfs is writable while we fill it, then made read-only like the entries.
    mounts::mount_fs(
        target,
        "tmpfs",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "mode=755",
    )
    .map_err(err)?;
    for m in cgroups {
        let name = match m.controllers.as_str() {
            "" => "unified".to_string(),
            c => c.strip_prefix("name=").unwrap_or(c).to_string(),
        };
        let host_dir = Path::new(CGROUP_ROOT).join(&name);
        if !host_dir.is_dir() {
            continue;
        }
        let entry = paths::ensure_in_root(root, &dest.join(&name), Kind::Dir)?;
        let src = host_dir.join(m.path.trim_start_matches('/'));
        let c = std::ffi::CString::new(src.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::config(field, "NUL in cgroup path"))?;
        let tree = crate::sys::open_tree(libc::AT_FDCWD, &c, libc::OPEN_TREE_CLONE).map_err(err)?;
        crate::sys::mount_setattr(tree.as_fd(), false, ro_attrs(flags), 0, 0).map_err(err)?;
        crate::sys::move_mount_fd(tree.as_fd(), entry.as_fd()).map_err(err)?;
        // Co-mounted controllers (cpu,cpuacct) get their conventional symlinks.
        if name.contains(',') {
            for alias in name.split(',') {
                let cname = std::ffi::CString::new(alias).map_err(|_| Error::config(field, "NUL"))?;
                let ctarget = std::ffi::CString::new(name.as_str()).map_err(|_| Error::config(field, "NUL"))?;
                let dir = paths::open_in_root(root, dest, libc::O_DIRECTORY).map_err(err)?;
                // Failure (EEXIST) is harmless.
                let _ = nix::unistd::symlinkat(
                    ctarget.as_c_str(),
                    Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
                    cname.as_c_str(),
                );
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        let top = paths::open_in_root(root, dest, 0).map_err(err)?;
        let tree = crate::sys::open_tree(std::os::fd::AsRawFd::as_raw_fd(&top), c"", libc::AT_EMPTY_PATH as u32)
            .map_err(err)?;
        crate::sys::mount_setattr(tree.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0).map_err(err)?;
    }
    Ok(())
}

fn ro_attrs(flags: libc::c_ulong) -> u64 {
    let mut a = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
    if flags & libc::MS_RDONLY != 0 {
        a |= libc::MOUNT_ATTR_RDONLY;
    }
    a
}
