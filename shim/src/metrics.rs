//! Stats: the library's typed cgroup statistics as the metrics containerd decodes
//! (`ctr task metrics`, the CRI's stats): `io.containerd.cgroups.v1.Metrics` from a v1 or hybrid
//! host's files, `io.containerd.cgroups.v2.Metrics` from a unified host's, as the runc shim
//! chooses by the host's mode.

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use moor::cgroups::{MemoryEntry, MemoryStat, Mode};
use moor::Stats;
use protobuf::well_known_types::any::Any;
use protobuf::{MessageField, MessageFull};

/// The metrics for `stats`, packed as containerd's typeurl names them.
pub fn to_any(stats: &Stats) -> protobuf::Result<Any> {
    match stats.mode {
        Mode::Unified => pack(&to_v2(stats)),
        Mode::Legacy | Mode::Hybrid => pack(&to_v1(stats)),
    }
}

/// A message in an `Any`, named as containerd's typeurl names it (its full protobuf name).
pub fn pack<M: MessageFull>(m: &M) -> protobuf::Result<Any> {
    let mut any = Any::new();
    any.type_url = M::descriptor().full_name().to_string();
    any.value = m.write_to_bytes()?;
    Ok(any)
}

fn v1_entry(e: &MemoryEntry) -> v1::MemoryEntry {
    let mut m = v1::MemoryEntry::new();
    m.usage = e.usage;
    m.max = e.max_usage;
    m.limit = e.limit;
    m.failcnt = e.failcnt;
    m
}

fn to_v1(s: &Stats) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(p) = &s.pids {
        let mut pids = v1::PidsStat::new();
        pids.current = p.current;
        // containerd's v1 metrics: 0 is "no limit".
        pids.limit = if p.limit == u64::MAX { 0 } else { p.limit };
        m.pids = MessageField::some(pids);
    }
    if let Some(c) = &s.cpu {
        let mut cpu = v1::CPUStat::new();
        if let Some(u) = &c.usage {
            let mut usage = v1::CPUUsage::new();
            usage.total = u.total;
            usage.user = u.user;
            usage.kernel = u.kernel;
            usage.per_cpu.clone_from(&u.per_cpu);
            cpu.usage = MessageField::some(usage);
        }
        if let Some(t) = &c.throttling {
            let mut th = v1::Throttle::new();
            th.periods = t.periods;
            th.throttled_periods = t.throttled_periods;
            th.throttled_time = t.throttled_time;
            cpu.throttling = MessageField::some(th);
        }
        m.cpu = MessageField::some(cpu);
    }
    if let Some(mem) = &s.memory {
        let mut ms = v1::MemoryStat::new();
        if let MemoryStat::V1(st) = &mem.stat {
            ms.cache = st.cache;
            ms.rss = st.rss;
            ms.rss_huge = st.rss_huge;
            ms.mapped_file = st.mapped_file;
            ms.dirty = st.dirty;
            ms.writeback = st.writeback;
            ms.pg_pg_in = st.pgpgin;
            ms.pg_pg_out = st.pgpgout;
            ms.pg_fault = st.pgfault;
            ms.pg_maj_fault = st.pgmajfault;
            ms.inactive_anon = st.inactive_anon;
            ms.active_anon = st.active_anon;
            ms.inactive_file = st.inactive_file;
            ms.active_file = st.active_file;
            ms.unevictable = st.unevictable;
            ms.hierarchical_memory_limit = st.hierarchical_memory_limit;
            ms.hierarchical_swap_limit = st.hierarchical_memsw_limit;
            ms.total_cache = st.total_cache;
            ms.total_rss = st.total_rss;
            ms.total_rss_huge = st.total_rss_huge;
            ms.total_mapped_file = st.total_mapped_file;
            ms.total_dirty = st.total_dirty;
            ms.total_writeback = st.total_writeback;
            ms.total_pg_pg_in = st.total_pgpgin;
            ms.total_pg_pg_out = st.total_pgpgout;
            ms.total_pg_fault = st.total_pgfault;
            ms.total_pg_maj_fault = st.total_pgmajfault;
            ms.total_inactive_anon = st.total_inactive_anon;
            ms.total_active_anon = st.total_active_anon;
            ms.total_inactive_file = st.total_inactive_file;
            ms.total_active_file = st.total_active_file;
            ms.total_unevictable = st.total_unevictable;
        }
        ms.usage = MessageField::some(v1_entry(&mem.usage));
        // v1's "swap" entry is memsw (memory plus swap), as the runc shim reports it.
        if let Some(e) = &mem.memsw {
            ms.swap = MessageField::some(v1_entry(e));
        }
        if let Some(e) = &mem.kernel {
            ms.kernel = MessageField::some(v1_entry(e));
        }
        if let Some(e) = &mem.kernel_tcp {
            ms.kernel_tcp = MessageField::some(v1_entry(e));
        }
        m.memory = MessageField::some(ms);
        if let Some(o) = &mem.oom_control {
            let mut oc = v1::MemoryOomControl::new();
            oc.oom_kill_disable = u64::from(o.oom_kill_disable);
            oc.under_oom = u64::from(o.under_oom);
            oc.oom_kill = o.oom_kill;
            m.memory_oom_control = MessageField::some(oc);
        }
    }
    if let Some(b) = &s.blkio {
        let entries = |list: &[moor::cgroups::BlkioEntry]| -> Vec<v1::BlkIOEntry> {
            list.iter()
                .map(|e| {
                    let mut x = v1::BlkIOEntry::new();
                    x.major = e.major;
                    x.minor = e.minor;
                    x.op.clone_from(&e.op);
                    x.value = e.value;
                    x
                })
                .collect()
        };
        let mut blk = v1::BlkIOStat::new();
        blk.io_service_bytes_recursive = entries(&b.io_service_bytes);
        blk.io_serviced_recursive = entries(&b.io_serviced);
        m.blkio = MessageField::some(blk);
    }
    for (size, h) in &s.hugetlb {
        let mut x = v1::HugetlbStat::new();
        x.pagesize.clone_from(size);
        x.usage = h.usage;
        x.max = h.max_usage;
        x.failcnt = h.failcnt;
        m.hugetlb.push(x);
    }
    m
}

fn to_v2(s: &Stats) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    if let Some(p) = &s.pids {
        let mut pids = v2::PidsStat::new();
        pids.current = p.current;
        pids.limit = if p.limit == u64::MAX { 0 } else { p.limit };
        m.pids = MessageField::some(pids);
    }
    if let Some(c) = &s.cpu {
        // v2 counts microseconds; the library keeps nanoseconds.
        let mut cpu = v2::CPUStat::new();
        if let Some(u) = &c.usage {
            cpu.usage_usec = u.total / 1000;
            cpu.user_usec = u.user / 1000;
            cpu.system_usec = u.kernel / 1000;
        }
        if let Some(t) = &c.throttling {
            cpu.nr_periods = t.periods;
            cpu.nr_throttled = t.throttled_periods;
            cpu.throttled_usec = t.throttled_time / 1000;
        }
        m.cpu = MessageField::some(cpu);
    }
    if let Some(mem) = &s.memory {
        let mut ms = v2::MemoryStat::new();
        if let MemoryStat::V2(st) = &mem.stat {
            ms.anon = st.anon;
            ms.file = st.file;
            ms.kernel_stack = st.kernel_stack;
            ms.slab = st.slab;
            ms.sock = st.sock;
            ms.shmem = st.shmem;
            ms.file_mapped = st.file_mapped;
            ms.file_dirty = st.file_dirty;
            ms.file_writeback = st.file_writeback;
            ms.anon_thp = st.anon_thp;
            ms.inactive_anon = st.inactive_anon;
            ms.active_anon = st.active_anon;
            ms.inactive_file = st.inactive_file;
            ms.active_file = st.active_file;
            ms.unevictable = st.unevictable;
            ms.slab_reclaimable = st.slab_reclaimable;
            ms.slab_unreclaimable = st.slab_unreclaimable;
            ms.pgfault = st.pgfault;
            ms.pgmajfault = st.pgmajfault;
            ms.workingset_refault = st.workingset_refault_anon + st.workingset_refault_file;
            ms.workingset_activate = st.workingset_activate_anon + st.workingset_activate_file;
            ms.workingset_nodereclaim = st.workingset_nodereclaim;
            ms.pgrefill = st.pgrefill;
            ms.pgscan = st.pgscan;
            ms.pgsteal = st.pgsteal;
            ms.pgactivate = st.pgactivate;
            ms.pgdeactivate = st.pgdeactivate;
            ms.pglazyfree = st.pglazyfree;
            ms.pglazyfreed = st.pglazyfreed;
            ms.thp_fault_alloc = st.thp_fault_alloc;
            ms.thp_collapse_alloc = st.thp_collapse_alloc;
        }
        ms.usage = mem.usage.usage;
        ms.usage_limit = mem.usage.limit;
        ms.max_usage = mem.usage.max_usage;
        if let Some(sw) = &mem.swap {
            ms.swap_usage = sw.usage;
            ms.swap_limit = sw.limit;
            ms.swap_max_usage = sw.max_usage;
        }
        m.memory = MessageField::some(ms);
        if let Some(e) = &mem.events {
            let mut ev = v2::MemoryEvents::new();
            ev.low = e.low;
            ev.high = e.high;
            ev.max = e.max;
            ev.oom = e.oom;
            ev.oom_kill = e.oom_kill;
            ev.oom_group_kill = e.oom_group_kill;
            m.memory_events = MessageField::some(ev);
        }
    }
    if let Some(b) = &s.blkio {
        let mut io = v2::IOStat::new();
        for d in b.devices() {
            let mut e = v2::IOEntry::new();
            e.major = d.major;
            e.minor = d.minor;
            e.rbytes = d.read_bytes;
            e.wbytes = d.write_bytes;
            e.rios = d.read_ios;
            e.wios = d.write_ios;
            io.usage.push(e);
        }
        m.io = MessageField::some(io);
    }
    for (size, h) in &s.hugetlb {
        let mut x = v2::HugeTlbStat::new();
        x.pagesize.clone_from(size);
        x.current = h.usage;
        x.max = h.limit;
        x.failcnt = h.failcnt;
        m.hugetlb.push(x);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_urls_are_the_ones_ctr_decodes() {
        assert_eq!(
            v1::Metrics::descriptor().full_name(),
            "io.containerd.cgroups.v1.Metrics"
        );
        assert_eq!(
            v2::Metrics::descriptor().full_name(),
            "io.containerd.cgroups.v2.Metrics"
        );
    }

    fn stats(mode: Mode, stat: MemoryStat) -> Stats {
        Stats {
            mode,
            cpu: Some(moor::cgroups::CpuStats {
                usage: Some(moor::cgroups::CpuUsage {
                    total: 5_000_000,
                    user: 3_000_000,
                    kernel: 2_000_000,
                    per_cpu: vec![4_000_000, 1_000_000],
                    ..Default::default()
                }),
                throttling: None,
            }),
            memory: Some(moor::cgroups::MemoryStats {
                usage: MemoryEntry {
                    usage: 4096,
                    max_usage: 8192,
                    limit: 67_108_864,
                    failcnt: 1,
                },
                memsw: None,
                swap: None,
                kernel: None,
                kernel_tcp: None,
                stat,
                raw: Default::default(),
                events: None,
                oom_control: None,
            }),
            pids: Some(moor::cgroups::PidsStats {
                current: 2,
                limit: u64::MAX,
            }),
            blkio: None,
            hugetlb: Default::default(),
            cpuset: Default::default(),
        }
    }

    #[test]
    fn v1_hosts_get_v1_metrics() {
        let st = moor::cgroups::MemoryStatV1 {
            cache: 7,
            rss: 9,
            ..Default::default()
        };
        let any = to_any(&stats(Mode::Hybrid, MemoryStat::V1(st))).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let m: v1::Metrics = protobuf::Message::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.memory.usage.limit, 67_108_864);
        assert_eq!((m.memory.cache, m.memory.rss), (7, 9));
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.cpu.usage.per_cpu, [4_000_000, 1_000_000]);
        assert_eq!(
            (m.pids.current, m.pids.limit),
            (2, 0),
            "max is 0 in containerd's metrics"
        );
    }

    #[test]
    fn unified_hosts_get_v2_metrics_in_microseconds() {
        let st = moor::cgroups::MemoryStatV2 {
            anon: 11,
            file: 13,
            ..Default::default()
        };
        let any = to_any(&stats(Mode::Unified, MemoryStat::V2(st))).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
        let m: v2::Metrics = protobuf::Message::parse_from_bytes(&any.value).unwrap();
        assert_eq!(
            (m.memory.usage, m.memory.usage_limit, m.memory.max_usage),
            (4096, 67_108_864, 8192)
        );
        assert_eq!((m.memory.anon, m.memory.file), (11, 13));
        assert_eq!(
            (m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec),
            (5000, 3000, 2000)
        );
        assert_eq!(m.pids.current, 2);
    }
}
