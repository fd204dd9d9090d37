//! Property test: random profiles and random `seccomp_data`, the compiled filter (run in the
//! interpreter) must agree with the naive reference evaluator in tests/common.

mod common;

use common::*;
use moor_seccomp::arch::{Arch, AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use moor_seccomp::{compile, interp};
use oci_spec::runtime::{Arch as OciArch, LinuxSeccompAction as A, LinuxSeccompOperator as O, LinuxSyscall};
use proptest::prelude::*;

/// Names that exist on some or all supported ABIs (a few on one ABI only, one unknown).
const NAMES: &[&str] = &[
    "read",
    "write",
    "close",
    "mkdir",
    "mkdirat",
    "getpid",
    "getppid",
    "clone",
    "clone3",
    "socket",
    "personality",
    "open",
    "openat",
    "mmap",
    "mmap2",
    "ioctl",
    "futex",
    "exit_group",
    "kexec_load",
    "set_tls",
    "arch_prctl",
    "socketcall",
    "rt_sigaction",
    "io_uring_setup",
    "no_such_syscall",
];

const VALUES: &[u64] = &[
    0,
    1,
    2,
    5,
    8,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    0x1_0000_0005,
    0xffff_ffff_0000_0000,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => proptest::sample::select(VALUES),
        1 => any::<u64>(),
        1 => 0u64..16,
    ]
}

fn action() -> impl Strategy<Value = (A, Option<u32>)> {
    prop_oneof![
        4 => Just((A::ScmpActAllow, None)),
        3 => (0u32..4).prop_map(|e| (A::ScmpActErrno, if e == 0 { None } else { Some(e) })),
        1 => Just((A::ScmpActKill, None)),
        1 => Just((A::ScmpActKillProcess, None)),
        1 => Just((A::ScmpActTrap, None)),
        1 => (0u32..3).prop_map(|e| (A::ScmpActTrace, Some(e))),
        1 => Just((A::ScmpActLog, None)),
        1 => Just((A::ScmpActNotify, None)),
    ]
}

fn op() -> impl Strategy<Value = O> {
    proptest::sample::select(vec![
        O::ScmpCmpNe,
        O::ScmpCmpLt,
        O::ScmpCmpLe,
        O::ScmpCmpEq,
        O::ScmpCmpGe,
        O::ScmpCmpGt,
        O::ScmpCmpMaskedEq,
    ])
}

fn syscall_rule() -> impl Strategy<Value = LinuxSyscall> {
    (
        proptest::sample::subsequence(NAMES, 1..4),
        action(),
        prop_oneof![2 => Just(vec![]), 3 => proptest::collection::vec((0usize..3, op(), value(), value()), 1..4)],
    )
        .prop_map(|(names, (act, e), conds)| {
            let args = conds
                .into_iter()
                .map(|(i, o, v, v2)| {
                    // valueTwo usually within the mask, so MASKED_EQ can match.
                    arg(i, o, v, if o == O::ScmpCmpMaskedEq { Some(v2 & v) } else { None })
                })
                .collect();
            rule(&names, act, e, args)
        })
}

fn arches() -> impl Strategy<Value = Vec<OciArch>> {
    proptest::sample::subsequence(
        vec![
            OciArch::ScmpArchX86,
            OciArch::ScmpArchX32,
            OciArch::ScmpArchAarch64,
            OciArch::ScmpArchArm,
            OciArch::ScmpArchNative,
        ],
        0..4,
    )
}

fn default_action() -> impl Strategy<Value = (A, Option<u32>)> {
    prop_oneof![
        3 => (0u32..3).prop_map(|e| (A::ScmpActErrno, if e == 0 { None } else { Some(e) })),
        1 => Just((A::ScmpActAllow, None)),
        1 => Just((A::ScmpActKill, None)),
        1 => Just((A::ScmpActTrap, None)),
        1 => Just((A::ScmpActLog, None)),
    ]
}

/// A syscall number likely to matter for the profile on `arch`.
fn sample_data(arch_pick: u8, name_pick: usize, raw_nr: u32, use_raw: bool, args: [u64; 6]) -> SeccompData {
    let (audit, abi) = match arch_pick % 6 {
        0 => (AUDIT_ARCH_X86_64, Some(Arch::X86_64)),
        1 => (AUDIT_ARCH_I386, Some(Arch::X86)),
        2 => (AUDIT_ARCH_X86_64, Some(Arch::X32)),
        3 => (AUDIT_ARCH_AARCH64, Some(Arch::Aarch64)),
        4 => (AUDIT_ARCH_ARM, Some(Arch::Arm)),
        _ => (0x4000_0008, None),
    };
    let named = abi.and_then(|a| a.syscall_nr(NAMES[name_pick % NAMES.len()]));
    let nr = match (use_raw, named) {
        (false, Some(n)) => n,
        _ if abi == Some(Arch::X32) => raw_nr | 0x4000_0000,
        _ => raw_nr,
    };
    data(audit, nr, args)
}

use moor_seccomp::interp::SeccompData;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn compiled_matches_reference(
        (default, default_errno) in default_action(),
        arch_list in arches(),
        rules in proptest::collection::vec(syscall_rule(), 0..10),
        samples in proptest::collection::vec(
            (any::<u8>(), any::<usize>(), prop_oneof![0u32..600, any::<u32>()], proptest::bool::weighted(0.2),
             proptest::array::uniform6(value())),
            16..48),
    ) {
        let mut p = profile(default, default_errno, &arch_list, rules);
        p.set_listener_path(Some("/run/agent.sock".into()));
        let c = compile(&p).expect("random profiles are valid");
        interp::validate(c.instructions()).expect("valid program");
        for (a, n, raw, use_raw, args) in samples {
            let d = sample_data(a, n, raw, use_raw, args);
            let got = interp::run(c.instructions(), &d).unwrap().ret;
            prop_assert_eq!(got, reference(&p, &d), "data {:?}", d);
        }
    }
}
