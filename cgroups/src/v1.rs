//! Writing linux.resources to cgroup v1 controllers (legacy and hybrid hosts).

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxResources};

use crate::cgroup::Cgroup;
use crate::convert::{check_blkio_weight, check_mem, check_shares, hugepage_kb, max_or};
use crate::devices::{convert_rules, default_rules, v1_lines};
use crate::error::{Error, Result};
use crate::fsutil::{read_u64, write_field};
use crate::mode::Mode;

const R: &str = "linux.resources";

fn dir<'a>(cg: &'a Cgroup, ctrl: &str, field: &str) -> Result<&'a Path> {
    cg.v1_dir(ctrl).ok_or_else(|| {
        let why = if cg.rootless {
            "is not mounted or not writable by this (rootless) user"
        } else {
            "is not mounted on this host"
        };
        Error::unsupported(field, format!("the cgroup v1 controller {ctrl:?} {why}"))
    })
}

pub(crate) fn apply(cg: &Cgroup, r: &LinuxResources, initial: bool) -> Result<()> {
    if let Some(u) = r.unified() {
        if !u.is_empty() {
            let why = match cg.mode {
                Mode::Hybrid => "this hybrid host runs the controllers on cgroup v1",
                _ => "this host uses cgroup v1",
            };
            return Err(Error::unsupported(
                format!("{R}.unified"),
                format!("invalid configuration: needs cgroup v2, but {why}"),
            ));
        }
    }
    if let Some(cpu) = r.cpu() {
        cpuset(cg, cpu)?;
    }
    devices(cg, r, initial)?;
    if let Some(m) = r.memory() {
        memory(cg, m)?;
    }
    if let Some(cpu) = r.cpu() {
        self::cpu(cg, cpu)?;
    }
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            let f = format!("{R}.pids.limit");
            write_field(&f, dir(cg, "pids", &f)?, "pids.max", &max_or(p.limit()))?;
        }
    }
    if let Some(b) = r.block_io() {
        blkio(cg, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb(cg, h)?;
    }
    if let Some(n) = r.network() {
        network(cg, n)?;
    }
    if let Some(rdma) = r.rdma() {
        for (dev, l) in rdma {
            let f = format!("{R}.rdma[{dev}]");
            let Some(line) = crate::v2::rdma_line(&f, dev, l)? else {
                continue;
            };
            write_field(&f, dir(cg, "rdma", &f)?, "rdma.max", &line)?;
        }
    }
    Ok(())
}

fn devices(cg: &Cgroup, r: &LinuxResources, initial: bool) -> Result<()> {
    let given = r.devices().as_deref().unwrap_or(&[]);
    if cg.rootless || (!initial && given.is_empty()) {
        // Rootless users cannot write device rules (and cannot create device nodes either).
        return Ok(());
    }
    let mut rules = convert_rules(given)?;
    rules.extend(default_rules());
    let f = format!("{R}.devices");
    let d = dir(cg, "devices", &f)?;
    // OCI rules start from "deny everything"; then each rule in order (last one wins).
    write_field(&f, d, "devices.deny", "a")?;
    for (i, rule) in rules.iter().enumerate() {
        let file = if rule.allow { "devices.allow" } else { "devices.deny" };
        for line in v1_lines(rule) {
            let fi = if i < given.len() {
                format!("{f}[{i}]")
            } else {
                format!("{f} (default rule {line:?})")
            };
            write_field(&fi, d, file, &line)?;
        }
    }
    Ok(())
}

fn cpuset(cg: &Cgroup, cpu: &LinuxCpu) -> Result<()> {
    for (val, file, name) in [(cpu.cpus(), "cpuset.cpus", "cpus"), (cpu.mems(), "cpuset.mems", "mems")] {
        if let Some(v) = val.as_deref().filter(|v| !v.is_empty()) {
            let f = format!("{R}.cpu.{name}");
            write_field(&f, dir(cg, "cpuset", &f)?, file, v)?;
        }
    }
    Ok(())
}

fn memory(cg: &Cgroup, m: &LinuxMemory) -> Result<()> {
    let fl = format!("{R}.memory.limit");
    let fs = format!("{R}.memory.swap");
    let d = dir(cg, "memory", &format!("{R}.memory"))?;
    let mem = check_mem(&fl, m.limit())?;
    let mut swap = check_mem(&fs, m.swap())?;
    if mem == -1 && swap == 0 {
        swap = -1;
    }
    if m.check_before_update() == Some(true) && mem > 0 {
        let usage = read_u64(&d.join("memory.usage_in_bytes"))?.unwrap_or(0);
        if usage > mem.unsigned_abs() {
            return Err(Error::invalid(
                &fl,
                format!("current usage {usage} exceeds the new limit {mem} (checkBeforeUpdate)"),
            ));
        }
    }
    let set_mem = || write_field(&fl, d, "memory.limit_in_bytes", &mem.to_string());
    let set_swap = || write_field(&fs, d, "memory.memsw.limit_in_bytes", &swap.to_string());
    if mem != 0 && swap != 0 {
        // memsw must stay >= memory at every step: pick the order accordingly.
        let cur = read_u64(&d.join("memory.limit_in_bytes"))?.unwrap_or(u64::MAX);
        if swap < 0 || cur < swap.unsigned_abs() {
            set_swap()?;
            set_mem()?;
        } else {
            set_mem()?;
            set_swap()?;
        }
    } else {
        if mem != 0 {
            set_mem()?;
        }
        if swap != 0 {
            set_swap()?;
        }
    }
    let fr = format!("{R}.memory.reservation");
    let res = check_mem(&fr, m.reservation())?;
    if res != 0 {
        write_field(&fr, d, "memory.soft_limit_in_bytes", &res.to_string())?;
    }
    // memory.kernel and memory.kernelTCP are ignored, as runc 1.1 does (the runtime warns):
    // kernels since 6.x accept kmem limits and ignore them.
    if let Some(s) = m.swappiness() {
        let fsw = format!("{R}.memory.swappiness");
        if s > 100 {
            return Err(Error::invalid(&fsw, format!("{s} is out of range (0..=100)")));
        }
        write_field(&fsw, d, "memory.swappiness", &s.to_string())?;
    }
    if let Some(disable) = m.disable_oom_killer() {
        let fo = format!("{R}.memory.disableOOMKiller");
        write_field(&fo, d, "memory.oom_control", if disable { "1" } else { "0" })?;
    }
    Ok(())
}

fn cpu(cg: &Cgroup, cpu: &LinuxCpu) -> Result<()> {
    let needs_cpu = cpu.shares().is_some()
        || cpu.quota().is_some()
        || cpu.period().is_some()
        || cpu.burst().is_some()
        || cpu.realtime_period().is_some()
        || cpu.realtime_runtime().is_some()
        || cpu.idle().is_some();
    if !needs_cpu {
        return Ok(());
    }
    let d = dir(cg, "cpu", &format!("{R}.cpu"))?;
    if let Some(s) = cpu.shares().filter(|&s| s != 0) {
        check_shares(s)?;
        let f = format!("{R}.cpu.shares");
        write_field(&f, d, "cpu.shares", &s.to_string())?;
        let got = read_u64(&d.join("cpu.shares"))?;
        if got != Some(s) {
            return Err(Error::invalid(&f, format!("the kernel accepted {s} as {got:?}")));
        }
    }
    let fp = format!("{R}.cpu.period");
    let fq = format!("{R}.cpu.quota");
    let period = cpu.period().filter(|&p| p != 0);
    let quota = cpu.quota().filter(|&q| q != 0);
    if let Some(q) = quota {
        if q < -1 {
            return Err(Error::invalid(&fq, format!("{q} is invalid (use -1 for no limit)")));
        }
    }
    let mut retry_period = false;
    if let Some(p) = period {
        if let Err(e) = write_field(&fp, d, "cpu.cfs_period_us", &p.to_string()) {
            // A smaller period can be refused while the old quota exceeds the parent's limit;
            // retry once the new quota is in place.
            let einval = matches!(&e, Error::Write { source, .. } if source.raw_os_error() == Some(libc::EINVAL));
            if !einval || quota.is_none() {
                return Err(e);
            }
            retry_period = true;
        }
    }
    if let Some(q) = quota {
        write_field(&fq, d, "cpu.cfs_quota_us", &q.to_string())?;
        if let (true, Some(p)) = (retry_period, period) {
            write_field(&fp, d, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(b) = cpu.burst() {
        let f = format!("{R}.cpu.burst");
        write_field(&f, d, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(p) = cpu.realtime_period().filter(|&p| p != 0) {
        let f = format!("{R}.cpu.realtimePeriod");
        write_field(&f, d, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(rt) = cpu.realtime_runtime().filter(|&r| r != 0) {
        let f = format!("{R}.cpu.realtimeRuntime");
        write_field(&f, d, "cpu.rt_runtime_us", &rt.to_string())?;
    }
    if let Some(i) = cpu.idle() {
        let f = format!("{R}.cpu.idle");
        if !(0..=1).contains(&i) {
            return Err(Error::invalid(&f, format!("{i} is invalid (0 or 1)")));
        }
        write_field(&f, d, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

fn blkio(cg: &Cgroup, b: &LinuxBlockIo) -> Result<()> {
    let d = || dir(cg, "blkio", &format!("{R}.blockIO"));
    let no_weight = |f: &str| {
        Error::unsupported(
            f,
            "this kernel's cgroup v1 blkio controller has no weight files (blkio.weight and \
             blkio.bfq.weight are absent: no CFQ/BFQ weight support)",
        )
    };
    // Leaf weights exist only with CFQ (removed from Linux in 5.0).
    let no_file = |f: &str, file: &str| {
        Error::unsupported(
            f,
            format!("{file} does not exist: this kernel's cgroup v1 blkio controller has no CFQ leaf weights"),
        )
    };
    // Prefer the CFQ file, then BFQ's.
    let weight_file = |d: &Path, cfq: &'static str, bfq: &'static str| -> Option<&'static str> {
        if d.join(cfq).exists() {
            Some(cfq)
        } else if d.join(bfq).exists() {
            Some(bfq)
        } else {
            None
        }
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        let f = format!("{R}.blockIO.weight");
        check_blkio_weight(&f, w)?;
        let d = d()?;
        let file = weight_file(d, "blkio.weight", "blkio.bfq.weight").ok_or_else(|| no_weight(&f))?;
        write_field(&f, d, file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        let f = format!("{R}.blockIO.leafWeight");
        check_blkio_weight(&f, w)?;
        let d = d()?;
        if !d.join("blkio.leaf_weight").exists() {
            return Err(no_file(&f, "blkio.leaf_weight"));
        }
        write_field(&f, d, "blkio.leaf_weight", &w.to_string())?;
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        let f = format!("{R}.blockIO.weightDevice[{i}]");
        let d = d()?;
        if let Some(w) = wd.weight() {
            check_blkio_weight(&f, w)?;
            let file = weight_file(d, "blkio.weight_device", "blkio.bfq.weight_device").ok_or_else(|| no_weight(&f))?;
            write_field(&f, d, file, &format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
        if let Some(w) = wd.leaf_weight() {
            check_blkio_weight(&f, w)?;
            if !d.join("blkio.leaf_weight_device").exists() {
                return Err(no_file(&f, "blkio.leaf_weight_device"));
            }
            let line = format!("{}:{} {w}", wd.major(), wd.minor());
            write_field(&f, d, "blkio.leaf_weight_device", &line)?;
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (name, list, file) in throttles {
        for (i, t) in list.iter().flatten().enumerate() {
            let f = format!("{R}.blockIO.{name}[{i}]");
            let line = format!("{}:{} {}", t.major(), t.minor(), t.rate());
            write_field(&f, d()?, file, &line)?;
        }
    }
    Ok(())
}

fn hugetlb(cg: &Cgroup, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for (i, h) in limits.iter().enumerate() {
        let f = format!("{R}.hugepageLimits[{i}]");
        hugepage_kb(&f, h.page_size())?;
        let size = h.page_size();
        if let Some(d) = cg.v1_dir("hugetlb") {
            let v = if h.limit() < 0 {
                "-1".to_string()
            } else {
                h.limit().to_string()
            };
            write_field(&f, d, &format!("hugetlb.{size}.limit_in_bytes"), &v)?;
            continue;
        }
        // Hybrid hosts may run hugetlb on the unified hierarchy instead.
        let file = format!("hugetlb.{size}.max");
        match cg.unified.as_deref().filter(|u| u.join(&file).exists()) {
            Some(u) => write_field(&f, u, &file, &max_or(h.limit()))?,
            None => {
                return Err(Error::unsupported(
                    &f,
                    "the hugetlb controller is neither mounted as cgroup v1 nor enabled for \
                     this cgroup in the unified hierarchy",
                ))
            }
        }
    }
    Ok(())
}

fn network(cg: &Cgroup, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        let f = format!("{R}.network.classID");
        write_field(&f, dir(cg, "net_cls", &f)?, "net_cls.classid", &id.to_string())?;
    }
    for (i, p) in n.priorities().iter().flatten().enumerate() {
        let f = format!("{R}.network.priorities[{i}]");
        if p.name().is_empty() || p.name().contains(char::is_whitespace) {
            return Err(Error::invalid(&f, format!("bad interface name {:?}", p.name())));
        }
        let line = format!("{} {}", p.name(), p.priority());
        write_field(&f, dir(cg, "net_prio", &f)?, "net_prio.ifpriomap", &line)?;
    }
    Ok(())
}
