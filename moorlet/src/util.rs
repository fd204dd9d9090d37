//! Small helpers shared by the agent, the monitor and the client: durable files, ids, times.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `data` to `path` so that a crash leaves either the old or the new content: a temporary
/// file in the same directory, fsync'd, renamed over `path`, then the directory fsync'd.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("a state file needs a parent directory")?;
    let name = path.file_name().context("a state file needs a name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}

pub fn write_json<T: serde::Serialize>(path: &Path, value: &T, mode: u32) -> Result<()> {
    let data = serde_json::to_vec_pretty(value)?;
    write_atomic(path, &data, mode)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(data) => Ok(Some(
            serde_json::from_slice(&data).with_context(|| format!("cannot parse {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// A random RFC 4122 version-4 UUID, as Kubernetes gives pods.
pub fn new_uid() -> Result<String> {
    let mut b = [0u8; 16];
    let mut f = File::open("/dev/urandom").context("cannot open /dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut b).context("cannot read /dev/urandom")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The time now as Kubernetes prints it (RFC 3339, seconds, UTC).
pub fn now_k8s() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now, false)
}

/// RFC 3339 in UTC; with `nanos`, RFC3339Nano as the CRI log format wants.
pub fn rfc3339(since_epoch: std::time::Duration, nanos: bool) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos {
        format!("{base}.{:09}Z", since_epoch.subsec_nanos())
    } else {
        format!("{base}Z")
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The start time of `pid` (field 22 of /proc/PID/stat): with the pid, it names one process
/// even after the pid is reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A Kubernetes object name or namespace that is safe as a file name part (DNS subdomain).
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    anyhow::ensure!(
        ok,
        "{what} {name:?}: must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        let t = std::time::Duration::new(1_780_000_000, 5);
        assert_eq!(super::rfc3339(t, true), "2026-05-28T20:26:40.000000005Z");
        assert_eq!(super::rfc3339(std::time::Duration::ZERO, false), "1970-01-01T00:00:00Z");
    }
}
