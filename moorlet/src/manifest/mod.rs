//! STUB of the contract's API until s22-spec lands (removed at the merge).
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
#[derive(Debug, thiserror::Error)]
#[error("manifest: {0}")]
pub struct ManifestError(String);
#[allow(clippy::large_enum_variant)]
pub enum Object {
    Pod(Pod),
    ConfigMap(ConfigMap),
    Secret(Secret),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Deployment(Deployment),
    Service(Service),
}
pub fn parse(text: &str) -> Result<Vec<Object>, ManifestError> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).map_err(|e| ManifestError(e.to_string()))?;
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            let e = |e: serde_json::Error| ManifestError(e.to_string());
            Ok(match kind.as_str() {
                "Pod" => Object::Pod(serde_json::from_value(d).map_err(e)?),
                "ConfigMap" => Object::ConfigMap(serde_json::from_value(d).map_err(e)?),
                "Secret" => Object::Secret(serde_json::from_value(d).map_err(e)?),
                "PersistentVolumeClaim" => Object::PersistentVolumeClaim(serde_json::from_value(d).map_err(e)?),
                _ => return Err(ManifestError(format!("kind {kind}"))),
            })
        })
        .collect()
}
pub fn unhonoured_fields(_o: &Object) -> Vec<String> {
    vec![]
}
