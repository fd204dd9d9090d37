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
        out!("{}", event_line(&rt.stats(id)?)?);
        return Ok(());
    }
    let secs: f64 = interval
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("--interval {interval}: expected seconds like 5s"))?;
    let period = std::time::Duration::from_secs_f64(secs.max(0.01));
    let mut ooms = rt.oom_count(id).unwrap_or(0);
    let mut next_stats = std::time::Instant::now();
    loop {
        let (_, status) = match rt.load(id) {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        if status == moor::Status::Stopped {
            return Ok(());
        }
        let now_ooms = rt.oom_count(id).unwrap_or(ooms);
        if now_ooms > ooms {
            out!("{}", event_line(&serde_json::json!({"type": "oom", "id": id}))?);
            ooms = now_ooms;
        }
        if std::time::Instant::now() >= next_stats {
            if let Ok(s) = rt.stats(id) {
                out!("{}", event_line(&s)?);
            }
            next_stats += period;
        }
        std::thread::sleep(period.min(std::time::Duration::from_millis(200)));
    }
}
