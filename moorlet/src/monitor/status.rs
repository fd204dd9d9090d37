//! The pod's status in Kubernetes' shape (status.phase, conditions, podIP, containerStatuses),
//! written to `<run>/status.json` for the agent.

use std::path::Path;

use serde_json::{json, Value};

use super::container::{Ctr, Kind, State, Term};
use super::Monitor;

/// The status a previous monitor left if the pod had finished (Succeeded or Failed).
pub fn finished(run_dir: &Path) -> Option<Value> {
    let st: Value = crate::util::read_json(&run_dir.join("status.json")).ok().flatten()?;
    matches!(st["phase"].as_str(), Some("Succeeded" | "Failed")).then_some(st)
}

fn term_json(t: &Term, id: &str) -> Value {
    let mut v = json!({
        "exitCode": t.code,
        "reason": t.reason,
        "startedAt": t.started,
        "finishedAt": t.finished,
        "containerID": format!("moor://{id}"),
    });
    if t.code > 128 {
        v["signal"] = json!(t.code - 128);
    }
    if !t.message.is_empty() {
        v["message"] = json!(t.message);
    }
    json!({ "terminated": v })
}

fn container(c: &Ctr) -> Value {
    let state = match &c.state {
        State::Waiting { reason, message, .. } => {
            let mut w = json!({ "reason": reason });
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({ "waiting": w })
        }
        State::Running { since, .. } => json!({ "running": { "startedAt": since } }),
        State::Terminated(t) => term_json(t, &c.id),
    };
    let running = c.running();
    let mut v = json!({
        "name": c.name,
        "image": c.spec.image.clone().unwrap_or_default(),
        "imageID": c.image_id,
        "ready": running && c.kind != Kind::Init,
        "started": running,
        "restartCount": c.restarts,
        "state": state,
        "lastState": c.last.as_ref().map_or(json!({}), |t| term_json(t, &c.id)),
    });
    if c.ever_started {
        v["containerID"] = json!(format!("moor://{}", c.id));
    }
    v
}

pub fn phase(m: &Monitor) -> &'static str {
    if m.failed.is_some() {
        return "Failed";
    }
    let apps: Vec<&Ctr> = m.ctrs.iter().filter(|c| c.kind == Kind::App).collect();
    if m.pending.is_some() || !m.init_done || apps.iter().any(|c| !c.ever_started) {
        return "Pending";
    }
    if apps.iter().all(|c| c.done) {
        let ok = apps
            .iter()
            .all(|c| matches!(&c.state, State::Terminated(t) if t.code == 0));
        return if ok { "Succeeded" } else { "Failed" };
    }
    "Running"
}

fn condition(kind: &str, ok: bool, since: &str, reason: Option<&str>) -> Value {
    let mut v = json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastTransitionTime": since,
    });
    if let Some(r) = reason.filter(|_| !ok) {
        v["reason"] = json!(r);
    }
    v
}

pub fn build(m: &Monitor) -> Value {
    if let Some(frozen) = &m.frozen {
        return frozen.clone();
    }
    let phase = phase(m);
    let apps_ready = m.ctrs.iter().filter(|c| c.kind != Kind::Init).all(|c| c.running());
    let since = &m.start_time;
    let conditions = vec![
        condition("PodScheduled", true, since, None),
        condition("Initialized", m.init_done, since, Some("ContainersNotInitialized")),
        condition("ContainersReady", apps_ready, since, Some("ContainersNotReady")),
        condition("Ready", apps_ready, since, Some("ContainersNotReady")),
    ];
    let of =
        |pick: &dyn Fn(Kind) -> bool| -> Vec<Value> { m.ctrs.iter().filter(|c| pick(c.kind)).map(container).collect() };
    let mut st = json!({
        "phase": phase,
        "conditions": conditions,
        "startTime": m.start_time,
        "containerStatuses": of(&|k| k == Kind::App),
    });
    let inits = of(&|k| k != Kind::App);
    if !inits.is_empty() {
        st["initContainerStatuses"] = json!(inits);
    }
    if let Some(ip) = m.net.ip {
        st["podIP"] = json!(ip.to_string());
        st["podIPs"] = json!([{ "ip": ip.to_string() }]);
    }
    if let Some((reason, message)) = m.failed.as_ref().or(m.pending.as_ref()) {
        st["reason"] = json!(reason);
        st["message"] = json!(message);
    }
    st
}
