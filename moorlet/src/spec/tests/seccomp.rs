use super::*;

#[test]
fn the_default_profile_compiles_with_moors_compiler_without_unknown_names() {
    let compiled = moor_seccomp::compile(&runtime_default_seccomp()).expect("compile");
    assert!(compiled.warnings().is_empty(), "{:?}", compiled.warnings());
}

/// Runs the compiled filter in moor's BPF interpreter, as the kernel would run it.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_default_profile_allows_ordinary_calls_and_denies_the_dangerous_ones() {
    use moor_seccomp::interp::SeccompData;
    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;
    const ENOSYS: u32 = 0x0005_0026;
    let compiled = moor_seccomp::compile(&runtime_default_seccomp()).expect("compile");
    let nr = |n: i64| u32::try_from(n).expect("nr");
    let cases: &[(&str, i64, [u64; 6], u32)] = &[
        ("read", libc::SYS_read, [0; 6], ALLOW),
        ("execve", libc::SYS_execve, [0; 6], ALLOW),
        ("openat", libc::SYS_openat, [0; 6], ALLOW),
        ("clone(SIGCHLD)", libc::SYS_clone, [17, 0, 0, 0, 0, 0], ALLOW),
        ("clone(thread)", libc::SYS_clone, [0x003d_0f00, 0, 0, 0, 0, 0], ALLOW),
        (
            "clone(NEWUSER)",
            libc::SYS_clone,
            [0x1000_0000 | 17, 0, 0, 0, 0, 0],
            EPERM,
        ),
        ("clone(NEWNS)", libc::SYS_clone, [0x0002_0000, 0, 0, 0, 0, 0], EPERM),
        ("clone(NEWNET)", libc::SYS_clone, [0x4000_0000, 0, 0, 0, 0, 0], EPERM),
        ("clone3", libc::SYS_clone3, [0; 6], ENOSYS),
        ("unshare", libc::SYS_unshare, [0x1000_0000, 0, 0, 0, 0, 0], EPERM),
        ("setns", libc::SYS_setns, [0; 6], EPERM),
        ("mount", libc::SYS_mount, [0; 6], EPERM),
        ("bpf", libc::SYS_bpf, [0; 6], EPERM),
        ("keyctl", libc::SYS_keyctl, [0; 6], EPERM),
        ("kexec_load", libc::SYS_kexec_load, [0; 6], EPERM),
        ("init_module", libc::SYS_init_module, [0; 6], EPERM),
        ("perf_event_open", libc::SYS_perf_event_open, [0; 6], EPERM),
        ("userfaultfd", libc::SYS_userfaultfd, [0; 6], EPERM),
        ("io_uring_setup", libc::SYS_io_uring_setup, [0; 6], EPERM),
        ("open_by_handle_at", libc::SYS_open_by_handle_at, [0; 6], EPERM),
        ("ptrace", libc::SYS_ptrace, [0; 6], ALLOW),
        ("socket(AF_INET)", libc::SYS_socket, [2, 3, 1, 0, 0, 0], ALLOW),
        ("socket(AF_VSOCK)", libc::SYS_socket, [40, 1, 0, 0, 0, 0], EPERM),
        ("personality(PER_LINUX)", libc::SYS_personality, [0; 6], ALLOW),
        (
            "personality(ADDR_NO_RANDOMIZE)",
            libc::SYS_personality,
            [0x0004_0000, 0, 0, 0, 0, 0],
            EPERM,
        ),
        ("reboot", libc::SYS_reboot, [0; 6], EPERM),
        ("clock_settime", libc::SYS_clock_settime, [0; 6], EPERM),
    ];
    for (name, n, args, want) in cases {
        let data = SeccompData {
            nr: nr(*n),
            arch: moor_seccomp::arch::AUDIT_ARCH_X86_64,
            ip: 0,
            args: *args,
        };
        let got = compiled.simulate(&data).expect("simulate").ret;
        assert_eq!(got, *want, "{name}: {got:#x}");
    }
}
