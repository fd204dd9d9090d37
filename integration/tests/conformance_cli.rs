//! runc 1.1 command-line conformance: `run --keep`, `exec --cgroup`, `delete --force`, `kill`
//! with signal 0 and `--all`, `list` formats, exec's exit code 255, and config.json inputs
//! that must fail cleanly (with the field named) before anything exists.

use moor_integration::{host, poll_for, poll_until, require_root, runtime_is, skip, Bundle, Ctx, TIMEOUT};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Asserts a failed create left nothing and said something about `needle` (case-insensitive).
#[track_caller]
fn assert_refused(ctx: &Ctx, b: &Bundle, id: &str, o: &moor_integration::Output, needle: &str) {
    assert!(!o.success(), "create unexpectedly succeeded: {o}");
    assert!(
        o.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "the error does not name {needle:?}: {o}"
    );
    ctx.assert_no_residue(id, b);
}

// ---- run --keep -------------------------------------------------------------------------

#[test]
fn run_keep_leaves_the_stopped_container_until_delete() {
    require_root!();
    let ctx = Ctx::new("run_keep");
    let (id, b) = ctx.bundle(&["sh", "-c", "exit 3"]);
    let o = ctx.run_container(&b, &id, &["--keep"]);
    assert_eq!(
        o.code(),
        Some(3),
        "run --keep must return the workload's exit code: {o}"
    );
    let st = ctx
        .state(&id)
        .unwrap_or_else(|| panic!("run --keep deleted the container: {o}"));
    assert_eq!(st["status"], "stopped", "{st}");
    assert!(
        !host::cgroup_dirs(&b.cgroups_path()).is_empty(),
        "run --keep removed the container's cgroup"
    );
    ctx.delete(&id).ok();
    assert!(ctx.state(&id).is_none(), "delete after run --keep left the container");
    assert!(
        host::cgroup_dirs(&b.cgroups_path()).is_empty(),
        "delete left the cgroup"
    );
}

// ---- exec --cgroup ----------------------------------------------------------------------

/// Lines of the host's /proc/PID/cgroup that name the container's cgroup.
fn container_cgroup_lines(pid: i32, cgroups_path: &str) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("{cgroups_path}/")) || l.ends_with(cgroups_path))
        .map(String::from)
        .collect()
}

/// A cgroup below `dir`; a v1 cpuset cgroup starts empty and takes no process until filled in.
fn make_sub_cgroup(dir: &Path, name: &str) {
    let sub = dir.join(name);
    fs::create_dir(&sub).unwrap();
    for f in ["cpuset.cpus", "cpuset.mems"] {
        // On cgroup v2 the files exist only where cpuset is enabled, and empty means inherit.
        if let (Ok(v), true) = (fs::read_to_string(dir.join(f)), sub.join(f).exists()) {
            fs::write(sub.join(f), v.trim()).unwrap();
        }
    }
}

/// Execs `sleep 1000` detached with the given extra flags; returns its host pid.
fn exec_sleep(ctx: &Ctx, id: &str, flags: &[&str]) -> i32 {
    let pid_file = ctx
        .work_dir()
        .join(format!("exec-{}.pid", flags.join("_").replace([':', ','], "-")));
    let pf = pid_file.display().to_string();
    let mut args = vec!["exec", "-d", "--pid-file", &pf];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[id, "sleep", "1000"]);
    ctx.run(&args).ok();
    fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap()
}

#[test]
fn exec_cgroup_joins_an_existing_sub_cgroup() {
    require_root!();
    let ctx = Ctx::new("exec_cgroup");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let cgp = b.cgroups_path();
    let dirs = host::cgroup_dirs(&cgp);
    assert!(!dirs.is_empty(), "the container has no cgroup");
    for d in &dirs {
        make_sub_cgroup(d, "sub");
    }

    // No controller prefix: the same sub-cgroup in every hierarchy.
    let pid = exec_sleep(&ctx, &id, &["--cgroup", "sub"]);
    let lines = container_cgroup_lines(pid, &cgp);
    assert!(!lines.is_empty(), "exec'd process is not in the container's cgroup");
    for l in &lines {
        assert!(
            l.ends_with(&format!("{cgp}/sub")),
            "not in the sub-cgroup: {l} (all: {lines:?})"
        );
    }

    // Per controller (cgroup v1 only): memory and pids in "sub2", everything else at the top.
    let v1 = |c: &str| Path::new("/sys/fs/cgroup").join(c).join(cgp.trim_start_matches('/'));
    if v1("memory").is_dir() && v1("pids").is_dir() {
        for c in ["memory", "pids"] {
            make_sub_cgroup(&v1(c), "sub2");
        }
        let pid = exec_sleep(&ctx, &id, &["--cgroup", "memory,pids:sub2"]);
        let lines = container_cgroup_lines(pid, &cgp);
        for l in &lines {
            let ctrls: Vec<&str> = l.split(':').nth(1).unwrap_or_default().split(',').collect();
            if ctrls.contains(&"memory") || ctrls.contains(&"pids") {
                assert!(l.ends_with(&format!("{cgp}/sub2")), "not in sub2: {l}");
            } else {
                assert!(l.ends_with(&cgp), "a controller not named moved too: {l}");
            }
        }
    } else {
        eprintln!("SKIP (part): per-controller --cgroup needs cgroup v1 memory and pids");
    }

    // Bad forms and a missing sub-cgroup fail as runc's do (exit 255), leaving no process.
    let init = ctx.pid(&id);
    let before = host::cgroup_pids(&cgp).len();
    for bad in ["a:b:c", "../..", "nosuch", "nosuchcontroller:sub"] {
        let o = ctx.run(&["exec", "--cgroup", bad, &id, "true"]);
        assert_eq!(o.code(), Some(255), "--cgroup {bad} must fail with 255: {o}");
    }
    let o = ctx.run(&["exec", "--cgroup", "sub", "--cgroup", "sub", &id, "true"]);
    assert_eq!(o.code(), Some(255), "two --cgroup without controller prefix: {o}");
    let settled = poll_for(Duration::from_secs(5), || {
        (host::cgroup_pids(&cgp).len() == before).then_some(())
    });
    assert!(
        settled.is_some(),
        "failed execs left processes: {:?}",
        host::cgroup_pids(&cgp)
    );
    assert!(host::pid_alive(init));
}

// ---- delete --force, kill ---------------------------------------------------------------

#[test]
fn delete_force_of_missing_container_is_silent_success() {
    require_root!();
    let ctx = Ctx::new("delete_force_missing");
    let o = ctx.run(&["delete", "--force", "moor-it-no-such-container"]);
    assert!(o.success(), "delete --force of a missing container must succeed: {o}");
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "must be silent: {o}");
    let o = ctx.run(&["delete", "moor-it-no-such-container"]).fails();
    assert!(o.stderr.contains("does not exist"), "{o}");
}

#[test]
fn kill_with_signal_zero_checks_the_container() {
    require_root!();
    let ctx = Ctx::new("kill_zero");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    ctx.kill(&id, "0").ok();
    assert_eq!(ctx.status(&id).as_deref(), Some("running"), "signal 0 must not harm");
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
    let o = ctx.kill(&id, "0").fails();
    assert!(o.stderr.contains("not running"), "{o}");
}

#[test]
fn kill_all_on_stopped_container_with_cgroup_succeeds() {
    require_root!();
    let ctx = Ctx::new("kill_all_stopped");
    let (id, b) = ctx.bundle(&["true"]);
    ctx.run_to_stop(&b, &id);
    assert!(
        !host::cgroup_dirs(&b.cgroups_path()).is_empty(),
        "test premise: the stopped container's cgroup still exists"
    );
    ctx.run(&["kill", "--all", &id, "KILL"]).ok();
    ctx.delete(&id).ok();
}

#[test]
fn delete_force_in_parallel_is_idempotent() {
    require_root!();
    let ctx = Ctx::new("delete_parallel");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let spawned: Vec<_> = (0..10)
        .map(|_| ctx.spawn_with(&["delete", "--force", &id], |_| {}))
        .collect();
    for (child, out) in spawned {
        let o = ctx.wait_output(child, out, TIMEOUT);
        assert!(o.success(), "a concurrent delete --force failed: {o}");
    }
    assert!(ctx.state(&id).is_none());
    assert!(host::cgroup_dirs(&b.cgroups_path()).is_empty(), "cgroup left");
}

#[test]
fn delete_keeps_running_container_whose_state_is_unreadable() {
    require_root!();
    let ctx = Ctx::new("delete_bad_state");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let init = ctx.pid(&id);
    let state_file = ctx.root.join(&id).join("state.json");
    let good = fs::read(&state_file).expect("runtimes keep <root>/<id>/state.json");
    fs::write(&state_file, "garbage").unwrap();
    for args in [vec!["delete", &id], vec!["delete", "--force", &id]] {
        let o = ctx.run(&args);
        assert!(!o.success(), "delete with unreadable state must fail: {o}");
        assert!(ctx.root.join(&id).is_dir(), "the container's record was removed: {o}");
        assert!(
            host::pid_alive(init),
            "the running container was orphaned or killed: {o}"
        );
    }
    fs::write(&state_file, good).unwrap();
    ctx.delete_force(&id).ok();
    poll_until(TIMEOUT, "init gone", || (!host::pid_alive(init)).then_some(()));
}

// ---- list -------------------------------------------------------------------------------

/// Go's text/tabwriter as runc's list uses it: minwidth 12, tabwidth 1, padding 3, spaces.
fn tabwriter(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols - 1) {
            widths[i] = widths[i].max(c.chars().count() + 3).max(12);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn list_table_is_aligned_like_runc() {
    require_root!();
    let ctx = Ctx::new("list_table");
    let (id1, b1) = ctx.bundle(&["sleep", "1000"]);
    let (id2, b2) = ctx.bundle(&["true"]);
    ctx.create(&b1, &id1, &[]).ok();
    ctx.run_to_stop(&b2, &id2);
    let j: Value = serde_json::from_str(&ctx.run(&["list", "--format", "json"]).ok().stdout).unwrap();
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for e in j.as_array().expect("array") {
        rows.push(
            ["id", "pid", "status", "bundle", "created", "owner"]
                .iter()
                .map(|k| match &e[*k] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect(),
        );
    }
    let t = ctx.run(&["list"]).ok();
    assert_eq!(t.stdout, tabwriter(&rows), "list table differs from runc's layout: {t}");
}

#[test]
fn list_json_and_quiet_like_runc() {
    require_root!();
    let ctx = Ctx::new("list_json");
    let empty = ctx.run(&["list", "--format", "json"]).ok();
    assert_eq!(empty.stdout, "null\n", "runc prints null for no containers: {empty}");
    let empty = ctx.run(&["list", "-q"]).ok();
    assert_eq!(empty.stdout, "", "{empty}");

    // Created in reverse name order: runc lists by id.
    let (a, mut ba) = ctx.bundle(&["sleep", "1000"]);
    let (z, bz) = ctx.bundle(&["sleep", "1000"]);
    ba.set("/annotations", json!({"org.moor.test": "yes"}));
    ctx.create(&bz, &z, &[]).ok();
    ctx.create(&ba, &a, &[]).ok();
    let q = ctx.run(&["list", "-q"]).ok();
    assert_eq!(q.stdout, format!("{a}\n{z}\n"), "{q}");
    // -q wins over --format, as in runc.
    ctx.run(&["list", "-q", "--format", "json"]).ok();

    let j = ctx.run(&["list", "--format", "json"]).ok();
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), z.as_str()], "{j}");
    // Field order as runc's (Go struct order): annotations come before owner.
    let first = &j.stdout[..j.stdout.rfind("\"ociVersion\"").unwrap_or_default()];
    let keys = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
        "owner",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            first
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no {k}: {j}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "fields out of runc's order: {j}");
    let bad = ctx.run(&["list", "--format", "xml"]).fails();
    assert!(bad.stderr.contains("format"), "{bad}");
}

// ---- exec exit codes --------------------------------------------------------------------

#[test]
fn exec_failure_in_the_runtime_exits_255() {
    require_root!();
    let ctx = Ctx::new("exec_255");
    let o = ctx.run(&["exec", "moor-it-no-such-container", "true"]);
    assert_eq!(o.code(), Some(255), "{o}");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let o = ctx.run(&["exec", &id, "/no/such/binary"]);
    assert_eq!(o.code(), Some(255), "{o}");
    let o = ctx.run(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(o.code(), Some(7), "the workload's own code is passed through: {o}");
    let o = ctx.run(&["exec", &id, "sh", "-c", "exit 1"]);
    assert_eq!(o.code(), Some(1), "{o}");
}

// ---- config.json validation -------------------------------------------------------------

#[test]
fn oci_version_must_be_semver() {
    require_root!();
    if runtime_is("runc") {
        skip!("runc 1.1.5 does not check ociVersion (the runtime-spec requires SemVer 2.0.0)");
    }
    let ctx = Ctx::new("oci_version");
    for bad in ["1.0", "foo", "01.0.0", "1.0.0-", "1.0.0+"] {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set("/ociVersion", json!(bad));
        let o = ctx.create(&b, &id, &[]);
        assert_refused(&ctx, &b, &id, &o, "ociVersion");
    }
    for good in ["1.0.2-dev", "1.2.0", "1.0.0-rc.1+build.5"] {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set("/ociVersion", json!(good));
        ctx.create(&b, &id, &[]).ok();
        ctx.delete_force(&id).ok();
    }
}

#[test]
fn kernel_memory_limits_are_warned_about_and_ignored() {
    require_root!();
    let ctx = Ctx::new("kmem");
    let log = ctx.enable_json_log();
    for (field, value) in [("kernel", 100 << 20), ("kernelTCP", 50 << 20)] {
        let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
        b.set(&format!("/linux/resources/memory/{field}"), json!(value));
        ctx.create(&b, &id, &[]).ok();
        ctx.start(&id).ok();
        ctx.wait_status(&id, "running");
        ctx.delete_force(&id).ok();
    }
    let text = fs::read_to_string(&log).unwrap_or_default();
    let warned = text.lines().any(|l| {
        let v: Value = serde_json::from_str(l).unwrap_or_default();
        v["level"] == "warning" && v["msg"].as_str().is_some_and(|m| m.to_lowercase().contains("kernel"))
    });
    assert!(
        warned,
        "no warning about the ignored kernel memory settings in the log:\n{text}"
    );
}

#[test]
fn blkio_leaf_weights_without_their_files_are_refused_naming_the_file() {
    require_root!();
    let root = Path::new("/sys/fs/cgroup/blkio");
    if !root.is_dir() {
        skip!("no cgroup v1 blkio hierarchy");
    }
    let ctx = Ctx::new("leaf_weight");
    for (file, pointer, value) in [
        (
            "blkio.leaf_weight",
            "/linux/resources/blockIO",
            json!({"leafWeight": 500}),
        ),
        (
            "blkio.leaf_weight_device",
            "/linux/resources/blockIO",
            json!({"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 500}]}),
        ),
    ] {
        if root.join(file).exists() {
            eprintln!("SKIP (part): this kernel has {file}");
            continue;
        }
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set(pointer, value);
        let o = ctx.create(&b, &id, &[]);
        assert_refused(&ctx, &b, &id, &o, file);
    }
}

#[test]
fn net_cls_and_hugetlb_without_their_controller_are_refused() {
    require_root!();
    let ctx = Ctx::new("missing_ctrl");
    if !Path::new("/sys/fs/cgroup/net_cls").exists() && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set("/linux/resources/network", json!({"classID": 1048577}));
        let o = ctx.create(&b, &id, &[]);
        assert_refused(&ctx, &b, &id, &o, "net_cls");
    } else {
        eprintln!("SKIP (part): net_cls is available (or the host is pure cgroup v2)");
    }
    let unified_has_hugetlb = fs::read_to_string("/sys/fs/cgroup/unified/cgroup.subtree_control")
        .unwrap_or_default()
        .contains("hugetlb");
    if Path::new("/sys/fs/cgroup/unified").is_dir()
        && !Path::new("/sys/fs/cgroup/hugetlb").exists()
        && !unified_has_hugetlb
    {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set(
            "/linux/resources/hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 2097152}]),
        );
        let o = ctx.create(&b, &id, &[]);
        assert_refused(&ctx, &b, &id, &o, "hugetlb");
    } else {
        eprintln!("SKIP (part): hugetlb is usable here");
    }
}

fn lsm_enabled(which: &str) -> bool {
    match which {
        "apparmor" => fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y')),
        _ => Path::new("/sys/fs/selinux/enforce").exists(),
    }
}

#[test]
fn lsm_labels_without_the_lsm_are_errors() {
    require_root!();
    let ctx = Ctx::new("lsm_off");
    let cases = [
        ("apparmor", "/process/apparmorProfile", "moor-it-profile"),
        ("selinux", "/process/selinuxLabel", "system_u:system_r:container_t:s0"),
    ];
    for (lsm, pointer, value) in cases {
        if lsm_enabled(lsm) {
            eprintln!("SKIP (part): {lsm} is enabled on this host");
            continue;
        }
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set(pointer, json!(value));
        let o = ctx.create(&b, &id, &[]);
        assert_refused(&ctx, &b, &id, &o, lsm);
    }
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    for (lsm, flag) in [("apparmor", "--apparmor"), ("selinux", "--process-label")] {
        if lsm_enabled(lsm) {
            continue;
        }
        let o = ctx.run(&["exec", flag, "moor-it-label", &id, "true"]);
        assert_eq!(o.code(), Some(255), "exec {flag} without {lsm}: {o}");
    }
}

#[test]
fn root_must_be_an_object_with_a_path() {
    require_root!();
    let ctx = Ctx::new("root_shape");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/root", json!([]));
    let o = ctx.create(&b, &id, &[]);
    assert_refused(&ctx, &b, &id, &o, "root");
    if runtime_is("runc") {
        skip!("runc 1.1.5 takes a missing root.path as the bundle itself (the runtime-spec requires it)");
    }
    for root in [json!({}), json!({"path": ""}), json!({"readonly": true})] {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set("/root", root);
        let o = ctx.create(&b, &id, &[]);
        assert_refused(&ctx, &b, &id, &o, "root.path");
    }
}

#[test]
fn root_path_resolving_to_the_host_root_is_refused() {
    require_root!();
    let ctx = Ctx::new("root_slash");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/root/path", json!("/"));
    let o = ctx.create(&b, &id, &[]);
    // runc fails later, on a mount, without naming the field.
    let needle = if runtime_is("runc") { "" } else { "root.path" };
    assert_refused(&ctx, &b, &id, &o, needle);

    let (id, mut b) = ctx.bundle(&["true"]);
    std::os::unix::fs::symlink("/", b.dir.join("hostroot")).unwrap();
    b.set("/root/path", json!("hostroot"));
    let o = ctx.create(&b, &id, &[]);
    assert_refused(&ctx, &b, &id, &o, "root");
}

#[test]
fn nul_bytes_are_refused_naming_the_field() {
    require_root!();
    let ctx = Ctx::new("nul_bytes");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/process/cwd", json!("/tm\u{0}p"));
    let o = ctx.create(&b, &id, &[]);
    let needle = if runtime_is("runc") { "" } else { "process.cwd" };
    assert_refused(&ctx, &b, &id, &o, needle);
    if runtime_is("runc") {
        skip!("runc 1.1.5 creates a container whose process.args hold a NUL byte; it exits 1 silently at start");
    }
    let (id, b) = ctx.bundle(&["sh", "-c", "echo a\u{0}b"]);
    let o = ctx.create(&b, &id, &[]);
    assert_refused(&ctx, &b, &id, &o, "process.args[2]");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/hostname", json!("a\u{0}b"));
    let o = ctx.create(&b, &id, &[]);
    assert_refused(&ctx, &b, &id, &o, "hostname");

    // The same for `exec --process`.
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    let process = ctx.work_dir().join("process.json");
    let p = json!({"args": ["sh", "-c", "echo a\u{0}b"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
    fs::write(&process, p.to_string()).unwrap();
    let o = ctx.run(&["exec", "--process", &process.display().to_string(), &id]);
    assert_eq!(o.code(), Some(255), "{o}");
    assert!(o.stderr.contains("args[2]"), "the error does not name args[2]: {o}");
}

/// `create` on a bundle whose config.json was replaced by hand (not by [`Bundle::save`]).
fn create_raw(ctx: &Ctx, b: &Bundle, id: &str) -> moor_integration::Output {
    let bundle = b.dir.display().to_string();
    ctx.run(&["create", "--bundle", &bundle, id])
}

#[test]
fn config_json_that_is_not_a_bounded_regular_file_is_refused() {
    require_root!();
    let ctx = Ctx::new("config_file");
    let (id, b) = ctx.bundle(&["true"]);
    let config = b.dir.join("config.json");
    fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let started = Instant::now();
    let o = create_raw(&ctx, &b, &id);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "reading /dev/zero took too long"
    );
    // runc's error is the JSON decoder's, without the file's name.
    let needle = if runtime_is("runc") { "" } else { "config.json" };
    assert_refused(&ctx, &b, &id, &o, needle);
    if runtime_is("runc") {
        skip!("runc 1.1.5 blocks on a FIFO config.json and parses any size");
    }

    let (id, b) = ctx.bundle(&["true"]);
    let config = b.dir.join("config.json");
    fs::remove_file(&config).unwrap();
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let o = create_raw(&ctx, &b, &id);
    assert_refused(&ctx, &b, &id, &o, "config.json");

    // A sparse file far larger than any real config: refused by size, without reading it.
    let (id, b) = ctx.bundle(&["true"]);
    let f = fs::File::create(b.dir.join("config.json")).unwrap();
    f.set_len(1 << 40).unwrap();
    let started = Instant::now();
    let o = create_raw(&ctx, &b, &id);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a huge config.json was read"
    );
    assert_refused(&ctx, &b, &id, &o, "config.json");
}
