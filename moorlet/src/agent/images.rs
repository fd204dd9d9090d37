//! Images for pods (imagePullPolicy) and the `images` commands.

use std::collections::{BTreeMap, HashSet};

use anyhow::Result;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::Agent;
use crate::image::{Image, ImageStore};

/// Kubernetes' default: Always for `:latest` or no tag (and no digest), else IfNotPresent.
fn pull_policy(c: &Container, reference: &str) -> String {
    if let Some(p) = &c.image_pull_policy {
        return p.clone();
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || (last.contains(':') && !last.ends_with(":latest")) {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

/// The image id of every container of `pod`, pulling as each policy says; on failure, the
/// container, the Kubernetes reason (ErrImagePull, ErrImageNeverPull) and the error.
pub fn resolve(store: &ImageStore, pod: &Pod) -> Result<BTreeMap<String, String>, (String, String, anyhow::Error)> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for c in spec.init_containers.iter().flatten().chain(spec.containers.iter()) {
        let fail = |reason: &str, e: anyhow::Error| (c.name.clone(), reason.to_string(), e);
        let Some(reference) = c.image.clone().filter(|i| !i.is_empty()) else {
            return Err(fail(
                "InvalidImageName",
                anyhow::anyhow!("container {} has no image", c.name),
            ));
        };
        let local = store.get(&reference).map_err(|e| fail("ErrImagePull", e.into()))?;
        let image = match (pull_policy(c, &reference).as_str(), local) {
            ("Never", Some(img)) | ("IfNotPresent", Some(img)) => img,
            ("Never", None) => {
                let e = anyhow::anyhow!("image {reference} is not present and imagePullPolicy is Never");
                return Err(fail("ErrImageNeverPull", e));
            }
            (_, local) => match store.pull(&reference) {
                Ok(img) => img,
                // Always, but the registry is unreachable: the local copy is what the user has.
                Err(e) => match local {
                    Some(img) => {
                        crate::log!("pull {reference}: {e}; using the local image");
                        img
                    }
                    None => return Err(fail("ErrImagePull", e.into())),
                },
            },
        };
        out.insert(c.name.clone(), image.id);
    }
    Ok(out)
}

fn image_json(i: &Image) -> Value {
    json!({"id": i.id, "names": i.names, "size": i.size})
}

impl Agent {
    pub fn images_import(&self, path: &str) -> Result<Value> {
        let imported = self.images.import(std::path::Path::new(path))?;
        for i in &imported {
            self.event(
                "",
                &format!("Image/{}", i.id),
                false,
                "Imported",
                &format!("imported {path}"),
            );
        }
        Ok(Value::Array(imported.iter().map(image_json).collect()))
    }

    pub fn images_pull(&self, reference: &str) -> Result<Value> {
        let image = self.images.pull(reference)?;
        self.event(
            "",
            &format!("Image/{}", image.id),
            false,
            "Pulled",
            &format!("pulled {reference}"),
        );
        Ok(image_json(&image))
    }

    pub fn images_list(&self) -> Result<Value> {
        Ok(Value::Array(self.images.list()?.iter().map(image_json).collect()))
    }

    fn in_use(&self) -> Result<HashSet<String>> {
        let mut ids = HashSet::new();
        for d in self.store.pods()? {
            let resolved: Option<BTreeMap<String, String>> =
                crate::util::read_json(&self.store.run_dir(&d.uid()).join("images.json"))
                    .ok()
                    .flatten();
            ids.extend(resolved.into_iter().flat_map(|m| m.into_values()));
        }
        Ok(ids)
    }

    pub fn images_remove(&self, reference: &str) -> Result<Value> {
        let Some(image) = self.images.get(reference)? else {
            anyhow::bail!("image {reference} not found");
        };
        anyhow::ensure!(
            !self.in_use()?.contains(&image.id),
            "image {reference} is used by a pod: delete the pod first"
        );
        self.images.remove(reference)?;
        Ok(json!(format!("removed {}", image.id)))
    }

    pub fn images_prune(&self) -> Result<Value> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| anyhow::anyhow!("the agent's lock is poisoned"))?;
        let r = self.images.prune(&self.in_use()?)?;
        let mut lines: Vec<String> = r.images.iter().map(|i| format!("deleted {i}")).collect();
        lines.push(format!(
            "{} layer(s) and {} blob(s) removed, {} bytes reclaimed",
            r.layers, r.blobs, r.bytes
        ));
        Ok(json!(lines.join("\n")))
    }
}
