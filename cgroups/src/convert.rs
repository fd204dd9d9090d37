//! Pure value conversions shared by the v1 and v2 writers.

use crate::error::{Error, Result};

/// cgroup v1 cpu.shares → cgroup v2 cpu.weight (the linear mapping runc and crun use:
/// 2 → 1, 1024 → 39, 262144 → 10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// Validates cpu.shares (the kernel silently clamps to 2..=262144).
pub fn check_shares(shares: u64) -> Result<()> {
    if !(2..=262_144).contains(&shares) {
        return Err(Error::invalid(
            "linux.resources.cpu.shares",
            format!("{shares} is out of range (2..=262144)"),
        ));
    }
    Ok(())
}

/// blkio weight (10..=1000) → io.weight (1..=10000).
pub fn blkio_weight_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w).saturating_sub(10) * 9999) / 990
}

pub fn check_blkio_weight(field: &str, w: u16) -> Result<()> {
    if !(10..=1000).contains(&w) {
        return Err(Error::invalid(field, format!("{w} is out of range (10..=1000)")));
    }
    Ok(())
}

/// OCI memory.swap is memory+swap; v2 memory.swap.max is swap alone. `memory` and `swap` are the
/// configured values with 0 meaning unset. Returns the memory.swap.max value: None to leave it,
/// Some(-1) for "max".
pub fn swap_for_v2(memory: i64, swap: i64) -> Result<Option<i64>> {
    const F: &str = "linux.resources.memory.swap";
    if memory == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap < -1 {
        return Err(Error::invalid(F, format!("{swap} is negative")));
    }
    if memory == 0 || memory == -1 {
        return Err(Error::invalid(
            F,
            "a swap limit needs a memory limit (linux.resources.memory.limit)",
        ));
    }
    if swap < memory {
        return Err(Error::invalid(
            F,
            format!("memory+swap ({swap}) must be >= the memory limit ({memory})"),
        ));
    }
    Ok(Some(swap - memory))
}

/// Checks a memory value: -1 (unlimited), 0 (unset) or positive.
pub fn check_mem(field: &str, v: Option<i64>) -> Result<i64> {
    match v {
        None => Ok(0),
        Some(n) if n >= -1 => Ok(n),
        Some(n) => Err(Error::invalid(field, format!("{n} is invalid (use -1 for unlimited)"))),
    }
}

/// "max" for negative values, the number otherwise.
pub fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Validates an OCI hugepage size like "2MB", "1GB", "64KB" and returns its size in kB.
pub fn hugepage_kb(field: &str, size: &str) -> Result<u64> {
    let bad = || Error::invalid(field, format!("page size {size:?} is not of the form <number>KB|MB|GB"));
    let (num, mult) = if let Some(n) = size.strip_suffix("KB") {
        (n, 1)
    } else if let Some(n) = size.strip_suffix("MB") {
        (n, 1024)
    } else if let Some(n) = size.strip_suffix("GB") {
        (n, 1024 * 1024)
    } else {
        return Err(bad());
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    Ok(n * mult)
}

/// kB → the OCI/runc page size name ("2048" → "2MB").
pub fn hugepage_name(kb: u64) -> String {
    if kb >= 1024 * 1024 && kb & (1024 * 1024 - 1) == 0 {
        format!("{}GB", kb / (1024 * 1024))
    } else if kb >= 1024 && kb & 1023 == 0 {
        format!("{}MB", kb / 1024)
    } else {
        format!("{kb}KB")
    }
}

/// The page sizes this kernel supports, as OCI names.
pub fn host_hugepage_sizes() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(kb) = name
                .strip_prefix("hugepages-")
                .and_then(|s| s.strip_suffix("kB"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                out.push(hugepage_name(kb));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 0);
        assert!(check_shares(1).is_err());
        assert!(check_shares(262_145).is_err());
        assert!(check_shares(512).is_ok());
    }

    #[test]
    fn io_weight() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert!(check_blkio_weight("f", 5).is_err());
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_for_v2(100, 300).unwrap(), Some(200));
        assert_eq!(swap_for_v2(-1, 0).unwrap(), Some(-1));
        assert_eq!(swap_for_v2(100, 0).unwrap(), None);
        assert_eq!(swap_for_v2(100, -1).unwrap(), Some(-1));
        assert!(swap_for_v2(0, 100).is_err());
        let e = swap_for_v2(200, 100).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.memory.swap:"), "{e}");
    }

    #[test]
    fn hugepages() {
        assert_eq!(hugepage_kb("f", "2MB").unwrap(), 2048);
        assert_eq!(hugepage_kb("f", "1GB").unwrap(), 1024 * 1024);
        assert_eq!(hugepage_kb("f", "64KB").unwrap(), 64);
        assert!(hugepage_kb("f", "2M").is_err());
        assert!(hugepage_kb("f", "xMB").is_err());
        assert_eq!(hugepage_name(2048), "2MB");
        assert_eq!(hugepage_name(1_048_576), "1GB");
        assert_eq!(hugepage_name(64), "64KB");
    }
}
