//! The checks Kubernetes' API server makes that moorlet relies on: names become file names
//! (log directories, volume and state paths), so they are DNS names as Kubernetes requires.

use super::Object;
use std::collections::HashSet;

type Invalid = (String, String);

pub(super) fn object(object: &Object) -> Result<(), Invalid> {
    let meta = object.metadata();
    match meta.name.as_deref() {
        None | Some("") => return Err(("metadata.name".into(), "is required".into())),
        Some(name) => dns_subdomain(name).map_err(|m| ("metadata.name".into(), m))?,
    }
    if let Some(ns) = meta.namespace.as_deref() {
        dns_label(ns).map_err(|m| ("metadata.namespace".into(), m))?;
    }
    if let Object::Pod(pod) = object {
        let Some(spec) = &pod.spec else {
            return Err(("spec".into(), "is required".into()));
        };
        if let Some(h) = spec.hostname.as_deref() {
            dns_label(h).map_err(|m| ("spec.hostname".into(), m))?;
        }
        if spec.containers.is_empty() {
            return Err(("spec.containers".into(), "at least one container is required".into()));
        }
        let mut names = HashSet::new();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
        let apps = spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("spec.containers[{i}]"), c));
        for (path, c) in init.chain(apps) {
            dns_label(&c.name).map_err(|m| (format!("{path}.name"), m))?;
            if !names.insert(c.name.as_str()) {
                return Err((format!("{path}.name"), format!("duplicate container name {:?}", c.name)));
            }
            if c.image.as_deref().unwrap_or("").is_empty() {
                return Err((format!("{path}.image"), "is required".into()));
            }
        }
        let mut volumes = HashSet::new();
        for (i, v) in spec.volumes.iter().flatten().enumerate() {
            dns_label(&v.name).map_err(|m| (format!("spec.volumes[{i}].name"), m))?;
            if !volumes.insert(v.name.as_str()) {
                return Err((
                    format!("spec.volumes[{i}].name"),
                    format!("duplicate volume name {:?}", v.name),
                ));
            }
        }
    }
    Ok(())
}

/// RFC 1123 label: what Kubernetes requires of namespaces, container and volume names.
pub(crate) fn dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} must be at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        ))
    }
}

/// RFC 1123 subdomain: what Kubernetes requires of object names.
pub(crate) fn dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| dns_label(l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} must be at most 253 characters of dot-separated lowercase labels (letters, digits, '-')"
        ))
    }
}
