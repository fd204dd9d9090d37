//! User namespace mappings, written by the parent: the container's own namespace after the
//! clone, and the short-lived namespaces that idmapped mounts are made with.

use oci_spec::runtime::LinuxIdMapping;

use crate::error::{Error, Result};

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes uid_map and gid_map of a child's new user namespace. A rootless caller (euid not 0)
/// may only map its own ids itself, its gid only after denying setgroups; other mappings then
/// go through newuidmap/newgidmap, as runc does.
pub fn write_id_maps(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    // Through a verified procfs handle, like every other /proc write moor makes.
    let proc = crate::sys::procfs::Procfs::open()?;
    let rootless = crate::runtime::rootless::euid_rootless();
    let egid = nix::unistd::getegid().as_raw();
    let own_gid_only = matches!(gid, [m] if m.container_id() == 0 && m.host_id() == egid && m.size() == 1);
    if rootless && own_gid_only {
        proc.write(&format!("{pid}/setgroups"), "deny")?;
    }
    write_map(&proc, pid, "uid_map", uid, "linux.uidMappings", "newuidmap", rootless)?;
    write_map(&proc, pid, "gid_map", gid, "linux.gidMappings", "newgidmap", rootless)
}

fn write_map(
    proc: &crate::sys::procfs::Procfs,
    pid: i32,
    file: &str,
    maps: &[LinuxIdMapping],
    field: &str,
    tool: &str,
    rootless: bool,
) -> Result<()> {
    match proc.write(&format!("{pid}/{file}"), &map_text(maps)) {
        Err(Error::Sys { source, .. }) if rootless && source.raw_os_error() == Some(libc::EPERM) => {
            crate::runtime::rootless::map_with_tool(tool, pid, maps, field)
        }
        r => r.map_err(|e| Error::config(field, e.to_string())),
    }
}

/// A user namespace holding `uid`/`gid` mappings, for an idmapped mount: a short-lived child is
/// cloned into a new user namespace, mapped, and its namespace kept as an fd.
pub fn idmap_userns(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<std::os::fd::OwnedFd> {
    let (wait_rx, wait_tx) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
    match crate::sys::clone3(libc::CLONE_NEWUSER as u64, None).map_err(|e| Error::sys("clone a user namespace", e))? {
        crate::sys::Forked::Child => {
            drop(wait_tx);
            let mut byte = [0u8; 1];
            // Wait until the parent has taken the namespace (EOF when it drops its end).
            let _ = std::io::Read::read(&mut &wait_rx, &mut byte);
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        crate::sys::Forked::Parent(pid) => {
            drop(wait_rx);
            // As crun and runc: the namespace gets the mappings as written; the kernel reads an
            // on-disk id as an id inside it and shows the host id it maps to.
            let lines = |maps: &[LinuxIdMapping]| map_text(maps);
            let proc = crate::sys::procfs::Procfs::open();
            let write = |file: &str, text: String| match &proc {
                Ok(p) => p.write(&format!("{pid}/{file}"), &text),
                Err(e) => Err(Error::Init(format!("procfs for an idmapped mount: {e}"))),
            };
            let result = write("uid_map", lines(uid))
                .and_then(|_| write("gid_map", lines(gid)))
                .and_then(|_| {
                    std::fs::File::open(format!("/proc/{pid}/ns/user"))
                        .map(std::os::fd::OwnedFd::from)
                        .map_err(|e| Error::sys("open the idmap user namespace", e))
                });
            drop(wait_tx);
            // SAFETY: reap our child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            result
        }
    }
}
