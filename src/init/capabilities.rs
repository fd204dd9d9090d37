//! The five capability sets and the bounding set, applied exactly as configured.
//!
//! Order matters and is fixed: drop the bounding set while we still hold CAP_SETPCAP, keep the
//! permitted set across the uid switch (PR_SET_KEEPCAPS), then one capset(2) for effective,
//! permitted and inheritable, then the ambient set. Inheritable stays empty unless configured
//! (CVE-2022-29162).

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{Error, Result};
use crate::sys;

/// Linux capability numbers by name (without the CAP_ prefix), from linux/capability.h.
const NAMES: [&str; 41] = [
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

pub fn number(cap: Capability) -> Option<u32> {
    let name = cap.to_string();
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i).ok())
}

pub fn name(number: u32) -> Option<String> {
    NAMES.get(number as usize).map(|n| format!("CAP_{n}"))
}

/// The number of a capability named as the runtime-spec does ("CAP_CHOWN"); None if unknown.
pub fn number_of(name: &str) -> Option<u32> {
    let bare = name.strip_prefix("CAP_")?;
    NAMES
        .iter()
        .position(|n| *n == bare)
        .and_then(|i| u32::try_from(i).ok())
}

/// The highest capability the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Capability sets as bit masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: &Option<Capabilities>, field: &str) -> Result<u64> {
    let mut m = 0u64;
    for cap in set.iter().flatten() {
        let n = number(*cap).ok_or_else(|| Error::config(field, format!("unknown capability {cap}")))?;
        m |= 1 << n;
    }
    Ok(m)
}

impl Sets {
    pub fn from_spec(caps: &LinuxCapabilities) -> Result<Sets> {
        let mut sets = Sets {
            bounding: mask(caps.bounding(), "process.capabilities.bounding")?,
            effective: mask(caps.effective(), "process.capabilities.effective")?,
            permitted: mask(caps.permitted(), "process.capabilities.permitted")?,
            inheritable: mask(caps.inheritable(), "process.capabilities.inheritable")?,
            ambient: mask(caps.ambient(), "process.capabilities.ambient")?,
        };
        if sets.effective & !sets.permitted != 0 {
            return Err(Error::config(
                "process.capabilities.effective",
                format!("{} not in the permitted set", names(sets.effective & !sets.permitted)),
            ));
        }
        // The kernel only keeps ambient capabilities that are both permitted and inheritable;
        // runc-generated specs list ambient without inheritable, so the rest is dropped.
        sets.ambient &= sets.permitted & sets.inheritable;
        Ok(sets)
    }

    /// Keeps only the capabilities this kernel knows (runc ignores the others, and so do we).
    pub fn limit_to(mut self, last_cap: u32) -> Sets {
        let known = if last_cap >= 63 {
            u64::MAX
        } else {
            (1u64 << (last_cap + 1)) - 1
        };
        self.bounding &= known;
        self.effective &= known;
        self.permitted &= known;
        self.inheritable &= known;
        self.ambient &= known;
        self
    }
}

fn names(m: u64) -> String {
    (0..64)
        .filter(|b| m & (1 << b) != 0)
        .filter_map(name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The capability sets `process` asks for, limited to what this kernel knows (None: leave
/// capabilities alone).
pub fn of_process(process: &oci_spec::runtime::Process, last_cap: u32) -> Result<Option<Sets>> {
    Ok(process
        .capabilities()
        .as_ref()
        .map(Sets::from_spec)
        .transpose()?
        .map(|s| s.limit_to(last_cap)))
}

/// Drops every capability outside `bounding` from the bounding set.
pub fn drop_bounding(bounding: u64, last_cap: u32) -> Result<()> {
    for cap in 0..=last_cap {
        if bounding & (1 << cap) == 0 {
            sys::prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).map_err(|e| {
                Error::sys(
                    format!("drop {} from the bounding set", name(cap).unwrap_or_default()),
                    e,
                )
            })?;
        }
    }
    Ok(())
}

/// One capset(2) for effective, permitted and inheritable, then the ambient set.
pub fn apply(sets: &Sets, last_cap: u32) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // Word i of a 64-bit capability mask: the truncation keeps exactly those 32 bits.
    #[allow(clippy::cast_possible_truncation)]
    let word = |m: u64, i: usize| (m >> (32 * i)) as u32;
    let data: [Data; 2] = std::array::from_fn(|i| Data {
        effective: word(sets.effective, i),
        permitted: word(sets.permitted, i),
        inheritable: word(sets.inheritable, i),
    });
    // SAFETY: header and two data words as capset(2) version 3 expects.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if ret < 0 {
        return Err(Error::last_os("capset"));
    }
    sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)
        .map_err(|e| Error::sys("clear the ambient set", e))?;
    for cap in 0..=last_cap {
        if sets.ambient & (1 << cap) != 0 {
            sys::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap.into(),
            )
            .map_err(|e| Error::sys(format!("raise ambient {}", name(cap).unwrap_or_default()), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel() {
        assert_eq!(number(Capability::Chown), Some(0));
        assert_eq!(number(Capability::SysAdmin), Some(21));
        assert_eq!(number(Capability::AuditWrite), Some(29));
        assert_eq!(number(Capability::CheckpointRestore), Some(40));
    }

    #[test]
    fn ambient_is_limited_to_permitted_and_inheritable() {
        let caps: LinuxCapabilities = serde_json::from_str(
            r#"{"permitted":["CAP_KILL","CAP_CHOWN"],"inheritable":["CAP_CHOWN"],"ambient":["CAP_KILL","CAP_CHOWN"]}"#,
        )
        .unwrap();
        assert_eq!(Sets::from_spec(&caps).unwrap().ambient, 1 << 0);
    }

    #[test]
    fn effective_outside_permitted_is_refused() {
        let caps: LinuxCapabilities = serde_json::from_str(r#"{"effective":["CAP_KILL"]}"#).unwrap();
        assert!(Sets::from_spec(&caps).is_err());
    }
}
