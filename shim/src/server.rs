//! The serving shim: forked by `start` with its listening socket on fd 3. In order: run from a
//! read-only view of the binary (CVE-2019-5736: containers are cloned from the helper, a fork
//! of this process), become the child subreaper, spawn the moor helper while still
//! single-threaded, log to the bundle's `log` fifo, then start the event publisher, the reaper
//! and ttrpc's threads, and wait for Shutdown.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::create_task;
use containerd_shim_protos::ttrpc::{MethodHandler, Server};

use crate::bootstrap::LISTENER_FD;
use crate::error::{Error, Result};
use crate::events::{Event, Publisher};
use crate::flags::Flags;
use crate::log;
use crate::reaper::Reaper;
use crate::service::Service;
use crate::table::Table;

pub enum Item {
    Event(Event),
    /// Answered once everything queued before it is published.
    Flush(mpsc::Sender<()>),
}

/// The publisher's queue: events in order, and a flush for the end.
pub struct Queue(Mutex<mpsc::Sender<Item>>);

impl Queue {
    pub fn new(tx: mpsc::Sender<Item>) -> Queue {
        Queue(Mutex::new(tx))
    }

    pub fn event(&self, event: Event) {
        let _ = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Item::Event(event));
    }

    fn flush(&self, timeout: Duration) {
        let (tx, rx) = mpsc::channel();
        if self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Item::Flush(tx))
            .is_ok()
        {
            let _ = rx.recv_timeout(timeout);
        }
    }
}

pub fn serve(flags: &Flags) -> Result<()> {
    check_listener()?;
    moor::caller::ensure_protected()?;
    small_heap();
    log::set_debug(flags.debug);
    // Opened in the bundle `start` ran in (the working directory), used from the helper's spawn on.
    let log = open_log_fifo();
    let result = run(flags, log.as_ref());
    if let (Err(e), Some(Ok(dup))) = (&result, log.as_ref().map(OwnedFd::try_clone)) {
        use std::io::Write;
        let _ = writeln!(std::fs::File::from(dup), "containerd-shim-moor-v2: {e}");
    }
    result
}

fn run(flags: &Flags, log: Option<&OwnedFd>) -> Result<()> {
    // Inherited across ensure_protected's re-exec; no process the shim starts (`publish`) gets it.
    // SAFETY: F_SETFD on the listener fd checked above.
    if unsafe { libc::fcntl(LISTENER_FD, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(Error::sys("close-on-exec on fd 3", std::io::Error::last_os_error()));
    }
    let root = flags.state_root()?;
    std::fs::create_dir_all(&root).map_err(|e| Error::path("cannot create", &root, e))?;
    let socket = socket_path();
    // The bundle may go with its container; the helper and its containers need no cwd.
    std::env::set_current_dir("/").map_err(|e| Error::sys("chdir /", e))?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(Error::sys("become child subreaper", std::io::Error::last_os_error()));
    }
    // Before any thread: the helper is a fork of this process.
    let helper = moor::Helper::spawn(&root)?;
    // After the spawn: the helper keeps /dev/null as its stderr. The log fifo's reader goes away
    // with the first container of the group, and the helper (signals reset) would die of SIGPIPE
    // on its next warning.
    if let Some(log) = log {
        // SAFETY: dup2 of an fd we own onto stderr, replaced atomically.
        unsafe { libc::dup2(log.as_raw_fd(), 2) };
    }

    let (tx, rx) = mpsc::channel::<Item>();
    let mut publisher = Publisher::new(
        flags.publish_binary.clone(),
        flags.address.clone(),
        flags.namespace.clone(),
    );
    std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            for item in rx {
                match item {
                    Item::Event(e) => publisher.publish_logged(&e),
                    Item::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })
        .map_err(|e| Error::sys("start the event thread", e))?;
    let table = Arc::new(Table::new(Queue::new(tx)));
    let reaper = Reaper::spawn(table.clone())?;
    let (stop_tx, stop_rx) = mpsc::channel();
    let service = Arc::new(Service::new(
        helper,
        root,
        flags.namespace.clone(),
        table.clone(),
        reaper,
        stop_tx,
    ));
    // Fewer idle workers per connection than ttrpc's 3 (it wants min < default < max): it
    // starts another whenever fewer than one is idle (a Wait blocks one for the life of its
    // process), so this never refuses a call.
    let mut server = Server::new()
        .set_thread_count_default(2)
        .set_thread_count_min(1)
        .set_thread_count_max(3)
        .add_listener(LISTENER_FD)?
        .register_service(task_service(&service));
    server.start()?;
    log::info(&format!("serving {} (pid {})", flags.id, std::process::id()));

    let _ = stop_rx.recv();
    log::info("shutdown");
    if let Some(path) = &socket {
        let _ = std::fs::remove_file(path);
    }
    table.queue().flush(Duration::from_secs(5));
    service.close();
    // The ttrpc threads may sit in blocking handlers; nothing is left for them to answer.
    std::process::exit(0)
}

/// The Task service's methods under their v2 names (containerd 1.6 to 2.x with a plain
/// address) and their v3 names (containerd 2.x after a version 3 bootstrap): the messages are
/// the same, only the service's name changed.
fn task_service(service: &Arc<Service>) -> HashMap<String, Box<dyn MethodHandler + Send + Sync>> {
    let mut methods = create_task(service.clone());
    for (name, handler) in create_task(service.clone()) {
        if let Some(method) = name.strip_prefix(TASK_V2) {
            methods.insert(format!("{TASK_V3}{method}"), handler);
        }
    }
    methods
}

const TASK_V2: &str = "/containerd.task.v2.Task/";
const TASK_V3: &str = "/containerd.task.v3.Task/";

/// One process per pod: what malloc keeps counts. Before the helper's fork (it inherits the
/// settings) and before any thread: one arena for all threads (they only wait), and blocks
/// above 64 KiB mapped on their own and given back when freed, as is a heap top above 64 KiB.
fn small_heap() {
    // SAFETY: mallopt takes integers; glibc ignores what it does not know.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024);
    }
}

/// Fd 3 must be the listening socket `start` passed: the shim is not meant to be run by hand
/// without an action.
fn check_listener() -> Result<()> {
    let mut on: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: getsockopt writes at most `len` bytes into `on`.
    let r = unsafe {
        libc::getsockopt(
            LISTENER_FD,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            std::ptr::from_mut(&mut on).cast(),
            &mut len,
        )
    };
    if r < 0 || on == 0 {
        return Err(Error::flag(
            "action",
            "no action given and fd 3 is no listening socket (containerd runs `start` or `delete`)",
        ));
    }
    Ok(())
}

fn socket_path() -> Option<PathBuf> {
    let addr: nix::sys::socket::UnixAddr = nix::sys::socket::getsockname(LISTENER_FD).ok()?;
    addr.path().map(PathBuf::from)
}

/// The `log` fifo containerd reads in the bundle (the working directory here), if it has a
/// reader, made blocking again once open.
fn open_log_fifo() -> Option<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("log")
        .ok()?;
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    unsafe {
        let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Some(OwnedFd::from(f))
}
