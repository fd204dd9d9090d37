//! `apply` and `delete`: declarative changes of the desired state.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::Agent;
use crate::api::Document;
use crate::manifest::Object;
use crate::store::Desired;

fn parse(documents: &[Document]) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for d in documents {
        out.extend(crate::manifest::parse(&d.text).with_context(|| d.source.clone())?);
    }
    // ConfigMaps, Secrets and claims first: the pods that use them find them.
    out.sort_by_key(|o| matches!(o, Object::Pod(_)));
    Ok(out)
}

/// Kind, namespace, name and the stored form of a non-pod object.
fn other(o: &Object) -> Result<(&'static str, String, String, Value)> {
    let (kind, meta, value) = match o {
        Object::ConfigMap(x) => ("ConfigMap", &x.metadata, serde_json::to_value(x)?),
        Object::Secret(x) => ("Secret", &x.metadata, serde_json::to_value(x)?),
        Object::PersistentVolumeClaim(x) => ("PersistentVolumeClaim", &x.metadata, serde_json::to_value(x)?),
        Object::Deployment(x) => anyhow::bail!(
            "deployment {:?}: Deployments are not supported yet (moorlet part 2)",
            x.metadata.name.clone().unwrap_or_default()
        ),
        Object::Service(x) => anyhow::bail!(
            "service {:?}: Services are not supported yet (moorlet part 2)",
            x.metadata.name.clone().unwrap_or_default()
        ),
        Object::Pod(_) => anyhow::bail!("a pod is not stored as an object"),
    };
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().unwrap_or_default();
    crate::util::check_name("metadata.namespace", &ns)?;
    crate::util::check_name(&format!("{kind} metadata.name"), &name)?;
    Ok((kind, ns, name, value))
}

fn lower(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

impl Agent {
    pub fn apply(&self, documents: &[Document]) -> Result<Value> {
        let objects = parse(documents)?;
        let mut said = Vec::new();
        let mut errors = Vec::new();
        for o in &objects {
            let r = match o {
                Object::Pod(p) => self.apply_pod(p),
                _ => self.apply_other(o),
            };
            match r {
                Ok(line) => said.push(line),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            anyhow::bail!(
                "{}{}",
                said.iter().map(|l| format!("{l}\n")).collect::<String>(),
                errors.join("\n")
            );
        }
        Ok(serde_json::json!(said))
    }

    fn apply_other(&self, o: &Object) -> Result<String> {
        let (kind, ns, name, value) = other(o)?;
        let _guard = self
            .lock
            .lock()
            .map_err(|_| anyhow::anyhow!("the agent's lock is poisoned"))?;
        let existed = self.store.object::<Value>(kind, &ns, &name).is_some();
        if !self.store.save_object(kind, &ns, &name, &value)? {
            return Ok(format!("{}/{name} unchanged", lower(kind)));
        }
        self.event(&ns, &format!("{kind}/{name}"), false, "Applied", "stored");
        if existed && kind != "PersistentVolumeClaim" {
            self.refresh_volumes(&ns);
        }
        Ok(format!(
            "{}/{name} {}",
            lower(kind),
            if existed { "configured" } else { "created" }
        ))
    }

    /// A ConfigMap or Secret changed: the files of the pods that mount it are updated in place.
    fn refresh_volumes(&self, ns: &str) {
        let Ok(pods) = self.store.pods() else { return };
        for d in pods.iter().filter(|d| d.namespace() == ns && !d.deleting) {
            let run_dir = self.store.run_dir(&d.uid());
            let ip = crate::util::read_json::<Value>(&run_dir.join("status.json"))
                .ok()
                .flatten()
                .and_then(|s| s["podIP"].as_str().and_then(|ip| ip.parse().ok()));
            let objects = crate::monitor::Objects(&self.store);
            if let Err(e) = crate::volume::refresh(&d.pod, &run_dir, &objects, ip) {
                self.event(ns, &format!("Pod/{}", d.name()), true, "FailedRefresh", &format!("{e}"));
            }
        }
    }

    fn apply_pod(&self, pod: &Pod) -> Result<String> {
        let mut pod = pod.clone();
        let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        crate::util::check_name("metadata.namespace", &ns)?;
        crate::util::check_name("pod metadata.name", &name)?;
        let spec = pod
            .spec
            .as_ref()
            .with_context(|| format!("pod {name}: spec is missing"))?;
        anyhow::ensure!(!spec.containers.is_empty(), "pod {name}: spec.containers is empty");
        let mut seen = std::collections::HashSet::new();
        for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
            crate::util::check_name("container name", &c.name).with_context(|| format!("pod {name}"))?;
            anyhow::ensure!(
                seen.insert(c.name.clone()),
                "pod {name}: container name {} is used twice",
                c.name
            );
        }
        pod.metadata.namespace = Some(ns.clone());
        pod.status = None;
        let guard = self
            .lock
            .lock()
            .map_err(|_| anyhow::anyhow!("the agent's lock is poisoned"))?;
        let existing = self.store.pod(&ns, &name)?;
        let verb = match &existing {
            Some(old) if !old.deleting && old.pod.spec == pod.spec => {
                // Same spec: labels and annotations may change, nothing restarts.
                if old.pod.metadata.labels == pod.metadata.labels
                    && old.pod.metadata.annotations == pod.metadata.annotations
                {
                    return Ok(format!("pod/{name} unchanged"));
                }
                let mut d = old.clone();
                d.pod.metadata.labels = pod.metadata.labels.clone();
                d.pod.metadata.annotations = pod.metadata.annotations.clone();
                self.store.save_pod(&d)?;
                return Ok(format!("pod/{name} configured"));
            }
            Some(_) => {
                drop(guard);
                self.delete_pod(&ns, &name)?;
                "configured"
            }
            None => {
                drop(guard);
                "created"
            }
        };
        let _guard = self
            .lock
            .lock()
            .map_err(|_| anyhow::anyhow!("the agent's lock is poisoned"))?;
        pod.metadata.uid = Some(crate::util::new_uid()?);
        pod.metadata.creation_timestamp = serde_json::from_value(Value::String(crate::util::now_k8s())).ok();
        let d = Desired { pod, deleting: false };
        self.store.save_pod(&d)?;
        self.event(
            &ns,
            &format!("Pod/{name}"),
            false,
            "Scheduled",
            &format!("uid {}", d.uid()),
        );
        if let Err(e) = self.monitors.ensure(&d, &self.images, true) {
            self.event(&ns, &format!("Pod/{name}"), true, "Failed", &format!("{e:#}"));
        }
        Ok(format!("pod/{name} {verb}"))
    }

    pub fn delete_documents(&self, documents: &[Document]) -> Result<Value> {
        let mut said = Vec::new();
        for o in parse(documents)?.iter().rev() {
            if let Object::Pod(p) = o {
                let ns = p.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                let name = p.metadata.name.clone().unwrap_or_default();
                self.delete_pod(&ns, &name)?;
                said.push(format!("pod \"{name}\" deleted"));
                continue;
            }
            let (kind, ns, name, _) = other(o)?;
            if self.store.remove_object(kind, &ns, &name)? {
                said.push(format!("{} \"{name}\" deleted", lower(kind)));
            } else {
                anyhow::bail!("{} \"{name}\" not found", lower(kind));
            }
        }
        Ok(serde_json::json!(said))
    }

    /// Deletes a pod and returns when it is gone: containers stopped, network and volumes
    /// removed. Idempotent; an agent killed during it finishes it when it starts again.
    pub fn delete_pod(&self, ns: &str, name: &str) -> Result<()> {
        let d = {
            let _guard = self
                .lock
                .lock()
                .map_err(|_| anyhow::anyhow!("the agent's lock is poisoned"))?;
            let Some(mut d) = self.store.pod(ns, name)? else {
                anyhow::bail!("pods \"{name}\" not found in namespace {ns}");
            };
            if !d.deleting {
                d.deleting = true;
                self.store.save_pod(&d)?;
            }
            d
        };
        let uid = d.uid();
        {
            let mut busy = self
                .deleting
                .lock()
                .map_err(|_| anyhow::anyhow!("the agent's lock is poisoned"))?;
            if !busy.insert(uid.clone()) {
                drop(busy);
                // Another request is deleting it: wait for that one.
                while self.store.pod(ns, name)?.is_some_and(|x| x.uid() == uid) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(());
            }
        }
        let stopped = self.monitors.stop(&uid);
        let removed = stopped.and_then(|()| {
            let _guard = self
                .lock
                .lock()
                .map_err(|_| anyhow::anyhow!("the agent's lock is poisoned"))?;
            self.store.remove_pod(ns, name)
        });
        if let Ok(mut busy) = self.deleting.lock() {
            busy.remove(&uid);
        }
        if let Ok(mut peers) = self.peers.lock() {
            peers.remove(&uid);
        }
        removed?;
        crate::log!("pod {ns}/{name} deleted (uid {uid})");
        self.event(ns, &format!("Pod/{name}"), false, "Deleted", "pod deleted");
        Ok(())
    }
}
