//! Each container's rootfs: an overlayfs whose lower layers are the image's unpacked layers,
//! with `upper/` and `work/` under the container's directory, mounted at `rootfs/`.
//!
//! Layers are given one by one with the new mount API's `lowerdir+` (Linux 6.8): each path is a
//! parameter of its own, so an image's layer count is not bounded by mount(2)'s one-page option
//! string (about 40 store paths). Older kernels get that option string, refused up front when it
//! would not fit.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::store::{io_err, ImageStore};
use super::{Image, ImageError};

pub fn mount_rootfs(store: &ImageStore, image: &Image, container_dir: &Path) -> Result<PathBuf, ImageError> {
    let rootfs = container_dir.join("rootfs");
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    if rootfs.is_dir() && is_overlay_mount(container_dir, &rootfs)? {
        return Ok(rootfs); // mounted by an earlier call (an agent that restarted)
    }
    let mut lowers = store.layer_dirs(image)?;
    if lowers.is_empty() {
        return Err(ImageError::format(image.id.clone(), "the image has no layers"));
    }
    // overlayfs lists the top layer first
    lowers.reverse();
    // and refuses a directory twice (ELOOP), while images may repeat a layer (old Docker builds'
    // empty layer): the topmost copy alone gives all that the lower copies would
    let mut seen = std::collections::HashSet::new();
    lowers.retain(|l| seen.insert(l.clone()));
    for d in [&rootfs, &upper, &work] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(d)
            .map_err(io_err("create directory", d))?;
    }
    let mounted = match mount_new_api(&lowers, &upper, &work, &rootfs) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOSYS) => {
            mount_legacy(&lowers, &upper, &work, &rootfs)
        }
        Err(e) => Err(ImageError::Mount {
            op: "mount overlayfs on",
            path: rootfs.clone(),
            source: e,
        }),
        Ok(()) => Ok(()),
    };
    if let Err(e) = mounted {
        // leave nothing behind: the directories made above go (best effort; the error says why)
        let _ = unmount_rootfs(container_dir);
        return Err(e);
    }
    Ok(rootfs)
}

/// Unmounts `container_dir/rootfs` and removes it with `upper/` and `work/`; nothing there is
/// not an error.
pub fn unmount_rootfs(container_dir: &Path) -> Result<(), ImageError> {
    let rootfs = container_dir.join("rootfs");
    let c = cstring(&rootfs)?;
    // SAFETY: c is a NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOENT) => {} // not mounted, or already gone
            Some(libc::EBUSY) => {
                // SAFETY: as above.
                if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                    return Err(ImageError::Mount {
                        op: "unmount (detach)",
                        path: rootfs,
                        source: std::io::Error::last_os_error(),
                    });
                }
            }
            _ => {
                return Err(ImageError::Mount {
                    op: "unmount",
                    path: rootfs,
                    source: e,
                })
            }
        }
    }
    for d in [container_dir.join("upper"), container_dir.join("work")] {
        match fs::remove_dir_all(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(ImageError::io("remove", &d, e)),
            _ => {}
        }
    }
    // rmdir, never a recursive removal: were it somehow still mounted, the upper layer stays.
    match fs::remove_dir(&rootfs) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ImageError::io("remove", &rootfs, e)),
        _ => Ok(()),
    }
}

fn cstring(path: &Path) -> Result<CString, ImageError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        ImageError::io(
            "use",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL byte in the path"),
        )
    })
}

fn is_overlay_mount(parent: &Path, dir: &Path) -> Result<bool, ImageError> {
    let pm = fs::metadata(parent).map_err(io_err("stat", parent))?;
    let dm = fs::metadata(dir).map_err(io_err("stat", dir))?;
    if pm.dev() == dm.dev() {
        return Ok(false);
    }
    let st = nix::sys::statfs::statfs(dir).map_err(|e| ImageError::io("statfs", dir, e.into()))?;
    Ok(st.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC)
}

fn last_error<T>() -> std::io::Result<T> {
    Err(std::io::Error::last_os_error())
}

fn fsconfig_string(fs_fd: &OwnedFd, key: &str, value: &Path) -> std::io::Result<()> {
    let key = CString::new(key).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let value =
        CString::new(value.as_os_str().as_bytes()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: fs_fd is an open fs context; key and value are NUL-terminated and outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        last_error()
    }
}

fn mount_new_api(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> std::io::Result<()> {
    // SAFETY: the name is a NUL-terminated literal; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), libc::FSOPEN_CLOEXEC) };
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    if fd < 0 {
        return last_error();
    }
    // SAFETY: fsopen just returned this fd, and nothing else owns it.
    let fs_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    for lower in lowers {
        fsconfig_string(&fs_fd, "lowerdir+", lower)?;
    }
    fsconfig_string(&fs_fd, "upperdir", upper)?;
    fsconfig_string(&fs_fd, "workdir", work)?;
    // SAFETY: fs_fd is an open fs context; no key or value is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r != 0 {
        return last_error();
    }
    // SAFETY: fs_fd is a created fs context; the result is checked.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs_fd.as_raw_fd(), libc::FSMOUNT_CLOEXEC, 0) };
    let m = i32::try_from(m).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    if m < 0 {
        return last_error();
    }
    // SAFETY: fsmount just returned this fd, and nothing else owns it.
    let mnt = unsafe { OwnedFd::from_raw_fd(m) };
    let target =
        CString::new(target.as_os_str().as_bytes()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: mnt is a detached mount; the empty path and the target are NUL-terminated and
    // outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        last_error()
    }
}

/// mount(2)'s option string, or why there is none: its paths cannot hold the separators, and
/// it must fit in a page.
fn legacy_options(lowers: &[PathBuf], upper: &Path, work: &Path, page: usize) -> Result<Vec<u8>, String> {
    let all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).chain([upper, work]).collect();
    if let Some(bad) = all
        .iter()
        .find(|p| p.as_os_str().as_bytes().iter().any(|b| b":,\\".contains(b)))
    {
        return Err(format!(
            "{}: a path with ':', ',' or '\\' cannot be an overlayfs option on this kernel",
            bad.display()
        ));
    }
    let mut options = b"lowerdir=".to_vec();
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            options.push(b':');
        }
        options.extend_from_slice(l.as_os_str().as_bytes());
    }
    options.extend_from_slice(b",upperdir=");
    options.extend_from_slice(upper.as_os_str().as_bytes());
    options.extend_from_slice(b",workdir=");
    options.extend_from_slice(work.as_os_str().as_bytes());
    if options.len() >= page {
        return Err(format!(
            "{} layers do not fit in one page of mount options on a kernel without overlayfs' lowerdir+ (Linux 6.8)",
            lowers.len()
        ));
    }
    Ok(options)
}

fn mount_legacy(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<(), ImageError> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let options = legacy_options(lowers, upper, work, page)
        .map_err(|reason| ImageError::format(target.display().to_string(), reason))?;
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_slice()),
    )
    .map_err(|e| ImageError::Mount {
        op: "mount overlayfs on",
        path: target.to_path_buf(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_options_are_checked() {
        let l = |s: &str| PathBuf::from(s);
        let (u, w) = (Path::new("/c/upper"), Path::new("/c/work"));
        assert_eq!(
            legacy_options(&[l("/s/b"), l("/s/a")], u, w, 4096).as_deref(),
            Ok(&b"lowerdir=/s/b:/s/a,upperdir=/c/upper,workdir=/c/work"[..])
        );
        assert!(legacy_options(&[l("/s/a:b")], u, w, 4096).is_err_and(|e| e.contains("/s/a:b")));
        let many: Vec<PathBuf> = (0..50)
            .map(|i| l(&format!("/var/lib/moorlet/images/layers/{i:064}/root")))
            .collect();
        assert!(legacy_options(&many, u, w, 4096).is_err_and(|e| e.contains("50 layers")));
    }
}
