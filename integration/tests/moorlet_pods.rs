//! moorlet, black box: native sidecars, hostPort conflicts, image pull policy, ConfigMap
//! updates, events.

mod moorlet_common;

use std::time::Duration;

use moor_integration::require_root;
use moorlet_common::{pod_yaml, Agent};

fn first_time(log: &str, needle: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split(' ').next())
        .map(String::from)
}

/// An init container with restartPolicy Always is a sidecar: it starts before the app and
/// keeps running beside it; at delete it is stopped after the app.
#[test]
fn native_sidecar_starts_first_and_stops_last() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let script = "trap 'echo got-term; sleep 0.3; exit 0' TERM; echo up; while true; do sleep 0.1; done";
    let sidecar = format!(
        "  initContainers:\n  - name: side\n    image: {image}\n    imagePullPolicy: Never\n    restartPolicy: Always\n    command: [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(script).expect("json")
    );
    agent.apply(&pod_yaml(
        "withside",
        &image,
        &format!("  terminationGracePeriodSeconds: 5\n{sidecar}"),
        &[("app", script)],
    ));
    let pod = agent.wait_running("withside");
    let side = &pod["status"]["initContainerStatuses"][0];
    assert!(
        side["state"]["running"].is_object() && side["ready"] == true,
        "the sidecar does not run: {pod:#}"
    );
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let log = |c: &str| {
        std::fs::read_to_string(agent.logs.join(format!("default_withside_{uid}/{c}/0.log"))).unwrap_or_default()
    };
    let (side_up, app_up) = (first_time(&log("side"), "up"), first_time(&log("app"), "up"));
    assert!(
        side_up.is_some() && side_up <= app_up,
        "the sidecar started after the app: {side_up:?} {app_up:?}"
    );
    agent.ok(&["delete", "pod", "withside"]);
    let (side_term, app_term) = (
        first_time(&log("side"), "got-term"),
        first_time(&log("app"), "got-term"),
    );
    assert!(app_term.is_some() && side_term.is_some(), "a container got no SIGTERM");
    assert!(
        app_term < side_term,
        "the sidecar was stopped before the app: {app_term:?} {side_term:?}"
    );
}

/// A second pod asking for a hostPort in use stays Pending with a reason; the first runs on.
#[test]
fn host_port_conflict_leaves_the_second_pod_pending() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let port = "    ports:\n    - containerPort: 80\n      hostPort: 28472\n";
    let script = "trap 'exit 0' TERM; while true; do sleep 0.2; done";
    agent.apply(&format!(
        "{}{port}",
        pod_yaml(
            "first",
            &image,
            "  terminationGracePeriodSeconds: 1\n",
            &[("app", script)]
        )
    ));
    agent.wait_running("first");
    agent.apply(&format!(
        "{}{port}",
        pod_yaml(
            "second",
            &image,
            "  terminationGracePeriodSeconds: 1\n",
            &[("app", script)]
        )
    ));
    let p = agent.wait_pod("second", Duration::from_secs(15), "a Pending reason", |p| {
        p["status"]["message"].is_string()
    });
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(
        p["status"]["message"].as_str().unwrap_or_default().contains("28472"),
        "the reason does not name the port: {p:#}"
    );
    assert_eq!(agent.pod("first")["status"]["phase"], "Running");
    // Once the first pod is gone, the second one gets the port.
    agent.ok(&["delete", "pod", "first"]);
    agent.wait_running("second");
}

/// imagePullPolicy Never with an image that is not there: Pending, ErrImageNeverPull.
#[test]
fn missing_image_with_pull_policy_never() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    agent.apply(&pod_yaml("noimage", "moorlet-it/absent:1", "", &[("app", "true")]));
    let p = agent.wait_pod("noimage", Duration::from_secs(10), "a waiting reason", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    });
    assert_eq!(p["status"]["phase"], "Pending");
    let table = agent.ok(&["get", "pods"]);
    assert!(table.contains("ErrImageNeverPull"), "{table}");
}

/// A changed ConfigMap reaches the files of the pods that mount it, without a restart; the
/// events show what happened.
#[test]
fn configmap_update_reaches_mounted_files() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let cm = |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: live\ndata:\n  value: {v}\n---\n");
    let mut yaml = pod_yaml(
        "reader",
        &image,
        "  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: cfg\n    configMap:\n      name: live\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    );
    yaml.push_str("    volumeMounts:\n    - {name: cfg, mountPath: /cfg}\n");
    agent.apply(&format!("{}{yaml}", cm("one")));
    let pod = agent.wait_running("reader");
    let pid = agent.container_pid(&pod, "app");
    let read = || std::fs::read_to_string(format!("/proc/{pid}/root/cfg/value")).unwrap_or_default();
    assert_eq!(read(), "one");
    let out = agent.apply(&format!("{}{yaml}", cm("two")));
    assert!(
        out.contains("configmap/live configured") && out.contains("pod/reader unchanged"),
        "{out}"
    );
    moor_integration::poll_until(Duration::from_secs(5), "the new value in the pod", || {
        (read() == "two").then_some(())
    });
    assert_eq!(
        agent.container_pid(&agent.pod("reader"), "app"),
        pid,
        "the pod restarted"
    );
    let events = agent.ok(&["events"]);
    assert!(events.contains("Scheduled") && events.contains("Started"), "{events}");
}

/// The agent's socket is 0600; `images rm` refuses an image a pod uses; `images prune`
/// removes it once the pod is gone.
#[test]
fn socket_mode_and_images_rm_prune() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&agent.socket).expect("socket").permissions());
    assert_eq!(mode & 0o777, 0o600, "the socket's mode");
    let image = agent.import_busybox();
    agent.apply(&pod_yaml(
        "user",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    ));
    agent.wait_running("user");
    let rm = agent.run(&["images", "rm", &image]);
    assert!(!rm.status.success(), "images rm removed an image in use");
    let prune = agent.ok(&["images", "prune"]);
    assert!(
        agent.ok(&["images", "ls"]).contains("busybox"),
        "prune removed an image in use: {prune}"
    );
    agent.ok(&["delete", "pod", "user"]);
    let prune = agent.ok(&["images", "prune"]);
    assert!(prune.contains("deleted sha256:"), "prune said: {prune}");
    assert!(
        !agent.ok(&["images", "ls"]).contains("busybox"),
        "the unused image is still listed"
    );
}

/// postStart runs before the container counts as started; the terminated state carries the
/// termination message (terminationMessagePath, or the log's end with FallbackToLogsOnError).
#[test]
fn post_start_and_termination_messages() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let mut yaml = pod_yaml(
        "hooked",
        &image,
        "  restartPolicy: Never\n",
        &[("app", "sleep 0.5; cat /tmp/hooked > /dev/termination-log; exit 1")],
    );
    yaml.push_str("    lifecycle:\n      postStart:\n        exec:\n          command: [\"sh\", \"-c\", \"echo from-poststart > /tmp/hooked\"]\n");
    agent.apply(&yaml);
    let mut fallback = pod_yaml(
        "fallback",
        &image,
        "  restartPolicy: Never\n",
        &[("app", "echo first; echo last words; exit 2")],
    );
    fallback.push_str("    terminationMessagePolicy: FallbackToLogsOnError\n");
    agent.apply(&fallback);
    let p = agent.wait_pod("hooked", Duration::from_secs(20), "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["message"], "from-poststart\n",
        "{p:#}"
    );
    let p = agent.wait_pod("fallback", Duration::from_secs(20), "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["message"], "first\nlast words",
        "{p:#}"
    );
}

/// Pods of a namespace find each other by name: each one's /etc/hosts names the others, and
/// is updated in place when a pod comes later. (The busybox fixture has no network client;
/// TCP between pods on the bridge is tested by the net module's own tests.)
#[test]
fn pods_find_each_other_by_hosts_name() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let script = "trap 'exit 0' TERM; while true; do sleep 0.2; done";
    agent.apply(&pod_yaml(
        "alpha",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", script)],
    ));
    let a = agent.wait_running("alpha");
    agent.apply(&pod_yaml(
        "beta",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", script)],
    ));
    let b = agent.wait_running("beta");
    let ip = |p: &serde_json::Value| p["status"]["podIP"].as_str().expect("podIP").to_string();
    let hosts = |p: &serde_json::Value| {
        std::fs::read_to_string(format!("/proc/{}/root/etc/hosts", agent.container_pid(p, "app"))).unwrap_or_default()
    };
    let names = |text: &str, ip: &str, name: &str| {
        text.lines()
            .any(|l| l.split_whitespace().next() == Some(ip) && l.split_whitespace().any(|w| w == name))
    };
    assert!(
        names(&hosts(&b), &ip(&a), "alpha"),
        "beta's hosts lacks alpha: {}",
        hosts(&b)
    );
    moor_integration::poll_until(Duration::from_secs(5), "alpha's hosts to name beta", || {
        names(&hosts(&a), &ip(&b), "beta").then_some(())
    });
    // From inside: the workload sees beta's name in its hosts file.
    let out = agent.ok(&["exec", "alpha", "--", "sh", "-c", "grep -w beta /etc/hosts"]);
    assert!(out.contains(&ip(&b)), "{out}");
}

/// `events -w` streams events as they happen.
#[test]
fn events_watch_streams() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let mut watch = std::process::Command::new(moorlet_common::moorlet_bin())
        .args(["events", "-w"])
        .env("MOORLET_SOCKET", &agent.socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("events -w");
    let out = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    agent.apply(&pod_yaml(
        "watched",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    ));
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        let done = line.contains("Started") && line.contains("Pod/watched");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("Started")),
        "no Started event within 20 s: {seen:?}"
    );
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen.iter().any(|l| l.contains("Scheduled")), "{seen:?}");
}

/// The containers of a pod share one /dev/shm (they share the ipc namespace); another pod
/// does not see it, and delete unmounts it.
#[test]
fn pod_shares_one_dev_shm() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let loop_ = "trap 'exit 0' TERM; while true; do sleep 0.2; done";
    agent.apply(&pod_yaml(
        "shm",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[
            ("writer", &format!("echo shared > /dev/shm/note; {loop_}")),
            ("reader", loop_),
        ],
    ));
    agent.apply(&pod_yaml(
        "other",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", loop_)],
    ));
    let pod = agent.wait_running("shm");
    let other = agent.wait_running("other");
    let note = |p: &serde_json::Value, c: &str| {
        std::fs::read_to_string(format!("/proc/{}/root/dev/shm/note", agent.container_pid(p, c))).ok()
    };
    moor_integration::poll_until(Duration::from_secs(5), "the reader to see the note", || {
        (note(&pod, "reader").as_deref() == Some("shared\n")).then_some(())
    });
    assert_eq!(note(&other, "app"), None, "another pod sees the pod's /dev/shm");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    agent.ok(&["delete", "pod", "shm"]);
    assert_eq!(moor_integration::host::mounts_mentioning(&uid), Vec::<String>::new());
}
