//! The container's root filesystem, built by init in its mount namespace, in the kernel's
//! order: propagation, the rootfs as a mount, config mounts, /dev, the console, masked and
//! read-only paths, then (after the createContainer hooks) pivot_root and a read-only root.
//! A container without a mount namespace of its own gets its mounts in the caller's namespace
//! and is only chrooted into the rootfs, as with runc.

pub mod cgroupfs;
mod copyup;
pub mod devices;
pub mod mounts;
mod no_pivot;
pub mod paths;
mod validate;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
use crate::spec::mount_options as options;
pub use cgroupfs::{memberships, Membership};
pub use mounts::{bind_tree, ParentTree};
use paths::Kind;
pub use validate::validate;

/// What `prepare` leaves for `enter`.
pub struct Prepared {
    pub root: OwnedFd,
    /// rootfsPropagation forms applied to "/" once it is the root: pivot_root refuses a shared
    /// new root (unbindable comes last too, as in runc).
    root_propagation: libc::c_ulong,
    /// Mounts to make read-only once filled (a read-only tmpfs, /dev).
    readonly_later: Vec<OwnedFd>,
    /// No mount namespace of our own: chroot, never pivot_root or MS_MOVE in the caller's.
    chroot_only: bool,
}

/// Directories that must be real directories (never symlinks or files) when present: a
/// symlinked /proc would redirect procfs writes to the host (CVE-2019-16884 and friends).
const MUST_BE_DIRS: [&str; 3] = ["proc", "sys", "dev"];

pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    mount_ns: bool,
    user_ns: bool,
    cgroups: &[cgroupfs::Membership],
    parent_trees: &[Option<ParentTree>],
) -> Result<Prepared> {
    let linux = spec.linux().clone().unwrap_or_default();
    // Validated at load time: unknown names cannot reach here.
    let requested = linux
        .rootfs_propagation()
        .as_deref()
        .and_then(options::propagation_flag)
        .unwrap_or(0);
    // The rootfs bind gets its propagation before any config mount lands on it (so per-mount
    // propagation wins), except for shared and unbindable: it is made private for now (a new
    // peer group then, not the host's) and gets them after pivot_root.
    let (before, after) = if requested & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0 {
        (libc::MS_PRIVATE | (requested & libc::MS_REC), requested)
    } else {
        (requested, 0)
    };
    if mount_ns {
        // Nothing we mount may propagate back to the host.
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::from_bits_retain(libc::MS_SLAVE | libc::MS_REC),
            None::<&str>,
        )
        .context(|| "make / a slave mount".into())?;
    }
    // pivot_root needs the rootfs to be a mount point. Without a mount namespace, as with
    // runc, the bind is made in the caller's namespace too: the container's mounts then sit on
    // it, one detach of the rootfs removes them all (youki's contest relies on this), and
    // root.readonly makes only this bind read-only, never a mount of the caller's.
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
    if mount_ns && before != 0 {
        mounts::set_propagation_fd(root.as_fd(), before).map_err(|e| Error::sys("linux.rootfsPropagation", e))?;
    }

    let config_mounts = spec.mounts().clone().unwrap_or_default();
    check_must_be_dirs(root.as_fd(), &config_mounts)?;
    let mut readonly_later = Vec::new();
    for (i, m) in config_mounts.iter().enumerate() {
        mounts::mount_one(
            root.as_fd(),
            m,
            &format!("mounts[{i}]"),
            cgroups,
            parent_trees.get(i).and_then(Option::as_ref),
            &mut readonly_later,
        )?;
    }
    // Like runc: /dev is populated unless the whole of it is a bind from the host.
    let dev_is_bind = config_mounts.iter().any(|m| {
        validate::container_path(m.destination()) == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_is_bind {
        devices::setup(root.as_fd(), linux.devices().as_deref().unwrap_or_default(), user_ns)?;
    }
    Ok(Prepared {
        root,
        root_propagation: if mount_ns { after } else { 0 },
        readonly_later,
        chroot_only: !mount_ns,
    })
}

/// /proc, /sys and /dev must not be symlinks or files; runc's wording, which callers match.
fn check_must_be_dirs(root: BorrowedFd, config_mounts: &[oci_spec::runtime::Mount]) -> Result<()> {
    for name in MUST_BE_DIRS {
        let cname = std::ffi::CString::new(name).unwrap_or_default();
        // AT_SYMLINK_NOFOLLOW inspects the entry itself.
        let st = nix::sys::stat::fstatat(
            Some(root.as_raw_fd()),
            cname.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        if st.map_or(true, |st| st.st_mode & libc::S_IFMT == libc::S_IFDIR) {
            continue;
        }
        let at = Path::new("/").join(name);
        let (field, typ) = config_mounts
            .iter()
            .enumerate()
            .find(|(_, m)| validate::container_path(m.destination()) == at)
            .map(|(i, m)| (format!("mounts[{i}].destination"), m.typ().clone().unwrap_or_default()))
            .unwrap_or_else(|| ("root.path".into(), name.into()));
        return Err(Error::config(
            field,
            format!(
                "/{name} in the rootfs is not a directory: filesystem {typ:?} must be mounted on ordinary directory"
            ),
        ));
    }
    Ok(())
}

/// Binds the console (the pty slave) onto /dev/console, from its fd.
pub fn bind_console(root: BorrowedFd, slave: BorrowedFd) -> Result<()> {
    // Whatever the image put at /dev/console (a symlink to anywhere, a file) is replaced by a
    // fresh empty file, made relative to the verified /dev fd (CVE-2025-52565).
    let dev = paths::ensure_in_root(root, Path::new("/dev"), Kind::Dir)?;
    let dev_dir = crate::sys::openat2(dev.as_fd(), c".", (libc::O_DIRECTORY | libc::O_RDONLY) as u64, 0, 0)
        .map_err(|e| Error::sys("open /dev in the container", e))?;
    // ENOENT is fine.
    let _ = nix::unistd::unlinkat(
        Some(dev_dir.as_raw_fd()),
        c"console",
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    // O_EXCL|O_NOFOLLOW refuse anything raced in.
    let fd = nix::fcntl::openat(
        Some(dev_dir.as_raw_fd()),
        c"console",
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| Error::sys("create /dev/console", e))?;
    let _ = nix::unistd::close(fd);
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
/// rootfs over / and chroot (for ramfs roots, where pivot_root is impossible). Without a mount
/// namespace of its own, only chroot: the caller's mounts are not ours to move.
pub fn enter(prepared: Prepared, no_pivot: bool, readonly: bool) -> Result<()> {
    mounts::finish_readonly(&prepared.readonly_later)?;
    let root = prepared.root;
    nix::unistd::fchdir(root.as_raw_fd()).context(|| "chdir to the rootfs".into())?;
    if prepared.chroot_only {
        nix::unistd::chroot(".").context(|| "chroot to the rootfs".into())?;
    } else if no_pivot {
        // The rootfs's own path, as mountinfo spells it, while the host's /proc is still there.
        let path = std::fs::read_link(format!("/proc/self/fd/{}", root.as_raw_fd()))
            .map_err(|e| Error::path("resolve the rootfs", "/proc/self/fd", e))?;
        no_pivot::hide_host_pseudo_fs(&path)?;
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
    if prepared.root_propagation != 0 {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::from_bits_retain(prepared.root_propagation),
            None::<&str>,
        )
        .context(|| "linux.rootfsPropagation: set the propagation of /".into())?;
    }
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
