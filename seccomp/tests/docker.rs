//! The Docker-style default profile in tests/data compiles and behaves as expected.

mod common;

use common::*;
use moor_seccomp::arch::{Arch, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use moor_seccomp::{compile, interp};
use oci_spec::runtime::LinuxSeccomp;

const Z: [u64; 6] = [0; 6];

fn docker() -> LinuxSeccomp {
    let text = include_str!("data/docker-default.json");
    serde_json::from_str(text).expect("profile parses")
}

fn allowed_names(p: &LinuxSeccomp) -> Vec<String> {
    p.syscalls().as_ref().map_or_else(Vec::new, |s| s[0].names().clone())
}

#[test]
fn compiles_small_and_valid() {
    let p = docker();
    let c = compile(&p).expect("compiles");
    interp::validate(c.instructions()).expect("valid");
    assert!(c.instructions().len() < 600, "{} instructions", c.instructions().len());
    assert!(!c.needs_notify_fd());
    // Only names that exist on no x86 ABI are reported (e.g. send/recv exist on arm only).
    for w in c.warnings() {
        assert!(w.contains("unknown syscall"), "{w}");
    }
    assert!(c.warnings().len() < 10, "{:?}", c.warnings());
}

#[test]
fn allows_the_allowlist_on_every_abi() {
    let p = docker();
    let c = compile(&p).unwrap();
    let mut checked = 0;
    for n in allowed_names(&p) {
        for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
            if let Some(nr) = arch.syscall_nr(&n) {
                let d = data(arch.audit_arch(), nr, Z);
                let out = c.simulate(&d).unwrap();
                assert_eq!(out.ret, ALLOW, "{n} on {arch:?}");
                assert_eq!(reference(&p, &d), ALLOW);
                assert!(out.executed <= 16, "{n} on {arch:?}: {} instructions", out.executed);
                checked += 1;
            }
        }
    }
    assert!(checked > 800, "{checked}");
}

#[test]
fn denies_the_dangerous_ones() {
    let p = docker();
    for n in [
        "kexec_load",
        "mount",
        "umount2",
        "reboot",
        "init_module",
        "bpf",
        "ptrace",
        "unshare",
        "setns",
        "open_by_handle_at",
    ] {
        for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
            if let Some(nr) = arch.syscall_nr(n) {
                check(&p, &data(arch.audit_arch(), nr, Z), EPERM);
            }
        }
    }
    // clone: namespace flags denied, thread/fork flags allowed.
    let clone_thread = 0x3d0f00; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    check(&p, &x64("clone", [clone_thread, 0, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("clone", [0x1200011, 0, 0, 0, 0, 0]), ALLOW); // fork() from glibc
    check(&p, &x64("clone", [0x1000_0000 | 17, 0, 0, 0, 0, 0]), EPERM); // CLONE_NEWUSER
    check(&p, &x64("clone", [0x2_0000 | 17, 0, 0, 0, 0, 0]), EPERM); // CLONE_NEWNS
    check(
        &p,
        &data(AUDIT_ARCH_I386, nr(Arch::X86, "clone"), [0x0002_0000, 0, 0, 0, 0, 0]),
        EPERM,
    );
    check(&p, &x64("clone3", Z), ENOSYS);
    // personality: only the listed personas.
    for (v, want) in [
        (0, ALLOW),
        (8, ALLOW),
        (0x20000, ALLOW),
        (0xffff_ffff, ALLOW),
        (1, EPERM),
        (0x40_0000, EPERM),
    ] {
        check(&p, &x64("personality", [v, 0, 0, 0, 0, 0]), want);
    }
    // socket: anything but AF_VSOCK.
    check(&p, &x64("socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    check(&p, &x64("socket", [40, 1, 0, 0, 0, 0]), EPERM);
    // Newer than every named syscall: ENOSYS so libc falls back.
    check(&p, &data(AUDIT_ARCH_X86_64, 600, Z), ENOSYS);
    check(&p, &data(AUDIT_ARCH_X86_64, 0x4000_0000 | 600, Z), ENOSYS);
    check(&p, &data(AUDIT_ARCH_I386, 1000, Z), ENOSYS);
}

#[test]
fn matches_the_reference_everywhere() {
    let p = docker();
    let c = compile(&p).unwrap();
    let interesting = [0u64, 8, 17, 40, 0x2_0000, 0x7E02_0000, 0xffff_ffff, 1 << 32, u64::MAX];
    let conditional: Vec<u32> = ["personality", "socket", "clone"]
        .iter()
        .flat_map(|n| Arch::ALL.iter().filter_map(move |a| a.syscall_nr(n)))
        .collect();
    for audit in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0xC000_00B7] {
        for base in [0u32, 0x4000_0000] {
            for nr in (base..base + 700).chain([base | 0x3fff_ffff, u32::MAX]) {
                let values: &[u64] = if conditional.contains(&nr) {
                    &interesting
                } else {
                    &[0, u64::MAX]
                };
                for &a in values {
                    let d = data(audit, nr, [a; 6]);
                    assert_eq!(c.simulate(&d).unwrap().ret, reference(&p, &d), "{d:?}");
                }
            }
        }
    }
}
