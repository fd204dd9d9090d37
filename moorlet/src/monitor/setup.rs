//! The pod's sandbox: namespaces, network, /etc files, volumes; and each container's OCI spec.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::Monitor;
use crate::net::{EtcFiles, HostPort, Network, PodNamespaces, PodRef};
use crate::store::Store;

#[derive(Default)]
pub struct PodNet {
    pub network: Option<Network>,
    pub namespaces: Option<PodNamespaces>,
    pub ip: Option<IpAddr>,
    pub etc: Option<EtcFiles>,
    /// The pod's /dev/shm: one tmpfs for the containers that share its ipc namespace.
    pub shm: Option<PathBuf>,
}

/// A 64 MiB tmpfs (Docker's and containerd's default size) at `run_dir`/shm.
fn mount_shm(run_dir: &std::path::Path) -> Result<PathBuf> {
    use nix::mount::{mount, MsFlags};
    let dir = run_dir.join("shm");
    unmount_shm(run_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("shm"), &dir, Some("tmpfs"), flags, Some("mode=1777,size=65536k"))
        .with_context(|| format!("cannot mount the pod's shm tmpfs on {}", dir.display()))?;
    Ok(dir)
}

fn unmount_shm(run_dir: &std::path::Path) {
    let dir = run_dir.join("shm");
    while nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}

/// ConfigMaps and Secrets as the agent stored them, for env and volumes.
pub struct Objects<'a>(pub &'a Store);

impl crate::volume::Objects for Objects<'_> {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.0.object("ConfigMap", namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.0.object("Secret", namespace, name)
    }
}

impl crate::spec::EnvSources for Objects<'_> {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.0.object("ConfigMap", namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.0.object("Secret", namespace, name)
    }
}

/// The pod's /etc files under `run_dir`/etc, with `peers` in its hosts file (again when
/// the peers change: the files are updated in place).
pub fn write_etc(
    run_dir: &std::path::Path,
    pod: &k8s_openapi::api::core::v1::Pod,
    ip: Option<IpAddr>,
    peers: &[(String, IpAddr)],
) -> Result<EtcFiles> {
    let spec = pod.spec.clone().unwrap_or_default();
    let aliases: Vec<(IpAddr, Vec<String>)> = spec
        .host_aliases
        .iter()
        .flatten()
        .filter_map(|a| Some((a.ip.parse().ok()?, a.hostnames.clone().unwrap_or_default())))
        .collect();
    let hostname = crate::spec::pod_hostname(pod);
    let host_network = spec.host_network.unwrap_or(false);
    Ok(crate::net::write_etc_files(
        &run_dir.join("etc"),
        &hostname,
        ip,
        &aliases,
        peers,
        host_network,
    )?)
}

/// The other pods of `pod`'s namespace that have an IP, by name: pods on one node reach each
/// other by name through their hosts files.
pub fn peers(store: &Store, pod: &k8s_openapi::api::core::v1::Pod) -> Vec<(String, IpAddr)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for d in store.pods().unwrap_or_default() {
        if d.namespace() != ns || d.uid() == uid || d.deleting {
            continue;
        }
        let status: Option<serde_json::Value> = crate::util::read_json(&store.run_dir(&d.uid()).join("status.json"))
            .ok()
            .flatten();
        if let Some(ip) = status.and_then(|s| s["podIP"].as_str().and_then(|ip| ip.parse().ok())) {
            out.push((d.name(), ip));
        }
    }
    out
}

impl Monitor {
    pub fn pod_ref(&self) -> PodRef {
        PodRef {
            namespace: self.ns.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    fn host_ports(&self) -> Vec<HostPort> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        spec.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
                Some(HostPort {
                    host_port,
                    container_port: u16::try_from(p.container_port).ok()?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
                })
            })
            .collect()
    }

    /// Namespaces, CNI, /etc files, volumes. On error, what was made stays recorded in
    /// `self.net`, for `teardown_pod_resources`.
    pub fn setup(&mut self) -> Result<()> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let hostname = crate::spec::pod_hostname(&self.pod);
        let pod = self.pod_ref();
        let network = Network::new(&self.store.root)?;
        let nss = network.create_namespaces(&pod, &hostname, host_network, spec.host_ipc.unwrap_or(false))?;
        self.net.namespaces = Some(nss);
        self.net.network = Some(network);
        let (Some(network), Some(nss)) = (&self.net.network, &self.net.namespaces) else {
            anyhow::bail!("the pod's network vanished");
        };
        if !host_network {
            self.net.ip = network.attach(&pod, nss, &self.host_ports())?;
        }
        let peers = peers(&self.store, &self.pod);
        self.net.etc = Some(write_etc(&self.run_dir, &self.pod, self.net.ip, &peers)?);
        if !spec.host_ipc.unwrap_or(false) {
            self.net.shm = Some(mount_shm(&self.run_dir)?);
        }
        self.volumes = crate::volume::prepare(
            &self.pod,
            &self.run_dir,
            &self.store.claims_dir(),
            &Objects(&self.store),
            self.net.ip,
        )?;
        Ok(())
    }

    /// Undoes `setup`; every step is idempotent and runs even when an earlier one failed.
    pub fn teardown_pod_resources(&mut self) {
        unmount_shm(&self.run_dir);
        if let Err(e) = crate::volume::cleanup(&self.pod, &self.run_dir) {
            self.event(true, "FailedCleanup", &format!("volumes: {e}"));
        }
        let pod = self.pod_ref();
        let network = match self.net.network.take() {
            Some(n) => Some(n),
            None => Network::new(&self.store.root).ok(),
        };
        if let Some(network) = network {
            let nss = self.net.namespaces.take().unwrap_or_else(|| self.recorded_namespaces());
            if let Err(e) = network.detach(&pod, &nss) {
                self.event(true, "FailedCleanup", &format!("network: {e}"));
            }
            if let Err(e) = network.remove_namespaces(&pod) {
                self.event(true, "FailedCleanup", &format!("namespaces: {e}"));
            }
        }
        self.net = PodNet::default();
    }

    /// After a monitor crash the namespaces' paths are not known here: net's detach and
    /// remove_namespaces work from the pod alone.
    fn recorded_namespaces(&self) -> PodNamespaces {
        PodNamespaces {
            net: None,
            ipc: None,
            uts: None,
        }
    }

    /// What a previous monitor of this pod may have left: containers, rootfs mounts, the
    /// network. After a reboot nothing is left; after a monitor crash everything is.
    pub fn cleanup_leftovers(&mut self) {
        for c in &self.ctrs {
            let _ = self.rt.delete(&c.id, true);
            let _ = crate::image::unmount_rootfs(&c.dir);
        }
        if self.run_dir.join("status.json").exists() {
            self.teardown_pod_resources();
        }
    }

    /// The whole pod is going away: containers are already stopped.
    pub fn teardown(&mut self) {
        for c in &self.ctrs {
            let _ = self.rt.delete(&c.id, true);
            if let Err(e) = crate::image::unmount_rootfs(&c.dir) {
                self.event(true, "FailedCleanup", &format!("rootfs of {}: {e}", c.name));
            }
        }
        self.teardown_pod_resources();
        let _ = std::fs::write(self.run_dir.join("gone"), b"");
    }

    /// The OCI spec of container `i`, on a fresh overlay rootfs.
    pub fn container_spec(&mut self, i: usize) -> Result<oci_spec::runtime::Spec> {
        let c = &self.ctrs[i];
        let image = self
            .images
            .get(&c.image_id)?
            .with_context(|| format!("image {} of container {} is gone", c.image_id, c.name))?;
        let _ = self.rt.delete(&c.id, true);
        let _ = crate::image::unmount_rootfs(&c.dir);
        std::fs::create_dir_all(&c.dir).with_context(|| format!("cannot create {}", c.dir.display()))?;
        let rootfs = crate::image::mount_rootfs(&self.images, &image, &c.dir)?;
        let defaults = crate::spec::ImageDefaults {
            entrypoint: image.config.entrypoint.clone(),
            cmd: image.config.cmd.clone(),
            env: image.config.env.clone(),
            working_dir: image.config.working_dir.clone(),
            user: image.config.user.clone(),
        };
        let volumes: Vec<(String, PathBuf, bool)> = self
            .volumes
            .iter()
            .map(|v| (v.name.clone(), v.path.clone(), v.read_only))
            .collect();
        let nss = self.net.namespaces.as_ref();
        let etc = self.net.etc.as_ref();
        let objects = Objects(&self.store);
        let seccomp_dir = self.store.root.join("seccomp");
        // The container writes why it ended here (terminationMessagePath); fresh for each run.
        let termination_log = c.dir.join("termination-log");
        std::fs::write(&termination_log, b"")
            .with_context(|| format!("cannot create {}", termination_log.display()))?;
        std::fs::set_permissions(&termination_log, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .with_context(|| format!("cannot chmod {}", termination_log.display()))?;
        let input = crate::spec::ContainerInput {
            pod: &self.pod,
            container: &c.spec,
            image: &defaults,
            rootfs: &rootfs,
            netns: nss.and_then(|n| n.net.as_deref()),
            ipcns: nss.and_then(|n| n.ipc.as_deref()),
            utsns: nss.and_then(|n| n.uts.as_deref()),
            pidns: None,
            volumes: &volumes,
            etc_hosts: etc.map(|e| e.hosts.as_path()),
            etc_hostname: etc.map(|e| e.hostname.as_path()),
            resolv_conf: etc.map(|e| e.resolv_conf.as_path()),
            env_sources: &objects,
            pod_ip: self.net.ip,
            cgroups_path: format!("{}/{}", self.cgroup_parent.trim_end_matches('/'), c.id),
            shm: self.net.shm.as_deref(),
            seccomp_dir: Some(&seccomp_dir),
            termination_log: Some(&termination_log),
        };
        let spec = crate::spec::container_spec(&input);
        if spec.is_err() {
            let _ = crate::image::unmount_rootfs(&c.dir);
        }
        Ok(spec?)
    }

    /// The signal that stops container `i`: its lifecycle.stopSignal, else its image's
    /// StopSignal, else SIGTERM.
    pub fn stop_signal(&self, i: usize) -> i32 {
        let c = &self.ctrs[i];
        let named = c
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.stop_signal.clone())
            .or_else(|| {
                self.images
                    .get(&c.image_id)
                    .ok()
                    .flatten()
                    .and_then(|img| img.config.stop_signal.clone())
            });
        named.and_then(|s| moor::parse_signal(&s).ok()).unwrap_or(libc::SIGTERM)
    }
}
