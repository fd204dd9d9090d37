//! OCI hooks: all six run at the right step, with the state on stdin, args, env, timeouts, and
//! in the right namespaces.

use moor_integration::host::ns_link;
use moor_integration::{poll_until, require_root, runtime_is, skip, Ctx, TIMEOUT};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const BB: &str = "/bin/busybox";

/// A hook that records stdin, args, env, namespaces and hostname into `<dir>/<name>.*` and
/// appends its name to `<dir>/order`. `dir` must be valid where the hook runs.
fn recording_hook(name: &str, dir: &str) -> Value {
    let script = format!(
        "{BB} cat > \"$1/$0.json\"; \
         echo \"$0|$1|$2|$HOOKVAR\" > \"$1/$0.args\"; \
         {BB} env > \"$1/$0.env\"; \
         {BB} readlink /proc/self/ns/uts > \"$1/$0.uts\"; \
         {BB} readlink /proc/self/ns/mnt > \"$1/$0.mnt\"; \
         {BB} hostname > \"$1/$0.hostname\"; \
         echo $0 >> \"$1/order\""
    );
    json!({
        "path": BB,
        "args": ["sh", "-c", script, name, dir, "third-arg"],
        "env": [format!("HOOKVAR=var-{name}")]
    })
}

fn read(dir: &Path, f: &str) -> String {
    fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

fn order(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("order"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn all_hooks_run_in_order_with_state_args_env_and_namespaces() {
    require_root!();
    let ctx = Ctx::new("hooks_all");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "echo ran > /out/workload; sleep 0.2"]);
    let host_out = b.bind_out_dir("/out");
    let hd = host_out.display().to_string();
    b.set(
        "/hooks",
        json!({
            "prestart": [recording_hook("prestart", &hd)],
            "createRuntime": [recording_hook("createRuntime", &hd)],
            "createContainer": [recording_hook("createContainer", &hd)],
            // startContainer runs inside the container: its path resolves in the rootfs.
            "startContainer": [recording_hook("startContainer", "/out")],
            "poststart": [recording_hook("poststart", &hd)],
            "poststop": [recording_hook("poststop", &hd)]
        }),
    );
    let caller_env = |c: &mut std::process::Command| {
        c.env("MOOR_IT_CALLER_ENV", "leak");
    };
    ctx.create_with(&b, &id, &[], caller_env).ok();
    let pid = ctx.pid(&id);
    let bundle = fs::canonicalize(b.path()).unwrap();

    // runc 1.1 runs poststart hooks during `create` (a known divergence from the spec, which
    // says after the process starts); ignore that entry for runc only.
    let runc_early_poststart = runtime_is("runc");
    let order = |d: &Path| {
        let mut o = order(d);
        if runc_early_poststart {
            o.retain(|x| x != "poststart");
        }
        o
    };
    let o = order(&host_out);
    assert!(o.contains(&"createRuntime".into()), "createRuntime did not run: {o:?}");
    assert!(
        o.contains(&"createContainer".into()),
        "createContainer did not run: {o:?}"
    );
    assert!(o.contains(&"prestart".into()), "prestart did not run: {o:?}");
    assert_eq!(o.len(), 3, "only the create-time hooks may run at create: {o:?}");
    let pos = |n: &str| o.iter().position(|x| x == n).unwrap();
    assert!(pos("createRuntime") < pos("createContainer"), "{o:?}");
    assert!(pos("prestart") < pos("createContainer"), "{o:?}");
    assert!(!host_out.join("workload").exists());

    ctx.run_with(&["start", &id], caller_env).ok();
    ctx.wait_status(&id, "stopped");
    let o = order(&host_out);
    let want: &[&str] = if runc_early_poststart {
        &["startContainer"]
    } else {
        &["startContainer", "poststart"]
    };
    assert_eq!(&o[3..], want, "{o:?}");
    assert!(host_out.join("poststart.json").exists(), "poststart did not run");
    assert!(host_out.join("workload").exists());
    ctx.run_with(&["delete", &id], caller_env).ok();
    assert_eq!(order(&host_out).last().map(String::as_str), Some("poststop"));

    let me = nix::unistd::getpid().as_raw();
    let my_uts = ns_link(me, "uts").unwrap();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let st: Value = serde_json::from_str(&read(&host_out, &format!("{h}.json")))
            .unwrap_or_else(|e| panic!("{h} stdin is not the state JSON: {e}"));
        assert_eq!(st["id"], id.as_str(), "{h}: {st}");
        assert_eq!(st["bundle"].as_str(), bundle.to_str(), "{h}: {st}");
        assert!(st["ociVersion"].is_string(), "{h}: {st}");
        let status = st["status"].as_str().unwrap_or_else(|| panic!("{h}: no status {st}"));
        let in_container = h == "createContainer" || h == "startContainer";
        if in_container && runtime_is("runc") {
            // runc 1.1 reports the pid as seen inside the container (1) to the hooks it runs
            // from its init; the spec says "as seen by the host".
            assert!(st["pid"].as_i64() == Some(1) || st["pid"].as_i64() == Some(i64::from(pid)));
        } else if h != "poststop" {
            assert_eq!(st["pid"].as_i64(), Some(i64::from(pid)), "{h}: {st}");
        }
        let allowed: &[&str] = match h {
            // The create operation has not finished: runc says "creating", crun "created".
            "prestart" | "createRuntime" | "createContainer" => &["creating", "created"],
            "startContainer" => &["created"],
            "poststart" if runc_early_poststart => &["created", "creating", "running", "stopped"],
            "poststart" => &["running", "stopped"],
            _ => &["stopped"],
        };
        assert!(
            allowed.contains(&status),
            "{h}: status {status:?}, want one of {allowed:?}"
        );

        let dir = if h == "startContainer" { "/out" } else { hd.as_str() };
        let args = read(&host_out, &format!("{h}.args"));
        assert_eq!(
            args.trim(),
            format!("{h}|{dir}|third-arg|var-{h}"),
            "{h}: args/env not passed exactly"
        );
        let env = read(&host_out, &format!("{h}.env"));
        assert!(
            !env.contains("MOOR_IT_CALLER_ENV"),
            "{h}: hook inherited the runtime caller's environment:\n{env}"
        );
        let uts = read(&host_out, &format!("{h}.uts"));
        match h {
            "createContainer" | "startContainer" => {
                assert_ne!(uts.trim(), my_uts, "{h} must run in the container's namespaces");
            }
            _ => assert_eq!(uts.trim(), my_uts, "{h} must run in the runtime's namespaces"),
        }
    }
    assert_eq!(read(&host_out, "startContainer.hostname").trim(), "moor-it");
    assert_eq!(
        read(&host_out, "createContainer.uts"),
        read(&host_out, "startContainer.uts"),
        "createContainer and startContainer must share the container's uts ns"
    );
    assert_eq!(
        read(&host_out, "createContainer.mnt"),
        read(&host_out, "startContainer.mnt"),
        "createContainer must run in the container's mount namespace"
    );
}

fn hook_script(script: &str) -> Value {
    json!({ "path": BB, "args": ["sh", "-c", script] })
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("hook_fail");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set(
        "/hooks",
        json!({"createRuntime": [hook_script("echo hook-said-no >&2; exit 7")]}),
    );
    let o = ctx.create(&b, &id, &[]).fails();
    assert!(!o.stderr.is_empty(), "no error message: {o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn failing_create_container_hook_fails_create_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("hook_cc_fail");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set("/hooks", json!({"createContainer": [hook_script("exit 1")]}));
    ctx.create(&b, &id, &[]).fails();
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn hook_timeout_kills_hook_and_fails_create() {
    require_root!();
    let ctx = Ctx::new("hook_timeout");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    let marker = ctx.work_dir().join("hook-pid");
    let script = format!("echo $$ > {}; exec {BB} sleep 1000", marker.display());
    let mut hook = hook_script(&script);
    hook["timeout"] = json!(1);
    b.set("/hooks", json!({"createRuntime": [hook]}));
    let t0 = Instant::now();
    ctx.create(&b, &id, &[]).fails();
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "timeout not enforced: {:?}",
        t0.elapsed()
    );
    let hook_pid: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    poll_until(TIMEOUT, "timed-out hook killed", || {
        (!moor_integration::host::pid_alive(hook_pid)).then_some(())
    });
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn failing_poststop_hook_is_only_a_warning() {
    require_root!();
    let ctx = Ctx::new("hook_poststop");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/hooks", json!({"poststop": [hook_script("exit 1")]}));
    ctx.run_to_stop(&b, &id);
    ctx.delete(&id).ok();
    assert!(ctx.state(&id).is_none());
    assert!(moor_integration::host::cgroup_dirs(&b.cgroups_path()).is_empty());
}

#[test]
fn failing_poststart_hook_fails_start() {
    require_root!();
    // Spec: a failing poststart hook is logged as a warning, but runc (and containerd's
    // expectation) is that `start` reports it; accept both, but the container must not be left
    // in "created".
    if runtime_is("runc") {
        skip!("runc 1.1 runs poststart hooks during create, so create fails instead");
    }
    let ctx = Ctx::new("hook_poststart");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set("/hooks", json!({"poststart": [hook_script("exit 1")]}));
    ctx.create(&b, &id, &[]).ok();
    ctx.start(&id);
    let s = ctx.status(&id);
    assert!(s.as_deref() != Some("created"), "status after start: {s:?}");
}

#[test]
fn hook_with_missing_binary_fails_create() {
    require_root!();
    let ctx = Ctx::new("hook_missing");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/hooks", json!({"createRuntime": [{"path": "/no/such/hook-binary"}]}));
    ctx.create(&b, &id, &[]).fails();
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn hook_that_ignores_stdin_does_not_kill_runtime() {
    require_root!();
    // A hook may exit without reading the state from stdin; the runtime must survive EPIPE
    // (crun 1.8 sometimes dies of SIGPIPE here). Repeated because the window is a race.
    let ctx = Ctx::new("hook_sigpipe");
    for _ in 0..10 {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set(
            "/hooks",
            json!({
                "createRuntime": [hook_script("exec 0<&-; exit 0")],
                "poststop": [hook_script("exec 0<&-; exit 0")]
            }),
        );
        let c = ctx.create(&b, &id, &[]);
        assert!(c.success(), "{c}");
        ctx.start(&id).ok();
        ctx.wait_status(&id, "stopped");
        let d = ctx.delete(&id);
        assert!(d.success(), "{d}");
    }
}

/// createContainer hooks run in the rootfs, as runc's do (runc's hooks.bats writes `./lib/...`
/// relative to it).
#[test]
fn create_container_hooks_run_in_the_rootfs() {
    require_root!();
    let ctx = Ctx::new("hook_cwd");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set(
        "/hooks",
        serde_json::json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "pwd > ./hook-cwd"]}]}),
    );
    ctx.run_to_stop(&b, &id);
    let written = std::fs::read_to_string(b.rootfs().join("hook-cwd")).unwrap_or_default();
    assert!(!written.is_empty(), "the hook did not write ./hook-cwd into the rootfs");
}
