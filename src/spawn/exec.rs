//! `exec`: runs another process in a running container. A short-lived middle process enters
//! the container's namespaces through init's pidfd (one setns for all of them) and clones the
//! new process with CLONE_PARENT (so it lands in the container's pid namespace and is still
//! moor's child); that process becomes the workload exactly as init does
//! ([`crate::init::ExecInit`]). With a seccomp listener, the process reports its notify fd over a
//! [`crate::spawn::sync`] channel once its filter is in, and moor takes the fd (pidfd_getfd),
//! sends it on, and answers; the process's profile need not allow sendmsg.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::Process;

use crate::error::{Error, Result};
use crate::init::capabilities;
use crate::runtime::state::Status;
use crate::runtime::transitions::{self, Op};
use crate::runtime::Runtime;
use crate::spawn::child;
use crate::sys::procfs::Procfs;
use crate::sys::terminal;
use crate::sys::{self, Cloned};

#[derive(Default, Debug)]
pub struct ExecOptions {
    pub process: Option<Process>,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    /// The process's fds 0-2; None: the runtime's own.
    pub stdio: Option<crate::sys::fds::Stdio>,
    /// Fds the process gets as 3, 4, ... (runc's --preserve-fds).
    pub extra_fds: Vec<OwnedFd>,
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroups of the container's to join.
    pub sub_cgroups: moor_cgroups::SubCgroups,
}

const NAMESPACES: [(&str, i32); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

/// The namespaces of `pid` that differ from ours: the ones the new process must enter.
fn namespaces_of(pid: i32) -> i32 {
    NAMESPACES
        .iter()
        .filter(|(name, _)| {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}")).ok();
            let ours = std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
            theirs.is_some() && theirs != ours
        })
        .fold(0, |flags, (_, f)| flags | f)
}

impl Runtime {
    /// The container's own process (from its config.json): the template `exec` starts from.
    pub fn process_template(&self, id: &str) -> Result<Process> {
        self.load(id)?;
        Ok(crate::runtime::state::exec_config(&self.root, id)?.process)
    }

    /// Runs a process in the container; returns its exit code (0 when detached: the process is
    /// then left to run, see [`Runtime::exec_detached`] for a handle on it).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        child::ensure_single_threaded()?;
        let exec = self.spawn_exec(id, opts, opts.detach, &mut child::Spawner::default())?;
        match exec.signals {
            Some(s) => s.forward_until_exit(&exec.process, exec.master.as_ref().map(|m| m.as_fd())),
            None => Ok(0),
        }
    }

    /// Starts a process in the container and returns it without waiting (whatever `opts.detach`
    /// says): a child of ours, to be waited for with [`child::Child::wait`].
    pub fn exec_detached(&self, id: &str, opts: &ExecOptions) -> Result<child::Child> {
        child::ensure_single_threaded()?;
        Ok(self.spawn_exec(id, opts, true, &mut child::Spawner::default())?.process)
    }

    pub(crate) fn spawn_exec(
        &self,
        id: &str,
        opts: &ExecOptions,
        detach: bool,
        spawner: &mut child::Spawner,
    ) -> Result<Exec> {
        // Before moor opens anything: see `fds::install`.
        let _slots = crate::sys::fds::reserve_low(opts.extra_fds.len())?;
        let (state, status) = self.load(id)?;
        let op = if opts.ignore_paused {
            Op::ExecIgnorePaused
        } else {
            Op::Exec
        };
        transitions::check(op, status, id)?;
        // Never the bundle: it may have been edited or removed since create.
        let recorded = crate::runtime::state::exec_config(&self.root, id)?;
        let process = opts.process.clone().unwrap_or_else(|| recorded.process.clone());
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::config("process.args", "exec needs a command"));
        }
        crate::spec::config::validate_user(process.user())?;
        let linux = &recorded.linux;
        let last_cap = capabilities::last_cap();
        let caps = capabilities::of_process(&process, last_cap)?;
        let seccomp = linux.seccomp().as_ref().map(moor_seccomp::compile).transpose()?;
        let memory_policy = linux
            .memory_policy()
            .as_ref()
            .map(crate::init::mempolicy::MemPolicy::parse)
            .transpose()?;
        // The exec process's own execCPUAffinity, else the one config.json gives exec'd processes.
        let template = recorded.process.exec_cpu_affinity().as_ref();
        let affinity = crate::init::affinity::ExecAffinity::parse(process.exec_cpu_affinity().as_ref().or(template))?;
        let pidfd = sys::pidfd_open(state.pid).map_err(|_| Error::NotRunning(id.to_string()))?;
        if !state.init_alive() {
            return Err(Error::NotRunning(id.to_string()));
        }
        let ns_flags = namespaces_of(state.pid);
        let procfs = Procfs::open()?;
        let terminal = process.terminal().unwrap_or(false);
        let mut console_rx = None;
        let console = match (&opts.console_socket, terminal) {
            (Some(path), true) => Some(OwnedFd::from(
                UnixStream::connect(path).map_err(|e| Error::path("connect to console socket", path, e))?,
            )),
            (None, true) if !detach => {
                let (ours, theirs) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
                console_rx = Some(ours);
                Some(OwnedFd::from(theirs))
            }
            (None, true) => {
                return Err(Error::config(
                    "process.terminal",
                    "a detached terminal needs --console-socket",
                ))
            }
            _ => None,
        };
        let listener = crate::spawn::create::connect_listener(seccomp.as_ref())?;
        let hook_state = state.hook_state(Status::Running);
        let signals = if detach {
            None
        } else {
            Some(crate::runtime::signals::Forwarder::block()?)
        };
        let (mut err_rx, err_tx) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
        // The new process waits for one byte on `go` until the parent has put it into the
        // container's cgroup.
        let (go_rx, go_tx) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
        // With a seccomp listener, the new process hands over its notify fd through this
        // channel (see `Child::run`).
        let (notify_parent, notify_child) = match &listener {
            Some(_) => {
                let (p, c) = crate::spawn::sync::pair().map_err(|e| Error::sys("socketpair", e))?;
                (Some(p), Some(c))
            }
            None => (None, None),
        };
        let cgroup = state.cgroup();
        let (reply_rx, reply_tx) = child::seqpacket_pair()?;
        let (reply_raw, go_raw) = (reply_tx.as_raw_fd(), go_tx.as_raw_fd());
        let middle = match sys::clone3(spawner.parent_flag(), None).map_err(|e| Error::sys("clone", e))? {
            Cloned::Child => {
                drop(err_rx);
                drop(reply_rx);
                // Only the parent's copy may keep its end open: its death must be EOF to us.
                drop(notify_parent);
                let reply = (|| -> Result<child::Child> {
                    // Non-dumpable before entering the container (the new process inherits it
                    // until its execve): nothing in there may ptrace us (CVE-2016-9962).
                    crate::sys::set_non_dumpable()?;
                    // The initial CPUs hold while entering the container; the new process
                    // inherits them.
                    affinity.apply_initial()?;
                    // init's pidfd and the namespace flags that differ from ours.
                    nix::sched::setns(pidfd.as_fd(), nix::sched::CloneFlags::from_bits_retain(ns_flags))
                        .map_err(|e| Error::sys("enter the container's namespaces", e))?;
                    match sys::clone3(libc::CLONE_PARENT as u64, None)
                        .map_err(|e| Error::sys("clone into the container", e))?
                    {
                        Cloned::Child => {
                            // Only the parent may hold these: the middle's reply socket and
                            // the release pipe's write end (whose EOF means the parent died).
                            // This process never returns to where their owners drop them.
                            let _ = nix::unistd::close(reply_raw);
                            let _ = nix::unistd::close(go_raw);
                            let mut byte = [0u8; 1];
                            if (&go_rx).read(&mut byte).ok() != Some(1) {
                                // SAFETY: the parent is gone; leave quietly.
                                unsafe { libc::_exit(127) }
                            }
                            let child = crate::init::ExecInit {
                                process: &process,
                                linux,
                                memory_policy: memory_policy.as_ref(),
                                caps,
                                last_cap,
                                seccomp: seccomp.as_ref(),
                                procfs: &procfs,
                                console: console.as_ref(),
                                stdio: opts.stdio.as_ref(),
                                extra_fds: &opts.extra_fds,
                                notify: notify_child.as_ref(),
                            };
                            let e = match child.run() {
                                Ok(never) => match never {},
                                Err(e) => e,
                            };
                            let _ = sys::write_all(err_tx.as_fd(), e.to_wire().as_bytes());
                            // SAFETY: leave without running the parent's destructors.
                            unsafe { libc::_exit(127) }
                        }
                        Cloned::Parent(pid, pidfd) => Ok(child::Child { pid, pidfd }),
                    }
                })();
                child::send_reply(reply_tx.as_fd(), reply);
                // SAFETY: the middle process leaves without the parent's destructors.
                unsafe { libc::_exit(0) }
            }
            Cloned::Parent(pid, pidfd) => child::Child { pid, pidfd },
        };
        drop(err_tx);
        drop(reply_tx);
        drop(console);
        drop(notify_child);
        drop(go_rx);
        let reply = child::recv_reply(reply_rx.as_fd());
        spawner.reap(middle);
        let new = reply?;
        // Past the clone, a failure kills and reaps the new process: none is left behind.
        let released = (|| -> Result<Option<OwnedFd>> {
            let pid = new.pid;
            crate::sys::fault::point("exec.1.cloned")?;
            // The parent writes cgroup.procs: CLONE_INTO_CGROUP from inside the container's
            // cgroup namespace fails (ENOENT) when our own cgroup lies outside it.
            if let Some(cg) = &cgroup {
                cg.add_task_in(pid, &opts.sub_cgroups)?;
            }
            affinity.apply_final(pid)?;
            crate::sys::fault::point("exec.2.cgroup-joined")?;
            sys::write_all(go_tx.as_fd(), b"g").map_err(|e| Error::sys("release the exec process", e))?;
            crate::sys::fault::point("exec.3.released")?;
            let master = match console_rx {
                Some(rx) => Some(terminal::recv_fd(rx.as_fd())?),
                None => None,
            };
            if let (Some(sync), Some(listener), Some(filter)) = (&notify_parent, &listener, &seccomp) {
                // EOF: the process failed before its filter was in; the error channel says why.
                if let Ok(crate::spawn::sync::Msg::Created { seccomp_fd: Some(fd) }) = sync.recv() {
                    crate::spawn::create::send_notify_fd(pid, fd, listener, filter, &hook_state)?;
                    crate::sys::fault::point("exec.4.notify-fd-sent")?;
                    let _ = sync.send(&crate::spawn::sync::Msg::Continue);
                }
            }
            // The error channel closes at a successful execve (close-on-exec).
            let mut failure = Vec::new();
            let _ = err_rx.read_to_end(&mut failure);
            if !failure.is_empty() {
                return Err(Error::from_wire(&failure));
            }
            crate::sys::fault::point("exec.5.exec-done")?;
            if let Some(pid_file) = &opts.pid_file {
                crate::spawn::create::write_pid_file(pid_file, pid)?;
                crate::sys::fault::point("exec.6.pid-file")?;
            }
            Ok(master)
        })();
        match released {
            Ok(master) => Ok(Exec {
                process: new,
                master,
                signals,
            }),
            Err(e) => {
                spawner.kill(new);
                Err(e)
            }
        }
    }
}

/// A process `exec` started, and what a foreground exec needs to wait for it.
pub(crate) struct Exec {
    pub process: child::Child,
    /// The pty master, when moor relays the process's terminal itself.
    pub master: Option<OwnedFd>,
    pub signals: Option<crate::runtime::signals::Forwarder>,
}
