//! `events`: the statistics of a running container, and OOM events as runc reports them (an
//! OOM is reported when the cgroup runs out of memory, also when nobody is killed).

use moor_integration::{poll_for, poll_until, require_root, skip, Ctx, TIMEOUT};
use serde_json::{json, Value};
use std::fs;
use std::process::Child;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

fn is_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// An `events` stream, killed when dropped.
struct Stream(Child, moor_integration::Output);

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running container's `events --stats` shows what runs in it: its processes and the memory
/// they use.
#[test]
fn stats_show_memory_and_pids_of_a_running_container() {
    require_root!();
    let ctx = Ctx::new("events_stats_running");
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh("sleep 1000 & exec sleep 1000");
    b.set("/linux/resources/memory", json!({ "limit": 64 * MIB }));
    b.set("/linux/resources/pids", json!({ "limit": 20 }));
    ctx.create_start(&b, &id);
    let data = poll_until(TIMEOUT, "two processes in the container", || {
        let o = ctx.run(&["events", "--stats", &id]).ok();
        let v: Value = serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {o}"));
        (v["data"]["pids"]["current"] == 2).then_some(v)
    });
    let d = &data["data"];
    assert_eq!(data["type"], "stats", "{data}");
    assert_eq!(d["pids"]["limit"], 20, "{d}");
    let usage = d["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(
        usage > 0,
        "memory.usage.usage must be nonzero for a running container: {d}"
    );
    assert_eq!(d["memory"]["usage"]["limit"], 64 * MIB, "{d}");
    assert!(
        d["memory"]["raw"].as_object().is_some_and(|r| !r.is_empty()),
        "memory.raw must hold memory.stat: {d}"
    );
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");
}

/// With the OOM killer disabled (cgroup v1), a process that allocates over its limit is stopped,
/// not killed: `events` must still report the OOM, as runc does (it watches the v1 OOM
/// notification, not the kill counter, which stays 0).
#[test]
fn events_reports_an_oom_that_kills_nobody() {
    require_root!();
    if is_v2() {
        skip!("cgroup v2 cannot disable the OOM killer (memory.oom_control is v1 only)");
    }
    let ctx = Ctx::new("events_oom_nokill");
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh(
        "while [ ! -e /go ]; do sleep 0.1; done; \
         awk 'BEGIN { s = \"0123456789abcdef\"; while (1) s = s s }'; sleep 1000",
    );
    b.set(
        "/linux/resources/memory",
        json!({ "limit": 32 * MIB, "swap": 32 * MIB, "disableOOMKiller": true }),
    );
    ctx.create_start(&b, &id);
    let (child, out) = ctx.spawn_with(&["events", "--interval", "1s", &id], |_| {});
    let events = Stream(child, out);
    poll_until(TIMEOUT, "first events line", || {
        (!events.1.stdout_now().trim().is_empty()).then_some(())
    });
    fs::write(b.rootfs().join("go"), "").unwrap();

    let oom = poll_for(Duration::from_secs(20), || {
        events.1.stdout_now().lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["type"] == "oom").then_some(v)
        })
    });
    let oom = oom.unwrap_or_else(|| {
        panic!(
            "events printed no {{\"type\":\"oom\"}} line while the hog is stuck at its limit; \
             stderr:\n{}",
            events.1.stderr_now()
        )
    });
    assert_eq!(oom["id"], id.as_str(), "{oom}");
    drop(events);
    // Nobody was killed: the container still runs (the hog waits for memory).
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
    ctx.delete_force(&id).ok();
}
