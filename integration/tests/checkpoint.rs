//! `checkpoint` and `restore` with CRIU, as runc's: a counting process saved and brought back
//! keeps counting from where it was; --leave-running, --pre-dump with --parent-path, restore
//! into a new id with --pid-file, a foreground restore; and the flag checks, which need no
//! working CRIU.
//!
//! CRIU 3.17 fails `criu check` on some kernels (this project's development host: "Unexpected
//! rt vDSO area bounds"). Every test that needs CRIU runs `criu check` first and skips with
//! CRIU's own message when it fails; the VM group (integration/run-v2-in-vm.sh, Debian's
//! kernel) runs them for real.
//!
//! The container's stdio are pipes, as in runc's tests: CRIU can dump a pipe whose other end
//! is outside (restore is given the new one), not a host file outside the container's mounts.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use moor_integration::{host, poll_until, require_root, runtime_is, skip, Bundle, Ctx, Output};

/// How long a counter gets to reach a number: the VM is emulated, and slow.
const COUNT_WAIT: Duration = Duration::from_secs(120);

/// None when CRIU works here, else why not (the errors CRIU logs: `criu check` prints none).
fn criu_broken() -> Option<String> {
    let log = std::env::temp_dir().join(format!("moor-it-criu-check-{}.log", std::process::id()));
    let out = std::process::Command::new("criu")
        .arg("check")
        .arg("--log-file")
        .arg(&log)
        .arg("-v4")
        .output();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    match out {
        Err(e) => Some(format!("criu cannot run: {e}")),
        Ok(o) if o.status.success() => None,
        Ok(o) => {
            let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
            Some(format!(
                "`criu check` fails on this kernel ({}; the VM group runs these tests): {}",
                o.status,
                errors[errors.len().saturating_sub(3)..].join("; ")
            ))
        }
    }
}

/// A container counting 1, 2, 3, ... into /data/log (a host dir bound in), one line a tick,
/// until /data/stop appears; then it exits 7.
fn counter(ctx: &Ctx) -> (String, Bundle, PathBuf) {
    let (id, mut b) = ctx.bundle(&["sh"]);
    let data = b.bind_out_dir("/data");
    b.set_sh("i=0; while [ ! -e /data/stop ]; do i=$((i+1)); echo $i >> /data/log; sleep 0.1; done; exit 7");
    (id, b, data)
}

/// The numbers counted so far.
fn counted(data: &Path) -> Vec<u64> {
    fs::read_to_string(data.join("log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_count(data: &Path, at_least: u64) -> u64 {
    poll_until(COUNT_WAIT, &format!("the counter to reach {at_least}"), || {
        counted(data).last().copied().filter(|n| *n >= at_least)
    })
}

/// The counter never started again: 1, 2, 3, ... without a gap or a repeat.
#[track_caller]
fn assert_one_count(data: &Path) {
    let seen = counted(data);
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(seen, expected, "the count restarted or skipped");
}

/// The stdio pipes of a container: the test holds the write end of its stdin (so it stays
/// open) and the read end of its stdout and stderr.
struct Pipes {
    _stdin: OwnedFd,
    out: OwnedFd,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2")
}

/// Runs a runtime command whose stdio (and so the container's) are fresh pipes; its stderr is
/// read back from the pipe once it has exited.
fn run_piped(ctx: &Ctx, args: &[&str]) -> (Output, Pipes) {
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let out_w2 = out_w.try_clone().expect("dup");
    let mut o = ctx.run_with(args, |c| {
        // runc leaves CRIU's log of its version check (runc-criu-log-*) in its working directory.
        c.current_dir(ctx.work_dir())
            .stdin(Stdio::from(in_r))
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(out_w2));
    });
    let pipes = Pipes {
        _stdin: in_w,
        out: out_r,
    };
    o.stderr = drain(&pipes.out);
    (o, pipes)
}

/// What is in the pipe now, without waiting.
fn drain(fd: &OwnedFd) -> String {
    // SAFETY: fcntl on an fd this test owns.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = nix::unistd::read(fd.as_raw_fd(), &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn run_detached(ctx: &Ctx, b: &Bundle, id: &str) -> Pipes {
    b.save();
    let bundle = b.path().display().to_string();
    let (o, pipes) = run_piped(ctx, &["run", "-d", "--bundle", &bundle, id]);
    o.ok();
    pipes
}

fn restore_detached(ctx: &Ctx, bundle: &Path, id: &str, images: &Path, extra: &[&str]) -> Pipes {
    let bundle = bundle.display().to_string();
    let images = images.display().to_string();
    let mut args = vec!["restore", "-d", "--bundle", &bundle, "--image-path", &images];
    args.extend_from_slice(extra);
    args.push(id);
    let (o, pipes) = run_piped(ctx, &args);
    if !o.success() {
        let log = fs::read_to_string(Path::new(&images).join("restore.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        panic!("restore failed: {o}\nrestore.log (end, reversed):\n{}", tail.join("\n"));
    }
    pipes
}

#[track_caller]
fn checkpoint_ok(ctx: &Ctx, id: &str, images: &Path, extra: &[&str]) {
    let images_s = images.display().to_string();
    let mut args = vec!["checkpoint", "--image-path", &images_s];
    args.extend_from_slice(extra);
    args.push(id);
    let o = ctx.run_with(&args, |c| {
        c.current_dir(ctx.work_dir());
    });
    if !o.success() {
        let log = fs::read_to_string(images.join("dump.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        panic!("checkpoint failed: {o}\ndump.log (end, reversed):\n{}", tail.join("\n"));
    }
}

/// Nothing of the container is left: no state, no cgroup, no process.
#[track_caller]
fn assert_gone(ctx: &Ctx, id: &str, cgroups_path: &str) {
    assert!(ctx.state(id).is_none(), "state of {id} is still there");
    assert!(!ctx.root.join(id).exists(), "the state dir of {id} is still there");
    let dirs = host::cgroup_dirs(cgroups_path);
    assert!(dirs.is_empty(), "cgroup dirs left: {dirs:?}");
}

#[test]
fn a_restored_counter_keeps_counting_from_where_it_was() {
    require_root!();
    if let Some(why) = criu_broken() {
        skip!("{why}");
    }
    let ctx = Ctx::new("ckpt-count");
    let (id, b, data) = counter(&ctx);
    let _pipes = run_detached(&ctx, &b, &id);
    wait_count(&data, 5);
    let images = ctx.work_dir().join("images");
    let work = ctx.work_dir().join("work");
    checkpoint_ok(&ctx, &id, &images, &["--work-path", &work.display().to_string()]);
    assert!(work.join("dump.log").is_file(), "CRIU's log is not in --work-path");
    // As runc: the container is gone after a dump, and its processes with it.
    assert_gone(&ctx, &id, &b.cgroups_path());
    let at_dump = counted(&data).len() as u64;
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        counted(&data).len() as u64,
        at_dump,
        "the counter ran on after the dump"
    );

    let _restored = restore_detached(&ctx, b.path(), &id, &images, &[]);
    let state = ctx.state_ok(&id);
    assert_eq!(state["status"], "running", "{state}");
    let pid = i32::try_from(state["pid"].as_i64().unwrap_or(0)).unwrap_or(0);
    assert!(host::pid_alive(pid), "the restored pid {pid} does not exist");
    assert!(
        host::cgroup_pids(&b.cgroups_path()).contains(&pid),
        "the restored process is not in the container's cgroup {}",
        b.cgroups_path()
    );
    wait_count(&data, at_dump + 5);
    assert_one_count(&data);
    // The restored container is a container like any other: exec, kill, delete.
    let o = ctx
        .run(&["exec", &id, "sh", "-c", "echo in-$(cat /data/log | wc -l)"])
        .ok();
    assert!(o.stdout.starts_with("in-"), "{o}");
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
    assert_gone(&ctx, &id, &b.cgroups_path());
}

#[test]
fn leave_running_keeps_the_container_running() {
    require_root!();
    if let Some(why) = criu_broken() {
        skip!("{why}");
    }
    let ctx = Ctx::new("ckpt-leave");
    let (id, b, data) = counter(&ctx);
    let _pipes = run_detached(&ctx, &b, &id);
    wait_count(&data, 3);
    let pid = ctx.pid(&id);
    let images = ctx.work_dir().join("images");
    checkpoint_ok(&ctx, &id, &images, &["--leave-running"]);
    assert!(
        images.join("descriptors.json").is_file(),
        "no descriptors.json in the images"
    );
    let state = ctx.state_ok(&id);
    assert_eq!(
        (state["status"].as_str(), ctx.pid(&id)),
        (Some("running"), pid),
        "{state}"
    );
    let n = counted(&data).len() as u64;
    wait_count(&data, n + 3);
    assert_one_count(&data);
    ctx.delete_force(&id).ok();
    assert_gone(&ctx, &id, &b.cgroups_path());
}

#[test]
fn pre_dump_then_dump_with_parent_path_restores() {
    require_root!();
    if let Some(why) = criu_broken() {
        skip!("{why}");
    }
    let ctx = Ctx::new("ckpt-predump");
    let (id, b, data) = counter(&ctx);
    let _pipes = run_detached(&ctx, &b, &id);
    wait_count(&data, 3);
    let parent = ctx.work_dir().join("parent");
    checkpoint_ok(&ctx, &id, &parent, &["--pre-dump"]);
    assert_eq!(
        ctx.status(&id).as_deref(),
        Some("running"),
        "pre-dump stopped the container"
    );
    let n = counted(&data).len() as u64;
    wait_count(&data, n + 2);
    let images = ctx.work_dir().join("images");
    checkpoint_ok(&ctx, &id, &images, &["--parent-path", "../parent"]);
    assert!(
        fs::symlink_metadata(images.join("parent")).is_ok(),
        "the dump is not linked to its parent images"
    );
    assert_gone(&ctx, &id, &b.cgroups_path());
    let at_dump = counted(&data).len() as u64;
    let _restored = restore_detached(&ctx, b.path(), &id, &images, &[]);
    wait_count(&data, at_dump + 3);
    assert_one_count(&data);
    ctx.delete_force(&id).ok();
    assert_gone(&ctx, &id, &b.cgroups_path());
}

/// Checkpoints a counter and restores it under a new id whose bundle names its own cgroup.
/// Returns the context, the new id, the old and new cgroupsPath, and the restored container's
/// stdio (held open until the test ends).
fn restored_under_new_id(name: &str, extra: &[&str]) -> (Ctx, String, String, String, Pipes) {
    let ctx = Ctx::new(name);
    let (id, mut b, data) = counter(&ctx);
    let _pipes = run_detached(&ctx, &b, &id);
    wait_count(&data, 3);
    let images = ctx.work_dir().join("images");
    checkpoint_ok(&ctx, &id, &images, &[]);
    let old_cgroup = b.cgroups_path();
    // A second bundle's id and cgroupsPath (so the test's cleanup knows them), the first
    // bundle's rootfs and mounts.
    let (new_id, other) = ctx.bundle(&["true"]);
    b.set("/linux/cgroupsPath", serde_json::json!(other.cgroups_path()));
    b.save();
    let restored = restore_detached(&ctx, b.path(), &new_id, &images, extra);
    assert!(ctx.state(&id).is_none(), "the old id came back");
    let at = counted(&data).len() as u64;
    wait_count(&data, at + 3);
    assert_one_count(&data);
    (ctx, new_id, old_cgroup, other.cgroups_path(), restored)
}

#[test]
fn restore_into_a_new_id_with_pid_file() {
    require_root!();
    if let Some(why) = criu_broken() {
        skip!("{why}");
    }
    let pid_file = std::env::temp_dir().join(format!("moor-it-ckpt-{}.pid", std::process::id()));
    let pf = pid_file.display().to_string();
    let (ctx, new_id, _, new_cgroup, _stdio) = restored_under_new_id("ckpt-newid", &["--pid-file", &pf]);
    let pid = ctx.pid(&new_id);
    let written = fs::read_to_string(&pid_file).unwrap_or_default();
    let _ = fs::remove_file(&pid_file);
    assert_eq!(
        written.trim(),
        pid.to_string(),
        "--pid-file does not hold the restored pid"
    );
    ctx.delete_force(&new_id).ok();
    assert_gone(&ctx, &new_id, &new_cgroup);
}

#[test]
fn a_container_restored_under_a_new_id_is_in_its_own_cgroup() {
    require_root!();
    if let Some(why) = criu_broken() {
        skip!("{why}");
    }
    if runtime_is("runc") {
        skip!(
            "runc 1.1.5 on cgroup v2 restores the processes into the cgroup they were dumped \
             from, not the restored config's cgroupsPath (seen in the VM)"
        );
    }
    let (ctx, new_id, old_cgroup, new_cgroup, _stdio) = restored_under_new_id("ckpt-newcg", &[]);
    let pid = ctx.pid(&new_id);
    assert!(
        host::cgroup_pids(&new_cgroup).contains(&pid),
        "the restored process is not in the new cgroup {new_cgroup}"
    );
    assert!(
        host::cgroup_dirs(&old_cgroup).is_empty(),
        "the old cgroup {old_cgroup} came back"
    );
    ctx.delete_force(&new_id).ok();
    assert_gone(&ctx, &new_id, &new_cgroup);
}

#[test]
fn a_foreground_restore_waits_and_exits_with_the_container_status() {
    require_root!();
    if let Some(why) = criu_broken() {
        skip!("{why}");
    }
    let ctx = Ctx::new("ckpt-fg");
    let (id, b, data) = counter(&ctx);
    let _pipes = run_detached(&ctx, &b, &id);
    wait_count(&data, 3);
    let images = ctx.work_dir().join("images");
    checkpoint_ok(&ctx, &id, &images, &[]);
    let at_dump = counted(&data).len() as u64;
    let (in_r, _in_w) = pipe();
    let (_out_r, out_w) = pipe();
    let out_w2 = out_w.try_clone().expect("dup");
    let bundle = b.path().display().to_string();
    let images_s = images.display().to_string();
    let (child, out) = ctx.spawn_with(&["restore", "--bundle", &bundle, "--image-path", &images_s, &id], |c| {
        c.current_dir(ctx.work_dir())
            .stdin(Stdio::from(in_r))
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(out_w2));
    });
    wait_count(&data, at_dump + 3);
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
    fs::write(data.join("stop"), "").unwrap();
    let out = ctx.wait_output(child, out, COUNT_WAIT);
    assert_eq!(
        out.code(),
        Some(7),
        "restore did not exit with the container's status: {out}"
    );
    assert_one_count(&data);
    // As `run`: the container is deleted once it exits.
    assert_gone(&ctx, &id, &b.cgroups_path());
}

// ---- checks made before CRIU runs: these need no working CRIU

/// A running container that is not a checkpoint candidate for CRIU here (its stdio are files):
/// the flag checks must refuse before anything happens to it.
fn running(ctx: &Ctx) -> (String, Bundle) {
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    (id, b)
}

#[test]
fn a_bad_parent_path_is_refused_naming_the_flag() {
    require_root!();
    let ctx = Ctx::new("ckpt-parent");
    let (id, _b) = running(&ctx);
    let images = ctx.work_dir().join("images").display().to_string();
    let work = ctx.work_dir().join("work").display().to_string();
    let absolute = ctx.work_dir().join("parent-dir").display().to_string();
    for parent in [absolute.as_str(), "./parent-dir"] {
        let o = ctx
            .run(&[
                "checkpoint",
                "--parent-path",
                parent,
                "--work-path",
                &work,
                "--image-path",
                &images,
                &id,
            ])
            .fails();
        assert!(o.stderr.contains("--parent-path"), "{o}");
        assert_eq!(ctx.status(&id).as_deref(), Some("running"), "after {o}");
    }
}

#[test]
fn only_a_running_container_can_be_checkpointed() {
    require_root!();
    let ctx = Ctx::new("ckpt-state");
    let images = ctx.work_dir().join("images").display().to_string();
    let o = ctx
        .run(&["checkpoint", "--image-path", &images, "mit-no-such-container"])
        .fails();
    assert!(o.stderr.contains("does not exist"), "{o}");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create(&b, &id, &[]).ok();
    let o = ctx.run(&["checkpoint", "--image-path", &images, &id]).fails();
    assert!(o.stderr.contains("created"), "{o}");
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));
}

#[test]
fn invalid_checkpoint_flags_are_refused_and_leave_the_container_running() {
    require_root!();
    let ctx = Ctx::new("ckpt-flags");
    let (id, _b) = running(&ctx);
    let images = ctx.work_dir().join("images").display().to_string();
    // --leave-running: runc destroys the container when a later check fails otherwise.
    for (flag, value, says) in [
        ("--manage-cgroups-mode", "bogus", "manage cgroups mode"),
        ("--page-server", "nonsense", "page-server"),
        ("--empty-ns", "ipc", "not supported"),
    ] {
        let o = ctx
            .run(&[
                "checkpoint",
                "--leave-running",
                "--image-path",
                &images,
                flag,
                value,
                &id,
            ])
            .fails();
        assert!(o.stderr.contains(says), "{flag} {value}: {o}");
        assert_eq!(ctx.status(&id).as_deref(), Some("running"), "after {flag} {value}");
    }
}

#[test]
fn a_restore_from_a_missing_image_path_fails_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("ckpt-noimg");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    b.save();
    let bundle = b.path().display().to_string();
    let missing = ctx.work_dir().join("no-such-images").display().to_string();
    // `-no-subreaper` with one dash is how containerd's go-runc passes it: runc takes Go's syntax.
    for extra in ["--no-pivot", "-no-subreaper"] {
        let (o, _p) = run_piped(
            &ctx,
            &[
                "restore",
                "-d",
                extra,
                "--bundle",
                &bundle,
                "--image-path",
                &missing,
                &id,
            ],
        );
        let o = o.fails();
        assert!(o.stderr.contains("no-such-images"), "{extra}: {o}");
        assert_gone(&ctx, &id, &b.cgroups_path());
    }
}

#[test]
fn a_hostile_image_dir_is_refused_before_criu_runs() {
    require_root!();
    if runtime_is("runc") {
        skip!("runc reads descriptors.json through a symlink and lets CRIU write restore.log through one: moor's own checks");
    }
    let ctx = Ctx::new("ckpt-hostile");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    b.save();
    let bundle = b.path().display().to_string();
    let images = ctx.work_dir().join("images");
    fs::create_dir(&images).unwrap();
    let decoy = ctx.work_dir().join("decoy");
    fs::write(&decoy, "precious").unwrap();
    let images_s = images.display().to_string();
    let restore = |ctx: &Ctx| {
        let (o, _p) = run_piped(
            ctx,
            &["restore", "-d", "--bundle", &bundle, "--image-path", &images_s, &id],
        );
        o
    };
    // descriptors.json planted as a symlink out of the directory
    std::os::unix::fs::symlink(&decoy, images.join("descriptors.json")).unwrap();
    let o = restore(&ctx).fails();
    assert!(o.stderr.contains("descriptors.json"), "{o}");
    fs::remove_file(images.join("descriptors.json")).unwrap();
    // a descriptors.json that is no list of three strings
    fs::write(images.join("descriptors.json"), r#"["a","b","c","d"]"#).unwrap();
    let o = restore(&ctx).fails();
    assert!(o.stderr.contains("descriptors.json"), "{o}");
    fs::write(images.join("descriptors.json"), r#"["pipe:[1]","pipe:[2]","pipe:[3]"]"#).unwrap();
    // the log CRIU would write as root, planted as a symlink to a host file
    std::os::unix::fs::symlink(&decoy, images.join("restore.log")).unwrap();
    let o = restore(&ctx).fails();
    assert!(o.stderr.contains("restore.log"), "{o}");
    assert_eq!(fs::read_to_string(&decoy).unwrap(), "precious", "the decoy was written");
    assert_gone(&ctx, &id, &b.cgroups_path());
}

#[test]
fn features_say_whether_checkpoint_works() {
    let ctx = Ctx::new("ckpt-features");
    let o = ctx.run(&["features"]).ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o}"));
    let installed = std::process::Command::new("criu").arg("--version").output().is_ok();
    if !installed && runtime_is("runc") {
        skip!("runc says checkpoint is enabled whether or not CRIU is installed");
    }
    assert_eq!(
        v["annotations"]["org.opencontainers.runc.checkpoint.enabled"],
        serde_json::json!(installed.to_string()),
        "{o}"
    );
}

#[test]
fn the_container_process_leads_its_own_session() {
    // CRIU dumps a process tree only when the session leader is inside it; runc's init calls
    // setsid whether or not it has a terminal.
    require_root!();
    let ctx = Ctx::new("ckpt-session");
    let (id, _b) = running(&ctx);
    let pid = ctx.pid(&id);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // after the command: state, ppid, pgrp, session
    assert_eq!(fields[3], pid.to_string(), "session of {pid}: {stat}");
}

/// runc 1.2's flags, which conformance suites use: `--manage-cgroups-mode ignore`,
/// `--link-remap` and `--tcp-skip-in-flight` reach CRIU (moor once refused all three as unknown).
#[test]
fn runc_1_2_checkpoint_flags_reach_criu() {
    require_root!();
    if runtime_is("runc") && moor_integration::runtime_version() < (1, 2, 0) {
        skip!("runc 1.1 has none of these flags (added in runc 1.2)");
    }
    let ctx = Ctx::new("ckpt-12flags");
    // A counter with its stdio on pipes: CRIU cannot dump an fd on the host's /dev/null (the
    // stdio `running` leaves), whatever the flags.
    let (id, b, data) = counter(&ctx);
    let _pipes = run_detached(&ctx, &b, &id);
    wait_count(&data, 1);
    let images = ctx.work_dir().join("images");
    let extra = [
        "--leave-running",
        "--manage-cgroups-mode",
        "ignore",
        "--link-remap",
        "--tcp-skip-in-flight",
    ];
    match criu_broken() {
        None => checkpoint_ok(&ctx, &id, &images, &extra),
        Some(why) => {
            let images_s = images.display().to_string();
            let mut args = vec!["checkpoint", "--image-path", images_s.as_str()];
            args.extend_from_slice(&extra);
            args.push(&id);
            let o = ctx.run(&args).fails();
            // CRIU itself fails here; what matters is that it ran with these flags.
            assert!(o.stderr.contains("criu dump failed"), "{o} (CRIU: {why})");
        }
    }
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
}
