//! The agent's state directory: desired objects and each pod's run directory.
//!
//! ```text
//! <state>/pods/<ns>_<name>.json            desired pod (with its uid) and whether it is being deleted
//! <state>/objects/<kind>/<ns>_<name>.json  ConfigMaps, Secrets (0600), PersistentVolumeClaims
//! <state>/run/<uid>/                       the pod's monitor: pod.json, images.json, monitor.pid,
//!                                          status.json, events.jsonl, stop, containers/<name>/
//! <state>/images  <state>/moor  <state>/claims  <state>/events.jsonl
//! ```
//!
//! Every file is written with fsync + atomic rename (util::write_atomic), so an agent killed at
//! any point finds either the old or the new version.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::util;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Desired {
    pub pod: Pod,
    /// Set before the monitor is told to stop: an agent restarted mid-delete finishes it.
    #[serde(default)]
    pub deleting: bool,
}

impl Desired {
    pub fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_else(|| "default".into())
    }
    pub fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }
    pub fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }
}

/// The kinds of non-pod objects the agent keeps.
pub const KINDS: [&str; 3] = ["ConfigMap", "Secret", "PersistentVolumeClaim"];

#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        for sub in ["pods", "objects", "run", "claims"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let root = std::fs::canonicalize(root).with_context(|| format!("cannot resolve {}", root.display()))?;
        // Secrets live here: nobody but root reads the state directory.
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("cannot chmod {}", root.display()))?;
        Ok(Store { root })
    }

    pub fn moor_root(&self) -> PathBuf {
        self.root.join("moor")
    }
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn claims_dir(&self) -> PathBuf {
        self.root.join("claims")
    }
    pub fn events_file(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    pub fn run_dir(&self, uid: &str) -> PathBuf {
        self.root.join("run").join(uid)
    }
    fn pod_file(&self, ns: &str, name: &str) -> PathBuf {
        self.root.join("pods").join(format!("{ns}_{name}.json"))
    }

    pub fn save_pod(&self, d: &Desired) -> Result<()> {
        util::write_json(&self.pod_file(&d.namespace(), &d.name()), d, 0o600)
    }
    pub fn pod(&self, ns: &str, name: &str) -> Result<Option<Desired>> {
        util::read_json(&self.pod_file(ns, name))
    }
    pub fn remove_pod(&self, ns: &str, name: &str) -> Result<()> {
        let path = self.pod_file(ns, name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(anyhow::anyhow!("cannot remove {}: {e}", path.display()))
            }
            _ => Ok(()),
        }
    }
    /// Every desired pod, sorted by namespace and name.
    pub fn pods(&self) -> Result<Vec<Desired>> {
        let dir = self.root.join("pods");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        let mut pods = Vec::new();
        for path in names {
            match util::read_json::<Desired>(&path) {
                Ok(Some(d)) => pods.push(d),
                Ok(None) => {}
                Err(e) => crate::log!("skipping {}: {e:#}", path.display()),
            }
        }
        Ok(pods)
    }

    fn object_file(&self, kind: &str, ns: &str, name: &str) -> PathBuf {
        self.root.join("objects").join(kind).join(format!("{ns}_{name}.json"))
    }
    /// Stores an object; true when it changed.
    pub fn save_object(&self, kind: &str, ns: &str, name: &str, value: &serde_json::Value) -> Result<bool> {
        let path = self.object_file(kind, ns, name);
        if util::read_json::<serde_json::Value>(&path)?.as_ref() == Some(value) {
            return Ok(false);
        }
        let dir = self.root.join("objects").join(kind);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        util::write_json(&path, value, 0o600)?;
        Ok(true)
    }
    pub fn object<T: serde::de::DeserializeOwned>(&self, kind: &str, ns: &str, name: &str) -> Option<T> {
        util::read_json(&self.object_file(kind, ns, name)).ok().flatten()
    }
    /// Removes an object; true when it existed.
    pub fn remove_object(&self, kind: &str, ns: &str, name: &str) -> Result<bool> {
        let path = self.object_file(kind, ns, name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(anyhow::anyhow!("cannot remove {}: {e}", path.display())),
        }
    }
}
