//! moorlet's RuntimeDefault seccomp profile: an allow-list of what ordinary programs use;
//! everything else fails with EPERM. Left out on purpose, because each gives a container a way
//! at the kernel or the host that ordinary workloads never need: bpf, perf_event_open,
//! userfaultfd, io_uring, keyrings (add_key, keyctl, request_key), kexec and modules, mount
//! and the new mount API, pivot_root, unshare and setns, settimeofday and clock_settime, swap, reboot,
//! quotactl, acct, open_by_handle_at and name_to_handle_at, the NUMA calls, iopl/ioperm,
//! syslog, vhangup and the obsolete ones (uselib, ustat, sysfs, _sysctl, vm86). clone may not
//! make namespaces; clone3 (whose flags live in memory a filter cannot read) reports ENOSYS so
//! that libc falls back to clone; ptrace and process_vm_* only on kernels from 4.8 on, where
//! ptrace can no longer be used to skip the filter.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};

#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    // files and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "_llseek", "dup", "dup2", "dup3",
    "pipe", "pipe2", "fcntl", "fcntl64", "ioctl", "flock", "fsync", "fdatasync", "sync", "syncfs",
    "sync_file_range", "truncate", "truncate64", "ftruncate",
    "ftruncate64", "fallocate", "fadvise64", "fadvise64_64", "readahead", "sendfile",
    "sendfile64", "splice", "tee", "vmsplice", "copy_file_range",
    // file metadata and names
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "newfstatat", "fstatat64", "statx", "statfs",
    "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "getdents", "getdents64", "getcwd", "chdir", "fchdir", "chroot", "chmod", "fchmod", "fchmodat", "fchmodat2",
    "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "utime", "utimes", "futimesat",
    "utimensat", "utimensat_time64", "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link",
    "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "mknod", "mknodat", "umask",
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr", "llistxattr",
    "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    // waiting for events
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old", "epoll_pwait", "epoll_pwait2",
    "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_settime64",
    "timerfd_gettime", "timerfd_gettime64", "inotify_init", "inotify_init1", "inotify_add_watch",
    "inotify_rm_watch", "io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    "io_submit", "io_cancel",
    // memory
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "pkey_mprotect", "pkey_alloc", "pkey_free", "madvise",
    "mlock", "mlock2", "munlock", "mlockall", "munlockall", "mincore", "msync", "membarrier", "memfd_create",
    "remap_file_pages", "cachestat", "process_madvise", "process_mrelease",
    // processes, threads and signals
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid", "kill", "tkill",
    "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaction",
    "sigaltstack", "signal", "sigpending", "sigprocmask", "sigsuspend", "pause", "restart_syscall", "getpid",
    "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "set_tid_address",
    "set_robust_list", "get_robust_list", "futex", "futex_time64", "futex_waitv", "rseq", "arch_prctl", "prctl",
    "set_thread_area", "get_thread_area", "seccomp", "pidfd_open",
    "pidfd_send_signal", "pidfd_getfd", "capget", "capset", "landlock_create_ruleset", "landlock_add_rule",
    "landlock_restrict_self",
    // credentials
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32", "setuid",
    "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid",
    "setresuid32", "setresgid", "setresgid32", "getresuid", "getresuid32", "getresgid", "getresgid32",
    "getgroups", "getgroups32", "setgroups", "setgroups32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
    // scheduling and limits
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr", "sched_setattr", "getpriority",
    "setpriority", "ioprio_get", "ioprio_set", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage",
    "times",
    // time (reading it; setting it is the host's: the adjtimex calls change the clock only
    // with CAP_SYS_TIME, which no container has by default)
    "time", "gettimeofday", "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "alarm", "getitimer", "setitimer", "timer_create",
    "timer_settime", "timer_settime64", "timer_gettime", "timer_gettime64", "timer_getoverrun", "timer_delete",
    "uname", "sysinfo", "getcpu", "getrandom",
    // sockets (socket itself is below, with a condition)
    "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername", "sendto",
    "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
    "setsockopt", "getsockopt", "socketcall",
    // System V and POSIX IPC (namespaced)
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "ipc", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
];

/// Names only the arm tables have.
const ARM_ONLY: &[&str] = &[
    "sync_file_range2",
    "arm_sync_file_range",
    "arm_fadvise64_64",
    "set_tls",
    "cacheflush",
    "breakpoint",
    "send",
    "recv",
];

/// Allowed only where ptrace can no longer bypass seccomp (Linux 4.8).
const PTRACE: &[&str] = &["ptrace", "process_vm_readv", "process_vm_writev"];

/// Flags of clone that make namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET).
const CLONE_NAMESPACES: u64 = 0x7E02_0000;
const AF_VSOCK: u64 = 40;
/// personality(2) values ordinary programs use: PER_LINUX, PER_LINUX32, UNAME26 with both, query.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn rule(names: &[&str], action: LinuxSeccompAction, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names.iter().map(|n| n.to_string()).collect());
    r.set_action(action);
    if !args.is_empty() {
        r.set_args(Some(args));
    }
    r
}

/// An argument condition. The builder cannot fail for these fields; were it to, the rule it
/// belongs to is left out, and the syscall stays denied.
fn arg(index: usize, op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> Option<LinuxSeccompArg> {
    let b = LinuxSeccompArgBuilder::default().index(index).op(op).value(value);
    match value_two {
        Some(v) => b.value_two(v),
        None => b,
    }
    .build()
    .ok()
}

/// `major.minor` of the running kernel.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = uts.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    version >= (major, minor)
}

fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        Vec::new()
    }
}

/// The profile RuntimeDefault (and an unset seccompProfile) gives a container.
pub fn runtime_default_seccomp() -> LinuxSeccomp {
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    use LinuxSeccompOperator::{ScmpCmpEq as Eq, ScmpCmpMaskedEq as MaskedEq, ScmpCmpNe as Ne};
    let mut syscalls = vec![rule(ALLOWED, Allow, Vec::new())];
    if cfg!(any(target_arch = "aarch64", target_arch = "arm")) {
        syscalls.push(rule(ARM_ONLY, Allow, Vec::new()));
    }
    if kernel_at_least(4, 8) {
        syscalls.push(rule(PTRACE, Allow, Vec::new()));
    }
    syscalls.extend(arg(0, MaskedEq, CLONE_NAMESPACES, Some(0)).map(|a| rule(&["clone"], Allow, vec![a])));
    let mut clone3 = rule(&["clone3"], Errno, Vec::new());
    clone3.set_errno_ret(Some(ENOSYS));
    syscalls.push(clone3);
    syscalls.extend(arg(0, Ne, AF_VSOCK, None).map(|a| rule(&["socket"], Allow, vec![a])));
    for p in PERSONALITIES {
        syscalls.extend(arg(0, Eq, *p, None).map(|a| rule(&["personality"], Allow, vec![a])));
    }
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(Errno);
    profile.set_default_errno_ret(Some(EPERM));
    let arches = architectures();
    if !arches.is_empty() {
        profile.set_architectures(Some(arches));
    }
    profile.set_syscalls(Some(syscalls));
    profile
}
