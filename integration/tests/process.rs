//! The process section of config.json: args, env, cwd, user, umask, rlimits, caps, ...

use moor_integration::bundle::Bundle;
use moor_integration::host::{cap_mask, parse_cap_hex, status_field, SysctlGuard};
use moor_integration::runner::pass_fd;
use moor_integration::{require_root, runtime_is, runtime_version, skip, Ctx};
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Runs `script` under `sh -c` with `tweak` applied to the bundle; returns (stdout, stderr).
fn run_sh(name: &str, script: &str, tweak: impl FnOnce(&mut Bundle)) -> (String, String) {
    let ctx = Ctx::new(name);
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh(script);
    tweak(&mut b);
    let c = ctx.create(&b, &id, &[]).ok();
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    (c.stdout_now(), c.stderr_now())
}

#[test]
fn args_use_path_lookup() {
    require_root!();
    let ctx = Ctx::new("path_lookup");
    let (id, b) = ctx.bundle(&["echo", "via", "PATH"]);
    let out = ctx.run_to_stop(&b, &id);
    assert_eq!(out, "via PATH\n");
}

#[test]
fn env_is_exactly_passed() {
    require_root!();
    let (out, _) = run_sh("env", "env", |b| {
        b.push_env("FOO=bar baz");
        b.push_env("EMPTY=");
    });
    assert!(out.lines().any(|l| l == "FOO=bar baz"), "{out}");
    assert!(out.lines().any(|l| l == "EMPTY="), "{out}");
    assert!(out.lines().any(|l| l == "TERM=xterm"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("PATH=/usr/local/sbin")), "{out}");
}

#[test]
fn cwd_is_applied() {
    require_root!();
    let (out, _) = run_sh("cwd", "pwd", |b| {
        b.set("/process/cwd", json!("/etc"));
    });
    assert_eq!(out, "/etc\n");
}

#[test]
fn cwd_that_does_not_exist_is_created_or_refused() {
    require_root!();
    // runc creates a missing cwd; a runtime may instead refuse at create. What it must never do is
    // run the process in some other directory.
    let ctx = Ctx::new("cwd_missing");
    let (id, mut b) = ctx.bundle(&["pwd"]);
    b.set("/process/cwd", json!("/does/not/exist"));
    let c = ctx.create(&b, &id, &[]);
    if !c.success() {
        assert!(c.stderr.contains("/does/not/exist"), "error should name the cwd: {c}");
        ctx.assert_no_residue(&id, &b);
        return;
    }
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    assert_eq!(c.stdout_now(), "/does/not/exist\n");
}

#[test]
fn user_uid_gid_additional_gids() {
    require_root!();
    let (out, err) = run_sh("user", "cat /proc/self/status; echo ID=$(id -u):$(id -g)", |b| {
        b.set(
            "/process/user",
            json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 2000]}),
        );
    });
    let uid = status_field(&out, "Uid").unwrap_or_else(|| panic!("{out}{err}"));
    assert_eq!(uid.split_whitespace().collect::<Vec<_>>(), ["1000"; 4]);
    let gid = status_field(&out, "Gid").unwrap();
    assert_eq!(gid.split_whitespace().collect::<Vec<_>>(), ["1001"; 4]);
    let mut groups: Vec<u32> = status_field(&out, "Groups")
        .unwrap()
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [10, 2000],
        "supplementary groups must be exactly additionalGids"
    );
    assert!(out.contains("ID=1000:1001"), "{out}");
}

#[test]
fn root_user_has_no_supplementary_groups_by_default() {
    require_root!();
    let (out, _) = run_sh("nogroups", "cat /proc/self/status", |_| {});
    assert_eq!(status_field(&out, "Groups").unwrap_or_default(), "");
}

#[test]
fn umask_is_applied() {
    require_root!();
    let (out, _) = run_sh("umask", "umask", |b| {
        b.set("/process/user/umask", json!(0o027));
    });
    assert_eq!(out.trim(), "0027");
}

#[test]
fn rlimit_nofile_applied() {
    require_root!();
    let (out, _) = run_sh("rlimit", "cat /proc/self/limits", |b| {
        b.set(
            "/process/rlimits",
            json!([
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444}
            ]),
        );
    });
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {out}"))
            .split_whitespace()
            .rev()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("Max open files"), ["1024", "512"]);
    assert_eq!(line("Max processes"), ["444", "333"]);
}

#[test]
fn unknown_rlimit_fails_create_naming_it() {
    require_root!();
    let ctx = Ctx::new("rlimit_unknown");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_MOORBOGUS", "soft": 1, "hard": 1}]),
    );
    let o = ctx.create(&b, &id, &[]).fails();
    assert!(o.stderr.contains("RLIMIT_MOORBOGUS"), "{o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn no_new_privileges_true_and_false() {
    require_root!();
    for (v, want) in [(true, "1"), (false, "0")] {
        let (out, _) = run_sh("nnp", "cat /proc/self/status", |b| {
            b.set("/process/noNewPrivileges", json!(v));
        });
        assert_eq!(status_field(&out, "NoNewPrivs").as_deref(), Some(want), "nnp={v}");
    }
}

#[test]
fn oom_score_adj_positive() {
    require_root!();
    // Negative values need CAP_SYS_RESOURCE, which this machine's bounding set lacks.
    let (out, _) = run_sh("oom", "cat /proc/self/oom_score_adj", |b| {
        b.set("/process/oomScoreAdj", json!(543));
    });
    assert_eq!(out.trim(), "543");
}

fn caps_of(out: &str) -> [u64; 5] {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .map(|k| parse_cap_hex(&status_field(out, k).unwrap_or_else(|| panic!("{k}: {out}"))))
}

#[test]
fn capabilities_exact_for_non_root_user_with_ambient() {
    require_root!();
    // For a non-root user, execve keeps only the ambient set in permitted/effective, so configure
    // effective == permitted == ambient ⊆ inheritable ⊆ bounding and expect every set verbatim.
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
        "CAP_SETUID",
    ];
    let inh = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"];
    let amb = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let (out, err) = run_sh("caps_user", "cat /proc/self/status", |b| {
        b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        b.set(
            "/process/capabilities",
            json!({"bounding": bnd, "inheritable": inh, "permitted": amb, "effective": amb, "ambient": amb}),
        );
    });
    let [ci, cp, ce, cb, ca] = caps_of(&format!("{out}{err}"));
    assert_eq!(cb, cap_mask(&bnd), "CapBnd");
    assert_eq!(ci, cap_mask(&inh), "CapInh");
    assert_eq!(ca, cap_mask(&amb), "CapAmb");
    assert_eq!(cp, cap_mask(&amb), "CapPrm");
    assert_eq!(ce, cap_mask(&amb), "CapEff");
}

#[test]
fn capabilities_root_inheritable_empty_when_not_configured() {
    require_root!();
    let set = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"];
    let (out, _) = run_sh("caps_root", "cat /proc/self/status", |b| {
        b.set(
            "/process/capabilities",
            json!({"bounding": set, "permitted": set, "effective": set}),
        );
    });
    let [ci, cp, ce, cb, ca] = caps_of(&out);
    assert_eq!(cb, cap_mask(&set), "CapBnd");
    assert_eq!(ci, 0, "CapInh must be empty when not configured (CVE-2022-29162)");
    assert_eq!(ca, 0, "CapAmb");
    assert_eq!(cp, cap_mask(&set), "CapPrm");
    assert_eq!(ce, cap_mask(&set), "CapEff");
}

#[test]
fn capabilities_missing_section_means_none() {
    require_root!();
    let (out, _) = run_sh("caps_none", "cat /proc/self/status", |b| {
        b.remove("/process/capabilities");
        b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    });
    let [ci, cp, ce, _cb, ca] = caps_of(&out);
    assert_eq!((ci, cp, ce, ca), (0, 0, 0, 0), "{out}");
}

#[test]
fn unknown_capability_fails_create() {
    require_root!();
    let ctx = Ctx::new("cap_unknown");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/process/capabilities/bounding", json!(["CAP_KILL", "CAP_MOOR_BOGUS"]));
    let o = ctx.create(&b, &id, &[]);
    if (runtime_is("runc") || runtime_is("crun")) && o.success() {
        // runc 1.1 and crun 1.8 ignore unknown capabilities (runc with a warning).
        return;
    }
    let o = o.fails();
    assert!(o.stderr.contains("CAP_MOOR_BOGUS"), "{o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn io_priority_applied() {
    require_root!();
    if runtime_is("runc") && runtime_version() < (1, 2, 0) {
        skip!("runc < 1.2 ignores process.ioPriority");
    }
    if runtime_is("crun") && runtime_version() < (1, 9, 0) {
        skip!("crun < 1.9 ignores process.ioPriority");
    }
    let (out, _) = run_sh("ioprio", "ionice -p $$", |b| {
        b.set(
            "/process/ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
        );
    });
    assert!(out.contains("best-effort") && out.contains('6'), "{out}");
}

#[test]
fn sysctl_applied_in_container_namespaces() {
    require_root!();
    let guard = SysctlGuard::new(&["net.ipv4.ip_forward", "kernel.msgmax"]);
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let (out, _) = run_sh(
        "sysctl",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax",
        |b| {
            b.set(
                "/linux/sysctl",
                json!({"net.ipv4.ip_forward": want_fwd, "kernel.msgmax": "12345"}),
            );
        },
    );
    assert_eq!(guard.changed(), Vec::<String>::new(), "host sysctls changed (restored)");
    assert_eq!(out, format!("{want_fwd}\n12345\n"));
}

#[test]
fn sysctl_outside_container_namespace_is_refused() {
    require_root!();
    // kernel.shmmax is per-ipc-ns; without an ipc namespace it would change the host. The guard
    // restores the host value if the runtime wrongly writes it.
    let guard = SysctlGuard::new(&["kernel.shmmax"]);
    let ctx = Ctx::new("sysctl_host");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.remove_namespace("ipc");
    b.set("/linux/sysctl", json!({"kernel.shmmax": "4096"}));
    let o = ctx.create(&b, &id, &[]);
    assert_eq!(
        guard.changed(),
        Vec::<String>::new(),
        "the runtime changed the HOST's sysctl (restored): {o}"
    );
    assert!(!o.success(), "sysctl of a host namespace must be refused: {o}");
}

#[test]
fn hostname_applied() {
    require_root!();
    let _guard = SysctlGuard::new(&["kernel.hostname", "kernel.domainname"]);
    let (out, _) = run_sh("hostname", "hostname", |b| {
        b.set("/hostname", json!("moor-host"));
    });
    assert_eq!(out, "moor-host\n");
}

#[test]
fn domainname_applied() {
    require_root!();
    let _guard = SysctlGuard::new(&["kernel.hostname", "kernel.domainname"]);
    if runtime_is("runc") && runtime_version() < (1, 2, 0) {
        skip!("runc < 1.2 ignores the domainname field");
    }
    let (out, _) = run_sh("domainname", "cat /proc/sys/kernel/domainname", |b| {
        b.set("/domainname", json!("moor.example"));
    });
    assert_eq!(out, "moor.example\n");
}

#[test]
fn domainname_via_sysctl() {
    require_root!();
    let _guard = SysctlGuard::new(&["kernel.hostname", "kernel.domainname"]);
    let (out, _) = run_sh("domain_sysctl", "cat /proc/sys/kernel/domainname", |b| {
        b.set("/linux/sysctl", json!({"kernel.domainname": "sysctl.example"}));
    });
    assert_eq!(out, "sysctl.example\n");
}

#[test]
fn missing_binary_in_args_fails_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("nobinary");
    let (id, b) = ctx.bundle(&["/bin/no-such-binary-xyz"]);
    let o = ctx.create(&b, &id, &[]);
    if o.success() {
        // The spec lets the error surface at start instead; then start must fail.
        let s = ctx.start(&id);
        assert!(!s.success(), "start of a missing binary succeeded: {s}");
        return;
    }
    assert!(o.stderr.contains("no-such-binary-xyz"), "{o}");
    ctx.assert_no_residue(&id, &b);
}

/// `run`s a container that prints its LISTEN_* variables and what it reads from fd 3, with a file
/// handed to the runtime as fd 3 and LISTEN_FDS=1 in its environment. LISTEN_PID names the
/// runtime (socket activation) or, with `for_runtime` false, the test (an inherited variable).
fn listen_probe(name: &str, for_runtime: bool) -> String {
    let ctx = Ctx::new(name);
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh("env | grep ^LISTEN_ | sort; if [ -e /proc/self/fd/3 ]; then cat <&3; fi; echo end");
    b.save();
    let data = ctx.work_dir().join("socket-stand-in");
    fs::write(&data, "fd3-content\n").unwrap();
    let f = fs::File::open(&data).unwrap();
    let bundle = b.dir.display().to_string();
    let args = ["run", "--bundle", &bundle, &id];
    let pass = |c: &mut Command| pass_fd(c, f.as_raw_fd(), 3);
    let o = if for_runtime {
        ctx.run_socket_activated(&args, 1, pass)
    } else {
        ctx.run_with(&args, |c| {
            c.env("LISTEN_FDS", "1")
                .env("LISTEN_PID", std::process::id().to_string());
            pass(c);
        })
    };
    o.ok().stdout
}

#[test]
fn listen_fds_socket_activation_reaches_init() {
    require_root!();
    // systemd socket activation, as runc does it: fd 3 stays open into the container and the
    // init's env gains LISTEN_FDS=1 and LISTEN_PID=1 (the workload is pid 1 of its pid
    // namespace), so that it accepts the fd.
    let out = listen_probe("listen_fds", true);
    assert_eq!(out, "LISTEN_FDS=1\nLISTEN_PID=1\nfd3-content\nend\n");
}

#[test]
fn listen_fds_for_another_pid_are_ignored() {
    require_root!();
    // A LISTEN_FDS whose LISTEN_PID names another process (a socket-activated ancestor, here the
    // test) is not for the runtime (sd_listen_fds(3); runc checks it too): fd 3 stays out and no
    // variable is added.
    let out = listen_probe("listen_fds_other", false);
    assert_eq!(out, "end\n");
}
