//! process.terminal: a pty made from the container's own devpts, its master handed to the
//! caller over the console socket (SCM_RIGHTS, as runc does), its slave becoming the workload's
//! controlling terminal and /dev/console.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};
use crate::rootfs::paths;

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Opens a new pty from the container's /dev/ptmx (resolved inside the root) and gets its
/// slave with TIOCGPTPEER, so no path lookup can substitute another file for the slave.
pub fn open_pty(root: BorrowedFd) -> Result<Pty> {
    let master = paths::open_file_in_root(root, Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY)
        .map_err(|e| Error::sys("open /dev/ptmx in the container", e))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(Error::last_os("unlock the pty"));
    }
    // SAFETY: TIOCGPTPEER returns a new fd for the slave of this master.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(Error::last_os("open the pty slave (TIOCGPTPEER)"));
    }
    // SAFETY: the kernel just returned this fd.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let st = paths::fstat(slave.as_fd()).map_err(|e| Error::sys("fstat pty slave", e))?;
    let major = libc::major(st.st_rdev);
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || !(136..=143).contains(&major) {
        return Err(Error::refused("the pty slave", "is not a pts device"));
    }
    Ok(Pty { master, slave })
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

/// Makes the slave our controlling terminal and our stdio.
pub fn become_controlling(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
    // SAFETY: TIOCSCTTY with 0: take the terminal only if it has no controlling session.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::last_os("make the pty the controlling terminal"));
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the stdio numbers.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(Error::last_os("dup the pty onto stdio"));
        }
    }
    Ok(())
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
    Err(Error::refused("the console socket", "no fd arrived over it"))
}
