//! What lies outside the container and CRIU must be told about: bind mounts from the host,
//! masked files (the host's /dev/null bound over them), device nodes bound from the host, and
//! namespaces the container joined rather than made. CRIU cannot dump these; it records each
//! under a key on dump and is given the real thing for the key on restore.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// The key of every masked file, as runc's: one host object, /dev/null, behind all of them.
const DEV_NULL: &str = "/dev/null";
/// The devices every container gets (see init's rootfs/devices.rs), which a user-namespaced
/// container binds from the host.
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// A mount of the container whose origin is on the host: where it is in the container (the
/// key) and what it is bound from.
pub struct ExtMount {
    pub key: String,
    pub source: String,
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
}

/// The config's bind mounts and the device nodes, keyed by where they are in the container:
/// the destination resolved in the rootfs as init resolved it (a symlinked destination is
/// mounted where the link leads).
pub fn mounts(spec: &Spec, rootfs: &Path) -> Vec<ExtMount> {
    let root = std::fs::File::open(rootfs).ok().map(OwnedFd::from);
    let resolve = |dest: &Path| -> String {
        root.as_ref()
            .and_then(|r| crate::init::rootfs::paths::resolve_in_root(r.as_fd(), dest).ok())
            .unwrap_or_else(|| Path::new("/").join(dest))
            .to_string_lossy()
            .into_owned()
    };
    let mut out: Vec<ExtMount> = spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| is_bind(m))
        .map(|m| ExtMount {
            key: resolve(m.destination()),
            source: m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
        .collect();
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let devices = DEFAULT_DEVICES
        .iter()
        .map(|d| d.to_string())
        .chain(configured.iter().map(|d| d.path().to_string_lossy().into_owned()));
    for d in devices {
        if !out.iter().any(|m| m.key == d) {
            out.push(ExtMount {
                key: d.clone(),
                source: d,
            });
        }
    }
    out
}

/// `--external` arguments for a dump: each mount by its key, and each masked file (a file,
/// not a directory, in the container now) under the one /dev/null key.
pub fn dump_args(mounts: &[ExtMount], masked: &[String], pid: i32) -> Vec<String> {
    let mut args: Vec<String> = mounts.iter().map(|m| format!("mnt[{}]:{}", m.key, m.key)).collect();
    for p in masked {
        let inside = format!("/proc/{pid}/root/{}", p.trim_start_matches('/'));
        if std::fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) && !mounts.iter().any(|m| &m.key == p) {
            args.push(format!("mnt[{p}]:{DEV_NULL}"));
        }
    }
    args
}

/// `--external` arguments for a restore: each key given its host source.
pub fn restore_args(mounts: &[ExtMount], has_masked: bool) -> Vec<String> {
    let mut args: Vec<String> = mounts.iter().map(|m| format!("mnt[{}]:{}", m.key, m.source)).collect();
    if has_masked && !mounts.iter().any(|m| m.key == DEV_NULL) {
        args.push(format!("mnt[{DEV_NULL}]:{DEV_NULL}"));
    }
    args
}

/// CRIU's name of a namespace type, and the key of a joined network or pid namespace (runc's,
/// so checkpoints cross between the two runtimes).
fn criu_name(t: LinuxNamespaceType) -> Option<(&'static str, &'static str)> {
    Some(match t {
        LinuxNamespaceType::Network => ("net", "extRootNetNS"),
        LinuxNamespaceType::Pid => ("pid", "extRootPidNS"),
        LinuxNamespaceType::Ipc => ("ipc", ""),
        LinuxNamespaceType::Uts => ("uts", ""),
        LinuxNamespaceType::Mount => ("mnt", ""),
        LinuxNamespaceType::User => ("user", ""),
        LinuxNamespaceType::Time => ("time", ""),
        LinuxNamespaceType::Cgroup => return None,
    })
}

fn joined(linux: &oci_spec::runtime::Linux) -> Vec<(LinuxNamespaceType, &Path)> {
    linux
        .namespaces()
        .iter()
        .flatten()
        .filter_map(|n| n.path().as_deref().map(|p| (n.typ(), p)))
        .collect()
}

/// On dump: a joined network or pid namespace is external, named by its inode. The others
/// that were joined are the same on restore (CRIU joins them there), and need nothing here.
pub fn dump_namespaces(linux: &oci_spec::runtime::Linux) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (t, path) in joined(linux) {
        if let Some((name, key)) = criu_name(t).filter(|(_, key)| !key.is_empty()) {
            use std::os::unix::fs::MetadataExt;
            let ino = std::fs::metadata(path)
                .map_err(|e| Error::field("linux.namespaces", Error::path("cannot stat", path, e)))?
                .ino();
            out.push(format!("{name}[{ino}]:{key}"));
        }
    }
    Ok(out)
}

/// On restore: a joined network or pid namespace is handed over as an inherited fd under its
/// key; the other joined ones CRIU joins itself (`--join-ns`). A joined cgroup namespace
/// CRIU cannot join, as runc says too.
pub struct RestoreNamespaces {
    /// (fd, key): the fd is kept open for CRIU to inherit.
    pub inherited: Vec<(OwnedFd, &'static str)>,
    pub join: Vec<String>,
}

pub fn restore_namespaces(linux: &oci_spec::runtime::Linux) -> Result<RestoreNamespaces> {
    let mut out = RestoreNamespaces {
        inherited: Vec::new(),
        join: Vec::new(),
    };
    for (t, path) in joined(linux) {
        let Some((name, key)) = criu_name(t) else {
            return Err(Error::config(
                "linux.namespaces",
                format!(
                    "CRIU cannot restore into the joined cgroup namespace {}",
                    path.display()
                ),
            ));
        };
        if key.is_empty() {
            out.join.push(format!("{name}:{}", path.display()));
            continue;
        }
        let fd = std::fs::File::open(path)
            .map_err(|e| Error::field("linux.namespaces", Error::path("cannot open", path, e)))?;
        out.inherited.push((OwnedFd::from(fd), key));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_files_share_the_dev_null_key_and_binds_map_to_their_sources() {
        let mounts = vec![ExtMount {
            key: "/data".into(),
            source: "/srv/data".into(),
        }];
        // /proc/self/root/etc/hostname is a file here; /proc/self/root/proc is a directory.
        let me = nix::unistd::getpid().as_raw();
        let dump = dump_args(&mounts, &["/etc/hostname".into(), "/proc".into()], me);
        assert_eq!(dump, ["mnt[/data]:/data", "mnt[/etc/hostname]:/dev/null"]);
        let restore = restore_args(&mounts, true);
        assert_eq!(restore, ["mnt[/data]:/srv/data", "mnt[/dev/null]:/dev/null"]);
    }

    #[test]
    fn a_joined_cgroup_namespace_cannot_be_restored() {
        let linux: oci_spec::runtime::Linux = serde_json::from_value(serde_json::json!({
            "namespaces": [{"type": "cgroup", "path": "/proc/self/ns/cgroup"}]
        }))
        .unwrap();
        let e = restore_namespaces(&linux).err().unwrap().to_string();
        assert!(e.contains("linux.namespaces") && e.contains("cgroup"), "{e}");
        let linux: oci_spec::runtime::Linux = serde_json::from_value(serde_json::json!({
            "namespaces": [{"type": "uts", "path": "/proc/self/ns/uts"}, {"type": "network", "path": "/proc/self/ns/net"}]
        }))
        .unwrap();
        let r = restore_namespaces(&linux).unwrap();
        assert_eq!(r.join, ["uts:/proc/self/ns/uts"]);
        assert_eq!(r.inherited.len(), 1);
        assert!(dump_namespaces(&linux).unwrap()[0].starts_with("net["));
    }
}
