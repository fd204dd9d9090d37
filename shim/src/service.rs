//! The Task service (`containerd.task.v2.Task`) over ttrpc. Handlers run on ttrpc's threads;
//! create and exec go through the moor helper (spawned before any thread), exits come from the
//! reaper thread, the order of events is kept by the table (table.rs). One shim serves every
//! container of its group.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::api::{self, Status};
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExecAdded, TaskIO, TaskPaused, TaskResumed};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::ttrpc::{Code, TtrpcContext};
use containerd_shim_protos::{topics, Task};
use protobuf::MessageField;

use crate::io::{self, ProcIo};
use crate::log;
use crate::reaper::{Reaper, Watch};
use crate::rpc::{moor_status, not_found, status, timestamp, unimplemented, RpcResult};
use crate::table::{Container, ExecProc, Proc, ProcKey, Table};

pub struct Service {
    helper: Mutex<Option<moor::Helper>>,
    runtime: moor::Runtime,
    namespace: String,
    table: Arc<Table>,
    reaper: Arc<Reaper>,
    shutdown: Mutex<mpsc::Sender<()>>,
}

impl Service {
    pub fn new(
        helper: moor::Helper,
        root: PathBuf,
        namespace: String,
        table: Arc<Table>,
        reaper: Arc<Reaper>,
        shutdown: mpsc::Sender<()>,
    ) -> Service {
        Service {
            helper: Mutex::new(Some(helper)),
            runtime: moor::Runtime::new(root),
            namespace,
            table,
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
        if !req.checkpoint.is_empty() {
            // The restore hook: `moor restore` through the helper, once the library has it.
            return Err(unimplemented("Create from a checkpoint (restore)"));
        }
        let claimed = {
            let containers = self.table.lock();
            let mut creating = self.table.creating.lock().unwrap_or_else(|p| p.into_inner());
            !containers.contains_key(&req.id) && creating.insert(req.id.clone())
        };
        if !claimed {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("container {} already exists", req.id),
            ));
        }
        let created = self.create_claimed(req);
        self.table
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
        let key = (req.id.clone(), String::new());
        let created = self
            .open_io(&key, &req.stdin, &req.stdout, &req.stderr, req.terminal)
            .and_then(|mut pio| {
                let opts = moor::CreateOptions {
                    bundle: bundle.clone(),
                    stdio: pio.stdio.take(),
                    console_socket: pio.console.as_ref().map(|c| c.path.clone()),
                    ..Default::default()
                };
                // The stdio fds are dropped with `opts` once the helper has passed them on: the
                // readers see EOF when the container's copies close.
                let created = self.with_helper(|h| h.create(&req.id, &opts))?;
                drop(opts);
                match pio.terminal(&key) {
                    Ok(tty) => Ok((created, pio, tty)),
                    Err(e) => {
                        let _ = self.with_helper(|h| h.delete(&req.id, true));
                        let _ = created.init.wait();
                        Err(e)
                    }
                }
            });
        let (created, pio, tty) = match created {
            Ok(c) => c,
            Err(e) => {
                if !req.rootfs.is_empty() {
                    let _ = crate::mount::unmount_all(&rootfs);
                }
                return Err(e);
            }
        };
        let pid = u32::try_from(created.init.pid).unwrap_or(0);
        let mut containers = self.table.lock();
        containers.insert(
            req.id.clone(),
            Container {
                bundle,
                rootfs_mounted: !req.rootfs.is_empty(),
                init: Proc {
                    pid,
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    console: tty.as_ref().and_then(|(m, _)| m.try_clone().ok()),
                    ..Default::default()
                },
                execs: Default::default(),
            },
        );
        drop(containers);
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
        self.table.publish(topics::TASK_CREATE_EVENT_TOPIC, &e);
        // Before init is watched: its OOM is checked when it exits.
        match self.runtime.oom_watcher(&req.id) {
            Ok(w) => self.reaper.watch(Watch::Oom(req.id.clone(), w)),
            Err(e) => log::debug(&format!("{}: no OOM events: {e}", req.id)),
        }
        self.watch_io(pio, tty);
        // After TaskCreate is queued: its TaskExit can only come later.
        self.reaper.watch(Watch::Proc(key, created.init));
        Ok(pid)
    }

    fn start_init(&self, id: &str) -> RpcResult<u32> {
        let pid = self.table.starting(id, "")?;
        let started = self.with_helper(|h| h.start(id));
        self.table.started(id, "", started.is_ok().then_some(pid))?;
        started.map(|()| pid)
    }

    /// Starts an exec'd process: the library creates and starts it in one step.
    fn start_exec(&self, id: &str, exec_id: &str) -> RpcResult<u32> {
        self.table.starting(id, exec_id)?;
        let spawned = self.spawn_exec(id, exec_id);
        let pid = spawned.as_ref().ok().map(|c| u32::try_from(c.pid).unwrap_or(0));
        if let Ok(child) = &spawned {
            // Kill finds the pidfd from now on.
            if let Some(e) = self.table.lock().get_mut(id).and_then(|c| c.execs.get_mut(exec_id)) {
                e.pidfd = child.pidfd.as_fd().try_clone_to_owned().ok();
            }
        }
        if let Err(e) = self.table.started(id, exec_id, pid) {
            // The exec was deleted meanwhile: its process must not run on unknown.
            if let Ok(child) = spawned {
                let _ = child.signal(libc::SIGKILL);
                let _ = child.wait();
            }
            return Err(e);
        }
        let child = spawned?;
        let pid = u32::try_from(child.pid).unwrap_or(0);
        // After TaskExecStarted is queued: its TaskExit can only come later.
        self.reaper
            .watch(Watch::Proc((id.to_string(), exec_id.to_string()), child));
        Ok(pid)
    }

    fn spawn_exec(&self, id: &str, exec_id: &str) -> RpcResult<moor::Child> {
        let (spec, stdin, stdout, stderr) = {
            let containers = self.table.lock();
            let e = containers
                .get(id)
                .and_then(|c| c.execs.get(exec_id))
                .ok_or_else(|| not_found(id, exec_id))?;
            let p = &e.proc;
            (e.spec.clone(), p.stdin.clone(), p.stdout.clone(), p.stderr.clone())
        };
        let key = (id.to_string(), exec_id.to_string());
        let terminal = spec.terminal().unwrap_or(false);
        let mut pio = self.open_io(&key, &stdin, &stdout, &stderr, terminal)?;
        let opts = moor::ExecOptions {
            process: Some(spec),
            detach: true,
            stdio: pio.stdio.take(),
            console_socket: pio.console.as_ref().map(|c| c.path.clone()),
            ..Default::default()
        };
        let child = self.with_helper(|h| h.exec(id, &opts))?;
        drop(opts);
        let tty = match pio.terminal(&key) {
            Ok(t) => t,
            Err(e) => {
                let _ = child.signal(libc::SIGKILL);
                let _ = child.wait();
                return Err(e);
            }
        };
        if let Some((master, _)) = &tty {
            if let Some(e) = self.table.lock().get_mut(id).and_then(|c| c.execs.get_mut(exec_id)) {
                e.proc.console = master.try_clone().ok();
            }
        }
        self.watch_io(pio, tty);
        Ok(child)
    }

    fn open_io(&self, key: &ProcKey, stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> RpcResult<ProcIo> {
        ProcIo::open(&io::Request {
            key,
            namespace: &self.namespace,
            stdin,
            stdout,
            stderr,
            terminal,
            root: &self.runtime.root,
        })
    }

    /// The copies and the logging binary of a process that now exists, to the reaper's loop.
    fn watch_io(&self, mut pio: ProcIo, tty: Option<(OwnedFd, Vec<io::Copy>)>) {
        if let Some(logger) = pio.logger.take() {
            self.reaper.watch(Watch::Reap(logger));
        }
        if let Some(c) = pio.stdin_copy.take() {
            self.reaper.watch(Watch::Copy(c));
        }
        for c in tty.map(|(_, copies)| copies).unwrap_or_default() {
            self.reaper.watch(Watch::Copy(c));
        }
    }

    /// The container of `id`, or NotFound.
    fn known(&self, id: &str) -> RpcResult<()> {
        if self.table.lock().contains_key(id) {
            Ok(())
        } else {
            Err(not_found(id, ""))
        }
    }

    fn add_exec(&self, req: &api::ExecProcessRequest) -> RpcResult<()> {
        let mut spec: oci_spec::runtime::Process = serde_json::from_slice(&req.spec.value).map_err(|e| {
            status(
                Code::INVALID_ARGUMENT,
                format!("exec {}: process spec: {e}", req.exec_id),
            )
        })?;
        if req.exec_id.is_empty() {
            return Err(status(Code::INVALID_ARGUMENT, "exec: empty exec id"));
        }
        // The request's flag decides, as in the runc shim.
        spec.set_terminal(Some(req.terminal));
        let mut containers = self.table.lock();
        let c = containers.get_mut(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("exec {} already exists", req.exec_id),
            ));
        }
        c.execs.insert(
            req.exec_id.clone(),
            ExecProc {
                proc: Proc {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    ..Default::default()
                },
                spec,
                pidfd: None,
            },
        );
        let mut e = TaskExecAdded::new();
        e.container_id = req.id.clone();
        e.exec_id = req.exec_id.clone();
        self.table.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, &e);
        Ok(())
    }

    fn delete_exec(&self, id: &str, exec_id: &str) -> RpcResult<api::DeleteResponse> {
        {
            let containers = self.table.lock();
            let p = containers
                .get(id)
                .and_then(|c| c.proc(exec_id))
                .ok_or_else(|| not_found(id, exec_id))?;
            if p.started && !p.exit_published {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("cannot delete exec {exec_id} of {id}: it is running"),
                ));
            }
        }
        let mut containers = self.table.lock();
        let e = containers
            .get_mut(id)
            .and_then(|c| c.execs.remove(exec_id))
            .ok_or_else(|| not_found(id, exec_id))?;
        self.table.notify();
        let mut r = api::DeleteResponse::new();
        r.pid = e.proc.pid;
        if let Some(exit) = e.proc.exit {
            r.exit_status = exit.status;
            r.exited_at = MessageField::some(timestamp(exit.at));
        }
        Ok(r)
    }

    fn delete_task(&self, id: &str) -> RpcResult<api::DeleteResponse> {
        let (created_only, exited) = {
            let containers = self.table.lock();
            let c = containers.get(id).ok_or_else(|| not_found(id, ""))?;
            (!c.init.started && !c.init.starting, c.init.exit_published)
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
        let exit = self.table.wait_exit(id, "", Some(Duration::from_secs(10)))?;
        self.with_helper(|h| h.delete(id, true))?;
        let c = self.table.lock().remove(id).ok_or_else(|| not_found(id, ""))?;
        if c.rootfs_mounted {
            if let Err(e) = crate::mount::unmount_all(&c.bundle.join("rootfs")) {
                log::error(&format!("{id}: {e}"));
            }
        }
        let mut e = TaskDelete::new();
        e.container_id = id.to_string();
        e.id = id.to_string();
        e.pid = c.init.pid;
        e.exit_status = exit.status;
        e.exited_at = MessageField::some(timestamp(exit.at));
        self.table.publish(topics::TASK_DELETE_EVENT_TOPIC, &e);
        self.table.notify();
        let mut r = api::DeleteResponse::new();
        r.pid = c.init.pid;
        r.exit_status = exit.status;
        r.exited_at = MessageField::some(timestamp(exit.at));
        Ok(r)
    }

    fn kill_exec(&self, id: &str, exec_id: &str, signal: i32) -> RpcResult<()> {
        let containers = self.table.lock();
        let e = containers
            .get(id)
            .and_then(|c| c.execs.get(exec_id))
            .ok_or_else(|| not_found(id, exec_id))?;
        let pidfd = match (&e.pidfd, e.proc.exit) {
            (Some(fd), None) => fd.try_clone().map_err(|e| status(Code::UNKNOWN, e))?,
            (None, None) => {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("exec {exec_id} of {id} is not started"),
                ))
            }
            (_, Some(_)) => return Err(status(Code::NOT_FOUND, "process already finished")),
        };
        let pid = i32::try_from(e.proc.pid).unwrap_or(0);
        drop(containers);
        moor::Child { pid, pidfd }.signal(signal).map_err(moor_status)
    }
}

impl Task for Service {
    fn connect(&self, _ctx: &TtrpcContext, req: api::ConnectRequest) -> RpcResult<api::ConnectResponse> {
        let mut r = api::ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.table.lock().get(&req.id).map_or(0, |c| c.init.pid);
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
        let pid = if req.exec_id.is_empty() {
            self.start_init(&req.id)?
        } else {
            self.start_exec(&req.id, &req.exec_id)?
        };
        let mut r = api::StartResponse::new();
        r.pid = pid;
        Ok(r)
    }

    fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> RpcResult<api::StateResponse> {
        let (mut r, live) = {
            let containers = self.table.lock();
            let c = containers.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
            let p = c.proc(&req.exec_id).ok_or_else(|| not_found(&req.id, &req.exec_id))?;
            let mut r = api::StateResponse::new();
            r.id = req.id.clone();
            r.exec_id = req.exec_id.clone();
            r.bundle = c.bundle.display().to_string();
            r.pid = p.pid;
            r.stdin = p.stdin.clone();
            r.stdout = p.stdout.clone();
            r.stderr = p.stderr.clone();
            let status = match p.exit {
                Some(exit) => {
                    r.exit_status = exit.status;
                    r.exited_at = MessageField::some(timestamp(exit.at));
                    Some(Status::STOPPED)
                }
                None if !p.started => Some(Status::CREATED),
                None if !req.exec_id.is_empty() => Some(Status::RUNNING),
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
        let exit = self.table.wait_exit(&req.id, &req.exec_id, None)?;
        let mut r = api::WaitResponse::new();
        r.exit_status = exit.status;
        r.exited_at = MessageField::some(timestamp(exit.at));
        Ok(r)
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> RpcResult<api::Empty> {
        let signal = i32::try_from(req.signal)
            .map_err(|_| status(Code::INVALID_ARGUMENT, format!("signal {} out of range", req.signal)))?;
        if !req.exec_id.is_empty() {
            self.kill_exec(&req.id, &req.exec_id, signal)?;
            return Ok(api::Empty::new());
        }
        {
            let containers = self.table.lock();
            let c = containers.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
            if c.init.exit.is_some() && !req.all {
                return Err(status(Code::NOT_FOUND, "process already finished"));
            }
        }
        self.with_helper(|h| h.kill(&req.id, signal, req.all))?;
        Ok(api::Empty::new())
    }

    fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> RpcResult<api::DeleteResponse> {
        if req.exec_id.is_empty() {
            self.delete_task(&req.id)
        } else {
            self.delete_exec(&req.id, &req.exec_id)
        }
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> RpcResult<api::PidsResponse> {
        // Exec'd processes by pid, to name them in the answer as the runc shim does.
        let (init, execs) = {
            let containers = self.table.lock();
            let c = containers.get(&req.id).ok_or_else(|| not_found(&req.id, ""))?;
            let execs: std::collections::HashMap<u32, String> = c
                .execs
                .iter()
                .filter(|(_, e)| e.proc.pid != 0 && e.proc.exit.is_none())
                .map(|(id, e)| (e.proc.pid, id.clone()))
                .collect();
            (c.init.pid, execs)
        };
        let pids = match self.runtime.load(&req.id) {
            Ok((state, _)) => state.cgroup().and_then(|c| c.pids().ok()),
            Err(e) => return Err(moor_status(e)),
        };
        let pids = pids.unwrap_or_else(|| i32::try_from(init).into_iter().collect());
        let mut r = api::PidsResponse::new();
        for pid in pids {
            let mut p = api::ProcessInfo::new();
            p.pid = u32::try_from(pid).unwrap_or(0);
            if let Some(exec_id) = execs.get(&p.pid) {
                let mut d = ProcessDetails::new();
                d.exec_id.clone_from(exec_id);
                if let Ok(any) = crate::metrics::pack(&d) {
                    p.info = MessageField::some(any);
                }
            }
            r.processes.push(p);
        }
        Ok(r)
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: api::ShutdownRequest) -> RpcResult<api::Empty> {
        // The shim serves its whole group: it stays while a container is left.
        if req.now || self.table.lock().is_empty() {
            let _ = self.shutdown.lock().unwrap_or_else(|p| p.into_inner()).send(());
        }
        Ok(api::Empty::new())
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> RpcResult<api::Empty> {
        self.add_exec(&req)?;
        Ok(api::Empty::new())
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> RpcResult<api::Empty> {
        self.known(&req.id)?;
        self.runtime.pause(&req.id).map_err(moor_status)?;
        let mut e = TaskPaused::new();
        e.container_id = req.id;
        self.table.publish(topics::TASK_PAUSED_EVENT_TOPIC, &e);
        Ok(api::Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> RpcResult<api::Empty> {
        self.known(&req.id)?;
        self.runtime.resume(&req.id).map_err(moor_status)?;
        let mut e = TaskResumed::new();
        e.container_id = req.id;
        self.table.publish(topics::TASK_RESUMED_EVENT_TOPIC, &e);
        Ok(api::Empty::new())
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, _req: api::CheckpointTaskRequest) -> RpcResult<api::Empty> {
        // The hook for `moor checkpoint` (CRIU): once the library offers it, this calls it with
        // req.path as the image directory and req.options' runc CheckpointOptions.
        Err(unimplemented("Checkpoint"))
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> RpcResult<api::Empty> {
        let containers = self.table.lock();
        let p = containers
            .get(&req.id)
            .and_then(|c| c.proc(&req.exec_id))
            .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
        let Some(master) = &p.console else {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("{} {}: the process has no terminal", req.id, req.exec_id),
            ));
        };
        io::resize(master, req.width, req.height)
            .map_err(|e| status(Code::UNKNOWN, format!("resize the terminal: {e}")))?;
        Ok(api::Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> RpcResult<api::Empty> {
        let open = {
            let containers = self.table.lock();
            let p = containers
                .get(&req.id)
                .and_then(|c| c.proc(&req.exec_id))
                .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
            !p.stdin.is_empty() && p.exit.is_none()
        };
        if req.stdin && open {
            self.reaper.watch(Watch::CloseStdin((req.id, req.exec_id)));
        }
        Ok(api::Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> RpcResult<api::Empty> {
        self.known(&req.id)?;
        // containerd sends the runtime-spec's LinuxResources as JSON in the Any.
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(&req.resources.value)
            .map_err(|e| status(Code::INVALID_ARGUMENT, format!("update {}: resources: {e}", req.id)))?;
        self.runtime.update(&req.id, &resources).map_err(moor_status)?;
        Ok(api::Empty::new())
    }

    fn stats(&self, _ctx: &TtrpcContext, req: api::StatsRequest) -> RpcResult<api::StatsResponse> {
        self.known(&req.id)?;
        let stats = self.runtime.stats(&req.id).map_err(moor_status)?;
        let any = crate::metrics::to_any(&stats).map_err(|e| status(Code::INTERNAL, format!("encode metrics: {e}")))?;
        let mut r = api::StatsResponse::new();
        r.stats = MessageField::some(any);
        Ok(r)
    }
}
