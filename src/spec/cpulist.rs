//! Kernel-style id lists ("0-3,7"), as `process.execCPUAffinity` and `linux.memoryPolicy.nodes`
//! write them, parsed into sorted ids with a bound on the largest one.

use crate::error::{Error, Result};

/// Parses `text` into ids; `field` names the JSON field in errors. Ids must be below `limit`.
pub fn parse(field: &str, text: &str, limit: u32) -> Result<Vec<u32>> {
    let bad = |why: String| Error::config(field, format!("{text:?}: {why}"));
    let mut ids = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| bad(format!("{s:?} is not a number (expected a list like 0-3,7)")))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(bad(format!("range {lo}-{hi} is reversed")));
        }
        if hi >= limit {
            return Err(bad(format!("{hi} is out of range (at most {})", limit - 1)));
        }
        ids.extend(lo..=hi);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse("f", "0-3,7", 64).unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse("f", "5", 64).unwrap(), vec![5]);
        assert_eq!(parse("f", "2,1,2", 64).unwrap(), vec![1, 2]);
    }

    #[test]
    fn bad_lists_name_the_field() {
        for bad in ["", "a", "1-", "-1", "3-1", "1,,2", "64", "0-64", "1 2"] {
            let e = parse("process.execCPUAffinity.final", bad, 64).unwrap_err().to_string();
            assert!(e.contains("process.execCPUAffinity.final"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn overlapping_ranges_come_out_sorted_once() {
        assert_eq!(parse("f", "3-5,4-6,0,5", 64).unwrap(), vec![0, 3, 4, 5, 6]);
    }

    #[test]
    fn the_limit_is_exclusive_and_the_error_says_why() {
        assert_eq!(parse("f", "0-4095", 4096).unwrap().len(), 4096);
        let e = parse("f", "4096", 4096).unwrap_err().to_string();
        assert!(e.contains("out of range (at most 4095)"), "{e}");
        let e = parse("f", "7-2", 64).unwrap_err().to_string();
        assert!(e.contains("reversed"), "{e}");
        // An id past u32 is no number, not a wrapped small one.
        assert!(parse("f", "4294967296", u32::MAX).is_err());
    }
}
