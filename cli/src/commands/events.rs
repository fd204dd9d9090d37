//! `events`: statistics once (--stats) or a stream of statistics and OOM events.

use anyhow::{Context, Result};

use moor::Runtime;

/// One event in runc's key order (`type`, `id`, then `data`), which callers match on as text.
fn event_line(event: &serde_json::Value) -> Result<String> {
    let mut line = String::from("{");
    for key in ["type", "id", "data"] {
        if let Some(v) = event.get(key) {
            if line.len() > 1 {
                line.push(',');
            }
            line.push_str(&format!(
                "{}:{}",
                serde_json::to_string(key)?,
                serde_json::to_string(v)?
            ));
        }
    }
    line.push('}');
    Ok(line)
}

pub fn events(rt: &Runtime, id: &str, once: bool, interval: &str) -> Result<()> {
    if once {
        out!("{}", event_line(&rt.stats_event(id)?)?);
        return Ok(());
    }
    let period = go_duration(interval)
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--interval {interval}: expected a positive duration like 5s, 100ms or 1m30s"))?;
    // Without a memory controller there is nothing to watch: the stream has stats only.
    let mut oom = rt.oom_watcher(id).ok();
    let mut next_stats = std::time::Instant::now();
    loop {
        let (_, status) = match rt.load(id) {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        if status == moor::Status::Stopped {
            return Ok(());
        }
        if std::time::Instant::now() >= next_stats {
            if let Ok(s) = rt.stats_event(id) {
                out!("{}", event_line(&s)?);
            }
            next_stats += period;
        }
        // Woken at once by an OOM; at least every 200 ms to notice the container stopped.
        let nap = next_stats
            .saturating_duration_since(std::time::Instant::now())
            .min(std::time::Duration::from_millis(200));
        match oom.as_mut().map(|w| w.wait(Some(nap))) {
            Some(Ok(u)) if u.any() => out!("{}", event_line(&serde_json::json!({"type": "oom", "id": id}))?),
            Some(Ok(_)) => {}
            Some(Err(_)) => oom = None,
            None => std::thread::sleep(nap),
        }
    }
}

/// A Go `time.ParseDuration` string, as runc's --interval takes: decimal numbers each with a
/// unit (ns, us, µs, ms, s, m, h), e.g. "100ms", "1.5s", "1m30s"; a bare "0" is zero.
fn go_duration(s: &str) -> Option<std::time::Duration> {
    if s == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64; // nanoseconds
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1e0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * nanos_per;
    }
    std::time::Duration::try_from_secs_f64(total / 1e9).ok()
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn parses_go_durations() {
        assert_eq!(go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "1x", "-1s", "1..2s"] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
    }
}
