//! User namespace mappings (written by the parent) and the switch to the container's user
//! (done by init). Users are numeric: nothing is ever looked up by name (CVE-2016-3697).

use std::fs;
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, User};

use crate::error::{Error, Result};

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes setgroups (when needed), uid_map and gid_map of a child's new user namespace.
/// `deny_setgroups` is required when the writer is not privileged over the parent namespace.
pub fn write_id_maps(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping], deny_setgroups: bool) -> Result<()> {
    let proc = Path::new("/proc").join(pid.to_string());
    if deny_setgroups {
        let p = proc.join("setgroups");
        fs::write(&p, "deny").map_err(|e| Error::path("cannot write", p, e))?;
    }
    let p = proc.join("uid_map");
    fs::write(&p, map_text(uid))
        .map_err(|e| Error::config("linux.uidMappings", format!("writing {}: {e}", p.display())))?;
    let p = proc.join("gid_map");
    fs::write(&p, map_text(gid))
        .map_err(|e| Error::config("linux.gidMappings", format!("writing {}: {e}", p.display())))?;
    Ok(())
}

/// Becomes root of a freshly mapped user namespace (the clone started as the overflow uid).
pub fn become_ns_root() -> Result<()> {
    // SAFETY: plain syscalls with integer arguments.
    if unsafe { libc::setresgid(0, 0, 0) } != 0 {
        return Err(Error::last_os(
            "setresgid(0) in the new user namespace (is container gid 0 mapped?)",
        ));
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(0, 0, 0) } != 0 {
        return Err(Error::last_os(
            "setresuid(0) in the new user namespace (is container uid 0 mapped?)",
        ));
    }
    Ok(())
}

/// True when this process may call setgroups(2): false inside a user namespace whose
/// setgroups file says "deny".
pub fn setgroups_allowed() -> bool {
    fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// Switches to the configured uid, gid and supplementary groups, keeping the permitted
/// capabilities for the capset that follows.
pub fn switch(user: &User) -> Result<()> {
    let gids: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    if setgroups_allowed() {
        // SAFETY: gids points to gids.len() valid gid_t values.
        if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
            return Err(Error::last_os("process.user.additionalGids: setgroups"));
        }
    } else if !gids.is_empty() {
        return Err(Error::config(
            "process.user.additionalGids",
            "cannot set supplementary groups: setgroups is denied in this user namespace",
        ));
    }
    crate::sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0).map_err(|e| Error::sys("PR_SET_KEEPCAPS", e))?;
    let (uid, gid) = (user.uid(), user.gid());
    // SAFETY: plain syscalls with integer arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(Error::last_os(format!("process.user.gid: setresgid({gid})")));
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(Error::last_os(format!("process.user.uid: setresuid({uid})")));
    }
    crate::sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0).map_err(|e| Error::sys("PR_SET_KEEPCAPS", e))?;
    // runc's default umask when none is configured.
    let umask = user.umask().unwrap_or(0o022);
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(umask as libc::mode_t) };
    Ok(())
}
