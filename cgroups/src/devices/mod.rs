//! Device access rules: validation of OCI rules, runc's default allow-list, the v1
//! devices.allow/deny strings, and (submodules) the v2 eBPF program and its loading.

pub mod bpf;
pub mod ebpf;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

const FIELD: &str = "linux.resources.devices";

pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device type as the kernel's device cgroup sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevType {
    Block,
    Char,
}

/// A validated device rule. `None` means "any" for type, major and minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub typ: Option<DevType>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl DeviceRule {
    /// Matches every device with every access.
    pub fn is_catch_all(&self) -> bool {
        self.typ.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

fn parse_num(idx: usize, what: &str, v: Option<i64>) -> Result<Option<u32>> {
    match v {
        None | Some(-1) => Ok(None),
        // Kernel majors are 12 bits and minors 20 bits; i32::MAX keeps eBPF immediates exact.
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(u32::try_from(n).ok()),
        Some(n) => Err(Error::invalid(
            format!("{FIELD}[{idx}].{what}"),
            format!("{n} is not a device number (use -1 or omit it for any)"),
        )),
    }
}

/// Parses an access string ("rwm" subset); empty or absent means all. Other letters are
/// ignored, as runc 1.1 does (its bats tests use "rwa"): they can only narrow a rule, never widen
/// it; `config::warnings` reports them. `None`: a non-empty string without r, w or m, a rule that
/// cannot match any access.
pub fn parse_access(s: Option<&str>) -> Option<u8> {
    let s = s.unwrap_or("");
    if s.is_empty() {
        return Some(ACC_ALL);
    }
    let acc = s.chars().fold(0, |acc, ch| {
        acc | match ch {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    });
    (acc != 0).then_some(acc)
}

/// Validates OCI rules. Rules of type "p" (FIFOs) are dropped: the kernel's device cgroup
/// (v1 and eBPF) only ever checks block and character devices, so they cannot have an effect.
pub fn convert_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::with_capacity(rules.len());
    for (idx, r) in rules.iter().enumerate() {
        let typ = match r.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::B) => Some(DevType::Block),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DevType::Char),
            Some(LinuxDeviceType::P) => continue,
        };
        let major = parse_num(idx, "major", r.major())?;
        let minor = parse_num(idx, "minor", r.minor())?;
        let Some(access) = parse_access(r.access().as_deref()) else {
            continue;
        };
        out.push(DeviceRule {
            allow: r.allow(),
            typ,
            major,
            minor,
            access,
        });
    }
    Ok(out)
}

/// runc's default allow-list, appended after the configured rules (so they always win): mknod of
/// any device, null, random, full, tty, zero, urandom, /dev/pts/*, ptmx and tun.
pub fn default_rules() -> Vec<DeviceRule> {
    let c = |major: Option<u32>, minor: Option<u32>, access: u8| DeviceRule {
        allow: true,
        typ: Some(DevType::Char),
        major,
        minor,
        access,
    };
    vec![
        c(None, None, ACC_MKNOD),
        DeviceRule {
            allow: true,
            typ: Some(DevType::Block),
            major: None,
            minor: None,
            access: ACC_MKNOD,
        },
        c(Some(1), Some(3), ACC_ALL),
        c(Some(1), Some(8), ACC_ALL),
        c(Some(1), Some(7), ACC_ALL),
        c(Some(5), Some(0), ACC_ALL),
        c(Some(1), Some(5), ACC_ALL),
        c(Some(1), Some(9), ACC_ALL),
        c(Some(136), None, ACC_ALL),
        c(Some(5), Some(2), ACC_ALL),
        c(Some(10), Some(200), ACC_ALL),
    ]
}

fn access_str(a: u8) -> String {
    let mut s = String::new();
    if a & ACC_READ != 0 {
        s.push('r');
    }
    if a & ACC_WRITE != 0 {
        s.push('w');
    }
    if a & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// The v1 `devices.allow`/`devices.deny` lines for a rule. The kernel reads "a" as "everything"
/// and ignores anything after it, so a restricted "a" rule is spelled as a "c" and a "b" line.
pub fn v1_lines(r: &DeviceRule) -> Vec<String> {
    if r.is_catch_all() {
        return vec!["a".to_string()];
    }
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
    let tail = format!("{}:{} {}", num(r.major), num(r.minor), access_str(r.access));
    match r.typ {
        Some(DevType::Char) => vec![format!("c {tail}")],
        Some(DevType::Block) => vec![format!("b {tail}")],
        None => vec![format!("c {tail}"), format!("b {tail}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn conversion_and_v1_lines() {
        let rules = vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1)
                .minor(11)
                .access("r")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::A)
                .access("r")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::P)
                .build()
                .unwrap(),
        ];
        let r = convert_rules(&rules).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r[0].is_catch_all() && !r[0].allow);
        assert_eq!(v1_lines(&r[0]), vec!["a"]);
        assert_eq!(v1_lines(&r[1]), vec!["c 1:11 r"]);
        assert_eq!(v1_lines(&r[2]), vec!["c *:* r", "b *:* r"]);
    }

    #[test]
    fn unknown_access_letters_are_dropped() {
        let rule = |access: &str| {
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1)
                .minor(11)
                .access(access)
                .build()
                .unwrap()
        };
        let r = convert_rules(&[rule("rwa"), rule("x")]).unwrap();
        assert_eq!(r.len(), 1, "a rule without r, w or m matches nothing: {r:?}");
        assert_eq!(r[0].access, ACC_READ | ACC_WRITE);
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let bad = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .major(-5)
            .build()
            .unwrap();
        let e = convert_rules(&[bad]).unwrap_err().to_string();
        assert!(e.contains("devices[0].major"), "{e}");
    }
}
