//! Statistics in the schema of runc's `events --stats` "data" object, and the OOM kill counter.
//!
//! Numbers that runc tags `omitempty` are left out when zero; structs are always present.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::cgroup::Cgroup;
use crate::convert::host_hugepage_sizes;
use crate::error::Result;
use crate::fsutil::{parse_u64, read_flat_keyed, read_opt, read_u64};
use crate::mode::Mode;

/// Inserts `v` under `k` unless it is zero (Go's `omitempty`).
fn put_nz(m: &mut Map<String, Value>, k: &str, v: u64) {
    if v != 0 {
        m.insert(k.to_string(), json!(v));
    }
}

fn obj(pairs: &[(&str, u64)], always: &[&str]) -> Value {
    let mut m = Map::new();
    for &(k, v) in pairs {
        if always.contains(&k) {
            m.insert(k.to_string(), json!(v));
        } else {
            put_nz(&mut m, k, v);
        }
    }
    Value::Object(m)
}

fn mem_entry(limit: u64, usage: u64, max: u64, failcnt: u64) -> Value {
    obj(
        &[("limit", limit), ("usage", usage), ("max", max), ("failcnt", failcnt)],
        &["limit", "failcnt"],
    )
}

fn u(path: &Path) -> Result<u64> {
    Ok(read_u64(path)?.unwrap_or(0))
}

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v.unsigned_abs()
    } else {
        100
    }
}

fn list_u64(path: &Path) -> Result<Vec<u64>> {
    Ok(read_opt(path)?
        .map(|s| s.split_whitespace().filter_map(parse_u64).collect())
        .unwrap_or_default())
}

fn pids_stats(d: Option<&Path>) -> Result<Value> {
    let Some(d) = d else { return Ok(json!({})) };
    let limit = match read_u64(&d.join("pids.max"))? {
        Some(u64::MAX) | None => 0,
        Some(n) => n,
    };
    Ok(obj(&[("current", u(&d.join("pids.current"))?), ("limit", limit)], &[]))
}

/// Parses blkio v1 "MAJ:MIN Op value" lines into runc BlkioEntry objects.
fn blkio_v1_entries(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let Some((ma, mi)) = f[0].split_once(':') else {
            continue;
        };
        let (Ok(ma), Ok(mi), Some(v)) = (ma.parse::<u64>(), mi.parse::<u64>(), parse_u64(f[2])) else {
            continue;
        };
        let mut m = Map::new();
        put_nz(&mut m, "major", ma);
        put_nz(&mut m, "minor", mi);
        m.insert("op".into(), json!(f[1]));
        put_nz(&mut m, "value", v);
        out.push(Value::Object(m));
    }
    out
}

/// Parses v2 io.stat into (bytes entries, ios entries).
fn io_v2_entries(text: &str) -> (Vec<Value>, Vec<Value>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(ma), Ok(mi)) = (ma.parse::<u64>(), mi.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Some(v) = parse_u64(v) else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "dbytes" => (&mut bytes, "Discard"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                "dios" => (&mut ios, "Discard"),
                _ => continue,
            };
            let mut m = Map::new();
            put_nz(&mut m, "major", ma);
            put_nz(&mut m, "minor", mi);
            m.insert("op".into(), json!(op));
            put_nz(&mut m, "value", v);
            list.push(Value::Object(m));
        }
    }
    (bytes, ios)
}

fn blkio_obj(bytes: Vec<Value>, ios: Vec<Value>) -> Value {
    let mut m = Map::new();
    if !bytes.is_empty() {
        m.insert("ioServiceBytesRecursive".into(), Value::Array(bytes));
    }
    if !ios.is_empty() {
        m.insert("ioServicedRecursive".into(), Value::Array(ios));
    }
    Value::Object(m)
}

fn raw_map(stat: &BTreeMap<String, u64>) -> Value {
    Value::Object(stat.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn v1_stats(cg: &Cgroup) -> Result<Value> {
    let mut data = Map::new();

    // cpu: cpuacct usage, cpu throttling
    let mut cpu = Map::new();
    let mut usage = Map::new();
    if let Some(d) = cg.v1_dir("cpuacct") {
        put_nz(&mut usage, "total", u(&d.join("cpuacct.usage"))?);
        let percpu = list_u64(&d.join("cpuacct.usage_percpu"))?;
        if !percpu.is_empty() {
            usage.insert("percpu".into(), json!(percpu));
        }
        let pk = list_u64(&d.join("cpuacct.usage_percpu_sys"))?;
        if !pk.is_empty() {
            usage.insert("percpu_kernel".into(), json!(pk));
        }
        let pu = list_u64(&d.join("cpuacct.usage_percpu_user"))?;
        if !pu.is_empty() {
            usage.insert("percpu_user".into(), json!(pu));
        }
        let st = read_flat_keyed(&d.join("cpuacct.stat"))?;
        let ns = 1_000_000_000 / clk_tck();
        usage.insert("kernel".into(), json!(st.get("system").copied().unwrap_or(0) * ns));
        usage.insert("user".into(), json!(st.get("user").copied().unwrap_or(0) * ns));
    }
    cpu.insert("usage".into(), Value::Object(usage));
    let mut thr = Map::new();
    if let Some(d) = cg.v1_dir("cpu") {
        let st = read_flat_keyed(&d.join("cpu.stat"))?;
        let g = |k: &str| st.get(k).copied().unwrap_or(0);
        put_nz(&mut thr, "periods", g("nr_periods"));
        put_nz(&mut thr, "throttledPeriods", g("nr_throttled"));
        put_nz(&mut thr, "throttledTime", g("throttled_time"));
    }
    cpu.insert("throttling".into(), Value::Object(thr));
    data.insert("cpu".into(), Value::Object(cpu));

    // memory
    let mut mem = Map::new();
    if let Some(d) = cg.v1_dir("memory") {
        let entry = |prefix: &str| -> Result<Value> {
            Ok(mem_entry(
                u(&d.join(format!("{prefix}.limit_in_bytes")))?,
                u(&d.join(format!("{prefix}.usage_in_bytes")))?,
                u(&d.join(format!("{prefix}.max_usage_in_bytes")))?,
                u(&d.join(format!("{prefix}.failcnt")))?,
            ))
        };
        let stat = read_flat_keyed(&d.join("memory.stat"))?;
        put_nz(&mut mem, "cache", stat.get("cache").copied().unwrap_or(0));
        mem.insert("usage".into(), entry("memory")?);
        mem.insert("swap".into(), entry("memory.memsw")?);
        mem.insert("kernel".into(), entry("memory.kmem")?);
        mem.insert("kernelTCP".into(), entry("memory.kmem.tcp")?);
        if !stat.is_empty() {
            mem.insert("raw".into(), raw_map(&stat));
        }
    }
    data.insert("memory".into(), Value::Object(mem));

    data.insert("pids".into(), pids_stats(cg.v1_dir("pids"))?);

    let blkio = match cg.v1_dir("blkio") {
        Some(d) => {
            let pick = |names: &[&str]| -> Result<Vec<Value>> {
                for n in names {
                    if let Some(t) = read_opt(&d.join(n))? {
                        let e = blkio_v1_entries(&t);
                        if !e.is_empty() {
                            return Ok(e);
                        }
                    }
                }
                Ok(Vec::new())
            };
            blkio_obj(
                pick(&[
                    "blkio.io_service_bytes_recursive",
                    "blkio.bfq.io_service_bytes_recursive",
                    "blkio.throttle.io_service_bytes_recursive",
                ])?,
                pick(&[
                    "blkio.io_serviced_recursive",
                    "blkio.bfq.io_serviced_recursive",
                    "blkio.throttle.io_serviced_recursive",
                ])?,
            )
        }
        None => json!({}),
    };
    data.insert("blkio".into(), blkio);

    let mut huge = Map::new();
    if let Some(d) = cg.v1_dir("hugetlb") {
        for size in host_hugepage_sizes() {
            let p = |s: &str| d.join(format!("hugetlb.{size}.{s}"));
            let v = obj(
                &[
                    ("usage", u(&p("usage_in_bytes"))?),
                    ("max", u(&p("max_usage_in_bytes"))?),
                    ("failcnt", u(&p("failcnt"))?),
                ],
                &["failcnt"],
            );
            huge.insert(size, v);
        }
    } else if let Some(d) = cg.unified.as_deref() {
        hugetlb_v2(d, &mut huge)?;
    }
    data.insert("hugetlb".into(), Value::Object(huge));
    Ok(Value::Object(data))
}

fn hugetlb_v2(d: &Path, huge: &mut Map<String, Value>) -> Result<()> {
    for size in host_hugepage_sizes() {
        let cur = d.join(format!("hugetlb.{size}.current"));
        if !cur.exists() {
            continue;
        }
        let ev = read_flat_keyed(&d.join(format!("hugetlb.{size}.events")))?;
        let v = obj(
            &[
                ("usage", u(&cur)?),
                ("max", 0),
                ("failcnt", ev.get("max").copied().unwrap_or(0)),
            ],
            &["failcnt"],
        );
        huge.insert(size, v);
    }
    Ok(())
}

fn v2_stats(cg: &Cgroup) -> Result<Value> {
    let mut data = Map::new();
    let Some(d) = cg.unified.as_deref() else {
        return Ok(Value::Object(data));
    };
    let cs = read_flat_keyed(&d.join("cpu.stat"))?;
    let g = |k: &str| cs.get(k).copied().unwrap_or(0);
    let mut usage = Map::new();
    put_nz(&mut usage, "total", g("usage_usec") * 1000);
    usage.insert("kernel".into(), json!(g("system_usec") * 1000));
    usage.insert("user".into(), json!(g("user_usec") * 1000));
    let mut thr = Map::new();
    put_nz(&mut thr, "periods", g("nr_periods"));
    put_nz(&mut thr, "throttledPeriods", g("nr_throttled"));
    put_nz(&mut thr, "throttledTime", g("throttled_usec") * 1000);
    data.insert("cpu".into(), json!({"usage": usage, "throttling": thr}));

    let mut mem = Map::new();
    if d.join("memory.current").exists() {
        let stat = read_flat_keyed(&d.join("memory.stat"))?;
        let events = read_flat_keyed(&d.join("memory.events"))?;
        let usage = u(&d.join("memory.current"))?;
        let limit = u(&d.join("memory.max"))?;
        put_nz(&mut mem, "cache", stat.get("file").copied().unwrap_or(0));
        mem.insert(
            "usage".into(),
            mem_entry(
                limit,
                usage,
                u(&d.join("memory.peak"))?,
                events.get("max").copied().unwrap_or(0),
            ),
        );
        // runc reports v2 swap as memory+swap, like v1 memsw.
        let swap_usage = u(&d.join("memory.swap.current"))?;
        let swap_max = u(&d.join("memory.swap.max"))?;
        mem.insert(
            "swap".into(),
            mem_entry(swap_max.saturating_add(limit), swap_usage + usage, 0, 0),
        );
        if !stat.is_empty() {
            mem.insert("raw".into(), raw_map(&stat));
        }
    }
    data.insert("memory".into(), Value::Object(mem));
    data.insert("pids".into(), pids_stats(d.join("pids.current").exists().then_some(d))?);
    let blkio = match read_opt(&d.join("io.stat"))? {
        Some(t) => {
            let (b, i) = io_v2_entries(&t);
            blkio_obj(b, i)
        }
        None => json!({}),
    };
    data.insert("blkio".into(), blkio);
    let mut huge = Map::new();
    hugetlb_v2(d, &mut huge)?;
    data.insert("hugetlb".into(), Value::Object(huge));
    Ok(Value::Object(data))
}

pub(crate) fn stats(cg: &Cgroup) -> Result<Value> {
    let mut v = match cg.mode {
        Mode::Unified => v2_stats(cg)?,
        Mode::Legacy | Mode::Hybrid => v1_stats(cg)?,
    };
    // Sections runc always prints, so consumers that index them find them.
    if let Some(obj) = v.as_object_mut() {
        obj.insert("cpuset".into(), cpuset_stats(cg));
        obj.entry("intel_rdt").or_insert_with(|| serde_json::json!({}));
        obj.entry("network_interfaces").or_insert(Value::Null);
        if cg.mode == Mode::Unified {
            if let Some(mem) = obj.get_mut("memory").and_then(Value::as_object_mut) {
                for key in ["kernel", "kernelTCP"] {
                    mem.entry(key)
                        .or_insert_with(|| serde_json::json!({"failcnt": 0, "limit": 0}));
                }
            }
        }
    }
    Ok(v)
}

/// `cpuset` as runc prints it: the cpus and mems the container may use, as lists.
fn cpuset_stats(cg: &Cgroup) -> Value {
    let dir = match cg.mode {
        Mode::Unified => cg.unified.clone(),
        _ => cg.v1_dir("cpuset").map(Path::to_path_buf),
    };
    let read = |names: &[&str]| -> Vec<u32> {
        let Some(d) = &dir else { return Vec::new() };
        names
            .iter()
            .find_map(|n| std::fs::read_to_string(d.join(n)).ok().filter(|s| !s.trim().is_empty()))
            .map(|s| expand_list(s.trim()))
            .unwrap_or_default()
    };
    serde_json::json!({
        "cpus": read(&["cpuset.cpus.effective", "cpuset.effective_cpus", "cpuset.cpus"]),
        "mems": read(&["cpuset.mems.effective", "cpuset.effective_mems", "cpuset.mems"]),
    })
}

/// "0-2,5" → [0, 1, 2, 5].
fn expand_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

pub(crate) fn oom_count(cg: &Cgroup) -> Result<u64> {
    if cg.mode == Mode::Unified {
        if let Some(d) = cg.unified.as_deref() {
            return Ok(read_flat_keyed(&d.join("memory.events"))?
                .get("oom_kill")
                .copied()
                .unwrap_or(0));
        }
        return Ok(0);
    }
    match cg.v1_dir("memory") {
        Some(d) => Ok(read_flat_keyed(&d.join("memory.oom_control"))?
            .get("oom_kill")
            .copied()
            .unwrap_or(0)),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_expand() {
        assert_eq!(expand_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(expand_list("3"), vec![3]);
        assert!(expand_list("").is_empty());
    }

    #[test]
    fn blkio_v1_parsing() {
        let e = blkio_v1_entries("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], json!({"major": 8, "op": "Read", "value": 4096}));
        assert_eq!(e[1], json!({"major": 8, "op": "Write"}));
    }

    #[test]
    fn io_v2_parsing() {
        let (b, i) = io_v2_entries("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(b.len(), 3);
        assert_eq!(i.len(), 3);
        assert_eq!(b[0], json!({"major": 254, "op": "Read", "value": 10}));
        assert_eq!(i[1], json!({"major": 254, "op": "Write", "value": 2}));
    }

    #[test]
    fn memory_entry_omits_like_runc() {
        assert_eq!(mem_entry(5, 0, 0, 0), json!({"limit": 5, "failcnt": 0}));
    }
}
