//! A pod's network: its namespaces (bind-mounted nsfs files), CNI 1.0.0 plugins (loopback, then a
//! conflist: bridge + host-local by default, portmap for hostPorts), hostPort bookkeeping, and the
//! generated /etc files.
//!
//! State, under the state dir: `run/ns/<uid>/{net,ipc,uts}` (namespace files), `cni/net.d` (the
//! config; moorlet writes a default if it is empty), `cni/pods/<uid>.json` (each attached pod:
//! the config used, its hostPorts and the ADD result, so that DEL works after a restart and
//! hostPort conflicts are found from moorlet's own records), `cni/ipam` (host-local's leases).

mod cni;
mod conflist;
mod error;
mod etc;
mod ns;
mod plugin;

pub use error::NetError;
pub use etc::{write_etc_files, EtcFiles};

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The pod a network call is about; `uid` names its state files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A container port published on the host (portmap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host_port: u16,
    pub container_port: u16,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
}

/// The namespace files of a pod; `None` means the host's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

/// What the default conflist holds, and where the plugins are.
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// CNI plugin binaries (CNI_PATH).
    pub plugin_dir: PathBuf,
    /// The network's name in the default conflist (it names iptables chains and leases).
    pub network_name: String,
    /// The bridge of the default conflist.
    pub bridge: String,
    /// The pod subnet of the default conflist. 10.87.0.0/16 by default: outside the ranges of
    /// Docker (172.17/16), podman and containerd (10.88/16) and common cluster CIDRs (10.244/16).
    pub subnet: String,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            plugin_dir: PathBuf::from("/usr/lib/cni"),
            network_name: "moorlet".into(),
            bridge: "moorlet0".into(),
            subnet: "10.87.0.0/16".into(),
        }
    }
}

/// Pods' networking on this node; safe to share across threads (`&self`), and across processes
/// using the same state dir (records are changed under a file lock).
#[derive(Debug)]
pub struct Network {
    ns_dir: PathBuf,
    cni: cni::Cni,
}

impl Network {
    /// CNI plugins in /usr/lib/cni, config in `<state_dir>/cni/net.d` (a default is written there if it is empty).
    pub fn new(state_dir: &Path) -> Result<Network, NetError> {
        Network::with_options(state_dir, &NetOptions::default())
    }

    /// As `new`, with another plugin dir, and the bridge, subnet and network name of the default
    /// conflist (used only when the config dir is empty): tests and a second moorlet use their own.
    pub fn with_options(state_dir: &Path, options: &NetOptions) -> Result<Network, NetError> {
        let ns_dir = state_dir.join("run/ns");
        ns::prepare_dir(&ns_dir)?;
        let cni = cni::Cni::open(&state_dir.join("cni"), options)?;
        Ok(Network { ns_dir, cni })
    }

    fn pod_ns_dir(&self, pod: &PodRef) -> Result<PathBuf, NetError> {
        check_uid(&pod.uid)?;
        Ok(self.ns_dir.join(&pod.uid))
    }

    /// The pod's net, ipc and uts namespaces (the hostname set in its uts namespace); a
    /// hostNetwork pod keeps the host's net and uts, a hostIPC pod the host's ipc.
    pub fn create_namespaces(
        &self,
        pod: &PodRef,
        hostname: &str,
        host_network: bool,
        host_ipc: bool,
    ) -> Result<PodNamespaces, NetError> {
        if hostname.is_empty() || hostname.len() > 64 || hostname.contains(['/', '\0', ' ', '\n']) {
            return Err(NetError::Invalid {
                field: "spec.hostname".into(),
                value: hostname.into(),
                reason: "a hostname is 1 to 64 characters without '/', NUL or white space",
            });
        }
        let dir = self.pod_ns_dir(pod)?;
        ns::create(&dir, hostname, host_network, host_ipc)
    }

    /// CNI ADD: loopback, then the conflist; returns the pod's IP (None for a hostNetwork pod).
    /// A hostPort held by another pod fails with HostPortInUse before anything is made.
    pub fn attach(&self, pod: &PodRef, ns: &PodNamespaces, ports: &[HostPort]) -> Result<Option<IpAddr>, NetError> {
        check_uid(&pod.uid)?;
        match &ns.net {
            Some(netns) => self.cni.add(pod, netns, ports).map(Some),
            None => Ok(None),
        }
    }

    /// CNI DEL, in reverse order, from the record kept at ADD (which names the namespace ADD
    /// used, so `_ns` is not needed: a restarted agent may not have it); idempotent.
    pub fn detach(&self, pod: &PodRef, _ns: &PodNamespaces) -> Result<(), NetError> {
        check_uid(&pod.uid)?;
        self.cni.del(pod)
    }

    /// Unmounts and removes the pod's namespace files; idempotent. A pod still attached is
    /// detached first: the bridge plugin finds the masquerade rules to delete through the pod's
    /// addresses inside its netns, so a DEL after the netns is gone would leave them. If that DEL
    /// fails, the namespaces still go and its error is returned (the record stays for a retry).
    pub fn remove_namespaces(&self, pod: &PodRef) -> Result<(), NetError> {
        let dir = self.pod_ns_dir(pod)?;
        let detached = self.cni.del(pod);
        ns::remove(&dir)?;
        detached
    }
}

/// The uid names files and directories: one plain path component.
fn check_uid(uid: &str) -> Result<(), NetError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && uid.starts_with(|c: char| c.is_ascii_alphanumeric())
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid {
            field: "metadata.uid".into(),
            value: uid.into(),
            reason: "must be letters, digits, '-', '_' or '.', starting with a letter or digit (a CNI container id)",
        })
    }
}
