//! The security context: capabilities (containerd's default set, add, drop, ALL), privileged,
//! no_new_privs, seccomp, sysctls and the masked and read-only paths.

use super::{seccomp_default, Ctx, SpecError};
use k8s_openapi::api::core::v1::SeccompProfile;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use serde_json::{json, Value};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

/// Every capability, in number order.
pub(crate) const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

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

fn cap_name(raw: &str) -> String {
    let upper = raw.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

fn added(cx: &Ctx) -> Vec<String> {
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
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding.is_none_or(|b| b & (1u64 << bit) != 0))
        .map(|(_, c)| c.to_string())
        .collect()
}

/// containerd's rule: ALL in add gives every capability, ALL in drop removes all, then the
/// named ones are added and dropped.
fn capabilities(cx: &Ctx) -> Result<Vec<String>, SpecError> {
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
            if !ALL_CAPS.contains(&name.as_str()) {
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
