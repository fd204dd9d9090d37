//! `moor inspect`: the isolation report of a container, checked against facts this test reads
//! itself from /proc/<pid>/status, /proc/<pid>/ns and /proc/<pid>/mountinfo, and its
//! `--require baseline|restricted` check of the Kubernetes Pod Security Standards.
//!
//! `inspect` is moor's own command (runc, crun and youki have nothing like it): every test
//! skips, saying so, for other runtimes.

use moor_integration::host::{cap_mask, ns_link, parse_cap_hex, status_field};
use moor_integration::{require_root, runtime_is, skip, Bundle, Ctx, Output};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::net::UnixListener;
use std::path::Path;

const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

macro_rules! moor_only {
    () => {
        require_root!();
        if !runtime_is("moor") {
            skip!("inspect is a moor-only command: runc, crun and youki have no isolation report");
        }
    };
}

/// The Docker default profile shipped with moor's seccomp crate (OCI `linux.seccomp` form).
fn docker_default() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seccomp/tests/data/docker-default.json");
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn our_pid() -> i32 {
    i32::try_from(std::process::id()).expect("pid fits in i32")
}

/// Creates and starts the bundle; returns the init pid.
fn start(ctx: &Ctx, b: &Bundle, id: &str) -> i32 {
    ctx.create_start(b, id);
    ctx.wait_status(id, "running");
    ctx.pid(id)
}

fn inspect(ctx: &Ctx, args: &[&str]) -> (Output, Value) {
    let mut argv = vec!["inspect", "--format", "json"];
    argv.extend_from_slice(args);
    let o = ctx.run(&argv);
    let v = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("inspect output is not JSON ({e}): {o}"));
    (o, v)
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap_or_else(|| panic!("not a name: {n}")))
        .collect()
}

fn violations(v: &Value) -> Vec<String> {
    v["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations list: {v}"))
        .iter()
        .map(|x| {
            format!(
                "{} {}: {}",
                x["level"],
                x["control"].as_str().unwrap_or("?"),
                x["detail"]
            )
        })
        .collect()
}

fn mountinfo(pid: i32) -> Vec<(String, bool)> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[4].to_string(), f[5].split(',').any(|o| o == "ro"))
        })
        .collect()
}

/// Checks the report's process against /proc/<pid>: the five capability sets, no_new_privs,
/// the seccomp mode, the user, each namespace (its inode, and "host" exactly when it is ours),
/// and that there is no drift.
#[track_caller]
fn check_process(report: &Value, pid: i32) {
    let p = &report["processes"][0];
    assert_eq!(p["pid"], json!(pid), "{report}");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| status_field(&status, k).unwrap_or_else(|| panic!("no {k} in status"));
    for (set, key) in [
        ("bounding", "CapBnd"),
        ("effective", "CapEff"),
        ("permitted", "CapPrm"),
        ("inheritable", "CapInh"),
        ("ambient", "CapAmb"),
    ] {
        let got = cap_mask(&names(&p["capabilities"][set]));
        assert_eq!(
            got,
            parse_cap_hex(&field(key)),
            "{set} capabilities differ from {key}: {p}"
        );
    }
    assert_eq!(p["no_new_privs"], json!(field("NoNewPrivs") == "1"));
    let mode = match field("Seccomp").as_str() {
        "0" => "disabled",
        "1" => "strict",
        _ => "filter",
    };
    assert_eq!(p["seccomp"]["mode"], json!(mode));
    // status shows the uid as the host sees it.
    let euid: u32 = field("Uid").split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(p["user"]["host_uid"], json!(euid));
    let mut seen = 0;
    for ns in p["namespaces"].as_array().unwrap() {
        let kind = ns["kind"].as_str().unwrap();
        let Some(link) = ns_link(pid, kind) else { continue };
        seen += 1;
        let inode: u64 = link.trim_end_matches(']').rsplit('[').next().unwrap().parse().unwrap();
        assert_eq!(ns["inode"], json!(inode), "{kind}: {ns}");
        let ours = ns_link(our_pid(), kind);
        assert_eq!(
            ns["state"] == "host",
            ours.as_deref() == Some(link.as_str()),
            "{kind}: {ns} vs ours {ours:?}"
        );
    }
    assert!(seen >= 6, "too few namespaces in {p}");
    assert_eq!(
        report["drift"],
        json!([]),
        "live facts differ from the config: {report}"
    );
}

#[test]
fn inspect_default_container() {
    moor_only!();
    let ctx = Ctx::new("inspect-default");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "sleep 300 & exec sleep 301"]);
    b.set("/root/readonly", json!(true));
    let pid = start(&ctx, &b, &id);
    let (o, r) = inspect(&ctx, &[&id, "--require", "baseline"]);
    assert_eq!(o.code(), Some(0), "the default container meets baseline: {o}");
    assert_eq!(r["violations"], json!([]));
    check_process(&r, pid);
    let p = &r["processes"][0];
    assert_eq!(names(&p["capabilities"]["bounding"]).len(), 3);
    assert_eq!(p["capabilities"]["beyond_default"], json!([]));
    assert_eq!(p["user"]["root_on_host"], json!(true));
    // Read-only root, masked and read-only paths as mountinfo has them.
    let mounts = mountinfo(pid);
    let ro_root = mounts.iter().rev().find(|(m, _)| m == "/").unwrap().1;
    assert!(ro_root);
    assert_eq!(r["filesystem"]["root_readonly"], json!(ro_root));
    for m in r["filesystem"]["masked_paths"].as_array().unwrap() {
        let path = m["path"].as_str().unwrap();
        let mounted = mounts.iter().any(|(mp, _)| mp == path);
        if mounted {
            assert_eq!(m["in_force"], json!(true), "{m}");
        }
        if Path::new(&format!("/proc/{pid}/root{path}")).exists() && !mounted {
            assert_eq!(
                m["in_force"],
                json!(false),
                "{path} is visible but reported masked: {m}"
            );
        }
    }
    assert!(mounts.iter().any(|(mp, ro)| mp == "/proc/sys" && *ro));
    assert_eq!(r["filesystem"]["host_binds"], json!([]));
    assert_eq!(r["cgroup"]["memory"], Value::Null, "{}", r["cgroup"]);
    let findings = r["findings"].to_string();
    assert!(
        findings.contains("no memory limit") && findings.contains("no pids limit"),
        "{findings}"
    );
    assert!(
        r["devices"]["nodes"].to_string().contains("/dev/null"),
        "{}",
        r["devices"]
    );
    assert_eq!(r["devices"]["all_allowed"], json!(false));

    // The restricted level names what the default container lacks.
    let (o, r) = inspect(&ctx, &[&id, "--require", "restricted"]);
    assert_eq!(o.code(), Some(1), "{o}");
    let v = violations(&r).join("\n");
    for want in ["Capabilities", "CAP_KILL", "Seccomp", "Running as Non-root"] {
        assert!(v.contains(want), "restricted violations lack {want}:\n{v}");
    }
    assert!(!v.contains("Privilege Escalation"), "no_new_privs is set:\n{v}");

    // --all reports every process in the container's cgroup.
    let (_, r) = inspect(&ctx, &[&id, "--all"]);
    let pids: Vec<i64> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_eq!(pids[0], i64::from(pid));

    // The text form: sections and flagged findings.
    let o = ctx.run(&["inspect", &id]).ok();
    for want in [
        "== Findings",
        "[LOW     ] no memory limit",
        "== Process",
        "== Filesystem",
        "== Drift",
    ] {
        assert!(o.stdout.contains(want), "text report lacks {want:?}:\n{}", o.stdout);
    }
}

#[test]
fn inspect_privileged_container() {
    moor_only!();
    let ctx = Ctx::new("inspect-priv");
    let (id, mut b) = ctx.bundle(&["sleep", "300"]);
    let last: usize = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // This session's bounding set may lack some (CAP_SYS_RESOURCE here): ask for what we have.
    let ours = parse_cap_hex(&status_field(&fs::read_to_string("/proc/self/status").unwrap(), "CapBnd").unwrap());
    let caps: Vec<&str> = ALL_CAPS[..=last.min(40)]
        .iter()
        .copied()
        .filter(|c| ours & cap_mask(&[c]) != 0)
        .collect();
    let privileged = caps.len() == last.min(40) + 1;
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), json!(caps));
    }
    b.set("/process/noNewPrivileges", json!(false));
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    b.set("/linux/resources/devices", json!([{"allow": true, "access": "rwm"}]));
    let pid = start(&ctx, &b, &id);
    let (o, r) = inspect(&ctx, &[&id, "--require", "baseline"]);
    assert_eq!(o.code(), Some(1), "{o}");
    check_process(&r, pid);
    let p = &r["processes"][0];
    assert_eq!(p["capabilities"]["all"], json!(privileged));
    assert!(names(&p["capabilities"]["beyond_default"]).contains(&"CAP_SYS_ADMIN"));
    assert_eq!(p["no_new_privs"], json!(false));
    assert_eq!(r["devices"]["all_allowed"], json!(true), "{}", r["devices"]);
    let v = violations(&r).join("\n");
    for want in ["Privileged Containers", "Capabilities", "CAP_SYS_ADMIN"] {
        assert!(v.contains(want), "baseline violations lack {want}:\n{v}");
    }
    // Nothing is mounted over /proc/keys or /proc/sys: the report says so where they exist.
    let mounts = mountinfo(pid);
    assert!(!mounts.iter().any(|(mp, _)| mp == "/proc/keys" || mp == "/proc/sys"));
    let masked = &r["filesystem"]["masked_paths"];
    let keys = masked
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "/proc/keys")
        .unwrap();
    assert_eq!(
        keys["in_force"],
        json!(!Path::new(&format!("/proc/{pid}/root/proc/keys")).exists()),
        "{keys}"
    );
    if keys["in_force"] == json!(false) {
        assert!(v.contains("/proc Mount Type"), "{v}");
    }
    let ro = &r["filesystem"]["readonly_paths"];
    let sys = ro
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "/proc/sys")
        .unwrap();
    assert_eq!(sys["in_force"], json!(false), "{sys}");
    let findings = r["findings"].to_string();
    assert!(findings.contains("critical"), "{findings}");
}

#[test]
fn inspect_host_socket_bind() {
    moor_only!();
    let ctx = Ctx::new("inspect-sock");
    let (id, mut b) = ctx.bundle(&["sleep", "300"]);
    let sock = ctx.work_dir().join("containerd.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let data = ctx.work_dir().join("data");
    fs::create_dir(&data).unwrap();
    b.push_mount(json!({"destination": "/run/containerd/containerd.sock", "type": "bind",
        "source": sock.display().to_string(), "options": ["rbind"]}));
    b.push_mount(json!({"destination": "/data", "type": "bind",
        "source": data.display().to_string(), "options": ["rbind", "ro"]}));
    // A file bound where runtimes put their own /etc/hosts, but from an arbitrary host path: still
    // a host path (only copies in a runtime's state directory count as managed).
    let hosts = ctx.work_dir().join("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    b.push_mount(json!({"destination": "/etc/hosts", "type": "bind",
        "source": hosts.display().to_string(), "options": ["rbind", "ro"]}));
    let pid = start(&ctx, &b, &id);
    // Independently: both binds are in the container's mountinfo.
    let mounts = mountinfo(pid);
    assert!(mounts.iter().any(|(mp, _)| mp == "/run/containerd/containerd.sock"));
    assert!(mounts.iter().any(|(mp, ro)| mp == "/data" && *ro));
    let (o, r) = inspect(&ctx, &[&id, "--require", "baseline"]);
    assert_eq!(o.code(), Some(1), "{o}");
    check_process(&r, pid);
    let binds = r["filesystem"]["host_binds"].as_array().unwrap();
    assert_eq!(binds.len(), 3, "{binds:?}");
    let h = binds.iter().find(|x| x["destination"] == "/etc/hosts").unwrap();
    assert_eq!(h["managed"], json!(false), "{h}");
    let s = binds
        .iter()
        .find(|x| x["destination"] == "/run/containerd/containerd.sock")
        .unwrap();
    assert_eq!(s["socket"], json!(true), "{s}");
    assert!(s["host_path"].as_str().unwrap().ends_with("/containerd.sock"), "{s}");
    assert!(
        s["danger"].as_str().unwrap().contains("container runtime socket"),
        "{s}"
    );
    let d = binds.iter().find(|x| x["destination"] == "/data").unwrap();
    assert_eq!(
        (d["readonly"].clone(), d["socket"].clone(), d["danger"].clone()),
        (json!(true), json!(false), Value::Null)
    );
    let v = violations(&r).join("\n");
    assert!(
        v.contains("HostPath Volumes") && v.contains("/run/containerd/containerd.sock"),
        "{v}"
    );
    assert!(v.contains("at /etc/hosts"), "{v}");
    assert!(r["findings"].to_string().contains("critical"));
    // The same from the config alone.
    let (o, r) = inspect(
        &ctx,
        &["--bundle", &b.path().display().to_string(), "--require", "baseline"],
    );
    assert_eq!(o.code(), Some(1), "{o}");
    assert_eq!(r["source"]["kind"], "config");
    let s = r["filesystem"]["host_binds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["destination"] == "/run/containerd/containerd.sock")
        .cloned()
        .unwrap();
    assert_eq!(s["host_path"], json!(sock.display().to_string()));
    assert_eq!(s["socket"], json!(true));
}

#[test]
fn inspect_seccomp_filter_and_none() {
    moor_only!();
    let ctx = Ctx::new("inspect-seccomp");
    let (off_id, off) = ctx.bundle(&["sleep", "300"]);
    let (on_id, mut on) = ctx.bundle(&["sleep", "300"]);
    on.set("/linux/seccomp", docker_default());
    let off_pid = start(&ctx, &off, &off_id);
    let on_pid = start(&ctx, &on, &on_id);

    let (_, r) = inspect(&ctx, &[&off_id, "--require", "restricted"]);
    check_process(&r, off_pid);
    assert_eq!(r["processes"][0]["seccomp"]["mode"], "disabled");
    assert_eq!(r["seccomp_profile"], Value::Null);
    assert!(violations(&r).join("\n").contains("Seccomp"));

    let (_, r) = inspect(&ctx, &[&on_id, "--require", "restricted"]);
    check_process(&r, on_pid);
    let status = fs::read_to_string(format!("/proc/{on_pid}/status")).unwrap();
    assert_eq!(status_field(&status, "Seccomp").as_deref(), Some("2"));
    assert_eq!(
        r["processes"][0]["seccomp"]["filters"],
        json!(status_field(&status, "Seccomp_filters")
            .unwrap()
            .parse::<u64>()
            .unwrap())
    );
    let prof = &r["seccomp_profile"];
    assert_eq!(prof["default_action"], "SCMP_ACT_ERRNO");
    assert!(prof["rules"].as_u64().unwrap() > 0 && prof["instructions"].as_u64().unwrap() > 0);
    assert!(prof["digest"].as_str().unwrap().starts_with("sha256:"));
    let allowed = names(&prof["dangerous_allowed"]);
    for denied in ["mount", "kexec_load", "init_module", "open_by_handle_at"] {
        assert!(
            !allowed.contains(&denied),
            "docker's profile denies {denied}: {allowed:?}"
        );
    }
    assert!(!violations(&r).join("\n").contains("Seccomp"));
    // The digest is the compiled program's: the same profile from the bundle gives the same.
    let (_, c) = inspect(&ctx, &["--bundle", &on.path().display().to_string()]);
    assert_eq!(c["seccomp_profile"]["digest"], prof["digest"]);
}

#[test]
fn inspect_drop_all_meets_restricted() {
    moor_only!();
    let ctx = Ctx::new("inspect-dropall");
    let (id, mut b) = ctx.bundle(&["sleep", "300"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": [], "effective": [], "permitted": []}),
    );
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set("/linux/seccomp", docker_default());
    b.set("/linux/resources/memory", json!({"limit": 64 << 20}));
    b.set("/linux/resources/pids", json!({"limit": 64}));
    let pid = start(&ctx, &b, &id);
    let (o, r) = inspect(&ctx, &[&id, "--require", "restricted"]);
    assert_eq!(
        o.code(),
        Some(0),
        "a container without capabilities, as uid 1000, with seccomp and no_new_privs meets restricted: {o}"
    );
    assert_eq!(r["violations"], json!([]));
    check_process(&r, pid);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(parse_cap_hex(&status_field(&status, "CapBnd").unwrap()), 0);
    assert_eq!(r["processes"][0]["capabilities"]["bounding"], json!([]));
    assert_eq!(r["processes"][0]["user"]["root_on_host"], json!(false));
    assert_eq!(r["processes"][0]["user"]["host_uid"], json!(1000));
    // The limits in force, as the cgroup files say.
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let read_limit = |ctrl: &str, file: &str| -> Option<u64> {
        let line = cg
            .lines()
            .find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == ctrl)))?;
        let path = line.splitn(3, ':').nth(2)?;
        fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}{path}/{file}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let Some(mem) = read_limit("memory", "memory.limit_in_bytes") {
        assert_eq!(r["cgroup"]["memory"], json!(mem), "{}", r["cgroup"]);
    }
    if let Some(pids) = read_limit("pids", "pids.max") {
        assert_eq!(r["cgroup"]["pids"], json!(pids), "{}", r["cgroup"]);
    }
    assert!(!r["findings"].to_string().contains("no memory limit"));
    // The text form says so too.
    let o = ctx.run(&["inspect", &id, "--require", "restricted"]);
    assert_eq!(o.code(), Some(0), "{o}");
    assert!(o.stdout.contains("no violation"), "{}", o.stdout);
}

#[test]
fn inspect_host_network_namespace() {
    moor_only!();
    let ctx = Ctx::new("inspect-hostnet");
    let (id, mut b) = ctx.bundle(&["sleep", "300"]);
    b.remove_namespace("network");
    let pid = start(&ctx, &b, &id);
    assert_eq!(ns_link(pid, "net"), ns_link(our_pid(), "net"));
    let (o, r) = inspect(&ctx, &[&id, "--require", "baseline"]);
    assert_eq!(o.code(), Some(1), "{o}");
    check_process(&r, pid);
    let v = violations(&r);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("Host Namespaces") && v[0].contains("net"), "{v:?}");
}

/// Root in a user namespace mapped to an unprivileged host uid is not root on the host: the
/// report says where uid 0 lands, and restricted's "Running as Non-root" holds.
#[test]
fn inspect_user_namespace_root() {
    moor_only!();
    let ctx = Ctx::new("inspect-userns");
    let (id, mut b) = ctx.bundle(&["sleep", "300"]);
    b.map_user_namespace(100000, 65536);
    let pid = start(&ctx, &b, &id);
    let (_, r) = inspect(&ctx, &[&id, "--require", "restricted"]);
    check_process(&r, pid);
    let p = &r["processes"][0];
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let f: Vec<u64> = map.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!(p["uid_map"], json!([{"inside": f[0], "outside": f[1], "count": f[2]}]));
    assert_eq!(p["user"]["uid"], json!(0));
    assert_eq!(p["user"]["host_uid"], json!(100000));
    assert_eq!(p["user"]["root_on_host"], json!(false));
    assert_eq!(p["user"]["gid"], json!(0));
    // The default devices are the host's, bound in (no mknod in a user namespace): devices, not
    // host paths.
    assert_eq!(r["filesystem"]["host_binds"], json!([]));
    let user = p["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "user")
        .unwrap();
    assert_eq!(user["state"], "new");
    let v = violations(&r).join("\n");
    assert!(!v.contains("Running as Non-root"), "{v}");
}

/// A workload that changes its own confinement after exec (here setpriv --nnp) differs from its
/// recorded config: the report says so. Before start (created) and right after exec the sets
/// match the config under execve's rules (root without no_new_privs gains its bounding set).
#[test]
fn inspect_reports_drift() {
    moor_only!();
    let ctx = Ctx::new("inspect-drift");
    let (id, mut b) = ctx.bundle(&["/bin/busybox", "setpriv", "--nnp", "sleep", "300"]);
    b.set("/process/noNewPrivileges", json!(false));
    b.set("/process/capabilities/permitted", json!(["CAP_KILL"]));
    b.set("/process/capabilities/effective", json!(["CAP_KILL"]));
    ctx.create(&b, &id, &[]).ok();
    let pid = ctx.pid(&id);
    let (_, r) = inspect(&ctx, &[&id]);
    check_process(&r, pid);
    ctx.start(&id).ok();
    let status = |pid: i32| fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    moor_integration::poll_until(moor_integration::TIMEOUT, "setpriv runs sleep", || {
        (status(pid).contains("Name:\tsleep")).then_some(())
    });
    assert_eq!(status_field(&status(pid), "NoNewPrivs").as_deref(), Some("1"));
    let (_, r) = inspect(&ctx, &[&id]);
    let drift = r["drift"].to_string();
    assert!(
        drift.contains("no_new_privs: config says false, process has true"),
        "{r}"
    );
    assert!(!drift.contains("capabilities"), "execve's rules are applied: {drift}");
    assert!(
        r["findings"].to_string().contains("drift: no_new_privs"),
        "{}",
        r["findings"]
    );
}

#[test]
fn inspect_bad_input() {
    moor_only!();
    let ctx = Ctx::new("inspect-bad");
    let o = ctx.run(&["inspect", "no-such-container"]);
    assert!(!o.success());
    assert!(o.stderr.contains("does not exist"), "{o}");

    let (_, mut b) = ctx.bundle(&["true"]);
    b.set("/process/capabilities/bounding", json!(["CAP_BOGUS"]));
    b.save();
    let o = ctx.run(&["inspect", "--bundle", &b.path().display().to_string()]);
    assert!(!o.success());
    assert!(
        o.stderr.contains("process.capabilities.bounding"),
        "the error names the field: {o}"
    );

    let (_, mut b) = ctx.bundle(&["true"]);
    b.set(
        "/linux/sysctl",
        json!({"kernel.shmmax": "1", "net.ipv4.tcp_syncookies": "1"}),
    );
    b.save();
    let (o, r) = inspect(
        &ctx,
        &["--bundle", &b.path().display().to_string(), "--require", "baseline"],
    );
    assert_eq!(o.code(), Some(1), "{o}");
    let v = violations(&r).join("\n");
    assert!(
        v.contains("Sysctls") && v.contains("kernel.shmmax") && !v.contains("tcp_syncookies"),
        "{v}"
    );
    // Nothing was created.
    assert_eq!(fs::read_dir(&ctx.root).unwrap().count(), 0);
}

/// Binds a breakout would ask for, judged from the config alone (nothing is created): the host's
/// root writable, its /proc, a docker socket path.
#[test]
fn inspect_bundle_flags_dangerous_binds() {
    moor_only!();
    let ctx = Ctx::new("inspect-binds");
    let (_, mut b) = ctx.bundle(&["true"]);
    b.push_mount(json!({"destination": "/host", "type": "bind", "source": "/", "options": ["rbind"]}));
    b.push_mount(json!({"destination": "/hostproc", "type": "bind", "source": "/proc", "options": ["rbind", "ro"]}));
    b.push_mount(json!({"destination": "/var/run/docker.sock", "type": "bind",
        "source": "/var/run/docker.sock", "options": ["bind"]}));
    b.save();
    let (o, r) = inspect(
        &ctx,
        &["--bundle", &b.path().display().to_string(), "--require", "baseline"],
    );
    assert_eq!(o.code(), Some(1), "{o}");
    let binds = r["filesystem"]["host_binds"].as_array().unwrap();
    let danger = |dest: &str| {
        binds
            .iter()
            .find(|x| x["destination"] == dest)
            .unwrap_or_else(|| panic!("no bind at {dest}: {binds:?}"))["danger"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(danger("/host"), "host / writable");
    assert_eq!(danger("/hostproc"), "host /proc");
    assert!(danger("/var/run/docker.sock").contains("container runtime socket"));
    let v = violations(&r).join("\n");
    for dest in ["/host", "/hostproc", "/var/run/docker.sock"] {
        assert!(v.contains(&format!("at {dest}\"")), "{dest} not named:\n{v}");
    }
    let critical = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "critical")
        .count();
    assert_eq!(critical, 3, "{}", r["findings"]);
    assert_eq!(fs::read_dir(&ctx.root).unwrap().count(), 0);
}

#[test]
fn inspect_in_features() {
    if !runtime_is("moor") {
        skip!("inspect is a moor-only command: runc, crun and youki have no isolation report");
    }
    let ctx = Ctx::new("inspect-features");
    let o = ctx.run(&["features"]).ok();
    let f: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("features is not JSON ({e}): {o}"));
    assert_eq!(f["annotations"]["io.github.moor.inspect"], "baseline,restricted", "{o}");
}
