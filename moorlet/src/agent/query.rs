//! Reading the pods: get, describe, logs, exec's target, events.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::Agent;
use crate::api::{self, LogsRequest, Reply};
use crate::events::{self, Event};
use crate::store::Desired;

fn line(out: &mut &UnixStream, text: String) -> std::io::Result<()> {
    api::send(
        out,
        &Reply {
            ok: None,
            data: None,
            error: None,
            line: Some(text),
        },
    )
}

impl Agent {
    fn find(&self, ns: &str, name: &str) -> Result<Desired> {
        self.store
            .pod(ns, name)?
            .with_context(|| format!("pods \"{name}\" not found in namespace {ns}"))
    }

    /// The pod as Kubernetes shows it: the object with its status.
    fn pod_json(&self, d: &Desired) -> Value {
        let mut v = serde_json::to_value(&d.pod).unwrap_or_default();
        let run_dir = self.store.run_dir(&d.uid());
        let status: Option<Value> = crate::util::read_json(&run_dir.join("status.json")).ok().flatten();
        let mut status = status.unwrap_or_else(|| json!({"phase": "Pending"}));
        let finished = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
        if !finished && status["startTime"].is_string() && super::monitors::alive(&run_dir).is_none() {
            // Nobody watches the containers now (the monitor died, or the node rebooted): what
            // status.json says is not known to be true until a new monitor writes it.
            status["phase"] = json!("Unknown");
            status["reason"] = json!("MonitorGone");
            for key in ["containerStatuses", "initContainerStatuses"] {
                for c in status[key].as_array_mut().into_iter().flatten() {
                    c["ready"] = json!(false);
                }
            }
        }
        if d.deleting {
            v["metadata"]["deletionTimestamp"] = json!(crate::util::now_k8s());
            status["reason"] = json!("Terminating");
        }
        v["status"] = status;
        v
    }

    pub fn get_pods(&self, ns: Option<&str>) -> Result<Value> {
        let pods = self.store.pods()?;
        let items: Vec<Value> = pods
            .iter()
            .filter(|d| ns.is_none_or(|n| d.namespace() == n))
            .map(|d| self.pod_json(d))
            .collect();
        Ok(json!({"apiVersion": "v1", "kind": "List", "items": items}))
    }

    pub fn get_pod(&self, ns: &str, name: &str) -> Result<Value> {
        Ok(self.pod_json(&self.find(ns, name)?))
    }

    pub fn describe(&self, ns: &str, name: &str) -> Result<Value> {
        let d = self.find(ns, name)?;
        let object = format!("Pod/{name}");
        let mut evs: Vec<Event> = events::read_from(&self.store.events_file(), 0).0;
        evs.extend(events::read_from(&self.store.run_dir(&d.uid()).join("events.jsonl"), 0).0);
        evs.retain(|e| e.namespace == ns && e.object == object);
        evs.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(json!({"pod": self.pod_json(&d), "events": evs}))
    }

    /// The container a command is about: the one named, else the first app container.
    fn container_of(d: &Desired, container: Option<&str>) -> Result<String> {
        let spec = d.pod.spec.clone().unwrap_or_default();
        let all: Vec<String> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| c.name.clone())
            .collect();
        match container {
            Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
            Some(c) => anyhow::bail!("container {c} is not valid for pod {}: choose one of {all:?}", d.name()),
            None => spec
                .containers
                .first()
                .map(|c| c.name.clone())
                .context("the pod has no containers"),
        }
    }

    pub fn exec_target(&self, ns: &str, name: &str, container: Option<&str>) -> Result<Value> {
        let d = self.find(ns, name)?;
        let c = Self::container_of(&d, container)?;
        let st = self.pod_json(&d)["status"].clone();
        let running = ["containerStatuses", "initContainerStatuses"].iter().any(|k| {
            st[k]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["name"] == c.as_str() && s["state"]["running"].is_object())
        });
        anyhow::ensure!(running, "container {c} of pod {name} is not running");
        let target = api::ExecTarget {
            moor_root: self.store.moor_root().display().to_string(),
            id: crate::monitor::container_id(ns, name, &c, &d.uid()),
        };
        Ok(serde_json::to_value(target)?)
    }

    fn restart_count(&self, d: &Desired, c: &str) -> u64 {
        let st = self.pod_json(d)["status"].clone();
        ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|k| st[k].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == c)
            .and_then(|s| s["restartCount"].as_u64())
            .unwrap_or(0)
    }

    pub fn logs(&self, req: &LogsRequest, out: &mut &UnixStream) -> Result<Value> {
        let d = self.find(&req.namespace, &req.name)?;
        let c = Self::container_of(&d, req.container.as_deref())?;
        let dir = crate::logs::container_dir(&self.args.log_root, &req.namespace, &req.name, &d.uid(), &c);
        let mut n = self.restart_count(&d, &c);
        if req.previous {
            anyhow::ensure!(n > 0, "previous terminated container {c} in pod {} not found", req.name);
            n -= 1;
        }
        let mut current = dir.join(format!("{n}.log"));
        let mut reader = crate::logs::Reader::default();
        let stream: &UnixStream = out;
        let mut send = |rec: &[u8]| -> std::io::Result<()> {
            match reader.record(rec, req.timestamps) {
                Some(text) => line(&mut &*stream, text),
                None => Ok(()),
            }
        };
        for f in crate::logs::files(&current) {
            if f == current {
                break;
            }
            let data = std::fs::read(&f).unwrap_or_default();
            for rec in data.split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
                send(rec)?;
            }
        }
        let mut file = follow_open(&current);
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let read = file.as_mut().map_or(Ok(0), |f| f.read(&mut buf)).unwrap_or(0);
            if read > 0 {
                pending.extend_from_slice(&buf[..read]);
                let end = pending.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                for rec in pending[..end].split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
                    send(rec)?;
                }
                pending.drain(..end);
                continue;
            }
            if !req.follow || req.previous {
                break;
            }
            // Following: the pod may go away, the container restart, or the file rotate.
            let Ok(Some(now)) = self.store.pod(&req.namespace, &req.name) else {
                break;
            };
            if now.uid() != d.uid() || now.deleting {
                break;
            }
            let rotated = file.as_ref().is_some_and(|f| {
                let a = f.metadata().ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
                let b = std::fs::metadata(&current)
                    .ok()
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
                a != b && b.is_some()
            });
            if file.is_none() || rotated {
                file = follow_open(&current);
            } else if self.restart_count(&d, &c) > n {
                n = self.restart_count(&d, &c);
                current = dir.join(format!("{n}.log"));
                file = follow_open(&current);
            }
            if closed(out) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Value::Null)
    }

    pub fn events(&self, watch: bool, ns: Option<&str>, out: &mut &UnixStream) -> Result<Value> {
        let mut offsets: std::collections::HashMap<PathBuf, u64> = std::collections::HashMap::new();
        loop {
            let mut files = vec![self.store.events_file()];
            if let Ok(pods) = self.store.pods() {
                files.extend(pods.iter().map(|d| self.store.run_dir(&d.uid()).join("events.jsonl")));
            }
            let mut batch = Vec::new();
            for f in files {
                let off = offsets.get(&f).copied().unwrap_or(0);
                let (evs, next) = events::read_from(&f, off);
                offsets.insert(f, next);
                batch.extend(evs.into_iter().filter(|e| ns.is_none_or(|n| e.namespace == n)));
            }
            batch.sort_by(|a, b| a.time.cmp(&b.time));
            for e in batch {
                line(out, serde_json::to_string(&e)?)?;
            }
            if !watch || closed(out) {
                return Ok(Value::Null);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// True when the client closed its end (a stream has nobody to go to).
fn closed(s: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
    matches!(nix::sys::socket::recv(s.as_raw_fd(), &mut b, flags), Ok(0))
}

fn follow_open(path: &std::path::Path) -> Option<std::fs::File> {
    std::fs::File::open(path).ok()
}
