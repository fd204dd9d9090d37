//! `exec`: runs another process in a running container. A short-lived middle process enters
//! the container's namespaces through init's pidfd (one setns for all of them) and clones the
//! new process with CLONE_PARENT (so it lands in the container's pid namespace and is still
//! moor's child); that process becomes the workload exactly as init does (workload.rs). With a
//! seccomp listener, the process reports its notify fd over a [`crate::spawn::sync`] channel once its
//! filter is in, and moor takes the fd (pidfd_getfd), sends it on, and answers; the process's
//! profile need not allow sendmsg.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::Process;

use crate::error::{Error, Result};
use crate::init::capabilities::{self, Sets};
use crate::init::pty;
use crate::init::workload;
use crate::runtime::state::Status;
use crate::runtime::Runtime;
use crate::sys::procfs::Procfs;
use crate::sys::terminal::{self, console_dim};
use crate::sys::{self, Forked};

#[derive(Default)]
pub struct ExecOptions {
    pub process: Option<Process>,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
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
        let (state, _) = self.load(id)?;
        let bundle = crate::spec::config::load(&state.bundle)?;
        bundle
            .spec
            .process()
            .clone()
            .ok_or_else(|| Error::config("process", "missing"))
    }

    /// Runs a process in the container; returns its exit code (0 when detached).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let (state, status) = self.load(id)?;
        match status {
            Status::Running | Status::Created => {}
            Status::Paused if opts.ignore_paused => {}
            Status::Paused => return Err(Error::InvalidState(format!("cannot exec in a paused container {id}"))),
            _ => return Err(Error::InvalidState(format!("cannot exec in a stopped container {id}"))),
        }
        let bundle = crate::spec::config::load(&state.bundle)?;
        let process = match &opts.process {
            Some(p) => p.clone(),
            None => bundle
                .spec
                .process()
                .clone()
                .ok_or_else(|| Error::config("process", "missing"))?,
        };
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::config("process.args", "exec needs a command"));
        }
        crate::init::user::validate(process.user())?;
        crate::sys::fds::check_preserved(opts.preserve_fds)?;
        let linux = bundle.spec.linux().clone().unwrap_or_default();
        let last_cap = capabilities::last_cap();
        let caps = capabilities::of_process(&process, last_cap)?;
        let seccomp = linux.seccomp().as_ref().map(moor_seccomp::compile).transpose()?;
        let memory_policy = linux
            .memory_policy()
            .as_ref()
            .map(crate::init::mempolicy::MemPolicy::parse)
            .transpose()?;
        // The exec process's own execCPUAffinity, else the one config.json gives exec'd processes.
        let template = bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.exec_cpu_affinity().as_ref());
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
            (None, true) if !opts.detach => {
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
        let signals = if opts.detach {
            None
        } else {
            Some(crate::runtime::signals::Forwarder::block()?)
        };
        let (mut err_rx, err_tx) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
        let (mut pid_rx, pid_tx) = UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?;
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
        sys::prctl(libc::PR_SET_DUMPABLE, 0, 0).map_err(|e| Error::sys("PR_SET_DUMPABLE", e))?;

        match sys::clone3(0, None).map_err(|e| Error::sys("clone", e))? {
            Forked::Child => {
                drop(err_rx);
                drop(pid_rx);
                // Only the parent's copy may keep its end open: its death must be EOF to us.
                drop(notify_parent);
                // The initial CPUs hold while entering the container; the new process inherits them.
                if let Err(e) = affinity.apply_initial() {
                    let _ = sys::write_all(pid_tx.as_fd(), format!("error: {e}").as_bytes());
                    // SAFETY: the middle process leaves without the parent's destructors.
                    unsafe { libc::_exit(0) }
                }
                // SAFETY: setns with init's pidfd and the namespace flags that differ from ours.
                let joined = unsafe { libc::setns(pidfd.as_raw_fd(), ns_flags) } == 0;
                let reply = if !joined {
                    format!(
                        "error: enter the container's namespaces: {}",
                        std::io::Error::last_os_error()
                    )
                } else {
                    match sys::clone3(libc::CLONE_PARENT as u64, None) {
                        Ok(Forked::Child) => {
                            drop(pid_tx);
                            drop(go_tx);
                            let mut byte = [0u8; 1];
                            if (&go_rx).read(&mut byte).ok() != Some(1) {
                                // SAFETY: the parent is gone; leave quietly.
                                unsafe { libc::_exit(127) }
                            }
                            let child = Child {
                                process: &process,
                                linux: &linux,
                                memory_policy: memory_policy.as_ref(),
                                caps,
                                last_cap,
                                seccomp: seccomp.as_ref(),
                                procfs: &procfs,
                                console: console.as_ref(),
                                preserve_fds: opts.preserve_fds,
                                notify: notify_child.as_ref(),
                            };
                            let e = match child.run() {
                                Ok(never) => match never {},
                                Err(e) => e,
                            };
                            let _ = sys::write_all(err_tx.as_fd(), e.to_string().as_bytes());
                            // SAFETY: leave without running the parent's destructors.
                            unsafe { libc::_exit(127) }
                        }
                        Ok(Forked::Parent(pid)) => pid.to_string(),
                        Err(e) => format!("error: clone into the container: {e}"),
                    }
                };
                let _ = sys::write_all(pid_tx.as_fd(), reply.as_bytes());
                // SAFETY: the middle process leaves without the parent's destructors.
                unsafe { libc::_exit(0) }
            }
            Forked::Parent(middle) => {
                drop(err_tx);
                drop(pid_tx);
                drop(console);
                drop(notify_child);
                let mut reply = String::new();
                let _ = pid_rx.read_to_string(&mut reply);
                // SAFETY: reap the middle process, our child.
                unsafe { libc::waitpid(middle, std::ptr::null_mut(), 0) };
                let pid: i32 = reply
                    .parse()
                    .map_err(|_| Error::Init(reply.trim_start_matches("error: ").to_string()))?;
                drop(go_rx);
                crate::sys::fault::point("exec.1.cloned")?;
                // The parent writes cgroup.procs: CLONE_INTO_CGROUP from inside the container's
                // cgroup namespace fails (ENOENT) when our own cgroup lies outside it.
                if let Some(cg) = &cgroup {
                    if let Err(e) = cg.add_task_in(pid, &opts.sub_cgroups) {
                        // SAFETY: the new process is our child and has not run anything yet.
                        unsafe {
                            libc::kill(pid, libc::SIGKILL);
                            libc::waitpid(pid, std::ptr::null_mut(), 0);
                        }
                        return Err(e.into());
                    }
                }
                if let Err(e) = affinity.apply_final(pid) {
                    // SAFETY: the new process is our child and has not run anything yet.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                    return Err(e);
                }
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
                        let sent = crate::spawn::create::send_notify_fd(pid, fd, listener, filter, &hook_state);
                        if let Err(e) = sent.and_then(|()| crate::sys::fault::point("exec.4.notify-fd-sent")) {
                            // SAFETY: the new process is our child, waiting for our answer.
                            unsafe {
                                libc::kill(pid, libc::SIGKILL);
                                libc::waitpid(pid, std::ptr::null_mut(), 0);
                            }
                            return Err(e);
                        }
                        let _ = sync.send(&crate::spawn::sync::Msg::Continue);
                    }
                }
                // The error channel closes at a successful execve (close-on-exec).
                let mut failure = String::new();
                let _ = err_rx.read_to_string(&mut failure);
                if !failure.is_empty() {
                    // SAFETY: reap the failed process, our child.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                    return Err(Error::Init(failure));
                }
                crate::sys::fault::point("exec.5.exec-done")?;
                if let Some(pid_file) = &opts.pid_file {
                    crate::spawn::create::write_pid_file(pid_file, pid)?;
                    crate::sys::fault::point("exec.6.pid-file")?;
                }
                match signals {
                    Some(s) => s.forward_until_exit(pid, master.as_ref().map(|m| m.as_fd())),
                    None => Ok(0),
                }
            }
        }
    }
}

struct Child<'a> {
    process: &'a Process,
    linux: &'a oci_spec::runtime::Linux,
    memory_policy: Option<&'a crate::init::mempolicy::MemPolicy>,
    caps: Option<Sets>,
    last_cap: u32,
    seccomp: Option<&'a moor_seccomp::Compiled>,
    procfs: &'a Procfs,
    console: Option<&'a OwnedFd>,
    preserve_fds: u32,
    /// The channel to the parent, when the profile sends notifications to a listener.
    notify: Option<&'a crate::spawn::sync::Channel>,
}

impl Child<'_> {
    fn run(&self) -> Result<std::convert::Infallible> {
        crate::init::reset_signals();
        let pty = match self.console {
            Some(socket) => {
                let root = sys::open_tree(libc::AT_FDCWD, c"/", 0).map_err(|e| Error::sys("open /", e))?;
                let pty = pty::open_pty(root.as_fd())?;
                if let Some(size) = self.process.console_size() {
                    terminal::set_size(pty.slave.as_fd(), console_dim(size.height()), console_dim(size.width()))?;
                }
                terminal::send_fd(
                    socket.as_fd(),
                    pty.master.as_fd(),
                    b"/dev/ptmx",
                    "the pty master over the console socket",
                )?;
                Some(pty.slave)
            }
            None => None,
        };
        // The console becomes our stdio before credentials change, so it is given to the user.
        if let Some(slave) = &pty {
            pty::become_controlling(slave)?;
        }
        let env = self.process.env().clone().unwrap_or_default();
        let ready = workload::become_workload(
            self.procfs,
            &workload::Workload {
                process: self.process,
                personality: self.linux.personality().as_ref(),
                memory_policy: self.memory_policy,
                caps: self.caps,
                last_cap: self.last_cap,
                seccomp: self.seccomp,
                env: &env,
                keep_fds: self.preserve_fds,
                pty: pty.as_ref(),
            },
        )?;
        // From here on the seccomp filter may be in: only write and read. The parent takes the
        // notify fd (pidfd_getfd) and sends it to the listener, then answers; a profile need
        // not allow sendmsg. EOF: the parent died, and the process is not run.
        if let (Some(fd), Some(sync)) = (&ready.notify_fd, self.notify) {
            let created = crate::spawn::sync::Msg::Created {
                seccomp_fd: Some(fd.as_raw_fd()),
            };
            sync.send_after_filter(&created)
                .map_err(|e| Error::sys("sync with the parent", e))?;
            sync.wait_continue_filtered()
                .map_err(|e| Error::sys("wait for the exec parent (gone?)", e))?;
        }
        Err(ready.exec.run())
    }
}
