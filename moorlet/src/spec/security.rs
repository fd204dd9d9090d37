//! The security context: capabilities (caps.rs), privileged, no_new_privs, seccomp, sysctls
//! and the masked and read-only paths.

use super::caps::{added, capabilities};
use super::{seccomp_default, Ctx, SpecError};
use k8s_openapi::api::core::v1::SeccompProfile;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use serde_json::{json, Value};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// containerd's defaults.
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];
pub(crate) const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The largest Localhost seccomp profile read.
const MAX_PROFILE_BYTES: u64 = 1 << 20;

pub(crate) struct Security {
    caps: Vec<String>,
    no_new_privileges: bool,
    privileged: bool,
    seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    sysctls: Vec<(String, String)>,
}

pub(crate) fn security(cx: &Ctx) -> Result<Security, SpecError> {
    let privileged = cx.privileged();
    let caps = capabilities(cx)?;
    let ape = cx.sc.and_then(|s| s.allow_privilege_escalation);
    if ape == Some(false) {
        let field = cx.field("securityContext.allowPrivilegeEscalation");
        if privileged {
            return Err(SpecError::invalid(
                field,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if added(cx).iter().any(|c| c == "CAP_SYS_ADMIN") {
            return Err(SpecError::invalid(
                field,
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    Ok(Security {
        caps,
        // The kubelet sets no_new_privs only when allowPrivilegeEscalation is false.
        no_new_privileges: ape == Some(false),
        privileged,
        seccomp: if privileged { None } else { seccomp(cx)? },
        sysctls: sysctls(cx)?,
    })
}

fn seccomp(cx: &Ctx) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, SpecError> {
    let (profile, field) = match cx.sc.and_then(|s| s.seccomp_profile.as_ref()) {
        Some(p) => (Some(p), cx.field("securityContext.seccompProfile")),
        None => (
            cx.pod_sc.and_then(|s| s.seccomp_profile.as_ref()),
            "spec.securityContext.seccompProfile".to_string(),
        ),
    };
    // No profile: RuntimeDefault, as the kubelet's --seccomp-default (and Docker) give it.
    let Some(SeccompProfile {
        type_,
        localhost_profile,
    }) = profile
    else {
        return Ok(Some(seccomp_default::runtime_default_seccomp()));
    };
    match type_.as_str() {
        "RuntimeDefault" => Ok(Some(seccomp_default::runtime_default_seccomp())),
        "Unconfined" => Ok(None),
        "Localhost" => {
            let field = format!("{field}.localhostProfile");
            let name = localhost_profile.as_deref().unwrap_or("");
            localhost(cx, name, &field).map(Some)
        }
        other => Err(SpecError::invalid(
            format!("{field}.type"),
            format!("unknown seccomp profile type {other:?}"),
        )),
    }
}

/// A profile under the seccomp directory, by a relative path that stays in it.
fn localhost(cx: &Ctx, name: &str, field: &str) -> Result<oci_spec::runtime::LinuxSeccomp, SpecError> {
    let dir = cx
        .input
        .seccomp_dir
        .ok_or_else(|| SpecError::invalid(field, "Localhost seccomp profiles are not configured"))?;
    let rel = std::path::Path::new(name);
    let confined = !name.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if !confined {
        return Err(SpecError::invalid(
            field,
            format!("{name:?} must be a relative path inside {}", dir.display()),
        ));
    }
    let path = dir.join(rel);
    let io = |source: std::io::Error| SpecError::Io {
        field: field.to_string(),
        path: path.clone(),
        source,
    };
    let root = std::fs::File::open(dir).map_err(io)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), rel, how).map_err(|e| io(e.into()))?;
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    let mut text = Vec::new();
    file.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut text).map_err(io)?;
    if text.len() as u64 > MAX_PROFILE_BYTES {
        return Err(io(std::io::Error::other("larger than 1 MiB")));
    }
    serde_json::from_slice(&text).map_err(|e| SpecError::invalid(field, format!("{}: {e}", path.display())))
}

/// Only namespaced sysctls, and only those of namespaces the pod owns.
fn sysctls(cx: &Ctx) -> Result<Vec<(String, String)>, SpecError> {
    let mut out = Vec::new();
    let list = cx.pod_sc.and_then(|s| s.sysctls.as_ref());
    for (i, s) in list.into_iter().flatten().enumerate() {
        let field = format!("spec.securityContext.sysctls[{i}]");
        let name = dotted(&s.name);
        let ipc = matches!(
            name.as_str(),
            "kernel.msgmax"
                | "kernel.msgmnb"
                | "kernel.msgmni"
                | "kernel.sem"
                | "kernel.shmall"
                | "kernel.shmmax"
                | "kernel.shmmni"
                | "kernel.shm_rmid_forced"
        ) || name.starts_with("fs.mqueue.");
        let net = name.starts_with("net.");
        let allowed = (ipc && cx.input.ipcns.is_some()) || (net && cx.input.netns.is_some());
        if !allowed {
            let why = if ipc || net {
                "its namespace is the host's"
            } else {
                "it is not a namespaced sysctl"
            };
            return Err(SpecError::invalid(
                format!("{field}.name"),
                format!("sysctl {:?} is not allowed: {why}", s.name),
            ));
        }
        if name.contains("..")
            || name
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || b"._-/".contains(&b)))
        {
            return Err(SpecError::invalid(
                format!("{field}.name"),
                format!("invalid sysctl name {:?}", s.name),
            ));
        }
        if s.value.contains('\0') || s.value.contains('\n') {
            return Err(SpecError::invalid(
                format!("{field}.value"),
                "the value holds a NUL or newline",
            ));
        }
        out.push((name, s.value.clone()));
    }
    Ok(out)
}

/// Kubernetes accepts `net/ipv4/ip_forward` too: with '/' as the separator, '.' and '/' swap.
fn dotted(name: &str) -> String {
    let first = name.find(['.', '/']);
    if first.is_some_and(|i| name.as_bytes()[i] == b'/') {
        name.chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect()
    } else {
        name.to_string()
    }
}

impl Security {
    pub fn apply(self, spec: &mut Value) -> Result<(), SpecError> {
        let caps = json!(self.caps);
        spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
        spec["process"]["noNewPrivileges"] = self.no_new_privileges.into();
        let linux = &mut spec["linux"];
        if let Some(seccomp) = self.seccomp {
            linux["seccomp"] = serde_json::to_value(seccomp).map_err(|e| SpecError::Build(e.to_string()))?;
        }
        if !self.sysctls.is_empty() {
            linux["sysctl"] = Value::Object(self.sysctls.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
        }
        if self.privileged {
            linux["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
            linux["devices"] = Value::Array(super::mounts::host_devices());
        } else {
            linux["maskedPaths"] = json!(MASKED_PATHS);
            linux["readonlyPaths"] = json!(READONLY_PATHS);
            linux["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
        }
        Ok(())
    }
}
