//! Namespaces: new ones, joining by path, user namespace mappings, time namespace.

use moor_integration::host::{self, ns_link};
use moor_integration::{poll_until, require_root, runtime_is, runtime_version, skip, Ctx, TIMEOUT};
use serde_json::json;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};

/// A holder process in fresh namespaces (`unshare <flags> sleep`), killed on drop.
struct NsHolder(Child);

impl NsHolder {
    fn new(flags: &[&str]) -> NsHolder {
        let child = Command::new("unshare")
            .args(flags)
            .args(["/bin/busybox", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let h = NsHolder(child);
        let pid = h.pid();
        // Wait until unshare has exec'd sleep (the namespace then differs from ours).
        poll_until(TIMEOUT, "holder ready", || {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .filter(|c| c.trim() == "busybox" || c.trim() == "sleep")
        });
        h
    }
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn init_is_pid_1_and_namespaces_are_new() {
    require_root!();
    let ctx = Ctx::new("ns_new");
    let (id, b) = ctx.bundle(&["sh", "-c", "echo pid=$$; hostname; ls /sys/class/net"]);
    let c = ctx.create(&b, &id, &[]).ok();
    let pid = ctx.pid(&id);
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        // For pid, the init's own pid ns is the parent's; its children's is the new one.
        let which = if ns == "pid" { "pid_for_children" } else { ns };
        let mine = ns_link(nix::unistd::getpid().as_raw(), which);
        let theirs = ns_link(pid, if ns == "pid" { "pid" } else { ns });
        assert!(theirs.is_some(), "cannot read {ns} ns of {pid}");
        assert_ne!(mine, theirs, "{ns} namespace not new");
    }
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    let out = c.stdout_now();
    assert_eq!(out, "pid=1\nmoor-it\nlo\n", "expected pid 1, hostname, and only lo");
}

#[test]
fn namespaces_not_listed_are_shared_with_host() {
    require_root!();
    let ctx = Ctx::new("ns_shared");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.remove_namespace("network").remove_namespace("ipc");
    ctx.create(&b, &id, &[]).ok();
    let pid = ctx.pid(&id);
    let me = nix::unistd::getpid().as_raw();
    assert_eq!(ns_link(pid, "net"), ns_link(me, "net"));
    assert_eq!(ns_link(pid, "ipc"), ns_link(me, "ipc"));
    assert_ne!(ns_link(pid, "uts"), ns_link(me, "uts"));
}

#[test]
fn join_network_namespace_by_path() {
    require_root!();
    let holder = NsHolder::new(&["-n"]);
    let path = format!("/proc/{}/ns/net", holder.pid());
    let want = ns_link(holder.pid(), "net").unwrap();
    let ctx = Ctx::new("ns_join");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "readlink /proc/self/ns/net"]);
    b.set_namespace("network", Some(&path));
    let out = ctx.run_to_stop(&b, &id);
    assert_eq!(out.trim(), want);
}

#[test]
fn join_uts_and_ipc_by_path() {
    require_root!();
    let holder = NsHolder::new(&["-u", "-i"]);
    let p = holder.pid();
    let ctx = Ctx::new("ns_join_uts");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc"]);
    b.set_namespace("uts", Some(&format!("/proc/{p}/ns/uts")));
    b.set_namespace("ipc", Some(&format!("/proc/{p}/ns/ipc")));
    // Setting a hostname in a joined uts namespace is not allowed by the spec.
    b.remove("/hostname");
    let out = ctx.run_to_stop(&b, &id);
    let want = format!("{}\n{}\n", ns_link(p, "uts").unwrap(), ns_link(p, "ipc").unwrap());
    assert_eq!(out, want);
}

#[test]
fn namespace_path_of_wrong_type_fails_and_leaves_nothing() {
    require_root!();
    let holder = NsHolder::new(&["-u"]);
    let ctx = Ctx::new("ns_wrong");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set_namespace("network", Some(&format!("/proc/{}/ns/uts", holder.pid())));
    let o = ctx.create(&b, &id, &[]).fails();
    assert!(!o.stderr.is_empty(), "no error message: {o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn namespace_path_that_is_not_a_namespace_fails() {
    require_root!();
    let ctx = Ctx::new("ns_notns");
    let (id, mut b) = ctx.bundle(&["true"]);
    let f = ctx.work_dir().join("plainfile");
    fs::write(&f, "x").unwrap();
    b.set_namespace("network", Some(f.to_str().unwrap()));
    ctx.create(&b, &id, &[]).fails();
    ctx.assert_no_residue(&id, &b);
}

fn userns_bundle(ctx: &Ctx, args: &[&str]) -> (String, moor_integration::Bundle) {
    let (id, mut b) = ctx.bundle(args);
    b.map_user_namespace(100000, 65536);
    (id, b)
}

#[test]
fn user_namespace_mappings() {
    require_root!();
    let ctx = Ctx::new("userns");
    let (id, mut b) = userns_bundle(&ctx, &[]);
    b.set_sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; sleep 1000");
    let c = ctx.create(&b, &id, &[]).ok();
    let pid = ctx.pid(&id);
    let st = fs::metadata(format!("/proc/{pid}")).unwrap_or_else(|e| {
        panic!(
            "init pid {pid} from state does not exist ({e}); create stderr: {}",
            c.stderr_now()
        )
    });
    assert_eq!(st.uid(), 100000, "host-side owner of the init");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        host::status_field(&status, "Uid").unwrap().split_whitespace().next(),
        Some("100000")
    );
    ctx.start(&id).ok();
    let out = poll_until(TIMEOUT, "uid map output", || {
        let o = c.stdout_now();
        (o.lines().count() >= 3).then_some(o)
    });
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[2], ["0"], "{out}");
}

#[test]
fn bad_uid_mapping_fails_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("userns_bad");
    let (id, mut b) = userns_bundle(&ctx, &["true"]);
    // Overlapping container ranges: the kernel refuses this uid_map.
    b.set(
        "/linux/uidMappings",
        json!([
            {"containerID": 0, "hostID": 100000, "size": 65536},
            {"containerID": 0, "hostID": 300000, "size": 10}
        ]),
    );
    ctx.create(&b, &id, &[]).fails();
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn time_namespace_offsets() {
    require_root!();
    if runtime_is("runc") && runtime_version() < (1, 2, 0) {
        skip!("runc < 1.2 has no time namespace support");
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip!("kernel has no time namespaces");
    }
    let ctx = Ctx::new("timens");
    let (id, mut b) = ctx.bundle(&["cat", "/proc/uptime"]);
    b.set_namespace("time", None);
    b.set(
        "/linux/timeOffsets",
        json!({"monotonic": {"secs": 86400 * 365, "nanosecs": 0}, "boottime": {"secs": 86400 * 365, "nanosecs": 0}}),
    );
    let host_up: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = ctx.run_to_stop(&b, &id);
    let up: f64 = out
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("{out:?}"))
        .parse()
        .unwrap();
    let diff = up - host_up;
    assert!(
        (86400.0 * 365.0 - 60.0..86400.0 * 365.0 + 60.0).contains(&diff),
        "uptime inside {up}, host {host_up}: offset not applied"
    );
}
