//! Namespaces: the pod's net, ipc and uts (joined by path), a pid namespace of the container's
//! own unless hostPID or shareProcessNamespace, a new mount namespace, a cgroup namespace where
//! containerd makes one (cgroup v2 hosts), and never a user namespace.

use super::{Ctx, SpecError};
use serde_json::{json, Value};
use std::path::Path;

pub(crate) fn namespaces(cx: &Ctx) -> Result<Vec<Value>, SpecError> {
    let input = cx.input;
    let pod = cx.pod;
    let mut out = vec![json!({"type": "mount"})];
    let join = |kind: &str, path: Option<&Path>, host: bool, field: &str| -> Result<Option<Value>, SpecError> {
        match (path, host) {
            (Some(p), _) => Ok(Some(json!({"type": kind, "path": p}))),
            (None, true) => Ok(None),
            // A pod that did not ask for the host's namespace never silently gets it.
            (None, false) => Err(SpecError::invalid(
                field,
                format!("is false, but the pod has no {kind} namespace"),
            )),
        }
    };
    let host_network = pod.host_network.unwrap_or(false);
    out.extend(join("network", input.netns, host_network, "spec.hostNetwork")?);
    out.extend(join("ipc", input.ipcns, pod.host_ipc.unwrap_or(false), "spec.hostIPC")?);
    out.extend(join("uts", input.utsns, host_network, "spec.hostNetwork")?);
    if !pod.host_pid.unwrap_or(false) {
        if pod.share_process_namespace.unwrap_or(false) {
            let path = input.pidns.ok_or_else(|| {
                SpecError::invalid(
                    "spec.shareProcessNamespace",
                    "is true, but the pod has no pid namespace",
                )
            })?;
            out.push(json!({"type": "pid", "path": path}));
        } else {
            out.push(json!({"type": "pid"}));
        }
    }
    if cgroup2_host() {
        out.push(json!({"type": "cgroup"}));
    }
    Ok(out)
}

/// containerd gives a container a cgroup namespace on cgroup v2 hosts only.
fn cgroup2_host() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The pod's hostname (spec.hostname, else the pod name cut to 63 characters as the kubelet
/// cuts it), set only when the uts namespace is the pod's.
pub(crate) fn hostname(cx: &Ctx) -> Option<String> {
    cx.input.utsns?;
    Some(pod_hostname(cx.input.pod))
}

/// The hostname Kubernetes gives a pod: spec.hostname, else its name cut to 63 characters
/// (without a trailing '-' or '.'). The pod's /etc/hostname and uts namespace should use it too.
pub fn pod_hostname(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    let spec_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty());
    let name = spec_name.unwrap_or(pod.metadata.name.as_deref().unwrap_or(""));
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}
