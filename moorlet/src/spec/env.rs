//! The environment a pod gives a container (envFrom, then env), as the kubelet makes it: env
//! values see the variables defined before them; `$(VAR)` of an undefined variable stays as
//! written, `$$` is a literal `$`. The image's Env is merged later (process.rs), as the
//! runtime does it, and is not visible to `$(VAR)`.

use super::quantity::Quantity;
use super::{Ctx, SpecError};
use k8s_openapi::api::core::v1::{Container, EnvVar, ObjectFieldSelector, ResourceFieldSelector};
use std::collections::BTreeMap;

/// The pod-defined variables of a container, in definition order (a redefinition replaces the
/// value in place).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PodEnv {
    pub vars: Vec<(String, String)>,
}

impl PodEnv {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    pub fn expand(&self, input: &str) -> String {
        expand(input, |name| self.get(name))
    }
}

/// Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion).
pub(crate) fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if after.is_empty() {
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            // `$x`: not an expression; both characters are kept.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Kubernetes 1.34's env var names: printable ASCII but `=`, not empty.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

pub(crate) fn pod_environment(cx: &Ctx) -> Result<PodEnv, SpecError> {
    let mut env = PodEnv::default();
    let ns = cx.namespace();
    let sources = cx.input.env_sources;
    for (i, from) in cx.container.env_from.iter().flatten().enumerate() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let data: BTreeMap<String, String> = if let Some(r) = &from.config_map_ref {
            let field = cx.field(&format!("envFrom[{i}].configMapRef"));
            match sources.config_map(ns, &r.name) {
                Some(cm) => cm.data.unwrap_or_default(),
                None if r.optional == Some(true) => continue,
                None => {
                    return Err(SpecError::invalid(
                        field,
                        format!("configmap \"{ns}/{}\" not found", r.name),
                    ))
                }
            }
        } else if let Some(r) = &from.secret_ref {
            let field = cx.field(&format!("envFrom[{i}].secretRef"));
            match sources.secret(ns, &r.name) {
                Some(s) => secret_data(s),
                None if r.optional == Some(true) => continue,
                None => {
                    return Err(SpecError::invalid(
                        field,
                        format!("secret \"{ns}/{}\" not found", r.name),
                    ))
                }
            }
        } else {
            continue;
        };
        // The kubelet skips (and reports) keys that are no valid variable name.
        for (k, v) in data {
            let name = format!("{prefix}{k}");
            if valid_name(&name) {
                env.set(name, v);
            }
        }
    }
    for (i, var) in cx.container.env.iter().flatten().enumerate() {
        let field = cx.field(&format!("env[{i}]"));
        if !valid_name(&var.name) {
            return Err(SpecError::invalid(
                format!("{field}.name"),
                format!("{:?} is no valid variable name", var.name),
            ));
        }
        let Some(value) = value(cx, var, &env, &field)? else {
            continue;
        };
        if value.contains('\0') {
            return Err(SpecError::invalid(field, "the value holds a NUL byte"));
        }
        env.set(var.name.clone(), value);
    }
    Ok(env)
}

/// A Secret's data, with stringData over it (as the API server merges them).
fn secret_data(secret: k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, String> {
    let mut data: BTreeMap<String, String> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    data.extend(secret.string_data.unwrap_or_default());
    data
}

/// A variable's value; None when an optional source is missing (the variable is left out).
fn value(cx: &Ctx, var: &EnvVar, env: &PodEnv, field: &str) -> Result<Option<String>, SpecError> {
    if let Some(v) = var.value.as_deref().filter(|v| !v.is_empty()) {
        return Ok(Some(env.expand(v)));
    }
    let Some(from) = &var.value_from else {
        return Ok(Some(String::new()));
    };
    let ns = cx.namespace();
    let sources = cx.input.env_sources;
    if let Some(r) = &from.config_map_key_ref {
        let field = format!("{field}.valueFrom.configMapKeyRef");
        let optional = r.optional == Some(true);
        let Some(cm) = sources.config_map(ns, &r.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(SpecError::invalid(
                    field,
                    format!("configmap \"{ns}/{}\" not found", r.name),
                ))
            };
        };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(SpecError::invalid(
                field,
                format!("couldn't find key {} in ConfigMap {ns}/{}", r.key, r.name),
            )),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let field = format!("{field}.valueFrom.secretKeyRef");
        let optional = r.optional == Some(true);
        let Some(secret) = sources.secret(ns, &r.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(SpecError::invalid(
                    field,
                    format!("secret \"{ns}/{}\" not found", r.name),
                ))
            };
        };
        return match secret_data(secret).remove(&r.key) {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(SpecError::invalid(
                field,
                format!("couldn't find key {} in Secret {ns}/{}", r.key, r.name),
            )),
        };
    }
    if let Some(r) = &from.field_ref {
        return field_ref(cx, r)
            .map(Some)
            .map_err(|m| SpecError::invalid(format!("{field}.valueFrom.fieldRef.fieldPath"), m));
    }
    if let Some(r) = &from.resource_field_ref {
        let field = format!("{field}.valueFrom.resourceFieldRef");
        let container = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
            None => cx.container,
            Some(name) => cx
                .pod
                .containers
                .iter()
                .chain(cx.pod.init_containers.iter().flatten())
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    SpecError::invalid(format!("{field}.containerName"), format!("no container {name:?}"))
                })?,
        };
        return resource_ref(container, r)
            .map(Some)
            .map_err(|m| SpecError::invalid(field, m));
    }
    let message = "no source moorlet supports (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef)";
    Err(SpecError::invalid(format!("{field}.valueFrom"), message))
}

/// The downward API's fieldRef for env (`metadata.labels['k']`, `status.podIP`, ...).
pub(crate) fn field_ref(cx: &Ctx, r: &ObjectFieldSelector) -> Result<String, String> {
    let meta = &cx.input.pod.metadata;
    let path = r.field_path.as_str();
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|s| s.strip_prefix("['"))
            .and_then(|s| s.strip_suffix("']"))
            .map(str::to_string)
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => cx.namespace().to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => match cx.pod.node_name.clone() {
            Some(n) => n,
            None => nix::unistd::gethostname()
                .map_err(|e| format!("the host name: {e}"))?
                .to_string_lossy()
                .into_owned(),
        },
        "spec.serviceAccountName" => cx.pod.service_account_name.clone().unwrap_or_default(),
        "status.podIP" | "status.podIPs" => cx.input.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
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
                    .and_then(|a| a.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath {path:?}"));
            }
        }
    };
    Ok(value)
}

/// The downward API's resourceFieldRef: limits default to the node's capacity, as the kubelet
/// defaults them; the value is divided by the divisor and rounded up.
pub(crate) fn resource_ref(container: &Container, r: &ResourceFieldSelector) -> Result<String, String> {
    let resources = container.resources.as_ref();
    let get = |which: &str, name: &str| {
        let map = match which {
            "limits" => resources.and_then(|r| r.limits.as_ref()),
            _ => resources.and_then(|r| r.requests.as_ref()),
        };
        map.and_then(|m| m.get(name))
            .map(|q| Quantity::parse(&q.0).ok_or_else(|| format!("invalid quantity {:?}", q.0)))
    };
    let divisor = match &r.divisor {
        Some(d) => Quantity::parse(&d.0).ok_or_else(|| format!("invalid divisor {:?}", d.0))?,
        None => Quantity::parse("1").ok_or("invalid divisor 1")?,
    };
    let (which, name) = r
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resource {:?}", r.resource))?;
    let q = match (which, name) {
        ("limits", "cpu" | "memory") => match get("limits", name).transpose()? {
            Some(q) => Some(q),
            None => Some(node_capacity(name)?),
        },
        ("requests", "cpu" | "memory") => get("requests", name).or_else(|| get("limits", name)).transpose()?,
        _ => return Err(format!("unsupported resource {:?}", r.resource)),
    };
    let value = match q {
        None => 0,
        Some(q) if name == "cpu" => ceil_ratio(q.milli(), divisor.milli())?,
        Some(q) => ceil_ratio(q.value(), divisor.value())?,
    };
    Ok(value.to_string())
}

fn ceil_ratio(a: i128, b: i128) -> Result<i128, String> {
    if b <= 0 {
        return Err("the divisor must be positive".into());
    }
    Ok((a + b - 1).div_euclid(b))
}

fn node_capacity(name: &str) -> Result<Quantity, String> {
    let text = if name == "cpu" {
        std::thread::available_parallelism()
            .map_err(|e| format!("the number of CPUs: {e}"))?
            .get()
            .to_string()
    } else {
        let info = nix::sys::sysinfo::sysinfo().map_err(|e| format!("the memory size: {e}"))?;
        info.ram_total().to_string()
    };
    Quantity::parse(&text).ok_or_else(|| format!("node capacity {text:?}"))
}
