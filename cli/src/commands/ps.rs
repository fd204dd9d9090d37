//! `ps`: the container's pids as JSON, or ps(1)'s lines for them.

use anyhow::{Context, Result};
use clap::ValueEnum;

use moor::Runtime;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ListFormat {
    Table,
    Json,
}

pub fn ps(rt: &Runtime, id: &str, format: ListFormat, args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    if format == ListFormat::Json {
        out!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        anyhow::bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    out!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out!("{line}");
        }
    }
    Ok(())
}
