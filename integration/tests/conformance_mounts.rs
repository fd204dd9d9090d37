//! Mount conformance with the runtime-spec and runc 1.1.5: rootfsPropagation, the spec's mount
//! options, containers without a mount namespace, a read-only /dev, overmounts of /proc, the
//! cgroupfs access mode and mount destinations. Each check is observed from inside the container
//! (its mountinfo, stat, attempted writes) or in the runtime's error; where runc 1.1.5 differs the
//! test says why and skips that part for runc.

use moor_integration::bundle::temp_dir;
use moor_integration::mountinfo::{fs_type, has_tag, super_opts, HostMount};
use moor_integration::{host, poll_for, require_root, runtime_is, skip, Bundle, Ctx, Output, TIMEOUT};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// create + start + wait stopped; returns the container's stdout and stderr.
#[track_caller]
fn run(ctx: &Ctx, b: &Bundle, id: &str) -> (String, String) {
    let c = ctx.create(b, id, &[]);
    assert!(c.success(), "create failed: {c}");
    let s = ctx.start(id);
    assert!(s.success(), "start failed: {s}\ncontainer stderr: {}", c.stderr_now());
    ctx.wait_status(id, "stopped");
    (c.stdout_now(), c.stderr_now())
}

/// `create` that must fail; returns its output, after checking that nothing was left behind.
#[track_caller]
fn create_fails(ctx: &Ctx, b: &Bundle, id: &str) -> Output {
    let c = ctx.create(b, id, &[]);
    assert!(!c.success(), "create unexpectedly succeeded: {c}");
    ctx.assert_no_residue(id, b);
    c
}

/// A host temp dir owned by the test context.
fn host_dir(ctx: &Ctx, tag: &str) -> PathBuf {
    let d = temp_dir(tag);
    ctx.own_dir(d.clone());
    d
}

fn bind(src: &Path, dest: &str, opts: &[&str]) -> Value {
    json!({ "destination": dest, "type": "bind", "source": src, "options": opts })
}

/// The mountinfo line whose mount point is `mp`, last one wins.
fn mi_line<'a>(out: &'a str, mp: &str) -> Option<&'a str> {
    out.lines().rfind(|l| l.split_whitespace().nth(4) == Some(mp))
}

#[track_caller]
fn must_line<'a>(out: &'a str, mp: &str, err: &str) -> &'a str {
    mi_line(out, mp).unwrap_or_else(|| panic!("no mount at {mp}:\n{out}\n{err}"))
}

/// Per-mount options (field 6) of a mountinfo line.
fn mount_opts(line: &str) -> Vec<&str> {
    line.split_whitespace().nth(5).unwrap_or("").split(',').collect()
}

/// The suite runs crun in a private mount namespace (see the README): host propagation is then
/// not observable.
fn crun_wrapped() -> bool {
    runtime_is("crun") && std::env::var_os("MOOR_IT_NO_CRUN_WRAP").is_none()
}

// ---------------------------------------------------------------------------------------------
// linux.rootfsPropagation

/// What the container's "/" must show for each rootfsPropagation, with the rootfs a shared mount
/// on the host; and why runc 1.1.5 differs where it does.
const ROOT_PROPAGATION: [(&str, &str, Option<&str>); 8] = [
    ("private", "private", None),
    ("rprivate", "private", None),
    (
        "slave",
        "slave",
        Some("runc 1.1.5 makes only the old / a slave, then the rootfs's shared parent private"),
    ),
    ("rslave", "slave", None),
    (
        "shared",
        "shared",
        Some("runc 1.1.5 leaves / private (runc 1.4 applies it after pivot_root, as the spec says)"),
    ),
    (
        "rshared",
        "shared",
        Some("runc 1.1.5 leaves / private (runc 1.4 applies it after pivot_root, as the spec says)"),
    ),
    (
        "unbindable",
        "unbindable",
        Some("runc 1.1.5 leaves / private (runc 1.4 applies it after pivot_root)"),
    ),
    (
        "runbindable",
        "unbindable",
        Some("runc 1.1.5 fails: it binds the rootfs from the now unbindable host tree"),
    ),
];

#[test]
fn rootfs_propagation_every_value_reaches_the_root() {
    require_root!();
    if crun_wrapped() {
        skip!("crun runs in a private mount namespace here, host propagation is not observable");
    }
    let ctx = Ctx::new("rootprop_all");
    for (prop, want, runc_differs) in ROOT_PROPAGATION {
        if let (true, Some(why)) = (runtime_is("runc"), runc_differs) {
            eprintln!("SKIP rootfsPropagation {prop}: {why}");
            continue;
        }
        let (id, mut b) = ctx.bundle(&[]);
        let _shared = HostMount::shared_self_bind(&b.rootfs());
        b.set("/linux/rootfsPropagation", json!(prop));
        b.set_sh("awk '$5 == \"/\"' /proc/self/mountinfo");
        let (out, err) = run(&ctx, &b, &id);
        let l = must_line(&out, "/", &err);
        let (shared, slave, unbindable) = (has_tag(l, "shared:"), has_tag(l, "master:"), has_tag(l, "unbindable"));
        let got = match (shared, slave, unbindable) {
            (false, false, false) => "private",
            (false, true, false) => "slave",
            (true, false, false) => "shared",
            (false, false, true) => "unbindable",
            _ => "mixed",
        };
        assert_eq!(got, want, "rootfsPropagation {prop}: / is {got}: {l}");
    }
}

/// Spec: "shared: the rootfs mount belongs to a new peer group ... this does not mean that it's
/// shared with the host." A mount made in the container must not appear on the host.
#[test]
fn shared_rootfs_does_not_propagate_to_the_host() {
    require_root!();
    let ctx = Ctx::new("rootprop_shared_host");
    let (id, mut b) = ctx.bundle(&[]);
    let rootfs = b.rootfs();
    fs::create_dir(rootfs.join("mnt/inner")).unwrap();
    let _shared = HostMount::shared_self_bind(&rootfs);
    b.set("/linux/rootfsPropagation", json!("rshared"));
    b.set("/process/capabilities/bounding", json!(["CAP_SYS_ADMIN"]));
    b.set("/process/capabilities/effective", json!(["CAP_SYS_ADMIN"]));
    b.set("/process/capabilities/permitted", json!(["CAP_SYS_ADMIN"]));
    b.set(
        "/process/args",
        json!([
            "sh",
            "-c",
            "busybox mount -t tmpfs inner /mnt/inner && echo MOUNTED; sleep 5"
        ]),
    );
    let c = ctx.create(&b, &id, &[]);
    assert!(c.success(), "create failed: {c}");
    assert!(ctx.start(&id).success());
    let mounted = poll_for(TIMEOUT, || c.stdout_now().contains("MOUNTED").then_some(()));
    assert!(mounted.is_some(), "the workload could not mount: {}", c.stderr_now());
    let leaked = host::mounts_mentioning(&rootfs.join("mnt/inner").display().to_string());
    ctx.kill(&id, "KILL");
    assert!(leaked.is_empty(), "a container mount reached the host: {leaked:?}");
}

// ---------------------------------------------------------------------------------------------
// Mount options

/// A host dir holding a tmpfs submount `sub`.
fn dir_with_submount(ctx: &Ctx, tag: &str) -> (PathBuf, HostMount) {
    let top = host_dir(ctx, tag);
    fs::create_dir(top.join("sub")).unwrap();
    let m = HostMount::tmpfs(&top.join("sub"));
    (top, m)
}

fn atime_of(opts: &[&str]) -> &'static str {
    if opts.contains(&"noatime") {
        "noatime"
    } else if opts.contains(&"relatime") {
        "relatime"
    } else {
        "strictatime"
    }
}

/// A bind mount of a dir with a submount, and what its mountinfo must show.
struct AtimeCase {
    dest: &'static str,
    opts: &'static [&'static str],
    /// Access-time mode of the mount, and of its submount when the options are recursive.
    atime: &'static str,
    sub_atime: Option<&'static str>,
    /// Other per-mount flags it must have (nosymfollow and nodiratime must be absent otherwise).
    flags: &'static [&'static str],
}

const fn case(
    dest: &'static str,
    opts: &'static [&'static str],
    atime: &'static str,
    sub_atime: Option<&'static str>,
    flags: &'static [&'static str],
) -> AtimeCase {
    AtimeCase {
        dest,
        opts,
        atime,
        sub_atime,
        flags,
    }
}

const ATIME_CASES: [AtimeCase; 6] = [
    case("/a", &["bind", "strictatime"], "strictatime", None, &[]),
    case(
        "/b",
        &["bind", "noatime", "nodiratime"],
        "noatime",
        None,
        &["nodiratime"],
    ),
    case("/c", &["bind", "noatime", "atime"], "relatime", None, &[]),
    case(
        "/d",
        &["rbind", "rnoatime", "rnosymfollow"],
        "noatime",
        Some("noatime"),
        &["nosymfollow"],
    ),
    case(
        "/e",
        &["rbind", "rstrictatime", "rnodiratime"],
        "strictatime",
        Some("strictatime"),
        &["nodiratime"],
    ),
    case(
        "/g",
        &["bind", "nosymfollow", "ro"],
        "relatime",
        None,
        &["nosymfollow", "ro"],
    ),
];

/// Later options undo earlier ones (as for mount(8)). runc 1.1.5 ORs the attributes of the `r*`
/// options instead: a later rrelatime, ratime, rnostrictatime, rsymfollow or rdiratime leaves an
/// earlier rnoatime, rstrictatime, rnosymfollow or rnodiratime in place.
const ATIME_CASES_NOT_RUNC: [AtimeCase; 4] = [
    case(
        "/f",
        &["rbind", "rnoatime", "rrelatime"],
        "relatime",
        Some("relatime"),
        &[],
    ),
    case(
        "/h",
        &["rbind", "rnoatime", "ratime"],
        "relatime",
        Some("relatime"),
        &[],
    ),
    case(
        "/i",
        &["rbind", "rstrictatime", "rnostrictatime"],
        "relatime",
        Some("relatime"),
        &[],
    ),
    case(
        "/j",
        &["rbind", "rnosymfollow", "rsymfollow", "rnodiratime", "rdiratime"],
        "relatime",
        None,
        &[],
    ),
];

#[test]
fn atime_and_other_flags_on_bind_mounts() {
    require_root!();
    let ctx = Ctx::new("bind_atime");
    let (src, _sub) = dir_with_submount(&ctx, "atime");
    let (id, mut b) = ctx.bundle(&[]);
    let mut cases: Vec<&AtimeCase> = ATIME_CASES.iter().collect();
    if runtime_is("runc") {
        eprintln!("SKIP later r* options undoing earlier ones: runc 1.1.5 ORs them");
    } else {
        cases.extend(ATIME_CASES_NOT_RUNC.iter());
    }
    for c in &cases {
        b.push_mount(bind(&src, c.dest, c.opts));
    }
    b.set_sh("cat /proc/self/mountinfo");
    let (out, err) = run(&ctx, &b, &id);
    for c in &cases {
        let (dest, opts) = (c.dest, c.opts);
        let l = must_line(&out, dest, &err);
        assert_eq!(atime_of(&mount_opts(l)), c.atime, "{dest} {opts:?}: {l}");
        for f in c.flags {
            assert!(mount_opts(l).contains(f), "{dest} {opts:?}: no {f}: {l}");
        }
        for f in ["nosymfollow", "nodiratime"] {
            if !c.flags.contains(&f) {
                assert!(!mount_opts(l).contains(&f), "{dest} {opts:?}: {f}: {l}");
            }
        }
        if let Some(sub) = c.sub_atime {
            let sl = must_line(&out, &format!("{dest}/sub"), &err);
            assert_eq!(atime_of(&mount_opts(sl)), sub, "{dest}/sub {opts:?}: {sl}");
            for f in c.flags {
                assert!(mount_opts(sl).contains(f), "{dest}/sub {opts:?}: no {f}: {sl}");
            }
        }
    }
}

/// Options the spec lists are mount flags, never filesystem data: tmpfs refuses data it does not
/// know, so any of them passed as data fails the mount.
#[test]
fn spec_mount_options_are_flags_not_filesystem_data() {
    require_root!();
    let ctx = Ctx::new("opts_not_data");
    let (id, mut b) = ctx.bundle(&[]);
    let mut opts = vec![
        "nosymfollow",
        "lazytime",
        "iversion",
        "silent",
        "loud",
        "nodiratime",
        "strictatime",
        "mode=755",
    ];
    if runtime_is("runc") {
        eprintln!("SKIP defaults: runc 1.1.5 passes it to the filesystem, which refuses it");
    } else {
        opts.push("defaults");
    }
    b.push_mount(json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": opts}));
    b.push_mount(json!({"destination": "/u", "type": "tmpfs", "source": "tmpfs",
        "options": ["nolazytime", "noiversion", "symfollow", "diratime", "atime", "noatime", "mode=700"]}));
    b.set_sh("cat /proc/self/mountinfo; stat -c 'u-mode=%a' /u");
    let (out, err) = run(&ctx, &b, &id);
    let l = must_line(&out, "/t", &err);
    for f in ["nosymfollow", "nodiratime"] {
        assert!(mount_opts(l).contains(&f), "/t: no {f}: {l}");
    }
    assert_eq!(atime_of(&mount_opts(l)), "strictatime", "/t: {l}");
    assert!(super_opts(l).contains(&"lazytime"), "/t: no lazytime: {l}");
    let l = must_line(&out, "/u", &err);
    assert!(!mount_opts(l).contains(&"nosymfollow"), "/u: {l}");
    assert!(!super_opts(l).contains(&"lazytime"), "/u: {l}");
    assert_eq!(atime_of(&mount_opts(l)), "noatime", "/u: {l}");
    assert!(out.contains("u-mode=700"), "/u: filesystem data lost:\n{out}");
}

/// Every option of the runtime-spec's table, as `features` must list it.
const SPEC_MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
    "idmap",
    "ridmap",
];

#[test]
fn features_lists_every_spec_mount_option() {
    let ctx = Ctx::new("features_opts");
    let o = ctx.run(&["features"]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("features is not JSON ({e}): {o}"));
    let listed: Vec<&str> = v["mountOptions"]
        .as_array()
        .unwrap_or_else(|| panic!("no mountOptions: {v}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for opt in SPEC_MOUNT_OPTIONS {
        if runtime_is("runc") && matches!(*opt, "idmap" | "ridmap") {
            eprintln!("SKIP {opt}: runc 1.1.5 predates idmapped mounts");
            continue;
        }
        assert!(listed.contains(opt), "features does not list {opt}: {listed:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// No mount namespace

/// A bundle without a mount namespace (and without what needs one).
fn no_mount_ns_bundle(ctx: &Ctx) -> (String, Bundle) {
    let (id, mut b) = ctx.bundle(&[]);
    b.remove_namespace("mount");
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    (id, b)
}

/// `run` of the bundle inside `unshare -m --propagation private`, so that what the runtime mounts
/// in the caller's namespace dies with it. Returns (the wrapper's mount namespace, output).
fn run_in_private_mount_ns(ctx: &Ctx, b: &Bundle, id: &str) -> (String, String, bool) {
    b.save();
    let out_path = ctx.work_dir().join(format!("{id}.out"));
    let err_path = ctx.work_dir().join(format!("{id}.err"));
    let bundle = b.dir.display().to_string();
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg("readlink /proc/self/ns/mnt; exec \"$@\"")
        .arg("sh")
        .arg(&ctx.runtime)
        .args(ctx.argv(&["run", "--bundle", &bundle, id]))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn unshare");
    let status = poll_for(TIMEOUT, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let err = fs::read_to_string(&err_path).unwrap_or_default();
    (out, err, status.is_some_and(|s| s.success()))
}

#[test]
fn without_mount_namespace_the_container_is_chrooted_in_the_callers_namespace() {
    require_root!();
    if crun_wrapped() {
        skip!("crun already runs in its own private mount namespace here");
    }
    let ctx = Ctx::new("no_mntns");
    let (id, mut b) = no_mount_ns_bundle(&ctx);
    fs::write(b.rootfs().join("rootfs-marker"), "in-the-rootfs\n").unwrap();
    b.set_sh("readlink /proc/self/ns/mnt; cat /rootfs-marker; ls /");
    let (out, err, ok) = run_in_private_mount_ns(&ctx, &b, &id);
    assert!(ok, "run failed:\n{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    let ours = fs::read_link("/proc/self/ns/mnt").unwrap().display().to_string();
    assert!(lines.len() > 2, "no output:\n{out}\n{err}");
    assert_ne!(lines[0], ours, "unshare did not give a new mount namespace");
    assert_eq!(lines[1], lines[0], "the container got its own mount namespace:\n{out}");
    assert!(out.contains("in-the-rootfs"), "/ is not the rootfs:\n{out}\n{err}");
    assert!(!lines.contains(&"work") && lines.contains(&"bin"), "{out}");
    let leaked = host::mounts_mentioning(&b.dir.display().to_string());
    assert!(leaked.is_empty(), "mounts reached the host: {leaked:#?}");
}

#[test]
fn without_mount_namespace_masked_paths_are_refused() {
    require_root!();
    let ctx = Ctx::new("no_mntns_masked");
    let (id, mut b) = no_mount_ns_bundle(&ctx);
    b.set_args(&["true"]);
    b.set("/linux/maskedPaths", json!(["/proc/kcore"]));
    let c = create_fails(&ctx, &b, &id);
    let said = if runtime_is("runc") {
        "without a private MNT namespace"
    } else {
        "linux.maskedPaths"
    };
    assert!(c.stderr.contains(said), "{c}");
}

// ---------------------------------------------------------------------------------------------
// /dev, /proc, /sys and cgroupfs

#[test]
fn read_only_dev_is_populated_first() {
    require_root!();
    let ctx = Ctx::new("dev_ro");
    let (id, mut b) = ctx.bundle(&[]);
    b.set(
        "/mounts/1/options",
        json!(["nosuid", "strictatime", "mode=755", "size=65536k", "ro"]),
    );
    b.set_sh(
        "stat -c 'null=%F %t:%T' /dev/null; echo \"ptmx->$(readlink /dev/ptmx)\"; \
         echo \"fd->$(readlink /dev/fd)\"; (touch /dev/new) 2>&1 || echo WRITE-FAILED; \
         echo hi > /dev/null && echo NULL-OK; cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id);
    assert!(out.contains("null=character special file 1:3"), "{out}\n{err}");
    assert!(
        out.contains("ptmx->pts/ptmx") && out.contains("fd->/proc/self/fd"),
        "{out}"
    );
    assert!(out.contains("NULL-OK"), "{out}");
    assert!(
        out.contains("WRITE-FAILED") && out.contains("Read-only file system"),
        "{out}"
    );
    assert_eq!(mount_opts(must_line(&out, "/dev", &err))[0], "ro");
    for sub in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
        let l = must_line(&out, sub, &err);
        assert_eq!(mount_opts(l)[0], "rw", "{sub} must keep its own mode: {l}");
    }
}

#[test]
fn bind_of_a_procfs_onto_proc_is_accepted() {
    require_root!();
    let ctx = Ctx::new("proc_bind");
    let (id, mut b) = ctx.bundle(&[]);
    b.set(
        "/mounts/0",
        json!({"destination": "/proc", "type": "bind", "source": "/proc", "options": ["bind"]}),
    );
    b.set_sh("cat /proc/self/mountinfo; test -r /proc/self/status && echo PROC-OK");
    let (out, err) = run(&ctx, &b, &id);
    assert_eq!(fs_type(must_line(&out, "/proc", &err)), "proc", "{out}");
    assert!(out.contains("PROC-OK"), "{out}\n{err}");

    // Anything else bound onto /proc is refused.
    let not_proc = host_dir(&ctx, "notproc");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/mounts/0", bind(&not_proc, "/proc", &["bind"]));
    create_fails(&ctx, &b, &id);
}

#[test]
fn proc_allow_list_applies_to_the_resolved_destination() {
    require_root!();
    let ctx = Ctx::new("proc_resolved");
    let src = host_dir(&ctx, "fake");
    fs::write(src.join("meminfo"), "MemTotal: 42 kB\n").unwrap();
    // An image symlink steers a destination outside /proc into it.
    let (id, mut b) = ctx.bundle(&["true"]);
    std::os::unix::fs::symlink("/proc/sys/kernel", b.rootfs().join("etc/kernel")).unwrap();
    b.push_mount(bind(&src.join("meminfo"), "/etc/kernel/core_pattern", &["bind"]));
    let c = create_fails(&ctx, &b, &id);
    if runtime_is("runc") {
        assert!(c.stderr.contains("inside /proc"), "{c}");
    } else {
        assert!(c.stderr.contains("mounts[7].destination"), "{c}");
    }

    // The same symlink to an allowed file is fine: what counts is where it resolves.
    let (id, mut b) = ctx.bundle(&[]);
    std::os::unix::fs::symlink("/proc", b.rootfs().join("etc/p")).unwrap();
    b.push_mount(bind(&src.join("meminfo"), "/etc/p/meminfo", &["bind"]));
    b.set_sh("cat /proc/meminfo");
    let (out, err) = run(&ctx, &b, &id);
    assert_eq!(out, "MemTotal: 42 kB\n", "{err}");
}

#[test]
fn destination_resolving_to_the_root_is_refused() {
    require_root!();
    if runtime_is("runc") {
        skip!("runc 1.1.5 mounts over the rootfs itself (the container then lacks its program)");
    }
    let ctx = Ctx::new("dest_root");
    for dest in ["/", "/..", "/up"] {
        let (id, mut b) = ctx.bundle(&["true"]);
        std::os::unix::fs::symlink("..", b.rootfs().join("up")).unwrap();
        b.push_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        let c = create_fails(&ctx, &b, &id);
        assert!(c.stderr.contains("mounts[7].destination"), "{dest}: {c}");
    }
}

#[test]
fn symlinked_proc_or_sys_is_refused_with_runcs_wording() {
    require_root!();
    let ctx = Ctx::new("proc_symlink");
    for name in ["proc", "sys"] {
        let (id, b) = ctx.bundle(&["true"]);
        fs::remove_dir(b.rootfs().join(name)).unwrap();
        std::os::unix::fs::symlink("/tmp", b.rootfs().join(name)).unwrap();
        let c = create_fails(&ctx, &b, &id);
        assert!(
            c.stderr.contains("must be mounted on ordinary directory"),
            "/{name}: {c}"
        );
    }
}

/// The cgroup mount of the issue: neither "ro" nor "rw".
fn cgroup_mount(extra: &[&str]) -> Value {
    let mut opts = vec!["nosuid", "noexec", "nodev", "relatime"];
    opts.extend_from_slice(extra);
    json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": opts})
}

#[test]
fn cgroupfs_is_writable_unless_ro() {
    require_root!();
    let ctx = Ctx::new("cgroupfs_rw");
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (dir, mp) = if v2 {
        ("/sys/fs/cgroup/moor-it-sub", "/sys/fs/cgroup")
    } else {
        ("/sys/fs/cgroup/pids/moor-it-sub", "/sys/fs/cgroup/pids")
    };
    for (extra, writable) in [(&[][..], true), (&["ro"][..], false), (&["rw"][..], true)] {
        let (id, mut b) = ctx.bundle(&[]);
        b.set("/mounts/6", cgroup_mount(extra));
        b.set_sh(&format!(
            "(mkdir {dir} && rmdir {dir} && echo MKDIR-OK) 2>&1; cat /proc/self/mountinfo"
        ));
        let (out, err) = run(&ctx, &b, &id);
        let l = must_line(&out, mp, &err);
        if writable {
            assert!(
                out.contains("MKDIR-OK"),
                "{extra:?}: cgroupfs not writable:\n{out}\n{err}"
            );
            assert_eq!(mount_opts(l)[0], "rw", "{extra:?}: {l}");
        } else {
            assert!(!out.contains("MKDIR-OK"), "{extra:?}: cgroupfs writable:\n{out}");
            assert_eq!(mount_opts(l)[0], "ro", "{extra:?}: {l}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mount destinations

#[test]
fn empty_or_nul_destination_is_refused_naming_the_field() {
    require_root!();
    let ctx = Ctx::new("dest_bad");
    for dest in ["", "/mnt/a\u{0}b"] {
        if dest.is_empty() && runtime_is("runc") {
            eprintln!("SKIP empty destination: runc 1.1.5 takes it for / and mounts over the rootfs");
            continue;
        }
        let (id, mut b) = ctx.bundle(&["true"]);
        b.push_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        let c = create_fails(&ctx, &b, &id);
        if !runtime_is("runc") {
            assert!(c.stderr.contains("mounts[7].destination"), "{dest:?}: {c}");
        }
        assert!(!b.rootfs().join("mnt/a").exists(), "{dest:?}: created in the rootfs");
    }
}
