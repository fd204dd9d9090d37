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
mod findings;
mod live;
mod mountinfo;
mod proc;
pub mod pss;
mod render;
mod root;
mod seccomp;

use serde::Serialize;

use findings::findings;

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
