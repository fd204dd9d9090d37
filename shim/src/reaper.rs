//! The one thread that reaps the shim's container processes. It knows them by pidfd (the
//! helper hands back init's pidfd with every create), polls those pidfds and reaps each with
//! waitid(P_PIDFD) once it exits: never a wildcard waitpid(-1), which would steal the statuses
//! the library reaps itself (the helper's short-lived processes, `publish` children).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::log;
use crate::table::ProcKey;

/// What the reaper reports: the process (container id, exec id), its pid and exit code
/// (128+N for death by signal N).
pub type OnExit = Box<dyn Fn(&ProcKey, i32, i32) + Send>;

pub struct Reaper {
    /// Processes handed over since the thread last looked.
    incoming: Mutex<Vec<(ProcKey, moor::Child)>>,
    /// An eventfd that wakes the thread's poll when a process is handed over.
    wake: OwnedFd,
}

impl Reaper {
    pub fn spawn(on_exit: OnExit) -> Result<Arc<Reaper>> {
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
            .spawn(move || it.run(on_exit))
            .map_err(|e| Error::sys("start the reaper thread", e))?;
        Ok(reaper)
    }

    /// Hands a process over: the reaper reports its exit once (also if it has already exited).
    pub fn watch(&self, key: ProcKey, child: moor::Child) {
        self.incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key, child));
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd; EAGAIN (counter full) still wakes.
        unsafe { libc::write(self.wake.as_raw_fd(), std::ptr::from_ref(&one).cast(), 8) };
    }

    fn run(&self, on_exit: OnExit) {
        let mut watched: Vec<(ProcKey, moor::Child)> = Vec::new();
        loop {
            let mut fds = vec![libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            fds.extend(watched.iter().map(|(_, c)| libc::pollfd {
                fd: c.pidfd.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }));
            let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
            // SAFETY: `fds` is a live array of `n` pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), n, -1) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error(&format!("reaper: poll: {e}"));
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                continue;
            }
            // Exited processes first, by index from the end so removal keeps earlier indexes.
            for i in (1..fds.len()).rev() {
                if fds[i].revents == 0 {
                    continue;
                }
                let (key, child) = watched.swap_remove(i - 1);
                let code = child.wait().unwrap_or_else(|e| {
                    log::error(&format!("reaper: {}/{}: {e}", key.0, key.1));
                    255
                });
                log::debug(&format!(
                    "reaper: {}/{} (pid {}) exited with {code}",
                    key.0, key.1, child.pid
                ));
                on_exit(&key, child.pid, code);
            }
            if fds[0].revents != 0 {
                let mut count: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
                unsafe { libc::read(self.wake.as_raw_fd(), std::ptr::from_mut(&mut count).cast(), 8) };
                watched.append(&mut self.incoming.lock().unwrap_or_else(|p| p.into_inner()));
            }
        }
    }
}
