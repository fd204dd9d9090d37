//! Starting, finding and stopping the per-pod monitor processes.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;

use super::Args;
use crate::store::{Desired, Store};

pub struct Monitors {
    /// The agent's own binary, opened once from its protected view: monitors are executed
    /// from this fd, never from a path that could be replaced.
    exe: File,
    store: Store,
    args: Args,
    /// When a pod's monitor last failed to start (images missing): retried every 10 s.
    failures: Mutex<HashMap<String, Instant>>,
}

/// The pid of the monitor recorded in `run_dir`, if that process still runs.
pub fn alive(run_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(run_dir.join("monitor.pid")).ok()?;
    let mut it = text.split_whitespace();
    let pid: i32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    running(pid, start).then_some(pid)
}

/// Whether the process `pid` that started at `start` still runs (not a reused pid, not a zombie).
fn running(pid: i32, start: u64) -> bool {
    crate::util::start_time(pid) == Some(start) && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

impl Monitors {
    pub fn new(exe: File, store: &Store, args: &Args) -> Monitors {
        Monitors {
            exe,
            store: store.clone(),
            args: args.clone(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Starts the pod's monitor unless one runs. `now`: retry at once even after a recent
    /// failure (an apply).
    pub fn ensure(&self, d: &Desired, images: &crate::image::ImageStore, now: bool) -> Result<()> {
        let uid = d.uid();
        let run_dir = self.store.run_dir(&uid);
        if alive(&run_dir).is_some() {
            return Ok(());
        }
        if !now {
            if let Ok(f) = self.failures.lock() {
                if f.get(&uid).is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
                    return Ok(());
                }
            }
        }
        std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
        let _ = std::fs::remove_file(run_dir.join("gone"));
        let resolved = match super::images::resolve(images, &d.pod) {
            Ok(r) => r,
            Err((container, reason, e)) => {
                if let Ok(mut f) = self.failures.lock() {
                    f.insert(uid.clone(), Instant::now());
                }
                pending_status(&run_dir, &d.pod, &container, &reason, &format!("{e:#}"))?;
                anyhow::bail!("{reason}: {e:#}");
            }
        };
        crate::util::write_json(&run_dir.join("pod.json"), &d.pod, 0o600)?;
        crate::util::write_json(&run_dir.join("images.json"), &resolved, 0o644)?;
        self.spawn(&uid, &run_dir)
    }

    fn spawn(&self, uid: &str, run_dir: &Path) -> Result<()> {
        let log_path = run_dir.join("monitor.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let log2 = log.try_clone().context("cannot duplicate the monitor's log fd")?;
        let _ = std::fs::remove_file(run_dir.join("monitor.pid"));
        let mut child = Command::new(format!("/proc/self/fd/{}", self.exe.as_raw_fd()))
            .arg("monitor")
            .arg("--state-dir")
            .arg(&self.store.root)
            .arg("--uid")
            .arg(uid)
            .arg("--log-root")
            .arg(&self.args.log_root)
            .arg("--cgroup-parent")
            .arg(&self.args.cgroup_parent)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .context("cannot start the pod's monitor")?;
        let pid = child.id();
        // The monitor is our child until we die: reap it when it exits.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(run_dir).is_none() {
            if Instant::now() > deadline {
                anyhow::bail!("the monitor (pid {pid}) did not start: see {}", log_path.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        crate::log!("pod {uid}: monitor pid {pid}");
        Ok(())
    }

    /// Tells the pod's monitor to terminate the pod and waits until it has torn it down. A pod
    /// whose monitor is gone (killed, or after a reboot) gets one that only tears down.
    pub fn stop(&self, uid: &str) -> Result<()> {
        let run_dir = self.store.run_dir(uid);
        if !run_dir.exists() {
            return Ok(());
        }
        crate::util::write_atomic(&run_dir.join("stop"), b"", 0o644)?;
        if alive(&run_dir).is_none() && !run_dir.join("gone").exists() && run_dir.join("pod.json").exists() {
            self.spawn(uid, &run_dir)?;
        }
        if let Some(pid) = alive(&run_dir) {
            // Waits for the process itself: it still writes its last status after its teardown.
            let start = crate::util::start_time(pid).unwrap_or(0);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            while running(pid, start) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        remove_run_dir(&run_dir)
    }
}

/// Removes a pod's run directory, unless something is still mounted under it (then removing
/// would reach into the mount).
fn remove_run_dir(run_dir: &Path) -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", run_dir.display());
    if let Some(m) = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .find(|p| p.starts_with(&prefix))
    {
        anyhow::bail!("{m} is still mounted: {} is kept", run_dir.display());
    }
    std::fs::remove_dir_all(run_dir).with_context(|| format!("cannot remove {}", run_dir.display()))
}

/// The status of a pod whose images could not be resolved: Pending, with the reason.
fn pending_status(run_dir: &Path, pod: &Pod, container: &str, reason: &str, message: &str) -> Result<()> {
    let spec = pod.spec.clone().unwrap_or_default();
    let statuses: Vec<serde_json::Value> = spec
        .containers
        .iter()
        .map(|c| {
            let waiting = if c.name == container {
                serde_json::json!({"reason": reason, "message": message})
            } else {
                serde_json::json!({"reason": "ContainerCreating"})
            };
            serde_json::json!({"name": c.name, "image": c.image, "imageID": "", "ready": false,
                               "started": false, "restartCount": 0, "state": {"waiting": waiting}, "lastState": {}})
        })
        .collect();
    let st = serde_json::json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": statuses,
    });
    crate::util::write_json(&run_dir.join("status.json"), &st, 0o644)
}
