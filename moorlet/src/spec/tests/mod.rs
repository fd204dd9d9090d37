//! Table-driven tests of container_spec against Kubernetes' documented behaviour. Pods are
//! written as YAML and parsed by the manifest module, as a user's would be.

// The case tables are tuples of borrowed slices: clearer inline than as named types.
#![allow(clippy::type_complexity)]

mod env;
mod mounts;
mod process;
mod resources;
mod seccomp;
mod security;
mod user;

use super::*;
use crate::manifest::{parse, Object};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory removed when dropped.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("moorlet-spec-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
pub(crate) struct Sources {
    pub objects: Vec<Object>,
}

impl Sources {
    pub fn from_yaml(text: &str) -> Sources {
        Sources {
            objects: parse(text).expect("sources"),
        }
    }
}

impl EnvSources for Sources {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.objects.iter().find_map(|o| match o {
            Object::ConfigMap(c) if o.namespace() == namespace && o.name() == name => Some(c.clone()),
            _ => None,
        })
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.objects.iter().find_map(|o| match o {
            Object::Secret(s) if o.namespace() == namespace && o.name() == name => Some(s.clone()),
            _ => None,
        })
    }
}

/// A pod from the YAML of its spec (indented by two), named `web` in namespace `default`.
pub(crate) fn pod(spec: &str) -> Pod {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  uid: 1234-5678\n  labels: {{app: shop}}\n  annotations: {{team: blue}}\nspec:\n{spec}");
    match parse(&text).expect("pod").pop() {
        Some(Object::Pod(p)) => p,
        other => panic!("not a pod: {other:?}"),
    }
}

/// One container spec's knobs; `Case::new(pod)` gives the pod's own namespaces.
pub(crate) struct Case<'a> {
    pub pod: Pod,
    pub container: usize,
    pub image: ImageDefaults,
    pub rootfs: PathBuf,
    pub sources: &'a dyn EnvSources,
    pub volumes: Vec<(String, PathBuf, bool)>,
    pub host_net: bool,
    pub host_ipc: bool,
    pub pidns: Option<PathBuf>,
    pub seccomp_dir: Option<PathBuf>,
    pub etc: bool,
    pub termination_log: Option<PathBuf>,
    pub shm: Option<PathBuf>,
    /// An empty rootfs, unless a test gives its own.
    _root: TempDir,
}

pub(crate) const NO_SOURCES: &Sources = &Sources { objects: Vec::new() };

impl<'a> Case<'a> {
    pub fn new(pod: Pod) -> Case<'a> {
        let root = TempDir::new("rootfs");
        Case {
            pod,
            container: 0,
            image: ImageDefaults {
                cmd: vec!["sh".into()],
                ..ImageDefaults::default()
            },
            rootfs: root.0.clone(),
            sources: NO_SOURCES,
            volumes: Vec::new(),
            host_net: false,
            host_ipc: false,
            pidns: None,
            seccomp_dir: None,
            etc: false,
            termination_log: None,
            shm: None,
            _root: root,
        }
    }

    pub fn build(&self) -> Result<Value, SpecError> {
        let spec = self.pod.spec.as_ref().expect("spec");
        let all: Vec<&Container> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .collect();
        let (net, ipc, uts) = (
            Path::new("/run/netns/web"),
            Path::new("/run/ipcns/web"),
            Path::new("/run/utsns/web"),
        );
        let input = ContainerInput {
            pod: &self.pod,
            container: all[self.container],
            image: &self.image,
            rootfs: &self.rootfs,
            netns: (!self.host_net).then_some(net),
            ipcns: (!self.host_ipc).then_some(ipc),
            utsns: (!self.host_net).then_some(uts),
            pidns: self.pidns.as_deref(),
            volumes: &self.volumes,
            etc_hosts: self.etc.then_some(Path::new("/pod/hosts")),
            etc_hostname: self.etc.then_some(Path::new("/pod/hostname")),
            resolv_conf: self.etc.then_some(Path::new("/pod/resolv.conf")),
            env_sources: self.sources,
            pod_ip: Some("10.88.0.7".parse().expect("ip")),
            cgroups_path: "/moorlet/web/app".into(),
            shm: self.shm.as_deref(),
            seccomp_dir: self.seccomp_dir.as_deref(),
            termination_log: self.termination_log.as_deref(),
        };
        let spec = container_spec(&input)?;
        Ok(serde_json::to_value(spec).expect("spec to json"))
    }

    pub fn spec(&self) -> Value {
        match self.build() {
            Ok(v) => v,
            Err(e) => panic!("container_spec: {e}"),
        }
    }

    pub fn error(&self) -> SpecError {
        match self.build() {
            Ok(v) => panic!("accepted: {v}"),
            Err(e) => e,
        }
    }
}

/// The pod YAML of one busybox container with extra container fields (indented by four).
pub(crate) fn one(container_fields: &str) -> Pod {
    pod(&format!(
        "  containers:\n  - name: app\n    image: busybox\n{container_fields}"
    ))
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn a_minimal_pod_gives_a_complete_spec() {
    let spec = Case::new(one("")).spec();
    assert_eq!(spec["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(spec["process"]["cwd"], "/");
    assert!(spec["root"]["path"]
        .as_str()
        .is_some_and(|p| p.contains("moorlet-spec-rootfs")));
    assert_eq!(spec["root"]["readonly"], false);
    assert_eq!(spec["hostname"], "web");
    assert_eq!(spec["linux"]["cgroupsPath"], "/moorlet/web/app");
    assert_eq!(spec["process"]["user"]["uid"], 0);
    assert_eq!(spec["process"]["noNewPrivileges"], false);
    assert!(
        spec["linux"]["seccomp"].is_object(),
        "RuntimeDefault unless asked otherwise"
    );
}

#[test]
fn read_only_root_filesystem() {
    for (field, want) in [
        ("", false),
        ("    securityContext: {readOnlyRootFilesystem: true}\n", true),
        ("    securityContext: {readOnlyRootFilesystem: false}\n", false),
    ] {
        assert_eq!(Case::new(one(field)).spec()["root"]["readonly"], want, "{field}");
    }
}

#[test]
fn errors_name_the_container_by_its_place_in_the_pod() {
    let p = pod("  initContainers:\n  - {name: init, image: busybox}\n  containers:\n  - {name: a, image: busybox}\n  - {name: b, image: busybox, workingDir: relative}\n");
    let mut case = Case::new(p);
    case.container = 1;
    assert_eq!(case.error().field(), "spec.containers[1].workingDir");
    case.container = 2;
    case.image.cmd.clear();
    assert_eq!(case.error().field(), "spec.initContainers[0].command");
}
