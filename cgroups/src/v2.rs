//! Writing linux.resources to a cgroup v2 directory.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxRdma, LinuxResources};

use crate::cgroup::Cgroup;
use crate::convert::{
    blkio_weight_to_io_weight, check_blkio_weight, check_mem, check_shares, hugepage_kb, max_or, shares_to_weight,
    swap_for_v2,
};
use crate::devices::{bpf, convert_rules, default_rules, ebpf};
use crate::error::{Error, Result};
use crate::fsutil::{read_opt, read_u64, write_field};

const R: &str = "linux.resources";

fn not_on_v2(field: &str, why: &str) -> Error {
    Error::unsupported(field, format!("not supported on cgroup v2 ({why})"))
}

pub(crate) fn apply(cg: &Cgroup, r: &LinuxResources, initial: bool) -> Result<()> {
    let d = cg
        .unified
        .as_deref()
        .ok_or_else(|| Error::unsupported(R, "no cgroup v2 directory is available"))?;
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            write_field(&format!("{R}.pids.limit"), d, "pids.max", &max_or(p.limit()))?;
        }
    }
    if let Some(m) = r.memory() {
        memory(d, m)?;
    }
    if let Some(b) = r.block_io() {
        io(d, b)?;
    }
    if let Some(c) = r.cpu() {
        cpu(d, c)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let f = format!("{R}.hugepageLimits[{i}]");
        hugepage_kb(&f, h.page_size())?;
        write_field(&f, d, &format!("hugetlb.{}.max", h.page_size()), &max_or(h.limit()))?;
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() {
            return Err(not_on_v2(
                &format!("{R}.network.classID"),
                "there is no net_cls controller",
            ));
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(not_on_v2(
                &format!("{R}.network.priorities"),
                "there is no net_prio controller",
            ));
        }
    }
    if let Some(rdma) = r.rdma() {
        for (dev, l) in rdma {
            let f = format!("{R}.rdma[{dev}]");
            if let Some(line) = rdma_line(&f, dev, l)? {
                write_field(&f, d, "rdma.max", &line)?;
            }
        }
    }
    devices(cg, d, r, initial)?;
    if let Some(u) = r.unified() {
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            unified(d, k, v)?;
        }
    }
    Ok(())
}

/// The rdma.max line for one device, or None if it sets nothing.
pub(crate) fn rdma_line(field: &str, dev: &str, l: &LinuxRdma) -> Result<Option<String>> {
    if dev.is_empty() || dev.contains(char::is_whitespace) {
        return Err(Error::invalid(field, format!("bad RDMA device name {dev:?}")));
    }
    let mut line = dev.to_string();
    if let Some(h) = l.hca_handles() {
        line.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = l.hca_objects() {
        line.push_str(&format!(" hca_object={o}"));
    }
    Ok((line.len() > dev.len()).then_some(line))
}

fn unified(d: &Path, key: &str, value: &str) -> Result<()> {
    let f = format!("{R}.unified[{key:?}]");
    let forbidden = [
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.kill",
        "cgroup.subtree_control",
    ];
    if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') || forbidden.contains(&key) {
        return Err(Error::invalid(&f, "not a cgroup interface file name that may be set"));
    }
    if !d.join(key).exists() {
        let ctrl = key.split('.').next().unwrap_or(key);
        return Err(Error::unsupported(
            &f,
            format!(
                "{} does not exist (is the {ctrl:?} controller enabled for this cgroup?)",
                d.join(key).display()
            ),
        ));
    }
    write_field(&f, d, key, value)
}

fn memory(d: &Path, m: &LinuxMemory) -> Result<()> {
    let fl = format!("{R}.memory.limit");
    let mem = check_mem(&fl, m.limit())?;
    let swap = check_mem(&format!("{R}.memory.swap"), m.swap())?;
    if let Some(s) = m.swappiness() {
        let _ = s;
        return Err(not_on_v2(
            &format!("{R}.memory.swappiness"),
            "there is no per-cgroup swappiness",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(not_on_v2(
            &format!("{R}.memory.disableOOMKiller"),
            "the OOM killer cannot be disabled per cgroup",
        ));
    }
    // memory.kernel and memory.kernelTCP are ignored, as runc does (the runtime warns): on v2
    // kernel and TCP memory are part of memory.max.
    if m.check_before_update() == Some(true) && mem > 0 {
        let usage = read_u64(&d.join("memory.current"))?.unwrap_or(0);
        if usage > mem.unsigned_abs() {
            return Err(Error::invalid(
                &fl,
                format!("current usage {usage} exceeds the new limit {mem} (checkBeforeUpdate)"),
            ));
        }
    }
    if let Some(sw) = swap_for_v2(mem, swap)? {
        let f = format!("{R}.memory.swap");
        match write_field(&f, d, "memory.swap.max", &max_or(sw)) {
            // Without swap accounting, "unlimited" is what we have anyway.
            Err(Error::Unsupported { .. }) if sw == -1 => {}
            other => other?,
        }
    }
    if mem != 0 {
        write_field(&fl, d, "memory.max", &max_or(mem))?;
    }
    let fr = format!("{R}.memory.reservation");
    let res = check_mem(&fr, m.reservation())?;
    if res != 0 {
        write_field(&fr, d, "memory.low", &max_or(res))?;
    }
    Ok(())
}

fn cpu(d: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        check_shares(s)?;
        let w = shares_to_weight(s);
        write_field(&format!("{R}.cpu.shares"), d, "cpu.weight", &w.to_string())?;
    }
    let fq = format!("{R}.cpu.quota");
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    if quota.is_some() || period.is_some() {
        let q = match quota {
            Some(q) if q > 0 => q.to_string(),
            Some(-1) => "max".to_string(),
            Some(q) => return Err(Error::invalid(&fq, format!("{q} is invalid (use -1 for no limit)"))),
            // Only the period changes: keep the current quota.
            None => read_opt(&d.join("cpu.max"))?
                .and_then(|s| s.split_whitespace().next().map(str::to_string))
                .unwrap_or_else(|| "max".to_string()),
        };
        let value = match period {
            Some(p) => format!("{q} {p}"),
            None => q,
        };
        let field = if quota.is_some() { fq } else { format!("{R}.cpu.period") };
        write_field(&field, d, "cpu.max", &value)?;
    }
    if let Some(b) = c.burst() {
        write_field(&format!("{R}.cpu.burst"), d, "cpu.max.burst", &b.to_string())?;
    }
    if c.realtime_period().is_some_and(|p| p != 0) {
        return Err(not_on_v2(
            &format!("{R}.cpu.realtimePeriod"),
            "there is no cgroup v2 realtime group scheduling interface",
        ));
    }
    if c.realtime_runtime().is_some_and(|p| p != 0) {
        return Err(not_on_v2(
            &format!("{R}.cpu.realtimeRuntime"),
            "there is no cgroup v2 realtime group scheduling interface",
        ));
    }
    if let Some(i) = c.idle() {
        let f = format!("{R}.cpu.idle");
        if !(0..=1).contains(&i) {
            return Err(Error::invalid(&f, format!("{i} is invalid (0 or 1)")));
        }
        write_field(&f, d, "cpu.idle", &i.to_string())?;
    }
    if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
        write_field(&format!("{R}.cpu.cpus"), d, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
        write_field(&format!("{R}.cpu.mems"), d, "cpuset.mems", v)?;
    }
    Ok(())
}

fn io(d: &Path, b: &LinuxBlockIo) -> Result<()> {
    let bfq = d.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        let f = format!("{R}.blockIO.weight");
        check_blkio_weight(&f, w)?;
        if bfq {
            write_field(&f, d, "io.bfq.weight", &w.to_string())?;
        } else {
            write_field(&f, d, "io.weight", &blkio_weight_to_io_weight(w).to_string())?;
        }
    }
    if b.leaf_weight().is_some_and(|w| w != 0) {
        return Err(not_on_v2(
            &format!("{R}.blockIO.leafWeight"),
            "leaf weights do not exist in the io controller",
        ));
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        let f = format!("{R}.blockIO.weightDevice[{i}]");
        if wd.leaf_weight().is_some() {
            return Err(not_on_v2(&format!("{f}.leafWeight"), "leaf weights do not exist"));
        }
        if let Some(w) = wd.weight() {
            check_blkio_weight(&f, w)?;
            let (file, v) = if bfq {
                ("io.bfq.weight", u64::from(w))
            } else {
                ("io.weight", blkio_weight_to_io_weight(w))
            };
            write_field(&f, d, file, &format!("{}:{} {v}", wd.major(), wd.minor()))?;
        }
    }
    let throttles = [
        ("throttleReadBpsDevice", b.throttle_read_bps_device(), "rbps"),
        ("throttleWriteBpsDevice", b.throttle_write_bps_device(), "wbps"),
        ("throttleReadIOPSDevice", b.throttle_read_iops_device(), "riops"),
        ("throttleWriteIOPSDevice", b.throttle_write_iops_device(), "wiops"),
    ];
    for (name, list, key) in throttles {
        for (i, t) in list.iter().flatten().enumerate() {
            let f = format!("{R}.blockIO.{name}[{i}]");
            // In io.max, 0 would mean "no I/O at all"; OCI's 0 means no limit.
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            let line = format!("{}:{} {key}={rate}", t.major(), t.minor());
            write_field(&f, d, "io.max", &line)?;
        }
    }
    Ok(())
}

fn devices(cg: &Cgroup, d: &Path, r: &LinuxResources, initial: bool) -> Result<()> {
    let given = r.devices().as_deref().unwrap_or(&[]);
    if cg.rootless || (!initial && given.is_empty()) {
        // Rootless: attaching BPF programs needs privileges the user lacks; device nodes cannot
        // be created by them either.
        return Ok(());
    }
    let mut rules = convert_rules(given)?;
    rules.extend(default_rules());
    let prog = ebpf::device_program(&rules);
    let fd = bpf::load_device_program(&prog)?;
    bpf::replace_device_program(d, &fd)
}
