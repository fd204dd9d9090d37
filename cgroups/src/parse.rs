//! Parsers for the statistics files of cgroup v1 and v2. They take the file's text and say which
//! line is wrong and why; [`crate::Error::Parse`] adds the path. Unknown keys are kept or
//! skipped (kernels add them), but a line that breaks the file's format is an error, never a
//! silent zero.

use std::collections::BTreeMap;

use crate::stats::BlkioEntry;

/// What is wrong with a statistics file: the 1-based line and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

type Parsed<T> = std::result::Result<T, ParseError>;

fn bad<T>(line: usize, msg: impl Into<String>) -> Parsed<T> {
    Err(ParseError { line, msg: msg.into() })
}

/// A counter or limit: decimal digits, or "max" (no limit) as `u64::MAX`.
pub fn value(s: &str) -> Option<u64> {
    match s {
        "max" => Some(u64::MAX),
        _ => s.parse().ok(),
    }
}

/// A file holding one value (memory.current, pids.max, cpuacct.usage, ...).
pub fn single(text: &str) -> Parsed<u64> {
    let t = text.trim();
    value(t).map_or_else(|| bad(1, format!("expected a number or \"max\", found {t:?}")), Ok)
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control, cpuacct.stat).
pub fn flat_keyed(text: &str) -> Parsed<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [k, v] = f[..] else {
            return bad(i + 1, format!("expected \"key value\", found {l:?}"));
        };
        let Some(v) = value(v) else {
            return bad(i + 1, format!("{k}: expected a number, found {v:?}"));
        };
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// Space-separated numbers on one line (cpuacct.usage_percpu and friends).
pub fn list(text: &str) -> Parsed<Vec<u64>> {
    text.split_whitespace()
        .map(|w| value(w).map_or_else(|| bad(1, format!("expected a number, found {w:?}")), Ok))
        .collect()
}

fn device(s: &str, line: usize) -> Parsed<(u64, u64)> {
    let parsed = s
        .split_once(':')
        .and_then(|(ma, mi)| Some((ma.parse().ok()?, mi.parse().ok()?)));
    parsed.map_or_else(|| bad(line, format!("expected a device MAJOR:MINOR, found {s:?}")), Ok)
}

/// v1 blkio: "MAJ:MIN Op value" lines and a final "Total value".
pub fn blkio_v1(text: &str) -> Parsed<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            ["Total", v] if value(v).is_some() => {}
            [dev, op, v] => {
                let (major, minor) = device(dev, i + 1)?;
                let Some(value) = value(v) else {
                    return bad(i + 1, format!("{dev} {op}: expected a number, found {v:?}"));
                };
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value,
                });
            }
            _ => return bad(i + 1, format!("expected \"MAJOR:MINOR Op value\", found {l:?}")),
        }
    }
    Ok(out)
}

/// v2 io.stat: "MAJ:MIN key=value ..." per device, as (bytes, ios) entries in runc's ops Read,
/// Write, Discard, in the order the keys come. Other keys (cost.*, ...) are skipped.
pub fn io_stat_v2(text: &str) -> Parsed<(Vec<BlkioEntry>, Vec<BlkioEntry>)> {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut it = l.split_whitespace();
        let (major, minor) = device(it.next().unwrap_or_default(), i + 1)?;
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                return bad(i + 1, format!("expected key=value, found {kv:?}"));
            };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "dbytes" => (&mut bytes, "Discard"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                "dios" => (&mut ios, "Discard"),
                _ => continue,
            };
            let Some(value) = value(v) else {
                return bad(i + 1, format!("{k}: expected a number, found {v:?}"));
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok((bytes, ios))
}

/// A cpu or memory-node list: "0-2,5" is [0, 1, 2, 5]. A range is capped at 4096 entries.
pub fn id_list(text: &str) -> Parsed<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let n = |s: &str| {
            s.parse::<u32>()
                .map_or_else(|_| bad(1, format!("bad list item {part:?}")), Ok)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (n(a)?, n(b)?);
                if b < a {
                    return bad(1, format!("descending range {part:?}"));
                }
                out.extend(a..=b.min(a.saturating_add(4096)));
            }
            None => out.push(n(part)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(major: u64, minor: u64, op: &str, value: u64) -> BlkioEntry {
        BlkioEntry {
            major,
            minor,
            op: op.into(),
            value,
        }
    }

    #[test]
    fn single_values() {
        assert_eq!(single("4096\n"), Ok(4096));
        assert_eq!(single("max\n"), Ok(u64::MAX));
        assert_eq!(single("-1\n").unwrap_err().line, 1);
        assert!(single("").is_err());
        assert!(single("99999999999999999999999").is_err());
    }

    #[test]
    fn flat_keyed_v1_memory_stat_and_oom_control() {
        let m = flat_keyed("cache 8192\nrss 49152\nhierarchical_memory_limit 9223372036854771712\n").unwrap();
        assert_eq!(m["cache"], 8192);
        assert_eq!(m["hierarchical_memory_limit"], 9223372036854771712);
        let m = flat_keyed("oom_kill_disable 0\nunder_oom 1\noom_kill 3\n").unwrap();
        assert_eq!((m["under_oom"], m["oom_kill"]), (1, 3));
    }

    #[test]
    fn flat_keyed_v2_files() {
        let m = flat_keyed("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n").unwrap();
        assert_eq!((m["max"], m["oom"], m["oom_kill"]), (12, 2, 1));
        let m = flat_keyed("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n").unwrap();
        assert_eq!(m["usage_usec"], 1500);
    }

    #[test]
    fn flat_keyed_rejects_malformed_lines() {
        let err = flat_keyed("cache 1\nrss\n").unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        assert!(err.msg.contains("rss"), "{err:?}");
        let err = flat_keyed("cache 1\nrss 2 3\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = flat_keyed("anon 1\nfile x12\n").unwrap_err();
        assert!(err.msg.contains("file") && err.msg.contains("x12"), "{err:?}");
        assert!(flat_keyed("pgfault -5\n").is_err());
        assert_eq!(flat_keyed("\n").unwrap().len(), 0);
    }

    #[test]
    fn lists() {
        assert_eq!(list("10 20 0 \n").unwrap(), vec![10, 20, 0]);
        assert!(list("10 x").is_err());
        assert_eq!(id_list("0-2,5\n").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(id_list("").unwrap(), Vec::<u32>::new());
        assert!(id_list("3-1").is_err());
        assert!(id_list("a").is_err());
        assert_eq!(id_list("0-4294967295").unwrap().len(), 4097);
    }

    #[test]
    fn blkio_v1_lines() {
        let v = blkio_v1("8:0 Read 4096\n8:0 Write 0\n8:0 Total 4096\nTotal 4096\n").unwrap();
        assert_eq!(
            v,
            vec![e(8, 0, "Read", 4096), e(8, 0, "Write", 0), e(8, 0, "Total", 4096)]
        );
        assert_eq!(blkio_v1("Total 0\n").unwrap(), vec![]);
        assert_eq!(
            blkio_v1("8 Read 1\n").unwrap_err().msg,
            "expected a device MAJOR:MINOR, found \"8\""
        );
        assert!(blkio_v1("8:0 Read\n").is_err());
        assert!(blkio_v1("8:0 Read many\n").is_err());
    }

    #[test]
    fn io_stat_v2_lines() {
        let (b, i) = io_stat_v2("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0 cost.vrate=100.00\n").unwrap();
        assert_eq!(
            b,
            vec![e(254, 0, "Read", 10), e(254, 0, "Write", 20), e(254, 0, "Discard", 0)]
        );
        assert_eq!(i[1], e(254, 0, "Write", 2));
        assert!(io_stat_v2("254:0 rbytes\n").is_err());
        assert!(io_stat_v2("sda rbytes=1\n").is_err());
        assert_eq!(io_stat_v2("254:0 rbytes=x\n").unwrap_err().line, 1);
    }
}
