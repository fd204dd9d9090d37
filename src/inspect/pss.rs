//! The Kubernetes Pod Security Standards (baseline and restricted) evaluated on a [`Report`],
//! i.e. on what the container really gets rather than on a pod spec. The mapping of each
//! control to runtime facts is documented in the README ("For auditors").

use serde::Serialize;

use super::{NsState, Report, SeccompMode};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Baseline,
    Restricted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The lowest level that forbids it.
    pub level: Level,
    /// The PSS control's name, as the standard spells it.
    pub control: &'static str,
    pub detail: String,
}

/// Capabilities the baseline level allows to be added.
pub const BASELINE_CAPS: [&str; 13] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Sysctls the baseline level allows (namespaced and safe).
pub const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Every violation of `level` (a restricted check includes the baseline ones).
pub fn evaluate(r: &Report, level: Level) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut add = |l: Level, control, detail: String| {
        if l <= level {
            v.push(Violation {
                level: l,
                control,
                detail,
            });
        }
    };
    for p in &r.processes {
        let who = p
            .pid
            .map_or_else(|| "the container process".to_string(), |pid| format!("pid {pid}"));
        let c = &p.capabilities;
        if c.all {
            add(
                Level::Baseline,
                "Privileged Containers",
                format!("{who} has every capability"),
            );
        }
        let held: std::collections::BTreeSet<&String> =
            [&c.bounding, &c.effective, &c.permitted, &c.inheritable, &c.ambient]
                .into_iter()
                .flatten()
                .collect();
        let beyond_baseline: Vec<&str> = held
            .iter()
            .map(|s| s.as_str())
            .filter(|n| !BASELINE_CAPS.contains(n))
            .collect();
        if !beyond_baseline.is_empty() {
            add(
                Level::Baseline,
                "Capabilities",
                format!("{who} has {}", beyond_baseline.join(", ")),
            );
        }
        let beyond_restricted: Vec<&str> = held
            .iter()
            .map(|s| s.as_str())
            .filter(|n| *n != "CAP_NET_BIND_SERVICE" && BASELINE_CAPS.contains(n))
            .collect();
        if !beyond_restricted.is_empty() {
            add(
                Level::Restricted,
                "Capabilities",
                format!(
                    "{who} keeps {} (restricted: drop ALL, add only NET_BIND_SERVICE)",
                    beyond_restricted.join(", ")
                ),
            );
        }
        for ns in &p.namespaces {
            if ns.state == NsState::Host && ["pid", "ipc", "net"].contains(&ns.kind.as_str()) {
                add(
                    Level::Baseline,
                    "Host Namespaces",
                    format!("{who} shares the host's {} namespace", ns.kind),
                );
            }
        }
        if p.seccomp.mode == SeccompMode::Disabled {
            add(
                Level::Restricted,
                "Seccomp",
                format!("{who} has no seccomp filter (Unconfined)"),
            );
        }
        if !p.no_new_privs {
            add(
                Level::Restricted,
                "Privilege Escalation",
                format!("{who} runs without no_new_privs"),
            );
        }
        if p.user.uid == 0 && p.user.root_on_host {
            add(
                Level::Restricted,
                "Running as Non-root",
                format!("{who} runs as uid 0, which is uid 0 on the host"),
            );
        }
    }
    if r.devices.all_allowed {
        add(
            Level::Baseline,
            "Privileged Containers",
            format!("every device is allowed ({})", r.devices.rules_source),
        );
    }
    for b in r.filesystem.host_binds.iter().filter(|b| !b.managed) {
        add(
            Level::Baseline,
            "HostPath Volumes",
            format!(
                "{} is bound from the host at {}",
                b.host_path.as_deref().unwrap_or("a host path"),
                b.destination
            ),
        );
    }
    let unmasked: Vec<&str> = r
        .filesystem
        .masked_paths
        .iter()
        .filter(|m| !m.in_force && m.path.starts_with("/proc/"))
        .map(|m| m.path.as_str())
        .collect();
    if !unmasked.is_empty() {
        add(
            Level::Baseline,
            "/proc Mount Type",
            format!("/proc is unmasked: {} visible", unmasked.join(", ")),
        );
    }
    for (k, val) in &r.sysctls {
        if !SAFE_SYSCTLS.contains(&k.as_str()) {
            add(Level::Baseline, "Sysctls", format!("{k}={val} is outside the safe set"));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::*;

    fn report() -> Report {
        Report {
            source: Source::Config { bundle: "b".into() },
            processes: vec![Process {
                pid: None,
                user: User {
                    uid: 1000,
                    gid: 1000,
                    additional_gids: vec![],
                    host_uid: Some(1000),
                    root_on_host: false,
                },
                namespaces: ["pid", "net", "ipc", "mnt", "uts"]
                    .iter()
                    .map(|k| Namespace {
                        kind: k.to_string(),
                        state: NsState::New,
                        inode: None,
                    })
                    .collect(),
                uid_map: vec![],
                gid_map: vec![],
                capabilities: Capabilities {
                    bounding: vec!["CAP_NET_BIND_SERVICE".into()],
                    ..Default::default()
                },
                no_new_privs: true,
                seccomp: SeccompState {
                    mode: SeccompMode::Filter,
                    filters: None,
                },
                lsm_label: None,
                rlimits: vec![],
            }],
            filesystem: Filesystem::default(),
            devices: Devices::default(),
            cgroup: Limits::default(),
            seccomp_profile: None,
            sysctls: Default::default(),
            drift: vec![],
            findings: vec![],
        }
    }

    fn controls(r: &Report, l: Level) -> Vec<&'static str> {
        evaluate(r, l).into_iter().map(|v| v.control).collect()
    }

    #[test]
    fn hardened_passes_restricted() {
        assert!(evaluate(&report(), Level::Restricted).is_empty());
    }

    #[test]
    fn each_control() {
        let mut r = report();
        r.processes[0].capabilities.bounding.push("CAP_KILL".into());
        assert!(controls(&r, Level::Baseline).is_empty());
        assert_eq!(controls(&r, Level::Restricted), ["Capabilities"]);
        r.processes[0].capabilities.effective.push("CAP_SYS_ADMIN".into());
        assert_eq!(controls(&r, Level::Baseline), ["Capabilities"]);
        r.processes[0].namespaces[1].state = NsState::Host;
        r.processes[0].namespaces[3].state = NsState::Host; // mnt: not a PSS control
        r.processes[0].seccomp.mode = SeccompMode::Disabled;
        r.processes[0].no_new_privs = false;
        r.processes[0].user = User {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            host_uid: Some(0),
            root_on_host: true,
        };
        r.sysctls.insert("kernel.shmmax".into(), "1".into());
        r.sysctls.insert("net.ipv4.tcp_syncookies".into(), "1".into());
        r.filesystem.masked_paths.push(PathState {
            path: "/proc/kcore".into(),
            in_force: false,
            detail: String::new(),
        });
        r.filesystem.masked_paths.push(PathState {
            path: "/sys/firmware".into(),
            in_force: false,
            detail: String::new(),
        });
        let base = evaluate(&r, Level::Baseline);
        let names: Vec<_> = base.iter().map(|v| v.control).collect();
        assert_eq!(
            names,
            ["Capabilities", "Host Namespaces", "/proc Mount Type", "Sysctls"]
        );
        assert!(base[1].detail.contains("net"));
        assert!(base[2].detail.contains("/proc/kcore") && !base[2].detail.contains("firmware"));
        assert!(base[3].detail.contains("kernel.shmmax"));
        let restricted = controls(&r, Level::Restricted);
        for c in ["Seccomp", "Privilege Escalation", "Running as Non-root"] {
            assert!(restricted.contains(&c), "{restricted:?}");
        }
        // Root in a user namespace that maps it elsewhere is not root on the host.
        r.processes[0].user.root_on_host = false;
        assert!(!controls(&r, Level::Restricted).contains(&"Running as Non-root"));
    }

    #[test]
    fn privileged_and_host_paths() {
        let mut r = report();
        r.processes[0].capabilities.all = true;
        r.devices.all_allowed = true;
        r.filesystem.host_binds.push(HostBind {
            destination: "/data".into(),
            host_path: Some("/srv".into()),
            readonly: true,
            socket: false,
            danger: None,
            managed: false,
        });
        let managed = HostBind {
            destination: "/etc/resolv.conf".into(),
            host_path: Some("/var/lib/containerd/sandbox/resolv.conf".into()),
            readonly: false,
            socket: false,
            danger: None,
            managed: false,
        }
        .assess();
        assert!(managed.managed);
        r.filesystem.host_binds.push(managed);
        assert_eq!(
            controls(&r, Level::Baseline),
            ["Privileged Containers", "Privileged Containers", "HostPath Volumes"]
        );
    }
}
