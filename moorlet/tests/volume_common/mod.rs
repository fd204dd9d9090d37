//! Shared by the volume tests: a pod from JSON, objects in memory, a scratch dir that is
//! unmounted and removed at the end.

#![allow(dead_code)] // each test file uses a different part

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use moorlet::volume::Objects;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Default)]
pub struct Store {
    pub config_maps: Mutex<HashMap<String, ConfigMap>>,
    pub secrets: Mutex<HashMap<String, Secret>>,
}

impl Store {
    pub fn put_config_map(&self, value: serde_json::Value) {
        let cm: ConfigMap = serde_json::from_value(value).expect("a ConfigMap");
        let name = cm.metadata.name.clone().unwrap_or_default();
        self.config_maps.lock().expect("lock").insert(name, cm);
    }

    pub fn put_secret(&self, value: serde_json::Value) {
        let s: Secret = serde_json::from_value(value).expect("a Secret");
        let name = s.metadata.name.clone().unwrap_or_default();
        self.secrets.lock().expect("lock").insert(name, s);
    }
}

impl Objects for Store {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        assert_eq!(namespace, "ns1", "objects are looked up in the pod's namespace");
        self.config_maps.lock().ok()?.get(name).cloned()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        assert_eq!(namespace, "ns1", "objects are looked up in the pod's namespace");
        self.secrets.lock().ok()?.get(name).cloned()
    }
}

/// A pod in namespace ns1 with these volumes and one container "app".
pub fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web", "namespace": "ns1", "uid": "u-123",
                      "labels": { "app": "web", "tier": "front" },
                      "annotations": { "note": "say \"hi\"" } },
        "spec": {
            "containers": [{ "name": "app", "image": "busybox",
                             "resources": { "limits": { "memory": "64Mi", "cpu": "500m" } } }],
            "volumes": volumes
        }
    }))
    .expect("a Pod")
}

pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = PathBuf::from(format!("/tmp/moorlet-vol-{}-{name}", std::process::id()));
        cleanup_dir(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn pod_dir(&self) -> PathBuf {
        self.0.join("pod")
    }

    pub fn claims(&self) -> PathBuf {
        self.0.join("claims")
    }
}

/// Every mount under `dir`, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn cleanup_dir(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(dir);
}

impl Drop for Scratch {
    fn drop(&mut self) {
        cleanup_dir(&self.0);
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

pub fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}
