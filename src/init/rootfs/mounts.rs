//! One OCI mount: where its destination resolves, the checks on that, target creation inside
//! the root, and the mount itself. Bind mounts are cloned with open_tree, shaped with
//! mount_setattr while still detached and attached with move_mount onto the target's fd; other
//! filesystems are mounted onto the target through its /proc/self/fd path. No mount ever takes
//! a path string built from the rootfs.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::Mount;

use super::paths::{self, Kind};
use crate::error::{Error, Result};
use crate::spec::mount_options::{self as options, Options};
use crate::sys;

/// A bind mount's tree made by the parent, on the host, before the clone.
pub enum ParentTree {
    /// Idmapped: only the host may idmap the host's filesystems; always used.
    Idmapped(OwnedFd),
    /// Used only when init cannot clone the source itself: runc opens bind sources before
    /// joining the user namespace, so a source the container's root may not reach (a 0700
    /// directory of the host's root) is still bound. Init's own clone is preferred: it keeps
    /// the locks the kernel put on the flags of mounts inherited into the user namespace.
    Fallback(OwnedFd),
}

/// Performs one config mount below `root`. `field` names it in errors ("mounts[3]"). A mount
/// that must end read-only but is still to be filled (a tmpfs, /dev) is mounted read-write and
/// its fd pushed to `readonly_later`.
pub fn mount_one(
    root: BorrowedFd,
    m: &Mount,
    field: &str,
    cgroups: &[super::cgroupfs::Membership],
    prepared: Option<&ParentTree>,
    readonly_later: &mut Vec<OwnedFd>,
) -> Result<()> {
    let dest = m.destination();
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = opts.bind || typ == "bind";
    let err = |what: &str, e: std::io::Error| Error::config(field, format!("{what} {}: {e}", dest.display()));

    // The checks on the destination hold for where it leads, not for how it is spelled: an
    // image symlink must not steer a mount over /proc or over the root itself.
    let resolved = paths::resolve_in_root(root, dest).map_err(|e| err("resolve", e))?;
    let dest_field = format!("{field}.destination");
    if resolved == Path::new("/") {
        return Err(Error::config(
            dest_field,
            format!("{} resolves to the container's root", dest.display()),
        ));
    }
    super::validate::check_proc(&resolved, typ, is_bind, &dest_field)?;

    if is_bind {
        let own;
        let tree = match prepared {
            Some(ParentTree::Idmapped(t)) => t.as_fd(),
            Some(ParentTree::Fallback(t)) => match bind_tree(m, field, None) {
                Ok(t) => {
                    own = t;
                    own.as_fd()
                }
                Err(_) => t.as_fd(),
            },
            None => {
                own = bind_tree(m, field, None)?;
                own.as_fd()
            }
        };
        if resolved == Path::new("/proc") && !is_procfs(tree) {
            return Err(Error::config(
                dest_field,
                format!("only a procfs may be mounted on /proc, and {} is not one", source_of(m)),
            ));
        }
        let kind = if paths::is_dir(tree) { Kind::Dir } else { Kind::File };
        let target = paths::ensure_in_root(root, &resolved, kind)?;
        sys::move_mount_fd(tree, target.as_fd()).map_err(|e| err("attach bind mount at", e))?;
        return set_propagation(root, &resolved, opts.propagation, field);
    }

    let target = paths::ensure_in_root(root, &resolved, Kind::Dir)?;
    if typ == "cgroup" || typ == "cgroup2" {
        return super::cgroupfs::mount(root, target.as_fd(), &resolved, typ, &opts, field, cgroups);
    }
    // Like runc: a tmpfs (which tmpcopyup fills) and /dev (which gets its devices, links and
    // submounts after this) are mounted writable and made read-only at the end.
    let ro_later = opts.flags & libc::MS_RDONLY != 0 && (typ == "tmpfs" || resolved == Path::new("/dev"));
    let flags = if ro_later {
        opts.flags & !libc::MS_RDONLY
    } else {
        opts.flags
    };
    let source = source_of(m);
    match mount_fs(target.as_fd(), &source, typ, flags, &opts.data.join(",")) {
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
    if opts.copy_up {
        // `target` still refers to the directory under the new mount: copy it up.
        let fresh = paths::open_file_in_root(root, &resolved, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| err("reopen", e))?;
        super::copyup::copy_tree(target.as_fd(), fresh.as_fd(), 0)?;
    }
    if ro_later {
        readonly_later.push(paths::open_in_root(root, &resolved, 0).map_err(|e| err("reopen", e))?);
    }
    set_propagation(root, &resolved, opts.propagation, field)
}

fn source_of(m: &Mount) -> String {
    m.source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| m.typ().clone().unwrap_or_default())
}

fn is_procfs(fd: BorrowedFd) -> bool {
    nix::sys::statfs::fstatfs(fd).is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}

/// Makes read-only the mounts `mount_one` left writable to be filled.
pub fn finish_readonly(mounts: &[OwnedFd]) -> Result<()> {
    for fd in mounts {
        sys::mount_setattr(fd.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(|e| Error::sys("make a filled mount read-only", e))?;
    }
    Ok(())
}

/// A detached clone of a bind mount's source with its options applied (and, given a user
/// namespace, idmapped), ready to be attached.
pub fn bind_tree(m: &Mount, field: &str, idmap: Option<BorrowedFd>) -> Result<OwnedFd> {
    let opts: Options = options::parse(m.options().as_deref().unwrap_or_default());
    let err =
        |what: &str, e: std::io::Error| Error::config(field, format!("{what} {}: {e}", m.destination().display()));
    let source = m
        .source()
        .as_ref()
        .ok_or_else(|| Error::config(format!("{field}.source"), "a bind mount needs a source"))?;
    let src_c = CString::new(source.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::config(format!("{field}.source"), "contains a NUL byte"))?;
    let mut tree_flags = libc::OPEN_TREE_CLONE;
    if opts.recursive {
        tree_flags |= libc::AT_RECURSIVE as u32;
    }
    let tree = sys::open_tree(libc::AT_FDCWD, &src_c, tree_flags)
        .map_err(|e| err(&format!("bind {}", source.display()), e))?;
    let (set, clear) = opts.bind_attrs();
    if set != 0 || clear != 0 {
        sys::mount_setattr(tree.as_fd(), false, set, clear, 0).map_err(|e| err("set bind mount options on", e))?;
    }
    if let Some(userns) = idmap {
        let recursive = opts.recursive || opts.recursive_idmap;
        sys::mount_setattr_userns(tree.as_fd(), recursive, libc::MOUNT_ATTR_IDMAP, 0, 0, Some(userns))
            .map_err(|e| err("idmap the bind mount for", e))?;
    }
    if opts.has_rec_attrs() {
        let (set, clear) = opts.rec_attrs();
        sys::mount_setattr(tree.as_fd(), true, set, clear, 0).map_err(|e| err("set recursive mount options on", e))?;
    }
    Ok(tree)
}

/// mount(2) of a filesystem onto the target fd.
pub fn mount_fs(target: BorrowedFd, source: &str, typ: &str, flags: libc::c_ulong, data: &str) -> std::io::Result<()> {
    let to = paths::fd_path(target);
    let source = CString::new(source).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let typ = CString::new(typ).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let data = CString::new(data).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(nix::mount::mount(
        Some(source.as_c_str()),
        to.as_c_str(),
        Some(typ.as_c_str()),
        MsFlags::from_bits_retain(flags),
        Some(data.as_c_str()),
    )?)
}

fn set_propagation(root: BorrowedFd, dest: &Path, propagation: libc::c_ulong, field: &str) -> Result<()> {
    if propagation == 0 {
        return Ok(());
    }
    // Reopen: the fd taken before mounting points below the new mount, not at it.
    let fd = paths::open_in_root(root, dest, 0)
        .map_err(|e| Error::config(field, format!("reopen {}: {e}", dest.display())))?;
    set_propagation_fd(fd.as_fd(), propagation)
        .map_err(|e| Error::config(field, format!("set propagation of {}: {e}", dest.display())))
}

/// Changes the propagation of the mount `fd` is the root of.
pub fn set_propagation_fd(fd: BorrowedFd, propagation: libc::c_ulong) -> std::io::Result<()> {
    let to = paths::fd_path(fd);
    // No source, type or data for a propagation change.
    Ok(nix::mount::mount(
        None::<&CStr>,
        to.as_c_str(),
        None::<&CStr>,
        MsFlags::from_bits_retain(propagation),
        None::<&CStr>,
    )?)
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
