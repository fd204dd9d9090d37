//! The report from config.json alone (`moor inspect --bundle`), and the per-process facts the
//! config asks for, which a live report compares its readings with (drift).

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType, Spec};

use super::{
    caps, seccomp, Capabilities, DeviceNode, Devices, Filesystem, HostBind, IdMap, Limits, Namespace, NsState,
    PathState, Process, Report, Rlimit, SeccompMode, SeccompState, Source, User, DEFAULT_MASKED, DEFAULT_READONLY,
};
use crate::error::Result;
use crate::init::capabilities::{last_cap, of_process, Sets};

/// The /proc/<pid>/ns names, and the OCI namespace type of each.
pub const NS_KINDS: [(&str, LinuxNamespaceType); 8] = [
    ("cgroup", LinuxNamespaceType::Cgroup),
    ("ipc", LinuxNamespaceType::Ipc),
    ("mnt", LinuxNamespaceType::Mount),
    ("net", LinuxNamespaceType::Network),
    ("pid", LinuxNamespaceType::Pid),
    ("time", LinuxNamespaceType::Time),
    ("user", LinuxNamespaceType::User),
    ("uts", LinuxNamespaceType::Uts),
];

/// Loads and validates the bundle as `create` would (errors name the field), then reports what
/// the config asks for.
pub fn from_bundle(dir: &Path) -> Result<Report> {
    let bundle = crate::spec::config::load(dir)?;
    let spec: &Spec = &bundle.spec;
    let default_linux = Linux::default();
    let linux = spec.linux().as_ref().unwrap_or(&default_linux);
    let default_process = oci_spec::runtime::Process::default();
    let process = spec.process().as_ref().unwrap_or(&default_process);
    let mut report = Report {
        source: Source::Config {
            bundle: bundle.dir.display().to_string(),
        },
        processes: vec![self::process(process, linux)?],
        filesystem: filesystem(spec, linux),
        devices: devices(linux),
        cgroup: limits(linux),
        seccomp_profile: linux.seccomp().as_ref().map(seccomp::analyse).transpose()?,
        sysctls: sysctls(linux),
        drift: Vec::new(),
        findings: Vec::new(),
    };
    report.findings = super::findings(&report);
    Ok(report)
}

pub fn sysctls(linux: &Linux) -> BTreeMap<String, String> {
    linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn id_maps(maps: &Option<Vec<LinuxIdMapping>>) -> Vec<IdMap> {
    maps.iter()
        .flatten()
        .map(|m| IdMap {
            inside: m.container_id(),
            outside: m.host_id(),
            count: m.size(),
        })
        .collect()
}

/// `id` inside seen from outside through `maps` (no maps: the identity, no user namespace).
pub fn map_id(maps: &[IdMap], userns: bool, id: u32) -> Option<u32> {
    if !userns {
        return Some(id);
    }
    maps.iter()
        .find(|m| id >= m.inside && id - m.inside < m.count)
        .and_then(|m| m.outside.checked_add(id - m.inside))
}

fn has_ns(linux: &Linux, ty: LinuxNamespaceType) -> bool {
    linux.namespaces().iter().flatten().any(|n| n.typ() == ty)
}

pub fn namespaces(linux: &Linux) -> Vec<Namespace> {
    NS_KINDS
        .iter()
        .map(|(kind, ty)| {
            let ns = linux.namespaces().iter().flatten().find(|n| n.typ() == *ty);
            Namespace {
                kind: kind.to_string(),
                state: match ns {
                    None => NsState::Host,
                    Some(n) if n.path().is_some() => NsState::Joined,
                    Some(_) => NsState::New,
                },
                inode: None,
            }
        })
        .collect()
}

/// The capability sets `process` asks for (none given: the caller's, i.e. all of them).
pub fn cap_sets(process: &oci_spec::runtime::Process) -> Result<Sets> {
    let last = last_cap();
    Ok(of_process(process, last)?.unwrap_or_else(|| {
        let all = Sets {
            bounding: u64::MAX,
            effective: u64::MAX,
            permitted: u64::MAX,
            inheritable: 0,
            ambient: 0,
        };
        all.limit_to(last)
    }))
}

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

pub fn process(process: &oci_spec::runtime::Process, linux: &Linux) -> Result<Process> {
    let userns = has_ns(linux, LinuxNamespaceType::User);
    let uid_map = id_maps(linux.uid_mappings());
    let gid_map = id_maps(linux.gid_mappings());
    let u = process.user();
    let host_uid = map_id(&uid_map, userns, u.uid());
    let capabilities: Capabilities = caps::describe(&cap_sets(process)?);
    Ok(Process {
        pid: None,
        user: User {
            uid: u.uid(),
            gid: u.gid(),
            additional_gids: u.additional_gids().clone().unwrap_or_default(),
            host_uid,
            root_on_host: u.uid() == 0 && host_uid == Some(0),
        },
        namespaces: namespaces(linux),
        uid_map,
        gid_map,
        capabilities,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        seccomp: SeccompState {
            mode: if linux.seccomp().is_some() {
                SeccompMode::Filter
            } else {
                SeccompMode::Disabled
            },
            filters: None,
        },
        lsm_label: process
            .apparmor_profile()
            .clone()
            .or_else(|| process.selinux_label().clone())
            .filter(|l| !l.is_empty() && l != "unconfined"),
        rlimits: process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| Rlimit {
                name: name_of(&r.typ()),
                soft: Some(r.soft()),
                hard: Some(r.hard()),
            })
            .collect(),
    })
}

fn listed(list: &Option<Vec<String>>, path: &str) -> bool {
    list.iter().flatten().any(|p| p == path)
}

fn filesystem(spec: &Spec, linux: &Linux) -> Filesystem {
    let state = |path: &str, in_force: bool, what: &str| PathState {
        path: path.to_string(),
        in_force,
        detail: if in_force {
            format!("in linux.{what}")
        } else {
            format!("not in linux.{what}")
        },
    };
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let opts = |m: &oci_spec::runtime::Mount| m.options().clone().unwrap_or_default();
    let is_bind = |m: &oci_spec::runtime::Mount| {
        m.typ().as_deref() == Some("bind") || opts(m).iter().any(|o| o == "bind" || o == "rbind")
    };
    let host_binds = mounts
        .iter()
        .filter(|m| is_bind(m))
        .map(|m| {
            let source = m.source().as_ref().map(|s| s.display().to_string());
            // The host side is the caller's: lstat only, never follow what the bundle names.
            let socket = m
                .source()
                .as_ref()
                .and_then(|s| std::fs::symlink_metadata(s).ok())
                .is_some_and(|md| md.file_type().is_socket());
            HostBind {
                destination: m.destination().display().to_string(),
                host_path: source,
                readonly: opts(m).iter().any(|o| o == "ro"),
                socket,
                danger: None,
                managed: false,
            }
            .assess()
        })
        .collect();
    let sys_writable = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/sys") && !opts(m).iter().any(|o| o == "ro"));
    Filesystem {
        root_readonly: spec.root().as_ref().is_some_and(|r| r.readonly().unwrap_or(false)),
        masked_paths: DEFAULT_MASKED
            .iter()
            .map(|p| state(p, listed(linux.masked_paths(), p), "maskedPaths"))
            .collect(),
        readonly_paths: DEFAULT_READONLY
            .iter()
            .map(|p| state(p, listed(linux.readonly_paths(), p), "readonlyPaths"))
            .collect(),
        host_binds,
        sys_writable,
    }
}

/// Device cgroup rules as runc writes them to devices.allow/deny.
pub fn device_rules(linux: &Linux) -> (Vec<String>, bool) {
    let mut all = false;
    let rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let ty = d.typ().map_or_else(|| "a".to_string(), |t| name_of(&t));
            let num = |n: Option<i64>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
            let access = d.access().clone().unwrap_or_else(|| "rwm".into());
            // Later rules override earlier ones: the last wildcard rule decides "everything".
            if (ty == "a") && d.major().is_none() && d.minor().is_none() && access.contains('r') {
                all = d.allow();
            }
            format!(
                "{} {ty} {}:{} {access}",
                if d.allow() { "allow" } else { "deny" },
                num(d.major()),
                num(d.minor())
            )
        })
        .collect();
    (rules, all)
}

fn devices(linux: &Linux) -> Devices {
    let (rules, all_allowed) = device_rules(linux);
    Devices {
        rules_source: "config".into(),
        rules,
        all_allowed,
        nodes: linux
            .devices()
            .iter()
            .flatten()
            .map(|d| DeviceNode {
                path: d.path().display().to_string(),
                kind: name_of(&d.typ()).chars().next().unwrap_or('?'),
                major: u64::try_from(d.major()).unwrap_or_default(),
                minor: u64::try_from(d.minor()).unwrap_or_default(),
            })
            .collect(),
    }
}

fn limits(linux: &Linux) -> Limits {
    let r = linux.resources().as_ref();
    Limits {
        memory: r
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0),
        pids: r
            .and_then(|r| r.pids().as_ref())
            .and_then(|p| u64::try_from(p.limit()).ok())
            .filter(|l| *l > 0),
        source: "config".into(),
    }
}
