//! The host's half of process.terminal: the pty master handed to the caller over the console
//! socket (SCM_RIGHTS, as runc does) and the window size copied onto it. The pty itself is
//! made inside the container (init/pty.rs).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};

/// A process.consoleSize dimension as the u16 a winsize holds; larger ones are capped.
pub fn console_dim(v: u64) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

pub fn set_size(fd: BorrowedFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(Error::last_os("set the console size"));
    }
    Ok(())
}

pub fn get_size(fd: BorrowedFd) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data filled by TIOCGWINSZ.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    (unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Sends one fd over a unix socket with SCM_RIGHTS, with `payload` as the message.
pub fn send_fd(socket: BorrowedFd, fd: BorrowedFd, payload: &[u8], what: &str) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let mut sent = 0;
    while sent < payload.len() {
        let iov = [IoSlice::new(&payload[sent..])];
        // The fd rides on the first chunk only.
        let cmsg: &[ControlMessage] = if sent == 0 { &cmsg } else { &[] };
        sent += sendmsg::<()>(socket.as_raw_fd(), &iov, cmsg, MsgFlags::MSG_NOSIGNAL, None)
            .map_err(|e| Error::sys(format!("send {what}"), e))?;
    }
    Ok(())
}

/// Receives one fd sent with SCM_RIGHTS.
pub fn recv_fd(socket: BorrowedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("receive the pty master", e))?;
    for c in msg.cmsgs().map_err(|e| Error::sys("receive the pty master", e))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::Init("no fd arrived over the console socket".into()))
}
