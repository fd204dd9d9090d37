//! The per-pod monitor: `moorlet monitor --state-dir S --uid U ...`, a hidden subcommand the
//! agent fork+execs for each pod.
//!
//! It is single-threaded (so it may call `moor::Runtime` directly, see moor's "Who may call
//! what"), in its own session (a signal to the agent's process group never reaches it), and a
//! child subreaper: the pod's containers are its children and stay so when the agent dies. It
//! sets the pod up (namespaces, CNI, /etc files, volumes), runs the init, sidecar and app
//! containers with the restart policy and the kubelet's backoff, owns their stdout/stderr
//! pipes and writes their CRI logs, and writes the pod's status to `<run>/status.json`, which
//! the agent reads. SIGTERM (or a `stop` file, for a monitor restarted mid-delete) makes it
//! terminate the containers (preStop, stop signal, SIGKILL at the grace period) and tear the
//! pod down, then exit.

mod container;
mod http;
mod setup;
mod status;
mod stop;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;

use crate::events::{self, Event};
use crate::store::Store;
use container::Ctr;
pub use setup::{peers, write_etc, Objects};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long)]
    pub uid: String,
    #[arg(long)]
    pub log_root: PathBuf,
    #[arg(long)]
    pub cgroup_parent: String,
}

static STOP: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a static byte.
        unsafe { libc::write(fd, c"x".as_ptr().cast(), 1) };
    }
}

/// The kubelet's restart backoff: 10 s doubling to 300 s, reset after 10 minutes of running.
/// MOORLET_BACKOFF_SCALE (a factor in (0, 1]) shrinks the delays for tests only.
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
    pub scale: f64,
}

impl Backoff {
    fn from_env() -> Backoff {
        let scale = std::env::var("MOORLET_BACKOFF_SCALE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0 && *s <= 1.0)
            .unwrap_or(1.0);
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
            scale,
        }
    }
    fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.scale)
    }

    /// The delay before the next restart of a container that ran for `ran` with `current` as
    /// its pending delay, and the delay after that one.
    pub fn next(&self, current: Duration, ran: Duration) -> (Duration, Duration) {
        let delay = if ran >= self.reset_after { self.initial } else { current };
        (delay, (delay * 2).min(self.max))
    }
}

pub struct Monitor {
    pub rt: moor::Runtime,
    pub store: Store,
    pub run_dir: PathBuf,
    pub log_root: PathBuf,
    pub cgroup_parent: String,
    pub pod: Pod,
    pub ns: String,
    pub name: String,
    pub uid: String,
    pub images: crate::image::ImageStore,
    pub backoff: Backoff,
    pub net: setup::PodNet,
    pub volumes: Vec<crate::volume::HostVolume>,
    pub ctrs: Vec<Ctr>,
    pub init_done: bool,
    /// Why the pod cannot run at all (setup failed, an init failed under restartPolicy Never).
    pub failed: Option<(String, String)>,
    pub pending: Option<(String, String)>,
    pub start_time: String,
    /// The status of a pod that had finished (Succeeded or Failed) before this monitor started:
    /// it is kept, nothing runs again.
    pub frozen: Option<serde_json::Value>,
    wake: OwnedFd,
}

/// The moor id of a pod's container (the agent computes it too, for exec).
pub fn container_id(ns: &str, pod: &str, container: &str, uid: &str) -> String {
    format!("{ns}_{pod}_{container}_{}", &uid[..uid.len().min(8)])
}

pub fn main(args: Args) -> Result<()> {
    // SAFETY: setsid and prctl take no pointers; the monitor is single-threaded.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    // Executed through /proc/self/fd/N, the process would be named "N" in ps.
    let _ = nix::sys::prctl::set_name(c"moorlet-monitor");
    let store = Store::open(&args.state_dir)?;
    let run_dir = store.run_dir(&args.uid);
    let pod: Pod = crate::util::read_json(&run_dir.join("pod.json"))?.context("pod.json is missing")?;
    let pid = std::process::id();
    let me = i32::try_from(pid).unwrap_or(0);
    let record = format!("{pid} {}\n", crate::util::start_time(me).unwrap_or(0));
    crate::util::write_atomic(&run_dir.join("monitor.pid"), record.as_bytes(), 0o644)?;

    let (wake, wake_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .context("cannot make the monitor's wake pipe")?;
    WAKE_FD.store(wake_w.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(wake_w);
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_stop),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
        // SAFETY: the handler only stores an atomic and writes one byte to a pipe.
        unsafe { nix::sys::signal::sigaction(sig, &action) }.context("cannot install the SIGTERM handler")?;
    }
    // A pipe whose reader is gone must not kill the monitor.
    // SAFETY: SIG_IGN has no handler to run.
    unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) }
        .context("cannot ignore SIGPIPE")?;

    let images = crate::image::ImageStore::open(&store.images_dir())?;
    let mut m = Monitor {
        rt: moor::Runtime::new(store.moor_root()),
        ns: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: args.uid.clone(),
        ctrs: Vec::new(),
        pod,
        store,
        run_dir,
        log_root: args.log_root,
        cgroup_parent: args.cgroup_parent,
        images,
        backoff: Backoff::from_env(),
        net: setup::PodNet::default(),
        volumes: Vec::new(),
        init_done: false,
        failed: None,
        pending: None,
        start_time: crate::util::now_k8s(),
        frozen: None,
        wake,
    };
    m.ctrs = container::from_pod(&m)?;
    m.run();
    m.teardown();
    Ok(())
}

impl Monitor {
    pub fn event(&self, warning: bool, reason: &str, message: &str) {
        let ev = Event::new(&self.ns, &format!("Pod/{}", self.name), warning, reason, message);
        events::record(&self.run_dir.join("events.jsonl"), &ev);
    }

    fn stop_requested(&self) -> bool {
        STOP.load(Ordering::SeqCst) || self.run_dir.join("stop").exists()
    }

    fn run(&mut self) {
        // A monitor that starts again after a crash or a reboot finds the pod as it left it:
        // if it had finished, its status stays; otherwise it starts over, as after a reboot.
        let finished = status::finished(&self.run_dir);
        self.frozen.clone_from(&finished);
        // What a previous monitor wrote is not true any more: say so before the slow cleanup.
        self.write_status();
        self.cleanup_leftovers();
        if finished.is_none() && !self.stop_requested() {
            if let Err(e) = self.setup() {
                self.event(true, "FailedCreatePodSandBox", &format!("{e:#}"));
                self.pending = Some(("ContainerCreating".into(), format!("{e:#}")));
            }
        }
        self.write_status();
        let mut last_retry = Instant::now();
        while !self.stop_requested() {
            if self.pending.is_some() && finished.is_none() && last_retry.elapsed() >= Duration::from_secs(5) {
                // Setup failed (a hostPort in use, say): try again from scratch.
                last_retry = Instant::now();
                self.teardown_pod_resources();
                match self.setup() {
                    Ok(()) => self.pending = None,
                    Err(e) => self.pending = Some(("ContainerCreating".into(), format!("{e:#}"))),
                }
                self.write_status();
            }
            if self.pending.is_none() && self.failed.is_none() && finished.is_none() {
                self.schedule();
            }
            let timeout = self.next_wake().min(Duration::from_secs(1));
            self.wait(timeout, &[]);
            self.reap_strays();
        }
        self.terminate_all();
    }

    /// Polls the containers' pidfds and pipes (and `extra` fds) for up to `timeout`; handles
    /// output and exits. Returns the `extra` fds that became readable.
    pub fn wait(&mut self, timeout: Duration, extra: &[RawFd]) -> Vec<RawFd> {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let push = |fds: &mut Vec<libc::pollfd>, fd: RawFd| {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
        };
        push(&mut fds, self.wake.as_raw_fd());
        for c in &self.ctrs {
            for fd in c.poll_fds() {
                push(&mut fds, fd);
            }
        }
        for &fd in extra {
            push(&mut fds, fd);
        }
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let n = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
        // SAFETY: `fds` is a live, correctly sized array of pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), n, ms) };
        if ready <= 0 {
            return Vec::new();
        }
        let readable: Vec<RawFd> = fds.iter().filter(|p| p.revents != 0).map(|p| p.fd).collect();
        if readable.contains(&self.wake.as_raw_fd()) {
            let mut buf = [0u8; 64];
            let _ = nix::unistd::read(self.wake.as_raw_fd(), &mut buf);
        }
        let mut changed = false;
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].pump(&readable) {
                self.on_exit(i);
                changed = true;
            }
        }
        if changed {
            self.write_status();
        }
        readable.into_iter().filter(|fd| extra.contains(fd)).collect()
    }

    /// Reaps processes that were re-parented to us (we are a subreaper) and that we did not
    /// start: their status is nobody's.
    fn reap_strays(&self) {
        let mine: Vec<i32> = self.ctrs.iter().filter_map(|c| c.pid()).collect();
        let Ok(children) = std::fs::read_to_string(format!("/proc/self/task/{}/children", std::process::id())) else {
            return;
        };
        for pid in children.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            if mine.contains(&pid) {
                continue;
            }
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')))
                .unwrap_or(false);
            if zombie {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            }
        }
    }

    pub fn write_status(&self) {
        let st = status::build(self);
        if let Err(e) = crate::util::write_json(&self.run_dir.join("status.json"), &st, 0o644) {
            crate::log!("monitor {}: {e:#}", self.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn kubelet_backoff() {
        let b = super::Backoff::from_env();
        let s = Duration::from_secs;
        let mut current = b.initial;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let (delay, next) = b.next(current, s(1));
            seen.push(delay.as_secs());
            current = next;
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            b.next(current, s(600)).0,
            s(10),
            "10 minutes of running reset the backoff"
        );
        assert_eq!(b.next(current, s(599)).0, s(300));
    }
}
