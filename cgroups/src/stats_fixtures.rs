//! Statistics read from fixture cgroup directories (files as v1 and v2 kernels write them), to
//! the typed [`Stats`] and on to runc's JSON: no root, no real cgroup.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cgroup::Cgroup;
use crate::error::Error;
use crate::mode::Mode;
use crate::stats::{MemoryStat, Stats};

struct Fixture(PathBuf);

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let d = std::env::temp_dir().join(format!("moor-cgroups-fixture-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Fixture(d)
    }

    fn dir(&self, sub: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.0.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in files {
            std::fs::write(d.join(name), text).unwrap();
        }
        d
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cgroup(mode: Mode, v1: &[(&str, &Path)], unified: Option<&Path>) -> Cgroup {
    Cgroup {
        mode,
        v1: v1.iter().map(|(c, d)| (c.to_string(), d.to_path_buf())).collect(),
        unified: unified.map(Path::to_path_buf),
        created: Vec::new(),
        rootless: false,
        systemd: None,
        unit_started: false,
        denied: None,
    }
}

const V1_UNLIMITED: &str = "9223372036854771712\n";

fn v1_fixture(f: &Fixture) -> Cgroup {
    let mem = f.dir(
        "memory",
        &[
            ("memory.usage_in_bytes", "258048\n"),
            ("memory.max_usage_in_bytes", "262144\n"),
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.failcnt", "0\n"),
            ("memory.memsw.usage_in_bytes", "258048\n"),
            ("memory.memsw.max_usage_in_bytes", "262144\n"),
            ("memory.memsw.limit_in_bytes", V1_UNLIMITED),
            ("memory.memsw.failcnt", "0\n"),
            ("memory.stat", "cache 4096\nrss 49152\ntotal_rss 49152\nswap 0\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
        ],
    );
    let cpuacct = f.dir(
        "cpuacct",
        &[
            ("cpuacct.usage", "5612514\n"),
            ("cpuacct.usage_percpu", "0 5612514 \n"),
            ("cpuacct.usage_percpu_user", "0 0 \n"),
            ("cpuacct.usage_percpu_sys", "0 4000000 \n"),
            ("cpuacct.stat", "user 3\nsystem 1\n"),
        ],
    );
    let cpu = f.dir(
        "cpu",
        &[("cpu.stat", "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n")],
    );
    let pids = f.dir("pids", &[("pids.current", "1\n"), ("pids.max", "50\n")]);
    let blkio = f.dir(
        "blkio",
        &[
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
            ),
            (
                "blkio.throttle.io_serviced_recursive",
                "8:0 Read 1\n8:0 Write 0\nTotal 1\n",
            ),
        ],
    );
    cgroup(
        Mode::Legacy,
        &[
            ("memory", &mem),
            ("cpuacct", &cpuacct),
            ("cpu", &cpu),
            ("pids", &pids),
            ("blkio", &blkio),
        ],
        None,
    )
}

#[test]
fn v1_files_to_typed_stats() {
    let f = Fixture::new("v1");
    let s = v1_fixture(&f).stats().expect("stats");
    let cpu = s.cpu.as_ref().expect("cpu");
    let u = cpu.usage.as_ref().expect("cpu usage");
    assert_eq!(u.total, 5612514);
    assert_eq!(u.per_cpu, vec![0, 5612514]);
    assert_eq!(u.per_cpu_kernel, vec![0, 4000000]);
    // cpuacct.stat is in clock ticks.
    assert!(u.user > u.kernel && u.kernel > 0, "{u:?}");
    let t = cpu.throttling.as_ref().expect("throttling");
    assert_eq!((t.periods, t.throttled_periods, t.throttled_time), (10, 2, 5000));
    let m = s.memory.as_ref().expect("memory");
    assert_eq!(
        (m.usage.usage, m.usage.max_usage, m.usage.limit),
        (258048, 262144, 64 << 20)
    );
    assert_eq!(m.memsw.as_ref().map(|e| e.limit), Some(9223372036854771712));
    assert!(m.swap.is_none() && m.kernel.is_none() && m.events.is_none());
    assert_eq!((m.cache(), m.rss(), m.oom_kill()), (4096, 49152, 2));
    assert!(matches!(&m.stat, MemoryStat::V1(v) if v.total_rss == 49152));
    assert_eq!(m.raw.get("swap"), Some(&0));
    assert_eq!(s.pids.as_ref().map(|p| (p.current, p.limit)), Some((1, 50)));
    let b = s.blkio.as_ref().expect("blkio");
    assert_eq!(b.io_service_bytes.len(), 2);
    assert_eq!(b.devices()[0].read_bytes, 4096);
    assert_eq!(b.devices()[0].read_ios, 1);
    assert!(s.hugetlb.is_empty());
}

#[test]
fn v1_stats_as_runc_json() {
    let f = Fixture::new("v1json");
    let d = v1_fixture(&f).stats().expect("stats").to_runc_json();
    assert_eq!(
        d["memory"]["usage"],
        json!({"limit": 67108864, "usage": 258048, "max": 262144, "failcnt": 0})
    );
    assert_eq!(d["memory"]["swap"]["limit"], 9223372036854771712u64);
    // No kmem files: runc's zero entries.
    assert_eq!(d["memory"]["kernel"], json!({"limit": 0, "failcnt": 0}));
    assert_eq!(d["memory"]["cache"], 4096);
    assert_eq!(d["memory"]["raw"]["rss"], 49152);
    assert_eq!(d["cpu"]["usage"]["percpu"], json!([0, 5612514]));
    assert_eq!(
        d["cpu"]["throttling"],
        json!({"periods": 10, "throttledPeriods": 2, "throttledTime": 5000})
    );
    assert_eq!(d["pids"], json!({"current": 1, "limit": 50}));
    assert_eq!(
        d["blkio"]["ioServiceBytesRecursive"],
        json!([{"major": 8, "op": "Read", "value": 4096}, {"major": 8, "op": "Write"}])
    );
    assert_eq!(d["intel_rdt"], json!({}));
    assert!(d["network_interfaces"].is_null());
    assert_eq!(d["cpuset"], json!({"cpus": [], "mems": []}));
}

fn v2_fixture(f: &Fixture) -> Cgroup {
    let d = f.dir(
        "unified",
        &[
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n",
            ),
            ("memory.current", "8388608\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "9000000\n"),
            ("memory.stat", "anon 8000000\nfile 4096\nkernel 1000\nslab 200\n"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n",
            ),
            ("memory.swap.current", "4096\n"),
            ("memory.swap.max", "1048576\n"),
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
            ("io.stat", "254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("cpuset.cpus.effective", "0-1\n"),
            ("cpuset.mems.effective", "0\n"),
        ],
    );
    cgroup(Mode::Unified, &[], Some(&d))
}

#[test]
fn v2_files_to_typed_stats_and_runc_json() {
    let f = Fixture::new("v2");
    let s: Stats = v2_fixture(&f).stats().expect("stats");
    let u = s.cpu.as_ref().and_then(|c| c.usage.as_ref()).expect("cpu usage");
    assert_eq!((u.total, u.user, u.kernel), (1_500_000, 1_000_000, 500_000));
    assert!(u.per_cpu.is_empty());
    let m = s.memory.as_ref().expect("memory");
    assert_eq!(
        (m.usage.usage, m.usage.limit, m.usage.max_usage, m.usage.failcnt),
        (8388608, u64::MAX, 9000000, 3)
    );
    assert_eq!(m.swap.as_ref().map(|w| (w.usage, w.limit)), Some((4096, 1048576)));
    assert_eq!((m.cache(), m.rss(), m.oom_kill()), (4096, 8000000, 1));
    assert!(matches!(&m.stat, MemoryStat::V2(v) if v.kernel == 1000 && v.slab == 200));
    assert_eq!(m.events.as_ref().map(|e| (e.oom, e.oom_kill)), Some((2, 1)));
    assert_eq!(s.pids.as_ref().map(|p| (p.current, p.limit)), Some((2, u64::MAX)));
    assert_eq!(s.cpuset.cpus, vec![0, 1]);

    let d = s.to_runc_json();
    // runc: v2 swap is memory plus swap (a "max" memory limit keeps it MaxUint64); no pids
    // limit for "max".
    assert_eq!(
        d["memory"]["swap"],
        json!({"limit": u64::MAX, "usage": 8392704, "failcnt": 0})
    );
    assert_eq!(d["memory"]["usage"]["limit"], u64::MAX);
    assert_eq!(d["memory"]["kernelTCP"], json!({"limit": 0, "failcnt": 0}));
    assert_eq!(d["pids"], json!({"current": 2}));
    assert_eq!(
        d["cpu"]["usage"],
        json!({"total": 1_500_000, "user": 1_000_000, "kernel": 500_000})
    );
    assert_eq!(
        d["blkio"]["ioServicedRecursive"][1],
        json!({"major": 254, "op": "Write", "value": 2})
    );
    assert_eq!(d["cpuset"], json!({"cpus": [0, 1], "mems": [0]}));
}

#[test]
fn a_malformed_file_fails_the_read_with_its_path() {
    let f = Fixture::new("bad");
    let cg = v2_fixture(&f);
    std::fs::write(f.0.join("unified/io.stat"), "254:0 rbytes=ten\n").unwrap();
    match cg.stats() {
        Err(Error::Parse { path, line, msg }) => {
            assert!(
                path.ends_with("io.stat") && line == 1 && msg.contains("ten"),
                "{path:?} {msg}"
            )
        }
        other => panic!("expected a parse error for io.stat, got {other:?}"),
    }
    let cg = v1_fixture(&f);
    std::fs::write(f.0.join("cpuacct/cpuacct.usage_percpu"), "1 2 three\n").unwrap();
    let e = cg.stats().expect_err("a bad per-cpu list");
    assert!(e.to_string().contains("cpuacct.usage_percpu: line 1"), "{e}");
}
