//! The files of configMap, secret, downwardAPI and projected volumes.

use super::atomic::{check_path, File, Payload};
use super::quantity::parse_quantity;
use super::{Objects, VolumeError};
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub(crate) struct Ctx<'a> {
    pub(crate) pod: &'a Pod,
    pub(crate) objects: &'a dyn Objects,
    pub(crate) pod_ip: Option<IpAddr>,
}

fn mode(field: String, mode: Option<i32>, default: u32) -> Result<u32, VolumeError> {
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

/// One `key="value"` line per entry, sorted, values quoted as Go's strconv.Quote does for text.
fn format_map(map: &BTreeMap<String, String>) -> String {
    let lines: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    lines.join("\n")
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() => q.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn field_value(ctx: &Ctx, field: &str, path: &str) -> Result<String, VolumeError> {
    let meta = &ctx.pod.metadata;
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => namespace(ctx.pod).to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&meta.labels.clone().unwrap_or_default()),
        "metadata.annotations" => format_map(&meta.annotations.clone().unwrap_or_default()),
        "status.podIP" => ctx.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "spec.nodeName" => ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(VolumeError::invalid(field, path, "not a field moorlet can give (metadata.name, namespace, uid, labels, annotations, status.podIP, spec.nodeName, spec.serviceAccountName)"));
            }
        }
    };
    Ok(value)
}

/// limits/requests of a container, divided by the divisor and rounded up, as the kubelet does;
/// an unset limit is the node's capacity.
fn resource_value(
    pod: &Pod,
    field: &str,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> Result<String, VolumeError> {
    let cname = r.container_name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let container = spec
        .into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .find(|c| c.name == cname)
        .ok_or_else(|| {
            VolumeError::invalid(format!("{field}.containerName"), &cname, "no such container in the pod")
        })?;
    let (section, resource) = r.resource.split_once('.').ok_or_else(|| {
        VolumeError::invalid(
            format!("{field}.resource"),
            &r.resource,
            "must be limits.X or requests.X",
        )
    })?;
    let res = container.resources.as_ref();
    let pick = |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
        m.and_then(|m| m.get(resource)).map(|q| q.0.clone())
    };
    let limit = pick(res.and_then(|r| r.limits.as_ref()));
    let request = pick(res.and_then(|r| r.requests.as_ref()));
    let text = match section {
        "limits" => limit.unwrap_or_else(|| capacity(resource)),
        "requests" => request.or(limit).unwrap_or_else(|| "0".into()),
        _ => {
            return Err(VolumeError::invalid(
                format!("{field}.resource"),
                &r.resource,
                "must be limits.X or requests.X",
            ))
        }
    };
    if !matches!(resource, "cpu" | "memory" | "ephemeral-storage") {
        return Err(VolumeError::invalid(
            format!("{field}.resource"),
            &r.resource,
            "must be cpu, memory or ephemeral-storage",
        ));
    }
    let value = parse_quantity(&text)
        .ok_or_else(|| VolumeError::invalid(format!("{field}.resource"), &text, "not a quantity"))?;
    let divisor = match &r.divisor {
        Some(d) => parse_quantity(&d.0)
            .filter(|d| *d > 0.0)
            .ok_or_else(|| VolumeError::invalid(format!("{field}.divisor"), &d.0, "not a positive quantity"))?,
        None => 1.0,
    };
    Ok(format!("{}", (value / divisor).ceil()))
}

fn capacity(resource: &str) -> String {
    match resource {
        "cpu" => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string(),
        "memory" => std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
                let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some((kb * 1024).to_string())
            })
            .unwrap_or_else(|| "0".into()),
        _ => "0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_quoted() {
        let m: BTreeMap<String, String> = [("b".into(), "x\"y".into()), ("a".into(), "1".into())].into();
        assert_eq!(format_map(&m), "a=\"1\"\nb=\"x\\\"y\"");
    }
}
