//! Signal names and numbers as `kill` accepts them: "KILL", "SIGKILL", "9".

use crate::error::{Error, Result};

pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 only checks that the process exists (kill(2)), as runc allows.
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::InvalidState(format!("invalid signal {s:?}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if let Some(rt) = name.strip_prefix("SIGRTMIN+") {
        if let Ok(n) = rt.parse::<i32>() {
            return Ok(libc::SIGRTMIN() + n);
        }
    }
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::InvalidState(format!("unknown signal {s:?}")))
}

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// `run`'s signal handling: every catchable signal is blocked before the container is cloned
/// and read from a signalfd; SIGWINCH resizes the terminal, everything else but SIGCHLD is
/// forwarded to the process. Its exit is seen on its pidfd, and only it is reaped. The caller's
/// signal mask is restored when the forwarder is dropped.
pub struct Forwarder {
    sfd: SignalFd,
    old_mask: SigSet,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // Restores the mask saved by `block`; signals that arrived meanwhile stay pending and
        // are delivered as the caller's own handlers or defaults say.
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}

impl Forwarder {
    pub fn block() -> Result<Forwarder> {
        // Every signal, the real-time ones too (sigfillset), but those that cannot be or must
        // not be blocked.
        let mut set = SigSet::all();
        for s in [
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGFPE,
            Signal::SIGILL,
        ] {
            set.remove(s);
        }
        let mut old_mask = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old_mask))
            .map_err(|e| Error::sys("block signals", e))?;
        match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) {
            Ok(sfd) => Ok(Forwarder { sfd, old_mask }),
            Err(e) => {
                let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
                Err(Error::sys("signalfd", e))
            }
        }
    }

    /// Forwards signals (and relays the terminal) until `child` exits; reaps it and returns its
    /// exit code.
    pub fn forward_until_exit(&self, child: &crate::spawn::child::Child, master: Option<BorrowedFd>) -> Result<i32> {
        let raw_guard = master.and_then(|_| RawMode::enter(stdin()));
        if let (Some(m), Some((rows, cols))) = (master, crate::sys::terminal::get_size(stdin())) {
            let _ = crate::sys::terminal::set_size(m, rows, cols);
        }
        let mut stdin_open = master.is_some();
        loop {
            let mut fds = vec![
                PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(child.pidfd.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(m) = master {
                fds.push(PollFd::new(m, PollFlags::POLLIN));
                if stdin_open {
                    fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("poll", e)),
                Ok(_) => {}
            }
            // The kernel reports only the asked-for POLLIN and POLLERR, POLLHUP, POLLNVAL: all
            // known to nix, so revents() is never None here.
            let ready =
                |i: usize, on: PollFlags| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| r.intersects(on));
            if let Some(m) = master {
                if ready(2, PollFlags::POLLIN | PollFlags::POLLHUP) && !copy(m.as_raw_fd(), 1) {
                    // The pty closed: the workload is gone or closed its terminal.
                }
                if stdin_open && ready(3, PollFlags::POLLIN | PollFlags::POLLHUP) && !copy(0, m.as_raw_fd()) {
                    stdin_open = false;
                }
            }
            if ready(1, PollFlags::POLLIN) {
                // Exited: what it wrote last still comes through the pty.
                if let Some(m) = master {
                    while copy(m.as_raw_fd(), 1) {}
                }
                drop(raw_guard);
                return child.wait();
            }
            if !ready(0, PollFlags::POLLIN) {
                continue;
            }
            let Ok(Some(info)) = self.sfd.read_signal() else {
                continue;
            };
            match i32::try_from(info.ssi_signo).unwrap_or(0) {
                // Its exit is seen on its pidfd; other children are not ours to reap.
                libc::SIGCHLD => {}
                libc::SIGWINCH => {
                    if let (Some(m), Some((rows, cols))) = (master, crate::sys::terminal::get_size(stdin())) {
                        let _ = crate::sys::terminal::set_size(m, rows, cols);
                    }
                }
                sig => {
                    let _ = child.signal(sig);
                }
            }
        }
    }
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// Copies what is available from one fd to another; false at EOF or error.
fn copy(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    let n = match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => return false,
        Ok(n) => n,
    };
    // SAFETY: to is a valid fd for the life of the borrow.
    crate::sys::write_all(unsafe { BorrowedFd::borrow_raw(to) }, &buf[..n]).is_ok()
}

/// The caller's terminal in raw mode while moor relays a container's terminal.
struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'static>) -> Option<RawMode> {
        // Fails harmlessly when fd is not a tty.
        let saved = tcgetattr(fd).ok()?;
        let mut t = saved.clone();
        cfmakeraw(&mut t);
        let _ = tcsetattr(fd, SetArg::TCSANOW, &t);
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_numbers() {
        assert_eq!(super::parse("KILL").unwrap(), 9);
        assert_eq!(super::parse("sigterm").unwrap(), 15);
        assert_eq!(super::parse("10").unwrap(), 10);
        assert!(super::parse("NOPE").is_err());
        assert_eq!(super::parse("0").unwrap(), 0);
        assert!(super::parse("65").is_err());
    }
}
