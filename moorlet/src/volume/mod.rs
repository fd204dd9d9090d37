//! A pod's volumes on the host. Everything moorlet makes for a pod lives under
//! `<pod_dir>/volumes/<name>` (emptyDir, configMap, secret, downwardAPI, projected); hostPath
//! volumes are the host's paths and PVCs are `<claims_dir>/<namespace>/<claimName>`, and neither is
//! ever removed. Secret and projected volumes are on a tmpfs, so secrets never reach a disk.
//! Files are published atomically (see `atomic`), so `refresh` swaps every key at once.

mod atomic;
mod downward;
mod error;
mod host;
mod payload;
mod quantity;

pub use error::VolumeError;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Volume};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where configMap and secret volumes get their objects (the agent's desired state).
pub trait Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
}

/// A volume ready to be bind-mounted into containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    pub name: String,
    pub path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are read-only, as in Kubernetes; a
    /// PVC as its source says.
    pub read_only: bool,
}

fn volumes(pod: &Pod) -> &[Volume] {
    pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default()
}

/// A DNS label or subdomain: a plain path component.
pub(crate) fn check_name(field: &str, name: &str, max: usize) -> Result<(), VolumeError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(VolumeError::invalid(
            field,
            name,
            "must be lower-case letters, digits, '-' or '.', starting and ending with a letter or digit",
        ))
    }
}

fn volume_dir(pod_dir: &Path, v: &Volume, field: &str) -> Result<PathBuf, VolumeError> {
    check_name(&format!("{field}.name"), &v.name, 63)?;
    if v.name.contains('.') {
        return Err(VolumeError::invalid(
            format!("{field}.name"),
            &v.name,
            "a volume name is a DNS label (no '.')",
        ));
    }
    Ok(pod_dir.join("volumes").join(&v.name))
}

/// The kinds moorlet does not have, by their field name.
fn unsupported(v: &Volume) -> Option<&'static str> {
    let kinds: [(&str, bool); 23] = [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ];
    kinds.iter().find(|(_, set)| *set).map(|(k, _)| *k)
}

/// Makes every volume of the pod. On failure, the volume directories this call made are removed
/// again; those that were there before (a running pod's, after an agent restart) are kept.
pub fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    claims_dir: &Path,
    objects: &dyn Objects,
    pod_ip: Option<IpAddr>,
) -> Result<Vec<HostVolume>, VolumeError> {
    let root = pod_dir.join("volumes");
    let root_existed = root.exists();
    let mut made = Vec::new();
    let result = prepare_all(pod, pod_dir, claims_dir, objects, pod_ip, &mut made);
    if result.is_err() {
        for dir in made {
            let _ = host::unmount_all(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
        if !root_existed {
            let _ = std::fs::remove_dir(&root);
        }
    }
    result
}

fn prepare_all(
    pod: &Pod,
    pod_dir: &Path,
    claims_dir: &Path,
    objects: &dyn Objects,
    pod_ip: Option<IpAddr>,
    made: &mut Vec<PathBuf>,
) -> Result<Vec<HostVolume>, VolumeError> {
    let ctx = payload::Ctx { pod, objects, pod_ip };
    let mut out = Vec::new();
    for (i, v) in volumes(pod).iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let dir = volume_dir(pod_dir, v, &field)?;
        if out.iter().any(|h: &HostVolume| h.name == v.name) {
            return Err(VolumeError::invalid(
                format!("{field}.name"),
                &v.name,
                "two volumes have this name",
            ));
        }
        if let Some(kind) = unsupported(v) {
            return Err(VolumeError::Unsupported {
                field: format!("{field}.{kind}"),
            });
        }
        let (path, read_only) = if let Some(h) = &v.host_path {
            (host::host_path(h, &field)?, false)
        } else if let Some(c) = &v.persistent_volume_claim {
            let ns = payload::namespace(pod);
            (
                host::claim(claims_dir, ns, &c.claim_name, &field)?,
                c.read_only.unwrap_or(false),
            )
        } else {
            // Built before anything is made: a missing object or a hostile key leaves nothing.
            let payload = payload::build(&ctx, v, &field)?;
            if !dir.exists() {
                made.push(dir.clone());
            }
            match payload {
                Some(payload) => {
                    if v.secret.is_some() || v.projected.is_some() {
                        host::mount_tmpfs(&dir, None, 0o755)?;
                    } else {
                        host::make_dir(&dir, 0o755)?;
                    }
                    atomic::publish(&dir, &payload)?;
                    (dir, true)
                }
                None => {
                    let default = Default::default();
                    host::empty_dir(v.empty_dir.as_ref().unwrap_or(&default), &field, &dir)?;
                    (dir, false)
                }
            }
        };
        out.push(HostVolume {
            name: v.name.clone(),
            path,
            read_only,
        });
    }
    Ok(out)
}

/// Publishes the current configMap/secret/downwardAPI/projected data; every key of a volume changes at once.
pub fn refresh(pod: &Pod, pod_dir: &Path, objects: &dyn Objects, pod_ip: Option<IpAddr>) -> Result<(), VolumeError> {
    let ctx = payload::Ctx { pod, objects, pod_ip };
    for (i, v) in volumes(pod).iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        if v.host_path.is_some() || v.persistent_volume_claim.is_some() {
            continue;
        }
        let dir = volume_dir(pod_dir, v, &field)?;
        if let Some(payload) = payload::build(&ctx, v, &field)? {
            if !dir.is_dir() {
                return Err(VolumeError::io(
                    "refresh (not prepared)",
                    dir,
                    std::io::ErrorKind::NotFound.into(),
                ));
            }
            // A secret goes to memory only, even when the tmpfs is gone (a reboot under a kept pod dir).
            if v.secret.is_some() || v.projected.is_some() {
                host::mount_tmpfs(&dir, None, 0o755)?;
            }
            atomic::publish(&dir, &payload)?;
        }
    }
    Ok(())
}

/// Unmounts and removes everything under `<pod_dir>/volumes`. The directory, not the spec, says
/// what there is, so volumes of an older spec go too; hostPath and claim data never live there.
pub fn cleanup(_pod: &Pod, pod_dir: &Path) -> Result<(), VolumeError> {
    let root = pod_dir.join("volumes");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VolumeError::io("read directory", &root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io("read directory", &root, e))?;
        let path = entry.path();
        host::unmount_all(&path)?;
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| VolumeError::io("remove", &path, e))?;
    }
    std::fs::remove_dir(&root).map_err(|e| VolumeError::io("remove", &root, e))
}
