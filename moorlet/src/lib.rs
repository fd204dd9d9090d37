//! moorlet: a single-node pod agent on moor.
//!
//! It reads the Kubernetes YAML a user would give a cluster (Pods, ConfigMaps, Secrets,
//! PersistentVolumeClaims) and keeps it running on one machine. Modules, by who owns what:
//!
//! - `manifest`: YAML/JSON documents parsed into k8s-openapi objects, and the list of fields
//!   moorlet does not honour (`moorlet validate`).
//! - `image`: the image store: import (OCI layout, oci-archive, docker-archive), pull from a
//!   registry v2, digest-verified blobs, unpacked layers, and each container's overlay rootfs.
//! - `net`: a pod's namespaces (held by bind-mounted nsfs files), CNI plugins, generated
//!   /etc/hosts, /etc/hostname and /etc/resolv.conf.
//! - `volume`: a pod's volumes on the host (emptyDir, hostPath, configMap, secret, downwardAPI,
//!   projected, PVC).
//! - `spec`: a pod's container turned into an OCI runtime spec for moor (process, env, security
//!   context, resources, mounts, namespaces), and the RuntimeDefault seccomp profile.
//! - the agent (desired state, reconciler, per-pod monitors, restarts, logs) and its client:
//!   `agent` (API server and reconciler, threaded), `monitor` (one single-threaded process per
//!   pod that owns its containers), `api` (JSON over the Unix socket), `client` (the commands),
//!   `store` (the state directory), `logs` (CRI log files), `events`.

pub mod agent;
pub mod api;
pub mod client;
pub mod events;
pub mod image;
pub mod logs;
pub mod manifest;
pub mod monitor;
pub mod net;
pub mod spec;
pub mod store;
pub mod util;
pub mod volume;

/// The agent's socket unless --socket or MOORLET_SOCKET says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/moorlet/moorlet.sock";

/// A line on stderr with the time: the agent's and the monitors' log.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        eprintln!("{} {}", $crate::util::rfc3339(now, true), format!($($arg)*));
    }};
}
