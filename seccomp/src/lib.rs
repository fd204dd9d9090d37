//! Pure-Rust compiler from the OCI runtime-spec seccomp section
//! ([`oci_spec::runtime::LinuxSeccomp`]) to a classic-BPF seccomp filter, and its loader.
//!
//! # Why we own the compiler
//!
//! The obvious crate, `seccompiler` (0.5), builds BPF from a Rust rule set and loads it, but it
//! cannot express an OCI profile:
//! - one match action per filter (OCI profiles mix ALLOW, ERRNO(n), KILL, TRACE, NOTIFY … per rule);
//! - one architecture per filter, so no x86/x32 compat ABIs next to x86_64, nor arm next to aarch64;
//! - no `SCMP_ACT_NOTIFY` (user notification) and no listener fd;
//! - only the TSYNC flag (no LOG, SPEC_ALLOW, NEW_LISTENER, WAIT_KILLABLE_RECV);
//! - `apply_filter` always sets no_new_privs, which the runtime must control itself (the spec
//!   says when, and capabilities must be dropped in between);
//! - its syscall table is private.
//!
//! What it would give us (an argument-comparison code generator and a `seccomp(2)` call) is the
//! small part of the job, so this crate does not depend on seccompiler at all. libseccomp (C) is
//! avoided too, to keep the runtime a static, pure-Rust binary. We use `libc` for the kernel
//! types and constants and the `syscall-numbers` crate for per-architecture syscall tables.
//!
//! # What the filter does
//!
//! See [`compile`](mod@compile) for the exact semantics (rule precedence, argument comparisons,
//! bad-arch action, the ENOSYS rule for syscalls newer than the profile) and [`bpf`] for the
//! program layout (binary search over syscall numbers per architecture).
//!
//! # Use
//!
//! ```no_run
//! # fn f(spec: &oci_spec::runtime::LinuxSeccomp) -> Result<(), moor_seccomp::Error> {
//! let compiled = moor_seccomp::compile(spec)?; // in the parent, before fork/clone
//! for w in compiled.warnings() {
//!     eprintln!("{w}");
//! }
//! // … in the container process, after no_new_privs and capabilities, right before execve:
//! if let Some(fd) = compiled.install()? {
//!     // send `fd` to the agent at listenerPath with moor_seccomp::send_notify_fd
//! }
//! # Ok(()) }
//! ```

pub mod arch;
pub mod bpf;
pub mod compile;
mod error;
pub mod interp;
mod load;
mod notify;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub use error::Error;
pub use notify::{process_state_json, send_notify_fd};

/// A compiled filter, ready to [`install`](Compiled::install).
#[derive(Clone)]
pub struct Compiled {
    program: Vec<libc::sock_filter>,
    flags: u32,
    notify: bool,
    warnings: Vec<String>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("notify", &self.notify)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Validates and compiles `profile`. Cheap (well under a millisecond for a Docker-style
/// profile); do it in the parent so errors are reported before the container starts.
pub fn compile(profile: &oci_spec::runtime::LinuxSeccomp) -> Result<Compiled, Error> {
    let plan = compile::lower(profile)?;
    let program = bpf::generate(&plan);
    if program.len() > libc::BPF_MAXINSNS as usize {
        return Err(Error::TooLong(program.len()));
    }
    Ok(Compiled {
        program,
        flags: plan.flags,
        notify: plan.notify,
        warnings: plan.warnings,
        listener_path: profile.listener_path().clone(),
        listener_metadata: profile.listener_metadata().clone(),
    })
}

impl Compiled {
    /// Non-fatal findings, e.g. unknown syscall names that were skipped.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The BPF program, in execution order.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// Whether the profile uses `SCMP_ACT_NOTIFY`, so [`install`](Self::install) returns a
    /// listener fd that must be sent to [`listener_path`](Self::listener_path).
    pub fn needs_notify_fd(&self) -> bool {
        self.notify
    }

    /// `SECCOMP_FILTER_FLAG_*` passed to seccomp(2).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The profile's `listenerPath`.
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// The profile's `listenerMetadata`.
    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// Loads the filter with seccomp(2) directly (not prctl). Never sets no_new_privs itself.
    /// Returns the notify listener fd if the profile uses `SCMP_ACT_NOTIFY`.
    /// Allocates nothing on success, so it may be called in a child after fork().
    pub fn install(&self) -> Result<Option<OwnedFd>, Error> {
        load::install(self)
    }

    /// Sends the listener `fd` returned by [`install`](Self::install) to this profile's
    /// `listenerPath`, with `listenerMetadata` as `metadata`. `state_json` is the container's
    /// runtime-spec `State` JSON (`ociVersion` and `pid` are read from it) or a complete
    /// `ContainerProcessState`; see [`send_notify_fd`].
    pub fn send_notify_fd(&self, fd: std::os::fd::BorrowedFd<'_>, state_json: &[u8]) -> Result<(), Error> {
        let path = self.listener_path.as_deref().unwrap_or(Path::new(""));
        let err = |source| Error::Notify {
            path: path.to_path_buf(),
            source,
        };
        if self.listener_path.is_none() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the seccomp profile has no listenerPath",
            )));
        }
        let message = notify::container_process_state(state_json, self.listener_metadata.as_deref()).map_err(err)?;
        notify::send_message(path, fd, &message)
    }

    /// Runs the filter in the built-in interpreter (see [`interp`]).
    pub fn simulate(&self, data: &interp::SeccompData) -> Result<interp::Outcome, String> {
        interp::run(&self.program, data)
    }
}
