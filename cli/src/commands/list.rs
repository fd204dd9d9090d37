//! `list`, as runc's table or JSON.

use std::io::Write;

use anyhow::Result;

use moor::Runtime;

/// The user name of `uid`, else `#uid` (as runc's list shows an unknown owner).
fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

pub fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let containers = rt.list()?;
    if quiet {
        for (s, _) in &containers {
            out!("{}", s.id);
        }
        return Ok(());
    }
    let states: Vec<_> = containers
        .iter()
        .map(|(s, status)| {
            use std::os::unix::fs::MetadataExt;
            let mut st = s.oci_state(*status);
            st.owner = std::fs::metadata(rt.root.join(&s.id))
                .map(|m| owner_name(m.uid()))
                .unwrap_or_default();
            st
        })
        .collect();
    match format {
        "json" if states.is_empty() => out!("null"),
        "json" => out!("{}", serde_json::to_string(&states)?),
        "table" => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for s in &states {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(tabwrite(&rows).as_bytes())
                .and_then(|_| stdout.flush())
                .is_err()
            {
                std::process::exit(0);
            }
        }
        _ => anyhow::bail!("invalid format option {format:?}: table or json"),
    }
    Ok(())
}

/// Aligns columns as runc's Go tabwriter (minwidth 12, padding 3, spaces): each cell but the
/// last of a row is padded to its column's widest cell plus 3, at least 12 characters.
fn tabwrite<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(12);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}
