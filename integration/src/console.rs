//! Receiver for `create --console-socket`: a unix socket listener that accepts one connection
//! and receives one fd via SCM_RIGHTS.

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct ConsoleReceiver {
    pub path: PathBuf,
    rx: mpsc::Receiver<Result<OwnedFd, String>>,
    _thread: JoinHandle<()>,
}

impl ConsoleReceiver {
    /// Listens on `<dir>/console.sock`.
    pub fn new(dir: &Path) -> ConsoleReceiver {
        let path = dir.join("console.sock");
        let listener = UnixListener::bind(&path).expect("bind console socket");
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let r = (|| -> Result<OwnedFd, String> {
                let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
                let mut buf = [0u8; 4096];
                let mut iov = [IoSliceMut::new(&mut buf)];
                let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
                let msg = recvmsg::<UnixAddr>(conn.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
                    .map_err(|e| format!("recvmsg: {e}"))?;
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
                    if let ControlMessageOwned::ScmRights(v) = c {
                        fds.extend(v);
                    }
                }
                let mut owned: Vec<OwnedFd> = fds
                    .into_iter()
                    // SAFETY: received via SCM_RIGHTS, we are the sole owner.
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                    .collect();
                if owned.len() != 1 {
                    return Err(format!("expected exactly one fd, got {}", owned.len()));
                }
                Ok(owned.pop().unwrap())
            })();
            let _ = tx.send(r);
        });
        ConsoleReceiver {
            path,
            rx,
            _thread: thread,
        }
    }

    /// The received fd (waits up to `timeout`).
    pub fn recv(&self, timeout: Duration) -> Result<OwnedFd, String> {
        self.rx
            .recv_timeout(timeout)
            .map_err(|e| format!("no fd received on console socket: {e}"))?
    }
}

/// The pty number of a pty master (TIOCGPTN), or None if `fd` is not a pty master.
pub fn pty_number(fd: &OwnedFd) -> Option<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    (r == 0).then_some(n)
}

/// Reads from `fd` until `pred(all_output)` holds, EOF/EIO (slave closed), or the timeout.
pub fn read_until(fd: &OwnedFd, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            break;
        }
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break; // EIO once every slave fd is closed
        }
        out.extend_from_slice(&buf[..n.unsigned_abs()]);
        if pred(&String::from_utf8_lossy(&out)) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
