//! The one thread that watches everything the shim waits on, with one poll(2): the pidfds of
//! the container processes (reaped with waitid(P_PIDFD), never a wildcard waitpid(-1), which
//! would steal the statuses the library reaps itself), each container's OOM watcher, and the
//! stdio copies (io.rs): no thread per container or per stream.
//!
//! The order it keeps: an init's TaskOOM before its TaskExit (the OOM counters are read once
//! more when init is reaped), and a process's exit is reported only once its terminal output
//! is drained (the copy from the pty master reached its end), so that TaskExit comes after the
//! last byte was written to the stdout fifo.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::{Copy, Step};
use crate::log;
use crate::table::{ProcKey, Table};

/// How long an exit waits for its output to drain: a process the container left behind may
/// hold the terminal open after the one that was waited for exited.
const DRAIN_GRACE: Duration = Duration::from_secs(3);

pub enum Watch {
    /// A container process: its exit is reported once.
    Proc(ProcKey, moor::Child),
    /// A process of the shim's own (a logging binary): only reaped.
    Reap(moor::Child),
    /// A container's OOM events.
    Oom(String, moor::OomWatcher),
    Copy(Copy),
    /// CloseIO: the process's stdin copy ends, the container sees EOF.
    CloseStdin(ProcKey),
}

pub struct Reaper {
    /// Handed over since the thread last looked.
    incoming: Mutex<Vec<Watch>>,
    /// An eventfd that wakes the thread's poll when something is handed over.
    wake: OwnedFd,
}

struct Exited {
    pid: i32,
    code: i32,
    until: Instant,
}

/// The thread's own state.
#[derive(Default)]
struct Watched {
    procs: Vec<(ProcKey, moor::Child)>,
    reap: Vec<moor::Child>,
    ooms: HashMap<String, moor::OomWatcher>,
    copies: Vec<Copy>,
    /// Exits that wait for their output to drain.
    exited: HashMap<ProcKey, Exited>,
    /// CloseIO came before the process's stdin copy (an exec not started yet): the copy is
    /// dropped when it comes.
    stdin_closed: HashSet<ProcKey>,
}

#[derive(Clone, Copy)]
enum Slot {
    Wake,
    Proc(usize),
    Reap(usize),
    Copy(usize),
    Oom,
}

impl Reaper {
    pub fn spawn(table: Arc<Table>) -> Result<Arc<Reaper>> {
        // SAFETY: eventfd takes no pointers; the new fd is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::sys("eventfd for the reaper", std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd nothing else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let reaper = Arc::new(Reaper {
            incoming: Mutex::new(Vec::new()),
            wake,
        });
        let it = reaper.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            // Nothing deep runs here: a small stack keeps the shim small.
            .stack_size(128 * 1024)
            .spawn(move || it.run(&table))
            .map_err(|e| Error::sys("start the reaper thread", e))?;
        Ok(reaper)
    }

    /// Hands something over: a process's exit is reported once (also if it already exited).
    pub fn watch(&self, w: Watch) {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner()).push(w);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd; EAGAIN (counter full) still wakes.
        unsafe { libc::write(self.wake.as_raw_fd(), std::ptr::from_ref(&one).cast(), 8) };
    }

    fn run(&self, table: &Table) {
        let mut w = Watched::default();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        loop {
            fds.clear();
            slots.clear();
            let mut add = |fd: i32, events: i16, slot: Slot| {
                fds.push(libc::pollfd { fd, events, revents: 0 });
                slots.push(slot);
            };
            add(self.wake.as_raw_fd(), libc::POLLIN, Slot::Wake);
            for (i, (_, c)) in w.procs.iter().enumerate() {
                add(c.pidfd.as_fd().as_raw_fd(), libc::POLLIN, Slot::Proc(i));
            }
            for (i, c) in w.reap.iter().enumerate() {
                add(c.pidfd.as_fd().as_raw_fd(), libc::POLLIN, Slot::Reap(i));
            }
            for (i, c) in w.copies.iter().enumerate() {
                let (fd, events) = c.interest();
                add(fd, events, Slot::Copy(i));
            }
            for o in w.ooms.values() {
                add(o.as_fd().as_raw_fd(), libc::POLLIN, Slot::Oom);
            }
            let timeout = w
                .exited
                .values()
                .map(|e| e.until.saturating_duration_since(Instant::now()))
                .min()
                .map_or(-1, |d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1));
            let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
            // SAFETY: `fds` is a live array of `n` pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), n, timeout) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error(&format!("reaper: poll: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            let ready: Vec<Slot> = fds
                .iter()
                .zip(&slots)
                .filter(|(f, _)| f.revents != 0)
                .map(|(_, s)| *s)
                .collect();
            // OOM first: an OOM kill wakes both the watcher and the killed init's pidfd.
            if ready.iter().any(|s| matches!(s, Slot::Oom)) {
                w.ooms.retain(|id, o| !check_oom(table, id, o));
            }
            // Copies before exits: output that is ready now is written before the exit is seen.
            let mut done_copies = Vec::new();
            for s in &ready {
                if let Slot::Copy(i) = *s {
                    if w.copies[i].step() == Step::Done {
                        done_copies.push(i);
                    }
                }
            }
            let mut reaped = Vec::new();
            let mut own = Vec::new();
            for s in &ready {
                match *s {
                    Slot::Proc(i) => reaped.push(i),
                    Slot::Reap(i) => own.push(i),
                    _ => {}
                }
            }
            own.sort_unstable();
            for i in own.into_iter().rev() {
                let _ = w.reap.swap_remove(i).wait();
            }
            // By index from the end so that removal keeps the earlier indexes.
            done_copies.sort_unstable();
            for i in done_copies.into_iter().rev() {
                w.copies.swap_remove(i);
            }
            reaped.sort_unstable();
            for i in reaped.into_iter().rev() {
                let (key, child) = w.procs.swap_remove(i);
                let code = child.wait().unwrap_or_else(|e| {
                    log::error(&format!("reaper: {}/{}: {e}", key.0, key.1));
                    255
                });
                log::debug(&format!(
                    "reaper: {}/{} (pid {}) exited with {code}",
                    key.0, key.1, child.pid
                ));
                w.exited.insert(
                    key,
                    Exited {
                        pid: child.pid,
                        code,
                        until: Instant::now() + DRAIN_GRACE,
                    },
                );
            }
            w.report_exits(table);
            if ready.iter().any(|s| matches!(s, Slot::Wake)) {
                let mut count: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
                unsafe { libc::read(self.wake.as_raw_fd(), std::ptr::from_mut(&mut count).cast(), 8) };
                let incoming = std::mem::take(&mut *self.incoming.lock().unwrap_or_else(|p| p.into_inner()));
                for item in incoming {
                    w.take(item);
                }
                // A handed-over process may have exited before it was watched: the next poll sees it.
            }
        }
    }
}

impl Watched {
    fn take(&mut self, item: Watch) {
        match item {
            Watch::Proc(key, child) => self.procs.push((key, child)),
            Watch::Reap(child) => self.reap.push(child),
            Watch::Oom(id, o) => {
                self.ooms.insert(id, o);
            }
            Watch::Copy(mut c) => {
                if c.is_stdin() && self.stdin_closed.remove(c.owner()) {
                    c.close_when_drained();
                    if c.step() == Step::Done {
                        return;
                    }
                }
                self.copies.push(c);
            }
            Watch::CloseStdin(key) => {
                let mut found = false;
                for c in self.copies.iter_mut().filter(|c| c.is_stdin() && c.owner() == &key) {
                    c.close_when_drained();
                    found = true;
                }
                if found {
                    // Ends now if the source has nothing more: no poll would wake it.
                    self.copies
                        .retain_mut(|c| !(c.is_stdin() && c.owner() == &key && c.step() == Step::Done));
                } else {
                    self.stdin_closed.insert(key);
                }
            }
        }
    }

    /// Reports the exits whose output is drained (or whose grace ran out), OOM first for init.
    fn report_exits(&mut self, table: &Table) {
        if self.exited.is_empty() {
            return;
        }
        let now = Instant::now();
        let ready: Vec<ProcKey> = self
            .exited
            .iter()
            .filter(|(k, e)| e.until <= now || !self.copies.iter().any(|c| c.is_output() && c.owner() == *k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in ready {
            let Some(e) = self.exited.remove(&key) else { continue };
            // Copies still open after the grace (and stdin): what they still hold goes with them.
            self.copies.retain(|c| c.owner() != &key);
            self.stdin_closed.remove(&key);
            if key.1.is_empty() {
                if let Some(mut o) = self.ooms.remove(&key.0) {
                    let _ = check_oom(table, &key.0, &mut o);
                }
            }
            table.exited(&key, e.pid, e.code);
        }
    }
}

/// Publishes TaskOOM if the container ran out of memory since the last look; true when the
/// watcher has nothing more to say (its cgroup is gone, or it failed).
fn check_oom(table: &Table, id: &str, o: &mut moor::OomWatcher) -> bool {
    match o.check() {
        Ok(u) => {
            if u.any() {
                table.oom(id);
            }
            u.cgroup_gone
        }
        Err(e) => {
            log::error(&format!("{id}: OOM watcher: {e}"));
            true
        }
    }
}
