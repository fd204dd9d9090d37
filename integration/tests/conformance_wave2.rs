//! Conformance with runc 1.1.5, second wave: behaviours found by runc's own bats tests and
//! youki's contest where moor differed (--no-pivot, device access strings, bind sources in a
//! user namespace, seccomp argument conditions, `spec`'s defaults, exec --cgroup, ...). Each is
//! observed as a user would: from inside the container or in the runtime's output.

use moor_integration::{require_root, runtime_is, skip, Bundle, Ctx, Output};
use serde_json::json;

/// `run` (foreground, deleted afterwards) of a bundle; returns its output.
fn run_fg(ctx: &Ctx, b: &Bundle, id: &str, extra: &[&str]) -> Output {
    ctx.run_container(b, id, extra)
}

// ---------------------------------------------------------------------------------------------
// --no-pivot

/// With --no-pivot the container is only chrooted into a rootfs moved onto "/", so the host's
/// procfs stays in its mount namespace; while a full procfs is reachable there, the kernel lets a
/// nested user namespace mount a fresh, unmasked /proc. runc detaches every full proc and sysfs
/// mount outside the rootfs before the move; the nested mount must then be refused.
#[test]
fn no_pivot_hides_host_proc_from_nested_userns() {
    require_root!();
    let ctx = Ctx::new("nopivot-proc");
    let (id, mut b) = ctx.bundle(&[
        "/bin/busybox",
        "unshare",
        "-mrpf",
        "/bin/sh",
        "-c",
        "mount -t proc none /proc && echo MOUNTED",
    ]);
    for set in ["bounding", "permitted", "effective"] {
        b.at(&format!("/process/capabilities/{set}"))
            .as_array_mut()
            .expect("caps array")
            .push(json!("CAP_SETFCAP"));
    }
    b.save();
    let out = run_fg(&ctx, &b, &id, &["--no-pivot"]);
    let all = format!("{}{}", out.stdout_now(), out.stderr_now());
    assert!(
        !all.contains("MOUNTED"),
        "a nested userns mounted a fresh procfs under --no-pivot:\n{out}"
    );
    assert!(
        all.contains("ermission denied"),
        "expected the proc mount to be refused (EPERM):\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// linux.resources.devices access letters

/// runc accepts device rules whose access has letters other than r, w and m (its own
/// update.bats uses "rwa") and drops those letters; the r and w of such a rule still apply.
#[test]
fn device_rule_access_with_unknown_letter_is_accepted() {
    require_root!();
    let ctx = Ctx::new("dev-rwa");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "exec 3<>/dev/fuse && echo OPENED"]);
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]),
    );
    b.set(
        "/linux/resources/devices",
        json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwa"}
        ]),
    );
    b.save();
    let out = run_fg(&ctx, &b, &id, &[]);
    assert!(out.success(), "a device rule with access \"rwa\" was refused: {out}");
    assert!(
        out.stdout_now().contains("OPENED"),
        "rw access of the \"rwa\" rule not granted: {out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bind sources and user namespaces

/// runc opens bind mount sources before it joins the container's user namespace, so a source
/// under a directory only the host's root may enter (0700) is still bound (runc's userns.bats
/// "userns with 2 inaccessible mounts").
#[test]
fn bind_sources_inaccessible_to_the_userns_are_bound() {
    require_root!();
    let ctx = Ctx::new("userns-bind-src");
    let host = moor_integration::bundle::temp_dir("userns-src");
    ctx.own_dir(host.clone());
    let mut mounts = Vec::new();
    for n in 1..=2 {
        let locked = host.join(format!("locked-{n}"));
        std::fs::create_dir_all(locked.join("dir")).expect("mkdir");
        std::fs::write(locked.join("dir/foo.txt"), "x").expect("write");
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
        mounts.push(json!({"destination": format!("/mnt/m{n}"), "type": "bind",
                           "source": locked.join("dir"), "options": ["bind"]}));
    }
    let (id, mut b) = ctx.bundle(&[
        "sh",
        "-c",
        "stat /mnt/m1/foo.txt /mnt/m2/foo.txt >/dev/null && echo BOUND",
    ]);
    b.map_user_namespace(100000, 65536);
    for n in 1..=2 {
        // The container's root cannot create directories in the host-owned rootfs.
        std::fs::create_dir_all(b.rootfs().join(format!("mnt/m{n}"))).expect("mkdir in rootfs");
    }
    for m in mounts {
        b.push_mount(m);
    }
    b.save();
    let out = run_fg(&ctx, &b, &id, &[]);
    assert!(
        out.success(),
        "binds of 0700-guarded sources failed in a user namespace: {out}"
    );
    assert!(out.stdout_now().contains("BOUND"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Seccomp argument conditions

/// runc 1.1 splits a seccomp rule that names one argument index more than once into one rule
/// per condition, so those conditions are ORed (runc's seccomp.bats "-ENOSYS handling" profile
/// relies on it); conditions on distinct indexes stay ANDed.
#[test]
fn seccomp_conditions_on_one_argument_are_ored() {
    require_root!();
    let ctx = Ctx::new("seccomp-or");
    let (id, mut b) = ctx.bundle(&[
        "sh",
        "-c",
        "trap '' USR1 USR2 TERM; for s in USR1 USR2 TERM; do kill -$s $$ 2>/dev/null && echo sent-$s || echo refused-$s; done",
    ]);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["kill"], "action": "SCMP_ACT_ERRNO",
                "args": [
                    {"index": 1, "value": libc::SIGUSR1, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": libc::SIGUSR2, "op": "SCMP_CMP_EQ"}
                ]
            }]
        }),
    );
    b.save();
    let out = run_fg(&ctx, &b, &id, &[]);
    let stdout = out.stdout_now();
    assert!(out.success(), "{out}");
    for want in ["refused-USR1", "refused-USR2", "sent-TERM"] {
        assert!(stdout.contains(want), "want {want}:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hook failures

/// A startContainer hook runs under the container's seccomp filter; when the filter kills it,
/// the error says so in runc's words ("error running hook", "bad system call"), which runc's
/// seccomp.bats matches.
#[test]
fn hook_killed_by_seccomp_says_bad_system_call() {
    require_root!();
    let ctx = Ctx::new("hook-sigsys");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
        }),
    );
    b.set(
        "/hooks",
        json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/hook-dir"]}]}),
    );
    b.save();
    let out = run_fg(&ctx, &b, &id, &[]);
    assert!(!out.success(), "a hook killed by seccomp must fail the run: {out}");
    let err = out.stderr_now();
    assert!(err.contains("error running hook"), "{out}");
    assert!(err.contains("bad system call"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// `spec`

/// The namespaces and capability sets of `spec` (and `spec --rootless`) are runc 1.1's: no
/// cgroup namespace (runc's delete.bats and cgroups.bats add one themselves, and one given twice
/// is an error; its hybrid exec test expects the host's cgroup paths) and an ambient set.
#[test]
fn spec_namespaces_and_capabilities_match_runc() {
    let ctx = Ctx::new("spec-ns");
    for (flags, want) in [
        (&[][..], &["pid", "network", "ipc", "uts", "mount"][..]),
        (&["--rootless"][..], &["pid", "ipc", "uts", "mount", "user"][..]),
    ] {
        let dir = moor_integration::bundle::temp_dir("spec-ns");
        ctx.own_dir(dir.clone());
        let d = dir.display().to_string();
        let mut args = vec!["spec", "--bundle", &d];
        args.extend(flags);
        ctx.run(&args).ok();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config.json")).expect("JSON");
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert_eq!(ns, want, "spec {flags:?}");
        let caps = &v["process"]["capabilities"];
        assert_eq!(caps["ambient"], caps["bounding"], "spec {flags:?}: ambient set");
    }
}

// ---------------------------------------------------------------------------------------------
// exec --cgroup errors

/// `exec --cgroup` refusals are worded as runc's, which its exec.bats matches: a path leaving
/// the container's cgroup "is not a sub cgroup path"; a missing sub-cgroup fails "adding pid"
/// with the cgroup.procs path and a lower-case "no such file".
#[test]
fn exec_cgroup_errors_use_runc_wording() {
    require_root!();
    let ctx = Ctx::new("exec-cg-words");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let o = ctx.run(&["exec", "--cgroup", "..", &id, "true"]);
    assert!(!o.success(), "{o}");
    assert!(o.stderr_now().contains(" .. is not a sub cgroup path"), "{o}");
    let o = ctx.run(&["exec", "--cgroup", "nonexistent", &id, "true"]);
    assert!(!o.success(), "{o}");
    let err = o.stderr_now();
    assert!(
        err.contains(" adding pid ") && err.contains("/nonexistent/cgroup.procs: no such file "),
        "{o}"
    );
}

// ---------------------------------------------------------------------------------------------
// No mount namespace

/// A bundle without a mount namespace (nor what needs one) running `script`, run inside
/// `unshare -m --propagation private` so that nothing reaches the test's own namespace; after
/// the runtime, `after` runs in that same namespace. Returns (success, stdout, stderr).
fn run_without_mount_ns(ctx: &Ctx, script: &str, readonly: bool, after: &str) -> (bool, String, String) {
    let (id, mut b) = ctx.bundle(&["sh", "-c", script]);
    b.remove_namespace("mount");
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    b.set("/root/readonly", json!(readonly));
    b.save();
    let bundle = b.dir.display().to_string();
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(format!("\"$@\" && {after}"))
        .arg("sh")
        .arg(&ctx.runtime)
        .args(ctx.argv(&["run", "--bundle", &bundle, &id]))
        .current_dir(&b.dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn unshare");
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Without a mount namespace runc still binds the rootfs onto itself (in the caller's
/// namespace) before chrooting into it, so the container's mounts sit on that one mount and
/// a single detach of the rootfs removes them all; youki's contest (ns_itype) relies on it. Seen
/// from the container: its "/" is a mount point.
#[test]
fn without_mount_namespace_the_rootfs_is_still_a_mount() {
    require_root!();
    let ctx = Ctx::new("no-mntns-bind");
    let script = "awk '$5 == \"/\" {print \"ROOT-MOUNT\"}' /proc/self/mountinfo";
    let (ok, stdout, stderr) = run_without_mount_ns(&ctx, script, false, "true");
    assert!(ok, "run failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("ROOT-MOUNT"),
        "the rootfs is not a mount point:\n{stdout}\n{stderr}"
    );
}

/// root.readonly without a mount namespace is accepted, as runc does (youki's contest ns_itype
/// uses the default readonly root), and makes only the rootfs's own bind read-only: the
/// caller's mounts stay writable.
#[test]
fn without_mount_namespace_a_readonly_root_is_only_the_rootfs() {
    require_root!();
    let ctx = Ctx::new("no-mntns-ro");
    let script = "touch /probe 2>/dev/null && echo ROOT-WRITABLE || echo ROOT-RO";
    let (ok, stdout, stderr) = run_without_mount_ns(&ctx, script, true, "touch host-probe && echo CALLER-RW");
    assert!(ok, "run failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("CALLER-RW"),
        "the caller's mounts were made read-only:\n{stdout}\n{stderr}"
    );
    if runtime_is("runc") {
        skip!("runc 1.1.5 ignores root.readonly without a mount namespace (it finalizes the rootfs only with one)");
    }
    assert!(
        stdout.contains("ROOT-RO"),
        "the container's root is writable:\n{stdout}\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// update flags

/// runc's `update` spells the CPU shares flag `--cpu-share` (its update.bats uses it).
#[test]
fn update_cpu_share_flag() {
    require_root!();
    let ctx = Ctx::new("upd-cpu-share");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let o = ctx.run(&["update", "--cpu-share", "200", &id]);
    assert!(o.success(), "update --cpu-share refused: {o}");
    let shares = moor_integration::host::cgroup_dirs(&b.cgroups_path())
        .into_iter()
        .map(|d| d.join("cpu.shares"))
        .find(|f| f.exists());
    match shares {
        Some(f) => assert_eq!(
            std::fs::read_to_string(&f).unwrap_or_default().trim(),
            "200",
            "{}",
            f.display()
        ),
        None => eprintln!("SKIP (part): no cgroup v1 cpu.shares to read back on this host"),
    }
}

// ---------------------------------------------------------------------------------------------
// events --interval

/// `events --interval` takes a Go duration as runc's does ("100ms" in runc's events.bats):
/// stats then come about ten times a second.
#[test]
fn events_interval_takes_go_durations() {
    require_root!();
    let ctx = Ctx::new("events-ms");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let (mut child, out) = ctx.spawn_with(&["events", "--interval", "100ms", &id], |_| {});
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let exited = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    assert!(exited.is_none(), "events --interval 100ms exited: {exited:?}\n{out}");
    let n = out.stdout_now().lines().filter(|l| l.contains("\"stats\"")).count();
    assert!(n >= 3, "only {n} stats lines in 1.5 s with a 100ms interval:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// exec --process without a user

/// runc takes an `exec --process` document without `user` as uid 0, gid 0 (Go's zero value;
/// runc's tty.bats execs such a process).
#[test]
fn exec_process_without_user_runs_as_root() {
    require_root!();
    let ctx = Ctx::new("exec-nouser");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let p = ctx.work_dir().join("process.json");
    std::fs::write(
        &p,
        json!({"args": ["/bin/id", "-u"], "cwd": "/", "terminal": false}).to_string(),
    )
    .expect("write");
    let o = ctx.run(&["exec", "--process", &p.display().to_string(), &id]);
    assert!(o.success(), "exec of a process without user refused: {o}");
    assert_eq!(o.stdout_now().trim(), "0", "{o}");
}
