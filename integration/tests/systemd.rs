//! The systemd cgroup driver (`--systemd-cgroup`, cgroupsPath `slice:prefix:name`): the
//! container's cgroup is a transient scope that systemd owns, its limits are unit properties
//! that survive `systemctl daemon-reload`, `update` changes both, and `delete` stops the unit.
//!
//! These need systemd as the running init on a pure cgroup v2 host. On other hosts every test
//! skips and says so; `integration/run-systemd-in-vm.sh` boots systemd inside the v2 VM and
//! runs this group there (CI does).

use moor_integration::bundle::Bundle;
use moor_integration::{poll_for, require_root, runtime_is, runtime_version, skip, Ctx, Output, TIMEOUT};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
const SLICE: &str = "system.slice";
const PREFIX: &str = "moor-it";

/// Why this host cannot run the group, if it cannot.
fn unsupported() -> Option<&'static str> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Some("systemd is not the running init (no /run/systemd/system)");
    }
    None
}

/// Pure cgroup v2, as opposed to v1 or hybrid.
fn is_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

macro_rules! require_systemd {
    () => {
        require_root!();
        if let Some(why) = unsupported() {
            skip!("{why}; integration/run-systemd-in-vm.sh runs this group under systemd");
        }
    };
}

/// A context whose every command passes `--systemd-cgroup`.
fn systemd_ctx(name: &str) -> Ctx {
    let ctx = Ctx::new(name);
    ctx.global.borrow_mut().push("--systemd-cgroup".into());
    ctx
}

/// A bundle with cgroupsPath `system.slice:moor-it:<id>`; returns it and the unit's name.
fn scoped_bundle(ctx: &Ctx, args: &[&str]) -> (String, Bundle, String) {
    let (id, mut b) = ctx.bundle(args);
    b.set("/linux/cgroupsPath", json!(format!("{SLICE}:{PREFIX}:{id}")));
    let unit = format!("{PREFIX}-{id}.scope");
    (id, b, unit)
}

/// The unit's cgroup directory in the hierarchy of a v1 controller (`cpu`, `memory`, `systemd`
/// for the named hierarchy...), or on v2 the only one. systemd's root is ours: the tests run
/// under that systemd.
fn unit_dir(unit: &str, controller: &str) -> PathBuf {
    let mut top = PathBuf::from("/sys/fs/cgroup");
    if !is_v2() {
        // cpu is mounted as "cpu" (with a "cpu,cpuacct" link) or as "cpu,cpuacct" only.
        let combined = format!("{controller},cpuacct");
        top.push(if top.join(controller).exists() {
            controller
        } else {
            &combined
        });
    }
    top.join(SLICE).join(unit)
}

/// Every directory named after the unit, in every hierarchy.
fn all_unit_dirs(unit: &str) -> Vec<PathBuf> {
    let mut tops = vec![PathBuf::from("/sys/fs/cgroup")];
    if !is_v2() {
        tops = fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
    }
    tops.into_iter()
        .map(|t| t.join(SLICE).join(unit))
        .filter(|d| d.exists())
        .collect()
}

fn memory_limit(unit: &str) -> String {
    if is_v2() {
        read(&unit_dir(unit, ""), "memory.max")
    } else {
        read(&unit_dir(unit, "memory"), "memory.limit_in_bytes")
    }
}

fn pids_max(unit: &str) -> String {
    read(&unit_dir(unit, "pids"), "pids.max")
}

/// "QUOTA PERIOD", as v2's cpu.max.
fn cpu_max(unit: &str) -> String {
    if is_v2() {
        return read(&unit_dir(unit, ""), "cpu.max");
    }
    let d = unit_dir(unit, "cpu");
    format!("{} {}", read(&d, "cpu.cfs_quota_us"), read(&d, "cpu.cfs_period_us"))
}

fn frozen(unit: &str) -> bool {
    if is_v2() {
        read(&unit_dir(unit, ""), "cgroup.freeze") == "1"
    } else {
        read(&unit_dir(unit, "freezer"), "freezer.state") == "FROZEN"
    }
}

/// systemd's name for the memory limit property on this hierarchy.
fn memory_property() -> &'static str {
    if is_v2() {
        "MemoryMax"
    } else {
        "MemoryLimit"
    }
}

#[track_caller]
fn read(dir: &Path, file: &str) -> String {
    let p = dir.join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// `systemctl show -p NAME --value UNIT`.
#[track_caller]
fn unit_property(unit: &str, name: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", name, "--value", unit])
        .output()
        .expect("run systemctl");
    assert!(out.status.success(), "systemctl show {unit}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[track_caller]
fn systemctl(args: &[&str]) {
    let out = Command::new("systemctl").args(args).output().expect("run systemctl");
    assert!(out.status.success(), "systemctl {args:?}: {out:?}");
}

/// Waits until systemd has forgotten the unit (LoadState not-found).
#[track_caller]
fn assert_unit_gone(unit: &str) {
    let gone = poll_for(TIMEOUT, || {
        (unit_property(unit, "LoadState") == "not-found").then_some(())
    });
    assert!(
        gone.is_some(),
        "unit {unit} is still known to systemd: {} / {}",
        unit_property(unit, "LoadState"),
        unit_property(unit, "ActiveState")
    );
    let left = all_unit_dirs(unit);
    assert!(left.is_empty(), "cgroup directories left: {left:?}");
}

/// The cgroup systemd tracks a process in: /proc/PID/cgroup's v2 line, or on v1 its
/// name=systemd line.
fn cgroup_of(pid: i32) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let key = if is_v2() { "0::" } else { ":name=systemd:" };
    s.lines()
        .find_map(|l| l.split_once(key).map(|(_, p)| p.to_string()))
        .unwrap_or_default()
}

fn exec(ctx: &Ctx, id: &str, args: &[&str]) -> Output {
    let mut argv = vec!["exec", id];
    argv.extend_from_slice(args);
    ctx.run(&argv)
}

#[test]
fn the_container_runs_in_a_transient_scope_with_its_limits() {
    require_systemd!();
    let ctx = systemd_ctx("sd_scope");
    let (id, mut b, unit) = scoped_bundle(&ctx, &["sleep", "1000"]);
    b.set(
        "/linux/resources",
        json!({
            "memory": {"limit": 64 * MIB},
            "pids": {"limit": 32},
            "cpu": {"quota": 20000, "period": 100000, "shares": 512},
        }),
    );
    ctx.create(&b, &id, &[]).ok();
    let pid = ctx.pid(&id);
    assert_eq!(cgroup_of(pid), format!("/{SLICE}/{unit}"), "init's cgroup");
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    assert_eq!(
        unit_property(&unit, "Delegate"),
        "yes",
        "the container owns its subtree"
    );

    assert_eq!(memory_limit(&unit), (64 * MIB).to_string());
    assert_eq!(pids_max(&unit), "32");
    assert_eq!(cpu_max(&unit), "20000 100000");
    // systemd knows the limits too, so it keeps them.
    assert_eq!(unit_property(&unit, memory_property()), (64 * MIB).to_string());
    assert_eq!(unit_property(&unit, "TasksMax"), "32");
    assert_eq!(unit_property(&unit, "CPUQuotaPerSecUSec"), "200ms");

    ctx.start(&id).ok();
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
    assert_unit_gone(&unit);
}

#[test]
fn limits_and_device_rules_survive_a_daemon_reload() {
    require_systemd!();
    let ctx = systemd_ctx("sd_reload");
    let (id, mut b, unit) = scoped_bundle(&ctx, &["sleep", "1000"]);
    b.set("/linux/resources/memory", json!({"limit": 80 * MIB}));
    b.set("/linux/resources/pids", json!({"limit": 40}));
    // Everything but /dev/null is denied; /dev/kmsg's node exists, so only the device
    // program can refuse a write-open of it (which needs no capability).
    b.set(
        "/linux/resources/devices",
        json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }
        ]),
    );
    b.set(
        "/linux/devices",
        json!([{ "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438, "uid": 0, "gid": 0 }]),
    );
    ctx.create_start(&b, &id);

    let probe = || {
        let o = exec(
            &ctx,
            &id,
            &[
                "sh",
                "-c",
                "echo x > /dev/null && echo null-ok; ( exec 3>/dev/kmsg ) 2>&1; echo kmsg-rc=$?",
            ],
        );
        let out = o.stdout_now();
        assert!(out.contains("null-ok"), "/dev/null must stay usable: {o}");
        assert!(
            out.contains("Operation not permitted") && !out.contains("kmsg-rc=0"),
            "/dev/kmsg opened: {o}"
        );
    };
    probe();

    systemctl(&["daemon-reload"]);
    assert_eq!(memory_limit(&unit), (80 * MIB).to_string(), "memory limit after reload");
    assert_eq!(pids_max(&unit), "40", "pids.max after reload");
    probe();

    ctx.delete_force(&id).ok();
    assert_unit_gone(&unit);
}

#[test]
fn update_changes_the_files_and_the_unit() {
    require_systemd!();
    let ctx = systemd_ctx("sd_update");
    let (id, mut b, unit) = scoped_bundle(&ctx, &["sleep", "1000"]);
    b.set("/linux/resources/memory", json!({"limit": 64 * MIB}));
    b.set("/linux/resources/pids", json!({"limit": 20}));
    ctx.create_start(&b, &id);

    ctx.run(&["update", "--memory", "96m", "--pids-limit", "50", &id]).ok();
    assert_eq!(memory_limit(&unit), (96 * MIB).to_string());
    assert_eq!(pids_max(&unit), "50");
    assert_eq!(unit_property(&unit, memory_property()), (96 * MIB).to_string());
    assert_eq!(unit_property(&unit, "TasksMax"), "50");
    systemctl(&["daemon-reload"]);
    assert_eq!(
        memory_limit(&unit),
        (96 * MIB).to_string(),
        "the updated limit after a reload"
    );
    ctx.delete_force(&id).ok();
    assert_unit_gone(&unit);
}

#[test]
fn exec_pause_ps_and_stats_use_the_scope() {
    require_systemd!();
    let ctx = systemd_ctx("sd_ops");
    let (id, b, unit) = scoped_bundle(&ctx, &["sleep", "1000"]);
    ctx.create_start(&b, &id);
    let pid = ctx.pid(&id);

    // Seen from the host, exec'd processes join the same scope as init.
    let (child, out) = ctx.spawn_with(&["exec", &id, "sleep", "30"], |_| {});
    let exec_pid = poll_for(TIMEOUT, || {
        let procs = fs::read_to_string(unit_dir(&unit, "systemd").join("cgroup.procs")).unwrap_or_default();
        procs
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .find(|&p| p != pid)
    });
    assert!(exec_pid.is_some(), "the exec'd process never appeared in {unit}");

    ctx.run(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id).as_deref(), Some("paused"));
    assert!(frozen(&unit), "the unit's cgroup is not frozen");
    ctx.run(&["resume", &id]).ok();
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));

    let ps = ctx.run(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<i32> = serde_json::from_str(ps.stdout_now().trim()).expect("ps json");
    assert!(pids.contains(&pid), "ps lists init: {ps}");
    let stats = ctx.run(&["events", "--stats", &id]).ok();
    let v: serde_json::Value = serde_json::from_str(stats.stdout_now().trim()).expect("stats json");
    assert!(v["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 2, "{v}");

    ctx.delete_force(&id).ok();
    drop(ctx.wait_output(child, out, Duration::from_secs(20)));
    assert_unit_gone(&unit);
}

#[test]
fn a_container_whose_init_exited_is_deleted_cleanly() {
    require_systemd!();
    let ctx = systemd_ctx("sd_exit");
    let (id, b, unit) = scoped_bundle(&ctx, &["true"]);
    ctx.run_to_stop(&b, &id);
    // systemd collects an empty scope on its own; delete must cope either way.
    ctx.delete(&id).ok();
    assert_unit_gone(&unit);
}

#[test]
fn bad_paths_and_taken_units_fail_and_leave_nothing() {
    require_systemd!();
    let ctx = systemd_ctx("sd_bad");
    for bad in ["/not/systemd/syntax", "system.slice:moor-it:a/b", "no-suffix:moor-it:x"] {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set("/linux/cgroupsPath", json!(bad));
        let o = ctx.create(&b, &id, &[]).fails();
        let err = o.stderr_now();
        assert!(
            err.contains("cgroup") || err.contains("slice"),
            "the error should say the cgroups path is wrong: {o}"
        );
        ctx.assert_no_residue(&id, &b);
    }

    // A second container asking for the same unit is refused; the first is untouched. (runc
    // 1.1 still joins the occupied unit with a deprecation warning; 1.2 refuses, as moor does.)
    let (id, b, unit) = scoped_bundle(&ctx, &["sleep", "1000"]);
    ctx.create(&b, &id, &[]).ok();
    if runtime_is("runc") && runtime_version() < (1, 2, 0) {
        skip!("runc before 1.2 shares an occupied unit (deprecated), so refusal is not checked");
    }
    let (id2, mut b2) = ctx.bundle(&["sleep", "1000"]);
    b2.set("/linux/cgroupsPath", json!(b.cgroups_path()));
    let o = ctx.create(&b2, &id2, &[]).fails();
    assert!(!o.stderr_now().is_empty(), "{o}");
    assert!(
        ctx.run(&["state", &id2]).code() != Some(0),
        "state dir left for the refused container"
    );
    assert_eq!(
        unit_property(&unit, "ActiveState"),
        "active",
        "the first container's unit"
    );
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));
    ctx.delete_force(&id).ok();
    assert_unit_gone(&unit);
}
