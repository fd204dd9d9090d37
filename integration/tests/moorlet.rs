//! moorlet, black box: the `moorlet` binary driven as a user drives it (an agent on a
//! throwaway state dir, socket, bridge and log root; the client commands), the facts checked
//! from outside (/proc of the workload, ip addresses, files, timings).

mod moorlet_common;

use std::process::Command;
use std::time::{Duration, Instant};

use moor_integration::require_root;
use moorlet_common::{pod_yaml, Agent};

/// A 2-container pod reaches Running with both containers Ready, in their pod's network
/// namespace with the pod's IP; applying the same file again changes nothing (same pids).
#[test]
fn two_container_pod_runs_and_reapply_is_a_noop() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let yaml = pod_yaml(
        "web",
        &image,
        "  terminationGracePeriodSeconds: 2\n",
        &[
            ("a", "trap 'exit 0' TERM; while true; do sleep 0.2; done"),
            ("b", "trap 'exit 0' TERM; while true; do sleep 0.2; done"),
        ],
    );
    let out = agent.apply(&yaml);
    assert!(out.contains("pod/web created"), "apply said: {out}");
    let pod = agent.wait_running("web");
    let ip = pod["status"]["podIP"].as_str().expect("status.podIP").to_string();
    let (a, b) = (agent.container_pid(&pod, "a"), agent.container_pid(&pod, "b"));
    // Both share the pod's network namespace, which is not the host's, and it has the pod's IP.
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns link");
    assert_eq!(ns(a), ns(b), "the two containers are in different network namespaces");
    assert_ne!(ns(a), std::fs::read_link("/proc/self/ns/net").expect("own ns"));
    let addrs = Command::new("nsenter")
        .args(["-t", &a.to_string(), "-n", "ip", "-4", "-o", "addr"])
        .output()
        .expect("nsenter ip addr");
    assert!(
        String::from_utf8_lossy(&addrs.stdout).contains(&format!("{ip}/")),
        "the pod's netns lacks {ip}: {}",
        String::from_utf8_lossy(&addrs.stdout)
    );
    let table = agent.ok(&["get", "pods"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web") && l.contains("2/2") && l.contains("Running")),
        "{table}"
    );

    let again = agent.apply(&yaml);
    assert!(again.contains("pod/web unchanged"), "second apply said: {again}");
    std::thread::sleep(Duration::from_millis(1500));
    let pod2 = agent.pod("web");
    assert_eq!(
        pod2["metadata"]["uid"], pod["metadata"]["uid"],
        "re-apply replaced the pod"
    );
    assert_eq!(
        (agent.container_pid(&pod2, "a"), agent.container_pid(&pod2, "b")),
        (a, b),
        "re-apply restarted a container"
    );
    assert!(pod2["status"]["containerStatuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .all(|c| c["restartCount"] == 0));

    let t = Instant::now();
    agent.ok(&["delete", "pod", "web"]);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "delete took {:?} though the apps exit on SIGTERM",
        t.elapsed()
    );
    for pid in [a, b] {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie_free(pid),
            "container process {pid} outlived delete"
        );
    }
    let gone = agent.run(&["get", "pod", "web", "-o", "json"]);
    assert!(!gone.status.success(), "the pod is still there after delete returned");
}

fn is_zombie_free(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
}

/// After `delete` returns nothing of the pod is left: no veth on the bridge, no namespace
/// file, no mount, no cgroup, no IPAM lease, no hostPort rule.
#[test]
fn delete_leaves_nothing() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let mut yaml = pod_yaml(
        "gone",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    );
    yaml.push_str("    ports:\n    - containerPort: 80\n      hostPort: 28471\n");
    agent.apply(&yaml);
    let pod = agent.wait_running("gone");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let ip = pod["status"]["podIP"].as_str().expect("podIP").to_string();
    let id = format!("default_gone_app_{}", &uid[..8]);
    let cgroup = format!("{}/{id}", agent.cgroup_parent);
    let veths = || {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &agent.bridge])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let rules = || {
        let out = Command::new("iptables-save").output().expect("iptables-save");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&ip) || l.contains("28471"))
            .count()
    };
    let leases = || {
        walk(&agent.state.join("cni"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == ip.as_str()))
            .count()
    };
    // What the pod has while it runs, so that the checks below can fail.
    assert_eq!(veths(), 1, "no veth of the pod on {}", agent.bridge);
    assert!(
        !moor_integration::host::cgroup_dirs(&cgroup).is_empty(),
        "no cgroup {cgroup}"
    );
    assert!(rules() > 0, "no hostPort rule for {ip}:28471");
    assert_eq!(leases(), 1, "no IPAM lease of {ip}");
    let run = agent.state.join("run").join(&uid);
    assert!(!moor_integration::host::mounts_mentioning(&uid).is_empty());

    agent.ok(&["delete", "pod", "gone"]);
    assert_eq!(veths(), 0, "a veth is left on {}", agent.bridge);
    assert!(
        moor_integration::host::cgroup_dirs(&cgroup).is_empty(),
        "cgroup {cgroup} is left"
    );
    assert_eq!(rules(), 0, "iptables rules of the pod are left");
    assert_eq!(leases(), 0, "the IPAM lease of {ip} is left");
    assert_eq!(
        moor_integration::host::mounts_mentioning(&uid),
        Vec::<String>::new(),
        "mounts are left"
    );
    assert!(
        !agent.state.join("run/ns").join(&uid).exists(),
        "the namespace files are left"
    );
    assert!(!run.exists(), "the pod's run dir is left");
    assert!(
        !agent.state.join("moor").join(&id).exists(),
        "moor's container state is left"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// A changed pod spec replaces the pod (new uid, new processes); the old one is gone first.
#[test]
fn changed_spec_replaces_the_pod() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let script = "trap 'exit 0' TERM; while true; do sleep 0.2; done";
    agent.apply(&pod_yaml(
        "p",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", script)],
    ));
    let old = agent.wait_running("p");
    let old_pid = agent.container_pid(&old, "app");
    let out = agent.apply(&pod_yaml(
        "p",
        &image,
        "  terminationGracePeriodSeconds: 2\n",
        &[("app", script)],
    ));
    assert!(out.contains("pod/p configured"), "apply said: {out}");
    let new = agent.wait_running("p");
    assert_ne!(new["metadata"]["uid"], old["metadata"]["uid"]);
    assert_ne!(agent.container_pid(&new, "app"), old_pid);
    assert!(!std::path::Path::new(&format!("/proc/{old_pid}")).exists() || is_zombie_free(old_pid));
}

/// `validate` lists the fields moorlet does not honour, by path; --strict fails on them.
#[test]
fn validate_lists_unhonoured_fields() {
    if moorlet_common::in_own_group() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("moorlet-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("pod.yaml");
    let mut yaml = pod_yaml("v", "busybox", "", &[("app", "true")]);
    yaml.push_str("    readinessProbe:\n      exec:\n        command: [\"true\"]\n");
    std::fs::write(&file, yaml).expect("write");
    let run = |strict: bool| {
        let mut args = vec!["validate", "-f", file.to_str().expect("path")];
        if strict {
            args.push("--strict");
        }
        Command::new(moorlet_common::moorlet_bin())
            .args(&args)
            .output()
            .expect("moorlet validate")
    };
    let loose = run(false);
    let text = String::from_utf8_lossy(&loose.stdout);
    assert!(loose.status.success(), "validate failed: {text}");
    assert!(
        text.contains("spec.containers[0].readinessProbe"),
        "validate said: {text}"
    );
    assert!(
        !run(true).status.success(),
        "validate --strict passed with an unhonoured field"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `apply -f DIR` applies every manifest of a directory; `delete -f FILE` removes what a file
/// names; a Deployment is refused as not supported yet, by name.
#[test]
fn apply_a_directory_and_delete_by_file() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let dir = agent.dir.join("manifests");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("a-config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
    )
    .expect("write");
    let pod = pod_yaml(
        "fromdir",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    );
    std::fs::write(dir.join("b-pod.yaml"), &pod).expect("write");
    std::fs::write(dir.join("notes.txt"), "not a manifest").expect("write");
    let out = agent.ok(&["apply", "-f", dir.to_str().expect("path")]);
    assert_eq!(out, "configmap/c created\npod/fromdir created\n");
    agent.wait_running("fromdir");
    let out = agent.ok(&["delete", "-f", dir.join("b-pod.yaml").to_str().expect("path")]);
    assert_eq!(out, "pod \"fromdir\" deleted\n");
    assert!(
        !agent.run(&["get", "pod", "fromdir"]).status.success(),
        "the pod is still there"
    );
    let out = agent.ok(&["delete", "-f", dir.join("a-config.yaml").to_str().expect("path")]);
    assert_eq!(out, "configmap \"c\" deleted\n");

    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - {name: app, image: busybox}\n";
    std::fs::write(dir.join("deploy.yaml"), deployment).expect("write");
    let refused = agent.run(&["apply", "-f", dir.join("deploy.yaml").to_str().expect("path")]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("\"web\"") && err.contains("not supported yet"),
        "{err}"
    );
}
