//! The report of a created or running container, read from its processes, its cgroup and its
//! root (through /proc/<pid>/root, resolved in that root: the container's symlinks never lead
//! the walk out of it).

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

use moor_cgroups::Mode;
use oci_spec::runtime::{Linux, LinuxNamespaceType};

use super::config::{self, NS_KINDS};
use super::{
    caps, mountinfo, seccomp, DeviceNode, Devices, Filesystem, IdMap, Limits, Namespace, NsState, Process, Report,
    Rlimit, SeccompMode, SeccompState, Source, User, DEFAULT_MASKED, DEFAULT_READONLY,
};
use crate::error::{Error, Result};
use crate::init::capabilities::Sets;
use crate::runtime::state::{ContainerState, Status};
use crate::sys;
use crate::Runtime;

/// The devices every container gets (runtime-spec "Default Devices").
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];
const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
/// A hostile /dev could hold millions of entries; an audit lists this many at most.
const MAX_DEV_ENTRIES: usize = 4096;
/// cgroup v1's "unlimited" memory limit (PAGE_COUNTER_MAX in bytes, rounded to pages): anything
/// this high is no limit.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

/// Builds the report of container `id`; with `all`, every process in its cgroup, else its init.
pub fn from_container(rt: &Runtime, id: &str, all: bool) -> Result<Report> {
    let (state, status) = rt.load(id)?;
    if status == Status::Stopped || status == Status::Creating {
        return Err(Error::InvalidState(format!(
            "container {id} is {status}: only a created, running or paused container can be inspected"
        )));
    }
    let cfg = state.exec_config()?;
    let init = state.pid;
    let mut pids = vec![init];
    if all {
        pids.extend(
            crate::runtime::container_pids(&state)
                .into_iter()
                .filter(|p| *p != init),
        );
    }
    let mut processes = Vec::new();
    for pid in pids {
        match read_process(pid, &cfg.linux) {
            Ok(p) => processes.push(p),
            // Another process may exit while we read it; init may not.
            Err(e) if pid == init => return Err(Error::context(format!("read init process {pid}"), e)),
            Err(_) => {}
        }
    }
    let root = open_root(init)?;
    let mut report = Report {
        source: Source::Live {
            id: id.to_string(),
            status: status.to_string(),
            host_namespaces: host_reference(),
        },
        drift: processes
            .first()
            .map(|p| drift(p, &cfg.process, &cfg.linux, status == Status::Created))
            .transpose()?
            .unwrap_or_default(),
        processes,
        filesystem: filesystem(init, &root, &cfg.linux)?,
        devices: devices(&state, &root, &cfg.linux),
        cgroup: limits(&state),
        seccomp_profile: cfg.linux.seccomp().as_ref().map(seccomp::analyse).transpose()?,
        sysctls: config::sysctls(&cfg.linux),
        findings: Vec::new(),
    };
    // The facts are init's only if the pid still names it (not a process that reused it).
    if !state.init_alive() {
        return Err(Error::InvalidState(format!(
            "container {id} stopped while it was inspected"
        )));
    }
    report.findings = super::findings(&report);
    Ok(report)
}

fn read(pid: i32, what: &str) -> Result<String> {
    let path = format!("/proc/{pid}/{what}");
    fs::read_to_string(&path).map_err(|e| Error::path("cannot read", path, e))
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

fn ids(status: &str, key: &str) -> Vec<u32> {
    field(status, key)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// The capability sets of /proc/<pid>/status.
pub fn status_caps(status: &str) -> Sets {
    let get = |k| field(status, k).and_then(caps::parse_hex).unwrap_or(0);
    Sets {
        bounding: get("CapBnd"),
        effective: get("CapEff"),
        permitted: get("CapPrm"),
        inheritable: get("CapInh"),
        ambient: get("CapAmb"),
    }
}

fn parse_id_map(text: &str) -> Vec<IdMap> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|v| v.parse::<u32>().ok());
            Some(IdMap {
                inside: f.next()??,
                outside: f.next()??,
                count: f.next()??,
            })
        })
        .collect()
}

/// What the kernel shows for an id with no mapping (overflowuid/overflowgid).
const OVERFLOW_ID: u32 = 65534;

/// The id inside the namespace that `maps` (inside -> outside) send to `host`.
fn unmap_id(maps: &[IdMap], host: u32) -> Option<u32> {
    maps.iter()
        .find(|m| host >= m.outside && host - m.outside < m.count)
        .and_then(|m| m.inside.checked_add(host - m.outside))
}

fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The host's namespaces: pid 1's, or (where pid 1's links cannot be read, as under a
/// supervisor that keeps pid 1 undumpable) moor's own, which runs in the host's.
fn host_ns(kind: &str) -> Option<u64> {
    ns_inode(1, kind).or_else(|| ns_inode(i32::try_from(std::process::id()).ok()?, kind))
}

/// What [`host_ns`] compares with, for the report.
fn host_reference() -> String {
    if ns_inode(1, "mnt").is_some() {
        "pid 1".into()
    } else {
        "moor's own namespaces (pid 1's are unreadable)".into()
    }
}

fn read_process(pid: i32, linux: &Linux) -> Result<Process> {
    let status = read(pid, "status")?;
    let namespaces: Vec<Namespace> = NS_KINDS
        .iter()
        .filter_map(|(kind, ty)| {
            let inode = ns_inode(pid, kind)?;
            let joined = linux
                .namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == *ty && n.path().is_some());
            Some(Namespace {
                kind: kind.to_string(),
                state: if Some(inode) == host_ns(kind) {
                    NsState::Host
                } else if joined {
                    NsState::Joined
                } else {
                    NsState::New
                },
                inode: Some(inode),
            })
        })
        .collect();
    let userns = namespaces.iter().any(|n| n.kind == "user" && n.state != NsState::Host);
    let uid_map = read(pid, "uid_map").map(|t| parse_id_map(&t)).unwrap_or_default();
    let gid_map = read(pid, "gid_map").map(|t| parse_id_map(&t)).unwrap_or_default();
    // Uid: real, effective, saved, fs; the effective ids are the ones that grant access.
    // status shows ids as the reader's user namespace sees them (the host's); the container's
    // own come back through its maps.
    let host_uid = ids(&status, "Uid").get(1).copied();
    let host_gid = ids(&status, "Gid").get(1).copied().unwrap_or(u32::MAX);
    let inside = |maps: &[IdMap], id: u32| if userns { unmap_id(maps, id) } else { Some(id) };
    let uid = host_uid.and_then(|h| inside(&uid_map, h)).unwrap_or(OVERFLOW_ID);
    let gid = inside(&gid_map, host_gid).unwrap_or(OVERFLOW_ID);
    let groups = ids(&status, "Groups")
        .into_iter()
        .map(|g| inside(&gid_map, g).unwrap_or(OVERFLOW_ID))
        .collect();
    let seccomp_mode = match field(&status, "Seccomp") {
        Some("1") => SeccompMode::Strict,
        Some("2") => SeccompMode::Filter,
        _ => SeccompMode::Disabled,
    };
    Ok(Process {
        pid: Some(pid),
        user: User {
            uid,
            gid,
            additional_gids: groups,
            host_uid,
            root_on_host: uid == 0 && host_uid == Some(0),
        },
        namespaces,
        uid_map,
        gid_map,
        capabilities: caps::describe(&status_caps(&status)),
        no_new_privs: field(&status, "NoNewPrivs") == Some("1"),
        seccomp: SeccompState {
            mode: seccomp_mode,
            filters: field(&status, "Seccomp_filters").and_then(|v| v.parse().ok()),
        },
        lsm_label: fs::read(format!("/proc/{pid}/attr/current"))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim_end_matches(['\0', '\n']).to_string())
            .filter(|l| !l.is_empty() && l != "unconfined"),
        rlimits: read(pid, "limits").map(|t| parse_limits(&t)).unwrap_or_default(),
    })
}

const LIMIT_NAMES: [(&str, &str); 16] = [
    ("Max cpu time", "RLIMIT_CPU"),
    ("Max file size", "RLIMIT_FSIZE"),
    ("Max data size", "RLIMIT_DATA"),
    ("Max stack size", "RLIMIT_STACK"),
    ("Max core file size", "RLIMIT_CORE"),
    ("Max resident set", "RLIMIT_RSS"),
    ("Max processes", "RLIMIT_NPROC"),
    ("Max open files", "RLIMIT_NOFILE"),
    ("Max locked memory", "RLIMIT_MEMLOCK"),
    ("Max address space", "RLIMIT_AS"),
    ("Max file locks", "RLIMIT_LOCKS"),
    ("Max pending signals", "RLIMIT_SIGPENDING"),
    ("Max msgqueue size", "RLIMIT_MSGQUEUE"),
    ("Max nice priority", "RLIMIT_NICE"),
    ("Max realtime priority", "RLIMIT_RTPRIO"),
    ("Max realtime timeout", "RLIMIT_RTTIME"),
];

/// /proc/<pid>/limits: a name in words, then soft and hard (numbers or "unlimited"), then units.
fn parse_limits(text: &str) -> Vec<Rlimit> {
    let value = |t: &str| {
        if t == "unlimited" {
            Some(None)
        } else {
            t.parse().ok().map(Some)
        }
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let toks: Vec<&str> = l.split_whitespace().collect();
            let at = toks.iter().position(|t| value(t).is_some())?;
            let name = toks[..at].join(" ");
            let (_, oci) = LIMIT_NAMES.iter().find(|(n, _)| *n == name)?;
            Some(Rlimit {
                name: oci.to_string(),
                soft: value(toks.get(at)?)?,
                hard: value(toks.get(at + 1)?)?,
            })
        })
        .collect()
}

/// The container's root, as seen through its init.
fn open_root(pid: i32) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/root");
    fs::File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| Error::path("cannot open the container's root", path, e))
}

/// lstat of `path` inside the container's root, resolved in that root.
fn stat_in_root(root: &OwnedFd, path: &str) -> Option<libc::stat> {
    let rel = CString::new(path.trim_start_matches('/')).ok()?;
    let flags = u64::try_from(libc::O_PATH | libc::O_NOFOLLOW).ok()?;
    let fd = sys::openat2(root.as_fd(), &rel, flags, 0, IN_ROOT).ok()?;
    // SAFETY: stat is plain data; fstat fills it from an fd we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and st is a valid out-pointer.
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0).then_some(st)
}

fn is_type(st: &libc::stat, ty: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == ty
}

fn filesystem(pid: i32, root: &OwnedFd, linux: &Linux) -> Result<Filesystem> {
    let (mounts, _) = mountinfo::parse(&read(pid, "mountinfo")?);
    // The host's mounts: pid 1's, else moor's own (see host_ns).
    let host_text = read(1, "mountinfo").or_else(|_| {
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::path("cannot read", "/proc/self/mountinfo", e))
    })?;
    let (host, _) = mountinfo::parse(&host_text);
    let exists = |p: &str| stat_in_root(root, p).is_some();
    let mut masked: Vec<String> = DEFAULT_MASKED.iter().map(|s| s.to_string()).collect();
    masked.extend(
        linux
            .masked_paths()
            .iter()
            .flatten()
            .filter(|p| !masked.contains(p))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut readonly: Vec<String> = DEFAULT_READONLY.iter().map(|s| s.to_string()).collect();
    readonly.extend(
        linux
            .readonly_paths()
            .iter()
            .flatten()
            .filter(|p| !readonly.contains(p))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut host_binds = mountinfo::host_binds(&mounts, &host, |dest| {
        stat_in_root(root, dest).is_some_and(|st| is_type(&st, libc::S_IFSOCK))
    });
    // A masked file is the container's /dev/null bound over it (itself the host's): the mask,
    // not a host path given to the container.
    host_binds.retain(|b| !(b.host_path.as_deref() == Some("/dev/null") && masked.contains(&b.destination)));
    // In a user namespace device nodes cannot be made, so the runtime binds the host's own at
    // the same path: the default devices and linux.devices, reported under devices.
    let mut devices: Vec<String> = DEFAULT_DEVICES.iter().map(|d| d.to_string()).collect();
    devices.extend(linux.devices().iter().flatten().map(|d| d.path().display().to_string()));
    host_binds
        .retain(|b| !(b.host_path.as_deref() == Some(b.destination.as_str()) && devices.contains(&b.destination)));
    let proc_sys = mountinfo::readonly(&mounts, "/proc/sys", exists("/proc/sys"));
    Ok(Filesystem {
        root_readonly: mountinfo::at(&mounts, "/").is_some_and(|m| m.readonly),
        masked_paths: masked
            .iter()
            .map(|p| mountinfo::masked(&mounts, p, exists(p)))
            .collect(),
        readonly_paths: readonly
            .iter()
            .map(|p| mountinfo::readonly(&mounts, p, exists(p)))
            .collect(),
        host_binds,
        proc_writable: !proc_sys.in_force,
        sys_writable: mountinfo::containing(&mounts, "/sys").is_some_and(|m| m.mount_point == "/sys" && !m.readonly),
    })
}

/// Device nodes directly under the container's /dev, listed without following any symlink.
fn dev_nodes(root: &OwnedFd) -> Vec<DeviceNode> {
    let Ok(flags) = u64::try_from(libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) else {
        return Vec::new();
    };
    let Ok(dev) = sys::openat2(root.as_fd(), c"dev", flags, 0, IN_ROOT) else {
        return Vec::new();
    };
    // Dir owns the fd from here (and closes it if fdopendir fails).
    let Ok(mut dir) = nix::dir::Dir::from_fd(dev.into_raw_fd()) else {
        return Vec::new();
    };
    let dirfd = dir.as_raw_fd();
    let mut nodes = Vec::new();
    for entry in dir.iter().take(MAX_DEV_ENTRIES).flatten() {
        let name = entry.file_name();
        // SAFETY: stat is plain data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: dirfd is open for the loop, name is NUL-terminated, no symlink is followed.
        if unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            continue;
        }
        let kind = if is_type(&st, libc::S_IFCHR) {
            'c'
        } else if is_type(&st, libc::S_IFBLK) {
            'b'
        } else {
            continue;
        };
        nodes.push(DeviceNode {
            path: format!("/dev/{}", name.to_string_lossy()),
            kind,
            major: u64::from(libc::major(st.st_rdev)),
            minor: u64::from(libc::minor(st.st_rdev)),
        });
    }
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    nodes
}

fn devices(state: &ContainerState, root: &OwnedFd, linux: &Linux) -> Devices {
    let nodes = dev_nodes(root);
    let v1 = state
        .cgroup()
        .filter(|c| c.mode() != Mode::Unified)
        .and_then(|c| c.v1_dir("devices").map(|d| d.join("devices.list")))
        .and_then(|p| fs::read_to_string(p).ok());
    if let Some(list) = v1 {
        let rules: Vec<String> = list.lines().map(str::to_string).collect();
        return Devices {
            rules_source: "cgroup v1 devices.list".into(),
            all_allowed: rules.iter().any(|r| r.trim() == "a *:* rwm"),
            rules,
            nodes,
        };
    }
    // cgroup v2 enforces devices with an eBPF program that cannot be read back as rules.
    let (rules, all_allowed) = config::device_rules(linux);
    Devices {
        rules_source: "config (cgroup v2 eBPF program)".into(),
        rules,
        all_allowed,
        nodes,
    }
}

fn limits(state: &ContainerState) -> Limits {
    let Some(cg) = state.cgroup() else {
        return Limits {
            source: "no cgroup recorded".into(),
            ..Default::default()
        };
    };
    match cg.stats() {
        Ok(s) => Limits {
            memory: s.memory.map(|m| m.usage.limit).filter(|l| *l < V1_UNLIMITED),
            pids: s.pids.map(|p| p.limit).filter(|l| *l != u64::MAX),
            source: "cgroup".into(),
        },
        Err(e) => Limits {
            source: format!("cgroup unreadable: {e}"),
            ..Default::default()
        },
    }
}

fn names(mask: u64) -> String {
    let n = caps::names(mask);
    if n.is_empty() {
        "none".into()
    } else {
        n.join(", ")
    }
}

/// The permitted (and effective) set execve leaves a process started with `sets` as `uid`,
/// running a file without file capabilities: root gets its bounding and inheritable sets
/// (no_new_privs caps that at what it had), any other user keeps only its ambient set.
fn after_execve(sets: &Sets, uid: u32, nnp: bool) -> u64 {
    if uid != 0 {
        return sets.ambient;
    }
    let p = sets.bounding | sets.inheritable | sets.ambient;
    if nnp {
        p & (sets.permitted | sets.ambient)
    } else {
        p
    }
}

/// Differences between init's live state and what the recorded config asked for. Capabilities
/// are compared with what execve makes of the configured sets ([`after_execve`]) once the
/// workload runs.
fn drift(
    live: &Process,
    process: &oci_spec::runtime::Process,
    linux: &Linux,
    before_exec: bool,
) -> Result<Vec<String>> {
    let want = config::cap_sets(process)?;
    let status = read(live.pid.unwrap_or(0), "status")?;
    let got = status_caps(&status);
    let nnp = process.no_new_privileges().unwrap_or(false);
    let uid = process.user().uid();
    // A created container's init waits on the exec fifo with the configured sets: execve is
    // still to come.
    let expected_eff = if before_exec {
        want.effective
    } else {
        after_execve(&want, uid, nnp)
    };
    let mut d = Vec::new();
    let mut set = |what: &str, want: u64, got: u64| {
        if want != got {
            d.push(format!(
                "{what} capabilities: the config leads to {}, process has {}",
                names(want),
                names(got)
            ));
        }
    };
    set("bounding", want.bounding, got.bounding);
    set("inheritable", want.inheritable, got.inheritable);
    set("ambient", want.ambient, got.ambient);
    set("effective", expected_eff, got.effective);
    if nnp != live.no_new_privs {
        d.push(format!(
            "no_new_privs: config says {nnp}, process has {}",
            live.no_new_privs
        ));
    }
    let filtered = linux.seccomp().is_some();
    if filtered != (live.seccomp.mode == SeccompMode::Filter) {
        d.push(format!(
            "seccomp: config {} a filter, process is in mode {:?}",
            if filtered { "has" } else { "has no" },
            live.seccomp.mode
        ));
    }
    if uid != live.user.uid {
        d.push(format!(
            "user: config says uid {uid}, process runs as uid {}",
            live.user.uid
        ));
    }
    for ns in &live.namespaces {
        let ty = NS_KINDS.iter().find(|(k, _)| *k == ns.kind).map(|(_, t)| *t);
        let asked = ty.is_some_and(|t| linux.namespaces().iter().flatten().any(|n| n.typ() == t));
        // The time and cgroup namespaces may be absent from a kernel; user is judged by maps.
        if asked && ns.state == NsState::Host && ty != Some(LinuxNamespaceType::User) {
            d.push(format!(
                "namespace {}: config asks for one, process shares the host's",
                ns.kind
            ));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 4096                 files     \n\
Max nice priority         0                    0                    \n\
Max bogus thing           1                    1                    x\n\
garbage\n";
        let l = parse_limits(text);
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].name.as_str(), l[0].soft, l[0].hard), ("RLIMIT_CPU", None, None));
        assert_eq!(
            (l[1].name.as_str(), l[1].soft, l[1].hard),
            ("RLIMIT_NOFILE", Some(1024), Some(4096))
        );
        assert_eq!(l[2].name, "RLIMIT_NICE");
    }

    #[test]
    fn execve_model() {
        let s = Sets {
            bounding: 0b1111,
            permitted: 0b0011,
            effective: 0b0011,
            inheritable: 0b0100,
            ambient: 0,
        };
        assert_eq!(after_execve(&s, 0, false), 0b1111);
        assert_eq!(after_execve(&s, 0, true), 0b0011);
        assert_eq!(after_execve(&s, 1000, false), 0);
        assert_eq!(after_execve(&Sets { ambient: 0b0100, ..s }, 1000, true), 0b0100);
    }

    #[test]
    fn status_and_maps() {
        let s =
            "Name:\tsh\nUid:\t0\t1000\t0\t0\nCapInh:\t0000000000000000\nCapBnd:\t0000000020000420\nCapEff:\tnothex\n";
        let c = status_caps(s);
        assert_eq!(c.bounding, (1 << 29) | (1 << 10) | (1 << 5));
        assert_eq!(c.effective, 0);
        assert_eq!(ids(s, "Uid"), [0, 1000, 0, 0]);
        let m = parse_id_map("         0     100000      65536\nbad line\n");
        assert_eq!(
            m,
            [IdMap {
                inside: 0,
                outside: 100000,
                count: 65536
            }]
        );
        assert_eq!(config::map_id(&m, true, 0), Some(100000));
        assert_eq!(config::map_id(&m, true, 70000), None);
        assert_eq!(config::map_id(&m, false, 0), Some(0));
        assert_eq!(unmap_id(&m, 100000), Some(0));
        assert_eq!(unmap_id(&m, 100001 + 65535), None);
        assert_eq!(unmap_id(&m, 5), None);
    }
}
