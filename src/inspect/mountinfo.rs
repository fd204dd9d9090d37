//! /proc/<pid>/mountinfo parsed as hostile input (the container names its own mount points),
//! and what an auditor asks of it: is the root read-only, what covers a masked path, which
//! mounts come from the host.

use super::{HostBind, PathState};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent: u32,
    pub dev: (u64, u64),
    /// The path inside the mounted filesystem that is this mount's root.
    pub root: String,
    pub mount_point: String,
    pub readonly: bool,
    pub fstype: String,
    pub source: String,
}

/// Undoes the kernel's octal escapes (`\040` for a space and so on); other text is kept as is.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.len() - i >= 4 {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id = l.next()?.parse().ok()?;
    let parent = l.next()?.parse().ok()?;
    let (maj, min) = l.next()?.split_once(':')?;
    let dev = (maj.parse().ok()?, min.parse().ok()?);
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let readonly = l.next()?.split(',').any(|o| o == "ro");
    let mut r = right.split(' ');
    let fstype = unescape(r.next()?);
    let source = unescape(r.next().unwrap_or_default());
    Some(Mount {
        id,
        parent,
        dev,
        root,
        mount_point,
        readonly,
        fstype,
        source,
    })
}

/// Parses mountinfo; lines that do not parse are skipped (and counted), never trusted.
pub fn parse(text: &str) -> (Vec<Mount>, usize) {
    let mut bad = 0;
    let mounts = text
        .lines()
        .filter_map(|l| {
            let m = parse_line(l);
            if m.is_none() && !l.trim().is_empty() {
                bad += 1;
            }
            m
        })
        .collect();
    (mounts, bad)
}

/// The mount in force at `path`: the last one mounted there (later lines stack on earlier).
pub fn at<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

/// The mount whose subtree holds `path` (longest mount point prefix, last mounted wins).
pub fn containing<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    mounts
        .iter()
        .rev()
        .filter(|m| under(path, &m.mount_point))
        .max_by_key(|m| m.mount_point.len())
}

fn under(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Whether a masked path is covered, and by what. `exists` says whether the path exists in
/// the container at all (a path the kernel does not have needs no mask).
pub fn masked(mounts: &[Mount], path: &str, exists: bool) -> PathState {
    let (in_force, detail) = match at(mounts, path) {
        Some(m) if m.root.ends_with("/null") || m.root == "/null" => (true, "/dev/null bound over it".to_string()),
        Some(m) if m.fstype == "tmpfs" && m.readonly => (true, "read-only tmpfs".to_string()),
        Some(m) => (
            m.readonly,
            format!("{} mounted over it{}", m.fstype, if m.readonly { " (ro)" } else { "" }),
        ),
        None if !exists => (true, "absent on this kernel".to_string()),
        None => (false, "visible".to_string()),
    };
    PathState {
        path: path.to_string(),
        in_force,
        detail,
    }
}

/// Whether a read-only path is read-only.
pub fn readonly(mounts: &[Mount], path: &str, exists: bool) -> PathState {
    let (in_force, detail) = match containing(mounts, path) {
        _ if !exists => (true, "absent on this kernel".to_string()),
        Some(m) if m.readonly => (true, format!("read-only ({} at {})", m.fstype, m.mount_point)),
        Some(m) => (false, format!("writable ({} at {})", m.fstype, m.mount_point)),
        None => (false, "no mount found".to_string()),
    };
    PathState {
        path: path.to_string(),
        in_force,
        detail,
    }
}

/// Filesystems the kernel makes fresh for a container or that are covered by their own checks
/// (/proc, /sys masking): not host paths in the hostPath sense.
const PSEUDO: [&str; 9] = [
    "proc",
    "sysfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "bpf",
    "securityfs",
    "binfmt_misc",
];

/// The container's mounts that show a host filesystem (same device as a mount of the host's,
/// from pid 1's mountinfo), other than the root filesystem itself: binds of host paths. The host
/// path is rebuilt from the host mount with that device whose root holds the bind's root.
pub fn host_binds(container: &[Mount], host: &[Mount], is_socket: impl Fn(&str) -> bool) -> Vec<HostBind> {
    let root_id = at(container, "/").map(|m| m.id);
    container
        .iter()
        .filter(|m| Some(m.id) != root_id && !PSEUDO.contains(&m.fstype.as_str()))
        .filter_map(|m| {
            let h = host
                .iter()
                .filter(|h| h.dev == m.dev && under(&m.root, &h.root))
                .max_by_key(|h| h.root.len())?;
            let rel = m
                .root
                .strip_prefix(h.root.as_str())
                .unwrap_or_default()
                .trim_start_matches('/');
            let host_path = match (h.mount_point.as_str(), rel) {
                (mp, "") => mp.to_string(),
                ("/", r) => format!("/{r}"),
                (mp, r) => format!("{mp}/{r}"),
            };
            // A tmpfs the runtime made (the container's /dev, /dev/shm) is not a host path even
            // though a host tmpfs may show the same device only if it is the same mount.
            Some(
                HostBind {
                    destination: m.mount_point.clone(),
                    host_path: Some(host_path),
                    readonly: m.readonly,
                    socket: is_socket(&m.mount_point),
                    danger: None,
                    managed: false,
                }
                .assess(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
600 500 0:50 / / ro,relatime - overlay overlay rw,lowerdir=/l
601 600 0:51 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
602 601 0:52 /null /proc/kcore rw,nosuid - tmpfs tmpfs rw,size=65536k
603 601 0:53 / /proc/acpi ro,relatime - tmpfs tmpfs ro
604 601 0:51 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw
605 600 8:1 /run/containerd/containerd.sock /run/c.sock rw,relatime - ext4 /dev/sda1 rw
606 600 8:1 /srv/my\\040dir /data ro,relatime - ext4 /dev/sda1 rw
607 600 0:54 / /dev rw,nosuid - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn parses_and_unescapes() {
        let (m, bad) = parse(SAMPLE);
        assert_eq!(bad, 1);
        assert_eq!(m.len(), 8);
        assert_eq!(m[0].mount_point, "/");
        assert!(m[0].readonly);
        assert_eq!(m[6].root, "/srv/my dir");
        assert_eq!(m[5].dev, (8, 1));
        assert_eq!(unescape("a\\134b\\"), "a\\b\\");
    }

    #[test]
    fn masked_and_readonly() {
        let (m, _) = parse(SAMPLE);
        assert!(masked(&m, "/proc/kcore", true).in_force);
        assert!(masked(&m, "/proc/acpi", true).in_force);
        assert!(!masked(&m, "/proc/keys", true).in_force);
        assert!(masked(&m, "/proc/timer_stats", false).in_force);
        assert!(readonly(&m, "/proc/sys", true).in_force);
        assert!(!readonly(&m, "/proc/bus", true).in_force);
    }

    #[test]
    fn finds_host_binds() {
        let (c, _) = parse(SAMPLE);
        let (h, _) = parse("20 1 8:1 / / rw - ext4 /dev/sda1 rw\n21 20 0:54 / /dev rw - devtmpfs udev rw\n");
        let b = host_binds(&c, &h, |d| d == "/run/c.sock");
        assert_eq!(b.len(), 3, "{b:?}");
        assert_eq!(b[0].host_path.as_deref(), Some("/run/containerd/containerd.sock"));
        assert!(b[0].danger.as_deref().unwrap_or_default().contains("runtime socket"));
        assert_eq!(b[1].host_path.as_deref(), Some("/srv/my dir"));
        assert!(b[1].readonly && b[1].danger.is_none());
        assert_eq!(b[2].host_path.as_deref(), Some("/dev"));
        assert!(b[2].danger.is_some());
    }
}
