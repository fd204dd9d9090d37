//! The shim's containers and their processes (init, whose exec id is "", and exec'd ones),
//! shared by the ttrpc handlers and the reaper thread, and the order of their events:
//!
//! - TaskCreate / TaskExecAdded are queued before the process can be reaped;
//! - a TaskExit that happens while Start runs is held back until TaskStart / TaskExecStarted
//!   is queued;
//! - Wait and Delete answer only once TaskExit is queued, so TaskDelete always comes last.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::events::task::{TaskExecStarted, TaskExit, TaskOOM, TaskStart};
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::Code;
use protobuf::MessageField;

use crate::events::Event;
use crate::log;
use crate::rpc::{not_found, status, timestamp, RpcResult};
use crate::server::Queue;

/// A process by container id and exec id ("" for init).
pub type ProcKey = (String, String);

#[derive(Clone, Copy)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

#[derive(Default)]
pub struct Proc {
    /// 0 until an exec'd process is started.
    pub pid: u32,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    /// Start is running: an exit meanwhile waits for the start event before its TaskExit.
    pub starting: bool,
    pub started: bool,
    pub exit: Option<Exit>,
    /// TaskExit is queued: Wait and Delete may answer.
    pub exit_published: bool,
    /// With a terminal: the pty master, for ResizePty.
    pub console: Option<OwnedFd>,
}

pub struct ExecProc {
    pub proc: Proc,
    pub spec: oci_spec::runtime::Process,
    /// A copy of the pidfd the reaper waits on, for Kill: never signals a reused pid.
    pub pidfd: Option<OwnedFd>,
}

pub struct Container {
    pub bundle: PathBuf,
    pub rootfs_mounted: bool,
    pub init: Proc,
    pub execs: HashMap<String, ExecProc>,
}

impl Container {
    pub fn proc(&self, exec_id: &str) -> Option<&Proc> {
        if exec_id.is_empty() {
            Some(&self.init)
        } else {
            self.execs.get(exec_id).map(|e| &e.proc)
        }
    }

    fn proc_mut(&mut self, exec_id: &str) -> Option<&mut Proc> {
        if exec_id.is_empty() {
            Some(&mut self.init)
        } else {
            self.execs.get_mut(exec_id).map(|e| &mut e.proc)
        }
    }
}

pub struct Table {
    containers: Mutex<HashMap<String, Container>>,
    /// Ids whose Create runs: a second Create of one must not mount over its rootfs.
    pub creating: Mutex<HashSet<String>>,
    changed: Condvar,
    events: Queue,
}

impl Table {
    pub fn new(events: Queue) -> Table {
        Table {
            containers: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
            changed: Condvar::new(),
            events,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.events
    }

    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish(&self, topic: &'static str, msg: &impl protobuf::MessageFull) {
        if let Some(event) = Event::new(topic, msg) {
            self.events.event(event);
        }
    }

    /// Wakes Wait and Delete after a change they may wait for.
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// From the reaper: the container ran out of memory (before its init's exit, if that
    /// was the cause).
    pub fn oom(&self, id: &str) {
        let mut e = TaskOOM::new();
        e.container_id = id.to_string();
        self.publish(topics::TASK_OOM_EVENT_TOPIC, &e);
    }

    /// From the reaper: a process exited.
    pub fn exited(&self, key: &ProcKey, pid: i32, code: i32) {
        let (id, exec_id) = (key.0.as_str(), key.1.as_str());
        let mut containers = self.lock();
        let Some(p) = containers.get_mut(id).and_then(|c| c.proc_mut(exec_id)) else {
            log::error(&format!(
                "pid {pid} of unknown process {id}/{exec_id} exited with {code}"
            ));
            return;
        };
        p.exit = Some(Exit {
            status: u32::try_from(code).unwrap_or(255),
            at: SystemTime::now(),
        });
        if !p.starting {
            self.publish_exit(id, exec_id, p);
        }
        self.notify();
    }

    fn publish_exit(&self, id: &str, exec_id: &str, p: &mut Proc) {
        if let Some(exit) = p.exit {
            let mut e = TaskExit::new();
            e.container_id = id.to_string();
            e.id = if exec_id.is_empty() { id } else { exec_id }.to_string();
            e.pid = p.pid;
            e.exit_status = exit.status;
            e.exited_at = MessageField::some(timestamp(exit.at));
            self.publish(topics::TASK_EXIT_EVENT_TOPIC, &e);
            p.exit_published = true;
        }
    }

    /// Start begins: from now until [`Table::started`], an exit holds back its TaskExit.
    /// Returns the process's pid (init's; 0 for an exec, whose pid comes with `started`).
    pub fn starting(&self, id: &str, exec_id: &str) -> RpcResult<u32> {
        let mut containers = self.lock();
        let c = containers.get_mut(id).ok_or_else(|| not_found(id, ""))?;
        if !exec_id.is_empty() && (!c.init.started || c.init.exit.is_some()) {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("container {id} is not running: cannot start exec {exec_id}"),
            ));
        }
        let p = c.proc_mut(exec_id).ok_or_else(|| not_found(id, exec_id))?;
        if p.started || p.starting {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("{id} {exec_id}: already started"),
            ));
        }
        p.starting = true;
        Ok(p.pid)
    }

    /// Start ended, with the pid on success: TaskStart or TaskExecStarted, then the TaskExit
    /// held back meanwhile, if any.
    pub fn started(&self, id: &str, exec_id: &str, pid: Option<u32>) -> RpcResult<()> {
        let mut containers = self.lock();
        let p = containers
            .get_mut(id)
            .and_then(|c| c.proc_mut(exec_id))
            .ok_or_else(|| not_found(id, exec_id))?;
        p.starting = false;
        if let Some(pid) = pid {
            p.started = true;
            p.pid = pid;
            if exec_id.is_empty() {
                let mut e = TaskStart::new();
                e.container_id = id.to_string();
                e.pid = pid;
                self.publish(topics::TASK_START_EVENT_TOPIC, &e);
            } else {
                let mut e = TaskExecStarted::new();
                e.container_id = id.to_string();
                e.exec_id = exec_id.to_string();
                e.pid = pid;
                self.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, &e);
            }
        }
        if p.exit.is_some() && !p.exit_published {
            self.publish_exit(id, exec_id, p);
            self.notify();
        }
        Ok(())
    }

    /// Waits until the process's TaskExit is queued, up to `deadline` if given.
    pub fn wait_exit(&self, id: &str, exec_id: &str, deadline: Option<Duration>) -> RpcResult<Exit> {
        let until = deadline.map(|d| Instant::now() + d);
        let mut containers = self.lock();
        loop {
            match containers.get(id).and_then(|c| c.proc(exec_id)) {
                None => return Err(not_found(id, exec_id)),
                Some(p) if p.exit_published => {
                    return p
                        .exit
                        .ok_or_else(|| status(Code::INTERNAL, "exit published without exit"))
                }
                Some(_) => {}
            }
            containers = match until {
                None => self.changed.wait(containers).unwrap_or_else(|p| p.into_inner()),
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(status(Code::DEADLINE_EXCEEDED, format!("{id} {exec_id}: no exit")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Item;
    use std::sync::mpsc;

    fn table_with(id: &str) -> (Table, mpsc::Receiver<Item>) {
        let (tx, rx) = mpsc::channel();
        let table = Table::new(Queue::new(tx));
        table.lock().insert(
            id.to_string(),
            Container {
                bundle: PathBuf::from("/b"),
                rootfs_mounted: false,
                init: Proc {
                    pid: 42,
                    ..Default::default()
                },
                execs: HashMap::new(),
            },
        );
        (table, rx)
    }

    fn topics(rx: &mpsc::Receiver<Item>) -> Vec<&'static str> {
        rx.try_iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e.topic),
                Item::Flush(_) => None,
            })
            .collect()
    }

    fn key(id: &str, exec_id: &str) -> ProcKey {
        (id.to_string(), exec_id.to_string())
    }

    #[test]
    fn an_exit_during_start_comes_after_task_start() {
        let (table, rx) = table_with("c");
        assert_eq!(table.starting("c", "").unwrap(), 42);
        table.exited(&key("c", ""), 42, 0);
        assert!(topics(&rx).is_empty(), "TaskExit before TaskStart");
        // Wait does not answer before the TaskExit is queued.
        assert!(table.wait_exit("c", "", Some(Duration::from_millis(10))).is_err());
        table.started("c", "", Some(42)).unwrap();
        assert_eq!(topics(&rx), ["/tasks/start", "/tasks/exit"]);
        assert_eq!(table.wait_exit("c", "", None).unwrap().status, 0);
        assert!(table.starting("c", "").is_err(), "a second start");
    }

    #[test]
    fn an_exit_after_start_is_published_at_once_with_its_status() {
        let (table, rx) = table_with("c");
        table.starting("c", "").unwrap();
        table.started("c", "", Some(42)).unwrap();
        table.exited(&key("c", ""), 42, 137);
        assert_eq!(topics(&rx), ["/tasks/start", "/tasks/exit"]);
        assert_eq!(table.wait_exit("c", "", None).unwrap().status, 137);
    }

    #[test]
    fn a_failed_start_still_releases_the_exit() {
        let (table, rx) = table_with("c");
        table.starting("c", "").unwrap();
        table.exited(&key("c", ""), 42, 1);
        table.started("c", "", None).unwrap();
        assert_eq!(topics(&rx), ["/tasks/exit"]);
        assert!(table.wait_exit("unknown", "", None).is_err());
    }

    #[test]
    fn an_exec_starts_only_in_a_running_container_and_reports_its_own_exit() {
        let (table, rx) = table_with("c");
        table.lock().get_mut("c").unwrap().execs.insert(
            "e1".into(),
            ExecProc {
                proc: Proc::default(),
                spec: oci_spec::runtime::Process::default(),
                pidfd: None,
            },
        );
        assert!(table.starting("c", "e1").is_err(), "exec before the container started");
        table.starting("c", "").unwrap();
        table.started("c", "", Some(42)).unwrap();
        assert_eq!(table.starting("c", "e1").unwrap(), 0);
        table.started("c", "e1", Some(43)).unwrap();
        table.exited(&key("c", "e1"), 43, 5);
        assert_eq!(topics(&rx), ["/tasks/start", "/tasks/exec-started", "/tasks/exit"]);
        assert_eq!(table.wait_exit("c", "e1", None).unwrap().status, 5);
        assert!(table.wait_exit("c", "", Some(Duration::from_millis(1))).is_err());
        assert!(table.starting("c", "nope").is_err());
    }
}
