//! moor: a low-level OCI container runtime.
//!
//! The library is what the `moor` binary (the `moor-cli` crate), a containerd shim and a pod
//! agent call. Its modules follow the one boundary that matters most in a runtime, where code
//! runs:
//!
//! - `runtime`: the host-side lifecycle of a container ([`Runtime`]): its state on disk, hooks,
//!   cgroups, rootless rules, signal forwarding.
//! - `spawn`: the host side of making a process in a container: the namespace plan, the clone,
//!   the id maps and network devices, and the sync protocol that drives the child.
//! - `init`: everything that runs inside the new namespaces after the clone: the numbered init
//!   steps, the root filesystem, credentials, capabilities, and the workload's execve.
//! - [`spec`]: config.json loaded and validated as hostile input, the default spec, features.
//! - `checkpoint`: `checkpoint` and `restore` of a container with CRIU ([`Runtime::checkpoint`],
//!   [`Runtime::restore`]).
//! - [`inspect`]: the isolation report of a container or a bundle (`moor inspect`), and its
//!   check against the Kubernetes Pod Security Standards.
//! - `sys`: system-call wrappers and fd, procfs and pty helpers both sides use.
//!
//! Who uses whom: `runtime` never uses `init` (one unit test borrows its capset to run without
//! capabilities). `spawn` hands `init` a context (`init::Init` for create, `init::ExecInit` for
//! exec) and calls its run, then drives it over the `spawn::sync` messages. `init` uses `sys`,
//! `spec` and those messages, plus three things shared on purpose: the namespace plan
//! (`spawn::namespaces::Plan`, part of its context) and the hook runner with the state it
//! feeds hooks (`runtime::hooks`, `runtime::state`), since createContainer and startContainer
//! hooks run inside the container. What init applies but the parent must know first
//! (capability sets, memory policy, CPU affinity, bind trees cloned before the user namespace)
//! is parsed by `spawn` with init's own types.
//!
//! A container is built in three acts:
//!
//! 1. **parent** (`spawn::create`): reads and validates the bundle, prepares everything that can
//!    be prepared outside the container (state directory, exec fifo, seccomp program, console
//!    socket), then clones the init process straight into its new namespaces.
//! 2. **init** (`init`): runs inside the namespaces, driven step by step by the parent over the
//!    typed protocol in `spawn::sync`; it builds the root filesystem, sets up the process and
//!    waits on the exec fifo.
//! 3. **exec**: `start` opens the fifo, init runs the startContainer hooks and execs the workload.
//!
//! # Who may call what
//!
//! [`Runtime::create`], [`Runtime::run`], [`Runtime::exec`] and [`Runtime::exec_detached`]
//! clone the calling process and run moor's code in the copy (it allocates, formats, takes
//! locks). In a multi-threaded process a lock held by another thread at that moment stays held
//! forever in the copy, so these entry points check that the caller is single-threaded and
//! return [`Error::ThreadedCaller`] otherwise. `start`, `state`, `kill`, `delete`, `list` and
//! the rest clone nothing that runs Rust code and may be called from any thread.
//!
//! A multi-threaded caller (a shim, an agent) uses [`Helper`] instead:
//!
//! - **When**: `Helper::spawn(root)` once, at start-up, before the first thread (it checks).
//!   It forks a single-threaded helper process connected by a SOCK_SEQPACKET socketpair; the
//!   helper keeps only that socket and fds 0-2 (which containers inherit when no stdio is
//!   given). Every `Helper` method may then be called from any thread; calls are serialised.
//! - **Who reaps what**: the helper clones init and exec'd processes with CLONE_PARENT, so they
//!   are children of the caller, not of the helper. Replies carry their pid and a pidfd
//!   ([`Child`]); the caller waits for them with [`Child::wait`] (waitid(P_PIDFD)) and gets
//!   their exit status. Short-lived processes that become the caller's children too (the
//!   middle process that joins namespaces, a process killed after a failed step) are reaped
//!   by the client before the call returns. The caller must not set SIGCHLD to SIG_IGN, and
//!   must not reap with `waitpid(-1)` (that would take these statuses).
//! - **Which fds pass**: a request carries the container process's stdio and extra fds
//!   ([`Stdio`], `extra_fds`) with SCM_RIGHTS; the helper drops its copies once it has
//!   answered. A reply carries pidfds. Nothing else crosses: the helper's warnings go to its
//!   stderr (the caller's at the spawn), not to the caller's [`set_log_sink`].
//! - **Its end**: dropping the `Helper` closes the socket; the helper exits at EOF and is
//!   reaped. If the helper dies, every call returns [`Error::HelperGone`]; containers already
//!   created live on (they are the caller's children) and are handled with [`Runtime`].
//!
//! ```no_run
//! # fn main() -> moor::Result<()> {
//! use moor::Helper;
//! let helper = Helper::spawn("/run/moor")?; // before any thread starts
//! let created = helper.create("web", &moor::CreateOptions { bundle: "/srv/web".into(), ..Default::default() })?;
//! helper.start("web")?;
//! let code = created.init.wait()?; // from any thread: init is our child
//! helper.delete("web", false)?;
//! # let _ = code; Ok(()) }
//! ```
//!
//! # What the library leaves to its caller
//!
//! The library changes nothing process-wide in its caller: it waits only for the processes it
//! started (pidfds, never `waitpid(-1)`); init and exec's processes make themselves
//! non-dumpable; the signal mask `run` and a foreground `exec` need is restored when they
//! return; it reads no environment. What a runtime binary does to itself is offered as explicit
//! functions: [`caller::ensure_protected`] (re-execute from a read-only view of the binary,
//! CVE-2019-5736), [`caller::listen_fds`] (socket activation, mapped onto `extra_fds` and
//! `listen_fds`), [`caller::seal_inherited`], [`set_log_sink`] (where warnings go; stderr until
//! set).

mod checkpoint;
mod error;
mod init;
pub mod inspect;
mod runtime;
mod spawn;
pub mod spec;
mod sys;

pub use checkpoint::{CgroupsMode, CheckpointOptions, CriuOptions, RestoreOptions};
pub use error::{report, Error, Kind as ErrorKind, Result};
/// The types of [`Runtime::stats`] (typed cgroup v1/v2 statistics) and [`Runtime::oom_watcher`].
pub use moor_cgroups::{self as cgroups, OomWatcher, Stats};
pub use runtime::helper::Helper;
pub use runtime::rootless::{default_root, Mode as RootlessMode};
pub use runtime::signals::parse as parse_signal;
pub use runtime::state::{validate_id, ContainerState, OciState, Status};
pub use runtime::transitions;
pub use runtime::{Created, Runtime};
pub use spawn::child::Child;
pub use spawn::create::CreateOptions;
pub use spawn::exec::ExecOptions;
pub use sys::fds::Stdio;
pub use sys::sha256::hex as sha256_hex;
pub use sys::time::now_rfc3339;

/// What a caller applies to its own process before it creates or enters a container: the
/// library does not change the caller's process behind its back for these.
pub mod caller {
    pub use crate::runtime::exe::ensure_protected;
    pub use crate::sys::fds::{listen_fds, note_inherited, seal_inherited};
}

/// Capability names and numbers, as the kernel numbers them (for a caller that builds specs).
pub mod capabilities {
    pub use crate::init::capabilities::{name, number_of};
}

/// The checks `create` makes on a spec before anything exists, for the config fuzzers
/// (tests/fuzz_config.rs, fuzz/). Not a stable API.
#[doc(hidden)]
pub mod checks {
    pub use crate::init::capabilities::{last_cap, of_process};
    pub use crate::spawn::namespaces::plan as namespaces;
}

/// The runtime-spec version moor implements.
pub const OCI_VERSION: &str = "1.3.0";

/// Where warnings and debug messages go: stderr unless the binary installs its logger.
static LOG_SINK: std::sync::OnceLock<fn(Level, &str)> = std::sync::OnceLock::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Warning,
    Debug,
}

/// Installs the function that receives moor's warnings and debug messages (the CLI writes
/// them to --log, and drops debug messages unless --debug).
pub fn set_log_sink(sink: fn(Level, &str)) {
    let _ = LOG_SINK.set(sink);
}

/// Set in the helper process: the sink is the caller's, and its fds are gone there.
static STDERR_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn log_to_stderr() {
    STDERR_ONLY.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn sink() -> Option<&'static fn(Level, &str)> {
    LOG_SINK
        .get()
        .filter(|_| !STDERR_ONLY.load(std::sync::atomic::Ordering::Relaxed))
}

pub(crate) fn warn(msg: &str) {
    match sink() {
        Some(sink) => sink(Level::Warning, msg),
        None => eprintln!("moor: warning: {msg}"),
    }
}

pub(crate) fn debug(msg: &str) {
    if let Some(sink) = sink() {
        sink(Level::Debug, msg);
    }
}
