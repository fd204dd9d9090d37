//! Fixes from the design review (issue 14): exec uses what was configured at create, not what the
//! bundle says later; hooks that ignore their stdin time out; timens offsets; state transitions.

use moor_integration::bundle::Bundle;
use moor_integration::host::{cap_mask, parse_cap_hex, status_field};
use moor_integration::{require_root, runtime_is, runtime_version, skip, Ctx, Output};
use serde_json::json;
use std::fs;
use std::time::{Duration, Instant};

/// mkdir fails with this errno under the test's seccomp profile: ENOMEDIUM, which nothing else
/// in these tests can produce.
const DENY_ERRNO: u32 = 123;

/// A running container whose profile makes mkdir fail with [`DENY_ERRNO`] and whose processes
/// only have CAP_KILL.
fn confined(ctx: &Ctx) -> (String, Bundle) {
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": DENY_ERRNO}]
        }),
    );
    let caps = json!(["CAP_KILL"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": caps, "effective": caps, "permitted": caps}),
    );
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    (id, b)
}

/// `exec [opts...] ID` running a shell that tries a mkdir and prints its bounding set.
fn probe(ctx: &Ctx, id: &str, opts: &[&str]) -> Output {
    let mut args = vec!["exec"];
    args.extend_from_slice(opts);
    args.push(id);
    if opts.is_empty() {
        args.extend_from_slice(&["sh", "-c", PROBE]);
    }
    ctx.run(&args)
}

const PROBE: &str = "mkdir /probe-dir 2>&1; grep CapBnd /proc/self/status";

#[track_caller]
fn assert_confined(o: &Output, check_caps: bool) {
    assert!(o.success(), "{o}");
    assert!(
        o.stdout.contains("No medium found"),
        "mkdir must still fail with the create-time profile's errno: {o}"
    );
    if check_caps {
        let bnd = status_field(&o.stdout, "CapBnd").unwrap_or_else(|| panic!("no CapBnd: {o}"));
        assert_eq!(parse_cap_hex(&bnd), cap_mask(&["CAP_KILL"]), "{o}");
    }
}

/// A config.json edited after create (profile dropped, every capability granted) does not
/// loosen what an exec'd process gets: the container's seccomp profile is the one it was
/// created with, as runc keeps its config in its own state.
#[test]
fn exec_after_config_json_is_edited_keeps_the_seccomp_profile() {
    require_root!();
    let ctx = Ctx::new("rf_exec_edited");
    let (id, mut b) = confined(&ctx);
    b.remove("/linux/seccomp");
    b.save();
    assert_confined(&probe(&ctx, &id, &[]), false);
}

/// Without --process, exec starts from the container's own process. moor takes it, with its
/// capabilities, from what it recorded at create, so neither an edited nor a removed config.json
/// changes what exec'd processes get.
#[test]
fn exec_after_config_json_is_edited_or_removed_keeps_the_create_time_process() {
    require_root!();
    if runtime_is("runc") {
        skip!(
            "runc 1.1 reads the process template for an exec without --process from the bundle's \
             config.json at exec time (getProcess chdirs to the bundle): an edit changes its \
             capabilities and a removed file fails the exec; moor uses what it recorded at create"
        );
    }
    let ctx = Ctx::new("rf_exec_template");
    let (id, mut b) = confined(&ctx);
    let all = json!(["CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_CHOWN"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": all, "effective": all, "permitted": all}),
    );
    b.save();
    assert_confined(&probe(&ctx, &id, &[]), true);
    fs::remove_file(b.path().join("config.json")).unwrap();
    assert_confined(&probe(&ctx, &id, &[]), true);
}

/// With --process and the bundle's config.json gone, exec still applies the container's seccomp
/// profile.
#[test]
fn exec_with_a_removed_config_json_keeps_the_seccomp_profile() {
    require_root!();
    let ctx = Ctx::new("rf_exec_removed");
    let (id, b) = confined(&ctx);
    fs::remove_file(b.path().join("config.json")).unwrap();
    let caps = json!(["CAP_KILL"]);
    let process = json!({
        "args": ["sh", "-c", PROBE],
        "cwd": "/",
        "env": ["PATH=/bin:/usr/bin"],
        "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
    });
    let pf = ctx.work_dir().join("process.json");
    fs::write(&pf, process.to_string()).unwrap();
    let pf = pf.display().to_string();
    assert_confined(&probe(&ctx, &id, &["--process", &pf]), true);
}

/// A hook with a timeout that never reads its stdin, given a state larger than a pipe holds by
/// default (64 KiB of annotations): create fails at the timeout, it does not wait for the hook.
#[test]
fn a_hook_that_never_reads_a_large_state_times_out() {
    require_root!();
    let ctx = Ctx::new("rf_hook_stdin");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/annotations", json!({"big": "x".repeat(200 << 10)}));
    b.set(
        "/hooks",
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}),
    );
    let began = Instant::now();
    let c = ctx.create(&b, &id, &[]);
    let took = began.elapsed();
    assert!(!c.success(), "{c}");
    assert!(took < Duration::from_secs(10), "create took {took:?}: {c}");
    assert!(c.stderr.contains("error running hook"), "{c}");
    assert!(c.stderr.contains("timeout"), "names the timeout: {c}");
    ctx.assert_no_residue(&id, &b);
}

/// An offset the kernel would refuse (nanoseconds of a whole second or more) is refused before
/// anything exists, naming the field.
#[test]
fn a_bad_time_offset_names_its_field() {
    require_root!();
    if runtime_is("runc") && runtime_version() < (1, 2, 0) {
        skip!("runc < 1.2 has no time namespace support and ignores timeOffsets");
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip!("kernel has no time namespaces");
    }
    let ctx = Ctx::new("rf_timens_bad");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set_namespace("time", None);
    b.set(
        "/linux/timeOffsets",
        json!({"monotonic": {"secs": 1, "nanosecs": 1_000_000_000u32}}),
    );
    let c = ctx.create(&b, &id, &[]);
    assert!(!c.success(), "{c}");
    assert!(c.stderr.contains("linux.timeOffsets.monotonic.nanosecs"), "{c}");
    ctx.assert_no_residue(&id, &b);
}

/// A step that fails inside the container reaches the caller with what failed and the OS error,
/// the latter said once (init sends the error's kind and text; the CLI prints each cause once).
#[test]
fn an_error_inside_the_container_says_its_cause_once() {
    require_root!();
    let ctx = Ctx::new("rf_init_error");
    let (id, mut b) = ctx.bundle(&["true"]);
    fs::write(b.rootfs().join("a-file"), "").unwrap();
    b.set("/process/cwd", json!("/a-file"));
    let c = ctx.create(&b, &id, &[]);
    assert!(!c.success(), "{c}");
    let err = c.stderr.to_lowercase();
    assert_eq!(err.matches("not a directory").count(), 1, "{c}");
    if !runtime_is("runc") {
        assert!(c.stderr.contains("process.cwd"), "names the field: {c}");
        assert_eq!(c.stderr.matches("container init").count(), 1, "{c}");
    }
    ctx.assert_no_residue(&id, &b);
}

/// An OS error of a step moor runs itself is printed once, not once per layer that reports it.
#[test]
fn an_os_error_is_printed_once() {
    require_root!();
    let ctx = Ctx::new("rf_os_error");
    let (id, b) = ctx.bundle(&["true"]);
    let missing = b.path().join("no-such-bundle");
    let bundle = missing.display().to_string();
    let c = ctx.run(&["create", "--bundle", &bundle, &id]);
    assert!(!c.success(), "{c}");
    assert_eq!(
        c.stderr.to_lowercase().matches("no such file or directory").count(),
        1,
        "{c}"
    );
}
