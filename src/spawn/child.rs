//! Processes moor starts, held by pidfd: waited for with waitid(P_PIDFD), never with a
//! wildcard wait, so a caller's other children keep their statuses. Also the one reply format a
//! short-lived middle process (which joins namespaces, then clones the real process) sends back,
//! and the single-threaded check every entry point that clones makes first.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};
use crate::sys;

/// A process moor started: its pid (as the caller's pid namespace sees it) and a pidfd for it.
/// The pidfd stays valid after the process exits; [`Child::wait`] reaps it, and only the process
/// that is its parent may do so (with the helper, that is the helper's caller).
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

impl Child {
    /// Waits for the process to exit and reaps it; returns its exit code (128+N for death by
    /// signal N).
    pub fn wait(&self) -> Result<i32> {
        sys::pidfd_reap(self.pidfd.as_fd()).map_err(|e| Error::sys(format!("wait for pid {}", self.pid), e))
    }

    /// Sends `signal` through the pidfd: never to another process that reused the pid.
    pub fn signal(&self, signal: i32) -> Result<()> {
        sys::pidfd_send_signal(self.pidfd.as_fd(), signal)
            .map_err(|e| Error::sys(format!("signal pid {}", self.pid), e))
    }
}

/// The number of threads of this process.
pub fn thread_count() -> Result<usize> {
    let dir = std::fs::read_dir("/proc/self/task").map_err(|e| Error::path("cannot read", "/proc/self/task", e))?;
    Ok(dir.count())
}

/// Entry points that clone and then run Rust code in the child (which may allocate, format,
/// take locks) refuse a multi-threaded caller: another thread may hold a lock (the allocator's,
/// stdio's) that the child inherits locked forever. Threaded callers use [`crate::Helper`].
pub fn ensure_single_threaded() -> Result<()> {
    match thread_count()? {
        1 => Ok(()),
        threads => Err(Error::ThreadedCaller { threads }),
    }
}

/// How a moor operation clones its processes. In-process, they are our children and we reap
/// them. In the helper, they are cloned with CLONE_PARENT, so they are children of the helper's
/// caller (who can then wait for their exit status); the helper cannot reap them, so the ones
/// that end early (a middle process, a process killed after a failure) are handed back in
/// `orphans` for the caller to reap.
#[derive(Default)]
pub(crate) struct Spawner {
    pub siblings: bool,
    pub orphans: Vec<Child>,
}

impl Spawner {
    /// CLONE_PARENT when the processes belong to the caller's parent.
    pub fn parent_flag(&self) -> u64 {
        if self.siblings {
            libc::CLONE_PARENT as u64
        } else {
            0
        }
    }

    /// Reaps a process that has ended or is about to: waits for it here, or leaves it to the
    /// real parent.
    pub fn reap(&mut self, child: Child) {
        if self.siblings {
            self.orphans.push(child);
        } else {
            let _ = child.wait();
        }
    }

    /// Kills a process that must not go on (a failure after the clone), then reaps it.
    pub fn kill(&mut self, child: Child) {
        let _ = child.signal(libc::SIGKILL);
        self.reap(child);
    }
}

/// A SOCK_SEQPACKET pair (close-on-exec): one message per send, so a reader never waits for EOF.
pub(crate) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::sys("socketpair", e))
}

/// Sends one message with `fds` attached (SCM_RIGHTS). No SIGPIPE when the peer is gone.
pub(crate) fn send_msg(socket: BorrowedFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsg: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(socket.as_raw_fd(), &iov, cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// The largest message [`recv_msg`] takes: a request with a whole process spec.
pub(crate) const MAX_MSG: usize = 1 << 20;
/// The most fds one message carries.
pub(crate) const MAX_FDS: usize = 64;

/// Receives one message and the fds attached to it (close-on-exec). Ok(None) at EOF.
pub(crate) fn recv_msg(socket: BorrowedFd) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(m) => m,
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel installed these fds for us; nothing else owns them.
                fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        let (n, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
        if truncated || msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "message too long"));
        }
        if n == 0 && fds.is_empty() {
            return Ok(None);
        }
        buf.truncate(n);
        return Ok(Some((buf, fds)));
    }
}

/// What a middle process reports after its clone: the new process's pid (as the parent sees it;
/// the middle shares its pid namespace) with its pidfd attached, or why there is none.
#[derive(serde::Serialize, serde::Deserialize)]
enum Reply {
    Cloned { pid: i32 },
    Failed { error: String },
}

/// The middle process's side: one message, the pidfd attached on success.
pub(crate) fn send_reply(socket: BorrowedFd, result: Result<Child>) {
    let (reply, fd) = match &result {
        Ok(child) => (Reply::Cloned { pid: child.pid }, Some(child.pidfd.as_raw_fd())),
        Err(e) => (Reply::Failed { error: e.to_wire() }, None),
    };
    let data = serde_json::to_vec(&reply).unwrap_or_default();
    let _ = send_msg(socket, &data, fd.as_slice());
}

/// The parent's side: the new process, or the middle process's error (as [`Error::Init`]).
/// EOF without a reply: the middle process died.
pub(crate) fn recv_reply(socket: BorrowedFd) -> Result<Child> {
    let gone = |why: String| Error::Init {
        kind: crate::error::Kind::Init,
        message: format!("the process that joins the namespaces: {why}"),
    };
    let (data, mut fds) = recv_msg(socket)
        .map_err(|e| gone(e.to_string()))?
        .ok_or_else(|| gone("exited without a reply".into()))?;
    match serde_json::from_slice(&data).map_err(|e| gone(format!("bad reply: {e}")))? {
        Reply::Cloned { pid } if fds.len() == 1 => Ok(Child {
            pid,
            pidfd: fds.remove(0),
        }),
        Reply::Cloned { .. } => Err(gone("no pidfd with the reply".into())),
        Reply::Failed { error } => Err(Error::from_wire(error.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threaded_caller_is_refused() {
        // The test harness runs this test on a thread of its own: the process has two at least.
        let err = ensure_single_threaded().unwrap_err();
        assert!(
            matches!(err, Error::ThreadedCaller { threads } if threads >= 2),
            "{err}"
        );
    }

    #[test]
    fn replies_round_trip_with_the_pidfd() {
        let (a, b) = seqpacket_pair().unwrap();
        let me = sys::pidfd_open(i32::try_from(std::process::id()).unwrap()).unwrap();
        send_reply(a.as_fd(), Ok(Child { pid: 42, pidfd: me }));
        let got = recv_reply(b.as_fd()).unwrap();
        assert_eq!(got.pid, 42);
        send_reply(
            a.as_fd(),
            Err(Error::Config {
                field: "f".into(),
                reason: "boom".into(),
            }),
        );
        let e = recv_reply(b.as_fd()).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Config);
        assert_eq!(e.to_string(), "container init: config.json: f: boom");
        drop(a);
        assert!(recv_reply(b.as_fd()).is_err());
    }
}
