//! moorlet, black box: security contexts and volumes as a pod sees them.

mod moorlet_common;

use std::time::Duration;

use moor_integration::require_root;
use moorlet_common::{pod_yaml, Agent};

fn status_field(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// readOnlyRootFilesystem and capabilities drop ALL: the workload has CapEff 0 and cannot
/// write its root; runAsNonRoot with a root image is refused (CreateContainerConfigError).
#[test]
fn read_only_root_drop_all_and_run_as_non_root() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(Some(0.1));
    let image = agent.import_busybox();
    let mut yaml = pod_yaml(
        "locked",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[(
            "app",
            "touch /x 2>/dev/null && echo wrote || echo read-only; while true; do sleep 0.2; done",
        )],
    );
    yaml.push_str(
        "    securityContext:\n      readOnlyRootFilesystem: true\n      capabilities:\n        drop: [ALL]\n",
    );
    agent.apply(&yaml);
    let pod = agent.wait_running("locked");
    let pid = agent.container_pid(&pod, "app");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    moor_integration::poll_until(Duration::from_secs(5), "the app's verdict", || {
        (!agent.ok(&["logs", "locked"]).is_empty()).then_some(())
    });
    assert_eq!(agent.ok(&["logs", "locked"]), "read-only\n");

    let mut nonroot = pod_yaml("nonroot", &image, "", &[("app", "true")]);
    nonroot.push_str("    securityContext:\n      runAsNonRoot: true\n");
    agent.apply(&nonroot);
    let p = agent.wait_pod("nonroot", Duration::from_secs(10), "a refusal", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("non-root") || msg.contains("runAsNonRoot"),
        "the refusal says: {msg}"
    );
    assert!(
        p["status"]["containerStatuses"][0]["containerID"].is_null(),
        "a container was made: {p:#}"
    );
}

/// A PersistentVolumeClaim's data survives the pod's deletion and re-creation; a Memory
/// emptyDir is a tmpfs that ends with ENOSPC at its sizeLimit.
#[test]
fn pvc_survives_and_memory_empty_dir_has_its_limit() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n---\n";
    let volumes = "  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: data\n    persistentVolumeClaim:\n      claimName: data\n  - name: fast\n    emptyDir:\n      medium: Memory\n      sizeLimit: 1Mi\n";
    let script = "echo run >> /data/runs; cat /data/runs | wc -l; head -c 2000000 /dev/zero > /fast/big 2>/dev/null; echo write=$?; while true; do sleep 0.2; done";
    let mut yaml = pod_yaml("keeper", &image, volumes, &[("app", script)]);
    yaml.push_str("    volumeMounts:\n    - {name: data, mountPath: /data}\n    - {name: fast, mountPath: /fast}\n");
    let output = |agent: &Agent| {
        moor_integration::poll_until(Duration::from_secs(10), "the app's output", || {
            let l = agent.ok(&["logs", "keeper"]);
            l.contains("write=").then_some(l)
        })
    };
    agent.apply(&format!("{claim}{yaml}"));
    let pod = agent.wait_running("keeper");
    let first = output(&agent);
    assert_eq!(
        first.split_whitespace().collect::<Vec<_>>(),
        ["1", "write=1"],
        "first run: {first}"
    );
    let pid = agent.container_pid(&pod, "app");
    let fast = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    assert!(
        fast.lines().any(|l| l.contains(" /fast ") && l.contains("tmpfs")),
        "/fast is no tmpfs: {fast}"
    );
    agent.ok(&["delete", "pod", "keeper"]);
    agent.apply(&format!("{claim}{yaml}"));
    agent.wait_running("keeper");
    let second = output(&agent);
    assert!(second.starts_with("2\n"), "the claim's data did not survive: {second}");
}

/// hostNetwork: the pod is in the host's network namespace; its /etc/hosts is the host's.
#[test]
fn host_network_pod() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    agent.apply(&pod_yaml(
        "onhost",
        &image,
        "  terminationGracePeriodSeconds: 1\n  hostNetwork: true\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    ));
    let pod = agent.wait_running("onhost");
    let pid = agent.container_pid(&pod, "app");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).expect("netns");
    assert_eq!(
        ns(&pid.to_string()),
        ns("self"),
        "a hostNetwork pod has a netns of its own"
    );
    let hosts = std::fs::read_to_string(format!("/proc/{pid}/root/etc/hosts")).expect("hosts");
    let host = std::fs::read_to_string("/etc/hosts").expect("host's hosts");
    assert!(
        hosts.contains(host.trim()),
        "the pod's hosts file lacks the host's entries: {hosts}"
    );
}
