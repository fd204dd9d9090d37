//! One container of the pod: its state as the kubelet reports it, its running process and
//! pipes, the restart policy and backoff.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Container;

use super::Monitor;
use crate::logs::{CriLog, Lines};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Init,
    /// An init container with restartPolicy Always: runs beside the apps.
    Sidecar,
    App,
}

#[derive(Clone, Debug)]
pub struct Term {
    pub code: i32,
    pub reason: String,
    /// terminationMessagePath's content, or the log's tail (FallbackToLogsOnError).
    pub message: String,
    pub started: String,
    pub finished: String,
}

pub enum State {
    Waiting {
        reason: String,
        message: String,
        until: Option<Instant>,
    },
    Running {
        since: String,
        at: Instant,
    },
    Terminated(Term),
}

pub struct Run {
    pub child: moor::Child,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    out_lines: Lines,
    err_lines: Lines,
    log: Option<CriLog>,
    oom: Option<moor::OomWatcher>,
}

pub struct Ctr {
    pub name: String,
    pub kind: Kind,
    pub spec: Container,
    pub image_id: String,
    pub id: String,
    pub dir: PathBuf,
    pub restarts: u32,
    pub ever_started: bool,
    pub state: State,
    pub last: Option<Term>,
    pub delay: Duration,
    pub run: Option<Run>,
    /// An init container that completed, or a container that will not run again.
    pub done: bool,
}

pub fn from_pod(m: &Monitor) -> Result<Vec<Ctr>> {
    let images: std::collections::BTreeMap<String, String> =
        crate::util::read_json(&m.run_dir.join("images.json"))?.context("images.json is missing")?;
    let spec = m.pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.unwrap_or_default().into_iter().map(|c| {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            Kind::Sidecar
        } else {
            Kind::Init
        };
        (kind, c)
    });
    let apps = spec.containers.into_iter().map(|c| (Kind::App, c));
    inits
        .chain(apps)
        .map(|(kind, c)| {
            let image_id = images
                .get(&c.name)
                .cloned()
                .with_context(|| format!("no image resolved for container {}", c.name))?;
            Ok(Ctr {
                name: c.name.clone(),
                id: super::container_id(&m.ns, &m.name, &c.name, &m.uid),
                dir: m.run_dir.join("containers").join(&c.name),
                kind,
                spec: c,
                image_id,
                restarts: 0,
                ever_started: false,
                state: State::Waiting {
                    reason: if kind == Kind::App {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    }
                    .into(),
                    message: String::new(),
                    until: None,
                },
                last: None,
                delay: m.backoff.initial,
                run: None,
                done: false,
            })
        })
        .collect()
}

impl Ctr {
    pub fn pid(&self) -> Option<i32> {
        self.run.as_ref().map(|r| r.child.pid)
    }

    pub fn poll_fds(&self) -> Vec<RawFd> {
        let Some(r) = &self.run else {
            return Vec::new();
        };
        let mut fds = vec![r.child.pidfd.as_raw_fd()];
        fds.extend(r.out.iter().chain(r.err.iter()).map(|f| f.as_raw_fd()));
        fds
    }

    pub fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Copies what is readable on the pipes into the log; true when the process has exited.
    pub fn pump(&mut self, readable: &[RawFd]) -> bool {
        let Some(r) = &mut self.run else {
            return false;
        };
        for (fd, lines, stream) in [
            (&mut r.out, &mut r.out_lines, "stdout"),
            (&mut r.err, &mut r.err_lines, "stderr"),
        ] {
            if fd.as_ref().is_some_and(|f| readable.contains(&f.as_raw_fd()))
                && !drain(fd, lines, &mut r.log, stream, false)
            {
                *fd = None;
            }
        }
        readable.contains(&r.child.pidfd.as_raw_fd())
    }
}

/// Reads the pipe until it would block (or to its end when `to_end`); false at EOF.
fn drain(fd: &mut Option<OwnedFd>, lines: &mut Lines, log: &mut Option<CriLog>, stream: &str, to_end: bool) -> bool {
    let Some(f) = fd else { return false };
    let mut buf = [0u8; 16384];
    let mut write = |partial: bool, msg: &[u8]| {
        if let Some(l) = log.as_mut() {
            if let Err(e) = l.write(stream, partial, msg) {
                crate::log!("{e:#}");
                *log = None;
            }
        }
    };
    loop {
        match nix::unistd::read(f.as_raw_fd(), &mut buf) {
            Ok(0) => {
                lines.finish(&mut write);
                return false;
            }
            Ok(n) => lines.push(&buf[..n], &mut write),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) if !to_end => return true,
            Err(nix::errno::Errno::EAGAIN) => {
                // The process is gone but something in the container still holds the pipe.
                lines.finish(&mut write);
                return false;
            }
            Err(_) => {
                lines.finish(&mut write);
                return false;
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot make a log pipe")?;
    nix::fcntl::fcntl(
        r.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .context("cannot make a log pipe non-blocking")?;
    Ok((r, w))
}

fn now_rfc() -> String {
    crate::util::now_k8s()
}

impl Monitor {
    /// Creates and starts container `i` (a fresh rootfs each time, as the kubelet does).
    pub fn start(&mut self, i: usize) -> Result<()> {
        // A spec the pod cannot have (CreateContainerConfigError) is not a run: no restart counted.
        let spec = self.container_spec(i)?;
        if self.ctrs[i].ever_started {
            self.ctrs[i].restarts += 1;
        }
        self.ctrs[i].ever_started = true;
        let c = &self.ctrs[i];
        crate::util::write_json(&c.dir.join("config.json"), &spec, 0o600)?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = std::fs::File::open("/dev/null").context("cannot open /dev/null")?;
        let stdio = moor::Stdio {
            stdin: null.into(),
            stdout: out_w,
            stderr: err_w,
        };
        let opts = moor::CreateOptions {
            bundle: c.dir.clone(),
            stdio: Some(stdio),
            ..Default::default()
        };
        let created = self
            .rt
            .create(&c.id, &opts)
            .map_err(|e| anyhow::anyhow!("create container {}: {}", c.name, moor::report(&e)))?;
        drop(opts);
        if let Err(e) = self.rt.start(&c.id) {
            let _ = self.rt.delete(&c.id, true);
            let _ = created.init.wait();
            anyhow::bail!("start container {}: {}", c.name, moor::report(&e));
        }
        let oom = self.rt.oom_watcher(&c.id).ok();
        let path = crate::logs::container_dir(&self.log_root, &self.ns, &self.name, &self.uid, &c.name)
            .join(format!("{}.log", c.restarts));
        let log = match CriLog::open(&path) {
            Ok(l) => Some(l),
            Err(e) => {
                self.event(true, "Failed", &format!("{e:#}"));
                None
            }
        };
        let name = c.name.clone();
        let c = &mut self.ctrs[i];
        c.run = Some(Run {
            child: created.init,
            out: Some(out_r),
            err: Some(err_r),
            out_lines: Lines::default(),
            err_lines: Lines::default(),
            log,
            oom,
        });
        c.state = State::Running {
            since: now_rfc(),
            at: Instant::now(),
        };
        self.event(false, "Started", &format!("Started container {name}"));
        self.post_start(i);
        Ok(())
    }

    /// Container `i` exited: record why, and decide whether and when it runs again.
    pub fn on_exit(&mut self, i: usize) {
        let Some(mut run) = self.ctrs[i].run.take() else {
            return;
        };
        // The backoff counts from the exit, not from the end of the cleanup below.
        let exited = Instant::now();
        let code = run.child.wait().unwrap_or(255);
        drain(&mut run.out, &mut run.out_lines, &mut run.log, "stdout", true);
        drain(&mut run.err, &mut run.err_lines, &mut run.log, "stderr", true);
        let oom = run
            .oom
            .as_mut()
            .and_then(|w| w.check().ok())
            .is_some_and(|u| u.total.oom_kill > 0);
        let c = &self.ctrs[i];
        let _ = self.rt.delete(&c.id, true);
        let _ = crate::image::unmount_rootfs(&c.dir);
        let (started, ran) = match &c.state {
            State::Running { since, at } => (since.clone(), at.elapsed()),
            _ => (String::new(), Duration::ZERO),
        };
        let reason = if oom {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let term = Term {
            code,
            reason: reason.into(),
            message: self.termination_message(i, code),
            started,
            finished: now_rfc(),
        };
        let policy = self.restart_policy();
        let restart = match c.kind {
            Kind::Init => code != 0 && policy != "Never",
            Kind::Sidecar => true,
            Kind::App => policy == "Always" || (policy == "OnFailure" && code != 0),
        };
        let name = c.name.clone();
        let kind = c.kind;
        self.event(
            code != 0,
            if oom { "OOMKilled" } else { "Died" },
            &format!("Container {name} exited with code {code} ({reason})"),
        );
        let c = &mut self.ctrs[i];
        if restart && !super::STOP.load(std::sync::atomic::Ordering::SeqCst) {
            let (delay, next) = self.backoff.next(c.delay, ran);
            c.delay = next;
            c.last = Some(term);
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {}s restarting failed container={name} pod={}_{}({})",
                    delay.as_secs(),
                    self.name,
                    self.ns,
                    self.uid
                ),
                until: Some(exited + self.backoff.scaled(delay)),
            };
            let msg = format!("Back-off restarting failed container {name}");
            self.event(true, "BackOff", &msg);
        } else {
            c.done = true;
            let failed_init = kind == Kind::Init && code != 0;
            c.state = State::Terminated(term);
            if failed_init {
                self.failed = Some(("Failed".into(), format!("init container {name} failed")));
            }
        }
    }

    /// What the kubelet reports as the terminated state's message: the container's
    /// terminationMessagePath (at most 4 KiB), or with FallbackToLogsOnError after a failure
    /// with no message, the end of its log (80 lines, 2 KiB at most).
    fn termination_message(&self, i: usize, code: i32) -> String {
        use std::io::Read;
        let c = &self.ctrs[i];
        let mut msg = Vec::new();
        if let Ok(f) = std::fs::File::open(c.dir.join("termination-log")) {
            let _ = f.take(4096).read_to_end(&mut msg);
        }
        let fallback = c.spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        if msg.is_empty() && fallback && code != 0 {
            let path = crate::logs::container_dir(&self.log_root, &self.ns, &self.name, &self.uid, &c.name)
                .join(format!("{}.log", c.restarts));
            let data = std::fs::read(&path).unwrap_or_default();
            let mut reader = crate::logs::Reader::default();
            let lines: Vec<String> = data
                .split(|&b| b == b'\n')
                .filter(|r| !r.is_empty())
                .filter_map(|r| reader.record(r, false))
                .collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            let start = tail.len().saturating_sub(2048);
            let start = (start..=tail.len())
                .find(|&i| tail.is_char_boundary(i))
                .unwrap_or(tail.len());
            return tail[start..].to_string();
        }
        String::from_utf8_lossy(&msg).into_owned()
    }

    pub fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// Starts what is due: init containers one at a time, in order (a sidecar lets the next one
    /// start once it runs), then every app container.
    pub fn schedule(&mut self) {
        let now = Instant::now();
        let due = |c: &Ctr| match &c.state {
            State::Waiting { until, .. } => until.is_none_or(|t| t <= now),
            _ => false,
        };
        let mut starts = Vec::new();
        if !self.init_done {
            let mut all = true;
            for (i, c) in self.ctrs.iter().enumerate().filter(|(_, c)| c.kind != Kind::App) {
                match c.kind {
                    Kind::Init if c.done => continue,
                    Kind::Sidecar if c.running() => continue,
                    Kind::Sidecar if due(c) => {
                        starts.push(i);
                        continue;
                    }
                    _ if due(c) => starts.push(i),
                    _ => {}
                }
                all = false;
                break;
            }
            self.init_done = all;
        }
        if self.init_done {
            for (i, c) in self.ctrs.iter().enumerate() {
                if c.kind != Kind::Init && !c.done && due(c) && !starts.contains(&i) {
                    starts.push(i);
                }
            }
        }
        for i in starts {
            if let Err(e) = self.start(i) {
                let msg = format!("{e:#}");
                // The kubelet's reasons: the pod's spec is at fault, or creating the container failed.
                let reason = if e.downcast_ref::<crate::spec::SpecError>().is_some() {
                    "CreateContainerConfigError"
                } else {
                    "CreateContainerError"
                };
                self.event(true, "Failed", &msg);
                let c = &mut self.ctrs[i];
                let delay = c.delay;
                c.delay = (delay * 2).min(self.backoff.max);
                c.state = State::Waiting {
                    reason: reason.into(),
                    message: msg,
                    until: Some(Instant::now() + self.backoff.scaled(delay)),
                };
                let _ = crate::image::unmount_rootfs(&c.dir);
            }
            self.write_status();
        }
    }

    /// How long until the next container is due to start.
    pub fn next_wake(&self) -> Duration {
        let now = Instant::now();
        self.ctrs
            .iter()
            .filter_map(|c| match &c.state {
                State::Waiting { until: Some(t), .. } => Some(t.saturating_duration_since(now)),
                _ => None,
            })
            .min()
            .unwrap_or(Duration::from_secs(1))
    }
}
