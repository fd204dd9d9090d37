//! Output as kubectl prints it.

use anyhow::Result;
use serde_json::Value;

/// kubectl's STATUS column: the reason of a waiting or terminated container when there is
/// one (CrashLoopBackOff, Error, OOMKilled), Init:N/M while init containers run, else the phase.
fn status_column(pod: &Value) -> String {
    let st = &pod["status"];
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    let inits = st["initContainerStatuses"].as_array().cloned().unwrap_or_default();
    if let Some(r) = inits.iter().find_map(|c| {
        let t = &c["state"]["terminated"];
        t["reason"]
            .as_str()
            .filter(|_| t["exitCode"].as_i64().is_some_and(|x| x != 0))
    }) {
        return format!("Init:{r}");
    }
    if st["phase"] == "Pending" && !inits.is_empty() {
        let done = inits
            .iter()
            .filter(|c| c["state"]["terminated"]["exitCode"] == 0)
            .count();
        if let Some(r) = inits.iter().find_map(|c| {
            c["state"]["waiting"]["reason"]
                .as_str()
                .filter(|r| *r != "PodInitializing" && *r != "ContainerCreating")
        }) {
            return format!("Init:{r}");
        }
        return format!("Init:{done}/{}", inits.len());
    }
    for c in st["containerStatuses"].as_array().into_iter().flatten() {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            if r != "ContainerCreating" && r != "PodInitializing" {
                return r.into();
            }
        }
        if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            return r.into();
        }
    }
    st["phase"].as_str().unwrap_or("Unknown").into()
}

fn age(created: &str) -> String {
    let Some(t) = parse_time(created) else {
        return "?".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = now.saturating_sub(t);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Seconds since the epoch of an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS...Z).
fn parse_time(t: &str) -> Option<u64> {
    let n = |a: usize, b: usize| t.get(a..b)?.parse::<u64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

pub fn pods(data: &Value, output: Option<&str>, with_ns: bool) -> Result<()> {
    match output {
        Some("json") => {
            println!("{}", serde_json::to_string_pretty(data)?);
            return Ok(());
        }
        Some("yaml") => {
            print!("{}", serde_saphyr::to_string(data)?);
            return Ok(());
        }
        Some("wide") | None => {}
        Some(o) => anyhow::bail!("unknown output format {o:?}: json, yaml or wide"),
    }
    let wide = output == Some("wide");
    let items: Vec<Value> = match data["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![data.clone()],
    };
    if items.is_empty() {
        eprintln!("No resources found.");
        return Ok(());
    }
    let mut rows = vec![];
    let mut head = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if with_ns {
        head.insert(0, "NAMESPACE");
    }
    if wide {
        head.push("IP");
    }
    rows.push(head.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for p in &items {
        let cs = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
        let total = p["spec"]["containers"].as_array().map_or(0, Vec::len);
        let ready = cs.iter().filter(|c| c["ready"] == true).count();
        let restarts: u64 = cs.iter().filter_map(|c| c["restartCount"].as_u64()).sum();
        let mut row = vec![
            p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            format!("{ready}/{total}"),
            status_column(p),
            restarts.to_string(),
            age(p["metadata"]["creationTimestamp"].as_str().unwrap_or_default()),
        ];
        if with_ns {
            row.insert(0, p["metadata"]["namespace"].as_str().unwrap_or_default().to_string());
        }
        if wide {
            row.push(p["status"]["podIP"].as_str().unwrap_or("<none>").to_string());
        }
        rows.push(row);
    }
    table(&rows);
    Ok(())
}

fn table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r.get(i).map_or(0, String::len)).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", line.join("   ").trim_end());
    }
}

fn state_text(s: &Value) -> Vec<String> {
    if let Some(r) = s.get("running") {
        return vec![
            "Running".into(),
            format!("  Started:      {}", r["startedAt"].as_str().unwrap_or_default()),
        ];
    }
    if let Some(w) = s.get("waiting") {
        let mut out = vec![
            "Waiting".into(),
            format!("  Reason:       {}", w["reason"].as_str().unwrap_or_default()),
        ];
        if let Some(m) = w["message"].as_str() {
            out.push(format!("  Message:      {m}"));
        }
        return out;
    }
    if let Some(t) = s.get("terminated") {
        return vec![
            "Terminated".into(),
            format!("  Reason:       {}", t["reason"].as_str().unwrap_or_default()),
            format!("  Exit Code:    {}", t["exitCode"]),
            format!("  Started:      {}", t["startedAt"].as_str().unwrap_or_default()),
            format!("  Finished:     {}", t["finishedAt"].as_str().unwrap_or_default()),
        ];
    }
    vec!["<none>".into()]
}

pub fn describe(data: &Value) {
    let p = &data["pod"];
    let st = &p["status"];
    let s = |v: &Value| v.as_str().unwrap_or("<none>").to_string();
    println!("Name:         {}", s(&p["metadata"]["name"]));
    println!("Namespace:    {}", s(&p["metadata"]["namespace"]));
    println!("UID:          {}", s(&p["metadata"]["uid"]));
    println!("Start Time:   {}", s(&st["startTime"]));
    println!("Status:       {}", status_column(p));
    if let Some(m) = st["message"].as_str() {
        println!("Message:      {m}");
    }
    println!("IP:           {}", s(&st["podIP"]));
    for (title, key, spec_key) in [
        ("Init Containers", "initContainerStatuses", "initContainers"),
        ("Containers", "containerStatuses", "containers"),
    ] {
        let Some(list) = st[key].as_array().filter(|l| !l.is_empty()) else {
            continue;
        };
        println!("{title}:");
        for c in list {
            let spec = p["spec"][spec_key]
                .as_array()
                .and_then(|cs| cs.iter().find(|x| x["name"] == c["name"]))
                .cloned()
                .unwrap_or_default();
            println!("  {}:", s(&c["name"]));
            println!("    Container ID:   {}", s(&c["containerID"]));
            println!("    Image:          {}", s(&c["image"]));
            println!("    Image ID:       {}", s(&c["imageID"]));
            if let Some(cmd) = spec["command"].as_array() {
                println!("    Command:        {}", serde_json::to_string(cmd).unwrap_or_default());
            }
            let mut state = state_text(&c["state"]).into_iter();
            println!("    State:          {}", state.next().unwrap_or_default());
            for l in state {
                println!("    {l}");
            }
            if c["lastState"].as_object().is_some_and(|o| !o.is_empty()) {
                let mut last = state_text(&c["lastState"]).into_iter();
                println!("    Last State:     {}", last.next().unwrap_or_default());
                for l in last {
                    println!("    {l}");
                }
            }
            println!(
                "    Ready:          {}",
                if c["ready"] == true { "True" } else { "False" }
            );
            println!("    Restart Count:  {}", c["restartCount"]);
        }
    }
    println!("Conditions:");
    println!("  Type              Status");
    for c in st["conditions"].as_array().into_iter().flatten() {
        println!("  {:<17} {}", s(&c["type"]), s(&c["status"]));
    }
    println!("Events:");
    let evs = data["events"].as_array().cloned().unwrap_or_default();
    if evs.is_empty() {
        println!("  <none>");
    }
    for e in evs {
        println!(
            "  {:<8} {:<20} {:<32} {}",
            s(&e["type"]),
            s(&e["reason"]),
            s(&e["time"]),
            s(&e["message"])
        );
    }
}

pub fn event(line: &str) {
    let Ok(e) = serde_json::from_str::<Value>(line) else {
        println!("{line}");
        return;
    };
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    let object = if s("namespace").is_empty() {
        s("object")
    } else {
        format!("{}/{}", s("namespace"), s("object"))
    };
    println!(
        "{:<32} {:<8} {:<22} {:<20} {}",
        s("time"),
        s("type"),
        s("reason"),
        object,
        s("message")
    );
}

pub fn images(data: &Value) {
    match data {
        Value::Array(list) => {
            let mut rows = vec![vec!["IMAGE ID".to_string(), "NAMES".into(), "SIZE".into()]];
            for i in list {
                let id = i["id"].as_str().unwrap_or_default();
                let short = id.strip_prefix("sha256:").unwrap_or(id);
                let names: Vec<&str> = i["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str())
                    .collect();
                rows.push(vec![
                    short[..short.len().min(12)].to_string(),
                    names.join(","),
                    i["size"].to_string(),
                ]);
            }
            table(&rows);
        }
        Value::String(s) => println!("{s}"),
        Value::Object(_) => images(&Value::Array(vec![data.clone()])),
        Value::Null => {}
        other => println!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_column_as_kubectl() {
        let pod = |st: serde_json::Value| serde_json::json!({"metadata": {}, "status": st});
        let done = pod(serde_json::json!({"phase": "Succeeded", "containerStatuses": [
            {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        assert_eq!(super::status_column(&done), "Completed");
        let init_failed = pod(serde_json::json!({"phase": "Failed", "initContainerStatuses": [
            {"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}));
        assert_eq!(super::status_column(&init_failed), "Init:Error");
        let crash = pod(serde_json::json!({"phase": "Running", "containerStatuses": [
            {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
        assert_eq!(super::status_column(&crash), "CrashLoopBackOff");
    }

    #[test]
    fn times() {
        assert_eq!(super::parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(super::parse_time("2026-05-28T20:26:40Z"), Some(1_780_000_000));
    }
}
