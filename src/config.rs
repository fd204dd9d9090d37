//! Loading and validating a bundle's config.json. Everything the rest of moor relies on is
//! checked here, before anything is created, so bad input fails with the field's name and
//! leaves nothing behind.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A validated bundle: the spec plus the resolved paths moor works with.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

pub fn load(bundle_dir: &Path) -> Result<Bundle> {
    let dir = fs::canonicalize(bundle_dir).map_err(|e| Error::path("bundle", bundle_dir, e))?;
    let file = dir.join("config.json");
    let data = fs::read(&file).map_err(|e| Error::path("cannot read", &file, e))?;
    let spec = parse(&data)?;
    let root = spec.root().as_ref().ok_or_else(|| Error::config("root", "missing"))?;
    let rootfs_cfg = dir.join(root.path());
    let rootfs = fs::canonicalize(&rootfs_cfg).map_err(|e| Error::path("root.path", &rootfs_cfg, e))?;
    if !rootfs.is_dir() {
        return Err(Error::config(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    validate(&spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// Parses config.json, naming the JSON path of the first offending field.
pub fn parse(data: &[u8]) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "config.json".to_string() } else { path };
        Error::config(field, e.into_inner().to_string())
    })
}

fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(Error::config("process.args", "must name the program to run")),
    }
    crate::user::validate(process.user())?;
    if !process.cwd().is_absolute() {
        return Err(Error::config("process.cwd", "must be an absolute path"));
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') || e.contains('\0') {
                return Err(Error::config(
                    format!("process.env[{i}]"),
                    format!("{e:?} is not KEY=value"),
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    if let Some(rlimits) = process.rlimits() {
        for r in rlimits {
            if !seen.insert(r.typ() as u32) {
                return Err(Error::config("process.rlimits", format!("{} given twice", r.typ())));
            }
            if r.soft() > r.hard() {
                return Err(Error::config(
                    "process.rlimits",
                    format!("{}: soft limit above hard limit", r.typ()),
                ));
            }
        }
    }
    check_proc_mounts(spec)?;
    let Some(linux) = spec.linux() else { return Ok(()) };
    let mut types = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for ns in namespaces {
        if !types.insert(ns.typ()) {
            return Err(Error::config("linux.namespaces", format!("{} given twice", ns.typ())));
        }
    }
    let user_ns = types.contains(&LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if maps && !user_ns {
        return Err(Error::config("linux.uidMappings", "mappings need a user namespace"));
    }
    let new_user_ns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if new_user_ns {
        for (field, m) in [
            ("linux.uidMappings", linux.uid_mappings()),
            ("linux.gidMappings", linux.gid_mappings()),
        ] {
            let m = m.as_deref().unwrap_or_default();
            if m.is_empty() {
                return Err(Error::config(field, "a new user namespace needs mappings"));
            }
            if m.len() > 340 {
                return Err(Error::config(field, "more than 340 mappings"));
            }
            for (i, e) in m.iter().enumerate() {
                if e.size() == 0 {
                    return Err(Error::config(format!("{field}[{i}].size"), "must not be zero"));
                }
            }
        }
    }
    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() && !types.contains(&LinuxNamespaceType::Time) {
            return Err(Error::config("linux.timeOffsets", "offsets need a time namespace"));
        }
        for clock in offsets.keys() {
            if clock != "monotonic" && clock != "boottime" {
                return Err(Error::config("linux.timeOffsets", format!("unknown clock {clock:?}")));
            }
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !types.contains(&LinuxNamespaceType::Uts) {
        return Err(Error::config("hostname", "setting a hostname needs a uts namespace"));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !types.contains(&LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "domainname",
            "setting a domainname needs a uts namespace",
        ));
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            if key.is_empty() || key.contains("..") || key.starts_with('/') || key.contains('\0') {
                return Err(Error::config("linux.sysctl", format!("invalid key {key:?}")));
            }
            check_sysctl_namespace(key, &|t| namespaces.iter().any(|n| n.typ() == t))?;
        }
    }
    Ok(())
}

/// A sysctl may only be set when it belongs to a namespace the container has: otherwise the
/// write would change the host (as runc, which refuses the same keys).
fn check_sysctl_namespace(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let field = format!("linux.sysctl.{key}");
    let need = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(Error::config(
            field,
            "not a namespaced sysctl: it would change the host",
        ));
    };
    if !has(need) {
        return Err(Error::config(
            field,
            format!(
                "needs a {} namespace of the container's own",
                crate::namespaces::ns_name(need)
            ),
        ));
    }
    Ok(())
}

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

fn check_proc_mounts(spec: &Spec) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest: std::path::PathBuf = std::path::Path::new("/").join(
            crate::rootfs::paths::clean(m.destination())
                .iter()
                .collect::<std::path::PathBuf>(),
        );
        if !dest.starts_with("/proc") {
            continue;
        }
        let field = format!("mounts[{i}].destination");
        if dest == std::path::Path::new("/proc") {
            if m.typ().as_deref() != Some("proc") {
                return Err(Error::config(field, "only a procfs may be mounted on /proc"));
            }
        } else if !PROC_OVERMOUNT_ALLOWED.iter().any(|a| dest == std::path::Path::new(a)) {
            return Err(Error::config(
                field,
                format!("mounting over {} is not allowed", dest.display()),
            ));
        }
    }
    Ok(())
}
