//! The typed protocol between the parent (`moor create`) and the container's init, over one
//! SOCK_SEQPACKET socketpair (message boundaries kept, no framing needed). The parent drives;
//! init only ever answers the step it was asked for or reports an error and exits.
//!
//! ```text
//!  parent                                   init (in the new namespaces)
//!  clone3 ───────────────────────────────▶  waits
//!  [new userns] write uid_map, gid_map
//!  Continue ─────────────────────────────▶  become root of the userns
//!                                           [new timens] unshare(CLONE_NEWTIME)
//!                      ◀───────────────────  TimeNsReady
//!  write timens_offsets
//!  Continue ─────────────────────────────▶  build the rootfs up to pivot_root
//!                      ◀───────────────────  RunRuntimeHooks
//!  prestart, createRuntime hooks
//!  State(json) ──────────────────────────▶  createContainer hooks, pivot_root, masks,
//!                                           process attributes, credentials, capabilities
//!                      ◀───────────────────  Created
//!  write state "created", pid file, exit     open exec.fifo for writing: blocks until `start`
//!
//!  any step:           ◀───────────────────  Error(text); init exits
//!  parent kills init, removes everything it made, reports the text
//! ```

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    Continue,
    TimeNsReady,
    RunRuntimeHooks,
    Created,
    /// Parent → init: the container state (JSON) for the createContainer and startContainer
    /// hooks, sent in answer to RunRuntimeHooks.
    State(String),
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Continue => vec![b'c'],
            Msg::TimeNsReady => vec![b't'],
            Msg::RunRuntimeHooks => vec![b'h'],
            Msg::Created => vec![b'r'],
            Msg::State(json) => {
                let mut v = vec![b's'];
                v.extend_from_slice(json.as_bytes());
                v
            }
            Msg::Error(text) => {
                let mut v = vec![b'e'];
                v.extend_from_slice(text.as_bytes());
                v
            }
        }
    }

    fn decode(buf: &[u8]) -> io::Result<Msg> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "unknown sync message");
        Ok(match buf.split_first().ok_or_else(bad)? {
            (b'c', []) => Msg::Continue,
            (b't', []) => Msg::TimeNsReady,
            (b'h', []) => Msg::RunRuntimeHooks,
            (b'r', []) => Msg::Created,
            (b's', json) => Msg::State(String::from_utf8_lossy(json).into_owned()),
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
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let data = msg.encode();
        loop {
            // write, not send: init sends Created after the container's seccomp filter is in, and
            // a profile may deny sendto. A dead peer is EPIPE in moor (SIGPIPE ignored) and
            // SIGPIPE in init (default action), which then has nobody to report to anyway.
            // SAFETY: data is a valid buffer.
            let n = unsafe { libc::write(self.0.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    /// Receives one message; a closed peer is `UnexpectedEof`.
    pub fn recv(&self) -> io::Result<Msg> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                return Msg::decode(&buf[..n as usize]);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the sync socket",
                ));
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Continue,
            Msg::TimeNsReady,
            Msg::RunRuntimeHooks,
            Msg::Created,
            Msg::State("{}".into()),
            Msg::Error("no: 42".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), m);
        }
        drop(a);
        assert_eq!(b.recv().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
