//! The downward API's values: pod metadata, status.podIP, and containers' resources.

use super::payload::{namespace, Ctx};
use super::quantity::parse_quantity;
use super::VolumeError;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;

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

pub(crate) fn field_value(ctx: &Ctx, field: &str, path: &str) -> Result<String, VolumeError> {
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
pub(crate) fn resource_value(
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
