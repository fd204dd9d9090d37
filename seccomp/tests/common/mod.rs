//! Shared test helpers: profile builders and a naive reference evaluator of the OCI seccomp
//! semantics, written independently of the compiler (only the syscall tables are shared).
#![allow(dead_code)]

use moor_seccomp::arch::{
    Arch, AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT,
};
use moor_seccomp::interp::{self, SeccompData};
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator as O, LinuxSyscall,
};

pub const ALLOW: u32 = 0x7fff_0000;
pub const LOG: u32 = 0x7ffc_0000;
pub const KILL_THREAD: u32 = 0;
pub const KILL_PROCESS: u32 = 0x8000_0000;
pub const TRAP: u32 = 0x0003_0000;
pub const NOTIFY: u32 = 0x7fc0_0000;
pub const fn errno(n: u32) -> u32 {
    0x0005_0000 | n
}
pub const fn trace(n: u32) -> u32 {
    0x7ff0_0000 | n
}
pub const ENOSYS: u32 = errno(38);
pub const EPERM: u32 = errno(1);

pub fn arg(index: usize, op: O, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default().index(index).op(op).value(value);
    let b = match value_two {
        Some(v) => b.value_two(v),
        None => b,
    };
    b.build().expect("valid arg")
}

pub fn rule(names: &[&str], action: A, errno_ret: Option<u32>, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    s.set_errno_ret(errno_ret);
    s.set_args(if args.is_empty() { None } else { Some(args) });
    s
}

pub fn profile(default: A, default_errno: Option<u32>, arches: &[OciArch], rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
    let mut p = LinuxSeccomp::default();
    p.set_default_action(default);
    p.set_default_errno_ret(default_errno);
    p.set_architectures(if arches.is_empty() { None } else { Some(arches.to_vec()) });
    p.set_syscalls(Some(rules));
    p
}

pub fn data(arch: u32, nr: u32, args: [u64; 6]) -> SeccompData {
    SeccompData {
        nr,
        arch,
        ip: 0x1234_5678,
        args,
    }
}

/// The x86_64 audit arch data for syscall `name` with `args`.
pub fn x64(name: &str, args: [u64; 6]) -> SeccompData {
    data(AUDIT_ARCH_X86_64, nr(Arch::X86_64, name), args)
}

pub fn nr(arch: Arch, name: &str) -> u32 {
    arch.syscall_nr(name).unwrap_or_else(|| panic!("{name} on {arch:?}"))
}

fn action_value(a: A, data: Option<u32>) -> u32 {
    match a {
        A::ScmpActKill | A::ScmpActKillThread => KILL_THREAD,
        A::ScmpActKillProcess => KILL_PROCESS,
        A::ScmpActTrap => TRAP,
        A::ScmpActErrno => errno(data.unwrap_or(1)),
        A::ScmpActTrace => trace(data.unwrap_or(1)),
        A::ScmpActLog => LOG,
        A::ScmpActNotify => NOTIFY,
        A::ScmpActAllow => ALLOW,
    }
}

fn op_holds(op: O, arg: u64, v: u64, v2: u64) -> bool {
    match op {
        O::ScmpCmpNe => arg != v,
        O::ScmpCmpLt => arg < v,
        O::ScmpCmpLe => arg <= v,
        O::ScmpCmpEq => arg == v,
        O::ScmpCmpGe => arg >= v,
        O::ScmpCmpGt => arg > v,
        O::ScmpCmpMaskedEq => arg & v == v2,
    }
}

/// What the OCI profile means for `d`, evaluated directly (no BPF).
pub fn reference(p: &LinuxSeccomp, d: &SeccompData) -> u32 {
    let native = Arch::native().expect("supported host");
    let mut arches = vec![native];
    for a in p.architectures().iter().flatten() {
        let m = match a {
            OciArch::ScmpArchNative => Some(native),
            OciArch::ScmpArchX86_64 => Some(Arch::X86_64),
            OciArch::ScmpArchX86 => Some(Arch::X86),
            OciArch::ScmpArchX32 => Some(Arch::X32),
            OciArch::ScmpArchAarch64 => Some(Arch::Aarch64),
            OciArch::ScmpArchArm => Some(Arch::Arm),
            _ => None,
        };
        arches.extend(m);
    }
    let abi = match d.arch {
        // Like libseccomp: on x86_64 every nr >= 0x40000000 belongs to the x32 half.
        AUDIT_ARCH_X86_64 if d.nr >= X32_SYSCALL_BIT => Arch::X32,
        AUDIT_ARCH_X86_64 => Arch::X86_64,
        AUDIT_ARCH_I386 => Arch::X86,
        AUDIT_ARCH_AARCH64 => Arch::Aarch64,
        AUDIT_ARCH_ARM => Arch::Arm,
        _ => return KILL_THREAD,
    };
    if !arches.contains(&abi) {
        return KILL_THREAD;
    }
    let default = action_value(p.default_action(), p.default_errno_ret());
    let rules: &[LinuxSyscall] = p.syscalls().as_deref().unwrap_or(&[]);
    let names_it = |r: &LinuxSyscall| r.names().iter().any(|n| abi.syscall_nr(n) == Some(d.nr));
    let live: Vec<&LinuxSyscall> = rules
        .iter()
        .filter(|r| names_it(r) && action_value(r.action(), r.errno_ret()) != default)
        .collect();
    if let Some(r) = live.iter().find(|r| r.args().as_ref().is_none_or(|a| a.is_empty())) {
        return action_value(r.action(), r.errno_ret());
    }
    for r in &live {
        let conds = r.args().as_deref().unwrap_or(&[]);
        let holds = |c: &oci_spec::runtime::LinuxSeccompArg| {
            op_holds(c.op(), d.args[c.index()], c.value(), c.value_two().unwrap_or(0))
        };
        // runc 1.1: a rule naming one argument index twice is split into one rule per condition.
        let repeated = conds
            .iter()
            .enumerate()
            .any(|(k, c)| conds[..k].iter().any(|o| o.index() == c.index()));
        let matched = if repeated {
            conds.iter().any(holds)
        } else {
            conds.iter().all(holds)
        };
        if matched {
            return action_value(r.action(), r.errno_ret());
        }
    }
    if default != ALLOW && default != LOG {
        let max = rules
            .iter()
            .flat_map(|r| r.names().iter())
            .filter_map(|n| abi.syscall_nr(n))
            .max();
        if let Some(max) = max {
            if d.nr > max {
                return ENOSYS;
            }
        }
    }
    default
}

/// Compiles, validates and runs `p` on `d`.
pub fn run(p: &LinuxSeccomp, d: &SeccompData) -> u32 {
    let c = moor_seccomp::compile(p).expect("compiles");
    interp::validate(c.instructions()).expect("valid program");
    interp::run(c.instructions(), d).expect("runs").ret
}

/// Runs and checks the result against the reference too.
pub fn check(p: &LinuxSeccomp, d: &SeccompData, expected: u32) {
    let got = run(p, d);
    assert_eq!(
        got, expected,
        "compiled filter on {d:?}: got {got:#x}, want {expected:#x}"
    );
    assert_eq!(reference(p, d), expected, "reference on {d:?}");
}
