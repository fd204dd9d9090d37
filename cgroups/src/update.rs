//! runc `update` command-line flags → LinuxResources.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::error::{Error, Result};

/// The raw values of runc's `update` flags (None = flag not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateFlags {
    /// `--memory`: "512m", "1g", "1048576", "-1".
    pub memory: Option<String>,
    /// `--memory-swap`: memory+swap, same forms.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `--kernel-memory` (accepted for compatibility and ignored, as runc does).
    pub kernel_memory: Option<String>,
    /// `--kernel-memory-tcp`.
    pub kernel_memory_tcp: Option<String>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<String>,
    /// `--cpu-quota` (microseconds, -1 = none).
    pub cpu_quota: Option<String>,
    /// `--cpu-period` (microseconds).
    pub cpu_period: Option<String>,
    /// `--cpu-burst`.
    pub cpu_burst: Option<String>,
    /// `--cpu-rt-period`.
    pub cpu_rt_period: Option<String>,
    /// `--cpu-rt-runtime`.
    pub cpu_rt_runtime: Option<String>,
    /// `--cpu-idle` (0 or 1).
    pub cpu_idle: Option<String>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit` (-1 = unlimited).
    pub pids_limit: Option<String>,
    /// `--blkio-weight` (10..=1000).
    pub blkio_weight: Option<String>,
}

/// Parses a size like docker's RAMInBytes: a number (decimals allowed) with an optional unit
/// k, m, g, t or p (powers of 1024), optionally followed by "i" and/or "b", case-insensitive.
pub fn parse_ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, rest) = t.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut chars = rest.chars().peekable();
    let mult: f64 = match chars.peek() {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if mult != 1.0 {
        chars.next();
    }
    if chars.peek() == Some(&'i') {
        chars.next();
    }
    if chars.peek() == Some(&'b') {
        chars.next();
    }
    if chars.next().is_some() {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let v = n * mult;
    if !v.is_finite() || v >= i64::MAX as f64 {
        return None;
    }
    // Finite and below i64::MAX (checked above); the fraction is dropped.
    #[allow(clippy::cast_possible_truncation)]
    let whole = v as i64;
    Some(whole)
}

fn mem_flag(flag: &str, v: &Option<String>) -> Result<Option<i64>> {
    let Some(s) = v else { return Ok(None) };
    if s.trim() == "-1" {
        return Ok(Some(-1));
    }
    parse_ram_in_bytes(s).map(Some).ok_or_else(|| {
        Error::invalid(
            format!("--{flag}"),
            format!("{s:?} is not a size (examples: 1048576, 512m, 1g, -1)"),
        )
    })
}

fn num_flag<T: std::str::FromStr>(flag: &str, v: &Option<String>) -> Result<Option<T>> {
    let Some(s) = v else { return Ok(None) };
    s.trim()
        .parse::<T>()
        .map(Some)
        .map_err(|_| Error::invalid(format!("--{flag}"), format!("{s:?} is not a valid number")))
}

/// Builds the resources for `runc update` flags. Only the given flags are set.
pub fn resources_from_update_flags(f: &UpdateFlags) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();

    let mut mem = LinuxMemory::default();
    let mut any_mem = false;
    if let Some(v) = mem_flag("memory", &f.memory)? {
        mem.set_limit(Some(v));
        any_mem = true;
    }
    if let Some(v) = mem_flag("memory-swap", &f.memory_swap)? {
        mem.set_swap(Some(v));
        any_mem = true;
    }
    if let Some(v) = mem_flag("memory-reservation", &f.memory_reservation)? {
        mem.set_reservation(Some(v));
        any_mem = true;
    }
    if let Some(v) = mem_flag("kernel-memory", &f.kernel_memory)? {
        #[allow(deprecated)]
        mem.set_kernel(Some(v));
        any_mem = true;
    }
    if let Some(v) = mem_flag("kernel-memory-tcp", &f.kernel_memory_tcp)? {
        mem.set_kernel_tcp(Some(v));
        any_mem = true;
    }
    if any_mem {
        r.set_memory(Some(mem));
    }

    let mut cpu = LinuxCpu::default();
    let mut any_cpu = false;
    if let Some(v) = num_flag::<u64>("cpu-shares", &f.cpu_shares)? {
        cpu.set_shares(Some(v));
        any_cpu = true;
    }
    if let Some(v) = num_flag::<i64>("cpu-quota", &f.cpu_quota)? {
        cpu.set_quota(Some(v));
        any_cpu = true;
    }
    if let Some(v) = num_flag::<u64>("cpu-period", &f.cpu_period)? {
        cpu.set_period(Some(v));
        any_cpu = true;
    }
    if let Some(v) = num_flag::<u64>("cpu-burst", &f.cpu_burst)? {
        cpu.set_burst(Some(v));
        any_cpu = true;
    }
    if let Some(v) = num_flag::<u64>("cpu-rt-period", &f.cpu_rt_period)? {
        cpu.set_realtime_period(Some(v));
        any_cpu = true;
    }
    if let Some(v) = num_flag::<i64>("cpu-rt-runtime", &f.cpu_rt_runtime)? {
        cpu.set_realtime_runtime(Some(v));
        any_cpu = true;
    }
    if let Some(v) = num_flag::<i64>("cpu-idle", &f.cpu_idle)? {
        if !(0..=1).contains(&v) {
            return Err(Error::invalid("--cpu-idle", format!("{v} is not 0 or 1")));
        }
        cpu.set_idle(Some(v));
        any_cpu = true;
    }
    if let Some(v) = &f.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        any_cpu = true;
    }
    if let Some(v) = &f.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        any_cpu = true;
    }
    if any_cpu {
        r.set_cpu(Some(cpu));
    }

    if let Some(v) = num_flag::<i64>("pids-limit", &f.pids_limit)? {
        let mut p = LinuxPids::default();
        // runc: 0 and negative both mean "unlimited" on the command line.
        p.set_limit(if v <= 0 { -1 } else { v });
        r.set_pids(Some(p));
    }

    if let Some(w) = num_flag::<u16>("blkio-weight", &f.blkio_weight)? {
        if w != 0 && !(10..=1000).contains(&w) {
            return Err(Error::invalid(
                "--blkio-weight",
                format!("{w} is out of range (10..=1000)"),
            ));
        }
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_units() {
        assert_eq!(parse_ram_in_bytes("1024"), Some(1024));
        assert_eq!(parse_ram_in_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_ram_in_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_ram_in_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_ram_in_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_ram_in_bytes("2kb"), Some(2048));
        assert_eq!(parse_ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(parse_ram_in_bytes("10 MB"), Some(10 << 20));
        assert_eq!(parse_ram_in_bytes("3b"), Some(3));
        assert_eq!(parse_ram_in_bytes("-1"), None);
        assert_eq!(parse_ram_in_bytes("12x"), None);
        assert_eq!(parse_ram_in_bytes("m"), None);
        assert_eq!(parse_ram_in_bytes(""), None);
        assert_eq!(parse_ram_in_bytes("1mm"), None);
    }

    #[test]
    fn flags_to_resources() {
        let f = UpdateFlags {
            memory: Some("512m".into()),
            memory_swap: Some("-1".into()),
            cpu_shares: Some("512".into()),
            cpu_quota: Some("50000".into()),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some("0".into()),
            blkio_weight: Some("300".into()),
            ..Default::default()
        };
        let r = resources_from_update_flags(&f).unwrap();
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(512 << 20));
        assert_eq!(m.swap(), Some(-1));
        assert_eq!(m.reservation(), None);
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(c.shares(), Some(512));
        assert_eq!(c.quota(), Some(50000));
        assert_eq!(c.period(), None);
        assert_eq!(c.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().unwrap().limit(), -1);
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));
        assert!(r.hugepage_limits().is_none());
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let f = UpdateFlags {
            memory: Some("lots".into()),
            ..Default::default()
        };
        let e = resources_from_update_flags(&f).unwrap_err().to_string();
        assert!(e.starts_with("--memory:"), "{e}");
        let f = UpdateFlags {
            cpu_shares: Some("-3".into()),
            ..Default::default()
        };
        assert!(resources_from_update_flags(&f)
            .unwrap_err()
            .to_string()
            .starts_with("--cpu-shares:"));
        let f = UpdateFlags::default();
        assert_eq!(resources_from_update_flags(&f).unwrap(), LinuxResources::default());
    }
}
