//! OCI `linux.resources` → systemd unit properties (v2 or v1 names). systemd re-applies a
//! unit's properties to its cgroup files whenever it reloads, so every limit it has a property
//! for is handed to it as well as written to the files; otherwise a `daemon-reload` would reset
//! the container's limits. Values the files would refuse are left out here: writing the files
//! afterwards reports them with the OCI field.

use oci_spec::runtime::LinuxResources;

use super::dbus::Value;
use crate::convert::{blkio_weight_to_io_weight, shares_to_weight, swap_for_v2};

/// systemd's "infinity" for the u64 limit properties.
const INFINITY: u64 = u64::MAX;

pub type Property = (&'static str, Value);

/// Marshals properties as D-Bus `a(sv)`.
pub fn to_dbus(props: Vec<Property>) -> Value {
    let items = props
        .into_iter()
        .map(|(name, v)| Value::Struct(vec![Value::str(name), Value::variant(v)]))
        .collect();
    Value::Array("(sv)".into(), items)
}

fn limit(v: i64) -> Option<u64> {
    match v {
        -1 => Some(INFINITY),
        n if n > 0 => Some(n.unsigned_abs()),
        _ => None,
    }
}

/// The properties of a container's new transient unit.
pub fn unit_properties(description: &str, slice: Option<&str>, pid: Option<i32>, v2: bool) -> Vec<Property> {
    let mut props: Vec<Property> = vec![("Description", Value::str(description))];
    if let Some(slice) = slice {
        props.push(("Slice", Value::str(slice)));
    }
    if let Some(pid) = pid {
        props.push((
            "PIDs",
            Value::Array("u".into(), vec![Value::U32(u32::from_ne_bytes(pid.to_ne_bytes()))]),
        ));
        // The container manages its own subtree (nested cgroups, its own limits).
        props.push(("Delegate", Value::Bool(true)));
    }
    // No implicit ordering against shutdown.target and friends: the runtime stops the unit.
    props.push(("DefaultDependencies", Value::Bool(false)));
    let io = if v2 { "IOAccounting" } else { "BlockIOAccounting" };
    for accounting in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
        props.push((accounting, Value::Bool(true)));
    }
    props
}

/// The resource properties systemd understands, for the fields present in `r`, named for the
/// host's hierarchy (`v2`) or for v1.
pub fn resource_properties(r: &LinuxResources, v2: bool) -> Vec<Property> {
    if !v2 {
        return v1_resource_properties(r);
    }
    let mut props = Vec::new();
    let u64v = Value::U64;
    if let Some(m) = r.memory() {
        let mem = m.limit().unwrap_or(0);
        if let Some(v) = m.limit().and_then(limit) {
            props.push(("MemoryMax", u64v(v)));
        }
        if let Some(v) = m.reservation().and_then(limit) {
            props.push(("MemoryLow", u64v(v)));
        }
        if let Ok(Some(swap)) = swap_for_v2(mem, m.swap().unwrap_or(0)) {
            props.push((
                "MemorySwapMax",
                u64v(if swap < 0 { INFINITY } else { swap.unsigned_abs() }),
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares().filter(|s| (2..=262_144).contains(s)) {
            props.push(("CPUWeight", u64v(shares_to_weight(shares))));
        }
        let period = c.period().filter(|&p| p != 0);
        if let Some(p) = period {
            props.push(("CPUQuotaPeriodUSec", u64v(p)));
        }
        if let Some(quota) = c.quota().filter(|&q| q != 0) {
            props.push((
                "CPUQuotaPerSecUSec",
                u64v(quota_per_sec(quota, period.unwrap_or(100_000))),
            ));
        }
        if let Some(mask) = c.cpus().as_deref().and_then(cpu_mask) {
            props.push(("AllowedCPUs", mask));
        }
        if let Some(mask) = c.mems().as_deref().and_then(cpu_mask) {
            props.push(("AllowedMemoryNodes", mask));
        }
    }
    if let Some(p) = r.pids() {
        if let Some(v) = limit(p.limit()) {
            props.push(("TasksMax", u64v(v)));
        }
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        if (10..=1000).contains(&w) {
            props.push(("IOWeight", u64v(blkio_weight_to_io_weight(w))));
        }
    }
    if let Some(unified) = r.unified() {
        for (key, value) in unified {
            let name = match key.as_str() {
                "memory.min" => "MemoryMin",
                "memory.low" => "MemoryLow",
                "memory.high" => "MemoryHigh",
                "memory.max" => "MemoryMax",
                "memory.swap.max" => "MemorySwapMax",
                "pids.max" => "TasksMax",
                _ => continue,
            };
            let v = match value.trim() {
                "max" => Some(INFINITY),
                n => n.parse::<u64>().ok(),
            };
            if let Some(v) = v {
                props.retain(|(n, _)| *n != name);
                props.push((name, u64v(v)));
            }
        }
    }
    props
}

/// The v1 subset: memory, shares, quota, tasks and block IO weight (systemd manages no v1
/// cpuset, swap or reservation).
fn v1_resource_properties(r: &LinuxResources) -> Vec<Property> {
    let mut props = Vec::new();
    if let Some(v) = r.memory().as_ref().and_then(|m| m.limit()).and_then(limit) {
        props.push(("MemoryLimit", Value::U64(v)));
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares().filter(|s| (2..=262_144).contains(s)) {
            props.push(("CPUShares", Value::U64(shares)));
        }
        let period = c.period().filter(|&p| p != 0);
        if let Some(p) = period {
            props.push(("CPUQuotaPeriodUSec", Value::U64(p)));
        }
        if let Some(quota) = c.quota().filter(|&q| q != 0) {
            props.push((
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(quota, period.unwrap_or(100_000))),
            ));
        }
    }
    if let Some(v) = r.pids().and_then(|p| limit(p.limit())) {
        props.push(("TasksMax", Value::U64(v)));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        if (10..=1000).contains(&w) {
            props.push(("BlockIOWeight", Value::U64(u64::from(w))));
        }
    }
    props
}

/// The v1 device list the kernel computed from our rules (`devices.list` lines), as systemd's
/// `DevicePolicy`/`DeviceAllow`, so that systemd re-applies the same list when it reloads (with
/// no device properties it would write "a" to devices.allow: every device allowed). An entry
/// systemd cannot name is left out: the list can only get narrower, never wider.
/// `names` maps a device kind (`'c'`, `'b'`) and major to its /proc/devices name.
pub fn device_properties(devices_list: &str, names: &dyn Fn(char, u32) -> Option<String>) -> Vec<Property> {
    let mut allow = Vec::new();
    for line in devices_list.lines() {
        let mut f = line.split_whitespace();
        let (Some(kind), Some(numbers), Some(access)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if kind == "a" {
            // Everything is allowed: systemd's default ("auto" with no list) is the same.
            return vec![
                ("DevicePolicy", Value::str("auto")),
                ("DeviceAllow", Value::Array("(ss)".into(), Vec::new())),
            ];
        }
        let class = match kind {
            "c" => "char",
            "b" => "block",
            _ => continue,
        };
        let Some((major, minor)) = numbers.split_once(':') else {
            continue;
        };
        let node = match (major, minor) {
            ("*", "*") => format!("{class}-*"),
            ("*", _) => continue,
            (m, "*") => match m
                .parse()
                .ok()
                .and_then(|m| names(kind.chars().next().unwrap_or('c'), m))
            {
                Some(name) => format!("{class}-{name}"),
                None => continue,
            },
            (m, n) => format!("/dev/{class}/{m}:{n}"),
        };
        allow.push(Value::Struct(vec![Value::str(node), Value::str(access)]));
    }
    vec![
        ("DevicePolicy", Value::str("strict")),
        // An empty list first resets what an earlier call set.
        ("DeviceAllow", Value::Array("(ss)".into(), Vec::new())),
        ("DeviceAllow", Value::Array("(ss)".into(), allow)),
    ]
}

/// Looks a major number up in /proc/devices' "Character devices:" (`'c'`) or "Block devices:"
/// section.
pub fn proc_devices_name(kind: char, major: u32) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let section = if kind == 'b' {
        "Block devices:"
    } else {
        "Character devices:"
    };
    let mut in_section = false;
    for line in text.lines() {
        if line.ends_with(':') {
            in_section = line == section;
            continue;
        }
        let mut f = line.split_whitespace();
        if in_section && f.next().and_then(|m| m.parse::<u32>().ok()) == Some(major) {
            return f.next().map(str::to_string);
        }
    }
    None
}

/// CPU time per second of wall time for a quota/period pair; -1 (or less) is no limit.
/// Rounded up to 10 ms, the precision systemd keeps, so systemd never enforces less than asked.
fn quota_per_sec(quota: i64, period: u64) -> u64 {
    if quota < 0 {
        return INFINITY;
    }
    let per_sec = quota.unsigned_abs().saturating_mul(1_000_000) / period.max(1);
    per_sec.div_ceil(10_000).saturating_mul(10_000)
}

/// A cpuset list ("0-3,8") as systemd's byte mask (bit n of byte n/8 is cpu n); None when the
/// list does not parse (the cpuset file write reports it).
fn cpu_mask(list: &str) -> Option<Value> {
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        if lo > hi || hi >= 8192 {
            return None;
        }
        for cpu in lo..=hi {
            if bytes.len() <= cpu / 8 {
                bytes.resize(cpu / 8 + 1, 0);
            }
            bytes[cpu / 8] |= 1 << (cpu % 8);
        }
    }
    Some(Value::Array("y".into(), bytes.into_iter().map(Value::Byte).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn resource_properties_v2(r: &LinuxResources) -> Vec<Property> {
        resource_properties(r, true)
    }

    #[test]
    fn v1_names() {
        let p = resource_properties(
            &resources(r#"{"memory":{"limit":1048576,"swap":2097152},"cpu":{"shares":512},"blockIO":{"weight":300}}"#),
            false,
        );
        assert_eq!(get(&p, "MemoryLimit"), Some(&Value::U64(1_048_576)));
        assert_eq!(get(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(get(&p, "BlockIOWeight"), Some(&Value::U64(300)));
        assert_eq!(get(&p, "MemoryMax"), None);
        assert_eq!(get(&p, "MemorySwapMax"), None);
    }

    #[test]
    fn v1_device_list_becomes_a_strict_allow_list() {
        let names = |kind: char, major: u32| (kind == 'c' && major == 136).then(|| "pts".to_string());
        let p = device_properties("c 1:3 rwm\nc *:* m\nb 8:0 r\nc 136:* rwm\nc 99:* rw\nc *:5 r\n", &names);
        assert_eq!(p[0], ("DevicePolicy", Value::str("strict")));
        let Value::Array(_, allow) = &p[2].1 else {
            panic!("{p:?}")
        };
        let entries: Vec<(String, String)> = allow
            .iter()
            .map(|v| match v {
                Value::Struct(f) => (f[0].as_str().unwrap().to_string(), f[1].as_str().unwrap().to_string()),
                _ => panic!("{v:?}"),
            })
            .collect();
        let want = [
            ("/dev/char/1:3", "rwm"),
            ("char-*", "m"),
            ("/dev/block/8:0", "r"),
            ("char-pts", "rwm"),
        ];
        assert_eq!(entries, want.map(|(a, b)| (a.to_string(), b.to_string())));
        let all = device_properties("a *:* rwm\n", &names);
        assert_eq!(all[0], ("DevicePolicy", Value::str("auto")));
    }

    fn get<'a>(props: &'a [Property], name: &str) -> Option<&'a Value> {
        props.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn limits_become_properties() {
        let p = resource_properties_v2(&resources(
            r#"{"memory":{"limit":268435456,"reservation":-1,"swap":536870912},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-2,9"},
                "pids":{"limit":64},"blockIO":{"weight":500}}"#,
        ));
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(268_435_456)));
        assert_eq!(get(&p, "MemoryLow"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(268_435_456)));
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(
            get(&p, "AllowedCPUs"),
            Some(&Value::Array("y".into(), vec![Value::Byte(0b111), Value::Byte(0b10)]))
        );
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(64)));
        assert_eq!(get(&p, "IOWeight"), Some(&Value::U64(4950)));
    }

    #[test]
    fn unlimited_and_invalid_values() {
        let p = resource_properties_v2(&resources(
            r#"{"memory":{"limit":-1},"pids":{"limit":-1},"cpu":{"quota":-1,"shares":1,"cpus":"3-1"}}"#,
        ));
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
        assert_eq!(
            get(&p, "CPUWeight"),
            None,
            "out-of-range shares are left to the file write"
        );
        assert_eq!(get(&p, "AllowedCPUs"), None);
        assert!(resource_properties_v2(&resources("{}")).is_empty());
    }

    #[test]
    fn quota_rounds_up_to_systemd_precision() {
        assert_eq!(quota_per_sec(12_345, 100_000), 130_000);
        assert_eq!(quota_per_sec(200_000, 100_000), 2_000_000);
        assert_eq!(quota_per_sec(1, 1_000_000), 10_000);
    }

    #[test]
    fn unified_keys_override() {
        let p = resource_properties_v2(&resources(
            r#"{"memory":{"limit":1000000},"unified":{"memory.max":"2000000","memory.high":"max","io.weight":"10"}}"#,
        ));
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(2_000_000)));
        assert_eq!(get(&p, "MemoryHigh"), Some(&Value::U64(u64::MAX)));
        assert_eq!(p.iter().filter(|(n, _)| *n == "MemoryMax").count(), 1);
    }
}
