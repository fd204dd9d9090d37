//! The facts of one container process, read from /proc/<pid>/ as the host sees them: its
//! credentials and capability sets (`status`), namespaces (`ns/*`), id maps, LSM label and
//! rlimits.

use std::fs;

use oci_spec::runtime::Linux;

use super::config::NS_KINDS;
use super::{caps, IdMap, Namespace, NsState, Process, Rlimit, SeccompMode, SeccompState, User};
use crate::error::{Error, Result};
use crate::init::capabilities::Sets;

pub fn read(pid: i32, what: &str) -> Result<String> {
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
pub fn host_reference() -> String {
    if ns_inode(1, "mnt").is_some() {
        "pid 1".into()
    } else {
        "moor's own namespaces (pid 1's are unreadable)".into()
    }
}

pub fn read_process(pid: i32, linux: &Linux) -> Result<Process> {
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
        assert_eq!(super::super::config::map_id(&m, true, 0), Some(100000));
        assert_eq!(super::super::config::map_id(&m, true, 70000), None);
        assert_eq!(super::super::config::map_id(&m, false, 0), Some(0));
        assert_eq!(unmap_id(&m, 100000), Some(0));
        assert_eq!(unmap_id(&m, 100001 + 65535), None);
        assert_eq!(unmap_id(&m, 5), None);
    }
}
