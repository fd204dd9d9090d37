//! The switch to the container's user, done by init (the parent writes the id maps:
//! spawn/idmap.rs). Users are numeric: nothing is ever looked up by name (CVE-2016-3697).

use std::fs;

use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::unistd::{setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

use crate::error::{Error, Result};

/// Becomes root of a freshly mapped user namespace (the clone started as the overflow uid).
pub fn become_ns_root() -> Result<()> {
    let (uid, gid) = (Uid::from_raw(0), Gid::from_raw(0));
    if let Err(e) = setresgid(gid, gid, gid) {
        return Err(Error::sys(
            "setresgid(0) in the new user namespace (is container gid 0 mapped?)",
            e,
        ));
    }
    if let Err(e) = setresuid(uid, uid, uid) {
        return Err(Error::sys(
            "setresuid(0) in the new user namespace (is container uid 0 mapped?)",
            e,
        ));
    }
    Ok(())
}

/// True when this process may call setgroups(2): false inside a user namespace whose
/// setgroups file says "deny".
pub fn setgroups_allowed() -> bool {
    fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// Gives stdio (fds 0-2) to the workload's user, keeping the group, as runc does: a non-root
/// workload can then reopen /dev/stdout or /proc/self/fd/1 (a pipe or a file from the caller,
/// or its own pty). Character devices other than the container's own pty are left alone: the
/// caller's /dev/null or terminal is a host device, and chowning it would hand it to a
/// container uid. Like runc, errors that say the owner cannot be mapped or changed here
/// (EINVAL, EPERM, EROFS) leave the fd as it is.
pub fn chown_stdio(uid: u32, pty: Option<&std::os::fd::OwnedFd>) -> Result<()> {
    use std::os::fd::AsFd;
    let pty_inode = pty
        .and_then(|p| crate::init::rootfs::paths::fstat(p.as_fd()).ok())
        .map(|st| (st.st_dev, st.st_ino));
    for fd in 0..3 {
        // A closed one fails fstat with EBADF.
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        if st.st_uid == uid {
            continue;
        }
        let ours = pty_inode == Some((st.st_dev, st.st_ino));
        if st.st_mode & libc::S_IFMT == libc::S_IFCHR && !ours {
            continue;
        }
        match nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(st.st_gid))) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => return Err(Error::sys(format!("give stdio fd {fd} to process.user.uid {uid}"), e)),
        }
    }
    Ok(())
}

/// Sets the workload's umask: process.user.umask, else runc's default 0022.
pub fn set_umask(user: &User) {
    let umask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(Mode::from_bits_truncate(umask as libc::mode_t));
}

/// Switches to the configured uid, gid and supplementary groups, keeping the permitted
/// capabilities for the capset that follows. `setgroups` is [`setgroups_allowed`], asked before
/// a seccomp filter went in.
pub fn switch(user: &User, setgroups: bool) -> Result<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|&g| Gid::from_raw(g))
        .collect();
    if setgroups {
        nix::unistd::setgroups(&gids).map_err(|e| Error::sys("process.user.additionalGids: setgroups", e))?;
    } else if !gids.is_empty() {
        return Err(Error::config(
            "process.user.additionalGids",
            "cannot set supplementary groups: setgroups is denied in this user namespace",
        ));
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|e| Error::sys("PR_SET_KEEPCAPS", e))?;
    let (uid, gid) = (user.uid(), user.gid());
    setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))
        .map_err(|e| Error::sys(format!("process.user.gid: setresgid({gid})"), e))?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
        .map_err(|e| Error::sys(format!("process.user.uid: setresuid({uid})"), e))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| Error::sys("PR_SET_KEEPCAPS", e))?;
    Ok(())
}
