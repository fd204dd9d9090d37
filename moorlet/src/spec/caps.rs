//! Capabilities: containerd's default set, add and drop (ALL in either), and the runtime's
//! own set for privileged containers.

use super::{Ctx, SpecError};

/// containerd's default capabilities (what a Kubernetes container gets without add/drop).
pub(crate) const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn cap_name(raw: &str) -> String {
    let upper = raw.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

pub(crate) fn added(cx: &Ctx) -> Vec<String> {
    let caps = cx.sc.and_then(|s| s.capabilities.as_ref());
    caps.and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
        .map(|c| cap_name(c))
        .collect()
}

/// "All" capabilities, as containerd reads them: those in moorlet's own bounding set (a
/// capability the runtime lacks cannot be given, and asking for it would fail the start).
pub(crate) fn runtime_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    });
    (0..64u32)
        .filter(|bit| bounding.is_none_or(|b| b & (1u64 << bit) != 0))
        .filter_map(moor::capabilities::name)
        .collect()
}

/// containerd's rule: ALL in add gives every capability, ALL in drop removes all, then the
/// named ones are added and dropped.
pub(crate) fn capabilities(cx: &Ctx) -> Result<Vec<String>, SpecError> {
    if cx.privileged() {
        return Ok(runtime_caps());
    }
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let spec = cx.sc.and_then(|s| s.capabilities.as_ref());
    let add = spec.and_then(|c| c.add.clone()).unwrap_or_default();
    let drop = spec.and_then(|c| c.drop.clone()).unwrap_or_default();
    let check = |list: &[String], which: &str| -> Result<Vec<String>, SpecError> {
        let mut out = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let name = cap_name(raw);
            if name == "CAP_ALL" {
                continue;
            }
            if moor::capabilities::number_of(&name).is_none() {
                let field = cx.field(&format!("securityContext.capabilities.{which}[{i}]"));
                return Err(SpecError::invalid(field, format!("unknown capability {raw:?}")));
            }
            out.push(name);
        }
        Ok(out)
    };
    let is_all = |list: &[String]| list.iter().any(|c| c.trim().eq_ignore_ascii_case("ALL"));
    let (named_add, named_drop) = (check(&add, "add")?, check(&drop, "drop")?);
    if is_all(&add) {
        caps = runtime_caps();
    }
    if is_all(&drop) {
        caps.clear();
    }
    for c in named_add {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    caps.retain(|c| !named_drop.contains(c));
    Ok(caps)
}
