//! moorlet: a single-node pod agent on moor.
//!
//! It reads the Kubernetes YAML a user would give a cluster (Pods, ConfigMaps, Secrets,
//! PersistentVolumeClaims) and keeps it running on one machine. Modules, by who owns what:
//!
//! - `manifest`: YAML/JSON documents parsed into k8s-openapi objects, and the list of fields
//!   moorlet does not honour (`moorlet validate`).
//! - `image`: the image store: import (OCI layout, oci-archive, docker-archive), pull from a
//!   registry v2, digest-verified blobs, unpacked layers, and each container's overlay rootfs.
//! - `net`: a pod's namespaces (held by bind-mounted nsfs files), CNI plugins, generated
//!   /etc/hosts, /etc/hostname and /etc/resolv.conf.
//! - `volume`: a pod's volumes on the host (emptyDir, hostPath, configMap, secret, downwardAPI,
//!   projected, PVC).
//! - `spec`: a pod's container turned into an OCI runtime spec for moor (process, env, security
//!   context, resources, mounts, namespaces), and the RuntimeDefault seccomp profile.
//! - the agent (desired state, reconciler, per-pod monitors, restarts, logs) and its client.

pub mod manifest;
pub mod spec;
