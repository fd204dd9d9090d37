//! Root tests against the real kernel. They detect the cgroup mode at runtime (v1/hybrid on the
//! development host, pure v2 in the VM of tests/run-v2-in-vm.sh), use only absolute paths under
//! /moor-test-<pid>-<n>, and remove every cgroup they create.

mod common;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use common::*;
use moor_cgroups::{detect_mode, resources_from_update_flags, Cgroup, CgroupConfig, Error, Mode, UpdateFlags};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder,
    LinuxMemoryBuilder, LinuxNetworkBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
    LinuxThrottleDeviceBuilder,
};

macro_rules! need_root {
    ($name:expr) => {
        if skip_unless_root($name) {
            return;
        }
    };
}

fn mode() -> Mode {
    detect_mode().expect("detect mode")
}

fn v1(cg: &Cgroup, ctrl: &str) -> PathBuf {
    cg.v1_dir(ctrl)
        .unwrap_or_else(|| panic!("v1 controller {ctrl} not present"))
        .to_path_buf()
}

fn v2(cg: &Cgroup) -> PathBuf {
    cg.unified_dir().expect("unified dir").to_path_buf()
}

fn controller_enabled_v2(dir: &Path, c: &str) -> bool {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().any(|x| x == c))
        .unwrap_or(false)
}

#[test]
fn mode_is_detected() {
    let m = mode();
    eprintln!("cgroup mode: {m:?}");
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(m == Mode::Unified, unified);
}

#[test]
fn create_apply_read_back_destroy() {
    need_root!("create_apply_read_back_destroy");
    let root = unique_root();
    let mut g = create(&format!("{root}/ctr"));
    let cg = g.cg();
    assert!(cg.created_dirs().iter().any(|d| d.ends_with(&root[1..])));
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .swap(64i64 << 20)
                .reservation(32i64 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .burst(1000u64)
                .idle(0i64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(50i64).build().unwrap())
        .build()
        .unwrap();
    cg.apply(&r).expect("apply");
    match cg.mode() {
        Mode::Unified => {
            let d = v2(cg);
            assert_eq!(read(&d.join("memory.max")), "67108864");
            assert_eq!(read(&d.join("memory.low")), "33554432");
            if d.join("memory.swap.max").exists() {
                assert_eq!(read(&d.join("memory.swap.max")), "0");
            }
            assert_eq!(read(&d.join("cpu.weight")), "20");
            assert_eq!(read(&d.join("cpu.max")), "50000 100000");
            assert_eq!(read(&d.join("cpu.max.burst")), "1000");
            assert_eq!(read(&d.join("cpuset.cpus")), "0");
            assert_eq!(read(&d.join("pids.max")), "50");
        }
        _ => {
            let m = v1(cg, "memory");
            assert_eq!(read(&m.join("memory.limit_in_bytes")), "67108864");
            assert_eq!(read(&m.join("memory.memsw.limit_in_bytes")), "67108864");
            assert_eq!(read(&m.join("memory.soft_limit_in_bytes")), "33554432");
            let c = v1(cg, "cpu");
            assert_eq!(read(&c.join("cpu.shares")), "512");
            assert_eq!(read(&c.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(&c.join("cpu.cfs_period_us")), "100000");
            assert_eq!(read(&c.join("cpu.cfs_burst_us")), "1000");
            assert_eq!(read(&v1(cg, "cpuset").join("cpuset.cpus")), "0");
            assert_eq!(read(&v1(cg, "pids").join("pids.max")), "50");
            // default device list programmed
            let list = read(&v1(cg, "devices").join("devices.list"));
            assert!(list.contains("c 1:3 rwm"), "{list}");
            assert!(!list.contains("a *:* rwm"), "{list}");
        }
    }
    let created: Vec<PathBuf> = cg.created_dirs().to_vec();
    g.destroy();
    for d in created {
        assert!(!d.exists(), "{}", d.display());
    }
}

#[test]
fn destroy_keeps_what_it_did_not_create() {
    need_root!("destroy_keeps_what_it_did_not_create");
    let root = unique_root();
    let mut parent = create(&format!("{root}/parent"));
    let mut child = create(&format!("{root}/parent/child"));
    let pdirs = parent.cg().dirs();
    let cdirs = child.cg().dirs();
    // The child created only its own leaf directories.
    for d in child.cg().created_dirs() {
        assert!(d.ends_with("parent/child"), "{}", d.display());
    }
    child.destroy();
    for d in &cdirs {
        assert!(!d.exists(), "{}", d.display());
    }
    for d in &pdirs {
        assert!(d.exists(), "{} was removed by the child", d.display());
    }
    parent.destroy();
    for d in &pdirs {
        assert!(!d.exists(), "{}", d.display());
    }
}

#[test]
fn serialized_state_round_trips() {
    need_root!("serialized_state_round_trips");
    let mut g = create(&format!("{}/ctr", unique_root()));
    let json = serde_json::to_string(g.cg()).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, g.cg());
    g.destroy();
}

fn fork_ten() -> i32 {
    let mut ok = 0;
    for _ in 0..10 {
        // SAFETY: async-signal-safe calls only.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            unsafe {
                libc::pause();
                libc::_exit(0);
            }
        }
        if pid > 0 {
            ok += 1;
        }
    }
    ok
}

#[test]
fn pids_limit_stops_forks() {
    need_root!("pids_limit_stops_forks");
    let mut g = create(&format!("{}/ctr", unique_root()));
    let r = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(4i64).build().unwrap())
        .build()
        .unwrap();
    g.cg().apply(&r).expect("apply");
    let mut c = spawn_waiting(fork_ten);
    g.cg().add_task(c.pid).expect("add_task");
    assert_eq!(g.cg().pids().unwrap(), vec![c.pid]);
    c.release();
    let st = c.wait();
    assert_eq!(exited_with(st), Some(3), "child + 3 forks = pids.max 4");
    // The three grandchildren are still in the cgroup; destroy kills them.
    assert_eq!(g.cg().pids().unwrap().len(), 3);
    let stats = g.cg().stats().unwrap();
    let pids = stats.pids.as_ref().expect("pids statistics");
    assert_eq!((pids.current, pids.limit), (3, 4), "{stats:?}");
    g.destroy();
}

#[test]
fn memory_limit_ooms_and_is_counted() {
    need_root!("memory_limit_ooms_and_is_counted");
    let mut g = create(&format!("{}/ctr", unique_root()));
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(16i64 << 20)
                .swap(16i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.cg().apply(&r).expect("apply");
    assert_eq!(g.cg().oom_count().unwrap(), 0);
    let mut c = spawn_waiting(touch_64m);
    g.cg().add_task(c.pid).expect("add_task");
    c.release();
    let st = c.wait();
    assert_eq!(killed_by(st), Some(libc::SIGKILL), "status {st:#x}");
    assert!(g.cg().oom_count().unwrap() >= 1);
    let stats = g.cg().stats().unwrap();
    let memory = stats.memory.as_ref().expect("memory statistics");
    assert_eq!(memory.usage.limit, 16u64 << 20, "{stats:?}");
    assert!(memory.oom_kill() >= 1, "{stats:?}");
    g.destroy();
}

fn spin() -> i32 {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

#[test]
fn freeze_stops_a_busy_child() {
    need_root!("freeze_stops_a_busy_child");
    let mut g = create(&format!("{}/ctr", unique_root()));
    let mut c = spawn_waiting(spin);
    g.cg().add_task(c.pid).expect("add_task");
    c.release();
    sleep(Duration::from_millis(300));
    assert!(!g.cg().is_frozen().unwrap());
    g.cg().freeze().expect("freeze");
    assert!(g.cg().is_frozen().unwrap());
    sleep(Duration::from_millis(100));
    let t1 = c.cpu_ticks();
    sleep(Duration::from_millis(700));
    let t2 = c.cpu_ticks();
    assert_eq!(t1, t2, "a frozen child must not use CPU");
    g.cg().thaw().expect("thaw");
    assert!(!g.cg().is_frozen().unwrap());
    sleep(Duration::from_millis(1000));
    let t3 = c.cpu_ticks();
    assert!(t3 > t2, "a thawed child runs again ({t2} -> {t3})");
    // destroy kills the busy child (it is still running).
    g.destroy();
    let st = c.wait();
    assert_eq!(killed_by(st), Some(libc::SIGKILL));
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn try_open(path: &std::ffi::CStr, flags: i32) -> Result<(), i32> {
    // SAFETY: valid C string; the fd is closed right away.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
    Ok(())
}

/// bit 0: kmsg read ok, bit 1: kmsg write EPERM, bit 2: null rw ok, bit 3: full read ok.
fn probe_devices() -> i32 {
    let mut code = 0;
    if try_open(c"/dev/kmsg", libc::O_RDONLY).is_ok() {
        code |= 1;
    }
    if try_open(c"/dev/kmsg", libc::O_WRONLY) == Err(libc::EPERM) {
        code |= 2;
    }
    if try_open(c"/dev/null", libc::O_RDWR).is_ok() {
        code |= 4;
    }
    if try_open(c"/dev/full", libc::O_RDONLY).is_ok() {
        code |= 8;
    }
    code
}

fn run_probe(cg: &Cgroup) -> i32 {
    let mut c = spawn_waiting(probe_devices);
    cg.add_task(c.pid).expect("add_task");
    c.release();
    let st = c.wait();
    exited_with(st).expect("probe exited")
}

#[test]
fn device_rules_are_enforced_and_replaced() {
    need_root!("device_rules_are_enforced_and_replaced");
    if !Path::new("/dev/kmsg").exists() {
        skip("device_rules_are_enforced_and_replaced", "no /dev/kmsg to probe");
        return;
    }
    let mut g = create(&format!("{}/ctr", unique_root()));
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let kmsg_read = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(1i64)
        .minor(11i64)
        .access("r")
        .build()
        .unwrap();
    let r = LinuxResourcesBuilder::default()
        .devices(vec![deny_all.clone(), kmsg_read])
        .build()
        .unwrap();
    g.cg().apply(&r).expect("apply");
    assert_eq!(run_probe(g.cg()), 1 | 2 | 4 | 8, "kmsg r only, defaults allowed");
    if g.cg().mode() == Mode::Unified {
        let progs = moor_cgroups::devices::bpf::query_device_programs(&v2(g.cg())).unwrap();
        assert_eq!(progs.len(), 1, "one device program attached");
    } else {
        let list = read(&v1(g.cg(), "devices").join("devices.list"));
        assert!(list.contains("c 1:11 r"), "{list}");
    }
    // Update: deny everything again (defaults only): kmsg read must now fail.
    let r = LinuxResourcesBuilder::default()
        .devices(vec![deny_all])
        .build()
        .unwrap();
    g.cg().update(&r).expect("update devices");
    assert_eq!(run_probe(g.cg()), 2 | 4 | 8, "kmsg denied after update");
    if g.cg().mode() == Mode::Unified {
        let progs = moor_cgroups::devices::bpf::query_device_programs(&v2(g.cg())).unwrap();
        assert_eq!(progs.len(), 1, "the old program was detached");
    }
    // An update without device rules leaves them alone.
    g.cg().update(&LinuxResources::default()).expect("empty update");
    assert_eq!(run_probe(g.cg()), 2 | 4 | 8);
    g.destroy();
}

#[test]
fn update_flags_change_limits() {
    need_root!("update_flags_change_limits");
    let mut g = create(&format!("{}/ctr", unique_root()));
    g.cg().apply(&LinuxResources::default()).expect("apply");
    let r = resources_from_update_flags(&UpdateFlags {
        memory: Some("96m".into()),
        memory_swap: Some("128m".into()),
        memory_reservation: Some("32m".into()),
        cpu_shares: Some("2048".into()),
        cpu_quota: Some("20000".into()),
        cpu_period: Some("50000".into()),
        pids_limit: Some("77".into()),
        ..Default::default()
    })
    .unwrap();
    g.cg().update(&r).expect("update");
    match g.cg().mode() {
        Mode::Unified => {
            let d = v2(g.cg());
            assert_eq!(read(&d.join("memory.max")), (96u64 << 20).to_string());
            if d.join("memory.swap.max").exists() {
                assert_eq!(read(&d.join("memory.swap.max")), (32u64 << 20).to_string());
            }
            assert_eq!(read(&d.join("cpu.max")), "20000 50000");
            assert_eq!(read(&d.join("cpu.weight")), "79");
            assert_eq!(read(&d.join("pids.max")), "77");
        }
        _ => {
            let m = v1(g.cg(), "memory");
            assert_eq!(read(&m.join("memory.limit_in_bytes")), (96u64 << 20).to_string());
            assert_eq!(read(&m.join("memory.memsw.limit_in_bytes")), (128u64 << 20).to_string());
            let c = v1(g.cg(), "cpu");
            assert_eq!(read(&c.join("cpu.cfs_quota_us")), "20000");
            assert_eq!(read(&c.join("cpu.cfs_period_us")), "50000");
            assert_eq!(read(&c.join("cpu.shares")), "2048");
            assert_eq!(read(&v1(g.cg(), "pids").join("pids.max")), "77");
        }
    }
    // Lower memory below memsw ordering: memory 32m, swap 48m (memsw goes down first safely).
    let r = resources_from_update_flags(&UpdateFlags {
        memory: Some("32m".into()),
        memory_swap: Some("48m".into()),
        ..Default::default()
    })
    .unwrap();
    g.cg().update(&r).expect("shrink memory and swap");
    // Only the period: the quota stays.
    let r = resources_from_update_flags(&UpdateFlags {
        cpu_period: Some("40000".into()),
        ..Default::default()
    })
    .unwrap();
    g.cg().update(&r).expect("period only");
    if g.cg().mode() == Mode::Unified {
        assert_eq!(read(&v2(g.cg()).join("cpu.max")), "20000 40000");
    } else {
        assert_eq!(read(&v1(g.cg(), "cpu").join("cpu.cfs_quota_us")), "20000");
    }
    g.destroy();
}

fn err_of(cg: &Cgroup, r: LinuxResources) -> String {
    match cg.apply(&r) {
        Ok(()) => panic!("apply unexpectedly succeeded for {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn invalid_and_unsupported_fields_are_named() {
    need_root!("invalid_and_unsupported_fields_are_named");
    let mut g = create(&format!("{}/ctr", unique_root()));
    let cg = g.cg();
    let e = err_of(
        cg,
        LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().shares(1u64).build().unwrap())
            .build()
            .unwrap(),
    );
    assert!(e.starts_with("linux.resources.cpu.shares:"), "{e}");
    let e = err_of(
        cg,
        LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-7i64).build().unwrap())
            .build()
            .unwrap(),
    );
    assert!(e.starts_with("linux.resources.memory.limit:"), "{e}");
    let e = err_of(
        cg,
        LinuxResourcesBuilder::default()
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2M")
                .limit(0i64)
                .build()
                .unwrap()])
            .build()
            .unwrap(),
    );
    assert!(e.starts_with("linux.resources.hugepageLimits[0]:"), "{e}");
    let net = LinuxResourcesBuilder::default()
        .network(LinuxNetworkBuilder::default().class_id(0x100001u32).build().unwrap())
        .build()
        .unwrap();
    let mut unified = std::collections::HashMap::new();
    unified.insert("pids.max".to_string(), "9".to_string());
    let uni = LinuxResourcesBuilder::default().unified(unified).build().unwrap();
    match cg.mode() {
        Mode::Unified => {
            let e = err_of(cg, net);
            assert!(
                e.contains("linux.resources.network.classID") && e.contains("cgroup v2"),
                "{e}"
            );
            let e = err_of(
                cg,
                LinuxResourcesBuilder::default()
                    .memory(LinuxMemoryBuilder::default().swappiness(10u64).build().unwrap())
                    .build()
                    .unwrap(),
            );
            assert!(e.starts_with("linux.resources.memory.swappiness:"), "{e}");
            let e = err_of(
                cg,
                LinuxResourcesBuilder::default()
                    .cpu(LinuxCpuBuilder::default().realtime_runtime(1000i64).build().unwrap())
                    .build()
                    .unwrap(),
            );
            assert!(e.starts_with("linux.resources.cpu.realtimeRuntime:"), "{e}");
            // unified works on v2
            cg.apply(&uni).expect("unified on v2");
            assert_eq!(read(&v2(cg).join("pids.max")), "9");
            let mut bad = std::collections::HashMap::new();
            bad.insert("../escape".to_string(), "1".to_string());
            let e = err_of(cg, LinuxResourcesBuilder::default().unified(bad).build().unwrap());
            assert!(e.contains("linux.resources.unified"), "{e}");
        }
        _ => {
            let e = err_of(cg, uni);
            assert!(e.starts_with("linux.resources.unified:"), "{e}");
            if cg.v1_dir("net_cls").is_none() {
                let e = err_of(cg, net);
                assert!(
                    e.starts_with("linux.resources.network.classID:") && e.contains("net_cls"),
                    "{e}"
                );
            }
            #[allow(deprecated)]
            let kmem = LinuxMemoryBuilder::default().kernel(1i64 << 30).build().unwrap();
            // Ignored, as by runc 1.1 (kernel 6.x accepts kmem limits and ignores them too):
            // nothing is written.
            let kmem_file = v1(cg, "memory").join("memory.kmem.limit_in_bytes");
            let before = std::fs::read_to_string(&kmem_file).ok();
            cg.apply(&LinuxResourcesBuilder::default().memory(kmem).build().unwrap())
                .expect("memory.kernel is ignored");
            assert_eq!(std::fs::read_to_string(&kmem_file).ok(), before);
            let blk = v1(cg, "blkio");
            if !blk.join("blkio.weight").exists() && !blk.join("blkio.bfq.weight").exists() {
                let e = err_of(
                    cg,
                    LinuxResourcesBuilder::default()
                        .block_io(LinuxBlockIoBuilder::default().weight(500u16).build().unwrap())
                        .build()
                        .unwrap(),
                );
                assert!(
                    e.starts_with("linux.resources.blockIO.weight:") && e.contains("no weight"),
                    "{e}"
                );
            }
            // v1-only fields that do work here
            cg.apply(
                &LinuxResourcesBuilder::default()
                    .memory(
                        LinuxMemoryBuilder::default()
                            .swappiness(10u64)
                            .disable_oom_killer(true)
                            .build()
                            .unwrap(),
                    )
                    .cpu(LinuxCpuBuilder::default().realtime_period(500_000u64).build().unwrap())
                    .build()
                    .unwrap(),
            )
            .expect("swappiness, oom killer, rt period on v1");
            let m = v1(cg, "memory");
            assert_eq!(read(&m.join("memory.swappiness")), "10");
            assert!(read(&m.join("memory.oom_control")).contains("oom_kill_disable 1"));
            assert_eq!(read(&v1(cg, "cpu").join("cpu.rt_period_us")), "500000");
        }
    }
    g.destroy();
}

fn block_device() -> Option<(i64, i64)> {
    let mut names: Vec<_> = std::fs::read_dir("/sys/block").ok()?.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    // Prefer a real disk over loop and zram devices.
    names.sort_by_key(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with("loop") || n.starts_with("zram")
    });
    let dev = std::fs::read_to_string(names.first()?.path().join("dev")).ok()?;
    let (a, b) = dev.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn block_io_throttle_is_written() {
    need_root!("block_io_throttle_is_written");
    let Some((ma, mi)) = block_device() else {
        skip("block_io_throttle_is_written", "no block device in /sys/block");
        return;
    };
    let mut g = create(&format!("{}/ctr", unique_root()));
    let cg = g.cg();
    if cg.mode() == Mode::Unified && !controller_enabled_v2(&v2(cg), "io") {
        skip("block_io_throttle_is_written", "the io controller is not enabled here");
        return;
    }
    let t = LinuxThrottleDeviceBuilder::default()
        .major(ma)
        .minor(mi)
        .rate(1_048_576u64)
        .build()
        .unwrap();
    let r = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .throttle_read_bps_device(vec![t])
                .throttle_write_iops_device(vec![t])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cg.apply(&r).expect("apply throttles");
    if cg.mode() == Mode::Unified {
        let s = read(&v2(cg).join("io.max"));
        assert!(s.contains(&format!("{ma}:{mi} rbps=1048576")), "{s}");
        assert!(s.contains("wiops=1048576"), "{s}");
    } else {
        let b = v1(cg, "blkio");
        let s = read(&b.join("blkio.throttle.read_bps_device"));
        assert_eq!(s, format!("{ma}:{mi} 1048576"));
    }
    g.destroy();
}

#[test]
fn hugetlb_limits() {
    need_root!("hugetlb_limits");
    let sizes = moor_cgroups::convert::host_hugepage_sizes();
    let Some(size) = sizes.iter().find(|s| *s == "2MB").or(sizes.first()).cloned() else {
        skip(
            "hugetlb_limits",
            "this kernel has no huge page sizes (/sys/kernel/mm/hugepages)",
        );
        return;
    };
    let mut g = create(&format!("{}/ctr", unique_root()));
    let cg = g.cg();
    let r = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size(size.clone())
            .limit(4i64 << 20)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    let file = match cg.mode() {
        Mode::Unified => Some(v2(cg).join(format!("hugetlb.{size}.max"))),
        _ => cg
            .v1_dir("hugetlb")
            .map(|d| d.join(format!("hugetlb.{size}.limit_in_bytes"))),
    };
    match file.filter(|f| f.exists()) {
        Some(f) => {
            cg.apply(&r).expect("hugetlb");
            assert_eq!(read(&f), (4u64 << 20).to_string());
        }
        None => {
            // Hybrid here: hugetlb lives only on the unified tree, not delegated to our cgroup.
            let e = cg.apply(&r).unwrap_err().to_string();
            assert!(
                e.starts_with("linux.resources.hugepageLimits[0]:") && e.contains("hugetlb"),
                "{e}"
            );
        }
    }
    g.destroy();
}

#[test]
fn stats_follow_runc_schema() {
    need_root!("stats_follow_runc_schema");
    let mut g = create(&format!("{}/ctr", unique_root()));
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(64i64 << 20).build().unwrap())
        .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
        .build()
        .unwrap();
    g.cg().apply(&r).unwrap();
    let mut c = spawn_waiting(spin);
    g.cg().add_task(c.pid).unwrap();
    c.release();
    sleep(Duration::from_millis(300));
    let ev = g.cg().stats_event("ctr1").unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], "ctr1");
    let d = &ev["data"];
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");
    assert!(d["cpu"]["usage"]["user"].is_u64(), "{d}");
    assert!(d["cpu"]["usage"]["kernel"].is_u64(), "{d}");
    assert!(d["cpu"]["throttling"].is_object(), "{d}");
    assert_eq!(d["memory"]["usage"]["limit"], 64u64 << 20, "{d}");
    assert!(d["memory"]["usage"]["failcnt"].is_u64(), "{d}");
    assert!(d["memory"]["raw"].is_object(), "{d}");
    assert_eq!(d["pids"]["current"], 1, "{d}");
    assert_eq!(d["pids"]["limit"], 20, "{d}");
    assert!(d["blkio"].is_object() && d["hugetlb"].is_object(), "{d}");
    g.destroy();
    let _ = c.wait();
}

#[test]
fn systemd_driver_reports_unavailable() {
    if std::path::Path::new("/run/systemd/system").exists() {
        eprintln!("SKIP: systemd runs here; integration/tests/systemd.rs tests the driver itself");
        return;
    }
    let r = Cgroup::create(&CgroupConfig {
        cgroups_path: "system.slice:moor:test",
        container_id: "test",
        systemd: true,
        rootless: false,
    });
    match r {
        Err(Error::SystemdUnavailable { msg, .. }) => eprintln!("systemd: {msg}"),
        other => panic!("expected SystemdUnavailable, got {other:?}"),
    }
}

/// A cgroup recorded as planned before it is made: destroying the plan removes whatever part was
/// made (a runtime killed while creating), keeps what existed before, and is harmless when
/// nothing was made at all.
#[test]
fn planned_cgroup_destroys_a_partly_made_one() {
    need_root!("planned_cgroup_destroys_a_partly_made_one");
    let root = unique_root();
    let mut existing = create(&format!("{root}/kept"));
    let cfg = |path: &'static str| CgroupConfig {
        cgroups_path: path,
        container_id: "test",
        systemd: false,
        rootless: false,
    };
    let leaf: &'static str = Box::leak(format!("{root}/kept/new/ctr").into_boxed_str());
    let plan = Cgroup::planned(&cfg(leaf)).expect("plan");
    assert!(
        plan.created_dirs().iter().all(|d| !d.exists()),
        "{:?}",
        plan.created_dirs()
    );
    for d in existing.cg().dirs() {
        assert!(!plan.created_dirs().contains(&d), "{} existed already", d.display());
    }
    // Nothing made yet.
    plan.destroy().expect("destroy an unmade plan");
    // Made in one hierarchy only, then the maker died.
    let first = plan.dirs().into_iter().next().expect("a directory");
    std::fs::create_dir_all(&first).unwrap();
    plan.destroy().expect("destroy a partly made plan");
    assert!(!first.exists(), "{} left", first.display());
    assert!(
        !first.parent().unwrap().exists(),
        "the new ancestor of {} left",
        first.display()
    );
    // Made completely: the plan covers what create made.
    let made = create(leaf);
    for d in made.cg().created_dirs() {
        assert!(plan.created_dirs().contains(d), "{} made but not planned", d.display());
    }
    plan.destroy().expect("destroy a made plan");
    for d in made.cg().dirs() {
        assert!(!d.exists(), "{} left", d.display());
    }
    drop(made); // destroys again: nothing left to find, no error
    for d in existing.cg().dirs() {
        assert!(d.exists(), "{} existed before and was removed", d.display());
    }
    existing.destroy();
}
