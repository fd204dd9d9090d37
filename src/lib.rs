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
//! - `sys`: system-call wrappers and fd, procfs and pty helpers both sides use.
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

mod error;
mod init;
mod runtime;
mod spawn;
pub mod spec;
mod sys;

pub use error::{Error, Result};
pub use runtime::rootless::{default_root, Mode as RootlessMode};
pub use runtime::signals::parse as parse_signal;
pub use runtime::state::{validate_id, ContainerState, OciState, Status};
pub use runtime::Runtime;
pub use spawn::create::CreateOptions;
pub use spawn::exec::ExecOptions;
pub use sys::time::now_rfc3339;

/// What a caller applies to its own process before it creates or enters a container: the
/// library does not change the caller's process behind its back for these.
pub mod caller {
    pub use crate::runtime::exe::ensure_protected;
    pub use crate::sys::fds::{note_inherited, seal_inherited};
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

pub(crate) fn warn(msg: &str) {
    match LOG_SINK.get() {
        Some(sink) => sink(Level::Warning, msg),
        None => eprintln!("moor: warning: {msg}"),
    }
}

pub(crate) fn debug(msg: &str) {
    if let Some(sink) = LOG_SINK.get() {
        sink(Level::Debug, msg);
    }
}
