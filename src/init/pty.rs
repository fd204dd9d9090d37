//! process.terminal inside the container: a pty made from the container's own devpts (its
//! master goes to the caller over the console socket), its slave becoming the workload's
//! controlling terminal and /dev/console.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::init::rootfs::paths;

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

/// Makes the slave our controlling terminal and our stdio.
pub fn become_controlling(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
    // SAFETY: TIOCSCTTY with 0: take the terminal only if it has no controlling session.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::last_os("make the pty the controlling terminal"));
    }
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).map_err(|e| Error::sys("dup the pty onto stdio", e))?;
    }
    Ok(())
}
