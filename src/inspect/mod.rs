//! `inspect`: what a container really gets, as a typed [`Report`] for auditors.
//!
//! For a live container the facts come from its processes (`/proc/<pid>/status`, `ns/*`,
//! `uid_map`, `mountinfo`, `attr/current`, `limits`), its cgroup and its `/dev` (listed through
//! `/proc/<pid>/root` with RESOLVE_IN_ROOT, never following the container's symlinks); what
//! cannot be read from outside (the seccomp program itself, sysctls) comes from the snapshot of
//! `process` and `linux` moor recorded at create, and every difference between the two is
//! reported as drift. Before create, [`from_bundle`] builds the same report from config.json
//! alone. [`pss::evaluate`] checks a report against the Kubernetes Pod Security Standards.
//!
//! Everything read from the container (mountinfo, labels, paths in its rootfs) is hostile input:
//! it is parsed, never trusted to be well formed, and never followed out of the container.

mod caps;
mod config;
mod live;
mod mountinfo;
pub mod pss;
mod render;
mod seccomp;
mod sha256;

use serde::Serialize;

pub use config::from_bundle;
pub use live::from_container;
pub use render::{json, text};

/// Where a report's facts come from.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Source {
    /// Read from the running (or created) container; the recorded config fills the rest.
    Live {
        id: String,
        status: String,
        /// What "host" namespaces are compared with.
        host_namespaces: String,
    },
    /// From config.json alone, before create.
    Config { bundle: String },
}

/// The isolation report of one container.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub source: Source,
    /// The container process first, then (with `--all`) every other process of the container.
    pub processes: Vec<Process>,
    pub filesystem: Filesystem,
    pub devices: Devices,
    pub cgroup: Limits,
    pub seccomp_profile: Option<seccomp::Profile>,
    /// `linux.sysctl`, sorted (not readable per container from outside: from the config).
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// Where the live facts differ from what the config asked for.
    pub drift: Vec<String>,
    pub findings: Vec<Finding>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Process {
    /// None in a report from config.
    pub pid: Option<i32>,
    pub user: User,
    pub namespaces: Vec<Namespace>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    pub capabilities: Capabilities,
    pub no_new_privs: bool,
    pub seccomp: SeccompState,
    /// The LSM label (AppArmor profile or SELinux context); None when unconfined or no LSM.
    pub lsm_label: Option<String>,
    pub rlimits: Vec<Rlimit>,
}

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The uid inside the container, mapped to the host (None: unmapped).
    pub host_uid: Option<u32>,
    /// Root inside is root on the host.
    pub root_on_host: bool,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NsState {
    /// A namespace of its own.
    New,
    /// One the config named by path (another container's, a pod's).
    Joined,
    /// The host's (pid 1's).
    Host,
}

#[derive(Clone, Debug, Serialize)]
pub struct Namespace {
    /// The /proc/<pid>/ns name: cgroup, ipc, mnt, net, pid, time, user, uts.
    pub kind: String,
    pub state: NsState,
    pub inode: Option<u64>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The five capability sets as names (CAP_*).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub ambient: Vec<String>,
    /// Held or obtainable (any set) beyond the default container set (`moor spec`'s:
    /// AUDIT_WRITE, KILL, NET_BIND_SERVICE).
    pub beyond_default: Vec<String>,
    /// Every capability the kernel knows is in the bounding set.
    pub all: bool,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    Disabled,
    Strict,
    Filter,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct SeccompState {
    pub mode: SeccompMode,
    /// Filters attached (live only: /proc/<pid>/status Seccomp_filters).
    pub filters: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rlimit {
    pub name: String,
    /// None: unlimited.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Filesystem {
    pub root_readonly: bool,
    /// The paths the default spec masks, and whether something is mounted over each.
    pub masked_paths: Vec<PathState>,
    pub readonly_paths: Vec<PathState>,
    pub host_binds: Vec<HostBind>,
    pub proc_writable: bool,
    pub sys_writable: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PathState {
    pub path: String,
    pub in_force: bool,
    /// What covers it ("tmpfs ro", "/dev/null", "ro bind"), or why it needs none.
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostBind {
    pub destination: String,
    /// The host path, when it can be told (from the host's mountinfo or the config).
    pub host_path: Option<String>,
    pub readonly: bool,
    /// A unix socket (a container runtime's socket is the host's root).
    pub socket: bool,
    /// Why this bind matters, when it does ("container runtime socket", "host /").
    pub danger: Option<String>,
    /// Put there by the orchestrator rather than asked for as a host path: a kubelet-managed
    /// volume (emptyDir, configMap, secret, projected: under /var/lib/kubelet/pods/) or a file the
    /// runtime writes for every container (/etc/hosts, /etc/hostname, /etc/resolv.conf,
    /// /dev/termination-log). Not a hostPath volume in the Pod Security Standards' sense.
    pub managed: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Devices {
    /// Where `rules` come from: "cgroup v1 devices.list" or "config".
    pub rules_source: String,
    pub rules: Vec<String>,
    pub all_allowed: bool,
    /// Device nodes under the container's /dev (and, from config, linux.devices).
    pub nodes: Vec<DeviceNode>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviceNode {
    pub path: String,
    /// 'c' or 'b'.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Limits {
    /// Bytes; None: no limit.
    pub memory: Option<u64>,
    /// None: no limit.
    pub pids: Option<u64>,
    /// Where the limits come from ("cgroup" or "config"), or why there are none.
    pub source: String,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

/// The masked and read-only paths of `moor spec` (runc's), checked in every report.
pub const DEFAULT_MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",
];
pub const DEFAULT_READONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// File names of container runtime and orchestrator sockets: whoever reaches one controls the host.
const RUNTIME_SOCKETS: [&str; 8] = [
    "containerd.sock",
    "docker.sock",
    "crio.sock",
    "podman.sock",
    "dockershim.sock",
    "cri-dockerd.sock",
    "kubelet.sock",
    "containerd-shim.sock",
];

/// Files a container runtime or the kubelet binds into every container.
const MANAGED_FILES: [&str; 4] = [
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/termination-log",
];

/// Where runtimes keep the per-container copies of MANAGED_FILES (docker, containerd, cri-o,
/// podman state directories).
const RUNTIME_STATE: [&str; 3] = ["/var/lib/", "/run/", "/var/run/"];

/// Whether a bind of `host` at `dest` is the orchestrator's (see [`HostBind::managed`]). A path
/// with `.`/`..` components (a config's source is not canonical) or a managed file name bound
/// from anywhere but a runtime's state directory (the host's /etc/hosts, or worse) is not.
fn managed(host: &str, dest: &str) -> bool {
    let clean = host.starts_with('/') && host[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !clean {
        return false;
    }
    if host.starts_with("/var/lib/kubelet/pods/") {
        return true;
    }
    let same_name = host.rsplit('/').next() == dest.rsplit('/').next();
    MANAGED_FILES.contains(&dest) && same_name && RUNTIME_STATE.iter().any(|d| host.starts_with(d))
}

/// Host paths that hand the container the host when bound writable.
const HOST_CRITICAL: [&str; 5] = ["/", "/proc", "/sys", "/dev", "/etc"];

impl HostBind {
    /// Classifies a bind by its host path and file type.
    fn assess(mut self) -> HostBind {
        let host = self.host_path.clone().unwrap_or_default();
        let name = host.rsplit('/').next().unwrap_or_default();
        self.danger = if RUNTIME_SOCKETS.contains(&name) {
            Some(format!("container runtime socket {name}"))
        } else if self.socket {
            Some("host unix socket".into())
        } else if HOST_CRITICAL.contains(&host.as_str()) && !self.readonly {
            Some(format!("host {host} writable"))
        } else if HOST_CRITICAL.contains(&host.as_str()) {
            Some(format!("host {host}"))
        } else {
            None
        };
        self.managed = self.danger.is_none() && managed(&host, &self.destination);
        self
    }
}

/// The findings every report gets, from its facts.
fn findings(r: &Report) -> Vec<Finding> {
    let mut f = Vec::new();
    let mut add = |severity, message: String| f.push(Finding { severity, message });
    for p in &r.processes {
        let who = p.pid.map_or_else(|| "process".to_string(), |pid| format!("pid {pid}"));
        if p.capabilities.all {
            add(Severity::Critical, format!("{who}: every capability (privileged)"));
        } else if !p.capabilities.beyond_default.is_empty() {
            let sev = if p
                .capabilities
                .beyond_default
                .iter()
                .any(|c| caps::DANGEROUS.contains(&c.as_str()))
            {
                Severity::High
            } else {
                Severity::Medium
            };
            add(
                sev,
                format!(
                    "{who}: capabilities beyond the default set: {}",
                    p.capabilities.beyond_default.join(", ")
                ),
            );
        }
        for ns in &p.namespaces {
            if ns.state == NsState::Host && ["pid", "ipc", "net", "mnt", "user"].contains(&ns.kind.as_str()) {
                let sev = if ns.kind == "user" {
                    Severity::Info
                } else {
                    Severity::High
                };
                add(sev, format!("{who}: shares the host's {} namespace", ns.kind));
            }
        }
        if p.user.root_on_host {
            add(
                Severity::Medium,
                format!("{who}: runs as root, and root inside is root on the host"),
            );
        }
        if !p.no_new_privs {
            add(
                Severity::Medium,
                format!("{who}: no_new_privs is off (setuid binaries can raise privileges)"),
            );
        }
        if p.seccomp.mode == SeccompMode::Disabled {
            add(Severity::High, format!("{who}: no seccomp filter"));
        }
    }
    if let Some(s) = &r.seccomp_profile {
        if !s.dangerous_allowed.is_empty() {
            add(
                Severity::Medium,
                format!("seccomp profile allows {}", s.dangerous_allowed.join(", ")),
            );
        }
    }
    let fs = &r.filesystem;
    if !fs.root_readonly {
        add(Severity::Low, "root filesystem is writable".into());
    }
    let unmasked: Vec<&str> = fs
        .masked_paths
        .iter()
        .filter(|m| !m.in_force)
        .map(|m| m.path.as_str())
        .collect();
    if !unmasked.is_empty() {
        add(Severity::High, format!("not masked: {}", unmasked.join(", ")));
    }
    let writable: Vec<&str> = fs
        .readonly_paths
        .iter()
        .filter(|m| !m.in_force)
        .map(|m| m.path.as_str())
        .collect();
    if !writable.is_empty() {
        add(Severity::High, format!("not read-only: {}", writable.join(", ")));
    }
    if fs.sys_writable {
        add(Severity::High, "/sys is writable".into());
    }
    for b in &fs.host_binds {
        let host = b.host_path.as_deref().unwrap_or("?");
        match &b.danger {
            Some(d) => add(
                Severity::Critical,
                format!("host bind {host} at {}: {d}", b.destination),
            ),
            None => add(
                Severity::Low,
                format!(
                    "host bind {host} at {}{}",
                    b.destination,
                    if b.readonly { " (ro)" } else { "" }
                ),
            ),
        }
    }
    if r.devices.all_allowed {
        add(
            Severity::Critical,
            format!("every device allowed ({})", r.devices.rules_source),
        );
    }
    if r.cgroup.memory.is_none() {
        add(Severity::Low, "no memory limit".into());
    }
    if r.cgroup.pids.is_none() {
        add(Severity::Low, "no pids limit".into());
    }
    for d in &r.drift {
        add(Severity::High, format!("drift: {d}"));
    }
    f.sort_by_key(|x| std::cmp::Reverse(x.severity));
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn managed_binds() {
        use super::managed;
        assert!(managed(
            "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/tok",
            "/var/run/secrets/tok"
        ));
        assert!(managed("/var/lib/docker/containers/abc/hosts", "/etc/hosts"));
        assert!(managed(
            "/run/containers/storage/overlay-containers/x/userdata/resolv.conf",
            "/etc/resolv.conf"
        ));
        assert!(!managed("/etc/hosts", "/etc/hosts"));
        assert!(!managed("/etc/shadow", "/etc/hosts"));
        assert!(!managed("/var/lib/x/shadow", "/etc/hosts"));
        assert!(!managed("/var/lib/kubelet/pods/../../../etc", "/data"));
        assert!(!managed("/srv/data", "/data"));
    }
}
