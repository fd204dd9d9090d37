//! A procfs handle the container cannot redirect: a private, detached procfs instance
//! (fsopen/fsmount) that no mount in the container can cover, checked to be real procfs.
//! Every /proc write init makes (oom_score_adj, sysctls, LSM attributes, the exec fifo reopen)
//! goes through it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::sys;

pub struct Procfs {
    root: OwnedFd,
}

const PROC_ROOT_INO: u64 = 1;

impl Procfs {
    /// A new procfs instance for the caller's pid namespace, or, where that cannot be mounted
    /// (an unprivileged caller, a kernel without the new mount API), the current /proc; either
    /// way verified to be the root of a procfs.
    pub fn open() -> Result<Procfs> {
        let root = match Self::fresh_instance() {
            Ok(fd) => fd,
            // /proc is a mount point below /: the walk to it must cross into that mount, and
            // the checks below make sure it ends at the root of a real procfs.
            Err(_) => sys::openat2(
                cwd_fd(),
                c"/proc",
                (libc::O_PATH | libc::O_DIRECTORY) as u64,
                0,
                libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
            )
            .map_err(|e| Error::sys("open /proc", e))?,
        };
        let st = nix::sys::statfs::fstatfs(&root).map_err(|e| Error::sys("fstatfs /proc", e))?;
        if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(Error::refused("/proc", "is not procfs: refusing to write through it"));
        }
        // A subdirectory of procfs bound over /proc would pass the magic check.
        let meta = nix::sys::stat::fstat(root.as_raw_fd()).map_err(|e| Error::sys("fstat /proc", e))?;
        if meta.st_ino != PROC_ROOT_INO {
            return Err(Error::refused(
                "/proc",
                "is not the root of a procfs: refusing to write through it",
            ));
        }
        Ok(Procfs { root })
    }

    fn fresh_instance() -> io::Result<OwnedFd> {
        // SAFETY: fsopen with a NUL-terminated name.
        let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), libc::FSOPEN_CLOEXEC) };
        if fs < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new fd.
        let fs = unsafe { OwnedFd::from_raw_fd(sys::int(fs)) };
        // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                libc::FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fsmount on a configured fs context; nosuid/nodev/noexec for a read/write handle.
        let m = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs.as_raw_fd(),
                libc::FSMOUNT_CLOEXEC,
                libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
            )
        };
        if m < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new fd.
        Ok(unsafe { OwnedFd::from_raw_fd(sys::int(m)) })
    }

    /// Opens `path` (relative, e.g. "self/oom_score_adj") below this procfs, refusing symlinks
    /// other than procfs' own magic ones and never leaving the instance.
    pub fn open_file(&self, path: &str, flags: i32) -> Result<OwnedFd> {
        let c = CString::new(path).map_err(|_| Error::refused(format!("/proc/{path:?}"), "a NUL byte in the path"))?;
        sys::open_how_flags(flags)
            .and_then(|flags| {
                sys::openat2(
                    self.root.as_fd(),
                    &c,
                    flags,
                    0,
                    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_XDEV,
                )
            })
            .map_err(|e| Error::sys(format!("open /proc/{path}"), e))
    }

    pub fn write(&self, path: &str, value: &str) -> Result<()> {
        let fd = self.open_file(path, libc::O_WRONLY)?;
        sys::write_all(fd.as_fd(), value.as_bytes())
            .map_err(|e| Error::sys(format!("write {value:?} to /proc/{path}"), e))
    }

    /// Reopens one of our own fds through /proc/self/fd (e.g. the exec fifo, held as O_PATH).
    /// A plain openat, as it runs after the container's seccomp filter, where openat2 may be
    /// denied; the walk starts at this verified procfs, and following the magic link is the point.
    /// With `release`, the code pages are dropped just before the open (init, about to block at
    /// the exec fifo: see [`crate::sys::pages`]).
    pub fn reopen_fd(
        &self,
        fd: BorrowedFd,
        flags: i32,
        release: Option<&crate::sys::pages::CodeRanges>,
    ) -> Result<OwnedFd> {
        let c = CString::new(format!("self/fd/{}", fd.as_raw_fd()))
            .map_err(|_| Error::refused("fd path", "a NUL byte in the path"))?;
        let ret = crate::sys::pages::open_released(release, self.root.as_raw_fd(), &c, flags | libc::O_CLOEXEC)
            .map_err(|e| Error::sys(format!("reopen fd {}", fd.as_raw_fd()), e))?;
        // SAFETY: openat just returned this fd; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(ret) })
    }
}

fn cwd_fd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a valid dirfd for the whole life of the process.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}
