//! The container's root filesystem, built by init inside its new mount namespace, in the
//! kernel's order: propagation, the rootfs as a mount, config mounts, /dev, the console, masked
//! and read-only paths, then (after the createContainer hooks) pivot_root and a read-only root.

pub mod cgroupfs;
mod copyup;
pub mod devices;
pub mod mounts;
pub mod paths;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
use paths::Kind;

/// What `prepare` leaves for `enter`.
pub struct Prepared {
    pub root: OwnedFd,
}

/// Directories that must be real directories (never symlinks or files) when present: a
/// symlinked /proc would redirect procfs writes to the host (CVE-2019-16884 and friends).
const MUST_BE_DIRS: [&str; 3] = ["proc", "sys", "dev"];

pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    user_ns: bool,
    cgroups: &[cgroupfs::Membership],
    idmaps: &[Option<OwnedFd>],
) -> Result<Prepared> {
    let linux = spec.linux().clone().unwrap_or_default();
    let propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => libc::MS_SLAVE | libc::MS_REC,
        Some(p) => mounts::propagation_flag(p)
            .ok_or_else(|| Error::config("linux.rootfsPropagation", format!("unknown propagation {p:?}")))?,
    };
    // Nothing we mount may propagate back to the host.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::from_bits_retain(libc::MS_SLAVE | libc::MS_REC),
        None::<&str>,
    )
    .context(|| "make / a slave mount".into())?;
    // pivot_root needs the rootfs to be a mount point.
    nix::mount::mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| format!("bind the rootfs {}", rootfs.display()))?;
    let c =
        std::ffi::CString::new(rootfs.as_os_str().as_encoded_bytes()).map_err(|_| Error::config("root.path", "NUL"))?;
    let root = crate::sys::openat2(cwd(), &c, (libc::O_PATH | libc::O_DIRECTORY) as u64, 0, 0)
        .map_err(|e| Error::path("open rootfs", rootfs, e))?;

    for name in MUST_BE_DIRS {
        // SAFETY: stat is plain data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let cname = std::ffi::CString::new(name).unwrap_or_default();
        // SAFETY: valid dirfd, NUL-terminated name; AT_SYMLINK_NOFOLLOW inspects the entry itself.
        if unsafe { libc::fstatat(root.as_raw_fd(), cname.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0
            && st.st_mode & libc::S_IFMT != libc::S_IFDIR
        {
            return Err(Error::config(
                "root.path",
                format!("/{name} in the rootfs is not a directory: refusing to use it"),
            ));
        }
    }

    let config_mounts = spec.mounts().clone().unwrap_or_default();
    for (i, m) in config_mounts.iter().enumerate() {
        let idmap = idmaps.get(i).and_then(|fd| fd.as_ref().map(|fd| fd.as_fd()));
        mounts::mount_one(root.as_fd(), m, &format!("mounts[{i}]"), cgroups, idmap)?;
    }
    // Like runc: /dev is populated unless the whole of it is a bind from the host.
    let dev_is_bind = config_mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_is_bind {
        devices::setup(root.as_fd(), linux.devices().as_deref().unwrap_or_default(), user_ns)?;
    }
    if propagation != libc::MS_SLAVE | libc::MS_REC {
        let to = paths::fd_path(root.as_fd());
        // SAFETY: NUL-terminated target path; propagation change only.
        if unsafe {
            libc::mount(
                std::ptr::null(),
                to.as_ptr(),
                std::ptr::null(),
                propagation,
                std::ptr::null(),
            )
        } != 0
        {
            return Err(Error::last_os("linux.rootfsPropagation"));
        }
    }
    Ok(Prepared { root })
}

/// Binds the console (the pty slave) onto /dev/console, from its fd.
pub fn bind_console(root: BorrowedFd, slave: BorrowedFd) -> Result<()> {
    // Whatever the image put at /dev/console (a symlink to anywhere, a file) is replaced by a
    // fresh empty file, made relative to the verified /dev fd (CVE-2025-52565).
    let dev = paths::ensure_in_root(root, Path::new("/dev"), Kind::Dir)?;
    let dev_dir = crate::sys::openat2(dev.as_fd(), c".", (libc::O_DIRECTORY | libc::O_RDONLY) as u64, 0, 0)
        .map_err(|e| Error::sys("open /dev in the container", e))?;
    // SAFETY: valid dirfd and NUL-terminated name; ENOENT is fine.
    unsafe { libc::unlinkat(dev_dir.as_raw_fd(), c"console".as_ptr(), 0) };
    // SAFETY: valid dirfd and NUL-terminated name; O_EXCL|O_NOFOLLOW refuse anything raced in.
    let fd = unsafe {
        libc::openat(
            dev_dir.as_raw_fd(),
            c"console".as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(Error::last_os("create /dev/console"));
    }
    // SAFETY: we own the fd just opened.
    unsafe { libc::close(fd) };
    let target = paths::ensure_in_root(root, Path::new("/dev/console"), Kind::File)?;
    mounts::bind_fd(slave, target.as_fd(), false)
        .map(drop)
        .map_err(|e| Error::sys("bind /dev/console", e))
}

/// maskedPaths: files get the verified /dev/null, directories an empty read-only tmpfs.
pub fn mask_paths(root: BorrowedFd, masked: &[String]) -> Result<()> {
    if masked.is_empty() {
        return Ok(());
    }
    let null = devices::verified_null()?;
    for p in masked {
        let target = match paths::open_in_root(root, Path::new(p), 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(Error::config("linux.maskedPaths", format!("{p}: {e}"))),
        };
        let r = if paths::is_dir(target.as_fd()) {
            mounts::mount_fs(
                target.as_fd(),
                "tmpfs",
                "tmpfs",
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                "mode=555",
            )
        } else {
            mounts::bind_fd(null.as_fd(), target.as_fd(), false).map(drop)
        };
        r.map_err(|e| Error::config("linux.maskedPaths", format!("mask {p}: {e}")))?;
    }
    Ok(())
}

/// readonlyPaths: each is bound onto itself and made read-only, recursively.
pub fn readonly_paths(root: BorrowedFd, readonly: &[String]) -> Result<()> {
    for p in readonly {
        let target = match paths::open_in_root(root, Path::new(p), 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(Error::config("linux.readonlyPaths", format!("{p}: {e}"))),
        };
        let tree = crate::sys::open_tree(
            target.as_raw_fd(),
            c"",
            libc::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32 | libc::AT_EMPTY_PATH as u32,
        )
        .map_err(|e| Error::config("linux.readonlyPaths", format!("{p}: {e}")))?;
        crate::sys::mount_setattr(
            tree.as_fd(),
            true,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
            0,
            0,
        )
        .map_err(|e| Error::config("linux.readonlyPaths", format!("{p}: {e}")))?;
        crate::sys::move_mount_fd(tree.as_fd(), target.as_fd())
            .map_err(|e| Error::config("linux.readonlyPaths", format!("{p}: {e}")))?;
    }
    Ok(())
}

/// Makes the rootfs the root: pivot_root and detach the old root, or with `no_pivot` move the
/// rootfs over / and chroot (for ramfs roots, where pivot_root is impossible).
pub fn enter(root: OwnedFd, no_pivot: bool, readonly: bool) -> Result<()> {
    // SAFETY: fchdir to a directory fd we own.
    if unsafe { libc::fchdir(root.as_raw_fd()) } != 0 {
        return Err(Error::last_os("chdir to the rootfs"));
    }
    if no_pivot {
        nix::mount::mount(Some("."), "/", None::<&str>, nix::mount::MsFlags::MS_MOVE, None::<&str>)
            .context(|| "move the rootfs to /".into())?;
        nix::unistd::chroot(".").context(|| "chroot to the rootfs".into())?;
    } else {
        nix::unistd::pivot_root(".", ".").context(|| "pivot_root".into())?;
        // The old root is stacked on the new one; detach it. It cannot propagate to the host:
        // `prepare` made every mount a slave first (and a recursive slave here would undo the
        // per-mount propagation the config asked for).
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).context(|| "detach the old root".into())?;
    }
    nix::unistd::chdir("/").context(|| "chdir /".into())?;
    if readonly {
        let slash = crate::sys::open_tree(libc::AT_FDCWD, c"/", 0).map_err(|e| Error::sys("open /", e))?;
        crate::sys::mount_setattr(slash.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(|e| Error::config("root.readonly", e.to_string()))?;
    }
    drop(root);
    Ok(())
}

fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is valid for the life of the process.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}
