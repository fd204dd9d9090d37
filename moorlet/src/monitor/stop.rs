//! Termination as the kubelet does it: preStop, then the stop signal, then SIGKILL when the
//! grace period (which counts from the preStop) is over; app containers first, then sidecars.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::container::Kind;
use super::Monitor;

impl Monitor {
    pub fn terminate_all(&mut self) {
        let grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(30);
        let deadline = Instant::now() + Duration::from_secs(grace);
        self.stop_group(Kind::App, deadline);
        self.stop_group(Kind::Sidecar, deadline);
        self.stop_group(Kind::Init, deadline);
        self.write_status();
    }

    fn running_of(&self, kind: Kind) -> Vec<usize> {
        (0..self.ctrs.len())
            .filter(|&i| self.ctrs[i].kind == kind && self.ctrs[i].run.is_some())
            .collect()
    }

    fn stop_group(&mut self, kind: Kind, deadline: Instant) {
        let group = self.running_of(kind);
        if group.is_empty() {
            return;
        }
        let mut hooks = Vec::new();
        let mut sleep_until = Instant::now();
        for &i in &group {
            let Some(handler) = self.ctrs[i].spec.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) else {
                continue;
            };
            if let Some(s) = handler.sleep {
                let secs = u64::try_from(s.seconds).unwrap_or(0);
                sleep_until = sleep_until.max(Instant::now() + Duration::from_secs(secs));
            }
            if let Some(get) = &handler.http_get {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(100));
                if let Err(e) = super::http::get(get, &self.ctrs[i].spec, self.net.ip, left) {
                    let msg = format!("PreStopHook failed in {}: {e:#}", self.ctrs[i].name);
                    self.event(true, "FailedPreStopHook", &msg);
                }
            }
            let Some(cmd) = handler.exec.and_then(|e| e.command).filter(|c| !c.is_empty()) else {
                continue;
            };
            match self.exec_hook(i, cmd) {
                Ok(child) => hooks.push(child),
                Err(e) => {
                    let msg = format!("PreStopHook failed in {}: {e:#}", self.ctrs[i].name);
                    self.event(true, "FailedPreStopHook", &msg);
                }
            }
        }
        while !hooks.is_empty() || Instant::now() < sleep_until.min(deadline) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let fds: Vec<i32> = hooks.iter().map(|h: &moor::Child| h.pidfd.as_raw_fd()).collect();
            let ready = self.wait((deadline - now).min(Duration::from_millis(200)), &fds);
            hooks.retain(|h| {
                if ready.contains(&h.pidfd.as_raw_fd()) {
                    let _ = h.wait();
                    return false;
                }
                true
            });
        }
        for h in &hooks {
            // Past the grace period: the hook dies with its container.
            let _ = h.signal(libc::SIGKILL);
        }
        for &i in &group {
            if self.ctrs[i].run.is_some() {
                let sig = self.stop_signal(i);
                let name = self.ctrs[i].name.clone();
                self.event(false, "Killing", &format!("Stopping container {name} (signal {sig})"));
                let _ = self.rt.kill(&self.ctrs[i].id, sig, false);
            }
        }
        while Instant::now() < deadline && group.iter().any(|&i| self.ctrs[i].run.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            self.wait(left.min(Duration::from_millis(200)), &[]);
        }
        for &i in &group {
            if self.ctrs[i].run.is_some() {
                let name = self.ctrs[i].name.clone();
                self.event(
                    true,
                    "Killing",
                    &format!("Container {name} outlived its grace period: SIGKILL"),
                );
                let _ = self.rt.kill(&self.ctrs[i].id, libc::SIGKILL, true);
            }
        }
        let hard = Instant::now() + Duration::from_secs(10);
        while Instant::now() < hard && group.iter().any(|&i| self.ctrs[i].run.is_some()) {
            self.wait(Duration::from_millis(100), &[]);
        }
        for h in &hooks {
            let _ = h.wait();
        }
    }

    /// postStart: the container counts as started once its hook has run; a failed hook kills
    /// it (FailedPostStartHook), and the restart policy decides what comes next.
    pub fn post_start(&mut self, i: usize) {
        let Some(handler) = self.ctrs[i].spec.lifecycle.as_ref().and_then(|l| l.post_start.clone()) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        if let Some(s) = handler.sleep {
            let until = Instant::now() + Duration::from_secs(u64::try_from(s.seconds).unwrap_or(0));
            while Instant::now() < until
                && self.ctrs[i].run.is_some()
                && !super::STOP.load(std::sync::atomic::Ordering::SeqCst)
            {
                self.wait(
                    until
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(200)),
                    &[],
                );
            }
        }
        let name = self.ctrs[i].name.clone();
        if let Some(get) = &handler.http_get {
            if let Err(e) = super::http::get(get, &self.ctrs[i].spec, self.net.ip, Duration::from_secs(10)) {
                self.event(true, "FailedPostStartHook", &format!("PostStartHook of {name}: {e:#}"));
                let _ = self.rt.kill(&self.ctrs[i].id, libc::SIGKILL, true);
                return;
            }
        }
        let Some(cmd) = handler.exec.and_then(|e| e.command).filter(|c| !c.is_empty()) else {
            return;
        };
        let failed = match self.exec_hook(i, cmd) {
            Ok(hook) => {
                let fd = hook.pidfd.as_raw_fd();
                let mut code = None;
                while code.is_none() && Instant::now() < deadline && self.ctrs[i].run.is_some() {
                    if self.wait(Duration::from_millis(200), &[fd]).contains(&fd) {
                        code = Some(hook.wait().unwrap_or(255));
                    }
                }
                if code.is_none() {
                    let _ = hook.signal(libc::SIGKILL);
                    let _ = hook.wait();
                }
                match code {
                    Some(0) => None,
                    Some(c) => Some(format!("exited with {c}")),
                    None => Some("did not finish".to_string()),
                }
            }
            Err(e) => Some(format!("{e:#}")),
        };
        if let Some(why) = failed {
            self.event(true, "FailedPostStartHook", &format!("PostStartHook of {name} {why}"));
            if self.ctrs[i].run.is_some() {
                let _ = self.rt.kill(&self.ctrs[i].id, libc::SIGKILL, true);
            }
        }
    }

    fn exec_hook(&self, i: usize, cmd: Vec<String>) -> anyhow::Result<moor::Child> {
        let id = &self.ctrs[i].id;
        let mut process = self
            .rt
            .process_template(id)
            .map_err(|e| anyhow::anyhow!(moor::report(&e)))?;
        process.set_args(Some(cmd));
        process.set_terminal(Some(false));
        let opts = moor::ExecOptions {
            process: Some(process),
            detach: true,
            ..Default::default()
        };
        self.rt
            .exec_detached(id, &opts)
            .map_err(|e| anyhow::anyhow!(moor::report(&e)))
    }
}
