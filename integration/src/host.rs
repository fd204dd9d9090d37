//! Host-side observations: mounts, cgroup dirs, processes, fds, /proc/<pid>/status fields.

use std::fs;
use std::path::{Path, PathBuf};

/// Lines of /proc/self/mountinfo that mention `needle` (e.g. a bundle path).
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Number of lines in /proc/self/mountinfo.
pub fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .count()
}

/// The cgroup v1/v2 hierarchy roots mounted under /sys/fs/cgroup (e.g. /sys/fs/cgroup/memory).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/fs/cgroup") else {
        return v;
    };
    // Pure v2: /sys/fs/cgroup itself is the hierarchy.
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        v.push(PathBuf::from("/sys/fs/cgroup"));
        return v;
    }
    for e in rd.flatten() {
        let p = e.path();
        if p.join("cgroup.procs").exists() && !p.is_symlink() {
            v.push(p);
        }
    }
    v
}

/// Existing cgroup directories for an absolute cgroupsPath (e.g. `/moor-it/<id>`).
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if rel.is_empty() {
        return Vec::new();
    }
    cgroup_hierarchies()
        .into_iter()
        .map(|h| h.join(rel))
        .filter(|p| p.is_dir())
        .collect()
}

/// Pids listed in any hierarchy's cgroup.procs for this cgroupsPath (recursively).
pub fn cgroup_pids(cgroups_path: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for d in cgroup_dirs(cgroups_path) {
        collect_pids(&d, &mut pids);
    }
    pids.sort();
    pids.dedup();
    pids
}

fn collect_pids(d: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = fs::read_to_string(d.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// Removes the cgroup dirs of `cgroups_path` (children first; rmdir only, never files).
/// Any process still inside is SIGKILLed first (they can only be this test's).
pub fn remove_cgroup(cgroups_path: &str) {
    if !cgroups_path.starts_with("/moor-it/") {
        return; // never touch anything else
    }
    for pid in cgroup_pids(cgroups_path) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    for d in cgroup_dirs(cgroups_path) {
        let _ = crate::poll_for(std::time::Duration::from_secs(5), || {
            rmdir_tree(&d);
            (!d.exists()).then_some(())
        });
    }
}

fn rmdir_tree(d: &Path) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(d);
}

/// Removes the `/moor-it` parent dirs in every hierarchy if empty.
pub fn remove_cgroup_parents() {
    for h in cgroup_hierarchies() {
        let _ = fs::remove_dir(h.join("moor-it"));
    }
}

/// Pids (other than ours) whose cmdline contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let me = nix::unistd::getpid().as_raw();
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(c) = fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) {
                v.push(pid);
            }
        }
    }
    v
}

/// Children of this process that are zombies.
pub fn zombie_children() -> Vec<i32> {
    let me = nix::unistd::getpid().as_raw();
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(e.path().join("stat")) {
            // pid (comm) S ppid ...
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() > 1 && f[0] == "Z" && f[1].parse::<i32>().ok() == Some(me) {
                    v.push(pid);
                }
            }
        }
    }
    v
}

/// Open fds of this process.
pub fn my_fds() -> Vec<i32> {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')').map(|(_, r)| r.trim_start().chars().next()),
            Some(Some('Z')) | Some(Some('X'))
        ),
        Err(_) => false,
    }
}

/// A field of a /proc/<pid>/status-format text (e.g. "CapEff").
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// Capability bit numbers by OCI name.
pub fn cap_bit(name: &str) -> u32 {
    const NAMES: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let n = name.trim_start_matches("CAP_");
    let i = NAMES
        .iter()
        .position(|x| *x == n)
        .unwrap_or_else(|| panic!("unknown cap {name}"));
    u32::try_from(i).unwrap_or_else(|_| panic!("cap index {i}"))
}

/// The capability mask for a list of OCI names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0u64, |m, n| m | (1u64 << cap_bit(n)))
}

/// Parses a hex capability mask from /proc/<pid>/status.
pub fn parse_cap_hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim(), 16).unwrap_or_else(|_| panic!("bad cap hex {s:?}"))
}

/// The namespace inode link of a process, e.g. "net:[4026531840]".
pub fn ns_link(pid: i32, ns: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Records host sysctl values and restores any that changed on drop, so a runtime that wrongly
/// applies a container sysctl to the host cannot leave the host changed. `changed()` tells the
/// test whether that happened.
pub struct SysctlGuard {
    saved: Vec<(PathBuf, String)>,
}

impl SysctlGuard {
    /// `keys` in dotted form, e.g. "kernel.shmmax".
    pub fn new(keys: &[&str]) -> SysctlGuard {
        let saved = keys
            .iter()
            .map(|k| {
                let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
                let v = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (p, v)
            })
            .collect();
        SysctlGuard { saved }
    }

    /// The host sysctls whose value differs from when the guard was made.
    pub fn changed(&self) -> Vec<String> {
        self.saved
            .iter()
            .filter(|(p, v)| fs::read_to_string(p).ok().as_ref() != Some(v))
            .map(|(p, _)| p.display().to_string())
            .collect()
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        for (p, v) in &self.saved {
            if fs::read_to_string(p).ok().as_ref() != Some(v) {
                eprintln!("restoring host sysctl {} to {}", p.display(), v.trim());
                let _ = fs::write(p, v.trim());
            }
        }
    }
}
