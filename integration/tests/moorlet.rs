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
