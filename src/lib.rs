//! moor: a low-level OCI container runtime.
//!
//! The library is what the `moor` binary, a containerd shim and a pod agent call. A container is
//! built in three acts, each in its own module:
//!
//! 1. **parent** ([`create`]): reads and validates the bundle, prepares everything that can be
//!    prepared outside the container (state directory, exec fifo, seccomp program, console
//!    socket), then clones the init process straight into its new namespaces.
//! 2. **init** ([`init`]): runs inside the namespaces, driven step by step by the parent over the
//!    typed protocol in [`sync`]; it builds the root filesystem, sets up the process and waits on
//!    the exec fifo.
//! 3. **exec**: `start` opens the fifo, init runs the startContainer hooks and execs the workload.

mod affinity;
pub mod capabilities;
mod cgroup_ops;
pub mod child;
pub mod config;
mod cpulist;
pub mod create;
pub mod error;
pub mod exe;
pub mod exec;
mod fault;
pub mod fds;
pub mod features;
pub mod helper;
pub mod hooks;
mod init;
mod mempolicy;
pub mod namespaces;
mod netdev;
mod netlink;
pub mod operations;
pub mod process;
mod procfs;
pub mod rootfs;
pub mod rootless;
pub mod signals;
pub mod spec;
pub mod state;
mod sync;
mod sys;
pub mod terminal;
pub mod time;
mod user;
mod workload;

pub use child::Child;
pub use create::CreateOptions;
pub use error::{Error, Result};
pub use operations::{Created, Runtime};
pub use state::{ContainerState, Status};

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
