//! A pod's container turned into the OCI runtime spec moor runs, with the semantics Kubernetes
//! (kubelet + containerd) gives each field: process (command/args against the image's
//! Entrypoint/Cmd, `$(VAR)` expansion, env sources), user and groups, security context
//! (capabilities, privileged, no_new_privs, seccomp, sysctls, masked paths), resources,
//! namespaces, mounts and hostname.
//!
//! Two choices differ from a default kubelet, both toward safety: a container without a
//! seccompProfile gets RuntimeDefault (the kubelet's `--seccomp-default`), and a memory limit
//! comes without swap (its NoSwap).
//!
//! The rootfs is the image's and hostile: the only files read from it (/etc/passwd,
//! /etc/group) are opened with openat2(RESOLVE_IN_ROOT) and must be regular files.

mod caps;
mod env;
mod mounts;
mod namespaces;
mod process;
mod quantity;
mod resources;
mod seccomp_default;
mod security;
mod user;

pub use namespaces::pod_hostname;
pub use seccomp_default::runtime_default_seccomp;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSecurityContext, PodSpec, Secret, SecurityContext};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What a container inherits from its image's config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `uid`, `uid:gid`, `name`, `name:group`, ...
    pub user: Option<String>,
}

/// Where configMapKeyRef, secretKeyRef and envFrom look their objects up.
pub trait EnvSources {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
}

/// Everything one container's spec is made from.
pub struct ContainerInput<'a> {
    pub pod: &'a Pod,
    /// One of the pod's containers or initContainers (found by name for error paths).
    pub container: &'a Container,
    pub image: &'a ImageDefaults,
    /// The container's root filesystem (absolute path).
    pub rootfs: &'a Path,
    /// The pod's namespaces; None = the host's (hostNetwork, hostIPC).
    pub netns: Option<&'a Path>,
    pub ipcns: Option<&'a Path>,
    pub utsns: Option<&'a Path>,
    /// The pod's pid namespace with shareProcessNamespace (None: a new one, or the host's with hostPID).
    pub pidns: Option<&'a Path>,
    /// (volume name, host path, read-only), for volumeMounts.
    pub volumes: &'a [(String, PathBuf, bool)],
    pub etc_hosts: Option<&'a Path>,
    pub etc_hostname: Option<&'a Path>,
    pub resolv_conf: Option<&'a Path>,
    pub env_sources: &'a dyn EnvSources,
    pub pod_ip: Option<IpAddr>,
    /// cgroupsPath for moor (e.g. `/moorlet/<pod-uid>/<container>`).
    pub cgroups_path: String,
    /// The pod's /dev/shm (a tmpfs directory shared by the pod's containers when they share the
    /// ipc namespace); None: a private tmpfs (or the host's /dev/shm with hostIPC).
    pub shm: Option<&'a Path>,
    /// `<state-dir>/seccomp`: where `Localhost` seccomp profiles are; None refuses them.
    pub seccomp_dir: Option<&'a Path>,
    /// A host file bind-mounted at terminationMessagePath (default /dev/termination-log).
    pub termination_log: Option<&'a Path>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// runAsNonRoot refusals, worded as the kubelet words them.
    #[error("{message}")]
    NonRoot { field: String, message: String },
    #[error("{field}: {}: {source}", path.display())]
    Io {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the generated runtime spec is invalid: {0}")]
    Build(String),
}

impl SpecError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field path the error names (`spec.containers[1].securityContext.runAsUser`).
    pub fn field(&self) -> &str {
        match self {
            SpecError::Invalid { field, .. } | SpecError::NonRoot { field, .. } | SpecError::Io { field, .. } => field,
            SpecError::Build(_) => "",
        }
    }
}

/// What every part of the spec reads: the pod, the container and where it is in the pod.
pub(crate) struct Ctx<'a> {
    pub input: &'a ContainerInput<'a>,
    pub pod: &'a PodSpec,
    pub container: &'a Container,
    /// `spec.containers[1]` or `spec.initContainers[0]`.
    pub path: String,
    pub pod_sc: Option<&'a PodSecurityContext>,
    pub sc: Option<&'a SecurityContext>,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a ContainerInput<'a>) -> Result<Ctx<'a>, SpecError> {
        let pod = input
            .pod
            .spec
            .as_ref()
            .ok_or_else(|| SpecError::invalid("spec", "is required"))?;
        let name = &input.container.name;
        let find = |list: &[Container]| {
            list.iter()
                .position(|c| std::ptr::eq(c, input.container) || c.name == *name)
        };
        let path = if let Some(i) = find(&pod.containers) {
            format!("spec.containers[{i}]")
        } else if let Some(i) = pod.init_containers.as_deref().and_then(find) {
            format!("spec.initContainers[{i}]")
        } else {
            return Err(SpecError::invalid(
                "spec.containers",
                format!("no container named {name:?} in the pod"),
            ));
        };
        Ok(Ctx {
            input,
            pod,
            container: input.container,
            path,
            pod_sc: pod.security_context.as_ref(),
            sc: input.container.security_context.as_ref(),
        })
    }

    /// A field of the container: `field("securityContext.runAsUser")`.
    pub fn field(&self, rest: &str) -> String {
        format!("{}.{rest}", self.path)
    }

    pub fn privileged(&self) -> bool {
        self.sc.and_then(|s| s.privileged).unwrap_or(false)
    }

    pub fn pod_name(&self) -> &str {
        self.input.pod.metadata.name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.input.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// The OCI runtime spec for one container of a pod.
pub fn container_spec(input: &ContainerInput) -> Result<oci_spec::runtime::Spec, SpecError> {
    let cx = Ctx::new(input)?;
    let pod_env = env::pod_environment(&cx)?;
    let hostname = namespaces::hostname(&cx);
    let user = user::resolve(&cx)?;
    let process = process::process(&cx, &pod_env, hostname.as_deref(), &user)?;
    let security = security::security(&cx)?;
    let mut spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {
            "path": input.rootfs,
            "readonly": cx.sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        },
        "mounts": mounts::mounts(&cx, &pod_env)?,
        "linux": {
            "cgroupsPath": input.cgroups_path,
            "namespaces": namespaces::namespaces(&cx)?,
            "resources": resources::resources(&cx)?,
        },
    });
    if let Some(h) = hostname {
        spec["hostname"] = h.into();
    }
    // Mounts from the host propagate into the container only through a slave or shared root
    // (containerd sets it the same way).
    let options = |o: &str| {
        spec["mounts"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["options"].as_array().is_some_and(|a| a.iter().any(|x| x == o)))
        })
    };
    if options("rshared") {
        spec["linux"]["rootfsPropagation"] = "rshared".into();
    } else if options("rslave") {
        spec["linux"]["rootfsPropagation"] = "rslave".into();
    }
    security.apply(&mut spec)?;
    serde_json::from_value(spec).map_err(|e| SpecError::Build(e.to_string()))
}

#[cfg(test)]
mod tests;
