//! Typed statistics of a container's cgroup, read from its v1, v2 or hybrid files, in units a
//! caller can map to containerd's v1 and v2 metrics: nanoseconds for cpu time, bytes for memory
//! and io. A section is `None` when its controller is not there (not mounted on v1, no interface
//! file on v2). A limit of `u64::MAX` is "max" (no limit); v1 reports its own "unlimited"
//! (9223372036854771712) as the kernel does.
//!
//! [`Stats::to_runc_json`] (runc_json.rs) renders runc's `events --stats` object from these.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::cgroup::Cgroup;
use crate::convert::host_hugepage_sizes;
use crate::error::{Error, Result};
use crate::fsutil::read_opt;
use crate::mode::Mode;
use crate::parse::{self, ParseError};

/// Everything [`Cgroup::stats`] reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Which files these came from: v1 (Legacy, and Hybrid but for hugetlb) or v2 (Unified).
    pub mode: Mode,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub pids: Option<PidsStats>,
    pub blkio: Option<BlkioStats>,
    /// By page size as the kernel names it ("2MB", "1GB").
    pub hugetlb: BTreeMap<String, HugetlbStats>,
    pub cpuset: CpusetStats,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// v1 cpuacct, v2 cpu.stat.
    pub usage: Option<CpuUsage>,
    /// v1 cpu.stat, v2 cpu.stat.
    pub throttling: Option<CpuThrottling>,
}

/// CPU time consumed, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    pub total: u64,
    pub user: u64,
    pub kernel: u64,
    /// Per cpu (v1 cpuacct.usage_percpu*; empty on v2, which has no per-cpu figures).
    pub per_cpu: Vec<u64>,
    pub per_cpu_user: Vec<u64>,
    pub per_cpu_kernel: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuThrottling {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

/// A memory counter with its limit: usage and peak in bytes, and how often the limit was hit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    pub usage: u64,
    /// Peak usage (v1 max_usage_in_bytes, v2 memory.peak; 0 where the kernel has none).
    pub max_usage: u64,
    pub limit: u64,
    /// v1 failcnt; v2 memory.events `max` for memory (0 for swap).
    pub failcnt: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Memory alone (v1 memory.*, v2 memory.current/max/peak).
    pub usage: MemoryEntry,
    /// v1: memory.memsw.*, memory plus swap (None without swap accounting).
    pub memsw: Option<MemoryEntry>,
    /// v2: memory.swap.*, swap alone.
    pub swap: Option<MemoryEntry>,
    /// v1: memory.kmem.* and memory.kmem.tcp.* (None where the kernel has no such files).
    pub kernel: Option<MemoryEntry>,
    pub kernel_tcp: Option<MemoryEntry>,
    /// memory.stat, typed.
    pub stat: MemoryStat,
    /// memory.stat as the kernel wrote it, for keys the typed structs do not name.
    pub raw: BTreeMap<String, u64>,
    /// v2 memory.events.
    pub events: Option<MemoryEvents>,
    /// v1 memory.oom_control.
    pub oom_control: Option<OomControl>,
}

impl MemoryStats {
    /// Page cache: v1 `cache`, v2 `file`.
    pub fn cache(&self) -> u64 {
        match &self.stat {
            MemoryStat::V1(s) => s.cache,
            MemoryStat::V2(s) => s.file,
        }
    }

    /// Anonymous memory: v1 `rss`, v2 `anon`.
    pub fn rss(&self) -> u64 {
        match &self.stat {
            MemoryStat::V1(s) => s.rss,
            MemoryStat::V2(s) => s.anon,
        }
    }

    /// Processes killed by the OOM killer in this cgroup so far.
    pub fn oom_kill(&self) -> u64 {
        self.events
            .as_ref()
            .map(|e| e.oom_kill)
            .or(self.oom_control.as_ref().map(|o| o.oom_kill))
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum MemoryStat {
    V1(MemoryStatV1),
    V2(MemoryStatV2),
}

/// A struct of u64 fields read from a "key value" map by their own names (0 when absent).
macro_rules! keyed_struct {
    ($(#[$m:meta])* $name:ident { $($f:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
        pub struct $name { $(pub $f: u64,)* }

        impl $name {
            fn from_keyed(m: &BTreeMap<String, u64>) -> Self {
                $name { $($f: m.get(stringify!($f)).copied().unwrap_or(0),)* }
            }
        }
    };
}

keyed_struct!(
    /// v1 memory.stat (the fields of containerd's v1 MemoryStat), in bytes or events.
    MemoryStatV1 {
        cache, rss, rss_huge, shmem, mapped_file, dirty, writeback, swap, pgpgin, pgpgout, pgfault,
        pgmajfault, inactive_anon, active_anon, inactive_file, active_file, unevictable,
        hierarchical_memory_limit, hierarchical_memsw_limit, total_cache, total_rss, total_rss_huge,
        total_shmem, total_mapped_file, total_dirty, total_writeback, total_swap, total_pgpgin,
        total_pgpgout, total_pgfault, total_pgmajfault, total_inactive_anon, total_active_anon,
        total_inactive_file, total_active_file, total_unevictable,
    }
);

keyed_struct!(
    /// v2 memory.stat (the fields of containerd's v2 MemoryStat and a few newer ones).
    MemoryStatV2 {
        anon, file, kernel, kernel_stack, pagetables, percpu, sock, vmalloc, shmem, file_mapped,
        file_dirty, file_writeback, swapcached, anon_thp, file_thp, shmem_thp, inactive_anon,
        active_anon, inactive_file, active_file, unevictable, slab_reclaimable, slab_unreclaimable,
        slab, workingset_refault_anon, workingset_refault_file, workingset_activate_anon,
        workingset_activate_file, workingset_restore_anon, workingset_restore_file,
        workingset_nodereclaim, pgscan, pgsteal, pgrefill, pgactivate, pgdeactivate, pglazyfree,
        pglazyfreed, pgfault, pgmajfault, thp_fault_alloc, thp_collapse_alloc,
    }
);

keyed_struct!(
    /// v2 memory.events: how often each boundary was hit.
    MemoryEvents { low, high, max, oom, oom_kill, oom_group_kill }
);

/// v1 memory.oom_control.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OomControl {
    pub oom_kill_disable: bool,
    pub under_oom: bool,
    /// Since Linux 4.13.
    pub oom_kill: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: u64,
    /// `u64::MAX` for "max".
    pub limit: u64,
}

/// One blkio counter: device, operation (Read, Write, Sync, Async, Discard, Total) and value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// Per-device io: v1 blkio's recursive counters, or v2 io.stat as the same entries (ops Read,
/// Write, Discard).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    /// Bytes.
    pub io_service_bytes: Vec<BlkioEntry>,
    /// Operations.
    pub io_serviced: Vec<BlkioEntry>,
}

/// Read and write totals of one device (containerd's v2 IOEntry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IoDevice {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ios: u64,
    pub write_ios: u64,
}

impl BlkioStats {
    /// The entries summed up per device, in the order devices first appear.
    pub fn devices(&self) -> Vec<IoDevice> {
        let mut out: Vec<IoDevice> = Vec::new();
        let lists: [(&[BlkioEntry], bool); 2] = [(&self.io_service_bytes, true), (&self.io_serviced, false)];
        for (list, bytes) in lists {
            for e in list {
                let i = match out.iter().position(|d| (d.major, d.minor) == (e.major, e.minor)) {
                    Some(i) => i,
                    None => {
                        out.push(IoDevice {
                            major: e.major,
                            minor: e.minor,
                            ..IoDevice::default()
                        });
                        out.len() - 1
                    }
                };
                let d = &mut out[i];
                match (e.op.as_str(), bytes) {
                    ("Read", true) => d.read_bytes += e.value,
                    ("Write", true) => d.write_bytes += e.value,
                    ("Read", false) => d.read_ios += e.value,
                    ("Write", false) => d.write_ios += e.value,
                    _ => {}
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HugetlbStats {
    pub usage: u64,
    /// v1 max_usage_in_bytes (0 on v2).
    pub max_usage: u64,
    pub limit: u64,
    /// v1 failcnt, v2 `hugetlb.<size>.events` `max`.
    pub failcnt: u64,
}

/// The cpus and memory nodes the container may use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpusetStats {
    pub cpus: Vec<u32>,
    pub mems: Vec<u32>,
}

/// Reads and parses `path`; None when it does not exist.
fn parsed<T>(path: &Path, f: impl FnOnce(&str) -> std::result::Result<T, ParseError>) -> Result<Option<T>> {
    match read_opt(path)? {
        None => Ok(None),
        Some(text) => f(&text).map(Some).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: e.line,
            msg: e.msg,
        }),
    }
}

/// A one-number file; 0 when absent.
fn num(path: &Path) -> Result<u64> {
    Ok(parsed(path, parse::single)?.unwrap_or(0))
}

fn keyed(path: &Path) -> Result<BTreeMap<String, u64>> {
    Ok(parsed(path, parse::flat_keyed)?.unwrap_or_default())
}

fn list(path: &Path) -> Result<Vec<u64>> {
    Ok(parsed(path, parse::list)?.unwrap_or_default())
}

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(100)
}

fn pids(d: &Path) -> Result<Option<PidsStats>> {
    let Some(current) = parsed(&d.join("pids.current"), parse::single)? else {
        return Ok(None);
    };
    Ok(Some(PidsStats {
        current,
        limit: parsed(&d.join("pids.max"), parse::single)?.unwrap_or(u64::MAX),
    }))
}

fn v1_entry(d: &Path, prefix: &str) -> Result<Option<MemoryEntry>> {
    let Some(usage) = parsed(&d.join(format!("{prefix}.usage_in_bytes")), parse::single)? else {
        return Ok(None);
    };
    Ok(Some(MemoryEntry {
        usage,
        max_usage: num(&d.join(format!("{prefix}.max_usage_in_bytes")))?,
        limit: num(&d.join(format!("{prefix}.limit_in_bytes")))?,
        failcnt: num(&d.join(format!("{prefix}.failcnt")))?,
    }))
}

fn v1_cpu(cg: &Cgroup) -> Result<Option<CpuStats>> {
    let usage = match cg.v1_dir("cpuacct") {
        Some(d) => {
            let st = keyed(&d.join("cpuacct.stat"))?;
            let ns = 1_000_000_000 / clk_tck();
            let ticks = |k: &str| st.get(k).copied().unwrap_or(0).saturating_mul(ns);
            Some(CpuUsage {
                total: num(&d.join("cpuacct.usage"))?,
                user: ticks("user"),
                kernel: ticks("system"),
                per_cpu: list(&d.join("cpuacct.usage_percpu"))?,
                per_cpu_user: list(&d.join("cpuacct.usage_percpu_user"))?,
                per_cpu_kernel: list(&d.join("cpuacct.usage_percpu_sys"))?,
            })
        }
        None => None,
    };
    let throttling = match cg.v1_dir("cpu") {
        Some(d) => {
            let st = keyed(&d.join("cpu.stat"))?;
            let g = |k: &str| st.get(k).copied().unwrap_or(0);
            Some(CpuThrottling {
                periods: g("nr_periods"),
                throttled_periods: g("nr_throttled"),
                throttled_time: g("throttled_time"),
            })
        }
        None => None,
    };
    Ok((usage.is_some() || throttling.is_some()).then_some(CpuStats { usage, throttling }))
}

fn v1_memory(d: &Path) -> Result<Option<MemoryStats>> {
    let Some(usage) = v1_entry(d, "memory")? else {
        return Ok(None);
    };
    let raw = keyed(&d.join("memory.stat"))?;
    let oom_control = parsed(&d.join("memory.oom_control"), parse::flat_keyed)?.map(|m| OomControl {
        oom_kill_disable: m.get("oom_kill_disable").is_some_and(|&v| v != 0),
        under_oom: m.get("under_oom").is_some_and(|&v| v != 0),
        oom_kill: m.get("oom_kill").copied().unwrap_or(0),
    });
    Ok(Some(MemoryStats {
        usage,
        memsw: v1_entry(d, "memory.memsw")?,
        swap: None,
        kernel: v1_entry(d, "memory.kmem")?,
        kernel_tcp: v1_entry(d, "memory.kmem.tcp")?,
        stat: MemoryStat::V1(MemoryStatV1::from_keyed(&raw)),
        raw,
        events: None,
        oom_control,
    }))
}

/// The first of `names` that exists and lists something (which blkio files fill depends on
/// the io scheduler).
fn v1_blkio_pick(d: &Path, names: &[&str]) -> Result<Vec<BlkioEntry>> {
    for n in names {
        if let Some(e) = parsed(&d.join(n), parse::blkio_v1)?.filter(|e| !e.is_empty()) {
            return Ok(e);
        }
    }
    Ok(Vec::new())
}

fn v1_blkio(d: &Path) -> Result<BlkioStats> {
    Ok(BlkioStats {
        io_service_bytes: v1_blkio_pick(
            d,
            &[
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ],
        )?,
        io_serviced: v1_blkio_pick(
            d,
            &[
                "blkio.io_serviced_recursive",
                "blkio.bfq.io_serviced_recursive",
                "blkio.throttle.io_serviced_recursive",
            ],
        )?,
    })
}

fn v1_hugetlb(d: &Path) -> Result<BTreeMap<String, HugetlbStats>> {
    let mut out = BTreeMap::new();
    for size in host_hugepage_sizes() {
        let p = |s: &str| d.join(format!("hugetlb.{size}.{s}"));
        let v = HugetlbStats {
            usage: num(&p("usage_in_bytes"))?,
            max_usage: num(&p("max_usage_in_bytes"))?,
            limit: num(&p("limit_in_bytes"))?,
            failcnt: num(&p("failcnt"))?,
        };
        out.insert(size, v);
    }
    Ok(out)
}

fn v2_hugetlb(d: &Path) -> Result<BTreeMap<String, HugetlbStats>> {
    let mut out = BTreeMap::new();
    for size in host_hugepage_sizes() {
        let Some(usage) = parsed(&d.join(format!("hugetlb.{size}.current")), parse::single)? else {
            continue;
        };
        let events = keyed(&d.join(format!("hugetlb.{size}.events")))?;
        let v = HugetlbStats {
            usage,
            max_usage: 0,
            limit: num(&d.join(format!("hugetlb.{size}.max")))?,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        out.insert(size, v);
    }
    Ok(out)
}

fn v1_stats(cg: &Cgroup) -> Result<Stats> {
    let hugetlb = match (cg.v1_dir("hugetlb"), cg.unified.as_deref()) {
        (Some(d), _) => v1_hugetlb(d)?,
        // Hybrid hosts may have hugetlb on the unified hierarchy only.
        (None, Some(u)) => v2_hugetlb(u)?,
        (None, None) => BTreeMap::new(),
    };
    Ok(Stats {
        mode: cg.mode,
        cpu: v1_cpu(cg)?,
        memory: cg.v1_dir("memory").map(v1_memory).transpose()?.flatten(),
        pids: cg.v1_dir("pids").map(pids).transpose()?.flatten(),
        blkio: cg.v1_dir("blkio").map(v1_blkio).transpose()?,
        hugetlb,
        cpuset: cpuset(cg.v1_dir("cpuset"))?,
    })
}

fn v2_memory(d: &Path) -> Result<Option<MemoryStats>> {
    let Some(current) = parsed(&d.join("memory.current"), parse::single)? else {
        return Ok(None);
    };
    let raw = keyed(&d.join("memory.stat"))?;
    let events = parsed(&d.join("memory.events"), parse::flat_keyed)?.map(|m| MemoryEvents::from_keyed(&m));
    let swap = match parsed(&d.join("memory.swap.current"), parse::single)? {
        Some(usage) => Some(MemoryEntry {
            usage,
            max_usage: num(&d.join("memory.swap.peak"))?,
            limit: num(&d.join("memory.swap.max"))?,
            failcnt: 0,
        }),
        None => None,
    };
    Ok(Some(MemoryStats {
        usage: MemoryEntry {
            usage: current,
            max_usage: num(&d.join("memory.peak"))?,
            limit: num(&d.join("memory.max"))?,
            failcnt: events.as_ref().map_or(0, |e| e.max),
        },
        memsw: None,
        swap,
        kernel: None,
        kernel_tcp: None,
        stat: MemoryStat::V2(MemoryStatV2::from_keyed(&raw)),
        raw,
        events,
        oom_control: None,
    }))
}

fn v2_stats(cg: &Cgroup) -> Result<Stats> {
    let mut stats = Stats {
        mode: cg.mode,
        cpu: None,
        memory: None,
        pids: None,
        blkio: None,
        hugetlb: BTreeMap::new(),
        cpuset: CpusetStats::default(),
    };
    let Some(d) = cg.unified.as_deref() else {
        return Ok(stats);
    };
    if let Some(cs) = parsed(&d.join("cpu.stat"), parse::flat_keyed)? {
        let g = |k: &str| cs.get(k).copied().unwrap_or(0).saturating_mul(1000);
        stats.cpu = Some(CpuStats {
            usage: Some(CpuUsage {
                total: g("usage_usec"),
                user: g("user_usec"),
                kernel: g("system_usec"),
                ..CpuUsage::default()
            }),
            throttling: Some(CpuThrottling {
                periods: cs.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: cs.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: g("throttled_usec"),
            }),
        });
    }
    stats.memory = v2_memory(d)?;
    stats.pids = pids(d)?;
    stats.blkio = parsed(&d.join("io.stat"), parse::io_stat_v2)?.map(|(b, i)| BlkioStats {
        io_service_bytes: b,
        io_serviced: i,
    });
    stats.hugetlb = v2_hugetlb(d)?;
    stats.cpuset = cpuset(Some(d))?;
    Ok(stats)
}

/// The effective cpus and mems where the kernel says them, else the configured ones.
fn cpuset(dir: Option<&Path>) -> Result<CpusetStats> {
    let Some(d) = dir else {
        return Ok(CpusetStats::default());
    };
    let read = |names: &[&str]| -> Result<Vec<u32>> {
        for n in names {
            if let Some(l) = parsed(&d.join(n), parse::id_list)?.filter(|l| !l.is_empty()) {
                return Ok(l);
            }
        }
        Ok(Vec::new())
    };
    Ok(CpusetStats {
        cpus: read(&["cpuset.cpus.effective", "cpuset.effective_cpus", "cpuset.cpus"])?,
        mems: read(&["cpuset.mems.effective", "cpuset.effective_mems", "cpuset.mems"])?,
    })
}

pub(crate) fn stats(cg: &Cgroup) -> Result<Stats> {
    match cg.mode {
        Mode::Unified => v2_stats(cg),
        Mode::Legacy | Mode::Hybrid => v1_stats(cg),
    }
}

/// Processes killed by the OOM killer in the cgroup so far (v2 memory.events, v1
/// memory.oom_control `oom_kill`).
pub(crate) fn oom_kill_count(cg: &Cgroup) -> Result<u64> {
    let (path, _) = match crate::oom::counter_file(cg) {
        Some(p) => p,
        None => return Ok(0),
    };
    Ok(keyed(&path)?.get("oom_kill").copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_structs_take_their_fields_by_name() {
        let m = parse::flat_keyed("anon 4096\nfile 8192\nslab 7\nnot_a_field 1\n").unwrap();
        let s = MemoryStatV2::from_keyed(&m);
        assert_eq!((s.anon, s.file, s.slab, s.shmem), (4096, 8192, 7, 0));
        let m = parse::flat_keyed("cache 1\nrss 2\ntotal_rss 3\n").unwrap();
        let s = MemoryStatV1::from_keyed(&m);
        assert_eq!((s.cache, s.rss, s.total_rss), (1, 2, 3));
    }

    #[test]
    fn devices_sum_entries_per_device() {
        let (bytes, ios) = parse::io_stat_v2(
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n254:1 rbytes=5 wbytes=0 rios=1 wios=0\n",
        )
        .unwrap();
        let b = BlkioStats {
            io_service_bytes: bytes,
            io_serviced: ios,
        };
        let d = b.devices();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0],
            IoDevice {
                major: 8,
                minor: 0,
                read_bytes: 100,
                write_bytes: 200,
                read_ios: 1,
                write_ios: 2
            }
        );
        assert_eq!((d[1].major, d[1].minor, d[1].read_bytes), (254, 1, 5));
    }

    /// A stats file with garbage in it is reported with its path and line, not read as zero.
    #[test]
    fn malformed_files_are_typed_errors() {
        let dir = std::env::temp_dir().join(format!("moor-cgroups-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.current"), "12x\n").unwrap();
        std::fs::write(dir.join("memory.stat"), "anon 1\nfile\n").unwrap();
        std::fs::write(dir.join("pids.current"), "3\n").unwrap();
        std::fs::write(dir.join("pids.max"), "max\n").unwrap();
        match v2_memory(&dir) {
            Err(Error::Parse { path, line: 1, msg }) => {
                assert!(
                    path.ends_with("memory.current") && msg.contains("12x"),
                    "{path:?} {msg}"
                )
            }
            other => panic!("expected a parse error for memory.current, got {other:?}"),
        }
        std::fs::write(dir.join("memory.current"), "12\n").unwrap();
        match v2_memory(&dir) {
            Err(e @ Error::Parse { line: 2, .. }) => {
                assert!(e.to_string().contains("memory.stat"), "{e}")
            }
            other => panic!("expected a parse error for memory.stat line 2, got {other:?}"),
        }
        assert_eq!(
            pids(&dir).unwrap(),
            Some(PidsStats {
                current: 3,
                limit: u64::MAX
            })
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
