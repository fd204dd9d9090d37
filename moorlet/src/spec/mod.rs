//! STUB of the contract's API until s22-spec lands (removed at the merge).
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
#[derive(Debug, thiserror::Error)]
#[error("spec: {0}")]
pub struct SpecError(String);
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}
pub trait EnvSources {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
}
pub struct ContainerInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub image: &'a ImageDefaults,
    pub rootfs: &'a Path,
    pub netns: Option<&'a Path>,
    pub ipcns: Option<&'a Path>,
    pub utsns: Option<&'a Path>,
    pub pidns: Option<&'a Path>,
    pub volumes: &'a [(String, PathBuf, bool)],
    pub etc_hosts: Option<&'a Path>,
    pub etc_hostname: Option<&'a Path>,
    pub resolv_conf: Option<&'a Path>,
    pub env_sources: &'a dyn EnvSources,
    pub pod_ip: Option<IpAddr>,
    pub cgroups_path: String,
}
pub fn container_spec(_input: &ContainerInput) -> Result<oci_spec::runtime::Spec, SpecError> {
    Err(SpecError("stub".into()))
}
