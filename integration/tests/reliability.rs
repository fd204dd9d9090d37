//! Reliability: a runtime killed (what a caller's timeout does) or failing at any step of
//! `create` or `exec` leaves a state that tells the truth and that `delete --force` removes
//! entirely (processes, cgroups, mounts, state); an orphaned init dies by itself. Container states
//! of any size the config allows reach the hooks whole; `start` works on a full state filesystem;
//! the seccomp notify fd reaches the listener even when the profile denies sendmsg.
//!
//! The step-by-step walks need moor built with `-p moor-cli --features fault-injection` (src/sys/fault.rs: the
//! `MOOR_FAULT` and `MOOR_FAULT_TRACE` variables). Against a binary without it they skip, loudly;
//! with `MOOR_IT_REQUIRE_FAULTS=1` (CI) that is a failure instead.

use moor_integration::{host, poll_for, require_root, runtime_is, skip, Bundle, Ctx, Output, TIMEOUT};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use serde_json::{json, Value};
use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BB: &str = "/bin/busybox";
/// How long an orphaned init may take to notice its parent's death and exit.
const ORPHAN_GRACE: Duration = Duration::from_secs(3);

/// With the systemd driver (cgroupsPath `slice:prefix:name`): the scope's name and its cgroup
/// directories in every hierarchy.
fn scope_of(b: &Bundle) -> Option<(String, Vec<PathBuf>)> {
    let path = b.cgroups_path();
    let mut parts = path.splitn(3, ':');
    let (Some(slice), Some(prefix), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let unit = format!("{prefix}-{name}.scope");
    let dirs = host::cgroup_hierarchies()
        .into_iter()
        .map(|h| h.join(slice).join(&unit))
        .filter(|d| d.is_dir())
        .collect();
    Some((unit, dirs))
}

/// systemd's LoadState of a unit ("not-found" once it is gone).
fn unit_load_state(unit: &str) -> String {
    Command::new("systemctl")
        .args(["show", "-p", "LoadState", "--value", unit])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Every process of the container: those whose cmdline names the id (moor's init is a clone of
/// `create`) and those in its cgroup (runc's init, hooks run by init).
fn container_procs(id: &str, b: &Bundle) -> Vec<i32> {
    let mut p = host::pids_with_cmdline(id);
    p.extend(host::cgroup_pids(&b.cgroups_path()));
    for dir in scope_of(b).map(|(_, dirs)| dirs).unwrap_or_default() {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        p.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    p.sort();
    p.dedup();
    p
}

/// What is left of a container, as a list of findings (empty: nothing).
fn leftovers(ctx: &Ctx, id: &str, b: &Bundle) -> Vec<String> {
    let mut out = Vec::new();
    if ctx.root.join(id).exists() {
        out.push(format!("state dir {}", ctx.root.join(id).display()));
    }
    if let Some(s) = ctx.state(id) {
        out.push(format!("`state` still answers: {s}"));
    }
    let cg = host::cgroup_dirs(&b.cgroups_path());
    if !cg.is_empty() {
        out.push(format!("cgroup dirs {cg:?}"));
    }
    if let Some((unit, _)) = scope_of(b) {
        // systemd forgets a stopped scope a moment after the stop job.
        let gone = poll_for(Duration::from_secs(5), || {
            let (_, dirs) = scope_of(b)?;
            (dirs.is_empty() && unit_load_state(&unit) == "not-found").then_some(())
        });
        if gone.is_none() {
            let (_, dirs) = scope_of(b).unwrap_or_default();
            out.push(format!(
                "cgroup dirs {dirs:?} of unit {unit} ({})",
                unit_load_state(&unit)
            ));
        }
    }
    let mounts = host::mounts_mentioning(&b.dir.display().to_string());
    if !mounts.is_empty() {
        out.push(format!("mounts {mounts:?}"));
    }
    // Processes get a moment to be reaped by their new parent.
    let procs = poll_for(Duration::from_secs(2), || {
        container_procs(id, b).is_empty().then_some(())
    });
    if procs.is_none() {
        out.push(format!("processes {:?}", container_procs(id, b)));
    }
    out
}

/// runc 1.1.5 writes no state.json before its init is ready, so after a kill mid-create
/// `delete --force` finds no container and leaves the cgroup runc made: that finding is
/// ignored for runc only, loudly. Everything else is required of every runtime.
fn judged(left: Vec<String>) -> Vec<String> {
    if !runtime_is("runc") {
        return left;
    }
    left.into_iter()
        .filter(|l| {
            let runc_leak = l.starts_with("cgroup dirs");
            if runc_leak {
                eprintln!("RUNC DIFFERS (ignored): runc leaves its cgroup when killed mid-create: {l}");
            }
            !runc_leak
        })
        .collect()
}

/// Removes whatever a broken runtime left, so one bad run does not spoil the next.
fn scrub(id: &str, b: &Bundle) {
    for pid in container_procs(id, b) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    host::remove_cgroup(&b.cgroups_path());
    if let Some((unit, _)) = scope_of(b) {
        let _ = Command::new("systemctl").args(["stop", &unit]).output();
        let _ = Command::new("systemctl").args(["reset-failed", &unit]).output();
    }
}

/// The status `state` reports, "-" when it fails (no such container).
fn status(ctx: &Ctx, id: &str) -> String {
    ctx.status(id).unwrap_or_else(|| "-".into())
}

/// What `state` and the processes say once a runtime killed during `create` had time to settle.
struct Settled {
    /// The last status `state` reported ("-" when it failed: no such container).
    status: String,
    /// `state` said "creating" at some point, though the creator was dead.
    lied: bool,
    /// Processes of a container that is not created, still alive after [`ORPHAN_GRACE`].
    orphans: Vec<i32>,
}

impl Settled {
    fn check(&self) -> Result<&str, String> {
        if self.lied {
            return Err("`state` says creating though its creator is dead".into());
        }
        if !self.orphans.is_empty() {
            let about: Vec<String> = self.orphans.iter().map(|p| describe(*p)).collect();
            return Err(format!(
                "status {:?} but processes still alive {ORPHAN_GRACE:?} after their runtime died: {about:?}",
                self.status
            ));
        }
        Ok(&self.status)
    }
}

/// A process as `ps` would show it: pid, state, parent, what it waits in, its command line.
fn describe(pid: i32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| host::status_field(&status, k).unwrap_or_default();
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    format!(
        "{pid} state {} ppid {} wchan {wchan} cmd {cmdline}",
        field("State"),
        field("PPid")
    )
}

/// After the runtime died during `create`: `state` must never say "creating" (its creator is
/// gone), and unless the container really is created (init waiting for `start`), its processes
/// must go by themselves.
fn settle_after_kill(ctx: &Ctx, id: &str, b: &Bundle) -> Settled {
    let deadline = Instant::now() + ORPHAN_GRACE;
    let mut lied = false;
    loop {
        let status = status(ctx, id);
        lied |= status == "creating";
        let procs = container_procs(id, b);
        if procs.is_empty() || Instant::now() > deadline {
            let orphans = if status == "created" { Vec::new() } else { procs };
            return Settled { status, lied, orphans };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A bundle whose cgroupsPath and id are fresh, reusing one rootfs (no copy of busybox per run).
/// With `--systemd-cgroup` the path names a scope `moor-it-<id>.scope` in system.slice.
fn fresh_id(ctx: &Ctx, b: &mut Bundle) -> String {
    let id = ctx.new_id();
    let path = if ctx.global.borrow().iter().any(|a| a == "--systemd-cgroup") {
        format!("system.slice:moor-it:{id}")
    } else {
        format!("/moor-it/{id}")
    };
    b.set("/linux/cgroupsPath", json!(path));
    b.save();
    id
}

/// `create --bundle B --pid-file <work>/<id>.pid ID` with `env`, not waited for.
fn spawn_create(ctx: &Ctx, b: &Bundle, id: &str, env: &[(&str, String)]) -> (std::process::Child, Output) {
    let bundle = b.dir.display().to_string();
    let pid_file = ctx.work_dir().join(format!("{id}.pid")).display().to_string();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    ctx.spawn_with(
        &["create", "--bundle", &bundle, "--pid-file", &pid_file, id],
        move |c: &mut Command| {
            c.envs(env);
        },
    )
}

// ---------------------------------------------------------------------------------------------
// A runtime killed while a hook runs (deterministic: the hook says when it runs).

/// Kills `create` while a `kind` hook runs (it touches a marker, then sleeps), then checks the
/// state, the orphan and `delete --force`.
fn kill_create_during_hook(name: &str, kind: &str, userns: bool) {
    let ctx = Ctx::new(name);
    let (id, mut b) = ctx.bundle(&["sleep", "100"]);
    if userns {
        b.map_user_namespace(100000, 65536);
    }
    // World-writable: a createContainer hook runs as the container's root, which a user
    // namespace maps to an unprivileged host user.
    let marks = moor_integration::bundle::temp_dir("hook-marks");
    ctx.own_dir(marks.clone());
    fs::set_permissions(&marks, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let marker = marks.join("hook-running");
    let script = format!(
        "echo $$ > {m}.tmp && {BB} mv {m}.tmp {m}; exec {BB} sleep 1",
        m = marker.display()
    );
    b.set(
        "/hooks",
        json!({ kind: [{ "path": BB, "args": ["sh", "-c", script] }] }),
    );
    b.save();
    let (mut child, out) = spawn_create(&ctx, &b, &id, &[]);
    let hook_pid: i32 = moor_integration::poll_until(TIMEOUT, "the hook to run", || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "create finished before its {kind} hook ran: {st:?} {}",
                out.stderr_now()
            );
        }
        fs::read_to_string(&marker).ok()?.trim().parse().ok()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // A hook the runtime ran itself is the runtime's child, not the container's: not judged here.
    if kind != "createContainer" {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(hook_pid), nix::sys::signal::Signal::SIGKILL);
    }
    let settled = settle_after_kill(&ctx, &id, &b);
    let settled = settled.check().map(String::from);
    let st = status(&ctx, &id);
    // A stopped container is treated as one: `start` and `kill` refuse it, a plain `delete`
    // removes it (`delete --force` then finds nothing, which is success).
    let (started, signalled, plain_delete) = if st == "stopped" {
        (Some(ctx.start(&id)), Some(ctx.kill(&id, "KILL")), Some(ctx.delete(&id)))
    } else {
        (None, None, None)
    };
    let deleted = ctx.delete_force(&id);
    let left = judged(leftovers(&ctx, &id, &b));
    scrub(&id, &b);
    let settled = settled.unwrap_or_else(|e| panic!("killed during {kind}: {e}"));
    assert!(
        matches!(settled.as_str(), "stopped" | "-"),
        "killed during {kind}, the container can never start, yet state says {settled:?}"
    );
    assert_eq!(st, settled, "state changed its mind");
    if let Some(started) = started {
        assert!(!started.success(), "start of a stopped container succeeded: {started}");
    }
    if let Some(signalled) = signalled {
        assert!(
            !signalled.success(),
            "kill of a stopped container succeeded: {signalled}"
        );
    }
    if let Some(plain_delete) = plain_delete {
        assert!(
            plain_delete.success(),
            "delete of a stopped container failed: {plain_delete}"
        );
    }
    assert!(deleted.success(), "delete --force failed: {deleted}");
    assert!(left.is_empty(), "left after delete --force: {left:#?}");
}

#[test]
fn runtime_killed_during_create_runtime_hook_leaves_nothing_after_delete_force() {
    require_root!();
    kill_create_during_hook("kill_createruntime", "createRuntime", false);
}

#[test]
fn runtime_killed_during_create_container_hook_leaves_nothing_after_delete_force() {
    require_root!();
    kill_create_during_hook("kill_createcontainer", "createContainer", false);
}

/// In a user namespace init's credentials change early, which clears PR_SET_PDEATHSIG: the
/// parent's death must still reach it.
#[test]
fn runtime_killed_during_hooks_with_a_user_namespace_leaves_no_orphan() {
    require_root!();
    kill_create_during_hook("kill_hooks_userns_rt", "createRuntime", true);
    kill_create_during_hook("kill_hooks_userns_cc", "createContainer", true);
}

// ---------------------------------------------------------------------------------------------
// Random kills during create.

/// A small xorshift generator: no dependency, and a printed seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// SIGKILLs `create` after a random 0-30 ms, 100 times (`MOOR_IT_KILL_RUNS` to change, and
/// `MOOR_IT_SEED` to replay), and requires that `state` never says "creating" afterwards, that
/// orphans die by themselves and that `delete --force` leaves nothing. Prints one line of counts.
#[test]
fn random_kills_during_create_leave_nothing_after_delete_force() {
    require_root!();
    let runs: usize = std::env::var("MOOR_IT_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("MOOR_IT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(1)
                | 1
        });
    eprintln!("random kills: seed {seed} (MOOR_IT_SEED={seed} replays)");
    let mut rng = Rng(seed);
    let ctx = Ctx::new("random_kills");
    let (first, mut b) = ctx.bundle(&["sleep", "100"]);
    let _ = first;
    let mut mid_create = 0;
    let (mut lies, mut orphans, mut delete_failed, mut left_state, mut left_cgroups, mut left_procs, mut left_mounts) =
        (0, 0, 0, 0, 0, 0, 0);
    let mut problems = Vec::new();
    for run in 0..runs {
        let id = fresh_id(&ctx, &mut b);
        let delay = Duration::from_micros(rng.next() % 30_000);
        let (mut child, _out) = spawn_create(&ctx, &b, &id, &[]);
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let killed = status.signal() == Some(libc::SIGKILL);
        mid_create += usize::from(killed);
        // A create that finished before the kill made a real created container.
        if killed {
            let settled = settle_after_kill(&ctx, &id, &b);
            lies += usize::from(settled.lied);
            orphans += usize::from(!settled.orphans.is_empty());
            if let Err(e) = settled.check() {
                problems.push(format!("run {run} ({delay:?}): {e}"));
            }
        }
        let deleted = ctx.delete_force(&id);
        if !deleted.success() {
            delete_failed += 1;
            problems.push(format!("run {run} ({delay:?}): {deleted}"));
        }
        let left = judged(leftovers(&ctx, &id, &b));
        for (what, count) in [
            ("state", &mut left_state),
            ("cgroup", &mut left_cgroups),
            ("processes", &mut left_procs),
            ("mounts", &mut left_mounts),
        ] {
            if left
                .iter()
                .any(|l| l.starts_with(what) || (what == "state" && l.starts_with("`state`")))
            {
                *count += 1;
            }
        }
        if !left.is_empty() {
            problems.push(format!("run {run} ({delay:?}): left {left:?}"));
        }
        scrub(&id, &b);
        let _ = fs::remove_dir_all(ctx.root.join(&id));
    }
    eprintln!(
        "random kills ({}): runs {runs}, killed mid-create {mid_create}, state said creating {lies}, \
         orphans alive after {ORPHAN_GRACE:?} {orphans}, delete --force failed {delete_failed}, \
         left after delete --force: state {left_state}, cgroups {left_cgroups}, processes {left_procs}, mounts {left_mounts}",
        ctx.runtime.display()
    );
    assert!(
        problems.is_empty(),
        "{} problems (seed {seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Fault injection: every step of create and exec, killed and failed.

/// The fault points a `create` (or, with `exec`, an exec in a running container) passes, in order;
/// None when the runtime does not honour MOOR_FAULT_TRACE.
fn trace_points(ctx: &Ctx, b: &mut Bundle, exec: bool) -> Option<Vec<String>> {
    let trace = ctx.work_dir().join(format!("trace-{}", ctx.new_id()));
    let env = [("MOOR_FAULT_TRACE", trace.display().to_string())];
    let id = fresh_id(ctx, b);
    let bundle = b.dir.display().to_string();
    if exec {
        ctx.run(&["create", "--bundle", &bundle, &id]).ok();
        ctx.start(&id).ok();
        let pid_file = ctx.work_dir().join(format!("{id}.exec.pid")).display().to_string();
        ctx.run_with(
            &["exec", "--detach", "--pid-file", &pid_file, &id, "sleep", "100"],
            |c| {
                c.envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
            },
        )
        .ok();
    } else {
        let pid_file = ctx.work_dir().join(format!("{id}.pid")).display().to_string();
        ctx.run_with(&["create", "--bundle", &bundle, "--pid-file", &pid_file, &id], |c| {
            c.envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        })
        .ok();
    }
    ctx.delete_force(&id).ok();
    scrub(&id, b);
    let points: Vec<String> = fs::read_to_string(&trace).ok()?.lines().map(String::from).collect();
    (!points.is_empty()).then_some(points)
}

/// Skips (or, with MOOR_IT_REQUIRE_FAULTS=1, fails) when the runtime has no fault injection.
fn no_fault_injection() {
    let why = "the runtime under test has no fault injection (build moor with cargo build -p moor-cli --features fault-injection)";
    assert!(
        std::env::var("MOOR_IT_REQUIRE_FAULTS").as_deref() != Ok("1"),
        "MOOR_IT_REQUIRE_FAULTS=1: {why}"
    );
    eprintln!("SKIP: {why}");
}

/// Runs `create` with `MOOR_FAULT=<point>:<action>` and checks what it leaves.
fn create_with_fault(ctx: &Ctx, b: &mut Bundle, point: &str, action: &str, last: bool) -> Result<(), String> {
    let id = fresh_id(ctx, b);
    let (child, out) = spawn_create(ctx, b, &id, &[("MOOR_FAULT", format!("{point}:{action}"))]);
    let out = ctx.wait_output(child, out, moor_integration::command_timeout());
    let at = format!("{point}:{action}");
    let result = (|| {
        if action == "fail" {
            if out.success() || out.status.signal().is_some() {
                return Err(format!("{at}: create did not fail: {out}"));
            }
            if !out.stderr.contains(&format!("injected fault at {point}")) {
                return Err(format!("{at}: the error is not the injected one: {out}"));
            }
            // The error path itself must leave nothing, before any delete.
            let left = leftovers(ctx, &id, b);
            return if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{at}: a failed create left {left:?}"))
            };
        }
        if out.status.signal() != Some(libc::SIGKILL) {
            return Err(format!("{at}: create was not killed at its fault point: {out}"));
        }
        let settled = settle_after_kill(ctx, &id, b);
        match (settled.check().map_err(|e| format!("{at}: {e}"))?, last) {
            // Killed after it released init: a real created container, which starts.
            ("created", true) => {
                let started = ctx.start(&id);
                if !started.success() {
                    return Err(format!("{at}: state said created but start failed: {started}"));
                }
            }
            ("stopped" | "-", false) => {}
            (st, _) => return Err(format!("{at}: state says {st:?} after the kill")),
        }
        let deleted = ctx.delete_force(&id);
        if !deleted.success() {
            return Err(format!("{at}: delete --force failed: {deleted}"));
        }
        let left = leftovers(ctx, &id, b);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{at}: left after delete --force: {left:?}"))
        }
    })();
    scrub(&id, b);
    result
}

/// Walks every create step of a bundle, killing and failing `create` there.
fn walk_create_steps(ctx: &Ctx, b: &mut Bundle, min_points: usize) {
    let Some(points) = trace_points(ctx, b, false) else {
        return no_fault_injection();
    };
    eprintln!("create fault points: {points:?}");
    assert!(
        points.last().is_some_and(|p| p.ends_with(".released")),
        "the last create point must be the release of init: {points:?}"
    );
    assert!(
        points.len() >= min_points,
        "only {} fault points in create: {points:?}",
        points.len()
    );
    let mut problems = Vec::new();
    for (i, p) in points.iter().enumerate() {
        for action in ["kill", "fail"] {
            if let Err(e) = create_with_fault(ctx, b, p, action, i + 1 == points.len()) {
                problems.push(e);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_create_step_killed_or_failed_leaves_nothing_after_delete_force() {
    require_root!();
    if !runtime_is("moor") {
        skip!(
            "fault injection is moor's test hook; {} has none",
            moor_integration::runtime_path().display()
        );
    }
    let ctx = Ctx::new("faults_create");
    let (_, mut b) = ctx.bundle(&["sleep", "100"]);
    walk_create_steps(&ctx, &mut b, 10);
}

/// The steps a user and a time namespace add (id maps, time offsets), and a pid file.
#[test]
fn every_create_step_with_user_and_time_namespaces_killed_or_failed_leaves_nothing() {
    require_root!();
    if !runtime_is("moor") {
        skip!(
            "fault injection is moor's test hook; {} has none",
            moor_integration::runtime_path().display()
        );
    }
    if !Path::new("/proc/self/ns/time").exists() {
        skip!("this kernel has no time namespaces");
    }
    let ctx = Ctx::new("faults_create_ns");
    let (_, mut b) = ctx.bundle(&["sleep", "100"]);
    b.map_user_namespace(100000, 65536);
    b.set_namespace("time", None);
    b.set(
        "/linux/timeOffsets",
        json!({"monotonic": {"secs": 3600, "nanosecs": 0}}),
    );
    walk_create_steps(&ctx, &mut b, 12);
}

/// With the systemd driver the cgroup is a transient scope that systemd starts around init: a
/// kill at any step leaves no unit and no directory once `delete --force` ran. Needs systemd as
/// the running init (integration/run-systemd-in-vm.sh boots one in the VM).
#[test]
fn every_create_step_with_the_systemd_driver_killed_or_failed_leaves_no_unit() {
    require_root!();
    if !runtime_is("moor") {
        skip!(
            "fault injection is moor's test hook; {} has none",
            moor_integration::runtime_path().display()
        );
    }
    if !Path::new("/run/systemd/system").is_dir() {
        skip!("systemd is not the running init; integration/run-systemd-in-vm.sh runs this under systemd");
    }
    let ctx = Ctx::new("faults_systemd");
    ctx.global.borrow_mut().push("--systemd-cgroup".into());
    let (_, mut b) = ctx.bundle(&["sleep", "100"]);
    walk_create_steps(&ctx, &mut b, 10);
}

/// Runs `exec --detach` with `MOOR_FAULT` in a running container; the container must stay
/// running (`state` unchanged) and `delete --force` must leave nothing.
fn exec_with_fault(ctx: &Ctx, b: &mut Bundle, point: &str, action: &str) -> Result<(), String> {
    let id = fresh_id(ctx, b);
    let at = format!("{point}:{action}");
    let bundle = b.dir.display().to_string();
    let result = (|| {
        ctx.run(&["create", "--bundle", &bundle, &id]).ok();
        ctx.start(&id).ok();
        let pid_file = ctx.work_dir().join(format!("{id}.exec.pid"));
        let pf = pid_file.display().to_string();
        let out = ctx.run_with(&["exec", "--detach", "--pid-file", &pf, &id, "sleep", "100"], |c| {
            c.env("MOOR_FAULT", &at);
        });
        let killed = out.status.signal() == Some(libc::SIGKILL);
        match action {
            "kill" if !killed => return Err(format!("{at}: exec was not killed at its fault point: {out}")),
            "fail" if out.success() || killed => return Err(format!("{at}: exec did not fail: {out}")),
            _ => {}
        }
        if action == "fail" && !out.stderr.contains(&format!("injected fault at {point}")) {
            return Err(format!("{at}: the error is not the injected one: {out}"));
        }
        if let Some(tmp) = fs::read_dir(ctx.work_dir())
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(&format!(".{id}.exec.pid")))
        {
            return Err(format!("{at}: pid file temp {:?} left", tmp.path()));
        }
        let st = status(ctx, &id);
        if st != "running" {
            return Err(format!("{at}: the container is {st:?} after a broken exec"));
        }
        let deleted = ctx.delete_force(&id);
        if !deleted.success() {
            return Err(format!("{at}: delete --force failed: {deleted}"));
        }
        let left = leftovers(ctx, &id, b);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{at}: left after delete --force: {left:?}"))
        }
    })();
    scrub(&id, b);
    result
}

#[test]
fn every_exec_step_killed_or_failed_keeps_the_container_and_leaves_nothing_after_delete_force() {
    require_root!();
    if !runtime_is("moor") {
        skip!(
            "fault injection is moor's test hook; {} has none",
            moor_integration::runtime_path().display()
        );
    }
    let ctx = Ctx::new("faults_exec");
    let (_, mut b) = ctx.bundle(&["sleep", "100"]);
    let Some(points) = trace_points(&ctx, &mut b, true) else {
        return no_fault_injection();
    };
    eprintln!("exec fault points: {points:?}");
    assert!(
        points.len() >= 4,
        "only {} fault points in exec: {points:?}",
        points.len()
    );
    let mut problems = Vec::new();
    for p in &points {
        for action in ["kill", "fail"] {
            if let Err(e) = exec_with_fault(&ctx, &mut b, p, action) {
                problems.push(e);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Large states.

/// createContainer and startContainer hooks get the state whole, with annotations far over the
/// 64 KiB that once crossed moor's sync socket (Kubernetes allows 256 KiB; config.json up to
/// 64 MiB).
#[test]
fn annotations_of_any_size_reach_container_hooks_whole() {
    require_root!();
    let ctx = Ctx::new("big_state");
    for size in [300 << 10, 4 << 20] {
        let (id, mut b) = ctx.bundle(&["true"]);
        let host_out = b.bind_out_dir("/out");
        let value: String = (0..size)
            .map(|i| (b'a' + u8::try_from(i % 26).unwrap()) as char)
            .collect();
        b.set("/annotations", json!({ "big": value, "small": "x" }));
        let hook = |name: &str, dir: &str| json!({ "path": BB, "args": ["sh", "-c", format!("{BB} cat > {dir}/{name}.json")] });
        b.set(
            "/hooks",
            json!({
                "createContainer": [hook("createContainer", &host_out.display().to_string())],
                // startContainer runs inside the container: its paths resolve in the rootfs.
                "startContainer": [hook("startContainer", "/out")]
            }),
        );
        let c = ctx.create(&b, &id, &[]);
        assert!(c.success(), "create with {size} bytes of annotations failed: {c}");
        ctx.start(&id).ok();
        ctx.wait_status(&id, "stopped");
        for name in ["createContainer", "startContainer"] {
            let data = fs::read(host_out.join(format!("{name}.json"))).unwrap_or_else(|e| panic!("{name}: {e}"));
            let st: Value = serde_json::from_slice(&data)
                .unwrap_or_else(|e| panic!("{name} got {} bytes that are not JSON ({e})", data.len()));
            assert_eq!(st["id"], json!(id), "{name}: id");
            assert!(
                st["annotations"]["big"].as_str() == Some(value.as_str()),
                "{name}: the {size}-byte annotation did not arrive whole"
            );
            assert_eq!(st["annotations"]["small"], json!("x"), "{name}");
        }
        ctx.delete(&id).ok();
    }
}

// ---------------------------------------------------------------------------------------------
// A full state filesystem.

/// Unmounts the tmpfs over the context's --root when the test ends, however it ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Writes zeros into `path` until the filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill {}: {e}", path.display()),
        }
    }
}

/// `start` releases the workload before anything could fail on a full disk: it must succeed,
/// `state` must say running, and no temp file may be left in the state directory.
#[test]
fn start_on_a_full_state_filesystem_succeeds_and_leaves_no_temp_file() {
    require_root!();
    let ctx = Ctx::new("full_fs");
    nix::mount::mount(
        Some("moor-it-full"),
        &ctx.root,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=256k,mode=0711"),
    )
    .expect("mount a small tmpfs over --root");
    let _unmount = Unmount(ctx.root.clone());
    let (id, b) = ctx.bundle(&["sleep", "100"]);
    ctx.create(&b, &id, &[]).ok();
    let filler = ctx.root.join("filler");
    fill(&filler);
    let started = ctx.start(&id);
    let entries: Vec<String> = fs::read_dir(ctx.root.join(&id))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let st = status(&ctx, &id);
    let killed = ctx.kill(&id, "KILL");
    let _ = fs::remove_file(&filler);
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
    assert!(started.success(), "start failed on a full state filesystem: {started}");
    assert!(killed.success(), "the workload was not running: {killed}");
    assert_eq!(st, "running", "state after start");
    let temps: Vec<&String> = entries.iter().filter(|e| e.contains("tmp")).collect();
    assert!(temps.is_empty(), "temp files left in the state dir: {entries:?}");
}

// ---------------------------------------------------------------------------------------------
// The seccomp notify fd with sendmsg denied.

/// Accepts listener connections (a state JSON with one fd each), answers every notification on
/// them with EXDEV, and returns how many connections came, once `stop` is set.
fn exdev_agent(listener: UnixListener, stop: Arc<AtomicBool>) -> usize {
    listener.set_nonblocking(true).unwrap();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut conns = 0;
    let deadline = Instant::now() + TIMEOUT * 2;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        if let Ok((conn, _)) = listener.accept() {
            conn.set_nonblocking(false).unwrap();
            conns += 1;
            fds.extend(receive_fd(&conn));
        }
        for fd in &fds {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 0) } <= 0 || p.revents & libc::POLLIN == 0 {
                continue;
            }
            // SAFETY: seccomp_notif(_resp) are plain data; RECV fills the first, SEND reads the second.
            unsafe {
                let mut req: libc::seccomp_notif = std::mem::zeroed();
                if libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) == 0 {
                    let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
                    resp.id = req.id;
                    resp.error = -libc::EXDEV;
                    libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    conns
}

/// The fd of one listener connection (read until the JSON parses).
fn receive_fd(conn: &UnixStream) -> Vec<OwnedFd> {
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut data = Vec::new();
    let mut fds = Vec::new();
    loop {
        let mut buf = vec![0u8; 65536];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let Ok(msg) = recvmsg::<UnixAddr>(conn.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        else {
            return fds;
        };
        let n = msg.bytes;
        for c in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(v) = c {
                // SAFETY: fds just received with SCM_RIGHTS; nothing else owns them.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        data.extend_from_slice(&buf[..n]);
        if n == 0 || serde_json::from_slice::<Value>(&data).is_ok() {
            return fds;
        }
    }
}

/// A profile may notify on some calls and deny sendmsg: the runtime, not the container's
/// process, sends the notify fd to the listener (runc takes it with pidfd_getfd), for init and
/// for an exec'd process alike.
#[test]
fn seccomp_notify_reaches_the_listener_when_the_profile_denies_sendmsg() {
    require_root!();
    let ctx = Ctx::new("notify_nosendmsg");
    let sock = ctx.work_dir().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let agent = {
        let stop = stop.clone();
        std::thread::spawn(move || exdev_agent(listener, stop))
    };
    let (id, mut b) = ctx.bundle(&[]);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "listenerPath": sock,
            "syscalls": [
                { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" },
                { "names": ["sendmsg", "sendto", "sendmmsg"], "action": "SCMP_ACT_ERRNO" }
            ]
        }),
    );
    b.set_sh("mkdir /from-init 2>&1; echo init-rc=$?; sleep 100");
    let c = ctx.create(&b, &id, &[]);
    let started = c.success().then(|| ctx.start(&id));
    let e = started
        .as_ref()
        .filter(|s| s.success())
        .map(|_| ctx.run(&["exec", &id, "sh", "-c", "mkdir /from-exec 2>&1; echo exec-rc=$?"]));
    let out = c.stdout_now();
    let _ = ctx.delete_force(&id);
    stop.store(true, Ordering::SeqCst);
    let conns = agent.join().expect("agent thread");
    assert!(c.success(), "create failed: {c}");
    let started = started.unwrap_or_else(|| unreachable!());
    assert!(started.success(), "start failed: {started}");
    let e = e.unwrap_or_else(|| unreachable!());
    assert!(e.success(), "exec failed: {e}");
    assert_eq!(conns, 2, "listener connections (init and exec)");
    assert!(
        out.contains("Invalid cross-device link") && out.contains("init-rc=1"),
        "the agent's answer did not reach init's workload: {out:?}"
    );
    assert!(
        e.stdout.contains("Invalid cross-device link") && e.stdout.contains("exec-rc=1"),
        "the agent's answer did not reach the exec'd process: {e}"
    );
}
