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
/// and read from a signalfd; SIGCHLD ends the wait, SIGWINCH resizes the terminal, everything
/// else is forwarded to init.
pub struct Forwarder {
    sfd: OwnedFd,
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
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(Error::last_os("block signals"));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(Error::last_os("signalfd"));
            }
            Ok(Forwarder {
                sfd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Forwards signals (and relays the terminal) until init exits; returns its exit code.
    pub fn forward_until_exit(&self, pid: i32, master: Option<BorrowedFd>) -> Result<i32> {
        let raw_guard = master.and_then(|_| RawMode::enter(0));
        if let (Some(m), Some((rows, cols))) = (master, crate::sys::terminal::get_size(stdin())) {
            let _ = crate::sys::terminal::set_size(m, rows, cols);
        }
        let mut stdin_open = master.is_some();
        loop {
            let mut fds = vec![libc::pollfd {
                fd: self.sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
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
                if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 && !copy(m.as_raw_fd(), 1) {
                    // The pty closed: the workload is gone or closed its terminal.
                }
                if stdin_open
                    && fds.len() > 2
                    && fds[2].revents & (libc::POLLIN | libc::POLLHUP) != 0
                    && !copy(0, m.as_raw_fd())
                {
                    stdin_open = false;
                }
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
                libc::SIGCHLD => {
                    // Reap every exited child (a middle process, our workload): one SIGCHLD may
                    // stand for several, and the workload's status must not be lost to a
                    // wildcard wait.
                    loop {
                        let mut status = 0;
                        // SAFETY: non-blocking wait for any of our children.
                        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                        if r <= 0 {
                            break;
                        }
                        if r == pid {
                            if let Some(m) = master {
                                while copy(m.as_raw_fd(), 1) {}
                            }
                            drop(raw_guard);
                            return Ok(if libc::WIFSIGNALED(status) {
                                128 + libc::WTERMSIG(status)
                            } else {
                                libc::WEXITSTATUS(status)
                            });
                        }
                    }
                }
                libc::SIGWINCH => {
                    if let (Some(m), Some((rows, cols))) = (master, crate::sys::terminal::get_size(stdin())) {
                        let _ = crate::sys::terminal::set_size(m, rows, cols);
                    }
                }
                sig => {
                    // SAFETY: forwarding a signal to our own child.
                    unsafe { libc::kill(pid, sig) };
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
