//! The lifecycle operations on an existing container: start, state, kill, delete, list, and
//! `run` (create + start + wait + delete) in the foreground.

pub mod cgroup_ops;
pub mod exe;
pub mod helper;
pub mod hooks;
pub mod rootless;
pub mod signals;
pub mod state;
pub mod transitions;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::runtime::state::{ContainerState, StateDir, Status};
use crate::runtime::transitions::Op;
use crate::spawn::child::Child;
use crate::spawn::create::{self, CreateOptions};
use crate::sys::{self, terminal};

/// A container just created: its recorded state and its init process.
#[derive(Debug)]
pub struct Created {
    pub state: ContainerState,
    pub init: Child,
}

/// A moor runtime rooted at a state directory (`--root`, default /run/moor).
pub struct Runtime {
    pub root: PathBuf,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime { root: root.into() }
    }

    /// `create`: builds the container up to the exec fifo (status "created"). Its init is our
    /// child: wait for it with [`Child::wait`] to learn its exit status. Needs a single-threaded
    /// caller ([`Error::ThreadedCaller`] otherwise; threaded callers use
    /// [`crate::Helper`]).
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Created> {
        crate::spawn::child::ensure_single_threaded()?;
        let (state, init) = create::create(&self.root, id, opts, None, &mut crate::spawn::child::Spawner::default())?;
        Ok(Created { state, init })
    }

    /// Loads a container's recorded state and its live status, without taking its lock
    /// (state.json is replaced atomically).
    pub fn load(&self, id: &str) -> Result<(ContainerState, Status)> {
        crate::runtime::state::validate_id(id)?;
        let dir = self.root.join(id);
        let data = match std::fs::read(dir.join(crate::runtime::state::STATE_FILE)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::DoesNotExist(id.to_string())),
            Err(e) => return Err(Error::path("cannot read state", dir, e)),
        };
        let state: ContainerState =
            serde_json::from_slice(&data).map_err(|e| Error::sys(format!("corrupt state of {id}"), e))?;
        let status = state.status(&dir, false, || state.frozen());
        Ok((state, status))
    }

    /// `state`: the OCI state plus runc's extra fields.
    pub fn state(&self, id: &str) -> Result<crate::runtime::state::OciState> {
        let (state, status) = self.load(id)?;
        Ok(state.oci_state(status))
    }

    /// `start`: releases init from the exec fifo, then runs the poststart hooks.
    pub fn start(&self, id: &str) -> Result<()> {
        /// Everything init writes to the exec fifo, up to EOF (its write end closed: init exec'd or
        /// died). `fifo` is non-blocking; a read is only tried once poll says the fifo is ready (before
        /// any writer it would read EOF at once) or init has exited.
        fn read_exec_fifo(fifo: &std::fs::File, pidfd: &OwnedFd) -> std::io::Result<Vec<u8>> {
            use std::io::Read;
            let mut data = Vec::new();
            loop {
                use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                let mut fds = [
                    PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                    PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
                if fds.iter().all(|f| f.any() == Some(false)) {
                    continue;
                }
                let mut buf = [0u8; 4096];
                loop {
                    match (&*fifo).read(&mut buf) {
                        Ok(0) => return Ok(data),
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }

        let dir = StateDir::open(&self.root, id)?;
        let state = dir.load()?;
        let status = state.status(&dir.path, true, || false);
        transitions::check(Op::Start, status, id)?;
        let pidfd = open_pidfd(&state)?.ok_or_else(|| Error::NotRunning(id.to_string()))?;
        let fifo_path = dir.fifo_path();
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo_path)
            .map_err(|e| Error::path("open exec fifo", &fifo_path, e))?;
        // Init writes "0" just before execve, or what went wrong instead; its write end is
        // close-on-exec, so EOF comes with a successful execve.
        let said = read_exec_fifo(&fifo, &pidfd).map_err(|e| Error::path("read exec fifo", &fifo_path, e))?;
        match said.as_slice() {
            b"0" => {}
            [] => return Err(Error::InvalidState(format!("container {id}: init exited before start"))),
            text => {
                let text = text.strip_prefix(b"0").unwrap_or(text);
                let _ = std::fs::remove_file(&fifo_path);
                return Err(Error::from_wire(text));
            }
        }
        // The workload runs now, whatever happens here: the status is derived from the fifo's
        // absence (no state write, which a full filesystem could refuse).
        if let Err(e) = std::fs::remove_file(&fifo_path) {
            crate::warn(&format!("remove exec fifo {}: {e}", fifo_path.display()));
        }
        hooks::run_warn("poststart", &state.poststart_hooks, &state.hook_state(Status::Running));
        Ok(())
    }

    /// `kill`: signals init (or, with `all`, every process of the container). Signal 0 only
    /// checks that the container is running.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let (state, status) = self.load(id)?;
        transitions::check(if all { Op::KillAll } else { Op::Kill }, status, id)?;
        if status == Status::Stopped {
            // As runc: processes may outlive init in its cgroup (no pid namespace); a stopped
            // container's cgroup, if any, is still searched. Init's pid is not trusted here.
            let pids = state.cgroup().and_then(|c| c.pids().ok()).unwrap_or_default();
            for pid in pids {
                // SAFETY: pids read just now from the container's own cgroup.
                unsafe { libc::kill(pid, signal) };
            }
            return Ok(());
        }
        let pidfd = open_pidfd(&state)?.ok_or_else(|| Error::NotRunning(id.to_string()))?;
        let sent = sys::pidfd_send_signal(pidfd.as_fd(), signal);
        if all {
            // Init first, then everything else in the container; init may already be gone by the
            // time the rest is signalled (or go because of it), which is not an error here.
            for pid in container_pids(&state) {
                if pid != state.pid {
                    // SAFETY: pids of the container, read just now.
                    unsafe { libc::kill(pid, signal) };
                }
            }
            return Ok(());
        }
        sent.map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => Error::InvalidState("no such process".into()),
            _ => Error::sys(format!("signal container {id}"), e),
        })
    }

    /// `delete`: removes a stopped (or created) container; `force` kills a running one first.
    /// With `force`, a container that does not exist (or was deleted meanwhile by another
    /// `delete`) is not an error, as with runc.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let dir = match StateDir::open(&self.root, id) {
            Err(Error::DoesNotExist(_)) if force => return Ok(()),
            r => r?,
        };
        let state = match dir.load() {
            Ok(s) => s,
            // A state directory without state is debris of a crashed create: remove it.
            Err(Error::Path { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                dir.remove()?;
                return if force {
                    Ok(())
                } else {
                    Err(Error::DoesNotExist(id.to_string()))
                };
            }
            // Unreadable state: the container may be running, and without its state nothing
            // of it can be found again. Keep everything, as runc does.
            Err(e) => return Err(e),
        };
        let status = state.status(&dir.path, true, || state.frozen());
        transitions::check(if force { Op::ForceDelete } else { Op::Delete }, status, id)?;
        let cgroup = state.cgroup();
        if let Some(pidfd) = open_pidfd(&state)? {
            // In a shared cgroup the other processes may be another container's: only what is
            // in init's own pid namespace is ours (init's death takes the rest).
            let pids = if state.owns_cgroup() {
                container_pids(&state)
            } else {
                pid_namespace_pids(state.pid)
            };
            for pid in pids {
                // Pids of the container, read just now.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            if let Some(cg) = &cgroup {
                // A frozen cgroup holds SIGKILL until thawed.
                let _ = cg.thaw();
            }
            sys::pidfd_wait_exit(pidfd.as_fd(), 10_000).map_err(|e| Error::sys("wait for init to exit", e))?;
        }
        if let Some(cg) = &cgroup {
            // Kills stragglers (processes that left the pid namespace's reach) and removes
            // only the directories moor created.
            cg.destroy()?;
        }
        let hook_state = state.hook_state(Status::Stopped);
        dir.remove()?;
        hooks::run_warn("poststop", &state.poststop_hooks, &hook_state);
        Ok(())
    }

    /// `list`: every container under the root, with its live status, by id.
    pub fn list(&self) -> Result<Vec<(ContainerState, Status)>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::path("cannot read", &self.root, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str() else { continue };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match self.load(id) {
                Ok(s) => out.push(s),
                // As runc: the others are still listed.
                Err(e) => crate::warn(&format!("load container {id}: {}", crate::error::report(&e))),
            }
        }
        // By id, as runc lists its state directory.
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(out)
    }

    /// `run` in the foreground: create, start, forward signals (and relay the terminal when
    /// moor holds it), wait, delete (unless `keep`: the stopped container stays until
    /// `delete`). Returns the exit code (128+N for death by signal N).
    pub fn run(&self, id: &str, opts: &CreateOptions, keep: bool) -> Result<i32> {
        crate::spawn::child::ensure_single_threaded()?;
        let _slots = crate::sys::fds::reserve_low(opts.extra_fds.len())?;
        // Blocked before the clone, so a container that exits at once cannot be missed.
        let signals = crate::runtime::signals::Forwarder::block()?;
        let terminal = crate::spec::config::load(&opts.bundle)?
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let mut console = None;
        let mut console_rx = None;
        if terminal && opts.console_socket.is_none() {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
            console = Some(OwnedFd::from(theirs));
            console_rx = Some(OwnedFd::from(ours));
        }
        let (state, init) = create::create(
            &self.root,
            id,
            opts,
            console,
            &mut crate::spawn::child::Spawner::default(),
        )?;
        let created = Created { state, init };
        let abandon = |e: Error| {
            let _ = self.delete(id, true);
            let _ = created.init.wait();
            Err(e)
        };
        let master = match console_rx {
            Some(rx) => match terminal::recv_fd(rx.as_fd()) {
                Ok(m) => Some(m),
                Err(e) => return abandon(e),
            },
            None => None,
        };
        if let Err(e) = self.start(id) {
            return abandon(e);
        }
        let code = signals.forward_until_exit(&created.init, master.as_ref().map(|m| m.as_fd()));
        if !keep {
            self.delete(id, true)?;
        }
        code
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// A pidfd for init, only if the pid still belongs to it (same start time): a recycled pid
/// is never signalled.
fn open_pidfd(state: &ContainerState) -> Result<Option<OwnedFd>> {
    if state.pid <= 0 {
        return Ok(None);
    }
    let fd = match sys::pidfd_open(state.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(Error::sys("pidfd_open", e)),
    };
    // Checked after opening the pidfd: from here on the pid cannot be recycled under us.
    Ok(state.init_alive().then_some(fd))
}

/// Every process of the container: its cgroup's, else those in init's own pid namespace.
pub(crate) fn container_pids(state: &ContainerState) -> Vec<i32> {
    if let Some(pids) = state.cgroup().and_then(|c| c.pids().ok()) {
        return pids;
    }
    pid_namespace_pids(state.pid)
}

/// The processes in `init`'s pid namespace, or `init` alone when that is ours (the host's).
fn pid_namespace_pids(init: i32) -> Vec<i32> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
        return Vec::new();
    };
    if std::fs::read_link("/proc/self/ns/pid").ok().as_ref() == Some(&ns) {
        return vec![init];
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() == Some(&ns))
        .collect()
}
