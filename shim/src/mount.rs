//! The container's root filesystem as containerd hands it over (CreateTaskRequest.rootfs: an
//! overlay from the snapshotter, or a bind mount), mounted on `<bundle>/rootfs` before create
//! and unmounted on delete. The mounts come from containerd, not from the container.

use std::path::Path;

use containerd_shim_protos::api::Mount;
use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Mounts every mount in order onto `target` (containerd passes one for a snapshot).
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        let (flags, data) = options(&m.options);
        let fstype = if m.type_ == "bind" {
            None
        } else {
            Some(m.type_.as_str())
        };
        let data = (!data.is_empty()).then_some(data.as_str());
        if let Err(e) = nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, data) {
            let _ = unmount_all(target);
            return Err(Error::sys(
                format!("rootfs[{i}]: mount {} ({}) on {}", m.source, m.type_, target.display()),
                e,
            ));
        }
    }
    Ok(())
}

/// Splits mount options into flags and the filesystem's data string (overlay's lowerdir, ...).
fn options(opts: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            _ => {
                data.push(o.as_str());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data.join(","))
}

/// Unmounts everything stacked on `target`; nothing mounted there is not an error.
pub fn unmount_all(target: &Path) -> Result<()> {
    // A bound on the loop: each round removes one mount.
    for _ in 0..32 {
        match nix::mount::umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                nix::mount::umount2(target, MntFlags::MNT_DETACH)
                    .map_err(|e| Error::sys(format!("unmount {} (detached)", target.display()), e))?;
            }
            Err(e) => return Err(Error::sys(format!("unmount {}", target.display()), e)),
        }
    }
    Err(Error::sys(
        format!("unmount {}: still mounted after 32 unmounts", target.display()),
        std::io::Error::from_raw_os_error(libc::EBUSY),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_are_data_and_flags_are_flags() {
        let opts: Vec<String> = ["index=off", "ro", "lowerdir=/a:/b", "nosuid", "rw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = options(&opts);
        assert_eq!(flags, MsFlags::MS_NOSUID);
        assert_eq!(data, "index=off,lowerdir=/a:/b");
        let (flags, data) = options(&["rbind".to_string(), "ro".to_string()]);
        assert_eq!(flags, MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY);
        assert!(data.is_empty());
    }
}
