//! The files of configMap, secret, downwardAPI and projected volumes.

use super::atomic::{check_path, File, Payload};
use super::downward::{field_value, resource_value};
use super::{Objects, VolumeError};
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub(crate) struct Ctx<'a> {
    pub(crate) pod: &'a Pod,
    pub(crate) objects: &'a dyn Objects,
    pub(crate) pod_ip: Option<IpAddr>,
}

pub(crate) fn mode(field: String, mode: Option<i32>, default: u32) -> Result<u32, VolumeError> {
    match mode {
        None => Ok(default),
        Some(m) => u32::try_from(m)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| VolumeError::invalid(field, format!("{m:#o}"), "a file mode is 0 to 0777")),
    }
}

/// The payload of a volume that has files, or None for other kinds.
pub(crate) fn build(ctx: &Ctx, v: &Volume, field: &str) -> Result<Option<Payload>, VolumeError> {
    let mut out = Payload::new();
    if let Some(cm) = &v.config_map {
        let f = format!("{field}.configMap");
        let dm = mode(format!("{f}.defaultMode"), cm.default_mode, 0o644)?;
        let data = ctx
            .objects
            .config_map(namespace(ctx.pod), &cm.name)
            .map(config_map_data);
        keys(
            &mut out,
            &f,
            "configMap",
            &cm.name,
            data,
            cm.items.as_deref(),
            cm.optional,
            dm,
        )?;
    } else if let Some(s) = &v.secret {
        let f = format!("{field}.secret");
        let dm = mode(format!("{f}.defaultMode"), s.default_mode, 0o644)?;
        let name = s.secret_name.clone().unwrap_or_default();
        let data = ctx.objects.secret(namespace(ctx.pod), &name).map(secret_data);
        keys(&mut out, &f, "secret", &name, data, s.items.as_deref(), s.optional, dm)?;
    } else if let Some(d) = &v.downward_api {
        let f = format!("{field}.downwardAPI");
        let dm = mode(format!("{f}.defaultMode"), d.default_mode, 0o644)?;
        downward(ctx, &mut out, &f, d.items.as_deref().unwrap_or_default(), dm)?;
    } else if let Some(p) = &v.projected {
        let f = format!("{field}.projected");
        let dm = mode(format!("{f}.defaultMode"), p.default_mode, 0o644)?;
        for (k, src) in p.sources.as_deref().unwrap_or_default().iter().enumerate() {
            let sf = format!("{f}.sources[{k}]");
            if let Some(cm) = &src.config_map {
                let data = ctx
                    .objects
                    .config_map(namespace(ctx.pod), &cm.name)
                    .map(config_map_data);
                keys(
                    &mut out,
                    &format!("{sf}.configMap"),
                    "configMap",
                    &cm.name,
                    data,
                    cm.items.as_deref(),
                    cm.optional,
                    dm,
                )?;
            } else if let Some(s) = &src.secret {
                let data = ctx.objects.secret(namespace(ctx.pod), &s.name).map(secret_data);
                keys(
                    &mut out,
                    &format!("{sf}.secret"),
                    "secret",
                    &s.name,
                    data,
                    s.items.as_deref(),
                    s.optional,
                    dm,
                )?;
            } else if let Some(d) = &src.downward_api {
                downward(
                    ctx,
                    &mut out,
                    &format!("{sf}.downwardAPI"),
                    d.items.as_deref().unwrap_or_default(),
                    dm,
                )?;
            } else {
                let kind = if src.service_account_token.is_some() {
                    "serviceAccountToken"
                } else if src.cluster_trust_bundle.is_some() {
                    "clusterTrustBundle"
                } else {
                    "podCertificate"
                };
                return Err(VolumeError::Unsupported {
                    field: format!("{sf}.{kind}"),
                });
            }
        }
    } else {
        return Ok(None);
    }
    Ok(Some(out))
}

pub(crate) fn namespace(pod: &Pod) -> &str {
    pod.metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

fn config_map_data(c: k8s_openapi::api::core::v1::ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut d: BTreeMap<String, Vec<u8>> = c
        .binary_data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    d.extend(c.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
    d
}

/// A Secret's data, with stringData over it (the API server merges them the same way).
fn secret_data(s: k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, Vec<u8>> {
    let mut d: BTreeMap<String, Vec<u8>> = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    d.extend(
        s.string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    d
}

/// configMap and secret keys: all keys as files, or the listed items (key → path, mode).
#[allow(clippy::too_many_arguments)] // one call per source kind; a struct would only rename them
fn keys(
    out: &mut Payload,
    field: &str,
    kind: &'static str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    default_mode: u32,
) -> Result<(), VolumeError> {
    let optional = optional.unwrap_or(false);
    let Some(mut data) = data else {
        if optional {
            return Ok(());
        }
        return Err(VolumeError::Missing {
            field: field.into(),
            kind,
            name: name.into(),
        });
    };
    match items {
        None => {
            for (key, bytes) in data {
                if key.contains('/') {
                    return Err(VolumeError::invalid(
                        field,
                        key,
                        "a key that names a file must not contain '/'",
                    ));
                }
                check_path(field, &key)?;
                insert(
                    out,
                    field,
                    key,
                    File {
                        bytes,
                        mode: default_mode,
                    },
                )?;
            }
        }
        Some(items) => {
            for (j, item) in items.iter().enumerate() {
                let pf = format!("{field}.items[{j}].path");
                check_path(&pf, &item.path)?;
                let m = mode(format!("{field}.items[{j}].mode"), item.mode, default_mode)?;
                match data.remove(&item.key) {
                    Some(bytes) => insert(out, &pf, item.path.clone(), File { bytes, mode: m })?,
                    None if optional => {}
                    None => {
                        return Err(VolumeError::MissingKey {
                            field: format!("{field}.items[{j}].key"),
                            kind,
                            name: name.into(),
                            key: item.key.clone(),
                        })
                    }
                }
            }
        }
    }
    Ok(())
}

fn insert(out: &mut Payload, field: &str, path: String, file: File) -> Result<(), VolumeError> {
    if out.contains_key(&path) {
        return Err(VolumeError::invalid(field, path, "two sources write the same path"));
    }
    out.insert(path, file);
    Ok(())
}

fn downward(
    ctx: &Ctx,
    out: &mut Payload,
    field: &str,
    items: &[DownwardAPIVolumeFile],
    dm: u32,
) -> Result<(), VolumeError> {
    for (j, item) in items.iter().enumerate() {
        let pf = format!("{field}.items[{j}].path");
        check_path(&pf, &item.path)?;
        let m = mode(format!("{field}.items[{j}].mode"), item.mode, dm)?;
        let value = if let Some(r) = &item.field_ref {
            field_value(ctx, &format!("{field}.items[{j}].fieldRef.fieldPath"), &r.field_path)?
        } else if let Some(r) = &item.resource_field_ref {
            resource_value(ctx.pod, &format!("{field}.items[{j}].resourceFieldRef"), r)?
        } else {
            return Err(VolumeError::invalid(
                format!("{field}.items[{j}]"),
                &item.path,
                "needs fieldRef or resourceFieldRef",
            ));
        };
        insert(
            out,
            &pf,
            item.path.clone(),
            File {
                bytes: value.into_bytes(),
                mode: m,
            },
        )?;
    }
    Ok(())
}
