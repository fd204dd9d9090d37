//! Compiled programs run in the crate's BPF interpreter on synthetic `seccomp_data`.

mod common;

use common::*;
use moor_seccomp::arch::{Arch, AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use moor_seccomp::{compile, interp, Error};
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccompAction as A, LinuxSeccompFilterFlag as F, LinuxSeccompOperator as O,
};

const Z: [u64; 6] = [0; 6];

#[test]
fn every_action_as_rule() {
    let cases: Vec<(A, Option<u32>, u32)> = vec![
        (A::ScmpActAllow, None, ALLOW),
        (A::ScmpActErrno, None, EPERM),
        (A::ScmpActErrno, Some(13), errno(13)),
        (A::ScmpActErrno, Some(0), errno(0)),
        (A::ScmpActKill, None, KILL_THREAD),
        (A::ScmpActKillThread, None, KILL_THREAD),
        (A::ScmpActKillProcess, None, KILL_PROCESS),
        (A::ScmpActTrap, None, TRAP),
        (A::ScmpActTrace, None, trace(1)),
        (A::ScmpActTrace, Some(77), trace(77)),
        (A::ScmpActLog, None, LOG),
    ];
    for (action, e, want) in cases {
        let p = profile(
            A::ScmpActErrno,
            Some(99),
            &[],
            vec![
                rule(&["mkdir"], action, e, vec![]),
                rule(&["getpid"], A::ScmpActAllow, None, vec![]),
            ],
        );
        check(&p, &x64("mkdir", Z), want);
        check(&p, &x64("getpid", Z), ALLOW);
        check(&p, &x64("read", Z), errno(99));
    }
    let mut p = profile(
        A::ScmpActAllow,
        None,
        &[],
        vec![rule(&["mkdir"], A::ScmpActNotify, None, vec![])],
    );
    p.set_listener_path(Some("/tmp/agent.sock".into()));
    check(&p, &x64("mkdir", Z), NOTIFY);
    check(&p, &x64("read", Z), ALLOW);
    let c = compile(&p).unwrap();
    assert!(c.needs_notify_fd());
    assert_ne!(
        c.flags() & u32::try_from(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER).unwrap(),
        0
    );
}

#[test]
fn every_action_as_default() {
    let cases: Vec<(A, Option<u32>, u32)> = vec![
        (A::ScmpActAllow, None, ALLOW),
        (A::ScmpActErrno, None, EPERM),
        (A::ScmpActErrno, Some(38), errno(38)),
        (A::ScmpActKill, None, KILL_THREAD),
        (A::ScmpActKillThread, None, KILL_THREAD),
        (A::ScmpActKillProcess, None, KILL_PROCESS),
        (A::ScmpActTrap, None, TRAP),
        (A::ScmpActTrace, Some(5), trace(5)),
        (A::ScmpActLog, None, LOG),
    ];
    for (action, e, want) in cases {
        let p = profile(action, e, &[], vec![rule(&["write"], A::ScmpActErrno, Some(4), vec![])]);
        check(&p, &x64("read", Z), want);
        check(&p, &x64("write", Z), errno(4));
    }
}

#[test]
fn operators_on_64_bit_halves() {
    let values: [u64; 12] = [
        0,
        1,
        5,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0004,
        0x1_0000_0005,
        0x1_0000_0006,
        0x2_0000_0005,
        0xffff_ffff_0000_0000,
        0x8000_0000_0000_0005,
        u64::MAX,
    ];
    let ops = [
        O::ScmpCmpNe,
        O::ScmpCmpLt,
        O::ScmpCmpLe,
        O::ScmpCmpEq,
        O::ScmpCmpGe,
        O::ScmpCmpGt,
    ];
    for op in ops {
        for &v in &values {
            for idx in [0usize, 3, 5] {
                let p = profile(
                    A::ScmpActErrno,
                    None,
                    &[],
                    vec![rule(&["lseek"], A::ScmpActAllow, None, vec![arg(idx, op, v, None)])],
                );
                for &a in &values {
                    let mut args = [0xdead_beef_u64; 6];
                    args[idx] = a;
                    let want = match op {
                        O::ScmpCmpNe => a != v,
                        O::ScmpCmpLt => a < v,
                        O::ScmpCmpLe => a <= v,
                        O::ScmpCmpEq => a == v,
                        O::ScmpCmpGe => a >= v,
                        _ => a > v,
                    };
                    check(&p, &x64("lseek", args), if want { ALLOW } else { EPERM });
                }
            }
        }
    }
}

#[test]
fn masked_eq_is_arg_and_value_eq_value_two() {
    let cases: [(u64, u64); 6] = [
        (0x7E02_0000, 0),
        (0xff, 0x12),
        (0xffff_0000_0000_00ff, 0x1234_0000_0000_0012),
        (0xffff_ffff_0000_0000, 0x1_0000_0000),
        (0, 0),
        (0, 1),
    ];
    let args: [u64; 8] = [
        0,
        0x12,
        0x1234_5678_9abc_de12,
        0x1234_0000_0000_0012,
        0x1_0000_0012,
        0x1_ffff_ffff,
        0x10000,
        u64::MAX,
    ];
    for (mask, want_v) in cases {
        let p = profile(
            A::ScmpActErrno,
            None,
            &[],
            vec![rule(
                &["clone"],
                A::ScmpActAllow,
                None,
                vec![arg(1, O::ScmpCmpMaskedEq, mask, Some(want_v))],
            )],
        );
        for a in args {
            let want = if a & mask == want_v { ALLOW } else { EPERM };
            check(&p, &x64("clone", [0, a, 0, 0, 0, 0]), want);
        }
    }
}

#[test]
fn conditions_on_distinct_args_are_anded_repeated_args_split_and_rules_first_match() {
    // As runc 1.1 drives libseccomp: a rule naming one argument index twice is split into one
    // rule per condition (ORed, all of its conditions), otherwise its conditions are ANDed.
    let p = profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![
            rule(
                &["read"],
                A::ScmpActAllow,
                None,
                vec![arg(0, O::ScmpCmpEq, 10, None), arg(0, O::ScmpCmpEq, 20, None)],
            ),
            rule(&["read"], A::ScmpActErrno, Some(5), vec![arg(1, O::ScmpCmpEq, 7, None)]),
            rule(&["read"], A::ScmpActTrap, None, vec![arg(0, O::ScmpCmpEq, 25, None)]),
            rule(
                &["write"],
                A::ScmpActAllow,
                None,
                vec![arg(0, O::ScmpCmpEq, 1, None), arg(1, O::ScmpCmpEq, 2, None)],
            ),
            rule(
                &["pread64"],
                A::ScmpActAllow,
                None,
                vec![
                    arg(0, O::ScmpCmpEq, 1, None),
                    arg(0, O::ScmpCmpEq, 2, None),
                    arg(1, O::ScmpCmpEq, 3, None),
                ],
            ),
        ],
    );
    check(&p, &x64("read", [9, 0, 0, 0, 0, 0]), EPERM);
    check(&p, &x64("read", [10, 0, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("read", [20, 7, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("read", [15, 7, 0, 0, 0, 0]), errno(5));
    check(&p, &x64("read", [25, 7, 0, 0, 0, 0]), errno(5));
    check(&p, &x64("read", [25, 8, 0, 0, 0, 0]), TRAP);
    check(&p, &x64("read", [1 << 32 | 10, 0, 0, 0, 0, 0]), EPERM);
    check(&p, &x64("write", [1, 2, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("write", [1, 3, 0, 0, 0, 0]), EPERM);
    check(&p, &x64("write", [0, 2, 0, 0, 0, 0]), EPERM);
    check(&p, &x64("pread64", [2, 0, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("pread64", [0, 3, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("pread64", [0, 4, 0, 0, 0, 0]), EPERM);
}

#[test]
fn unconditional_rule_wins_and_default_equal_rules_are_dropped() {
    let p = profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![
            rule(&["openat"], A::ScmpActTrap, None, vec![arg(0, O::ScmpCmpEq, 1, None)]),
            rule(&["openat"], A::ScmpActAllow, None, vec![]),
            rule(&["openat"], A::ScmpActKill, None, vec![]),
            // Same as the default: dropped, so the ALLOW below decides for a0 == 3.
            rule(
                &["close"],
                A::ScmpActErrno,
                Some(1),
                vec![arg(0, O::ScmpCmpEq, 3, None)],
            ),
            rule(&["close"], A::ScmpActAllow, None, vec![arg(0, O::ScmpCmpLe, 3, None)]),
        ],
    );
    check(&p, &x64("openat", [1, 0, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("openat", [2, 0, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("close", [3, 0, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("close", [4, 0, 0, 0, 0, 0]), EPERM);
}

#[test]
fn architectures_and_compat_abis() {
    let rules = || {
        vec![
            rule(&["mkdir", "mkdirat"], A::ScmpActErrno, Some(17), vec![]),
            rule(
                &["getpid", "read", "write", "rt_sigaction"],
                A::ScmpActAllow,
                None,
                vec![],
            ),
        ]
    };
    let all = profile(
        A::ScmpActKillProcess,
        None,
        &[OciArch::ScmpArchX86_64, OciArch::ScmpArchX86, OciArch::ScmpArchX32],
        rules(),
    );
    let c = compile(&all).unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    for (arch, audit) in [
        (Arch::X86_64, AUDIT_ARCH_X86_64),
        (Arch::X86, AUDIT_ARCH_I386),
        (Arch::X32, AUDIT_ARCH_X86_64),
    ] {
        check(&all, &data(audit, nr(arch, "mkdir"), Z), errno(17));
        check(&all, &data(audit, nr(arch, "mkdirat"), Z), errno(17));
        check(&all, &data(audit, nr(arch, "getpid"), Z), ALLOW);
        check(&all, &data(audit, nr(arch, "rt_sigaction"), Z), ALLOW);
        check(&all, &data(audit, nr(arch, "close"), Z), KILL_PROCESS);
    }
    // i386's getpid (20) is x86_64's "alarm"... but on i386 it is getpid.
    check(&all, &data(AUDIT_ARCH_I386, 20, Z), ALLOW);
    check(&all, &data(AUDIT_ARCH_X86_64, 20, Z), KILL_PROCESS);
    // x32 numbers of x86_64-only syscalls (13 = x86_64 rt_sigaction) are not x32's.
    check(&all, &data(AUDIT_ARCH_X86_64, 13 | 0x4000_0000, Z), KILL_PROCESS);
    // Foreign arch: bad-arch kill.
    check(&all, &data(AUDIT_ARCH_AARCH64, 34, Z), KILL_THREAD);
    check(&all, &data(0xdead_beef, 0, Z), KILL_THREAD);

    // Only native: i386 and x32 calls are killed as bad arch.
    let native = profile(A::ScmpActErrno, None, &[], rules());
    check(&native, &data(AUDIT_ARCH_I386, nr(Arch::X86, "getpid"), Z), KILL_THREAD);
    check(
        &native,
        &data(AUDIT_ARCH_X86_64, nr(Arch::X32, "getpid"), Z),
        KILL_THREAD,
    );
    check(&native, &x64("getpid", Z), ALLOW);

    // aarch64 + arm (compiled on any host: the native arch is added too).
    let arm = profile(
        A::ScmpActErrno,
        None,
        &[OciArch::ScmpArchAarch64, OciArch::ScmpArchArm],
        rules(),
    );
    check(
        &arm,
        &data(AUDIT_ARCH_AARCH64, nr(Arch::Aarch64, "mkdirat"), Z),
        errno(17),
    );
    check(&arm, &data(AUDIT_ARCH_AARCH64, nr(Arch::Aarch64, "getpid"), Z), ALLOW);
    check(&arm, &data(AUDIT_ARCH_ARM, nr(Arch::Arm, "mkdir"), Z), errno(17));
    check(&arm, &data(AUDIT_ARCH_ARM, nr(Arch::Arm, "getpid"), Z), ALLOW);
    check(&arm, &data(AUDIT_ARCH_ARM, nr(Arch::Arm, "close"), Z), EPERM);
    check(&arm, &data(AUDIT_ARCH_I386, 20, Z), KILL_THREAD);

    // Unsupported arch in the list: a warning, not an error.
    let mips = profile(A::ScmpActErrno, None, &[OciArch::ScmpArchMips], rules());
    let c = compile(&mips).unwrap();
    assert!(
        c.warnings().iter().any(|w| w.contains("SCMP_ARCH_MIPS")),
        "{:?}",
        c.warnings()
    );
}

#[test]
fn enosys_above_the_largest_named_syscall() {
    // getpid = 39, mkdir = 83 on x86_64; read = 0.
    let p = profile(
        A::ScmpActErrno,
        None,
        &[OciArch::ScmpArchX86_64, OciArch::ScmpArchX86],
        vec![
            rule(&["read", "getpid"], A::ScmpActAllow, None, vec![]),
            // Same action as the default: dropped, but it still raises the ENOSYS threshold.
            rule(&["mkdir"], A::ScmpActErrno, None, vec![]),
        ],
    );
    check(&p, &x64("read", Z), ALLOW);
    check(&p, &x64("close", Z), EPERM); // 3, below the max
    check(&p, &x64("mkdir", Z), EPERM);
    check(&p, &data(AUDIT_ARCH_X86_64, 84, Z), ENOSYS);
    check(&p, &x64("clone3", Z), ENOSYS);
    check(&p, &data(AUDIT_ARCH_X86_64, 0x3fff_ffff, Z), ENOSYS);
    // Per arch: i386 mkdir = 39, getpid = 20.
    check(&p, &data(AUDIT_ARCH_I386, 39, Z), EPERM);
    check(&p, &data(AUDIT_ARCH_I386, 40, Z), ENOSYS);
    check(&p, &data(AUDIT_ARCH_I386, u32::MAX, Z), ENOSYS);
    // x32 bit without x32 in the filter stays a bad arch, not ENOSYS.
    check(&p, &data(AUDIT_ARCH_X86_64, 0x4000_0000, Z), KILL_THREAD);

    // No ENOSYS stub when the default allows.
    for default in [A::ScmpActAllow, A::ScmpActLog] {
        let p = profile(
            default,
            None,
            &[],
            vec![rule(&["mkdir"], A::ScmpActErrno, None, vec![])],
        );
        let want = if default == A::ScmpActAllow { ALLOW } else { LOG };
        check(&p, &x64("clone3", Z), want);
        check(&p, &x64("mkdir", Z), EPERM);
    }
}

#[test]
fn unknown_syscalls_are_skipped_with_a_warning() {
    let p = profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![rule(&["read", "no_such_call", "mkdir"], A::ScmpActAllow, None, vec![])],
    );
    let c = compile(&p).unwrap();
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(c.warnings()[0].contains("no_such_call"));
    check(&p, &x64("read", Z), ALLOW);
    check(&p, &x64("mkdir", Z), ALLOW);
}

#[test]
fn validation_errors_name_the_problem() {
    let err = |p| compile(&p).unwrap_err().to_string();
    let e = err(profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![rule(&["read"], A::ScmpActAllow, Some(3), vec![])],
    ));
    assert!(
        e.contains("errnoRet 3") && e.contains("SCMP_ACT_ALLOW") && e.contains("read"),
        "{e}"
    );
    let e = err(profile(A::ScmpActKill, Some(1), &[], vec![]));
    assert!(e.contains("defaultErrnoRet") && e.contains("SCMP_ACT_KILL"), "{e}");
    let e = err(profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![rule(&[], A::ScmpActAllow, None, vec![])],
    ));
    assert!(e.contains("syscalls[0]") && e.contains("names"), "{e}");
    let e = err(profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![
            rule(&["read"], A::ScmpActAllow, None, vec![]),
            rule(&["write"], A::ScmpActAllow, None, vec![arg(6, O::ScmpCmpEq, 1, None)]),
        ],
    ));
    assert!(
        e.contains("syscalls[1]") && e.contains("write") && e.contains("index 6"),
        "{e}"
    );
    let e = err(profile(A::ScmpActErrno, Some(70000), &[], vec![]));
    assert!(e.contains("defaultErrnoRet 70000"), "{e}");
    let e = err(profile(A::ScmpActNotify, None, &[], vec![]));
    assert!(e.contains("SCMP_ACT_NOTIFY"), "{e}");
    let e = err(profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![rule(&["mkdir"], A::ScmpActNotify, None, vec![])],
    ));
    assert!(e.contains("listenerPath") && e.contains("mkdir"), "{e}");
    assert!(matches!(
        compile(&profile(
            A::ScmpActErrno,
            None,
            &[],
            vec![rule(&["read"], A::ScmpActTrap, Some(1), vec![])]
        )),
        Err(Error::ErrnoRetNotAllowed { .. })
    ));
}

#[test]
fn flags() {
    let mut p = profile(
        A::ScmpActErrno,
        None,
        &[],
        vec![rule(&["read"], A::ScmpActAllow, None, vec![])],
    );
    p.set_flags(Some(vec![
        F::SeccompFilterFlagLog,
        F::SeccompFilterFlagSpecAllow,
        F::SeccompFilterFlagTsync,
    ]));
    let c = compile(&p).unwrap();
    assert_eq!(
        c.flags(),
        u32::try_from(
            libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW | libc::SECCOMP_FILTER_FLAG_TSYNC
        )
        .unwrap()
    );
    assert!(!c.needs_notify_fd());
    // WAIT_KILLABLE_RECV needs a listener: dropped with a warning without NOTIFY.
    p.set_flags(Some(vec![F::SeccompFilterFlagWaitKillableRecv]));
    let c = compile(&p).unwrap();
    assert_eq!(c.flags(), 0);
    assert_eq!(c.warnings().len(), 1);
    // With NOTIFY: NEW_LISTENER, and TSYNC gets TSYNC_ESRCH.
    p.set_syscalls(Some(vec![rule(&["read"], A::ScmpActNotify, None, vec![])]));
    p.set_listener_path(Some("/run/agent.sock".into()));
    p.set_flags(Some(vec![
        F::SeccompFilterFlagWaitKillableRecv,
        F::SeccompFilterFlagTsync,
    ]));
    let c = compile(&p).unwrap();
    assert_eq!(
        c.flags(),
        u32::try_from(
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                | libc::SECCOMP_FILTER_FLAG_TSYNC
                | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
                | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        )
        .unwrap()
    );
}

#[test]
fn long_jumps_stay_correct() {
    // Many conditional rules on many syscalls: blocks far beyond 255 instructions.
    let all: Vec<String> = syscall_names().into_iter().flatten().collect();
    let p = heavy_profile(&all);
    assert!(matches!(compile(&p), Err(Error::TooLong(n)) if n > 4096));
    let names = &all[..60];
    let p = heavy_profile(names);
    let c = compile(&p).unwrap();
    assert!(c.instructions().len() > 2000, "{}", c.instructions().len());
    interp::validate(c.instructions()).unwrap();
    // Some conditional jumps needed a `ja` trampoline.
    assert!(c.instructions().iter().any(|i| i.code == 0x05), "no long jump emitted");
    for (i, n) in names.iter().enumerate() {
        let v = i as u64 * 0x1_0000_0001;
        for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
            let Some(nr) = arch.syscall_nr(n) else {
                continue;
            };
            let audit = arch.audit_arch();
            for args in [[v; 6], [v + 1; 6], [0; 6], [u64::MAX; 6]] {
                let mut a = args;
                a[(i + 1) % 6] = v + 1;
                for d in [data(audit, nr, args), data(audit, nr, a)] {
                    assert_eq!(c.simulate(&d).unwrap().ret, reference(&p, &d), "{n} {arch:?} {d:?}");
                }
            }
        }
    }
}

fn heavy_profile(names: &[String]) -> oci_spec::runtime::LinuxSeccomp {
    let mut rules = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let v = i as u64 * 0x1_0000_0001;
        rules.push(rule(
            &[n],
            A::ScmpActAllow,
            None,
            vec![
                arg(i % 6, O::ScmpCmpEq, v, None),
                arg((i + 1) % 6, O::ScmpCmpGt, v, None),
            ],
        ));
        rules.push(rule(
            &[n],
            A::ScmpActErrno,
            Some(u32::try_from(i).unwrap()),
            vec![arg(
                i % 6,
                O::ScmpCmpMaskedEq,
                0xffff_0000_ffff,
                Some(v & 0xffff_0000_ffff),
            )],
        ));
    }
    profile(
        A::ScmpActKillProcess,
        None,
        &[OciArch::ScmpArchX86, OciArch::ScmpArchX32],
        rules,
    )
}

fn syscall_names() -> Vec<Option<String>> {
    // Names of x86_64 syscalls 0..120 found through the table (reverse lookup by scanning).
    const CANDIDATES: &[&str] = &[
        "read",
        "write",
        "open",
        "close",
        "stat",
        "fstat",
        "lstat",
        "poll",
        "lseek",
        "mmap",
        "mprotect",
        "munmap",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "pread64",
        "pwrite64",
        "readv",
        "writev",
        "access",
        "pipe",
        "select",
        "sched_yield",
        "mremap",
        "msync",
        "mincore",
        "madvise",
        "shmget",
        "shmat",
        "shmctl",
        "dup",
        "dup2",
        "pause",
        "nanosleep",
        "getitimer",
        "alarm",
        "setitimer",
        "getpid",
        "sendfile",
        "socket",
        "connect",
        "accept",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "shutdown",
        "bind",
        "listen",
        "getsockname",
        "getpeername",
        "socketpair",
        "setsockopt",
        "getsockopt",
        "clone",
        "fork",
        "vfork",
        "execve",
        "exit",
        "wait4",
        "kill",
        "uname",
        "semget",
        "semop",
        "semctl",
        "shmdt",
        "msgget",
        "msgsnd",
        "msgrcv",
        "msgctl",
        "fcntl",
        "flock",
        "fsync",
        "fdatasync",
        "truncate",
        "ftruncate",
        "getdents",
        "getcwd",
        "chdir",
        "fchdir",
        "rename",
        "mkdir",
        "rmdir",
        "creat",
        "link",
        "unlink",
        "symlink",
        "readlink",
        "chmod",
        "fchmod",
        "chown",
        "fchown",
        "lchown",
        "umask",
        "gettimeofday",
        "getrlimit",
        "getrusage",
        "sysinfo",
        "times",
        "ptrace",
        "getuid",
        "syslog",
        "getgid",
        "setuid",
        "setgid",
        "geteuid",
        "getegid",
        "setpgid",
        "getppid",
        "getpgrp",
        "setsid",
        "setreuid",
        "setregid",
        "getgroups",
        "setgroups",
        "setresuid",
        "getresuid",
        "setresgid",
    ];
    let mut v = vec![None; 120];
    for n in CANDIDATES {
        if let Some(nr) = Arch::X86_64.syscall_nr(n) {
            if (nr as usize) < v.len() {
                v[nr as usize] = Some(n.to_string());
            }
        }
    }
    v
}

#[test]
fn interpreter_rejects_what_the_kernel_rejects() {
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    assert!(interp::validate(&[]).is_err());
    assert!(interp::validate(&[ins(0x20, 0, 0, 0)]).is_err()); // no ret at the end
    assert!(interp::validate(&[ins(0x20, 0, 0, 2), ins(0x06, 0, 0, 0)]).is_err()); // misaligned load
    assert!(interp::validate(&[ins(0x20, 0, 0, 64), ins(0x06, 0, 0, 0)]).is_err()); // out of seccomp_data
    assert!(interp::validate(&[ins(0x15, 1, 0, 0), ins(0x06, 0, 0, 0)]).is_err()); // jump past the end
    assert!(interp::validate(&[ins(0x05, 0, 0, 1), ins(0x06, 0, 0, 0)]).is_err()); // ja past the end
    assert!(interp::validate(&[ins(0x15, 0, 0, 0), ins(0x06, 0, 0, 0)]).is_ok());
    let out = interp::run(
        &[
            ins(0x20, 0, 0, 4),
            ins(0x15, 0, 1, 7),
            ins(0x06, 0, 0, 1),
            ins(0x06, 0, 0, 2),
        ],
        &data(7, 0, Z),
    )
    .unwrap();
    assert_eq!(out, interp::Outcome { ret: 1, executed: 3 });
}
