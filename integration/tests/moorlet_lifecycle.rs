//! moorlet, black box: termination (preStop, SIGTERM, SIGKILL at the grace period), logs
//! (-f, --previous), exec, and the agent's death: kill -9 and a simulated reboot.

mod moorlet_common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use moor_integration::require_root;
use moorlet_common::{moorlet_bin, pod_yaml, Agent};
use serde_json::Value;

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

fn log_file(agent: &Agent, pod: &Value, container: &str, restart: u32) -> String {
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let name = pod["metadata"]["name"].as_str().expect("name");
    std::fs::read_to_string(
        agent
            .logs
            .join(format!("default_{name}_{uid}/{container}/{restart}.log")),
    )
    .unwrap_or_default()
}

/// delete runs the preStop hook, then sends SIGTERM; a container that ignores SIGTERM is
/// killed when the grace period ends.
#[test]
fn prestop_then_sigterm_then_sigkill_at_grace() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let mut yaml = pod_yaml(
        "polite",
        &image,
        "  terminationGracePeriodSeconds: 10\n",
        &[(
            "app",
            "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        )],
    );
    yaml.push_str("    lifecycle:\n      preStop:\n        exec:\n          command: [\"sh\", \"-c\", \"echo in-prestop > /proc/1/fd/1; sleep 1\"]\n");
    agent.apply(&yaml);
    let pod = agent.wait_running("polite");
    let t = Instant::now();
    agent.ok(&["delete", "pod", "polite"]);
    let took = t.elapsed();
    let log = log_file(&agent, &pod, "app", 0);
    let (pre, term) = (log.find("in-prestop"), log.find("got-term"));
    assert!(
        pre.is_some() && term.is_some() && pre < term,
        "want the preStop output, then SIGTERM's: {log}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "delete took {took:?}: the 1 s preStop, then a prompt exit"
    );

    let stubborn = pod_yaml(
        "stubborn",
        &image,
        "  terminationGracePeriodSeconds: 2\n",
        &[("app", "trap '' TERM; while true; do sleep 0.1; done")],
    );
    agent.apply(&stubborn);
    let pod = agent.wait_running("stubborn");
    let pid = agent.container_pid(&pod, "app");
    let t = Instant::now();
    agent.ok(&["delete", "pod", "stubborn"]);
    let took = t.elapsed();
    assert!(!alive(pid), "the container outlived delete");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "a container ignoring SIGTERM was killed after {took:?}, want the 2 s grace period"
    );
}

/// `logs -f` shows a new line within 1 s (the line is made with `exec`); `logs --previous`
/// shows the previous container's output after a restart.
#[test]
fn logs_follow_exec_and_previous() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(Some(0.1));
    let image = agent.import_busybox();
    let script = "echo hello; while true; do if [ -f /tmp/go ]; then echo marker; rm /tmp/go; fi; sleep 0.05; done";
    agent.apply(&pod_yaml(
        "chatty",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", script)],
    ));
    agent.wait_running("chatty");
    let mut follow = Command::new(moorlet_bin())
        .args(["logs", "-f", "chatty"])
        .env("MOORLET_SOCKET", &agent.socket)
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let mut lines = std::io::BufReader::new(follow.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("hello"));
    let t = Instant::now();
    let exec = agent.ok(&[
        "exec",
        "chatty",
        "--",
        "sh",
        "-c",
        "touch /tmp/go; echo exec-ran; id -u",
    ]);
    assert_eq!(exec, "exec-ran\n0\n", "exec's output");
    let next = lines.next().and_then(Result::ok);
    let took = t.elapsed();
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(next.as_deref(), Some("marker"));
    assert!(took < Duration::from_secs(1), "logs -f showed the line after {took:?}");
    let ts = agent.ok(&["logs", "--timestamps", "chatty"]);
    assert!(
        ts.lines()
            .next()
            .is_some_and(|l| l.ends_with(" hello") && l.starts_with("20")),
        "{ts}"
    );

    let counting = "n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; echo run-$n; sleep 0.5; exit 3";
    let mut yaml = pod_yaml(
        "counting",
        &image,
        "  volumes:\n  - name: d\n    emptyDir: {}\n",
        &[("app", counting)],
    );
    yaml.push_str("    volumeMounts:\n    - {name: d, mountPath: /d}\n");
    agent.apply(&yaml);
    agent.wait_pod("counting", Duration::from_secs(20), "the second run", |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 1
            && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    assert_eq!(agent.ok(&["logs", "counting", "--previous"]), "run-1\n");
    assert_eq!(agent.ok(&["logs", "counting"]), "run-2\n");
    let desc = agent.ok(&["describe", "pod", "counting"]);
    assert!(
        desc.contains("Last State:     Terminated") && desc.contains("Exit Code:    3"),
        "{desc}"
    );
    assert!(desc.contains("BackOff"), "describe shows no back-off event: {desc}");
}

/// kill -9 of the agent leaves every container running; a new agent adopts them: same pids,
/// no restart, and the pod can still be deleted.
#[test]
fn agent_kill9_keeps_containers_and_restart_readopts() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let mut agent = Agent::start(None);
    let image = agent.import_busybox();
    let script = "trap 'exit 0' TERM; while true; do sleep 0.2; done";
    agent.apply(&pod_yaml(
        "survivor",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("a", script), ("b", script)],
    ));
    let pod = agent.wait_running("survivor");
    let pids = [agent.container_pid(&pod, "a"), agent.container_pid(&pod, "b")];
    agent.kill9();
    std::thread::sleep(Duration::from_secs(2));
    assert!(pids.iter().all(|&p| alive(p)), "a container died with the agent");
    agent.spawn();
    let again = agent.wait_running("survivor");
    assert_eq!(again["metadata"]["uid"], pod["metadata"]["uid"]);
    std::thread::sleep(Duration::from_secs(2));
    let again = agent.pod("survivor");
    assert_eq!(
        [agent.container_pid(&again, "a"), agent.container_pid(&again, "b")],
        pids,
        "the new agent restarted a container"
    );
    assert!(again["status"]["containerStatuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .all(|c| c["restartCount"] == 0));
    agent.ok(&["delete", "pod", "survivor"]);
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "delete after re-adoption left a container"
    );
}

/// A simulated reboot (agent stopped, monitors and containers killed): the agent, started
/// again, brings the desired pods back.
#[test]
fn reboot_restores_desired_state() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let mut agent = Agent::start(None);
    let image = agent.import_busybox();
    agent.apply(&pod_yaml(
        "phoenix",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    ));
    let pod = agent.wait_running("phoenix");
    let pid = agent.container_pid(&pod, "app");
    agent.kill9();
    for m in agent.monitor_pids() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(m), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    moor_integration::poll_until(Duration::from_secs(5), "the container to die", || {
        (!alive(pid)).then_some(())
    });
    agent.spawn();
    let back = agent.wait_running("phoenix");
    assert_eq!(back["metadata"]["uid"], pod["metadata"]["uid"]);
    let new_pid = agent.container_pid(&back, "app");
    assert_ne!(new_pid, pid);
    assert!(alive(new_pid));
}

/// `exec -it` gives the command a terminal (run under script(1), which gives the client one).
#[test]
fn exec_with_a_terminal() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    agent.apply(&pod_yaml(
        "tty",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    ));
    agent.wait_running("tty");
    let inner = format!(
        "{} exec -it tty -- sh -c 'test -t 0 && test -t 1 && echo has-a-tty; exit 7'",
        moorlet_bin().display()
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("MOORLET_SOCKET", &agent.socket)
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("has-a-tty"),
        "exec -it: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(7), "exec's exit code is the command's");
}

/// Logs rotate (here at 4 KiB instead of 10 MiB, MOORLET_LOG_MAX_SIZE): at most 5 files, the
/// oldest lines dropped, `logs` reading the rotated files in order.
#[test]
fn logs_rotate_and_keep_five_files() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start_with_env(None, &[("MOORLET_LOG_MAX_SIZE", "4096")]);
    let image = agent.import_busybox();
    let script =
        "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; echo done; while true; do sleep 0.2; done";
    agent.apply(&pod_yaml(
        "loud",
        &image,
        "  terminationGracePeriodSeconds: 1\n",
        &[("app", script)],
    ));
    let pod = agent.wait_running("loud");
    moor_integration::poll_until(Duration::from_secs(20), "the last line", || {
        agent.ok(&["logs", "loud"]).ends_with("done\n").then_some(())
    });
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let dir = agent.logs.join(format!("default_loud_{uid}/app"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("log dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["0.log", "0.log.1", "0.log.2", "0.log.3", "0.log.4"]);
    for f in &files {
        let size = std::fs::metadata(dir.join(f)).expect("size").len();
        assert!(size <= 4096, "{f} has {size} bytes");
    }
    let logs = agent.ok(&["logs", "loud"]);
    let numbers: Vec<u32> = logs
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "lines out of order or missing"
    );
    assert!(
        numbers[0] > 0 && numbers.last() == Some(&1999),
        "want the newest lines only: {}..{:?}",
        numbers[0],
        numbers.last()
    );
}

/// lifecycle.stopSignal replaces SIGTERM.
#[test]
fn stop_signal_replaces_sigterm() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let mut yaml = pod_yaml(
        "usr1",
        &image,
        "  terminationGracePeriodSeconds: 10\n  os:\n    name: linux\n",
        &[(
            "app",
            "trap 'echo got-usr1; exit 0' USR1; trap '' TERM; while true; do sleep 0.1; done",
        )],
    );
    yaml.push_str("    lifecycle:\n      stopSignal: SIGUSR1\n");
    agent.apply(&yaml);
    let pod = agent.wait_running("usr1");
    let t = Instant::now();
    agent.ok(&["delete", "pod", "usr1"]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "delete waited {:?}: SIGUSR1 was not sent",
        t.elapsed()
    );
    assert!(log_file(&agent, &pod, "app", 0).contains("got-usr1"));
}

/// An agent killed in the middle of a delete finishes it when it starts again.
#[test]
fn delete_interrupted_by_kill9_finishes_after_restart() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let mut agent = Agent::start(None);
    let image = agent.import_busybox();
    agent.apply(&pod_yaml(
        "halfway",
        &image,
        "  terminationGracePeriodSeconds: 3\n",
        &[("app", "trap '' TERM; while true; do sleep 0.1; done")],
    ));
    let pod = agent.wait_running("halfway");
    let pid = agent.container_pid(&pod, "app");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let mut delete = Command::new(moorlet_bin())
        .args(["delete", "pod", "halfway"])
        .env("MOORLET_SOCKET", &agent.socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("delete");
    std::thread::sleep(Duration::from_millis(800));
    agent.kill9();
    let _ = delete.wait();
    agent.spawn();
    moor_integration::poll_until(Duration::from_secs(15), "the pod to be gone", || {
        (!agent.run(&["get", "pod", "halfway"]).status.success()).then_some(())
    });
    assert!(!alive(pid), "the container outlived the delete");
    assert_eq!(
        moor_integration::host::mounts_mentioning(&uid),
        Vec::<String>::new(),
        "mounts are left"
    );
    assert!(!agent.state.join("run").join(&uid).exists(), "the run dir is left");
}

/// An httpGet preStop handler: the GET reaches the pod (its server logs it) before SIGTERM.
#[test]
fn http_get_prestop() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let script = "mkdir -p /tmp/www && echo ok > /tmp/www/prestop; trap 'echo got-term; exit 0' TERM; \
                  busybox httpd -f -vv -p 8080 -h /tmp/www 2>&1 & wait";
    let mut yaml = pod_yaml(
        "web",
        &image,
        "  terminationGracePeriodSeconds: 5\n",
        &[("app", script)],
    );
    yaml.push_str("    ports:\n    - {name: http, containerPort: 8080}\n");
    yaml.push_str("    lifecycle:\n      preStop:\n        httpGet:\n          path: /prestop\n          port: http\n");
    agent.apply(&yaml);
    let pod = agent.wait_running("web");
    std::thread::sleep(Duration::from_millis(300));
    agent.ok(&["delete", "pod", "web"]);
    let log = log_file(&agent, &pod, "app", 0);
    let (hit, term) = (log.find("url:/prestop"), log.find("got-term"));
    assert!(
        hit.is_some() && term.is_some() && hit < term,
        "want the GET, then SIGTERM: {log}"
    );
}
