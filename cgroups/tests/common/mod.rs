//! Helpers for the root tests: unique absolute cgroup paths, a cleanup guard, and children that
//! wait to be moved into a cgroup before running a body made only of async-signal-safe calls.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use moor_cgroups::{Cgroup, CgroupConfig};

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh absolute test path `/moor-test-<pid>-<n>` (never a relative path: on this host the
/// process's own memory cgroup belongs to the supervisor).
pub fn unique_root() -> String {
    format!("/moor-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Prints why a test does not run here; the caller returns right after. Like the black-box
/// suite's skips (integration/src/lib.rs), it also appends `test<TAB>file<TAB>why` to the file
/// named by `MOOR_IT_SKIP_LOG`, for scripts/test's summary.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIP {test}: {why}");
    if let Some(log) = std::env::var_os("MOOR_IT_SKIP_LOG") {
        let entry = format!("{test}\tcgroups/tests/root.rs\t{why}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, entry.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record the skip in {}: {e}", log.to_string_lossy());
        }
    }
}

/// A test that needs root and does not have it skips, or fails when `MOOR_IT_REQUIRE_ROOT` is
/// set (CI): the suite would otherwise pass without having run.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    if std::env::var("MOOR_IT_REQUIRE_ROOT").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{test} needs root, and MOOR_IT_REQUIRE_ROOT is set");
    }
    skip(test, "needs root (creates cgroups)");
    true
}

/// Destroys the cgroup when dropped (also on test failure).
pub struct Guard(pub Option<Cgroup>);

impl Guard {
    pub fn cg(&self) -> &Cgroup {
        self.0.as_ref().expect("cgroup present")
    }
    pub fn destroy(&mut self) {
        if let Some(cg) = self.0.take() {
            cg.destroy().expect("destroy");
            for d in cg.created_dirs() {
                assert!(!d.exists(), "{} still exists after destroy", d.display());
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take() {
            if let Err(e) = cg.destroy() {
                eprintln!("cleanup: destroy failed: {e}");
            }
        }
    }
}

pub fn create(path: &str) -> Guard {
    let cg = Cgroup::create(&CgroupConfig {
        cgroups_path: path,
        container_id: "test",
        systemd: false,
        rootless: false,
    })
    .expect("create cgroup");
    Guard(Some(cg))
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A forked child that blocks until released, then runs `body` and `_exit`s with its result.
pub struct Child {
    pub pid: i32,
    go: i32,
    reaped: bool,
}

pub fn spawn_waiting(body: fn() -> i32) -> Child {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only calls async-signal-safe functions (read, close, the body, _exit).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut b = [0u8; 1];
        // SAFETY: async-signal-safe calls on our own descriptors.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], b.as_mut_ptr().cast(), 1);
            libc::close(fds[0]);
            libc::_exit(body());
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(fds[0]) };
    Child {
        pid,
        go: fds[1],
        reaped: false,
    }
}

impl Child {
    pub fn release(&mut self) {
        if self.go >= 0 {
            // SAFETY: writing one byte to and closing the pipe we own.
            unsafe {
                libc::write(self.go, b"x".as_ptr().cast(), 1);
                libc::close(self.go);
            }
            self.go = -1;
        }
    }

    /// Waits for the child; returns the raw wait status.
    pub fn wait(&mut self) -> i32 {
        let mut st = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut st, 0) };
        assert_eq!(r, self.pid, "waitpid");
        self.reaped = true;
        st
    }

    /// utime + stime in clock ticks from /proc/<pid>/stat.
    pub fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("stat");
        let after = &s[s.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        // fields after comm start at field 3 (state): utime is field 14, stime 15.
        f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.release();
        if !self.reaped {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

pub fn exited_with(st: i32) -> Option<i32> {
    libc::WIFEXITED(st).then(|| libc::WEXITSTATUS(st))
}

pub fn killed_by(st: i32) -> Option<i32> {
    libc::WIFSIGNALED(st).then(|| libc::WTERMSIG(st))
}

/// Writes one byte in every page of a fresh anonymous mapping of `len` bytes, so that the
/// memory is charged to the caller's cgroup. False when the mapping cannot be made.
pub fn touch_anonymous(len: usize) -> bool {
    // SAFETY: a fresh anonymous private mapping; we only write inside it and never unmap it
    // (the caller is a short-lived child that exits or is killed).
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let mut i = 0;
        while i < len {
            std::ptr::write_volatile(p.cast::<u8>().add(i), 1);
            i += 4096;
        }
    }
    true
}

/// Touches 64 MiB of anonymous memory, then returns 0 (only if nothing stopped it).
pub fn touch_64m() -> i32 {
    if touch_anonymous(64 << 20) {
        0
    } else {
        2
    }
}
