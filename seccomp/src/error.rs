//! Errors of compiling, loading and handing off a seccomp filter.

/// Everything that can go wrong; each message names the offending field, syscall or action.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `errnoRet` on a rule whose action is neither `SCMP_ACT_ERRNO` nor `SCMP_ACT_TRACE`.
    #[error("seccomp: syscalls[{rule}] ({names}): errnoRet {errno} is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}")]
    ErrnoRetNotAllowed {
        /// Index of the rule in `syscalls`.
        rule: usize,
        /// The rule's names, comma separated.
        names: String,
        /// The rule's action.
        action: String,
        /// The errnoRet given.
        errno: u32,
    },
    /// `defaultErrnoRet` with a default action that takes no data.
    #[error("seccomp: defaultErrnoRet {errno} is only valid with defaultAction SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}")]
    DefaultErrnoRetNotAllowed {
        /// The default action.
        action: String,
        /// The defaultErrnoRet given.
        errno: u32,
    },
    /// An errno/trace value that does not fit SECCOMP_RET_DATA (16 bits).
    #[error("seccomp: {field} {value} does not fit in 16 bits (SECCOMP_RET_DATA)")]
    DataTooLarge {
        /// Which field (`defaultErrnoRet` or `syscalls[i].errnoRet`).
        field: String,
        /// The value.
        value: u32,
    },
    /// A rule with an empty `names` list (or an empty name).
    #[error("seccomp: syscalls[{rule}]: names is empty or contains an empty name")]
    EmptyNames {
        /// Index of the rule in `syscalls`.
        rule: usize,
    },
    /// Argument index outside 0..=5.
    #[error("seccomp: syscalls[{rule}] ({names}): args[{arg}].index {index} is out of range (0..=5)")]
    ArgIndex {
        /// Index of the rule in `syscalls`.
        rule: usize,
        /// The rule's names, comma separated.
        names: String,
        /// Index in the rule's `args`.
        arg: usize,
        /// The index given.
        index: usize,
    },
    /// `SCMP_ACT_NOTIFY` as defaultAction: it would stop the runtime itself before execve.
    #[error("seccomp: SCMP_ACT_NOTIFY cannot be used as defaultAction")]
    NotifyDefault,
    /// `SCMP_ACT_NOTIFY` used but no `listenerPath` to hand the fd to.
    #[error("seccomp: syscalls[{rule}] ({names}) uses SCMP_ACT_NOTIFY but listenerPath is not set")]
    NotifyWithoutListener {
        /// Index of the rule in `syscalls`.
        rule: usize,
        /// The rule's names, comma separated.
        names: String,
    },
    /// The native architecture has no syscall table here.
    #[error("seccomp: the native architecture ({0}) is not supported")]
    UnsupportedNative(&'static str),
    /// The generated program exceeds the kernel's limit.
    #[error("seccomp: the compiled filter has {0} instructions, more than the kernel's limit of 4096")]
    TooLong(usize),
    /// seccomp(2) failed.
    #[error("seccomp: seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x}) failed: {source}{hint}")]
    Install {
        /// Flags passed.
        flags: u32,
        /// The OS error.
        source: std::io::Error,
        /// Extra explanation (e.g. no_new_privs not set).
        hint: &'static str,
    },
    /// SECCOMP_FILTER_FLAG_TSYNC could not synchronize a thread.
    #[error("seccomp: SECCOMP_FILTER_FLAG_TSYNC failed: thread {0} could not be synchronized")]
    Tsync(i64),
    /// Handing the notify fd to the listener failed.
    #[error("seccomp: sending the notify fd to listenerPath {path}: {source}")]
    Notify {
        /// The listener path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
