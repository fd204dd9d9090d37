//! Events: one JSON object a line, appended with a single O_APPEND write (the agent writes
//! <state>/events.jsonl, each monitor its pod's run-dir/events.jsonl). Messages never carry a
//! Secret's data: they name objects, never their content.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub time: String,
    pub namespace: String,
    /// "Pod/web", "ConfigMap/settings"
    pub object: String,
    /// Normal or Warning
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
}

impl Event {
    pub fn new(namespace: &str, object: &str, warning: bool, reason: &str, message: &str) -> Event {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Event {
            time: crate::util::rfc3339(now, true),
            namespace: namespace.into(),
            object: object.into(),
            kind: if warning { "Warning" } else { "Normal" }.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Appends `event` to `file`; a failure is logged, never fatal (events are informative).
pub fn record(file: &Path, event: &Event) {
    let Ok(mut line) = serde_json::to_vec(event) else {
        return;
    };
    line.push(b'\n');
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(&line));
    if let Err(e) = written {
        crate::log!("cannot record an event in {}: {e}", file.display());
    }
}

/// The events of `file` from byte `offset` on, and the offset after the last whole line.
pub fn read_from(file: &Path, offset: u64) -> (Vec<Event>, u64) {
    let Ok(data) = std::fs::read(file) else {
        return (Vec::new(), offset);
    };
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let end = data[start..]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(start, |i| start + i + 1);
    let events = data[start..end]
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    (events, end as u64)
}
