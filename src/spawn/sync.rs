//! The typed protocol between the parent (`moor create`) and the container's init, over one
//! SOCK_SEQPACKET socketpair (message boundaries kept, no framing needed). The parent drives;
//! init only ever answers the step it was asked for or reports an error and exits. Messages are
//! small and fixed in shape: nothing the config makes large (the container state with its
//! annotations) crosses the socket, init builds that itself from what it shares with the parent.
//!
//! Neither side can outlive the other unnoticed. Init closes its copy of the parent's end first
//! thing, so the parent's death is EOF on init's next read (ECONNRESET if the parent died with
//! a message of init's unread; EPIPE or SIGPIPE on init's next write), and
//! PR_SET_PDEATHSIG covers the steps between two reads until a credential change clears it.
//! The parent records the init pid and the cgroup before it drives anything, so a parent killed
//! at any step leaves a state that `state` and `delete` can act on.
//!
//! ```text
//!  parent                                   init (in the new namespaces)
//!  save state "creating" (planned cgroup)
//!  make the cgroup
//!  clone3 ───────────────────────────────▶  close the parent's end, PDEATHSIG, wait
//!  save pid (and the cgroup as made)
//!  [v1] join init to the cgroup
//!  [new userns] write uid_map, gid_map
//!  Continue ─────────────────────────────▶  become root of the userns (PDEATHSIG again)
//!                                           [new timens] unshare(CLONE_NEWTIME)
//!                      ◀───────────────────  TimeNsReady
//!  write timens_offsets
//!  Continue ─────────────────────────────▶  build the rootfs up to pivot_root
//!                      ◀───────────────────  RunRuntimeHooks
//!  prestart, createRuntime hooks
//!  HooksDone(pid) ───────────────────────▶  createContainer hooks (state built by init,
//!                                           status "creating"), pivot_root, masks, process
//!                                           attributes, credentials, capabilities, seccomp
//!                      ◀───────────────────  Created(notify fd number, if any)
//!  [notify] pidfd_getfd, send it to listenerPath
//!  save state "created", pid file
//!  Continue ─────────────────────────────▶  open exec.fifo for writing: blocks until `start`
//!  exit                                     (EOF or ECONNRESET instead: the parent died, exit)
//!
//!  any step:           ◀───────────────────  Error(text); init exits
//!  parent kills init, removes everything it made, reports the text
//! ```
//!
//! `exec` uses the same channel for one exchange: the new process, its seccomp filter in,
//! sends Created(notify fd number) and waits for Continue before its execve.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

/// The longest error text sent; longer ones are cut (on a char boundary) and marked.
const MAX_TEXT: usize = 16 * 1024;
const CUT: &[u8] = b" [cut]";
/// The longest message: a tag and the longest error text.
const MAX_MSG: usize = 1 + MAX_TEXT + CUT.len();
/// Larger than any message; a read that fills it means a peer that does not speak this protocol.
const RECV_BUF: usize = MAX_MSG + 1;

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Parent → init: go on with the next step.
    Continue,
    /// Init → parent: a new time namespace is unshared; write its offsets.
    TimeNsReady,
    /// Init → parent: the rootfs is ready up to pivot_root; run prestart and createRuntime.
    RunRuntimeHooks,
    /// Parent → init: those hooks ran. `pid` is init's pid as the runtime sees it, for the
    /// container state init gives its own hooks.
    HooksDone {
        pid: i32,
    },
    /// Init → parent: everything up to execve is done. `seccomp_fd` is init's descriptor number
    /// of the seccomp user-notification listener, for the parent to take with pidfd_getfd.
    Created {
        seccomp_fd: Option<i32>,
    },
    Error(String),
}

impl Msg {
    /// Writes the message into `buf` and returns its length. No allocation: init sends Created
    /// with the container's seccomp filter in, where a profile may deny brk and mmap.
    fn encode(&self, buf: &mut [u8; MAX_MSG]) -> usize {
        let mut put = |tag: u8, parts: &[&[u8]]| {
            buf[0] = tag;
            let mut n = 1;
            for p in parts {
                buf[n..n + p.len()].copy_from_slice(p);
                n += p.len();
            }
            n
        };
        match self {
            Msg::Continue => put(b'c', &[]),
            Msg::TimeNsReady => put(b't', &[]),
            Msg::RunRuntimeHooks => put(b'h', &[]),
            Msg::HooksDone { pid } => put(b'p', &[&pid.to_le_bytes()]),
            Msg::Created { seccomp_fd: None } => put(b'r', &[]),
            Msg::Created { seccomp_fd: Some(fd) } => put(b'r', &[&fd.to_le_bytes()]),
            Msg::Error(text) if text.len() <= MAX_TEXT => put(b'e', &[text.as_bytes()]),
            Msg::Error(text) => {
                let mut end = MAX_TEXT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                put(b'e', &[&text.as_bytes()[..end], CUT])
            }
        }
    }

    fn decode(buf: &[u8]) -> io::Result<Msg> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sync message");
        let int = |b: &[u8]| b.try_into().map(i32::from_le_bytes).map_err(|_| bad());
        Ok(match buf.split_first().ok_or_else(bad)? {
            (b'c', []) => Msg::Continue,
            (b't', []) => Msg::TimeNsReady,
            (b'h', []) => Msg::RunRuntimeHooks,
            (b'p', pid) => Msg::HooksDone { pid: int(pid)? },
            (b'r', []) => Msg::Created { seccomp_fd: None },
            (b'r', fd) => Msg::Created {
                seccomp_fd: Some(int(fd)?).filter(|fd| *fd >= 0),
            },
            (b'e', text) => Msg::Error(String::from_utf8_lossy(text).into_owned()),
            _ => return Err(bad()),
        })
    }
}

/// One end of the sync socket.
pub struct Channel(OwnedFd);

pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The descriptor, for the child that inherits this end and must close it.
    pub fn raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// Sends with MSG_NOSIGNAL: a dead peer is EPIPE, never a SIGPIPE for the library's caller.
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        self.send_with(msg, |fd, data| {
            nix::sys::socket::send(fd.as_raw_fd(), data, MsgFlags::MSG_NOSIGNAL)
        })
    }

    /// Sends with write(2), for a process whose seccomp filter is in: a profile may deny sendto
    /// but not write. A dead peer then raises SIGPIPE in that process (at its default action),
    /// which has nobody left to report to anyway.
    pub fn send_after_filter(&self, msg: &Msg) -> io::Result<()> {
        self.send_with(msg, |fd, data| nix::unistd::write(fd, data))
    }

    fn send_with(&self, msg: &Msg, op: impl Fn(BorrowedFd, &[u8]) -> nix::Result<usize>) -> io::Result<()> {
        let mut buf = [0u8; MAX_MSG];
        let len = msg.encode(&mut buf);
        loop {
            match op(self.0.as_fd(), &buf[..len]) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map(drop).map_err(io::Error::from),
            }
        }
    }

    /// Waits for the parent's Continue with the container's seccomp filter in. A read the profile
    /// denies (EPERM or ENOSYS, what a filter answers; a socket read never does) is no answer
    /// at all: the caller goes on without it. Any other error means the parent is gone: EOF, or
    /// ECONNRESET when it died before reading what we sent.
    pub fn wait_continue_filtered(&self) -> io::Result<()> {
        match self.recv() {
            Ok(Msg::Continue) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => Ok(()),
            Ok(_) => Err(io::ErrorKind::InvalidData.into()),
            Err(e) => Err(e),
        }
    }

    /// Receives one message; a closed peer is `UnexpectedEof`. read, not recv, for the same
    /// reason as in `send`: init waits for the parent's answer to Created with its filter in.
    pub fn recv(&self) -> io::Result<Msg> {
        let mut buf = [0u8; RECV_BUF];
        loop {
            match nix::unistd::read(self.0.as_raw_fd(), &mut buf) {
                Ok(n) if n == buf.len() => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "sync message too long"))
                }
                Ok(0) => {
                    // The peer closed its end: it is dead (or exec'd). No message text: that
                    // would allocate, and init may meet this with its filter in.
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => return Msg::decode(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Msg> {
        vec![
            Msg::Continue,
            Msg::TimeNsReady,
            Msg::RunRuntimeHooks,
            Msg::HooksDone { pid: 4242 },
            Msg::HooksDone { pid: i32::MIN },
            Msg::Created { seccomp_fd: None },
            Msg::Created { seccomp_fd: Some(7) },
            Msg::Error("no: 42".into()),
            Msg::Error(String::new()),
        ]
    }

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in all() {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), m);
        }
        drop(a);
        assert_eq!(b.recv().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    fn encode(m: &Msg) -> Vec<u8> {
        let mut buf = [0u8; MAX_MSG];
        let len = m.encode(&mut buf);
        buf[..len].to_vec()
    }

    #[test]
    fn a_long_error_is_cut_not_lost() {
        let (a, b) = pair().unwrap();
        let text = "é".repeat(MAX_TEXT);
        a.send(&Msg::Error(text.clone())).unwrap();
        match b.recv().unwrap() {
            Msg::Error(got) => {
                assert!(got.ends_with(" [cut]") && got.len() <= MAX_TEXT + 6, "{}", got.len());
                assert!(text.starts_with(got.trim_end_matches(" [cut]")));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Every prefix and every one-byte change of every message decodes to a message or an error.
    #[test]
    fn truncated_or_altered_messages_never_panic() {
        for m in all() {
            let enc = encode(&m);
            for len in 0..=enc.len() {
                let _ = Msg::decode(&enc[..len]);
            }
            for i in 0..enc.len() {
                for b in 0..=255u8 {
                    let mut v = enc.clone();
                    v[i] = b;
                    let _ = Msg::decode(&v);
                    v.push(b);
                    let _ = Msg::decode(&v);
                }
            }
        }
        assert!(Msg::decode(&[]).is_err());
        assert!(Msg::decode(b"p\x01\x02\x03").is_err());
        assert!(Msg::decode(b"r\x01\x02").is_err());
        assert!(Msg::decode(b"cc").is_err());
        assert_eq!(
            Msg::decode(b"r\xff\xff\xff\xff").unwrap(),
            Msg::Created { seccomp_fd: None }
        );
    }

    /// Random buffers (a fixed-seed xorshift, so a failure reproduces): every length up to 64
    /// bytes, with each tag byte, decode without panicking; the valid shapes decode as expected.
    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200_000 {
            let len = usize::try_from(next() % 64).unwrap();
            let mut v: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            if let Some(first) = v.first_mut() {
                // Half the buffers start with a real tag, so the payload checks are reached.
                if round % 2 == 0 {
                    *first = b"cthpre"[(next() % 6) as usize];
                }
            }
            if let Ok(m) = Msg::decode(&v) {
                // What decodes must re-encode to the same bytes, except the canonical forms
                // (a negative fd number is "none"; invalid UTF-8 in error text is replaced).
                if !matches!(m, Msg::Error(_) | Msg::Created { .. }) {
                    assert_eq!(encode(&m), v, "{m:?}");
                }
            }
        }
    }

    #[test]
    fn a_reader_whose_peer_speaks_too_much_gets_an_error() {
        let (a, b) = pair().unwrap();
        let big = vec![b'e'; RECV_BUF + 10];
        assert_eq!(nix::unistd::write(&a.0, &big).unwrap(), big.len());
        assert_eq!(b.recv().unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
