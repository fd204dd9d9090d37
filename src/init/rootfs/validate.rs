//! Checks of the config's mounts and rootfs settings made when the bundle is loaded, before
//! anything exists. What depends on the rootfs's contents (where a destination resolves) is
//! checked again at mount time with the same rules.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::spec::mount_options as options;

/// Files under /proc a config may mount over (what lxcfs and runc allow): anything else over
/// /proc could hide or redirect what the runtime and the workload rely on (CVE-2019-19921).
const PROC_OVERMOUNT_ALLOWED: [&str; 10] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// The /proc rules for a mount whose destination is the clean absolute container path `dest`:
/// on /proc itself only a procfs (type proc, or a bind whose source must then be a procfs,
/// which the mount checks), below it only the allow-list.
pub fn check_proc(dest: &Path, typ: &str, is_bind: bool, field: &str) -> Result<()> {
    if !dest.starts_with("/proc") {
        return Ok(());
    }
    if dest == Path::new("/proc") {
        if typ != "proc" && !is_bind {
            return Err(Error::config(
                field,
                "only a procfs may be mounted on /proc (type proc, or a bind of a procfs)",
            ));
        }
        return Ok(());
    }
    if !PROC_OVERMOUNT_ALLOWED.iter().any(|a| dest == Path::new(a)) {
        return Err(Error::config(
            field,
            format!("mounting over {} is not allowed: it is inside /proc", dest.display()),
        ));
    }
    Ok(())
}

/// A destination as the container sees it: absolute (a relative one is taken from "/", as the
/// spec allows) and clean.
pub fn container_path(p: &Path) -> PathBuf {
    Path::new("/").join(super::paths::clean(p).iter().collect::<PathBuf>())
}

pub fn validate(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    let mount_ns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Mount);
    if let Some(p) = linux.rootfs_propagation().as_deref().filter(|p| !p.is_empty()) {
        if options::propagation_flag(p).is_none() {
            return Err(Error::config(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            ));
        }
        if !mount_ns {
            return Err(Error::config(
                "linux.rootfsPropagation",
                "needs a mount namespace (it would change the caller's mounts)",
            ));
        }
    }
    if !mount_ns {
        // Like runc: without a mount namespace the container shares the caller's mounts, so
        // nothing can be hidden or made read-only for it alone.
        for (field, paths) in [
            ("linux.maskedPaths", linux.masked_paths()),
            ("linux.readonlyPaths", linux.readonly_paths()),
        ] {
            if paths.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(Error::config(field, "needs a mount namespace"));
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}].destination");
        let raw = m.destination().as_os_str().as_bytes();
        if raw.is_empty() {
            return Err(Error::config(field, "must not be empty"));
        }
        if raw.contains(&0) {
            return Err(Error::config(field, "contains a NUL byte"));
        }
        if m.source()
            .as_ref()
            .is_some_and(|s| s.as_os_str().as_bytes().contains(&0))
        {
            return Err(Error::config(format!("mounts[{i}].source"), "contains a NUL byte"));
        }
        let opts = m.options().as_deref().unwrap_or_default();
        if opts.iter().any(|o| o.contains('\0')) {
            return Err(Error::config(format!("mounts[{i}].options"), "contains a NUL byte"));
        }
        let dest = container_path(m.destination());
        if dest == Path::new("/") {
            return Err(Error::config(
                field,
                "is the container's root: a mount there would hide the rootfs",
            ));
        }
        let parsed = options::parse(opts);
        let typ = m.typ().as_deref().unwrap_or("");
        check_proc(&dest, typ, parsed.bind || typ == "bind", &field)?;
        let mapped = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
            && m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        if parsed.idmap && !mapped {
            return Err(Error::config(
                format!("mounts[{i}].options"),
                "idmap needs the mount's uidMappings and gidMappings",
            ));
        }
    }
    Ok(())
}
