//! [`Stats`] as the "data" object of runc's `events --stats`. Numbers runc tags `omitempty` are
//! left out when zero; the sections runc always prints are always there.

use serde_json::{json, Map, Value};

use crate::mode::Mode;
use crate::stats::{BlkioEntry, MemoryEntry, Stats};

/// Inserts `v` under `k` unless it is zero (Go's `omitempty`).
fn put_nz(m: &mut Map<String, Value>, k: &str, v: u64) {
    if v != 0 {
        m.insert(k.to_string(), json!(v));
    }
}

fn put_list<T: serde::Serialize>(m: &mut Map<String, Value>, k: &str, v: &[T]) {
    if !v.is_empty() {
        m.insert(k.to_string(), json!(v));
    }
}

fn mem_entry(limit: u64, usage: u64, max: u64, failcnt: u64) -> Value {
    let mut m = Map::new();
    m.insert("limit".into(), json!(limit));
    put_nz(&mut m, "usage", usage);
    put_nz(&mut m, "max", max);
    m.insert("failcnt".into(), json!(failcnt));
    Value::Object(m)
}

fn entry(e: Option<&MemoryEntry>) -> Value {
    e.map_or_else(
        || mem_entry(0, 0, 0, 0),
        |e| mem_entry(e.limit, e.usage, e.max_usage, e.failcnt),
    )
}

fn blkio_list(entries: &[BlkioEntry]) -> Value {
    entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            put_nz(&mut m, "major", e.major);
            put_nz(&mut m, "minor", e.minor);
            m.insert("op".into(), json!(e.op));
            put_nz(&mut m, "value", e.value);
            Value::Object(m)
        })
        .collect()
}

impl Stats {
    /// The "data" object of runc's `events --stats`.
    pub fn to_runc_json(&self) -> Value {
        let mut usage = Map::new();
        let mut thr = Map::new();
        if let Some(u) = self.cpu.as_ref().and_then(|c| c.usage.as_ref()) {
            put_nz(&mut usage, "total", u.total);
            put_list(&mut usage, "percpu", &u.per_cpu);
            put_list(&mut usage, "percpu_kernel", &u.per_cpu_kernel);
            put_list(&mut usage, "percpu_user", &u.per_cpu_user);
            usage.insert("kernel".into(), json!(u.kernel));
            usage.insert("user".into(), json!(u.user));
        }
        if let Some(t) = self.cpu.as_ref().and_then(|c| c.throttling.as_ref()) {
            put_nz(&mut thr, "periods", t.periods);
            put_nz(&mut thr, "throttledPeriods", t.throttled_periods);
            put_nz(&mut thr, "throttledTime", t.throttled_time);
        }

        let mut mem = Map::new();
        if let Some(m) = &self.memory {
            put_nz(&mut mem, "cache", m.cache());
            mem.insert("usage".into(), entry(Some(&m.usage)));
            let swap = match self.mode {
                Mode::Unified => {
                    // runc reports v2 swap as memory plus swap, like v1's memsw.
                    let (limit, usage) = m.swap.as_ref().map_or((0, 0), |s| (s.limit, s.usage));
                    mem_entry(
                        limit.saturating_add(m.usage.limit),
                        usage.saturating_add(m.usage.usage),
                        0,
                        0,
                    )
                }
                Mode::Legacy | Mode::Hybrid => entry(m.memsw.as_ref()),
            };
            mem.insert("swap".into(), swap);
            if !m.raw.is_empty() {
                mem.insert("raw".into(), json!(m.raw));
            }
        }
        if self.memory.is_some() || self.mode == Mode::Unified {
            let m = self.memory.as_ref();
            mem.insert("kernel".into(), entry(m.and_then(|m| m.kernel.as_ref())));
            mem.insert("kernelTCP".into(), entry(m.and_then(|m| m.kernel_tcp.as_ref())));
        }

        let mut pids = Map::new();
        if let Some(p) = &self.pids {
            put_nz(&mut pids, "current", p.current);
            // runc prints no limit for "max".
            put_nz(&mut pids, "limit", if p.limit == u64::MAX { 0 } else { p.limit });
        }

        let mut blkio = Map::new();
        if let Some(b) = &self.blkio {
            if !b.io_service_bytes.is_empty() {
                blkio.insert("ioServiceBytesRecursive".into(), blkio_list(&b.io_service_bytes));
            }
            if !b.io_serviced.is_empty() {
                blkio.insert("ioServicedRecursive".into(), blkio_list(&b.io_serviced));
            }
        }

        let hugetlb: Map<String, Value> = self
            .hugetlb
            .iter()
            .map(|(size, h)| {
                let mut m = Map::new();
                put_nz(&mut m, "usage", h.usage);
                put_nz(&mut m, "max", h.max_usage);
                m.insert("failcnt".into(), json!(h.failcnt));
                (size.clone(), Value::Object(m))
            })
            .collect();

        json!({
            "cpu": {"usage": usage, "throttling": thr},
            "memory": mem,
            "pids": pids,
            "blkio": blkio,
            "hugetlb": hugetlb,
            "cpuset": {"cpus": self.cpuset.cpus, "mems": self.cpuset.mems},
            "intel_rdt": {},
            "network_interfaces": null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_entry_omits_like_runc() {
        assert_eq!(mem_entry(5, 0, 0, 0), json!({"limit": 5, "failcnt": 0}));
        assert_eq!(
            mem_entry(5, 1, 2, 3),
            json!({"limit": 5, "usage": 1, "max": 2, "failcnt": 3})
        );
    }

    #[test]
    fn blkio_entries_omit_zeros() {
        let e = |op: &str, value| BlkioEntry {
            major: 8,
            minor: 0,
            op: op.into(),
            value,
        };
        assert_eq!(
            blkio_list(&[e("Read", 4096), e("Write", 0)]),
            json!([{"major": 8, "op": "Read", "value": 4096}, {"major": 8, "op": "Write"}])
        );
    }
}
