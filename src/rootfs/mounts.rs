//! One OCI mount: option parsing, target creation inside the root, and the mount itself.
//! Bind mounts are cloned with open_tree, shaped with mount_setattr while still detached and
//! attached with move_mount onto the target's fd; other filesystems are mounted onto the
//! target through its /proc/self/fd path. No mount ever takes a path string built from the
//! rootfs.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount;

use super::paths::{self, Kind};
use crate::error::{Error, Result};
use crate::sys;

/// Mount options split the way the kernel wants them.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Options {
    pub flags: libc::c_ulong,
    pub clear: libc::c_ulong,
    pub propagation: libc::c_ulong,
    /// mount_setattr attributes applied recursively (the `r*` forms).
    pub rec_set: u64,
    pub rec_clear: u64,
    pub bind: bool,
    pub recursive: bool,
    pub data: Vec<String>,
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "remount" => (libc::MS_REMOUNT, 0),
            "bind" => {
                o.bind = true;
                (0, 0)
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                (0, 0)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                o.propagation |= propagation_flag(opt).unwrap_or(0);
                (0, 0)
            }
            "rro" => {
                o.rec_set |= libc::MOUNT_ATTR_RDONLY;
                (0, 0)
            }
            "rrw" => {
                o.rec_clear |= libc::MOUNT_ATTR_RDONLY;
                (0, 0)
            }
            "rnosuid" => {
                o.rec_set |= libc::MOUNT_ATTR_NOSUID;
                (0, 0)
            }
            "rsuid" => {
                o.rec_clear |= libc::MOUNT_ATTR_NOSUID;
                (0, 0)
            }
            "rnodev" => {
                o.rec_set |= libc::MOUNT_ATTR_NODEV;
                (0, 0)
            }
            "rdev" => {
                o.rec_clear |= libc::MOUNT_ATTR_NODEV;
                (0, 0)
            }
            "rnoexec" => {
                o.rec_set |= libc::MOUNT_ATTR_NOEXEC;
                (0, 0)
            }
            "rexec" => {
                o.rec_clear |= libc::MOUNT_ATTR_NOEXEC;
                (0, 0)
            }
            "rnoatime" => {
                o.rec_set |= libc::MOUNT_ATTR_NOATIME;
                (0, 0)
            }
            "rrelatime" => {
                o.rec_set |= libc::MOUNT_ATTR_RELATIME;
                (0, 0)
            }
            "rstrictatime" => {
                o.rec_set |= libc::MOUNT_ATTR_STRICTATIME;
                (0, 0)
            }
            "rnodiratime" => {
                o.rec_set |= libc::MOUNT_ATTR_NODIRATIME;
                (0, 0)
            }
            _ => {
                o.data.push(opt.clone());
                (0, 0)
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    o
}

pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// mount_setattr attributes for the per-mount MS_* flags of a bind mount.
fn attrs(flags: libc::c_ulong) -> u64 {
    let mut a = 0;
    for (ms, attr) in [
        (libc::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
        (libc::MS_NOATIME, libc::MOUNT_ATTR_NOATIME),
        (libc::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
        (libc::MS_STRICTATIME, libc::MOUNT_ATTR_STRICTATIME),
    ] {
        if flags & ms != 0 {
            a |= attr;
        }
    }
    a
}

fn c(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::config("mounts", format!("{s:?} contains NUL")))
}

/// Performs one config mount below `root`. `field` names it in errors ("mounts[3]").
pub fn mount_one(
    root: BorrowedFd,
    m: &Mount,
    field: &str,
    cgroups: &[super::cgroupfs::Membership],
    prepared: Option<BorrowedFd>,
) -> Result<()> {
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = opts.bind || typ == "bind";
    let err = |what: &str, e: std::io::Error| Error::config(field, format!("{what} {}: {e}", dest.display()));

    if is_bind {
        // An idmapped tree was made by the parent (only the host may idmap the host's
        // filesystems); any other bind is cloned and shaped here.
        let own;
        let tree = match prepared {
            Some(t) => t,
            None => {
                own = bind_tree(m, field, None)?;
                own.as_fd()
            }
        };
        let kind = if paths::is_dir(tree) { Kind::Dir } else { Kind::File };
        let target = paths::ensure_in_root(root, dest, kind)?;
        sys::move_mount_fd(tree, target.as_fd()).map_err(|e| err("attach bind mount at", e))?;
        return set_propagation(root, dest, opts.propagation, field);
    }

    let target = paths::ensure_in_root(root, dest, Kind::Dir)?;
    if typ == "cgroup" || typ == "cgroup2" {
        return super::cgroupfs::mount(root, target.as_fd(), dest, typ, &opts, field, cgroups);
    }
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let copy_up = opts.data.iter().any(|d| d == "tmpcopyup");
    let data: Vec<&str> = opts
        .data
        .iter()
        .map(String::as_str)
        .filter(|d| *d != "tmpcopyup")
        .collect();
    match mount_fs(
        target.as_fd(),
        &source,
        typ,
        opts.flags & !libc::MS_REMOUNT,
        &data.join(","),
    ) {
        // In a user namespace without its own network namespace the kernel refuses a new
        // sysfs: bind the host's /sys read-only instead, as runc does.
        Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
            let tree = sys::open_tree(
                libc::AT_FDCWD,
                c"/sys",
                libc::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32,
            )
            .map_err(|e| err("bind /sys on", e))?;
            let ro =
                libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
            sys::mount_setattr(tree.as_fd(), true, ro, 0, 0).map_err(|e| err("make /sys read-only on", e))?;
            sys::move_mount_fd(tree.as_fd(), target.as_fd()).map_err(|e| err("bind /sys on", e))?;
        }
        r => r.map_err(|e| err(&format!("mount {typ} on"), e))?,
    }
    if copy_up {
        // `target` still refers to the directory under the new mount: copy it up.
        let fresh =
            paths::open_file_in_root(root, dest, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| err("reopen", e))?;
        super::copyup::copy_tree(target.as_fd(), fresh.as_fd(), 0)?;
    }
    set_propagation(root, dest, opts.propagation, field)
}

/// A detached clone of a bind mount's source with its options applied (and, given a user
/// namespace, idmapped), ready to be attached.
pub fn bind_tree(m: &Mount, field: &str, idmap: Option<BorrowedFd>) -> Result<OwnedFd> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let err =
        |what: &str, e: std::io::Error| Error::config(field, format!("{what} {}: {e}", m.destination().display()));
    let source = m
        .source()
        .as_ref()
        .ok_or_else(|| Error::config(format!("{field}.source"), "a bind mount needs a source"))?;
    let src_c = c(&source.to_string_lossy())?;
    let mut tree_flags = libc::OPEN_TREE_CLONE;
    if opts.recursive {
        tree_flags |= libc::AT_RECURSIVE as u32;
    }
    let tree = sys::open_tree(libc::AT_FDCWD, &src_c, tree_flags)
        .map_err(|e| err(&format!("bind {}", source.display()), e))?;
    let (set, clear) = (attrs(opts.flags), attrs(opts.clear));
    if set != 0 || clear != 0 {
        sys::mount_setattr(tree.as_fd(), false, set, clear, 0).map_err(|e| err("set bind mount options on", e))?;
    }
    if let Some(userns) = idmap {
        let recursive = opts.recursive || opts.data.iter().any(|d| d == "ridmap");
        sys::mount_setattr_userns(tree.as_fd(), recursive, libc::MOUNT_ATTR_IDMAP, 0, 0, Some(userns))
            .map_err(|e| err("idmap the bind mount for", e))?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        sys::mount_setattr(tree.as_fd(), true, opts.rec_set, opts.rec_clear, 0)
            .map_err(|e| err("set recursive mount options on", e))?;
    }
    Ok(tree)
}

/// mount(2) of a filesystem onto the target fd.
pub fn mount_fs(target: BorrowedFd, source: &str, typ: &str, flags: libc::c_ulong, data: &str) -> std::io::Result<()> {
    let to = paths::fd_path(target);
    let source = CString::new(source).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let typ = CString::new(typ).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let data = CString::new(data).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: all strings are NUL-terminated and live across the call.
    let r = unsafe { libc::mount(source.as_ptr(), to.as_ptr(), typ.as_ptr(), flags, data.as_ptr().cast()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_propagation(root: BorrowedFd, dest: &Path, propagation: libc::c_ulong, field: &str) -> Result<()> {
    if propagation == 0 {
        return Ok(());
    }
    // Reopen: the fd taken before mounting points below the new mount, not at it.
    let fd = paths::open_in_root(root, dest, 0)
        .map_err(|e| Error::config(field, format!("reopen {}: {e}", dest.display())))?;
    let to = paths::fd_path(fd.as_fd());
    // SAFETY: NUL-terminated target; no source, type or data for a propagation change.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            to.as_ptr(),
            std::ptr::null(),
            propagation,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(Error::config(
            field,
            format!(
                "set propagation of {}: {}",
                dest.display(),
                std::io::Error::last_os_error()
            ),
        ));
    }
    Ok(())
}

/// Clones the mount (or file) `fd` refers to and attaches the copy onto `target`.
pub fn bind_fd(fd: BorrowedFd, target: BorrowedFd, recursive: bool) -> std::io::Result<OwnedFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    let tree = sys::open_tree(std::os::fd::AsRawFd::as_raw_fd(&fd), c"", flags)?;
    sys::move_mount_fd(tree.as_fd(), target)?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: &[&str]) -> Options {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn splits_flags_data_and_recursive_forms() {
        let p = o(&[
            "nosuid",
            "noexec",
            "mode=755",
            "size=65536k",
            "rbind",
            "rro",
            "rprivate",
        ]);
        assert_eq!(p.flags, libc::MS_NOSUID | libc::MS_NOEXEC);
        assert_eq!(p.data, vec!["mode=755", "size=65536k"]);
        assert!(p.bind && p.recursive);
        assert_eq!(p.rec_set, libc::MOUNT_ATTR_RDONLY);
        assert_eq!(p.propagation, libc::MS_PRIVATE | libc::MS_REC);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(o(&["ro", "rw"]).flags & libc::MS_RDONLY, 0);
        assert_eq!(o(&["rw", "ro"]).flags & libc::MS_RDONLY, libc::MS_RDONLY);
    }
}
