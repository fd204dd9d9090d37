//! Capability masks (as /proc/<pid>/status prints them) decoded to names.

use crate::init::capabilities::{last_cap, name, Sets};

use super::Capabilities;

/// `moor spec`'s capabilities: what a container gets by default.
pub const DEFAULT: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// Capabilities that are a known way out of a container on their own.
pub const DANGEROUS: [&str; 12] = [
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_DAC_READ_SEARCH",
    "CAP_NET_ADMIN",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SYS_TIME",
];

/// The names of the bits set in `mask`; unknown bits as `CAP_<n>`.
pub fn names(mask: u64) -> Vec<String> {
    (0..64u32)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| name(b).unwrap_or_else(|| format!("CAP_{b}")))
        .collect()
}

/// Parses a /proc/<pid>/status capability field (16 hex digits).
pub fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim(), 16).ok()
}

fn known_mask(last: u32) -> u64 {
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

pub fn describe(s: &Sets) -> Capabilities {
    describe_with(s, last_cap())
}

fn describe_with(s: &Sets, last: u32) -> Capabilities {
    let any = s.bounding | s.effective | s.permitted | s.inheritable | s.ambient;
    let known = known_mask(last);
    Capabilities {
        bounding: names(s.bounding),
        effective: names(s.effective),
        permitted: names(s.permitted),
        inheritable: names(s.inheritable),
        ambient: names(s.ambient),
        beyond_default: names(any)
            .into_iter()
            .filter(|n| !DEFAULT.contains(&n.as_str()))
            .collect(),
        all: s.bounding & known == known,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_status_masks() {
        // runc's default set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID
        // SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE.
        let m = parse_hex("00000000a80425fb").unwrap();
        let n = names(m);
        assert_eq!(n.len(), 14);
        assert!(n.contains(&"CAP_NET_RAW".to_string()));
        assert!(n.contains(&"CAP_AUDIT_WRITE".to_string()));
        assert!(!n.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(names(1 << 21), ["CAP_SYS_ADMIN"]);
        assert_eq!(names(1 << 50), ["CAP_50"]);
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn all_and_beyond_default() {
        let full = Sets {
            bounding: known_mask(40),
            ..Default::default()
        };
        let c = describe_with(&full, 40);
        assert!(c.all);
        assert!(c.beyond_default.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.beyond_default.contains(&"CAP_KILL".to_string()));
        let default = Sets {
            bounding: (1 << 29) | (1 << 5) | (1 << 10),
            ..Default::default()
        };
        let c = describe_with(&default, 40);
        assert!(!c.all);
        assert!(c.beyond_default.is_empty());
    }
}
