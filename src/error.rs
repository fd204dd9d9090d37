//! Typed errors of the moor library. Messages keep runc's wording where callers match on it:
//! "does not exist", "already exists", "container not running", "no such process".
//!
//! One source-chain policy: a variant either names its cause as its `source()` and leaves it out
//! of its own message (the OS error of [`Error::Path`] and [`Error::Sys`], the inner error of
//! [`Error::Context`]), or says it in its message and has no source (a cgroup or seccomp error,
//! whose crates print their own OS error). So every cause is printed exactly once by anything
//! that walks the chain: anyhow's `{:#}`, or [`report`] for a plain string.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0} does not exist")]
    DoesNotExist(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container not running: {0}")]
    NotRunning(String),
    #[error("{0}")]
    InvalidState(String),
    /// The container's status does not allow the operation (see [`crate::transitions`]).
    #[error("{}", crate::runtime::transitions::refusal(*.op, *.status, .id))]
    NotAllowed {
        op: crate::runtime::transitions::Op,
        status: crate::runtime::state::Status,
        id: String,
    },
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("config.json: {field}: {reason}")]
    Config { field: String, reason: String },
    /// Applying a config.json field failed for the reason in `source`.
    #[error("config.json: {field}")]
    Field {
        field: String,
        #[source]
        source: Box<Error>,
    },
    #[error("{what} {path}")]
    Path {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A step failed because of `source`.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
    /// Something moor checks is not what it must be (a host device node, procfs, a pty, a
    /// directory in the rootfs): moor refuses to go on.
    #[error("{what}: {reason}")]
    Refused { what: String, reason: String },
    #[error("error running hook ({hook}) {path}: {reason}")]
    Hook {
        hook: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A step inside the container failed: init (or a process being exec'd) reported it before
    /// exiting. `kind` is the kind of the error it hit, `message` that error with its causes.
    #[error("container init: {message}")]
    Init { kind: Kind, message: String },
    /// Init went away before it reported how a step went.
    #[error("init exited during setup")]
    InitExited {
        #[source]
        source: io::Error,
    },
    /// The other side of the sync socket sent a message out of turn.
    #[error("unexpected sync message {got}")]
    Protocol { got: String },
    #[error("linux.seccomp: {0}")]
    Seccomp(moor_seccomp::Error),
    #[error("cgroup: {0}")]
    Cgroup(moor_cgroups::Error),
    /// create, run and exec clone and then run code in the child, which a lock held by another
    /// thread at the clone would deadlock: threaded callers use [`crate::Helper`].
    #[error("the calling process has {threads} threads: create, run and exec need a single-threaded caller (use moor::Helper)")]
    ThreadedCaller { threads: usize },
    /// The helper process is gone (killed, or it failed): its requests cannot be answered.
    #[error("moor helper: {0}")]
    HelperGone(String),
    /// An error the helper reported whose kind does not cross its socket: its text.
    #[error("{0}")]
    Remote(String),
    /// A command-line option of checkpoint or restore that cannot be used as given.
    #[error("{flag}: {reason}")]
    Flag { flag: &'static str, reason: String },
    /// CRIU failed; `detail` has its exit status, its log file and the log's last errors.
    #[error("criu {action} failed: {detail}")]
    Criu { action: &'static str, detail: String },
}

/// What kind of error it is, also for errors that crossed from init to the parent as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// config.json asks for something invalid or impossible ([`Error::Config`], [`Error::Field`],
    /// [`Error::InvalidId`]).
    Config,
    /// A system call or file operation failed ([`Error::Path`], [`Error::Sys`]).
    Os,
    /// The container's state does not allow the operation, or the container does not exist.
    State,
    Hook,
    Seccomp,
    Cgroup,
    /// A check moor makes failed ([`Error::Refused`]).
    Refused,
    /// Init died or broke the protocol.
    Init,
    /// The caller cannot use this entry point ([`Error::ThreadedCaller`]), or its helper process
    /// is gone or reported an error whose kind did not cross ([`Error::HelperGone`],
    /// [`Error::Remote`]).
    Caller,
}

/// Kinds as one ASCII letter, for the sync socket and the exec fifo (never '0', which the fifo
/// uses for success).
const KIND_CODES: [(Kind, u8); 9] = [
    (Kind::Config, b'c'),
    (Kind::Os, b'o'),
    (Kind::State, b's'),
    (Kind::Hook, b'h'),
    (Kind::Seccomp, b'x'),
    (Kind::Cgroup, b'g'),
    (Kind::Refused, b'r'),
    (Kind::Init, b'i'),
    (Kind::Caller, b'u'),
];

/// The error with each of its causes once, `: `-separated, as anyhow's `{:#}` prints it.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

impl Error {
    pub fn kind(&self) -> Kind {
        match self {
            Error::Config { .. } | Error::Field { .. } | Error::InvalidId { .. } => Kind::Config,
            Error::Path { .. } | Error::Sys { .. } => Kind::Os,
            Error::DoesNotExist(_)
            | Error::AlreadyExists(_)
            | Error::NotRunning(_)
            | Error::InvalidState(_)
            | Error::NotAllowed { .. } => Kind::State,
            Error::Context { source, .. } => source.kind(),
            Error::Refused { .. } => Kind::Refused,
            Error::Hook { .. } => Kind::Hook,
            Error::Init { kind, .. } => *kind,
            Error::InitExited { .. } | Error::Protocol { .. } => Kind::Init,
            Error::Seccomp(_) => Kind::Seccomp,
            Error::Cgroup(_) => Kind::Cgroup,
            Error::ThreadedCaller { .. } | Error::HelperGone(_) | Error::Remote(_) | Error::Flag { .. } => Kind::Caller,
            Error::Criu { .. } => Kind::Os,
        }
    }

    /// The error as init sends it to the parent: its kind's letter, then its [`report`].
    pub(crate) fn to_wire(&self) -> String {
        let code = KIND_CODES
            .iter()
            .find(|(k, _)| *k == self.kind())
            .map_or(b'i', |(_, c)| *c);
        let mut out = String::from(code as char);
        match self {
            // Already one that crossed: its text again, not "container init: " twice.
            Error::Init { message, .. } => out.push_str(message),
            e => out.push_str(&report(e)),
        }
        out
    }

    /// An error init sent with [`Error::to_wire`].
    pub(crate) fn from_wire(text: &[u8]) -> Error {
        let kind = text
            .first()
            .and_then(|c| KIND_CODES.iter().find(|(_, code)| code == c))
            .map(|(k, _)| *k);
        let message = match kind {
            Some(_) => &text[1..],
            None => text,
        };
        Error::Init {
            kind: kind.unwrap_or(Kind::Init),
            message: String::from_utf8_lossy(message).into_owned(),
        }
    }

    /// Says which config.json field `source` was about.
    pub fn field(field: impl Into<String>, source: Error) -> Self {
        Error::Field {
            field: field.into(),
            source: Box::new(source),
        }
    }

    /// Says which step `source` failed.
    pub fn context(what: impl Into<String>, source: Error) -> Self {
        Error::Context {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub fn refused(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Refused {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn path(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Path {
            what,
            path: path.into(),
            source,
        }
    }

    /// Wraps the current OS error (errno) with a description of what failed.
    pub fn last_os(what: impl Into<String>) -> Self {
        Error::Sys {
            what: what.into(),
            source: io::Error::last_os_error(),
        }
    }

    pub fn sys(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Sys {
            what: "system call".into(),
            source: e.into(),
        }
    }
}

/// Adds a description of what failed to nix and io results.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

// Their crates' errors say their OS error themselves (see the policy above).
impl From<moor_seccomp::Error> for Error {
    fn from(e: moor_seccomp::Error) -> Self {
        Error::Seccomp(e)
    }
}

impl From<moor_cgroups::Error> for Error {
    fn from(e: moor_cgroups::Error) -> Self {
        Error::Cgroup(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eperm() -> io::Error {
        io::Error::from_raw_os_error(libc::EPERM)
    }

    #[test]
    fn each_cause_is_printed_once() {
        let e = Error::path("cannot read state", "/run/moor/c1/state.json", eperm());
        assert_eq!(
            report(&e),
            "cannot read state /run/moor/c1/state.json: Operation not permitted (os error 1)"
        );
        let e = Error::field(
            "process.oomScoreAdj",
            Error::sys("write 5 to /proc/self/oom_score_adj", eperm()),
        );
        assert_eq!(
            report(&e),
            "config.json: process.oomScoreAdj: write 5 to /proc/self/oom_score_adj: Operation not permitted (os error 1)"
        );
    }

    #[test]
    fn errors_from_init_keep_their_kind_and_text() {
        let cases = [
            Error::config("process.cwd", "not a directory"),
            Error::sys("pivot_root", eperm()),
            Error::Hook {
                hook: "createContainer",
                path: "/bin/false".into(),
                reason: "failed: exit status: 1".into(),
            },
            Error::refused("the pty slave", "is not a pts device"),
            Error::context("mount", Error::config("mounts[0]", "bad")),
        ];
        for e in cases {
            let back = Error::from_wire(e.to_wire().as_bytes());
            assert_eq!(back.kind(), e.kind(), "{e:?}");
            assert_eq!(back.to_string(), format!("container init: {}", report(&e)));
        }
        assert_eq!(Error::from_wire(b"").kind(), Kind::Init);
        assert_eq!(Error::from_wire(b"?odd").to_string(), "container init: ?odd");
    }
}
