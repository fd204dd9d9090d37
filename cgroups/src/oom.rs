//! Watching a cgroup for OOM events without threads: a file descriptor the caller polls (in its
//! own poll loop, epoll set or async reactor), and [`OomWatcher::check`] to learn what happened.
//!
//! - cgroup v1 (and hybrid, where memory is a v1 controller): an eventfd registered through
//!   `cgroup.event_control` on `memory.oom_control`; the kernel signals it each time the cgroup
//!   (or a descendant) runs out of memory, and once more when the cgroup is removed.
//! - cgroup v2: inotify on `memory.events`, which the kernel marks modified when any of its
//!   counters (`oom`, `oom_kill`, ...) changes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::fsutil::{read_opt, write_file};
use crate::mode::Mode;
use crate::parse;

/// OOM counters of a cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomCounts {
    /// Times the cgroup hit its limit and the OOM killer was invoked (v2 memory.events `oom`;
    /// v1: eventfd notifications since the watcher was made, v1 keeps no such counter).
    pub oom: u64,
    /// Processes the OOM killer killed (v2 memory.events `oom_kill`, v1 memory.oom_control
    /// `oom_kill`).
    pub oom_kill: u64,
}

/// What [`OomWatcher::check`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomUpdate {
    /// The counters now.
    pub total: OomCounts,
    /// How much each grew since the previous check (or since the watcher was made).
    pub new: OomCounts,
    /// The cgroup is gone: nothing more will come, stop watching.
    pub cgroup_gone: bool,
}

impl OomUpdate {
    /// True when an OOM happened since the previous check.
    pub fn any(&self) -> bool {
        self.new.oom > 0 || self.new.oom_kill > 0
    }
}

#[derive(Debug)]
enum Kind {
    /// The cgroup's cgroup.event_control, whose absence says the cgroup was removed.
    V1 {
        event_control: PathBuf,
    },
    V2,
}

/// Watches one cgroup for OOM events. Poll [`AsFd::as_fd`] for readability (POLLIN), then call
/// [`OomWatcher::check`]; or call [`OomWatcher::wait`]. Dropping it unregisters everything.
///
/// ```no_run
/// # fn watch(cg: &moor_cgroups::Cgroup) -> Result<(), moor_cgroups::Error> {
/// let mut oom = cg.oom_watcher()?;
/// loop {
///     let update = oom.wait(None)?;
///     if update.any() {
///         println!("OOM: {} kill(s) so far", update.total.oom_kill);
///     }
///     if update.cgroup_gone {
///         return Ok(());
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct OomWatcher {
    fd: OwnedFd,
    kind: Kind,
    /// memory.oom_control (v1) or memory.events (v2).
    counters: PathBuf,
    last: OomCounts,
}

/// The file holding the `oom_kill` counter for `cg`, and whether it is v2's memory.events.
pub(crate) fn counter_file(cg: &Cgroup) -> Option<(PathBuf, bool)> {
    match cg.mode {
        Mode::Unified => cg.unified.as_deref().map(|d| (d.join("memory.events"), true)),
        Mode::Legacy | Mode::Hybrid => cg.v1_dir("memory").map(|d| (d.join("memory.oom_control"), false)),
    }
}

fn read_counts(path: &Path, v2: bool) -> Result<Option<OomCounts>> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    let m = parse::flat_keyed(&text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: e.line,
        msg: e.msg,
    })?;
    let g = |k: &str| m.get(k).copied().unwrap_or(0);
    Ok(Some(OomCounts {
        oom: if v2 { g("oom") } else { 0 },
        oom_kill: g("oom_kill"),
    }))
}

fn os_err(op: &'static str, path: &Path) -> Error {
    Error::io(op, path, std::io::Error::last_os_error())
}

impl OomWatcher {
    /// Starts watching `cg`. Fails with [`Error::Unsupported`] when the cgroup has no memory
    /// controller (v1 not mounted, or v2 without memory.events).
    pub fn new(cg: &Cgroup) -> Result<OomWatcher> {
        let Some((counters, v2)) = counter_file(cg) else {
            return Err(Error::unsupported(
                "memory",
                "the container's cgroup has no memory controller: OOM events cannot be watched",
            ));
        };
        let Some(last) = read_counts(&counters, v2)? else {
            return Err(Error::unsupported(
                "memory",
                format!("{} does not exist: OOM events cannot be watched", counters.display()),
            ));
        };
        let (fd, kind) = if v2 { watch_v2(&counters)? } else { watch_v1(&counters)? };
        Ok(OomWatcher {
            fd,
            kind,
            counters,
            last,
        })
    }

    /// The counters as of the last check (or the watcher's creation).
    pub fn counts(&self) -> OomCounts {
        self.last
    }

    /// Without blocking: takes the pending notifications off the fd and reads the counters.
    pub fn check(&mut self) -> Result<OomUpdate> {
        let notified = self.drain()?;
        let v2 = matches!(self.kind, Kind::V2);
        let gone = match &self.kind {
            Kind::V1 { event_control } => !event_control.exists(),
            Kind::V2 => false,
        };
        let Some(mut now) = read_counts(&self.counters, v2)? else {
            return Ok(OomUpdate {
                total: self.last,
                new: OomCounts::default(),
                cgroup_gone: true,
            });
        };
        if !v2 {
            // The eventfd also fires once when the cgroup is removed; that is no OOM.
            let ooms = if gone { notified.saturating_sub(1) } else { notified };
            now.oom = self.last.oom.saturating_add(ooms);
        }
        let update = OomUpdate {
            total: now,
            new: OomCounts {
                oom: now.oom.saturating_sub(self.last.oom),
                oom_kill: now.oom_kill.saturating_sub(self.last.oom_kill),
            },
            cgroup_gone: gone,
        };
        self.last = now;
        Ok(update)
    }

    /// Waits up to `timeout` (forever with None) for a notification, then [`OomWatcher::check`]s.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<OomUpdate> {
        let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on an fd we own.
        if unsafe { libc::poll(&mut pfd, 1, ms) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io("poll", &self.counters, e));
            }
        }
        self.check()
    }

    /// Reads everything pending on the fd; for v1, the number of eventfd notifications.
    fn drain(&self) -> Result<u64> {
        let mut total = 0u64;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a buffer we own, of the length given.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(total),
                    Some(libc::EINTR) => continue,
                    _ => return Err(Error::io("read OOM notifications for", &self.counters, e)),
                }
            }
            if n == 0 {
                return Ok(total);
            }
            if let (Kind::V1 { .. }, Some(b)) = (&self.kind, buf.get(..8)) {
                let mut v = [0u8; 8];
                v.copy_from_slice(b);
                total = total.saturating_add(u64::from_ne_bytes(v));
            }
        }
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn watch_v1(oom_control: &Path) -> Result<(OwnedFd, Kind)> {
    let dir = oom_control.parent().unwrap_or(Path::new("/"));
    let event_control = dir.join("cgroup.event_control");
    let control = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(oom_control)
        .map_err(|e| Error::io("open", oom_control, e))?;
    // SAFETY: eventfd with valid flags; the result is checked before use.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return Err(os_err("eventfd for", oom_control));
    }
    // SAFETY: `raw` is a new eventfd that nothing else owns.
    let efd = unsafe { OwnedFd::from_raw_fd(raw) };
    // The kernel holds the registration until the eventfd is closed or the cgroup goes; the
    // control file need not stay open.
    write_file(&event_control, &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()))?;
    Ok((efd, Kind::V1 { event_control }))
}

fn watch_v2(events: &Path) -> Result<(OwnedFd, Kind)> {
    // SAFETY: inotify_init1 with valid flags; the result is checked before use.
    let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if raw < 0 {
        return Err(os_err("inotify_init1 for", events));
    }
    // SAFETY: `raw` is a new inotify fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let path = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Setup(format!("{}: path holds a NUL byte", events.display())))?;
    // SAFETY: a valid inotify fd and a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) } < 0 {
        return Err(os_err("inotify_add_watch", events));
    }
    Ok((fd, Kind::V2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_v1_and_v2_files() {
        let dir = std::env::temp_dir().join(format!("moor-cgroups-oom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v1 = dir.join("memory.oom_control");
        std::fs::write(&v1, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(
            read_counts(&v1, false).unwrap(),
            Some(OomCounts { oom: 0, oom_kill: 2 })
        );
        let v2 = dir.join("memory.events");
        std::fs::write(&v2, "low 0\nhigh 0\nmax 9\noom 3\noom_kill 1\noom_group_kill 0\n").unwrap();
        assert_eq!(read_counts(&v2, true).unwrap(), Some(OomCounts { oom: 3, oom_kill: 1 }));
        std::fs::write(&v2, "oom three\n").unwrap();
        assert!(matches!(read_counts(&v2, true), Err(Error::Parse { line: 1, .. })));
        assert_eq!(read_counts(&dir.join("absent"), true).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
