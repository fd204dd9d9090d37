//! `moor features`: the runtime-spec features document, for this build on this host.

use serde_json::{json, Value};

pub fn features() -> Value {
    let last = crate::init::capabilities::last_cap();
    let caps: Vec<String> = (0..=last).filter_map(crate::init::capabilities::name).collect();
    let lsm = |path: &str| std::path::Path::new(path).exists();
    let unified = std::fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::spec::mount_options::names().collect::<Vec<_>>(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": caps,
            "cgroup": {"v1": !unified, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ]
            },
            "apparmor": {"enabled": lsm("/sys/kernel/security/apparmor")},
            "selinux": {"enabled": lsm("/sys/fs/selinux/enforce")},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
            "memoryPolicy": {
                "modes": [
                    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"
                ],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "netDevices": {"enabled": true}
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features": "moor",
            "io.github.moor.version": env!("CARGO_PKG_VERSION"),
            // `moor inspect` and the Pod Security Standard levels its --require checks.
            "io.github.moor.inspect": "baseline,restricted",
            // runc's key, which runc always sets: here it says whether CRIU is installed.
            "org.opencontainers.runc.checkpoint.enabled":
                crate::checkpoint::criu_available(std::path::Path::new("criu")).to_string()
        }
    })
}
