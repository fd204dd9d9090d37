//! The supported way for a multi-threaded caller (a shim, a pod agent) to use moor: a
//! single-threaded helper process, forked before the caller starts threads, that runs the
//! operations which clone (create, exec) in itself on the caller's behalf.
//!
//! The helper clones the processes it starts with CLONE_PARENT, so they are children of the
//! caller, who waits for their exit statuses through the pidfds the replies carry. A process
//! the helper had to give up (a middle process that joined namespaces, one killed after a
//! failure) is a child of the caller too: the client reaps it before the call returns.
//!
//! Requests and replies are serde_json messages over a SOCK_SEQPACKET socketpair (one message
//! each, close-on-exec); fds travel with SCM_RIGHTS: stdio and extra fds to the helper, pidfds
//! back. The helper answers one request at a time; [`Helper`] serialises its callers with a
//! mutex. Closing the socket (dropping [`Helper`]) makes the helper exit.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runtime::state::{ContainerState, OciState};
use crate::runtime::{Created, Runtime};
use crate::spawn::child::{self, Child, Spawner};
use crate::spawn::create::CreateOptions;
use crate::spawn::exec::ExecOptions;
use crate::sys::fds::Stdio;
use crate::sys::{self, Cloned};

/// A handle on a helper process. Every method may be called from any thread.
pub struct Helper {
    /// None once the helper is known to be gone.
    conn: Mutex<Option<OwnedFd>>,
    process: Child,
}

#[derive(Serialize, Deserialize)]
enum Request {
    Create { id: String, opts: CreateWire },
    Start { id: String },
    Exec { id: String, opts: Box<ExecWire> },
    Kill { id: String, signal: i32, all: bool },
    Delete { id: String, force: bool },
    State { id: String },
}

/// [`CreateOptions`] without its fds, which follow the message: stdio (3, if `stdio`), then
/// `extra_fds` more.
#[derive(Serialize, Deserialize)]
struct CreateWire {
    bundle: PathBuf,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    no_pivot: bool,
    no_new_keyring: bool,
    stdio: bool,
    extra_fds: usize,
    listen_fds: u32,
    systemd_cgroup: bool,
    rootless: crate::runtime::rootless::Mode,
}

/// [`ExecOptions`] without its fds (as in [`CreateWire`]); an exec through the helper is
/// always detached.
#[derive(Serialize, Deserialize)]
struct ExecWire {
    process: Option<oci_spec::runtime::Process>,
    console_socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    stdio: bool,
    extra_fds: usize,
    ignore_paused: bool,
    sub_cgroups: moor_cgroups::SubCgroups,
}

#[derive(Serialize, Deserialize)]
enum Answer {
    /// The pidfd of init comes with it.
    Created {
        state: Box<ContainerState>,
        pid: i32,
    },
    /// The pidfd of the exec'd process comes with it.
    Started {
        pid: i32,
    },
    State(Box<OciState>),
    Done,
}

/// The error kinds a caller matches on; the others cross as their text.
#[derive(Serialize, Deserialize)]
enum WireError {
    DoesNotExist(String),
    AlreadyExists(String),
    NotRunning(String),
    InvalidState(String),
    Config { field: String, reason: String },
    Init { kind: crate::error::Kind, message: String },
    ThreadedCaller { threads: usize },
    Other(String),
}

#[derive(Serialize, Deserialize)]
struct Reply {
    result: std::result::Result<Answer, WireError>,
    /// Pids of processes the caller must reap; their pidfds follow the answer's own.
    orphans: Vec<i32>,
}

impl From<Error> for WireError {
    fn from(e: Error) -> WireError {
        match e {
            Error::DoesNotExist(id) => WireError::DoesNotExist(id),
            Error::AlreadyExists(id) => WireError::AlreadyExists(id),
            Error::NotRunning(id) => WireError::NotRunning(id),
            Error::InvalidState(s) => WireError::InvalidState(s),
            Error::Config { field, reason } => WireError::Config { field, reason },
            Error::Init { kind, message } => WireError::Init { kind, message },
            Error::ThreadedCaller { threads } => WireError::ThreadedCaller { threads },
            e => WireError::Other(e.to_string()),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Error {
        match e {
            WireError::DoesNotExist(id) => Error::DoesNotExist(id),
            WireError::AlreadyExists(id) => Error::AlreadyExists(id),
            WireError::NotRunning(id) => Error::NotRunning(id),
            WireError::InvalidState(s) => Error::InvalidState(s),
            WireError::Config { field, reason } => Error::Config { field, reason },
            WireError::Init { kind, message } => Error::Init { kind, message },
            WireError::ThreadedCaller { threads } => Error::ThreadedCaller { threads },
            WireError::Other(s) => Error::Remote(s),
        }
    }
}

impl Helper {
    /// Forks the helper for the state directory `root`. Call it while the process is still
    /// single-threaded (before starting any thread), else [`Error::ThreadedCaller`]. The helper
    /// keeps only its socket and fds 0-2, which container processes get when no stdio is given.
    /// The caller must not ignore SIGCHLD (SIG_IGN would reap its new children before it can
    /// wait for them).
    pub fn spawn(root: impl Into<PathBuf>) -> Result<Helper> {
        child::ensure_single_threaded()?;
        let root = root.into();
        let (ours, theirs) = child::seqpacket_pair()?;
        match sys::clone3(0, None).map_err(|e| Error::sys("clone the moor helper", e))? {
            Cloned::Child => {
                drop(ours);
                serve(Runtime::new(root), theirs)
            }
            Cloned::Parent(pid, pidfd) => Ok(Helper {
                conn: Mutex::new(Some(ours)),
                process: Child { pid, pidfd },
            }),
        }
    }

    /// The helper's pid (a child of the caller).
    pub fn pid(&self) -> i32 {
        self.process.pid
    }

    /// [`Runtime::create`], in the helper: init is the caller's child.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Created> {
        let wire = CreateWire {
            bundle: opts.bundle.clone(),
            pid_file: opts.pid_file.clone(),
            console_socket: opts.console_socket.clone(),
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            stdio: opts.stdio.is_some(),
            extra_fds: opts.extra_fds.len(),
            listen_fds: opts.listen_fds,
            systemd_cgroup: opts.systemd_cgroup,
            rootless: opts.rootless,
        };
        let fds = fds_of(opts.stdio.as_ref(), &opts.extra_fds);
        let request = Request::Create {
            id: id.to_string(),
            opts: wire,
        };
        match self.call(&request, &fds)? {
            (Answer::Created { state, pid }, Some(pidfd)) => Ok(Created {
                state: *state,
                init: Child { pid, pidfd },
            }),
            _ => Err(self.confused()),
        }
    }

    /// [`Runtime::start`].
    pub fn start(&self, id: &str) -> Result<()> {
        self.done(&Request::Start { id: id.to_string() })
    }

    /// [`Runtime::exec_detached`], in the helper: the process is the caller's child.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<Child> {
        let wire = ExecWire {
            process: opts.process.clone(),
            console_socket: opts.console_socket.clone(),
            pid_file: opts.pid_file.clone(),
            stdio: opts.stdio.is_some(),
            extra_fds: opts.extra_fds.len(),
            ignore_paused: opts.ignore_paused,
            sub_cgroups: opts.sub_cgroups.clone(),
        };
        let fds = fds_of(opts.stdio.as_ref(), &opts.extra_fds);
        let request = Request::Exec {
            id: id.to_string(),
            opts: Box::new(wire),
        };
        match self.call(&request, &fds)? {
            (Answer::Started { pid }, Some(pidfd)) => Ok(Child { pid, pidfd }),
            _ => Err(self.confused()),
        }
    }

    /// [`Runtime::kill`].
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        self.done(&Request::Kill {
            id: id.to_string(),
            signal,
            all,
        })
    }

    /// [`Runtime::delete`].
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        self.done(&Request::Delete {
            id: id.to_string(),
            force,
        })
    }

    /// [`Runtime::state`].
    pub fn state(&self, id: &str) -> Result<OciState> {
        match self.call(&Request::State { id: id.to_string() }, &[])? {
            (Answer::State(s), None) => Ok(*s),
            _ => Err(self.confused()),
        }
    }

    fn done(&self, request: &Request) -> Result<()> {
        match self.call(request, &[])? {
            (Answer::Done, None) => Ok(()),
            _ => Err(self.confused()),
        }
    }

    fn confused(&self) -> Error {
        Error::HelperGone(format!(
            "pid {}: an answer that does not fit the request",
            self.process.pid
        ))
    }

    /// One request and its reply. The processes the reply names as orphans are reaped here.
    fn call(&self, request: &Request, fds: &[RawFd]) -> Result<(Answer, Option<OwnedFd>)> {
        let data = serde_json::to_vec(request).map_err(|e| Error::sys("encode a helper request", e))?;
        let (reply, mut got) = {
            let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some(socket) = conn.as_ref() else {
                return Err(Error::HelperGone(format!("pid {} is gone", self.process.pid)));
            };
            let exchanged = child::send_msg(socket.as_fd(), &data, fds).and_then(|()| child::recv_msg(socket.as_fd()));
            match exchanged {
                Ok(Some(reply)) => reply,
                Ok(None) => {
                    *conn = None;
                    return Err(Error::HelperGone(format!("pid {} exited", self.process.pid)));
                }
                Err(e) => {
                    *conn = None;
                    return Err(Error::HelperGone(format!("pid {}: {e}", self.process.pid)));
                }
            }
        };
        let reply: Reply = serde_json::from_slice(&reply)
            .map_err(|e| Error::HelperGone(format!("pid {}: bad reply: {e}", self.process.pid)))?;
        let with_pidfd = matches!(reply.result, Ok(Answer::Created { .. }) | Ok(Answer::Started { .. }));
        let own = if with_pidfd && !got.is_empty() {
            Some(got.remove(0))
        } else {
            None
        };
        for (pid, pidfd) in reply.orphans.into_iter().zip(got) {
            let _ = Child { pid, pidfd }.wait();
        }
        Ok((reply.result.map_err(Error::from)?, own))
    }
}

impl Drop for Helper {
    /// Closes the socket: the helper exits at EOF (it is idle, no call can be running). It is
    /// reaped here, killed first if it has not exited within 10 s.
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(conn.take());
        if !sys::pidfd_wait_exit(self.process.pidfd.as_fd(), 10_000).unwrap_or(false) {
            let _ = self.process.signal(libc::SIGKILL);
        }
        let _ = self.process.wait();
    }
}

fn fds_of(stdio: Option<&Stdio>, extra: &[OwnedFd]) -> Vec<RawFd> {
    let mut fds = Vec::new();
    if let Some(s) = stdio {
        fds.extend([s.stdin.as_raw_fd(), s.stdout.as_raw_fd(), s.stderr.as_raw_fd()]);
    }
    fds.extend(extra.iter().map(|fd| fd.as_raw_fd()));
    fds
}

/// Splits received fds into stdio (if sent) and the extra fds, checking the count.
fn split_fds(mut fds: Vec<OwnedFd>, stdio: bool, extra: usize) -> Result<(Option<Stdio>, Vec<OwnedFd>)> {
    if fds.len() != extra + if stdio { 3 } else { 0 } {
        return Err(Error::Remote(format!(
            "helper: {} fds arrived with the request",
            fds.len()
        )));
    }
    let stdio = if stdio {
        let mut s = fds.drain(..3);
        match (s.next(), s.next(), s.next()) {
            (Some(stdin), Some(stdout), Some(stderr)) => Some(Stdio { stdin, stdout, stderr }),
            _ => None,
        }
    } else {
        None
    };
    Ok((stdio, fds))
}

/// The helper's life: answer requests until EOF, then exit. Never returns into the caller's
/// code (a panic ends the helper too).
fn serve(rt: Runtime, socket: OwnedFd) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Only stdio and the socket: the caller's other fds (pipes whose EOF it waits for,
        // listening sockets) must not live on in the helper or reach its containers.
        let keep = libc::c_uint::try_from(socket.as_raw_fd()).unwrap_or(0);
        // SAFETY: closing fds of this fresh copy of the caller, none of which it uses.
        unsafe {
            if keep > 3 {
                libc::close_range(3, keep - 1, 0);
            }
            libc::close_range((keep + 1).max(3), libc::c_uint::MAX, 0);
        }
        // The caller's log sink may write to an fd just closed (and soon reused): the helper's
        // warnings go to its stderr, the caller's at the spawn.
        crate::log_to_stderr();
        crate::sys::reset_signals();
        let _ = nix::sys::prctl::set_name(c"moor-helper");
        loop {
            let (data, fds) = match child::recv_msg(socket.as_fd()) {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => return 0,
            };
            let mut spawner = Spawner {
                siblings: true,
                orphans: Vec::new(),
            };
            let (result, pidfd) = match serde_json::from_slice::<Request>(&data) {
                Ok(request) => match handle(&rt, request, fds, &mut spawner) {
                    Ok((answer, pidfd)) => (Ok(answer), pidfd),
                    Err(e) => (Err(WireError::from(e)), None),
                },
                Err(e) => (Err(WireError::Other(format!("helper: bad request: {e}"))), None),
            };
            let reply = Reply {
                result,
                orphans: spawner.orphans.iter().map(|c| c.pid).collect(),
            };
            let mut fds: Vec<RawFd> = pidfd.iter().map(|fd| fd.as_raw_fd()).collect();
            fds.extend(spawner.orphans.iter().map(|c| c.pidfd.as_raw_fd()));
            let sent = serde_json::to_vec(&reply)
                .map_err(std::io::Error::from)
                .and_then(|data| child::send_msg(socket.as_fd(), &data, &fds));
            if sent.is_err() {
                return 1;
            }
        }
    }));
    // SAFETY: leave without running the destructors of the caller's copy.
    unsafe { libc::_exit(code.unwrap_or(2)) }
}

fn handle(
    rt: &Runtime,
    request: Request,
    fds: Vec<OwnedFd>,
    spawner: &mut Spawner,
) -> Result<(Answer, Option<OwnedFd>)> {
    match request {
        Request::Create { id, opts: w } => {
            let (stdio, extra_fds) = split_fds(fds, w.stdio, w.extra_fds)?;
            let opts = CreateOptions {
                bundle: w.bundle,
                pid_file: w.pid_file,
                console_socket: w.console_socket,
                no_pivot: w.no_pivot,
                no_new_keyring: w.no_new_keyring,
                stdio,
                extra_fds,
                listen_fds: w.listen_fds,
                systemd_cgroup: w.systemd_cgroup,
                rootless: w.rootless,
            };
            let (state, init) = crate::spawn::create::create(&rt.root, &id, &opts, None, spawner)?;
            Ok((
                Answer::Created {
                    state: Box::new(state),
                    pid: init.pid,
                },
                Some(init.pidfd),
            ))
        }
        Request::Exec { id, opts: w } => {
            let (stdio, extra_fds) = split_fds(fds, w.stdio, w.extra_fds)?;
            let opts = ExecOptions {
                process: w.process,
                console_socket: w.console_socket,
                pid_file: w.pid_file,
                detach: true,
                stdio,
                extra_fds,
                ignore_paused: w.ignore_paused,
                sub_cgroups: w.sub_cgroups,
            };
            let exec = rt.spawn_exec(&id, &opts, true, spawner)?;
            Ok((Answer::Started { pid: exec.process.pid }, Some(exec.process.pidfd)))
        }
        Request::Start { id } => rt.start(&id).map(|()| (Answer::Done, None)),
        Request::Kill { id, signal, all } => rt.kill(&id, signal, all).map(|()| (Answer::Done, None)),
        Request::Delete { id, force } => rt.delete(&id, force).map(|()| (Answer::Done, None)),
        Request::State { id } => rt.state(&id).map(|s| (Answer::State(Box::new(s)), None)),
    }
}
