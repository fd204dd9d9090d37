//! `--no-pivot` leaves the caller's mounts in the container's mount namespace, under the moved
//! rootfs. The kernel lets a (nested, unprivileged) user namespace mount procfs or sysfs only
//! where a full, unobstructed instance is already visible in its mount namespace; a host /proc
//! left there would let the workload mount a fresh /proc without the masked and read-only paths.
//! So, as runc does, every full proc and sysfs mount outside the rootfs is detached first, or
//! covered with an empty tmpfs where it cannot be (a locked mount).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub fn hide_host_pseudo_fs(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::path("read the mount table", "/proc/self/mountinfo", e))?;
    let targets: Vec<PathBuf> = info
        .lines()
        .filter_map(full_pseudo_fs_mountpoint)
        .filter(|mp| !mp.starts_with(rootfs))
        .collect();
    // Latest first: submounts and mounts stacked on top go before what they sit on.
    for mp in targets.iter().rev() {
        // `prepare` made every mount a slave, so none of this reaches the host.
        match nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => {}
            // Gone with a parent already detached.
            Err(nix::errno::Errno::ENOENT) => {}
            // Locked (inherited into a user namespace) or no longer a mount point: cover it.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                nix::mount::mount(
                    Some("tmpfs"),
                    mp,
                    Some("tmpfs"),
                    nix::mount::MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(|e| Error::path("--no-pivot: cover the host's pseudo filesystem", mp, e.into()))?;
            }
            Err(e) => {
                return Err(Error::path(
                    "--no-pivot: detach the host's pseudo filesystem",
                    mp,
                    e.into(),
                ))
            }
        }
    }
    Ok(())
}

/// The mount point of a mountinfo line that is a whole (root "/") procfs or sysfs.
fn full_pseudo_fs_mountpoint(line: &str) -> Option<PathBuf> {
    let fields: Vec<&str> = line.split(' ').collect();
    let (root, mountpoint) = (fields.get(3)?, fields.get(4)?);
    let sep = fields.iter().position(|f| *f == "-")?;
    let fstype = fields.get(sep + 1)?;
    (*root == "/" && (*fstype == "proc" || *fstype == "sysfs")).then(|| unescape(mountpoint))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_full_proc_and_sysfs_only() {
        let proc = "22 1 0:20 / /proc rw,nosuid shared:12 - proc proc rw";
        let sub = "30 22 0:20 /sys /host/procsys rw - proc proc rw";
        let sys = "23 1 0:21 / /my\\040sys rw - sysfs sysfs rw";
        let tmp = "24 1 0:22 / /tmp rw - tmpfs tmpfs rw";
        assert_eq!(full_pseudo_fs_mountpoint(proc), Some(PathBuf::from("/proc")));
        assert_eq!(full_pseudo_fs_mountpoint(sub), None);
        assert_eq!(full_pseudo_fs_mountpoint(sys), Some(PathBuf::from("/my sys")));
        assert_eq!(full_pseudo_fs_mountpoint(tmp), None);
    }
}
