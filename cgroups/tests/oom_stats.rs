//! Root tests of the typed statistics and the OOM watcher against the real kernel: v1/hybrid on
//! the development host, pure v2 in the VM of tests/run-v2-in-vm.sh. Each test's cgroup is
//! under its own absolute root and is removed at the end.

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use common::*;
use moor_cgroups::{detect_mode, MemoryStat, Mode, OomUpdate, OomWatcher};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};

macro_rules! need_root {
    ($name:expr) => {
        if skip_unless_root($name) {
            return;
        }
    };
}

/// A unique absolute path below the crate's per-test root (/moor-test-<pid>-<n>): never a
/// relative one, which on this host would land in the supervisor's own cgroup.
fn test_path(tag: &str) -> String {
    format!("{}/{tag}", unique_root())
}

fn limit_memory(g: &Guard, bytes: i64, disable_oom_killer: bool) {
    let mut m = LinuxMemoryBuilder::default().limit(bytes);
    if detect_mode().expect("mode") != Mode::Unified {
        // v1 counts memory+swap in memsw; without this the hog would swap instead of dying.
        m = m.swap(bytes);
        if disable_oom_killer {
            m = m.disable_oom_killer(true);
        }
    } else {
        m = m.swap(0);
    }
    let r = LinuxResourcesBuilder::default()
        .memory(m.build().unwrap())
        .build()
        .unwrap();
    g.cg().apply(&r).expect("apply memory limit");
}

/// Touches 8 MiB, then sleeps until killed.
fn hold_8m() -> i32 {
    if !touch_anonymous(8 << 20) {
        return 2;
    }
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

fn readable(w: &OomWatcher, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: w.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// Waits on the watcher until `done` holds for the summed updates, or 20 s pass.
fn watch_until(w: &mut OomWatcher, done: impl Fn(&OomUpdate) -> bool) -> OomUpdate {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = OomUpdate::default();
    while Instant::now() < deadline {
        let u = w.wait(Some(Duration::from_millis(500))).expect("wait");
        seen.total = u.total;
        seen.new.oom += u.new.oom;
        seen.new.oom_kill += u.new.oom_kill;
        seen.cgroup_gone |= u.cgroup_gone;
        if done(&seen) {
            break;
        }
    }
    seen
}

#[test]
fn oom_watcher_reports_a_kill() {
    need_root!("oom_watcher_reports_a_kill");
    let mut g = create(&test_path("kill"));
    limit_memory(&g, 16 << 20, false);
    let mut w = g.cg().oom_watcher().expect("oom watcher");
    assert_eq!(w.counts().oom_kill, 0);
    assert!(
        !readable(&w, 0),
        "the watcher's fd is readable before anything happened"
    );
    assert!(!w.check().expect("check").any());

    let mut c = spawn_waiting(touch_64m);
    g.cg().add_task(c.pid).expect("add_task");
    c.release();
    assert!(readable(&w, 20_000), "no OOM notification within 20 s");
    let seen = watch_until(&mut w, |u| u.new.oom_kill >= 1);
    let st = c.wait();
    assert_eq!(
        killed_by(st),
        Some(libc::SIGKILL),
        "the hog was not OOM-killed: status {st:#x}"
    );
    assert!(seen.new.oom_kill >= 1 && seen.new.oom >= 1, "{seen:?}");
    assert_eq!(seen.total, w.counts());
    assert!(!seen.cgroup_gone, "{seen:?}");
    assert!(g.cg().oom_count().unwrap() >= 1);
    g.destroy();
}

/// v1 tells of an OOM also when the OOM killer is disabled and nobody dies (runc's `events`
/// prints one then too): the eventfd fires, oom_kill stays 0.
#[test]
fn oom_watcher_reports_an_oom_without_a_kill_on_v1() {
    need_root!("oom_watcher_reports_an_oom_without_a_kill_on_v1");
    if detect_mode().expect("mode") == Mode::Unified {
        skip(
            "oom_watcher_reports_an_oom_without_a_kill_on_v1",
            "cgroup v2 has no way to disable the OOM killer",
        );
        return;
    }
    let mut g = create(&test_path("nokill"));
    limit_memory(&g, 16 << 20, true);
    let mut w = g.cg().oom_watcher().expect("oom watcher");
    let mut c = spawn_waiting(touch_64m);
    g.cg().add_task(c.pid).expect("add_task");
    c.release();
    let seen = watch_until(&mut w, |u| u.new.oom >= 1);
    assert!(seen.new.oom >= 1, "no OOM reported while the hog is stuck: {seen:?}");
    assert_eq!(seen.new.oom_kill, 0, "{seen:?}");
    let stats = g.cg().stats().expect("stats");
    let oc = stats
        .memory
        .as_ref()
        .and_then(|m| m.oom_control.clone())
        .expect("oom_control");
    assert!(oc.oom_kill_disable && oc.under_oom, "{oc:?}");
    // SAFETY: killing our own child (stuck in the OOM wait, which SIGKILL ends).
    unsafe { libc::kill(c.pid, libc::SIGKILL) };
    assert_eq!(killed_by(c.wait()), Some(libc::SIGKILL));
    g.destroy();
}

#[test]
fn oom_watcher_sees_the_cgroup_go() {
    need_root!("oom_watcher_sees_the_cgroup_go");
    let mut g = create(&test_path("gone"));
    let mut w = g.cg().oom_watcher().expect("oom watcher");
    g.destroy();
    let seen = watch_until(&mut w, |u| u.cgroup_gone);
    assert!(seen.cgroup_gone, "{seen:?}");
    assert!(!seen.any(), "removing the cgroup is no OOM: {seen:?}");
}

#[test]
fn stats_of_a_running_process() {
    need_root!("stats_of_a_running_process");
    let mut g = create(&test_path("run"));
    limit_memory(&g, 64 << 20, false);
    let mut c = spawn_waiting(hold_8m);
    g.cg().add_task(c.pid).expect("add_task");
    c.release();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = g.cg().stats().expect("stats");
        let rss = s.memory.as_ref().map_or(0, |m| m.rss());
        if rss >= 8 << 20 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let m = stats.memory.as_ref().expect("memory statistics");
    assert!(m.usage.usage >= 8 << 20, "usage {} < 8 MiB: {stats:?}", m.usage.usage);
    assert!(m.rss() >= 8 << 20, "rss {} < 8 MiB: {stats:?}", m.rss());
    assert_eq!(m.usage.limit, 64 << 20);
    match (&m.stat, stats.mode) {
        (MemoryStat::V2(s), Mode::Unified) => assert_eq!(s.anon, m.rss()),
        (MemoryStat::V1(s), Mode::Legacy | Mode::Hybrid) => assert_eq!(s.rss, m.rss()),
        (s, mode) => panic!("memory.stat {s:?} in mode {mode:?}"),
    }
    let p = stats.pids.as_ref().expect("pids statistics");
    assert_eq!((p.current, p.limit), (1, u64::MAX), "{stats:?}");
    let usage = stats.cpu.as_ref().and_then(|c| c.usage.as_ref()).expect("cpu usage");
    assert!(usage.total > 0, "{usage:?}");
    assert!(!stats.cpuset.cpus.is_empty(), "{stats:?}");
    // SAFETY: killing our own child.
    unsafe { libc::kill(c.pid, libc::SIGKILL) };
    let _ = c.wait();
    g.destroy();
}
