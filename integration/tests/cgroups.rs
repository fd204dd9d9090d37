//! cgroups: linux.resources applied at create, limits that bite (pids, memory/OOM), device
//! rules, pause/resume, update, ps, events, kill --all and cgroup removal on delete.
//!
//! Every test finds the cgroup mode at run time (statfs of /sys/fs/cgroup) and reads the files of
//! that mode, so the same binary runs on this hybrid host (v1 controllers) and on pure cgroup v2.

use moor_integration::bundle::Bundle;
use moor_integration::{host, poll_for, poll_until, require_root, runtime_is, Ctx, Output, TIMEOUT};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// Small helpers for reading a container's cgroup files in either cgroup mode.
mod cg {
    use super::*;

    /// Whether /sys/fs/cgroup is a cgroup2 mount (pure v2), as opposed to v1 or hybrid.
    pub fn is_v2() -> bool {
        nix::sys::statfs::statfs("/sys/fs/cgroup")
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false)
    }

    /// The host path of a container's cgroup file: `v1` is `(controller, file)`, `v2` the file
    /// name in the unified hierarchy.
    pub fn file(b: &Bundle, v1: (&str, &str), v2: &str) -> PathBuf {
        let rel = b.cgroups_path().trim_start_matches('/').to_string();
        assert!(rel.starts_with("moor-it/"), "unexpected cgroupsPath {rel}");
        if is_v2() {
            Path::new("/sys/fs/cgroup").join(rel).join(v2)
        } else {
            Path::new("/sys/fs/cgroup").join(v1.0).join(rel).join(v1.1)
        }
    }

    /// The trimmed content of a cgroup file (panics with the path if unreadable).
    #[track_caller]
    pub fn read(p: &Path) -> String {
        fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_string()
    }

    pub fn memory_limit(b: &Bundle) -> String {
        read(&file(b, ("memory", "memory.limit_in_bytes"), "memory.max"))
    }

    pub fn pids_max(b: &Bundle) -> String {
        read(&file(b, ("pids", "pids.max"), "pids.max"))
    }

    /// "QUOTA PERIOD" (v2's cpu.max format; built from cfs_quota_us and cfs_period_us on v1).
    pub fn cpu_max(b: &Bundle) -> String {
        if is_v2() {
            read(&file(b, ("", ""), "cpu.max"))
        } else {
            format!(
                "{} {}",
                read(&file(b, ("cpu", "cpu.cfs_quota_us"), "")),
                read(&file(b, ("cpu", "cpu.cfs_period_us"), ""))
            )
        }
    }

    /// The freezer state: v1 freezer.state ("FROZEN"/"THAWED"), v2 cgroup.freeze ("1"/"0").
    pub fn frozen(b: &Bundle) -> bool {
        let p = file(b, ("freezer", "freezer.state"), "cgroup.freeze");
        let s = read(&p);
        if is_v2() {
            s == "1"
        } else {
            s == "FROZEN"
        }
    }

    /// Host pids in the container's cgroup (all hierarchies, recursive).
    pub fn pids(b: &Bundle) -> Vec<i32> {
        host::cgroup_pids(&b.cgroups_path())
    }

    /// utime + stime (clock ticks) of a host pid.
    pub fn cpu_ticks(pid: i32) -> u64 {
        let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_else(|e| panic!("stat of {pid}: {e}"));
        let rest = s.rsplit_once(')').expect("stat format").1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After "(comm)": state is field 3, utime field 14, stime field 15 (1-based).
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// `/proc/<pid>/cmdline` with NULs as spaces.
    pub fn cmdline(pid: i32) -> String {
        fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_string())
            .unwrap_or_default()
    }

    /// runc 1.1's (and crun's) linear cpu.shares → cpu.weight mapping.
    pub fn shares_to_weight(shares: u64) -> u64 {
        1 + ((shares - 2) * 9999) / 262142
    }

    /// A spawned long-running runtime command (e.g. `events`), killed on drop.
    pub struct Spawned(pub Child, pub Output);

    impl Drop for Spawned {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Object key paths of a JSON value ("memory.usage.limit"); arrays and scalars are leaves.
    pub fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Some(m) = v.as_object() {
            for (k, sub) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                key_paths(sub, &p, out);
            }
        }
    }

    /// Key paths that runc 1.1's `events --stats` can print in the cpu, memory and pids sections
    /// (some are omitted when zero). `memory.raw` is an open map of memory.stat entries.
    pub fn runc_schema_allows(path: &str) -> bool {
        const FIXED: &[&str] = &[
            "cpu",
            "cpu.usage",
            "cpu.usage.total",
            "cpu.usage.percpu",
            "cpu.usage.percpu_kernel",
            "cpu.usage.percpu_user",
            "cpu.usage.kernel",
            "cpu.usage.user",
            "cpu.throttling",
            "cpu.throttling.periods",
            "cpu.throttling.throttledPeriods",
            "cpu.throttling.throttledTime",
            "memory",
            "memory.cache",
            "memory.raw",
            "pids",
            "pids.current",
            "pids.limit",
        ];
        if FIXED.contains(&path) || path.starts_with("memory.raw.") {
            return true;
        }
        for entry in ["usage", "swap", "kernel", "kernelTCP"] {
            let e = format!("memory.{entry}");
            if path == e {
                return true;
            }
            if let Some(leaf) = path.strip_prefix(&format!("{e}.")) {
                return ["limit", "usage", "max", "failcnt"].contains(&leaf);
            }
        }
        false
    }

    /// Keys runc 1.1 leaves out of `events --stats` when their value is zero or empty (Go
    /// `omitempty`), so their absence proves nothing.
    pub fn omitted_when_zero(path: &str) -> bool {
        const OMITEMPTY: &[&str] = &[
            "cpu.usage.total",
            "cpu.usage.percpu",
            "cpu.usage.percpu_kernel",
            "cpu.usage.percpu_user",
            "cpu.throttling.periods",
            "cpu.throttling.throttledPeriods",
            "cpu.throttling.throttledTime",
            "memory.cache",
            "memory.raw",
            "pids.current",
            "pids.limit",
        ];
        OMITEMPTY.contains(&path)
            || ["usage", "swap", "kernel", "kernelTCP"]
                .iter()
                .any(|e| path == format!("memory.{e}.usage") || path == format!("memory.{e}.max"))
    }

    /// `events --stats ID`, checked to be exactly one JSON object.
    #[track_caller]
    pub fn stats(ctx: &Ctx, id: &str) -> Value {
        let o = ctx.run(&["events", "--stats", id]).ok();
        let lines: Vec<&str> = o.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "events --stats must print one JSON line: {o}");
        let v: Value =
            serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("events --stats is not JSON ({e}): {o}"));
        assert!(v.is_object(), "events --stats must print a JSON object: {o}");
        v
    }
}

const MIB: u64 = 1024 * 1024;

/// Sets `linux.resources.<key>` (keeping the bundle's device rules).
fn set_resource(b: &mut Bundle, key: &str, v: Value) {
    b.set(&format!("/linux/resources/{key}"), v);
}

/// Waits until the container's cgroup holds `n` processes; returns them.
#[track_caller]
fn wait_pid_count(b: &Bundle, n: usize) -> Vec<i32> {
    let mut last = Vec::new();
    let got = poll_for(TIMEOUT, || {
        last = cg::pids(b);
        (last.len() == n).then(|| last.clone())
    });
    got.unwrap_or_else(|| panic!("cgroup {} never held {n} processes; last {last:?}", b.cgroups_path()))
}

#[test]
fn resources_applied_at_create() {
    require_root!();
    let ctx = Ctx::new("cg_create");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    set_resource(&mut b, "memory", json!({ "limit": 48 * MIB }));
    set_resource(&mut b, "pids", json!({ "limit": 17 }));
    set_resource(
        &mut b,
        "cpu",
        json!({ "quota": 30000, "period": 100000, "shares": 512, "cpus": "0" }),
    );
    ctx.create(&b, &id, &[]).ok();
    let pid = ctx.pid(&id);

    assert!(
        cg::pids(&b).contains(&pid),
        "init {pid} is not in the cgroup {}: {:?}",
        b.cgroups_path(),
        host::cgroup_dirs(&b.cgroups_path())
    );
    assert_eq!(cg::memory_limit(&b), (48 * MIB).to_string(), "memory limit");
    assert_eq!(cg::pids_max(&b), "17", "pids.max");
    assert_eq!(cg::cpu_max(&b), "30000 100000", "cpu quota and period");
    if cg::is_v2() {
        let w = cg::read(&cg::file(&b, ("", ""), "cpu.weight"));
        assert_eq!(w, cg::shares_to_weight(512).to_string(), "cpu.weight for shares 512");
    } else {
        assert_eq!(cg::read(&cg::file(&b, ("cpu", "cpu.shares"), "")), "512", "cpu.shares");
    }
    let cpus = cg::read(&cg::file(&b, ("cpuset", "cpuset.cpus"), "cpuset.cpus"));
    assert_eq!(cpus, "0", "cpuset.cpus");
    // The cpuset binds the container's init too.
    let st = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        host::status_field(&st, "Cpus_allowed_list").as_deref(),
        Some("0"),
        "init's cpu affinity"
    );
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    require_root!();
    let ctx = Ctx::new("cg_pids");
    let (id, mut b) = ctx.bundle(&[]);
    // 20 background sleeps under a limit of 10 tasks: some forks must fail.
    b.set_sh("i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); echo forked=$i; done; echo all-forked");
    set_resource(&mut b, "pids", json!({ "limit": 10 }));
    let c = ctx.create_start(&b, &id);
    ctx.wait_status(&id, "stopped");
    let out = c.stdout_now();
    let err = c.stderr_now();
    assert!(
        !out.contains("all-forked"),
        "all 20 forks succeeded under pids.limit 10:\n{out}\n{err}"
    );
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "expected a fork failure on stderr; stdout:\n{out}\nstderr:\n{err}"
    );
    let forked = out.lines().filter(|l| l.starts_with("forked=")).count();
    assert!(
        (5..10).contains(&forked),
        "expected between 5 and 9 successful forks (sh + sleeps <= 10): {out}"
    );
}

#[test]
fn memory_hog_is_oom_killed_and_reported_by_events() {
    require_root!();
    let ctx = Ctx::new("cg_oom");
    let (id, mut b) = ctx.bundle(&[]);
    // Waits for the host's go-ahead (so `events` is watching), then grows a string in awk until
    // the 32 MiB limit kills it; sh reports awk's status and stays up.
    b.set_sh(
        "while [ ! -e /go ]; do sleep 0.1; done; \
         awk 'BEGIN { s = \"0123456789abcdef\"; while (1) s = s s }'; echo hog-status=$?; sleep 1000",
    );
    set_resource(&mut b, "memory", json!({ "limit": 32 * MIB, "swap": 32 * MIB }));
    let c = ctx.create_start(&b, &id);

    let (child, out) = ctx.spawn_with(&["events", "--interval", "1s", &id], |_| {});
    let events = cg::Spawned(child, out);
    // The stream prints stats every interval; once the first line is out, it is watching.
    poll_until(TIMEOUT, "first events line", || {
        (!events.1.stdout_now().trim().is_empty()).then_some(())
    });
    fs::write(b.rootfs().join("go"), "").unwrap();

    let status = poll_until(TIMEOUT, "the hog to end", || {
        c.stdout_now()
            .lines()
            .find_map(|l| l.strip_prefix("hog-status=").map(String::from))
    });
    assert_eq!(
        status,
        "137",
        "the hog must die of SIGKILL (OOM); stderr: {}",
        c.stderr_now()
    );

    let oom = poll_for(Duration::from_secs(15), || {
        events.1.stdout_now().lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["type"] == "oom").then_some(v)
        })
    });
    let stream = events.1.stdout_now();
    let oom = oom.unwrap_or_else(|| {
        panic!(
            "events printed no {{\"type\":\"oom\"}} line; stdout:\n{}\nstderr:\n{}",
            tail(&stream),
            events.1.stderr_now()
        )
    });
    assert_eq!(oom["id"], id.as_str(), "oom event id: {oom}");
    // The periodic lines are stats objects for this container.
    let first: Value = serde_json::from_str(stream.lines().next().unwrap()).expect("events line is JSON");
    assert_eq!(first["type"], "stats", "{first}");
    assert_eq!(first["id"], id.as_str(), "{first}");
    drop(events);

    if !cg::is_v2() {
        // v1: the peak usage (memory.max_usage_in_bytes) reached the limit. runc reports
        // memory.usage.failcnt 0 here (with swap == limit the memsw counter is the one that
        // fails, and it stays 0 on this kernel too), so failcnt is not checked.
        let st = cg::stats(&ctx, &id);
        let max = st["data"]["memory"]["usage"]["max"].as_u64().unwrap_or(0);
        assert!(
            max >= 30 * MIB,
            "memory.usage.max must show the hog reaching the limit: {st}"
        );
    }
    assert_eq!(
        ctx.status(&id).as_deref(),
        Some("running"),
        "init must survive the OOM of its child"
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[test]
fn device_rules_deny_unlisted_devices() {
    require_root!();
    let ctx = Ctx::new("cg_devices");
    let (id, mut b) = ctx.bundle(&[]);
    // Only write-open /dev/kmsg: that needs no capability, so only the device cgroup can refuse
    // it (and nothing is written to the host's log).
    b.set_sh(
        "ls -l /dev/kmsg; echo data > /dev/null && echo null-ok; \
         ( exec 3>/dev/kmsg ) 2>&1; echo kmsg-rc=$?",
    );
    set_resource(
        &mut b,
        "devices",
        json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }
        ]),
    );
    b.set(
        "/linux/devices",
        json!([{ "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438, "uid": 0, "gid": 0 }]),
    );
    let c = ctx.create_start(&b, &id);
    ctx.wait_status(&id, "stopped");
    let out = c.stdout_now();
    let err = c.stderr_now();
    assert!(
        out.lines().any(|l| l.starts_with('c') && l.contains("/dev/kmsg")),
        "the /dev/kmsg node was not created: {out}\n{err}"
    );
    assert!(out.contains("null-ok"), "/dev/null must stay usable: {out}\n{err}");
    assert!(
        out.contains("Operation not permitted"),
        "opening /dev/kmsg must fail with EPERM from the device cgroup: {out}\n{err}"
    );
    assert!(!out.contains("kmsg-rc=0"), "/dev/kmsg could be opened: {out}");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    require_root!();
    let ctx = Ctx::new("cg_pause");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "while :; do :; done"]);
    // Half a core at most: the busy loop shares the machine.
    set_resource(&mut b, "cpu", json!({ "quota": 50000, "period": 100000 }));
    ctx.create_start(&b, &id);
    let pid = ctx.pid(&id);
    let t0 = cg::cpu_ticks(pid);
    poll_until(TIMEOUT, "the busy loop to use CPU", || {
        (cg::cpu_ticks(pid) > t0 + 5).then_some(())
    });

    ctx.run(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id).as_deref(), Some("paused"), "state after pause");
    assert!(cg::frozen(&b), "the cgroup is not frozen after pause");
    let a = cg::cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let z = cg::cpu_ticks(pid);
    assert_eq!(a, z, "a paused container's busy loop kept using CPU ({a} -> {z} ticks)");

    ctx.run(&["resume", &id]).ok();
    assert_eq!(ctx.status(&id).as_deref(), Some("running"), "state after resume");
    assert!(!cg::frozen(&b), "the cgroup is still frozen after resume");
    poll_until(TIMEOUT, "the busy loop to run again", || {
        (cg::cpu_ticks(pid) > z + 5).then_some(())
    });

    // A paused container can be force-deleted, leaving no process and no cgroup.
    ctx.run(&["pause", &id]).ok();
    assert_eq!(ctx.status(&id).as_deref(), Some("paused"));
    ctx.delete_force(&id).ok();
    assert!(ctx.state(&id).is_none(), "state still works after delete --force");
    let gone = poll_for(Duration::from_secs(10), || (!host::pid_alive(pid)).then_some(()));
    assert!(
        gone.is_some(),
        "init {pid} survived delete --force of a paused container"
    );
    let left = host::cgroup_dirs(&b.cgroups_path());
    assert!(left.is_empty(), "cgroup dirs left after delete --force: {left:?}");
}

#[test]
fn update_changes_limits_of_a_running_container() {
    require_root!();
    let ctx = Ctx::new("cg_update");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    set_resource(&mut b, "memory", json!({ "limit": 128 * MIB }));
    set_resource(&mut b, "pids", json!({ "limit": 50 }));
    set_resource(&mut b, "cpu", json!({ "quota": 20000, "period": 100000 }));
    ctx.create_start(&b, &id);
    assert_eq!(cg::memory_limit(&b), (128 * MIB).to_string());

    ctx.run(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        &id,
    ])
    .ok();
    assert_eq!(
        cg::memory_limit(&b),
        (64 * MIB).to_string(),
        "memory after update --memory 64m"
    );
    assert_eq!(cg::pids_max(&b), "20", "pids.max after update --pids-limit 20");
    assert_eq!(
        cg::cpu_max(&b),
        "50000 100000",
        "cpu after update --cpu-quota/--cpu-period"
    );

    // --resources - : runtime-spec linux.resources JSON on stdin.
    let res = ctx.work_dir().join("resources.json");
    fs::write(
        &res,
        json!({
            "memory": { "limit": 96 * MIB },
            "pids": { "limit": 30 },
            "cpu": { "quota": 40000, "period": 200000 }
        })
        .to_string(),
    )
    .unwrap();
    let f = fs::File::open(&res).unwrap();
    ctx.run_with(&["update", "--resources", "-", &id], |cmd| {
        cmd.stdin(Stdio::from(f));
    })
    .ok();
    assert_eq!(cg::memory_limit(&b), (96 * MIB).to_string(), "memory after update -r -");
    assert_eq!(cg::pids_max(&b), "30", "pids.max after update -r -");
    assert_eq!(cg::cpu_max(&b), "40000 200000", "cpu after update -r -");

    // An invalid value fails with a message naming it, and changes nothing.
    let bad = ctx.run(&["update", "--memory", "abc", &id]).fails();
    let msg = bad.stderr.to_lowercase();
    assert!(
        msg.contains("abc") || msg.contains("invalid"),
        "update --memory abc must explain what is wrong: {bad}"
    );
    assert_eq!(
        cg::memory_limit(&b),
        (96 * MIB).to_string(),
        "a failed update changed memory"
    );
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
}

#[test]
fn ps_lists_init_and_exec_processes() {
    require_root!();
    let ctx = Ctx::new("cg_ps");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    let init = ctx.pid(&id);
    ctx.run(&["exec", "-d", &id, "sleep", "777"]).ok();
    let procs = wait_pid_count(&b, 2);
    let exec_pid = *procs
        .iter()
        .find(|p| cg::cmdline(**p) == "sleep 777")
        .unwrap_or_else(|| panic!("exec'd sleep not in the cgroup: {procs:?}"));

    let o = ctx.run(&["ps", "--format", "json", &id]).ok();
    let v: Value = serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("ps json ({e}): {o}"));
    let listed: BTreeSet<i64> = v
        .as_array()
        .unwrap_or_else(|| panic!("ps --format json must print an array: {o}"))
        .iter()
        .map(|p| p.as_i64().unwrap_or_else(|| panic!("non-integer pid in {o}")))
        .collect();
    let want: BTreeSet<i64> = [i64::from(init), i64::from(exec_pid)].into();
    assert_eq!(
        listed, want,
        "ps --format json must list the host pids of init and the exec'd sleep"
    );

    let t = ctx.run(&["ps", &id]).ok();
    let mut lines = t.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    let col = header
        .iter()
        .position(|h| *h == "PID")
        .unwrap_or_else(|| panic!("ps table has no PID header: {t}"));
    let rows: BTreeSet<i64> = lines
        .filter_map(|l| l.split_whitespace().nth(col).and_then(|p| p.parse().ok()))
        .collect();
    assert_eq!(rows, want, "ps table rows: {t}");
}

/// The cpu/memory/pids schema checks that hold for any runtime; `limit` is the memory limit.
#[track_caller]
fn check_stats_schema(st: &Value, id: &str, mem_limit: u64, pids_limit: u64) {
    assert_eq!(st["type"], "stats", "{st}");
    assert_eq!(st["id"], id, "{st}");
    let d = &st["data"];
    assert!(
        d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "cpu.usage.total: {st}"
    );
    if !cg::is_v2() {
        // From cpuacct.usage_percpu; cgroup v2 has no per-cpu usage (runc leaves it out there).
        assert!(d["cpu"]["usage"]["percpu"].is_array(), "cpu.usage.percpu: {st}");
    }
    assert!(d["cpu"]["usage"]["kernel"].is_u64(), "cpu.usage.kernel: {st}");
    assert!(d["cpu"]["usage"]["user"].is_u64(), "cpu.usage.user: {st}");
    assert_eq!(
        d["memory"]["usage"]["limit"].as_u64(),
        Some(mem_limit),
        "memory.usage.limit: {st}"
    );
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "memory.usage.usage: {st}"
    );
    assert!(d["memory"]["usage"]["failcnt"].is_u64(), "memory.usage.failcnt: {st}");
    assert!(d["memory"]["raw"].is_object(), "memory.raw: {st}");
    assert!(d["pids"]["current"].as_u64().unwrap_or(0) >= 1, "pids.current: {st}");
    assert_eq!(d["pids"]["limit"].as_u64(), Some(pids_limit), "pids.limit: {st}");
}

/// Starts `sleep 1000` with a memory and pids limit under `ctx` and returns its `events --stats`.
fn stats_of_sleeper(ctx: &Ctx) -> (String, Value) {
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    set_resource(&mut b, "memory", json!({ "limit": 64 * MIB }));
    set_resource(&mut b, "pids", json!({ "limit": 25 }));
    set_resource(&mut b, "cpu", json!({ "quota": 50000, "period": 100000 }));
    ctx.create_start(&b, &id);
    let st = cg::stats(ctx, &id);
    (id, st)
}

/// Key paths of `data` in a stats object.
fn data_keys(st: &Value) -> BTreeSet<String> {
    let mut k = BTreeSet::new();
    cg::key_paths(&st["data"], "", &mut k);
    k
}

/// The same sleeper under the reference runc (when the runtime under test is not runc and runc
/// is installed): its context (keep it alive until the comparison is done) and stats.
fn reference_stats() -> Option<(Ctx, Value)> {
    let reference = Path::new("/usr/sbin/runc");
    if runtime_is("runc") || !reference.exists() {
        eprintln!("no comparison with runc: the runtime under test is runc, or runc is not installed");
        return None;
    }
    let rctx = Ctx::with_runtime("cg_stats_ref", reference.to_path_buf());
    let (rid, rst) = stats_of_sleeper(&rctx);
    check_stats_schema(&rst, &rid, 64 * MIB, 25);
    Some((rctx, rst))
}

#[test]
fn events_stats_cpu_memory_pids_keys_match_runc() {
    require_root!();
    let ctx = Ctx::new("cg_stats");
    let (id, st) = stats_of_sleeper(&ctx);
    check_stats_schema(&st, &id, 64 * MIB, 25);

    let in_sections = |p: &&String| {
        ["cpu", "memory", "pids"]
            .iter()
            .any(|s| *p == s || p.starts_with(&format!("{s}.")))
    };
    let mine = data_keys(&st);
    let unknown: Vec<&String> = mine
        .iter()
        .filter(in_sections)
        .filter(|p| !cg::runc_schema_allows(p))
        .collect();
    assert!(
        unknown.is_empty(),
        "keys runc never prints in cpu/memory/pids: {unknown:?}\n{st}"
    );

    // Against the reference: every key runc prints in these sections must be there too, except
    // those runc itself leaves out when their value is zero (Go `omitempty`).
    let Some((_rctx, rst)) = reference_stats() else {
        return;
    };
    let theirs = data_keys(&rst);
    let missing: Vec<&String> = theirs
        .iter()
        .filter(in_sections)
        .filter(|p| !cg::omitted_when_zero(p) && !mine.contains(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "keys runc prints in cpu/memory/pids that are missing: {missing:?}\n--- runtime:\n{st}\n--- runc:\n{rst}"
    );
}

#[test]
fn events_stats_top_level_sections_match_runc() {
    require_root!();
    let ctx = Ctx::new("cg_stats_top");
    let (id, st) = stats_of_sleeper(&ctx);
    check_stats_schema(&st, &id, 64 * MIB, 25);
    let top = |st: &Value| -> BTreeSet<String> {
        st["data"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let Some((_rctx, rst)) = reference_stats() else {
        return;
    };
    // runc prints every section of its Stats type (none is omitempty), empty ones as {} or null.
    assert_eq!(
        top(&st),
        top(&rst),
        "sections of data differ from runc's\n--- runtime:\n{st}\n--- runc:\n{rst}"
    );
}

#[test]
fn kill_all_empties_the_cgroup_without_pid_namespace() {
    require_root!();
    let ctx = Ctx::new("cg_killall");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "sleep 1001 & sleep 1002 & wait"]);
    // Without its own pid namespace, the container's other processes do not die with its init:
    // kill --all must signal every process in the cgroup, an exec'd one included.
    b.remove_namespace("pid");
    ctx.create_start(&b, &id);
    wait_pid_count(&b, 3);
    ctx.run(&["exec", "-d", &id, "sleep", "1003"]).ok();
    let procs = wait_pid_count(&b, 4);
    let sleeps: Vec<String> = procs
        .iter()
        .map(|p| cg::cmdline(*p))
        .filter(|c| c.starts_with("sleep 100"))
        .collect();
    assert_eq!(sleeps.len(), 3, "three sleeps expected in {procs:?}: {sleeps:?}");

    ctx.run(&["kill", "--all", &id, "KILL"]).ok();
    let mut alive = Vec::new();
    let done = poll_for(TIMEOUT, || {
        alive = procs.iter().copied().filter(|p| host::pid_alive(*p)).collect();
        alive.is_empty().then_some(())
    });
    assert!(
        done.is_some(),
        "kill --all KILL left processes alive: {:?}",
        alive.iter().map(|p| (*p, cg::cmdline(*p))).collect::<Vec<_>>()
    );
    ctx.wait_status(&id, "stopped");
    assert!(cg::pids(&b).is_empty(), "cgroup not empty: {:?}", cg::pids(&b));
    ctx.delete(&id).ok();
}

#[test]
fn delete_removes_only_its_own_cgroup() {
    require_root!();
    let ctx = Ctx::new("cg_delete");
    let (id_a, b_a) = ctx.bundle(&["sleep", "1000"]);
    let (id_b, b_b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b_a, &id_a);
    ctx.create_start(&b_b, &id_b);
    let dirs_a = host::cgroup_dirs(&b_a.cgroups_path());
    let dirs_b = host::cgroup_dirs(&b_b.cgroups_path());
    assert!(!dirs_a.is_empty(), "no cgroup dirs for {id_a}");
    assert!(!dirs_b.is_empty(), "no cgroup dirs for {id_b}");
    let pid_b = ctx.pid(&id_b);

    ctx.kill(&id_a, "KILL").ok();
    ctx.wait_status(&id_a, "stopped");
    ctx.delete(&id_a).ok();
    let left: Vec<&PathBuf> = dirs_a.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "delete left cgroup dirs: {left:?}");

    let after_b = host::cgroup_dirs(&b_b.cgroups_path());
    assert_eq!(after_b, dirs_b, "deleting {id_a} changed the sibling's cgroup dirs");
    assert_eq!(ctx.status(&id_b).as_deref(), Some("running"), "sibling not running");
    assert!(cg::pids(&b_b).contains(&pid_b), "sibling's init left its cgroup");

    ctx.delete_force(&id_b).ok();
    let left: Vec<PathBuf> = host::cgroup_dirs(&b_b.cgroups_path());
    assert!(left.is_empty(), "delete --force left cgroup dirs: {left:?}");
}
