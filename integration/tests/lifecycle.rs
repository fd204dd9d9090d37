//! Container lifecycle through the CLI: create/start/state/kill/delete/list/run.

use moor_integration::{host, poll_until, require_root, runtime_is, Ctx, TIMEOUT};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn create_gives_created_state_with_runc_fields_and_pid_file() {
    require_root!();
    let ctx = Ctx::new("create_state");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set("/annotations", serde_json::json!({"org.moor.test": "yes"}));
    let pid_file = ctx.work_dir().join("init.pid");
    let pf = pid_file.display().to_string();
    ctx.create(&b, &id, &["--pid-file", &pf]).ok();

    let st = ctx.state_ok(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0, "pid must be > 0: {st}");
    assert!(
        host::pid_alive(i32::try_from(pid).unwrap()),
        "init {pid} not alive while created"
    );
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ] {
        assert!(st.get(k).is_some(), "state lacks {k:?}: {st}");
    }
    assert_eq!(
        st["annotations"]["org.moor.test"], "yes",
        "annotations not reported: {st}"
    );
    let bundle = fs::canonicalize(b.path()).unwrap();
    assert_eq!(st["bundle"].as_str().unwrap(), bundle.to_str().unwrap());
    assert_eq!(st["rootfs"].as_str().unwrap(), bundle.join("rootfs").to_str().unwrap());
    assert!(
        st["created"].as_str().unwrap().contains('T'),
        "created is not RFC 3339: {st}"
    );

    let text = fs::read(&pid_file).expect("pid file written");
    assert!(
        !text.is_empty() && text.iter().all(u8::is_ascii_digit),
        "pid file must hold bare digits, no newline: {:?}",
        String::from_utf8_lossy(&text)
    );
    assert_eq!(String::from_utf8(text).unwrap().parse::<i64>().unwrap(), pid);
}

#[test]
fn start_runs_workload_then_stopped_then_delete_removes() {
    require_root!();
    let ctx = Ctx::new("start_delete");
    let (id, mut b) = ctx.bundle(&[]);
    let out = b.bind_out_dir("/out");
    b.set_sh("echo hello-from-container; echo done > /out/marker; sleep 0.5");
    let c = ctx.create(&b, &id, &[]).ok();
    assert!(!out.join("marker").exists(), "workload ran before start");
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));
    ctx.start(&id).ok();
    // Running (or already stopped if very fast).
    let s = ctx.status(&id).unwrap();
    assert!(s == "running" || s == "stopped", "status after start: {s}");
    ctx.wait_status(&id, "stopped");
    assert_eq!(fs::read_to_string(out.join("marker")).unwrap(), "done\n");
    assert!(
        c.stdout_now().contains("hello-from-container"),
        "stdout: {}",
        c.stdout_now()
    );
    ctx.delete(&id).ok();
    let st = ctx.run(&["state", &id]).fails();
    assert!(st.stderr.contains("does not exist"), "{st}");
    assert!(
        host::cgroup_dirs(&b.cgroups_path()).is_empty(),
        "cgroup left after delete"
    );
}

#[test]
fn status_running_while_workload_runs() {
    require_root!();
    let ctx = Ctx::new("running");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let pid = ctx.pid(&id);
    assert!(host::pid_alive(pid));
    assert!(
        fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .starts_with("sleep\0"),
        "init is not the workload"
    );
}

#[test]
fn create_existing_id_fails() {
    require_root!();
    let ctx = Ctx::new("exists");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create(&b, &id, &[]).ok();
    let o = ctx.create(&b, &id, &[]).fails();
    assert!(o.stderr.contains("already exists"), "{o}");
    // The first one is untouched.
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));
}

#[test]
fn commands_on_missing_container_say_does_not_exist() {
    require_root!();
    let ctx = Ctx::new("missing");
    let id = ctx.new_id();
    for args in [
        vec!["start", &id],
        vec!["state", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let o = ctx.run(&args).fails();
        assert!(o.stderr.contains("does not exist"), "{o}");
    }
}

#[test]
fn kill_stopped_container_fails_not_running() {
    require_root!();
    let ctx = Ctx::new("kill_stopped");
    let (id, b) = ctx.bundle(&["true"]);
    ctx.run_to_stop(&b, &id);
    let o = ctx.kill(&id, "KILL").fails();
    // containerd matches these substrings (the second case-insensitively); runc says
    // "container not running", crun "No such process".
    let err = o.stderr.to_lowercase();
    assert!(
        err.contains("container not running") || err.contains("no such process"),
        "{o}"
    );
}

/// A workload (pid 1) that traps a signal and writes its name to /out/sig.
fn trap_script(sig: &str) -> String {
    format!(
        "trap 'echo {sig} > /out/sig; exit 0' {sig}; echo ready > /out/ready; \
         while :; do sleep 0.05; done"
    )
}

fn signal_case(name: &str, sig_arg: Option<&str>, trapped: &str) {
    let ctx = Ctx::new(name);
    let (id, mut b) = ctx.bundle(&[]);
    let out = b.bind_out_dir("/out");
    b.set_sh(&trap_script(trapped));
    ctx.create_start(&b, &id);
    poll_until(TIMEOUT, "workload ready", || out.join("ready").exists().then_some(()));
    let mut args = vec!["kill", id.as_str()];
    if let Some(s) = sig_arg {
        args.push(s);
    }
    ctx.run(&args).ok();
    let got = poll_until(TIMEOUT, "signal recorded", || {
        fs::read_to_string(out.join("sig")).ok().filter(|s| s.ends_with('\n'))
    });
    assert_eq!(got.trim(), trapped);
    ctx.wait_status(&id, "stopped");
}

#[test]
fn kill_default_is_sigterm() {
    require_root!();
    signal_case("kill_default", None, "TERM");
}

#[test]
fn kill_by_name_without_sig_prefix() {
    require_root!();
    signal_case("kill_usr1", Some("USR1"), "USR1");
}

#[test]
fn kill_by_name_with_sig_prefix() {
    require_root!();
    signal_case("kill_sigusr2", Some("SIGUSR2"), "USR2");
}

#[test]
fn kill_by_number() {
    require_root!();
    signal_case("kill_num", Some("10"), "USR1");
}

#[test]
fn kill_sigkill_stops_untrappable_init() {
    require_root!();
    for sig in ["KILL", "SIGKILL", "9"] {
        let ctx = Ctx::new("kill_kill");
        let (id, b) = ctx.bundle(&["sleep", "1000"]);
        ctx.create_start(&b, &id);
        ctx.kill(&id, sig).ok();
        ctx.wait_status(&id, "stopped");
    }
}

#[test]
fn kill_all_reaches_every_process_without_pid_namespace() {
    require_root!();
    let ctx = Ctx::new("kill_all");
    let (id, mut b) = ctx.bundle(&[]);
    let out = b.bind_out_dir("/out");
    // Without a pid namespace, killing init does not kill the other processes: only --all does.
    b.remove_namespace("pid");
    b.set_sh("sleep 1000 & echo $! > /out/child; wait");
    ctx.create_start(&b, &id);
    let child: i32 = poll_until(TIMEOUT, "child pid", || {
        fs::read_to_string(out.join("child"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    let init = ctx.pid(&id);
    assert!(host::pid_alive(child));
    ctx.run(&["kill", "--all", &id, "KILL"]).ok();
    poll_until(TIMEOUT, "both processes gone", || {
        (!host::pid_alive(child) && !host::pid_alive(init)).then_some(())
    });
}

#[test]
fn delete_running_needs_force() {
    require_root!();
    let ctx = Ctx::new("delete_force");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let pid = ctx.pid(&id);
    ctx.delete(&id).fails();
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
    ctx.delete_force(&id).ok();
    assert!(ctx.state(&id).is_none());
    poll_until(TIMEOUT, "init gone", || (!host::pid_alive(pid)).then_some(()));
    assert!(host::cgroup_dirs(&b.cgroups_path()).is_empty());
}

#[test]
fn delete_force_of_created_container() {
    require_root!();
    let ctx = Ctx::new("delete_created");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create(&b, &id, &[]).ok();
    let pid = ctx.pid(&id);
    ctx.delete_force(&id).ok();
    assert!(ctx.state(&id).is_none());
    poll_until(TIMEOUT, "init gone", || (!host::pid_alive(pid)).then_some(()));
}

#[test]
fn list_table_json_and_quiet() {
    require_root!();
    let ctx = Ctx::new("list");
    let (id1, b1) = ctx.bundle(&["sleep", "1000"]);
    let (id2, b2) = ctx.bundle(&["sleep", "1000"]);
    ctx.create(&b1, &id1, &[]).ok();
    ctx.create_start(&b2, &id2);
    ctx.wait_status(&id2, "running");

    let t = ctx.run(&["list"]).ok();
    let mut lines = t.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], "{t}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let row = |id: &str| rows.iter().find(|r| r[0] == id).cloned();
    assert_eq!(row(&id1).expect("id1 listed")[2], "created");
    assert_eq!(row(&id2).expect("id2 listed")[2], "running");

    let q = ctx.run(&["list", "-q"]).ok();
    let ids: BTreeSet<&str> = q.stdout.lines().collect();
    assert_eq!(ids, BTreeSet::from([id1.as_str(), id2.as_str()]), "{q}");

    let j = ctx.run(&["list", "--format", "json"]).ok();
    let v: Value = serde_json::from_str(&j.stdout).unwrap_or_else(|e| panic!("{e}: {j}"));
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    for e in arr {
        for k in [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
        ] {
            assert!(e.get(k).is_some(), "list entry lacks {k}: {e}");
        }
    }
}

#[test]
fn list_empty_root() {
    require_root!();
    let ctx = Ctx::new("list_empty");
    let j = ctx.run(&["list", "--format", "json"]).ok();
    let v: Value = serde_json::from_str(j.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {j}"));
    // runc prints `null` for an empty list; an empty array is as good.
    assert!(v.is_null() || v.as_array().is_some_and(|a| a.is_empty()), "{v}");
}

#[test]
fn run_foreground_returns_exit_code_and_deletes() {
    require_root!();
    let ctx = Ctx::new("run_exit");
    let (id, b) = ctx.bundle(&["sh", "-c", "echo out-of-run; exit 3"]);
    let o = ctx.run_container(&b, &id, &[]);
    assert_eq!(o.code(), Some(3), "{o}");
    assert!(o.stdout.contains("out-of-run"), "{o}");
    assert!(ctx.state(&id).is_none(), "run must delete the container");
    assert!(host::cgroup_dirs(&b.cgroups_path()).is_empty());
}

#[test]
fn run_foreground_zero_exit() {
    require_root!();
    let ctx = Ctx::new("run_zero");
    let (id, b) = ctx.bundle(&["true"]);
    let o = ctx.run_container(&b, &id, &[]);
    assert_eq!(o.code(), Some(0), "{o}");
}

#[test]
fn run_foreground_killed_by_signal_exits_128_plus_n() {
    require_root!();
    let ctx = Ctx::new("run_signal");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    let (child, out) = ctx.spawn_run(&b, &id, &[]);
    ctx.wait_status(&id, "running");
    ctx.kill(&id, "KILL").ok();
    let o = ctx.wait_output(child, out, TIMEOUT);
    assert_eq!(o.code(), Some(137), "{o}");
    assert!(ctx.state(&id).is_none());
}

#[test]
fn run_detach_leaves_running_container() {
    require_root!();
    let ctx = Ctx::new("run_detach");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    let o = ctx.run_container(&b, &id, &["--detach"]);
    assert!(o.success(), "{o}");
    ctx.wait_status(&id, "running");
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
}

/// Runs the same bundle under a second runtime and compares the field names.
#[test]
fn state_and_list_fields_match_runc() {
    require_root!();
    let runc = std::path::PathBuf::from("/usr/sbin/runc");
    if runtime_is("runc") || !runc.exists() {
        moor_integration::skip!("needs a non-runc RUNTIME and /usr/sbin/runc to compare with");
    }
    let fields = |ctx: &Ctx| {
        let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
        b.set("/annotations", serde_json::json!({"a": "b"}));
        ctx.create(&b, &id, &[]).ok();
        let st = ctx.state_ok(&id);
        let l: Value = serde_json::from_str(&ctx.run(&["list", "--format", "json"]).ok().stdout).unwrap();
        let ctx_keys = (keys(&st), keys(&l[0]));
        ctx.delete_force(&id).ok();
        ctx_keys
    };
    let ours = fields(&Ctx::new("fields_ours"));
    let theirs = fields(&Ctx::with_runtime("fields_runc", runc));
    assert_eq!(ours.0, theirs.0, "state field names differ from runc");
    assert_eq!(ours.1, theirs.1, "list --format json field names differ from runc");
}

#[test]
fn start_twice_fails() {
    require_root!();
    let ctx = Ctx::new("start_twice");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.start(&id).fails();
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
}
