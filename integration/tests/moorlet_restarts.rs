//! moorlet, black box: restart policies, the kubelet's backoff, OOMKilled, init containers.

mod moorlet_common;

use std::time::Duration;

use moor_integration::require_root;
use moorlet_common::{pod_yaml, Agent};
use serde_json::Value;

/// The CRI timestamp (seconds since the epoch, as f64) of the first and last records of a log.
fn log_times(agent: &Agent, pod: &Value, container: &str, restart: u64) -> (f64, f64) {
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let path = agent.logs.join(format!(
        "default_{}_{uid}/{container}/{restart}.log",
        pod["metadata"]["name"].as_str().expect("name")
    ));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split(' ').next().and_then(parse_rfc3339))
        .collect();
    (times[0], times[times.len() - 1])
}

/// RFC3339Nano UTC to seconds (only what the CRI logs hold: YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ).
fn parse_rfc3339(t: &str) -> Option<f64> {
    let n = |a: usize, b: usize| t.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let secs = n(11, 13)? * 3600 + n(14, 16)? * 60 + n(17, 19)?;
    let frac: f64 = t
        .get(19..t.len() - 1)
        .and_then(|f| format!("0{f}").parse().ok())
        .unwrap_or(0.0);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    #[allow(clippy::cast_precision_loss)] // seconds since 1970 fit a f64 exactly
    Some((days * 86400 + secs) as f64 + frac)
}

fn restarts(p: &Value) -> u64 {
    p["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap_or(0)
}

/// A crash loop restarts after 10, 20, 40 s (here scaled by 0.3: 3, 6, 12 s), each within
/// ±20%, and shows CrashLoopBackOff while it waits.
#[test]
fn crash_loop_backs_off_10_20_40() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(Some(0.3));
    let image = agent.import_busybox();
    agent.apply(&pod_yaml("crash", &image, "", &[("app", "echo started; exit 1")]));
    let waiting = agent.wait_pod("crash", Duration::from_secs(10), "CrashLoopBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    assert_eq!(
        waiting["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    let pod = agent.wait_pod("crash", Duration::from_secs(40), "3 restarts", |p| restarts(p) >= 3);
    for (n, want) in [(1, 3.0), (2, 6.0), (3, 12.0)] {
        let (_, end) = log_times(&agent, &pod, "app", n - 1);
        let (start, _) = log_times(&agent, &pod, "app", n);
        let delay = start - end;
        assert!(
            (want * 0.8..=want * 1.2).contains(&delay),
            "restart {n} came {delay:.2}s after the exit, want {want}s ±20%"
        );
    }
}

/// The real first delay, unscaled: 10 s ±20%.
#[test]
fn crash_loop_real_first_delay_is_10s() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    agent.apply(&pod_yaml("crash10", &image, "", &[("app", "echo started; exit 2")]));
    let pod = agent.wait_pod("crash10", Duration::from_secs(20), "a restart", |p| restarts(p) >= 1);
    let (_, end) = log_times(&agent, &pod, "app", 0);
    let (start, _) = log_times(&agent, &pod, "app", 1);
    let delay = start - end;
    assert!(
        (8.0..=12.0).contains(&delay),
        "the first restart came {delay:.2}s after the exit, want 10s ±20%"
    );
}

/// restartPolicy Never: a failed container stays terminated and the pod is Failed; OnFailure:
/// a container that succeeds is not restarted and the pod is Succeeded.
#[test]
fn never_and_on_failure_phases() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(Some(0.1));
    let image = agent.import_busybox();
    agent.apply(&pod_yaml(
        "never",
        &image,
        "  restartPolicy: Never\n",
        &[("app", "exit 3")],
    ));
    agent.apply(&pod_yaml(
        "onfail-ok",
        &image,
        "  restartPolicy: OnFailure\n",
        &[("app", "exit 0")],
    ));
    agent.apply(&pod_yaml(
        "onfail-bad",
        &image,
        "  restartPolicy: OnFailure\n",
        &[("app", "exit 4")],
    ));
    let never = agent.wait_pod("never", Duration::from_secs(20), "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    let t = &never["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!((t["exitCode"].as_i64(), t["reason"].as_str()), (Some(3), Some("Error")));
    let ok = agent.wait_pod("onfail-ok", Duration::from_secs(20), "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_eq!(restarts(&ok), 0);
    agent.wait_pod("onfail-bad", Duration::from_secs(20), "a restart", |p| restarts(p) >= 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        restarts(&agent.pod("never")),
        0,
        "restartPolicy Never restarted the container"
    );
    assert_eq!(agent.pod("onfail-ok")["status"]["phase"], "Succeeded");
}

/// A container over its memory limit is OOM-killed: reason OOMKilled, exit code 137.
#[test]
fn oom_killed() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let mut yaml = pod_yaml(
        "oom",
        &image,
        "  restartPolicy: Never\n",
        &[("app", "x=0123456789; while true; do x=\"$x$x\"; done")],
    );
    yaml.push_str("    resources:\n      limits:\n        memory: 32Mi\n");
    agent.apply(&yaml);
    let pod = agent.wait_pod("oom", Duration::from_secs(30), "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (t["reason"].as_str(), t["exitCode"].as_i64()),
        (Some("OOMKilled"), Some(137)),
        "{pod:#}"
    );
}

/// Init containers run one after the other, to completion, before the app; a failing init
/// backs off and the app never starts.
#[test]
fn init_containers_in_order_and_a_failing_init_blocks() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(Some(0.1));
    let image = agent.import_busybox();
    let init = |name: &str, script: &str| {
        format!(
            "  - name: {name}\n    image: {image}\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {}]\n    volumeMounts:\n    - {{name: work, mountPath: /work}}\n",
            serde_json::to_string(script).expect("json")
        )
    };
    let spec = format!(
        "  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: work\n    emptyDir: {{}}\n  initContainers:\n{}{}",
        init("one", "sleep 0.3; echo one >> /work/order"),
        init("two", "echo two >> /work/order")
    );
    let mut yaml = pod_yaml("inits", &image, &spec, &[("app", "cat /work/order; sleep 1000")]);
    yaml.push_str("    volumeMounts:\n    - {name: work, mountPath: /work}\n");
    agent.apply(&yaml);
    let pod = agent.wait_running("inits");
    let out = agent.ok(&["logs", "inits"]);
    assert_eq!(out, "one\ntwo\n", "the app saw the init containers' work in this order");
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .expect("initContainerStatuses");
    assert!(
        inits.iter().all(|c| c["state"]["terminated"]["reason"] == "Completed"),
        "{pod:#}"
    );

    let failing = format!(
        "  initContainers:\n{}",
        init("bad", "exit 1").replace("    volumeMounts:\n    - {name: work, mountPath: /work}\n", "")
    );
    let failing = format!("  terminationGracePeriodSeconds: 1\n{failing}");
    agent.apply(&pod_yaml("blocked", &image, &failing, &[("app", "sleep 1000")]));
    let p = agent.wait_pod(
        "blocked",
        Duration::from_secs(20),
        "the failing init restarted twice",
        |p| {
            p["status"]["initContainerStatuses"][0]["restartCount"]
                .as_u64()
                .unwrap_or(0)
                >= 2
        },
    );
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(
        p["status"]["containerStatuses"][0]["state"]["waiting"].is_object(),
        "the app started: {p:#}"
    );
    assert!(
        p["status"]["containerStatuses"][0]["containerID"].is_null(),
        "the app was created: {p:#}"
    );
    let table = agent.ok(&["get", "pods"]);
    assert!(
        table.lines().any(|l| l.starts_with("blocked") && l.contains("Init:")),
        "{table}"
    );
}
