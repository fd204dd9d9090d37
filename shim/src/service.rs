//! The Task service (`containerd.task.v2.Task`) over ttrpc. Handlers run on ttrpc's threads;
//! create and start go through the moor helper (spawned before any thread), exits come from the
//! reaper thread. One shim serves every container of its group.
//!
//! Event order: TaskCreate is queued before init is handed to the reaper; a TaskExit that
//! happens while Start is running is held back until TaskStart is queued; Wait and Delete
//! answer only once TaskExit is queued, so TaskDelete always comes last.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::{self, Status};
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskIO, TaskStart};
use containerd_shim_protos::ttrpc::{self, Code, TtrpcContext};
use containerd_shim_protos::{topics, Task};
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::MessageField;

use crate::events::Event;
use crate::log;
use crate::reaper::Reaper;
use crate::server::Queue;

type RpcResult<T> = ttrpc::Result<T>;

#[derive(Clone, Copy)]
struct Exit {
    status: u32,
    at: SystemTime,
}

struct Container {
    bundle: PathBuf,
    pid: u32,
    stdin: String,
    stdout: String,
    stderr: String,
    rootfs_mounted: bool,
    /// Start is running: an exit meanwhile waits for TaskStart before its TaskExit.
    starting: bool,
    started: bool,
    exit: Option<Exit>,
    /// TaskExit is queued: Wait and Delete may answer.
    exit_published: bool,
}

/// The containers and what the reaper thread and the handlers share.
pub struct Shared {
    containers: Mutex<HashMap<String, Container>>,
    /// Ids whose Create runs: a second Create of one must not mount over its rootfs.
    creating: Mutex<HashSet<String>>,
    changed: Condvar,
    events: Queue,
}

impl Shared {
    pub fn new(events: Queue) -> Shared {
        Shared {
            containers: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
            changed: Condvar::new(),
            events,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.events
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, topic: &'static str, msg: &impl protobuf::MessageFull) {
        if let Some(event) = Event::new(topic, msg) {
            self.events.event(event);
        }
    }

    /// From the reaper: a container's init exited.
    pub fn exited(&self, id: &str, pid: i32, code: i32) {
        let mut containers = self.lock();
        let Some(c) = containers.get_mut(id) else {
            log::error(&format!("pid {pid} of unknown container {id} exited with {code}"));
            return;
        };
        c.exit = Some(Exit {
            status: u32::try_from(code).unwrap_or(255),
            at: SystemTime::now(),
        });
        if !c.starting {
            self.publish_exit(id, c);
        }
        self.changed.notify_all();
    }

    /// Start begins: from now until [`Shared::started`], an exit holds back its TaskExit.
    fn starting(&self, id: &str) -> RpcResult<u32> {
        let mut containers = self.lock();
        let c = containers.get_mut(id).ok_or_else(|| not_found(id))?;
        if c.started || c.starting {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("container {id} was already started"),
            ));
        }
        c.starting = true;
        Ok(c.pid)
    }

    /// Start ended: TaskStart if it worked, then the TaskExit held back meanwhile, if any.
    fn started(&self, id: &str, ok: bool) -> RpcResult<()> {
        let mut containers = self.lock();
        let c = containers.get_mut(id).ok_or_else(|| not_found(id))?;
        c.starting = false;
        if ok {
            c.started = true;
            let mut e = TaskStart::new();
            e.container_id = id.to_string();
            e.pid = c.pid;
            self.publish(topics::TASK_START_EVENT_TOPIC, &e);
        }
        if c.exit.is_some() && !c.exit_published {
            self.publish_exit(id, c);
            self.changed.notify_all();
        }
        Ok(())
    }

    fn publish_exit(&self, id: &str, c: &mut Container) {
        if let Some(exit) = c.exit {
            let mut e = TaskExit::new();
            e.container_id = id.to_string();
            e.id = id.to_string();
            e.pid = c.pid;
            e.exit_status = exit.status;
            e.exited_at = MessageField::some(timestamp(exit.at));
            self.publish(topics::TASK_EXIT_EVENT_TOPIC, &e);
            c.exit_published = true;
        }
    }

    /// Waits until the container's TaskExit is queued; its exit, or None if it is gone or the
    /// deadline passed.
    fn wait_exit(&self, id: &str, deadline: Option<Duration>) -> RpcResult<Exit> {
        let until = deadline.map(|d| std::time::Instant::now() + d);
        let mut containers = self.lock();
        loop {
            match containers.get(id) {
                None => return Err(not_found(id)),
                Some(c) if c.exit_published => {
                    return c
                        .exit
                        .ok_or_else(|| status(Code::INTERNAL, "exit published without exit"))
                }
                Some(_) => {}
            }
            containers = match until {
                None => self.changed.wait(containers).unwrap_or_else(|p| p.into_inner()),
                Some(until) => {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(status(Code::DEADLINE_EXCEEDED, format!("{id}: init did not exit")));
                    }
                    self.changed
                        .wait_timeout(containers, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

pub struct Service {
    helper: Mutex<Option<moor::Helper>>,
    runtime: moor::Runtime,
    shared: Arc<Shared>,
    reaper: Arc<Reaper>,
    shutdown: Mutex<mpsc::Sender<()>>,
}

impl Service {
    pub fn new(
        helper: moor::Helper,
        root: PathBuf,
        shared: Arc<Shared>,
        reaper: Arc<Reaper>,
        shutdown: mpsc::Sender<()>,
    ) -> Service {
        Service {
            helper: Mutex::new(Some(helper)),
            runtime: moor::Runtime::new(root),
            shared,
            reaper,
            shutdown: Mutex::new(shutdown),
        }
    }

    /// Ends the helper (it exits at EOF and is reaped): the last step before the shim exits.
    pub fn close(&self) {
        drop(self.helper.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    fn with_helper<T>(&self, f: impl FnOnce(&moor::Helper) -> moor::Result<T>) -> RpcResult<T> {
        let helper = self.helper.lock().unwrap_or_else(|p| p.into_inner());
        match helper.as_ref() {
            Some(h) => f(h).map_err(moor_status),
            None => Err(status(Code::UNAVAILABLE, "the shim is shutting down")),
        }
    }

    fn create_task(&self, req: &api::CreateTaskRequest) -> RpcResult<u32> {
        if req.terminal {
            return Err(unimplemented("Create with a terminal"));
        }
        if !req.checkpoint.is_empty() {
            return Err(unimplemented("Create from a checkpoint"));
        }
        let claimed = {
            let containers = self.shared.lock();
            let mut creating = self.shared.creating.lock().unwrap_or_else(|p| p.into_inner());
            !containers.contains_key(&req.id) && creating.insert(req.id.clone())
        };
        if !claimed {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("container {} already exists", req.id),
            ));
        }
        let created = self.create_claimed(req);
        self.shared
            .creating
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&req.id);
        created
    }

    fn create_claimed(&self, req: &api::CreateTaskRequest) -> RpcResult<u32> {
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        if !req.rootfs.is_empty() {
            crate::mount::mount_all(&req.rootfs, &rootfs).map_err(|e| status(Code::UNKNOWN, e))?;
        }
        let created = open_stdio(req).and_then(|stdio| {
            let opts = moor::CreateOptions {
                bundle: bundle.clone(),
                stdio: Some(stdio),
                ..Default::default()
            };
            // The stdio fds are dropped with `opts` once the helper has passed them on: the
            // readers see EOF when the container's copies close.
            self.with_helper(|h| h.create(&req.id, &opts))
        });
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                if !req.rootfs.is_empty() {
                    let _ = crate::mount::unmount_all(&rootfs);
                }
                return Err(e);
            }
        };
        let pid = u32::try_from(created.init.pid).unwrap_or(0);
        let mut containers = self.shared.lock();
        containers.insert(
            req.id.clone(),
            Container {
                bundle,
                pid,
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                rootfs_mounted: !req.rootfs.is_empty(),
                starting: false,
                started: false,
                exit: None,
                exit_published: false,
            },
        );
        let mut e = TaskCreate::new();
        e.container_id = req.id.clone();
        e.bundle = req.bundle.clone();
        e.rootfs = req.rootfs.clone();
        let mut io = TaskIO::new();
        io.stdin = req.stdin.clone();
        io.stdout = req.stdout.clone();
        io.stderr = req.stderr.clone();
        io.terminal = req.terminal;
        e.io = MessageField::some(io);
        e.pid = pid;
        self.shared.publish(topics::TASK_CREATE_EVENT_TOPIC, &e);
        // After TaskCreate is queued: its TaskExit can only come later.
        self.reaper.watch(&req.id, created.init);
        Ok(pid)
    }

    fn start_task(&self, id: &str) -> RpcResult<u32> {
        let pid = self.shared.starting(id)?;
        let started = self.with_helper(|h| h.start(id));
        self.shared.started(id, started.is_ok())?;
        started.map(|()| pid)
    }

    fn delete_task(&self, id: &str) -> RpcResult<api::DeleteResponse> {
        let (created_only, exited) = {
            let containers = self.shared.lock();
            let c = containers.get(id).ok_or_else(|| not_found(id))?;
            (!c.started && !c.starting, c.exit_published)
        };
        if !exited {
            if !created_only {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("cannot delete container {id}: it is running"),
                ));
            }
            // Never started: the library kills init; its exit comes through the reaper.
            self.with_helper(|h| h.delete(id, true))?;
        }
        let exit = self.shared.wait_exit(id, Some(Duration::from_secs(10)))?;
        self.with_helper(|h| h.delete(id, true))?;
        let c = self.shared.lock().remove(id).ok_or_else(|| not_found(id))?;
        if c.rootfs_mounted {
            if let Err(e) = crate::mount::unmount_all(&c.bundle.join("rootfs")) {
                log::error(&format!("{id}: {e}"));
            }
        }
        let mut e = TaskDelete::new();
        e.container_id = id.to_string();
        e.id = id.to_string();
        e.pid = c.pid;
        e.exit_status = exit.status;
        e.exited_at = MessageField::some(timestamp(exit.at));
        self.shared.publish(topics::TASK_DELETE_EVENT_TOPIC, &e);
        self.shared.changed.notify_all();
        let mut r = api::DeleteResponse::new();
        r.pid = c.pid;
        r.exit_status = exit.status;
        r.exited_at = MessageField::some(timestamp(exit.at));
        Ok(r)
    }
}

fn no_exec(id: &str, exec_id: &str) -> RpcResult<()> {
    if exec_id.is_empty() {
        Ok(())
    } else {
        Err(status(
            Code::NOT_FOUND,
            format!("exec {exec_id} of {id} does not exist"),
        ))
    }
}

impl Task for Service {
    fn connect(&self, _ctx: &TtrpcContext, req: api::ConnectRequest) -> RpcResult<api::ConnectResponse> {
        let mut r = api::ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.shared.lock().get(&req.id).map_or(0, |c| c.pid);
        r.version = env!("CARGO_PKG_VERSION").to_string();
        Ok(r)
    }

    fn create(&self, _ctx: &TtrpcContext, req: api::CreateTaskRequest) -> RpcResult<api::CreateTaskResponse> {
        log::debug(&format!("create {} in {}", req.id, req.bundle));
        let pid = self.create_task(&req)?;
        let mut r = api::CreateTaskResponse::new();
        r.pid = pid;
        Ok(r)
    }

    fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> RpcResult<api::StartResponse> {
        no_exec(&req.id, &req.exec_id)?;
        let pid = self.start_task(&req.id)?;
        let mut r = api::StartResponse::new();
        r.pid = pid;
        Ok(r)
    }

    fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> RpcResult<api::StateResponse> {
        no_exec(&req.id, &req.exec_id)?;
        let (mut r, live) = {
            let containers = self.shared.lock();
            let c = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            let mut r = api::StateResponse::new();
            r.id = req.id.clone();
            r.bundle = c.bundle.display().to_string();
            r.pid = c.pid;
            r.stdin = c.stdin.clone();
            r.stdout = c.stdout.clone();
            r.stderr = c.stderr.clone();
            let status = match c.exit {
                Some(exit) => {
                    r.exit_status = exit.status;
                    r.exited_at = MessageField::some(timestamp(exit.at));
                    Some(Status::STOPPED)
                }
                None if !c.started => Some(Status::CREATED),
                None => None,
            };
            if let Some(s) = status {
                r.status = s.into();
            }
            (r, status.is_none())
        };
        if live {
            // Running or paused: only the library can tell (the cgroup's freezer).
            let state = self.with_helper(|h| h.state(&req.id))?;
            r.status = match state.status {
                moor::Status::Paused => Status::PAUSED,
                moor::Status::Stopped => Status::STOPPED,
                moor::Status::Created | moor::Status::Creating => Status::CREATED,
                moor::Status::Running => Status::RUNNING,
            }
            .into();
        }
        Ok(r)
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> RpcResult<api::WaitResponse> {
        no_exec(&req.id, &req.exec_id)?;
        let exit = self.shared.wait_exit(&req.id, None)?;
        let mut r = api::WaitResponse::new();
        r.exit_status = exit.status;
        r.exited_at = MessageField::some(timestamp(exit.at));
        Ok(r)
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> RpcResult<api::Empty> {
        no_exec(&req.id, &req.exec_id)?;
        {
            let containers = self.shared.lock();
            let c = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            if c.exit.is_some() && !req.all {
                return Err(status(Code::NOT_FOUND, "process already finished"));
            }
        }
        let signal = i32::try_from(req.signal)
            .map_err(|_| status(Code::INVALID_ARGUMENT, format!("signal {} out of range", req.signal)))?;
        self.with_helper(|h| h.kill(&req.id, signal, req.all))?;
        Ok(api::Empty::new())
    }

    fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> RpcResult<api::DeleteResponse> {
        no_exec(&req.id, &req.exec_id)?;
        self.delete_task(&req.id)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> RpcResult<api::PidsResponse> {
        let init = self.shared.lock().get(&req.id).ok_or_else(|| not_found(&req.id))?.pid;
        let pids = match self.runtime.load(&req.id) {
            Ok((state, _)) => state.cgroup().and_then(|c| c.pids().ok()),
            Err(e) => return Err(moor_status(e)),
        };
        let pids = pids.unwrap_or_else(|| i32::try_from(init).into_iter().collect());
        let mut r = api::PidsResponse::new();
        for pid in pids {
            let mut p = api::ProcessInfo::new();
            p.pid = u32::try_from(pid).unwrap_or(0);
            r.processes.push(p);
        }
        Ok(r)
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: api::ShutdownRequest) -> RpcResult<api::Empty> {
        // The shim serves its whole group: it stays while a container is left.
        if req.now || self.shared.lock().is_empty() {
            let _ = self.shutdown.lock().unwrap_or_else(|p| p.into_inner()).send(());
        }
        Ok(api::Empty::new())
    }

    fn pause(&self, _ctx: &TtrpcContext, _req: api::PauseRequest) -> RpcResult<api::Empty> {
        Err(unimplemented("Pause"))
    }

    fn resume(&self, _ctx: &TtrpcContext, _req: api::ResumeRequest) -> RpcResult<api::Empty> {
        Err(unimplemented("Resume"))
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, _req: api::CheckpointTaskRequest) -> RpcResult<api::Empty> {
        Err(unimplemented("Checkpoint"))
    }

    fn exec(&self, _ctx: &TtrpcContext, _req: api::ExecProcessRequest) -> RpcResult<api::Empty> {
        Err(unimplemented("Exec"))
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, _req: api::ResizePtyRequest) -> RpcResult<api::Empty> {
        Err(unimplemented("ResizePty"))
    }

    fn close_io(&self, _ctx: &TtrpcContext, _req: api::CloseIORequest) -> RpcResult<api::Empty> {
        Err(unimplemented("CloseIO"))
    }

    fn update(&self, _ctx: &TtrpcContext, _req: api::UpdateTaskRequest) -> RpcResult<api::Empty> {
        Err(unimplemented("Update"))
    }

    fn stats(&self, _ctx: &TtrpcContext, _req: api::StatsRequest) -> RpcResult<api::StatsResponse> {
        Err(unimplemented("Stats"))
    }
}

/// The container's stdio from the request's fifo paths (empty: /dev/null). The fifos' other
/// ends are already open (containerd's client opens them before Create), so non-blocking opens
/// succeed at once; the fds are made blocking again for the container.
fn open_stdio(req: &api::CreateTaskRequest) -> RpcResult<moor::Stdio> {
    fn open(path: &str, write: bool) -> RpcResult<OwnedFd> {
        if path.contains("://") {
            return Err(unimplemented("stdio log URIs (binary://, file://)"));
        }
        let path = if path.is_empty() { "/dev/null" } else { path };
        let file = std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(Path::new(path))
            .map_err(|e| status(Code::UNKNOWN, format!("open stdio {path}: {e}")))?;
        let fd = OwnedFd::from(file);
        // SAFETY: F_GETFL/F_SETFL on an fd we own.
        let blocking = unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
        };
        if !blocking {
            let e = std::io::Error::last_os_error();
            return Err(status(Code::UNKNOWN, format!("make stdio {path} blocking: {e}")));
        }
        Ok(fd)
    }
    Ok(moor::Stdio {
        stdin: open(&req.stdin, false)?,
        stdout: open(&req.stdout, true)?,
        stderr: open(&req.stderr, true)?,
    })
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    ts.nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    ts
}

fn status(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

fn not_found(id: &str) -> ttrpc::Error {
    status(Code::NOT_FOUND, format!("container {id} does not exist"))
}

fn unimplemented(what: &str) -> ttrpc::Error {
    status(
        Code::UNIMPLEMENTED,
        format!("{what}: not implemented by containerd-shim-moor-v2 yet"),
    )
}

/// The library's error kinds as the gRPC codes containerd turns back into its errdefs.
fn moor_status(e: moor::Error) -> ttrpc::Error {
    let code = match &e {
        moor::Error::DoesNotExist(_) => Code::NOT_FOUND,
        moor::Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
        moor::Error::NotRunning(_) | moor::Error::InvalidState(_) => Code::FAILED_PRECONDITION,
        moor::Error::Config { .. } | moor::Error::InvalidId { .. } => Code::INVALID_ARGUMENT,
        moor::Error::HelperGone(_) => Code::UNAVAILABLE,
        _ => Code::UNKNOWN,
    };
    status(code, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Item;

    fn shared_with(id: &str) -> (Shared, mpsc::Receiver<Item>) {
        let (tx, rx) = mpsc::channel();
        let shared = Shared::new(Queue::new(tx));
        shared.lock().insert(
            id.to_string(),
            Container {
                bundle: PathBuf::from("/b"),
                pid: 42,
                stdin: String::new(),
                stdout: String::new(),
                stderr: String::new(),
                rootfs_mounted: false,
                starting: false,
                started: false,
                exit: None,
                exit_published: false,
            },
        );
        (shared, rx)
    }

    fn topics(rx: &mpsc::Receiver<Item>) -> Vec<&'static str> {
        rx.try_iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e.topic),
                Item::Flush(_) => None,
            })
            .collect()
    }

    #[test]
    fn an_exit_during_start_comes_after_task_start() {
        let (shared, rx) = shared_with("c");
        assert_eq!(shared.starting("c").unwrap(), 42);
        shared.exited("c", 42, 0);
        assert!(topics(&rx).is_empty(), "TaskExit before TaskStart");
        // Wait does not answer before the TaskExit is queued.
        assert!(shared.wait_exit("c", Some(Duration::from_millis(10))).is_err());
        shared.started("c", true).unwrap();
        assert_eq!(topics(&rx), ["/tasks/start", "/tasks/exit"]);
        assert_eq!(shared.wait_exit("c", None).unwrap().status, 0);
        assert!(shared.starting("c").is_err(), "a second start");
    }

    #[test]
    fn an_exit_after_start_is_published_at_once_with_its_status() {
        let (shared, rx) = shared_with("c");
        shared.starting("c").unwrap();
        shared.started("c", true).unwrap();
        shared.exited("c", 42, 137);
        assert_eq!(topics(&rx), ["/tasks/start", "/tasks/exit"]);
        assert_eq!(shared.wait_exit("c", None).unwrap().status, 137);
    }

    #[test]
    fn a_failed_start_still_releases_the_exit() {
        let (shared, rx) = shared_with("c");
        shared.starting("c").unwrap();
        shared.exited("c", 42, 1);
        shared.started("c", false).unwrap();
        assert_eq!(topics(&rx), ["/tasks/exit"]);
        assert!(shared.wait_exit("unknown", None).is_err());
    }
}
