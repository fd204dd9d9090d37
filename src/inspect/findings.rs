//! Judging a report's facts: which host binds are dangerous or the orchestrator's own, and the
//! findings, flagged by severity, that every report lists first.

use super::{caps, Finding, HostBind, NsState, Report, SeccompMode, Severity};

/// File names of container runtime and orchestrator sockets: whoever reaches one controls the host.
const RUNTIME_SOCKETS: [&str; 8] = [
    "containerd.sock",
    "docker.sock",
    "crio.sock",
    "podman.sock",
    "dockershim.sock",
    "cri-dockerd.sock",
    "kubelet.sock",
    "containerd-shim.sock",
];

/// Files a container runtime or the kubelet binds into every container.
const MANAGED_FILES: [&str; 4] = [
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/termination-log",
];

/// Where runtimes keep the per-container copies of MANAGED_FILES (docker, containerd, cri-o,
/// podman state directories).
const RUNTIME_STATE: [&str; 3] = ["/var/lib/", "/run/", "/var/run/"];

/// Whether a bind of `host` at `dest` is the orchestrator's (see [`HostBind::managed`]). A path
/// with `.`/`..` components (a config's source is not canonical) or a managed file name bound
/// from anywhere but a runtime's state directory (the host's /etc/hosts, or worse) is not.
fn managed(host: &str, dest: &str) -> bool {
    let clean = host.starts_with('/') && host[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !clean {
        return false;
    }
    if host.starts_with("/var/lib/kubelet/pods/") {
        return true;
    }
    let same_name = host.rsplit('/').next() == dest.rsplit('/').next();
    MANAGED_FILES.contains(&dest) && same_name && RUNTIME_STATE.iter().any(|d| host.starts_with(d))
}

/// Host paths that hand the container the host when bound writable.
const HOST_CRITICAL: [&str; 5] = ["/", "/proc", "/sys", "/dev", "/etc"];

impl HostBind {
    /// Classifies a bind by its host path and file type.
    pub(super) fn assess(mut self) -> HostBind {
        let host = self.host_path.clone().unwrap_or_default();
        let name = host.rsplit('/').next().unwrap_or_default();
        self.danger = if RUNTIME_SOCKETS.contains(&name) {
            Some(format!("container runtime socket {name}"))
        } else if self.socket {
            Some("host unix socket".into())
        } else if HOST_CRITICAL.contains(&host.as_str()) && !self.readonly {
            Some(format!("host {host} writable"))
        } else if HOST_CRITICAL.contains(&host.as_str()) {
            Some(format!("host {host}"))
        } else {
            None
        };
        self.managed = self.danger.is_none() && managed(&host, &self.destination);
        self
    }
}

/// The findings every report gets, from its facts.
pub(super) fn findings(r: &Report) -> Vec<Finding> {
    let mut f = Vec::new();
    let mut add = |severity, message: String| f.push(Finding { severity, message });
    for p in &r.processes {
        let who = p.pid.map_or_else(|| "process".to_string(), |pid| format!("pid {pid}"));
        if p.capabilities.all {
            add(Severity::Critical, format!("{who}: every capability (privileged)"));
        } else if !p.capabilities.beyond_default.is_empty() {
            let sev = if p
                .capabilities
                .beyond_default
                .iter()
                .any(|c| caps::DANGEROUS.contains(&c.as_str()))
            {
                Severity::High
            } else {
                Severity::Medium
            };
            add(
                sev,
                format!(
                    "{who}: capabilities beyond the default set: {}",
                    p.capabilities.beyond_default.join(", ")
                ),
            );
        }
        for ns in &p.namespaces {
            if ns.state == NsState::Host && ["pid", "ipc", "net", "mnt", "user"].contains(&ns.kind.as_str()) {
                let sev = if ns.kind == "user" {
                    Severity::Info
                } else {
                    Severity::High
                };
                add(sev, format!("{who}: shares the host's {} namespace", ns.kind));
            }
        }
        if p.user.root_on_host {
            add(
                Severity::Medium,
                format!("{who}: runs as root, and root inside is root on the host"),
            );
        }
        if !p.no_new_privs {
            add(
                Severity::Medium,
                format!("{who}: no_new_privs is off (setuid binaries can raise privileges)"),
            );
        }
        if p.seccomp.mode == SeccompMode::Disabled {
            add(Severity::High, format!("{who}: no seccomp filter"));
        }
    }
    if let Some(s) = &r.seccomp_profile {
        if !s.dangerous_allowed.is_empty() {
            add(
                Severity::Medium,
                format!("seccomp profile allows {}", s.dangerous_allowed.join(", ")),
            );
        }
    }
    let fs = &r.filesystem;
    if !fs.root_readonly {
        add(Severity::Low, "root filesystem is writable".into());
    }
    let unmasked: Vec<&str> = fs
        .masked_paths
        .iter()
        .filter(|m| !m.in_force)
        .map(|m| m.path.as_str())
        .collect();
    if !unmasked.is_empty() {
        add(Severity::High, format!("not masked: {}", unmasked.join(", ")));
    }
    let writable: Vec<&str> = fs
        .readonly_paths
        .iter()
        .filter(|m| !m.in_force)
        .map(|m| m.path.as_str())
        .collect();
    if !writable.is_empty() {
        add(Severity::High, format!("not read-only: {}", writable.join(", ")));
    }
    if fs.sys_writable {
        add(Severity::High, "/sys is writable".into());
    }
    for b in &fs.host_binds {
        let host = b.host_path.as_deref().unwrap_or("?");
        match &b.danger {
            Some(d) => add(
                Severity::Critical,
                format!("host bind {host} at {}: {d}", b.destination),
            ),
            None => add(
                Severity::Low,
                format!(
                    "host bind {host} at {}{}",
                    b.destination,
                    if b.readonly { " (ro)" } else { "" }
                ),
            ),
        }
    }
    if r.devices.all_allowed {
        add(
            Severity::Critical,
            format!("every device allowed ({})", r.devices.rules_source),
        );
    }
    if r.cgroup.memory.is_none() {
        add(Severity::Low, "no memory limit".into());
    }
    if r.cgroup.pids.is_none() {
        add(Severity::Low, "no pids limit".into());
    }
    for d in &r.drift {
        add(Severity::High, format!("drift: {d}"));
    }
    f.sort_by_key(|x| std::cmp::Reverse(x.severity));
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn managed_binds() {
        use super::managed;
        assert!(managed(
            "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/tok",
            "/var/run/secrets/tok"
        ));
        assert!(managed("/var/lib/docker/containers/abc/hosts", "/etc/hosts"));
        assert!(managed(
            "/run/containers/storage/overlay-containers/x/userdata/resolv.conf",
            "/etc/resolv.conf"
        ));
        assert!(!managed("/etc/hosts", "/etc/hosts"));
        assert!(!managed("/etc/shadow", "/etc/hosts"));
        assert!(!managed("/var/lib/x/shadow", "/etc/hosts"));
        assert!(!managed("/var/lib/kubelet/pods/../../../etc", "/data"));
        assert!(!managed("/srv/data", "/data"));
    }
}
