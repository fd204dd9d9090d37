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

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `run`'s signal handling: every catchable signal is blocked before the container is cloned
/// and read from a signalfd; SIGWINCH resizes the terminal, everything else but SIGCHLD is
/// forwarded to the process. Its exit is seen on its pidfd, and only it is reaped. The caller's
/// signal mask is restored when the forwarder is dropped.
pub struct Forwarder {
    sfd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `block`; signals that arrived meanwhile stay
        // pending and are delivered as the caller's own handlers or defaults say.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}

impl Forwarder {
    pub fn block() -> Result<Forwarder> {
        // SAFETY: sigset manipulation on a local set, then one sigprocmask and signalfd call.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            libc::sigdelset(&mut set, libc::SIGKILL);
            libc::sigdelset(&mut set, libc::SIGSTOP);
            for s in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL] {
                libc::sigdelset(&mut set, s);
            }
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old_mask) != 0 {
                return Err(Error::last_os("block signals"));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                let e = Error::last_os("signalfd");
                libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
                return Err(e);
            }
            Ok(Forwarder {
                sfd: OwnedFd::from_raw_fd(fd),
                old_mask,
            })
        }
    }

    /// Forwards signals (and relays the terminal) until `child` exits; reaps it and returns its
    /// exit code.
    pub fn forward_until_exit(&self, child: &crate::spawn::child::Child, master: Option<BorrowedFd>) -> Result<i32> {
        let raw_guard = master.and_then(|_| RawMode::enter(0));
        if let (Some(m), Some((rows, cols))) = (master, crate::sys::terminal::get_size(stdin())) {
            let _ = crate::sys::terminal::set_size(m, rows, cols);
        }
        let mut stdin_open = master.is_some();
        loop {
            let mut fds = vec![
                libc::pollfd {
                    fd: self.sfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: child.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if let Some(m) = master {
                fds.push(libc::pollfd {
                    fd: m.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                if stdin_open {
                    fds.push(libc::pollfd {
                        fd: 0,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            // SAFETY: fds is a valid array of pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(Error::last_os("poll"));
            }
            if let Some(m) = master {
                if fds[2].revents & (libc::POLLIN | libc::POLLHUP) != 0 && !copy(m.as_raw_fd(), 1) {
                    // The pty closed: the workload is gone or closed its terminal.
                }
                if stdin_open
                    && fds.len() > 3
                    && fds[3].revents & (libc::POLLIN | libc::POLLHUP) != 0
                    && !copy(0, m.as_raw_fd())
                {
                    stdin_open = false;
                }
            }
            if fds[1].revents & libc::POLLIN != 0 {
                // Exited: what it wrote last still comes through the pty.
                if let Some(m) = master {
                    while copy(m.as_raw_fd(), 1) {}
                }
                drop(raw_guard);
                return child.wait();
            }
            if fds[0].revents & libc::POLLIN == 0 {
                continue;
            }
            // SAFETY: signalfd_siginfo is plain data filled by read(2).
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: reading one siginfo into a buffer of its size.
            let n = unsafe {
                libc::read(
                    self.sfd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if n <= 0 {
                continue;
            }
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
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    // SAFETY: to is a valid fd for the life of the borrow.
    crate::sys::write_all(unsafe { BorrowedFd::borrow_raw(to) }, &buf[..n.unsigned_abs()]).is_ok()
}

/// The caller's terminal in raw mode while moor relays a container's terminal.
struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid out pointer; fails harmlessly when fd is not a tty.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        // SAFETY: cfmakeraw edits a valid termios; tcsetattr applies it.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes saved at enter.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
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
