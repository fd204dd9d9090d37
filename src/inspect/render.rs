//! The text form of a report: grouped sections, findings first, flagged by severity.

use super::pss::Violation;
use super::{NsState, Report, Severity, Source};

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn flag(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
        Severity::Info => "INFO",
    }
}

fn limit(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".into(), |v| v.to_string())
}

/// The JSON form: the report's fields in declaration order, plus `violations` when a level
/// was checked.
pub fn json(r: &Report, violations: Option<&[Violation]>) -> serde_json::Result<String> {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        report: &'a Report,
        #[serde(skip_serializing_if = "Option::is_none")]
        violations: Option<&'a [Violation]>,
    }
    serde_json::to_string_pretty(&Out { report: r, violations })
}

/// Renders `r` (and the violations of a `--require` level, when checked) as text.
pub fn text(r: &Report, violations: Option<&[Violation]>) -> String {
    let mut o = String::new();
    // Mount points, paths, labels and device names come from the container or the bundle: no
    // control character of theirs reaches the auditor's terminal.
    let mut line = |s: String| {
        for c in s.chars() {
            if c.is_control() {
                o.push_str(&c.escape_default().to_string());
            } else {
                o.push(c);
            }
        }
        o.push('\n');
    };
    match &r.source {
        Source::Live {
            id,
            status,
            host_namespaces,
        } => line(format!(
            "container {id} ({status}): live facts (host namespaces: {host_namespaces})"
        )),
        Source::Config { bundle } => line(format!("bundle {bundle}: from config (nothing is running)")),
    }
    line(String::new());
    line("== Findings".into());
    if r.findings.is_empty() {
        line("  none".into());
    }
    for f in &r.findings {
        line(format!("  [{:<8}] {}", flag(f.severity), f.message));
    }
    if let Some(v) = violations {
        line(String::new());
        line("== Pod Security Standards".into());
        if v.is_empty() {
            line("  no violation".into());
        }
        for v in v {
            line(
                format!("  VIOLATION {:?} {}: {}", v.level, v.control, v.detail)
                    .replace("Baseline", "baseline")
                    .replace("Restricted", "restricted"),
            );
        }
    }
    for p in &r.processes {
        line(String::new());
        line(match p.pid {
            Some(pid) => format!("== Process {pid}"),
            None => "== Process (config)".into(),
        });
        let u = &p.user;
        line(format!(
            "  user            uid {} gid {} groups [{}]; on the host uid {}{}",
            u.uid,
            u.gid,
            u.additional_gids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            u.host_uid.map_or_else(|| "unmapped".into(), |h| h.to_string()),
            if u.root_on_host { " (ROOT ON THE HOST)" } else { "" }
        ));
        let maps = |m: &[super::IdMap]| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|m| format!("{}->{}+{}", m.inside, m.outside, m.count))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        line(format!("  uid/gid maps    {} / {}", maps(&p.uid_map), maps(&p.gid_map)));
        let ns: Vec<String> = p
            .namespaces
            .iter()
            .map(|n| {
                let s = match n.state {
                    NsState::New => "new",
                    NsState::Joined => "joined",
                    NsState::Host => "HOST",
                };
                format!("{}={s}", n.kind)
            })
            .collect();
        line(format!("  namespaces      {}", ns.join(" ")));
        let c = &p.capabilities;
        line(format!("  cap bounding    {}", list(&c.bounding)));
        line(format!("  cap effective   {}", list(&c.effective)));
        line(format!("  cap permitted   {}", list(&c.permitted)));
        line(format!("  cap inheritable {}", list(&c.inheritable)));
        line(format!("  cap ambient     {}", list(&c.ambient)));
        line(format!(
            "  beyond default  {}{}",
            list(&c.beyond_default),
            if c.all { " (ALL)" } else { "" }
        ));
        line(format!("  no_new_privs    {}", p.no_new_privs));
        line(format!(
            "  seccomp         {:?}{}",
            p.seccomp.mode,
            p.seccomp.filters.map(|n| format!(" ({n} filters)")).unwrap_or_default()
        ));
        line(format!(
            "  LSM label       {}",
            p.lsm_label.as_deref().unwrap_or("none")
        ));
        let rl: Vec<String> = p
            .rlimits
            .iter()
            .filter(|l| l.soft.is_some() || l.hard.is_some())
            .map(|l| {
                format!(
                    "{}={}/{}",
                    l.name.trim_start_matches("RLIMIT_"),
                    limit(l.soft),
                    limit(l.hard)
                )
            })
            .collect();
        line(format!("  rlimits         {}", list(&rl)));
    }
    line(String::new());
    line("== Seccomp profile".into());
    match &r.seccomp_profile {
        None => line("  none (Unconfined)".into()),
        Some(s) => {
            line(format!("  default action  {}", s.default_action));
            line(format!(
                "  rules           {} ({} syscall names)",
                s.rules, s.syscall_names
            ));
            line(format!(
                "  program         {} instructions, {}",
                s.instructions, s.digest
            ));
            line(format!("  dangerous allowed {}", list(&s.dangerous_allowed)));
        }
    }
    let fs = &r.filesystem;
    line(String::new());
    line("== Filesystem".into());
    line(format!(
        "  root            {}",
        if fs.root_readonly { "read-only" } else { "writable" }
    ));
    for m in &fs.masked_paths {
        line(format!(
            "  masked   {} {:<30} {}",
            if m.in_force { "yes" } else { "NO " },
            m.path,
            m.detail
        ));
    }
    for m in &fs.readonly_paths {
        line(format!(
            "  readonly {} {:<30} {}",
            if m.in_force { "yes" } else { "NO " },
            m.path,
            m.detail
        ));
    }
    line(format!(
        "  /sys            {}",
        if fs.sys_writable { "WRITABLE" } else { "read-only" }
    ));
    if fs.host_binds.is_empty() {
        line("  host binds      none".into());
    }
    for b in &fs.host_binds {
        line(format!(
            "  host bind       {} -> {} ({}{}{}){}",
            b.host_path.as_deref().unwrap_or("?"),
            b.destination,
            if b.readonly { "ro" } else { "rw" },
            if b.socket { ", socket" } else { "" },
            if b.managed { ", managed" } else { "" },
            b.danger.as_ref().map(|d| format!(" !! {d}")).unwrap_or_default()
        ));
    }
    line(String::new());
    line("== Devices".into());
    line(format!("  rules ({})", r.devices.rules_source));
    for rule in &r.devices.rules {
        line(format!("    {rule}"));
    }
    let nodes: Vec<String> = r
        .devices
        .nodes
        .iter()
        .map(|n| format!("{} ({} {}:{})", n.path, n.kind, n.major, n.minor))
        .collect();
    line(format!("  nodes           {}", list(&nodes)));
    line(String::new());
    line(format!("== Cgroup limits ({})", r.cgroup.source));
    line(format!(
        "  memory          {}",
        r.cgroup
            .memory
            .map_or_else(|| "NO LIMIT".into(), |m| format!("{m} bytes"))
    ));
    line(format!(
        "  pids            {}",
        r.cgroup.pids.map_or_else(|| "NO LIMIT".into(), |p| p.to_string())
    ));
    line(String::new());
    line("== Sysctls".into());
    if r.sysctls.is_empty() {
        line("  none".into());
    }
    for (k, v) in &r.sysctls {
        line(format!("  {k} = {v}"));
    }
    if let Source::Live { .. } = r.source {
        line(String::new());
        line("== Drift (live vs recorded config)".into());
        if r.drift.is_empty() {
            line("  none".into());
        }
        for d in &r.drift {
            line(format!("  {d}"));
        }
    }
    o
}
