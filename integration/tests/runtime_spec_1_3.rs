//! Fields new in runtime-spec 1.3: process.execCPUAffinity, linux.memoryPolicy,
//! linux.netDevices, and the version a runtime reports. runc implements them from 1.3 on
//! (execCPUAffinity from 1.2), so older runc skips here, saying so.

use moor_integration::bundle::Bundle;
use moor_integration::host::status_field;
use moor_integration::{poll_until, require_root, runtime_is, runtime_version, skip, Ctx, Output, TIMEOUT};
use serde_json::json;
use std::fs;
use std::process::{Child, Command, Stdio};

fn runc_older_than(major: u32, minor: u32) -> bool {
    runtime_is("runc") && runtime_version() < (major, minor, 0)
}

fn exec(ctx: &Ctx, id: &str, opts: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["exec"];
    args.extend_from_slice(opts);
    args.push(id);
    args.extend_from_slice(cmd);
    ctx.run(&args)
}

#[test]
fn reports_runtime_spec_1_3() {
    require_root!();
    if runc_older_than(1, 3) {
        skip!("runc {:?} implements runtime-spec 1.2 at most", runtime_version());
    }
    let ctx = Ctx::new("spec13_version");
    let version = ctx.run(&["--version"]).ok();
    assert!(version.stdout.contains("spec: 1.3.0"), "--version: {version}");
    let features: serde_json::Value = serde_json::from_str(&ctx.run(&["features"]).ok().stdout).unwrap();
    assert_eq!(features["ociVersionMax"], "1.3.0");
    assert_eq!(features["linux"]["netDevices"]["enabled"], true);
    let modes = features["linux"]["memoryPolicy"]["modes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(modes.contains(&json!("MPOL_BIND")), "memoryPolicy modes: {features}");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create(&b, &id, &[]).ok();
    assert_eq!(ctx.state_ok(&id)["ociVersion"], "1.3.0");
}

/// The policy shows in /proc/self/numa_maps for every mapping without one of its own.
#[test]
fn memory_policy_applies_to_init_and_exec() {
    require_root!();
    if runc_older_than(1, 3) {
        skip!("runc before 1.3 ignores linux.memoryPolicy");
    }
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        skip!("this kernel has no NUMA support (/proc/self/numa_maps is missing)");
    }
    let ctx = Ctx::new("spec13_mempolicy");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "grep -c interleave:0 /proc/self/numa_maps; sleep 1000"]);
    b.set("/linux/memoryPolicy", json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}));
    let c = ctx.create_start(&b, &id);
    let first = poll_until(TIMEOUT, "init's numa_maps count", || {
        c.stdout_now().lines().next().map(str::to_string)
    });
    assert!(
        first.parse::<u32>().unwrap_or(0) > 0,
        "init's mappings are not interleaved: {c}"
    );
    let o = exec(&ctx, &id, &[], &["grep", "-c", "interleave:0", "/proc/self/numa_maps"]).ok();
    assert!(o.stdout.trim().parse::<u32>().unwrap_or(0) > 0, "exec'd process: {o}");
}

#[test]
fn memory_policy_that_does_not_fit_its_mode_is_refused() {
    require_root!();
    if runc_older_than(1, 3) {
        skip!("runc before 1.3 ignores linux.memoryPolicy");
    }
    let ctx = Ctx::new("spec13_mempolicy_bad");
    for policy in [
        json!({"mode": "MPOL_BIND"}),
        json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
        json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
    ] {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.set("/linux/memoryPolicy", policy.clone());
        let c = ctx.create(&b, &id, &[]);
        assert!(!c.success(), "{policy} was accepted: {c}");
        assert!(
            c.stderr.contains("memoryPolicy"),
            "the error should name linux.memoryPolicy: {c}"
        );
        ctx.assert_no_residue(&id, &b);
    }
}

#[test]
fn exec_cpu_affinity_final_applies_to_exec_only() {
    require_root!();
    if runc_older_than(1, 2) {
        skip!("runc before 1.2 ignores process.execCPUAffinity");
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cpus < 2 {
        skip!("needs at least 2 CPUs to tell an affinity from the default, this machine has {cpus}");
    }
    let ctx = Ctx::new("spec13_affinity");
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set("/process/execCPUAffinity", json!({"initial": "1", "final": "0"}));
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    let init = fs::read_to_string(format!("/proc/{}/status", ctx.pid(&id))).unwrap();
    let all = status_field(&fs::read_to_string("/proc/self/status").unwrap(), "Cpus_allowed_list");
    assert_eq!(
        status_field(&init, "Cpus_allowed_list"),
        all,
        "init must keep the default affinity"
    );
    let o = exec(&ctx, &id, &[], &["grep", "Cpus_allowed_list", "/proc/self/status"]).ok();
    assert_eq!(
        status_field(&o.stdout, "Cpus_allowed_list").as_deref(),
        Some("0"),
        "{o}"
    );

    // The exec process's own field wins over config.json's.
    let process = json!({
        "args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
        "execCPUAffinity": {"final": "1"}
    });
    let pf = ctx.work_dir().join("process.json");
    fs::write(&pf, process.to_string()).unwrap();
    let o = exec(&ctx, &id, &["--process", &pf.display().to_string()], &[]).ok();
    assert_eq!(
        status_field(&o.stdout, "Cpus_allowed_list").as_deref(),
        Some("1"),
        "{o}"
    );

    // A CPU that does not exist fails the exec, naming the field.
    let process = json!({
        "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "execCPUAffinity": {"final": "1000"}
    });
    fs::write(&pf, process.to_string()).unwrap();
    let o = exec(&ctx, &id, &["--process", &pf.display().to_string()], &[]);
    assert!(!o.success(), "an impossible affinity was accepted: {o}");
    assert!(o.stderr.contains("execCPUAffinity"), "{o}");
}

/// A veth pair made by the test (the host kernel here has no dummy links), removed on drop.
struct Veth {
    host: String,
    peer: String,
}

impl Veth {
    fn new(tag: &str) -> Option<Veth> {
        let pid = std::process::id() % 100_000;
        let v = Veth {
            host: format!("mv{tag}{pid}a"),
            peer: format!("mv{tag}{pid}b"),
        };
        let ok = Command::new("ip")
            .args(["link", "add", &v.host, "type", "veth", "peer", "name", &v.peer])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(v)
    }

    fn ip(args: &[&str]) -> String {
        let o = Command::new("ip").args(args).output().expect("ip");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn on_host(name: &str) -> bool {
        Command::new("ip")
            .args(["link", "show", "dev", name])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for name in [&self.host, &self.peer] {
            if !name.is_empty() && Veth::on_host(name) {
                let _ = Command::new("ip").args(["link", "del", name]).status();
            }
        }
    }
}

#[test]
fn net_device_is_moved_renamed_up_and_keeps_its_address() {
    require_root!();
    if runc_older_than(1, 3) {
        skip!("runc before 1.3 does not implement linux.netDevices");
    }
    let Some(veth) = Veth::new("n") else {
        skip!("cannot create a veth pair here (ip link add ... type veth failed)");
    };
    // A permanent global address, and a TEST-NET one nothing routes to.
    assert!(Command::new("ip")
        .args(["addr", "add", "192.0.2.10/24", "dev", &veth.host])
        .status()
        .unwrap()
        .success());
    let ctx = Ctx::new("spec13_netdev");
    let (id, mut b) = ctx.bundle(&[
        "sh",
        "-c",
        "ip -o addr show dev ctr0; ip -o link show dev ctr0; sleep 1000",
    ]);
    b.set("/linux/netDevices", json!({ veth.host.clone(): {"name": "ctr0"} }));
    let c = ctx.create_start(&b, &id);
    let out = poll_until(TIMEOUT, "the container's view of ctr0", || {
        let s = c.stdout_now();
        s.contains("mtu").then_some(s)
    });
    assert!(
        out.contains("inet 192.0.2.10/24"),
        "the address was not kept: {out}\n{c}"
    );
    let link = out.lines().find(|l| l.contains("mtu")).unwrap_or_default();
    let flags = link
        .split('<')
        .nth(1)
        .and_then(|f| f.split('>').next())
        .unwrap_or_default();
    assert!(flags.split(',').any(|f| f == "UP"), "the link is not up: {link}");
    assert!(
        !Veth::on_host(&veth.host),
        "the device is still on the host: {}",
        Veth::ip(&["link"])
    );
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped");
    ctx.delete(&id).ok();
    // A virtual device dies with the container's network namespace (the kernel's rule; the spec
    // forbids moving it back): its host peer goes with it.
    poll_until(TIMEOUT, "the veth pair to go", || {
        (!Veth::on_host(&veth.peer)).then_some(())
    });
}

/// A network namespace joined by path outlives the container, and keeps the device.
#[test]
fn net_device_stays_in_a_joined_namespace() {
    require_root!();
    if runc_older_than(1, 3) {
        skip!("runc before 1.3 does not implement linux.netDevices");
    }
    let Some(veth) = Veth::new("j") else {
        skip!("cannot create a veth pair here (ip link add ... type veth failed)");
    };
    let mut holder: Child = Command::new("unshare")
        .args(["-n", "/bin/busybox", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare");
    let hpid = holder.id();
    poll_until(TIMEOUT, "holder", || {
        fs::read_to_string(format!("/proc/{hpid}/comm"))
            .ok()
            .filter(|c| c.trim() != "unshare")
    });
    let ctx = Ctx::new("spec13_netdev_join");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set_namespace("network", Some(&format!("/proc/{hpid}/ns/net")));
    b.set("/linux/netDevices", json!({ veth.host.clone(): {} }));
    ctx.run_to_stop(&b, &id);
    ctx.delete(&id).ok();
    let inside = Command::new("nsenter")
        .args([
            &format!("--net=/proc/{hpid}/ns/net"),
            "ip",
            "-o",
            "link",
            "show",
            "dev",
            &veth.host,
        ])
        .output()
        .expect("nsenter");
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(inside.status.success(), "the device left the joined namespace");
}

#[test]
fn net_device_errors_name_the_field_and_leave_nothing() {
    require_root!();
    if runc_older_than(1, 3) {
        skip!("runc before 1.3 does not implement linux.netDevices");
    }
    let ctx = Ctx::new("spec13_netdev_bad");
    let cases: Vec<(serde_json::Value, bool)> = vec![
        (json!({"moor-no-such0": {}}), true),
        (json!({"lo": {"name": "a/b"}}), true),
        // No network namespace of its own: the host's devices are the container's already.
        (json!({"lo": {}}), false),
    ];
    for (devices, own_netns) in cases {
        let (id, mut b): (String, Bundle) = ctx.bundle(&["true"]);
        if !own_netns {
            b.remove_namespace("network");
        }
        b.set("/linux/netDevices", devices.clone());
        let c = ctx.create(&b, &id, &[]);
        assert!(!c.success(), "{devices} was accepted: {c}");
        assert!(
            c.stderr.contains("netDevices"),
            "the error should name linux.netDevices: {c}"
        );
        ctx.assert_no_residue(&id, &b);
    }
}

/// A dummy link (a kernel module this host lacks; the v2 VM group has it) moved under a name
/// template: the kernel picks the number.
#[test]
fn net_device_name_template_is_filled_by_the_kernel() {
    require_root!();
    if runc_older_than(1, 3) {
        skip!("runc before 1.3 does not implement linux.netDevices");
    }
    let name = format!("mvd{}", std::process::id() % 100_000);
    let made = Command::new("ip")
        .args(["link", "add", &name, "type", "dummy"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        skip!("this kernel has no dummy links (ip link add type dummy failed); the v2 VM group runs this test");
    }
    let _cleanup = Veth {
        host: name.clone(),
        peer: String::new(),
    };
    let ctx = Ctx::new("spec13_netdev_template");
    let (id, mut b) = ctx.bundle(&["ip", "-o", "link", "show"]);
    b.set("/linux/netDevices", json!({ name.clone(): {"name": "moor%d"} }));
    let out = ctx.run_to_stop(&b, &id);
    assert!(out.contains(": moor0:"), "no moor0 link in the container: {out}");
    assert!(!Veth::on_host(&name), "the device is still on the host");
}
