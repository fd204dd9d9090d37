//! Which cgroup layout the host has, where the hierarchies are mounted, and which cgroup this
//! process is in.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";
pub(crate) const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// The cgroup layout of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// cgroup v1 controllers only.
    Legacy,
    /// cgroup v1 controllers plus a cgroup2 hierarchy at /sys/fs/cgroup/unified.
    Hybrid,
    /// Pure cgroup v2 at /sys/fs/cgroup.
    Unified,
}

fn fs_magic(path: &str) -> Result<Option<i64>> {
    let c = CString::new(path).map_err(|_| Error::Setup(format!("bad path {path:?}")))?;
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a valid out pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(Error::io("statfs", path, err));
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(Some(st.f_type as i64))
}

/// Detects the host's cgroup layout from the filesystem types under /sys/fs/cgroup.
pub fn detect_mode() -> Result<Mode> {
    match fs_magic(CGROUP_ROOT)? {
        Some(CGROUP2_SUPER_MAGIC) => Ok(Mode::Unified),
        Some(TMPFS_MAGIC) => match fs_magic(HYBRID_UNIFIED)? {
            Some(CGROUP2_SUPER_MAGIC) => Ok(Mode::Hybrid),
            _ => Ok(Mode::Legacy),
        },
        Some(CGROUP_SUPER_MAGIC) => Ok(Mode::Legacy),
        Some(other) => Err(Error::Setup(format!(
            "{CGROUP_ROOT} has unexpected filesystem type {other:#x}"
        ))),
        None => Err(Error::Setup(format!("{CGROUP_ROOT} does not exist"))),
    }
}

/// The v1 controllers we create directories in (runc's list plus the named systemd hierarchy).
pub(crate) const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
    "name=systemd",
];

/// One mounted v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V1Mount {
    pub mount_point: PathBuf,
    /// The cgroup path (inside the hierarchy) that is mounted at `mount_point`.
    pub root: String,
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo text into controller → mount (first mount of each controller wins).
pub(crate) fn parse_v1_mounts(mountinfo: &str) -> BTreeMap<String, V1Mount> {
    let mut out = BTreeMap::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || post[0] != "cgroup" {
            continue;
        }
        let mount = V1Mount {
            mount_point: PathBuf::from(unescape_mountinfo(pre[4])),
            root: unescape_mountinfo(pre[3]),
        };
        for opt in post[2].split(',') {
            if V1_CONTROLLERS.contains(&opt) {
                out.entry(opt.to_string()).or_insert_with(|| mount.clone());
            }
        }
    }
    out
}

pub(crate) fn v1_mounts() -> Result<BTreeMap<String, V1Mount>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    Ok(parse_v1_mounts(&text))
}

/// Parses /proc/self/cgroup text: v1 controller → path, and the v2 path under key "".
pub(crate) fn parse_proc_cgroup(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            out.insert(String::new(), path.to_string());
        } else {
            for c in ctrls.split(',') {
                out.insert(c.to_string(), path.to_string());
            }
        }
    }
    out
}

pub(crate) fn own_cgroups() -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("read", "/proc/self/cgroup", e))?;
    Ok(parse_proc_cgroup(&text))
}

/// Makes a cgroup path from /proc/self/cgroup relative to a mount whose root is `mount_root`.
pub(crate) fn relative_to_mount(path: &str, mount_root: &str) -> String {
    if mount_root == "/" || mount_root.is_empty() {
        return path.to_string();
    }
    match path.strip_prefix(mount_root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            }
        }
        // Not below the mount root (e.g. a cgroup namespace): treat the path as mount-relative.
        _ => path.to_string(),
    }
}

pub(crate) fn is_cgroup2(path: &Path) -> bool {
    matches!(path.to_str().map(fs_magic), Some(Ok(Some(CGROUP2_SUPER_MAGIC))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "\
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu
33 30 0:29 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
36 30 0:32 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";

    #[test]
    fn mountinfo_parsing() {
        let m = parse_v1_mounts(MI);
        assert_eq!(m["cpu"].mount_point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m["cpuacct"].mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m["memory"].root, "/docker/abc");
        assert_eq!(m["name=systemd"].mount_point, PathBuf::from("/sys/fs/cgroup/systemd"));
        assert_eq!(m["pids"].mount_point, PathBuf::from("/mnt/with space"));
        assert!(!m.contains_key("xattr"));
        assert!(!m.contains_key(""));
    }

    #[test]
    fn proc_cgroup_parsing() {
        let c = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/\n0::/x\n9:name=systemd:/s\n");
        assert_eq!(c["memory"], "/a/b");
        assert_eq!(c["cpuacct"], "/");
        assert_eq!(c[""], "/x");
        assert_eq!(c["name=systemd"], "/s");
    }

    #[test]
    fn mount_relative() {
        assert_eq!(relative_to_mount("/a/b", "/"), "/a/b");
        assert_eq!(relative_to_mount("/docker/abc/x", "/docker/abc"), "/x");
        assert_eq!(relative_to_mount("/docker/abc", "/docker/abc"), "/");
        assert_eq!(relative_to_mount("/docker/abcd", "/docker/abc"), "/docker/abcd");
    }
}
