//! Hostile config.json: a table of mutations of a valid bundle, each given to `create`.
//!
//! Every case must end in a clear result: refused (non-zero exit) with the JSON field named in
//! the error where one field is at fault, or accepted (as runc accepts it); never a panic,
//! never a hang; and a refused create leaves nothing (state, mounts, cgroups, processes), nor
//! does an accepted one after `delete --force`. The table records what moor and runc 1.1.5 do
//! with each case (found by running both); where they differ, `why` says so. Run with
//! `--nocapture` for the table.

use moor_integration::{host, poll_for, require_root, runtime_is, Bundle, Ctx};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::symlink;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    Refused,
    Accepted,
    /// runc 1.1.5 never returns: not run against runc.
    Hangs,
}
use Want::*;

struct Case {
    name: &'static str,
    /// What moor's error must name ("" when no single field is at fault).
    field: &'static str,
    /// Mutates the bundle; `Some(bytes)` replaces config.json as written.
    edit: fn(&mut Bundle) -> Option<Vec<u8>>,
    moor: Want,
    runc: Want,
    /// Why moor and runc differ.
    why: &'static str,
}

/// A case where moor and runc agree.
const fn same(name: &'static str, field: &'static str, want: Want, edit: fn(&mut Bundle) -> Option<Vec<u8>>) -> Case {
    Case {
        name,
        field,
        edit,
        moor: want,
        runc: want,
        why: "",
    }
}

/// A case moor refuses and runc 1.1.5 accepts (or never finishes).
const fn stricter(
    name: &'static str,
    field: &'static str,
    runc: Want,
    why: &'static str,
    edit: fn(&mut Bundle) -> Option<Vec<u8>>,
) -> Case {
    Case {
        name,
        field,
        edit,
        moor: Refused,
        runc,
        why,
    }
}

/// A case moor accepts and runc 1.1.5 refuses.
const fn laxer(name: &'static str, why: &'static str, edit: fn(&mut Bundle) -> Option<Vec<u8>>) -> Case {
    Case {
        name,
        field: "",
        edit,
        moor: Accepted,
        runc: Refused,
        why,
    }
}

fn set(b: &mut Bundle, ptr: &str, v: Value) -> Option<Vec<u8>> {
    b.set(ptr, v);
    None
}

fn remove(b: &mut Bundle, ptr: &str) -> Option<Vec<u8>> {
    b.remove(ptr);
    None
}

/// config.json as the text of the bundle's config with `f` applied to it.
fn text(b: &Bundle, f: impl FnOnce(String) -> String) -> Option<Vec<u8>> {
    Some(f(serde_json::to_string(&b.config).unwrap()).into_bytes())
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Where a mount destination that escaped the rootfs would land on the host.
const ESCAPE: &str = "/tmp/moor-hostile-escape";

fn cases() -> Vec<Case> {
    vec![
        // ---- the document ----
        same("empty file", "config.json", Refused, |_| Some(Vec::new())),
        same("not JSON", "config.json", Refused, |_| Some(b"{\"ociVersion\": ".to_vec())),
        same("top level is an array", "config.json", Refused, |_| Some(b"[]".to_vec())),
        same("UTF-8 byte order mark", "config.json", Refused, |b| {
            text(b, |t| format!("\u{feff}{t}"))
        }),
        same("nesting 100000 deep", "config.json", Refused, |b| {
            text(b, |t| format!("{{\"x\": {}, {}", nested(100_000), &t[1..]))
        }),
        same("nesting 100 deep in an unknown field", "", Accepted, |b| {
            text(b, |t| format!("{{\"x\": {}, {}", nested(100), &t[1..]))
        }),
        stricter(
            "nesting 200 deep in an unknown field",
            "config.json",
            Accepted,
            "moor's JSON reader stops at 128 levels; Go's at 10000",
            |b| text(b, |t| format!("{{\"x\": {}, {}", nested(200), &t[1..])),
        ),
        stricter(
            "trailing garbage after the object",
            "config.json",
            Accepted,
            "runc's decoder reads the first JSON value and ignores the rest of the file",
            |b| text(b, |t| format!("{t} {{\"process\": null}}")),
        ),
        stricter(
            "invalid UTF-8 in a string",
            "config.json",
            Accepted,
            "Go replaces invalid UTF-8 with U+FFFD; moor refuses a config it cannot read as written",
            |b| {
                let mut t = serde_json::to_vec(&b.config).unwrap();
                let at = t.windows(7).position(|w| w == b"moor-it").unwrap();
                t[at] = 0xff;
                Some(t)
            },
        ),
        stricter(
            "lone UTF-16 surrogate escape",
            "config.json",
            Accepted,
            "Go replaces a lone surrogate with U+FFFD",
            |b| text(b, |t| t.replace("\"moor-it\"", "\"\\ud800\"")),
        ),
        same("duplicate key (last one wins)", "", Accepted, |b| {
            text(b, |t| format!("{{\"hostname\": \"first\", {}", &t[1..]))
        }),
        laxer(
            "duplicate key, the first of another type",
            "Go decodes every duplicate and fails on the first one's type; moor keeps the last value, as Go does for duplicates of one type",
            |b| text(b, |t| format!("{{\"hostname\": 5, {}", &t[1..])),
        ),
        same("unknown fields", "", Accepted, |b| {
            b.set("/linux/nosuchfield", json!({"a": 1}));
            set(b, "/nosuchfield", json!([1, 2]))
        }),
        same("annotations of 4 MiB", "", Accepted, |b| {
            set(b, "/annotations", json!({"big": "x".repeat(4 << 20)}))
        }),
        same("annotation value not a string", "annotations.n", Refused, |b| {
            set(b, "/annotations", json!({"n": 1}))
        }),
        // ---- ociVersion ----
        same("ociVersion a number", "ociVersion", Refused, |b| set(b, "/ociVersion", json!(1))),
        stricter(
            "ociVersion not SemVer",
            "ociVersion",
            Accepted,
            "runc 1.1.5 does not check ociVersion; the runtime-spec requires SemVer 2.0.0",
            |b| set(b, "/ociVersion", json!("1.0")),
        ),
        // ---- process ----
        stricter(
            "ociVersion missing",
            "ociVersion",
            Accepted,
            "runc 1.1.5 does not check ociVersion; the runtime-spec requires it",
            |b| remove(b, "/ociVersion"),
        ),
        same("process missing", "process", Refused, |b| remove(b, "/process")),
        stricter(
            "process.user missing",
            "process.user",
            Accepted,
            "runc 1.1.5 runs the process as uid 0; the runtime-spec requires process.user on Linux",
            |b| remove(b, "/process/user"),
        ),
        same("process.cwd missing", "process.cwd", Refused, |b| remove(b, "/process/cwd")),
        same("process an array", "process", Refused, |b| set(b, "/process", json!([]))),
        same("process.args missing", "process.args", Refused, |b| remove(b, "/process/args")),
        same("process.args empty", "process.args", Refused, |b| set(b, "/process/args", json!([]))),
        same("process.args a string", "process.args", Refused, |b| set(b, "/process/args", json!("sh"))),
        same("process.args[1] a number", "process.args[1]", Refused, |b| {
            set(b, "/process/args", json!(["sh", 1]))
        }),
        same("process.cwd relative", "process.cwd", Refused, |b| set(b, "/process/cwd", json!("tmp"))),
        same("process.cwd empty", "process.cwd", Refused, |b| set(b, "/process/cwd", json!(""))),
        same("process.env entry without =", "process.env[0]", Refused, |b| {
            set(b, "/process/env", json!(["NOEQUALS"]))
        }),
        same("process.env a string", "process.env", Refused, |b| set(b, "/process/env", json!("A=b"))),
        same("process.user.uid -1", "process.user.uid", Refused, |b| set(b, "/process/user/uid", json!(-1))),
        same("process.user.uid 2^32-1", "process.user.uid", Refused, |b| {
            set(b, "/process/user/uid", json!(u32::MAX))
        }),
        same("process.user.uid 2^32", "process.user.uid", Refused, |b| {
            set(b, "/process/user/uid", json!(1u64 << 32))
        }),
        same("process.user.uid 1.5", "process.user.uid", Refused, |b| set(b, "/process/user/uid", json!(1.5))),
        same("process.user.gid a string", "process.user.gid", Refused, |b| {
            set(b, "/process/user/gid", json!("0"))
        }),
        same("process.user.additionalGids[0] -5", "process.user.additionalGids[0]", Refused, |b| {
            set(b, "/process/user/additionalGids", json!([-5]))
        }),
        same("process.user.umask 2^32", "process.user.umask", Refused, |b| {
            set(b, "/process/user/umask", json!(1u64 << 32))
        }),
        stricter(
            "process.capabilities unknown name",
            "process.capabilities.bounding",
            Accepted,
            "runc 1.1.5 warns and ignores capabilities it does not know",
            |b| set(b, "/process/capabilities/bounding", json!(["CAP_KILL", "CAP_NOPE"])),
        ),
        same("process.capabilities a string", "process.capabilities", Refused, |b| {
            set(b, "/process/capabilities", json!("all"))
        }),
        same("process.capabilities effective not permitted", "process.capabilities.effective", Refused, |b| {
            set(b, "/process/capabilities/permitted", json!(["CAP_KILL"]))
        }),
        same("process.rlimits unknown type", "process.rlimits", Refused, |b| {
            set(b, "/process/rlimits", json!([{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]))
        }),
        same("process.rlimits soft above hard", "process.rlimits", Refused, |b| {
            set(b, "/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]))
        }),
        same("process.rlimits hard -1", "process.rlimits[0].hard", Refused, |b| {
            set(b, "/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": -1}]))
        }),
        same("process.rlimits above the caller's hard limit", "RLIMIT_NOFILE", Refused, |b| {
            set(b, "/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 1u64 << 40, "hard": 1u64 << 40}]))
        }),
        same("process.oomScoreAdj 5000", "process.oomScoreAdj", Refused, |b| set(b, "/process/oomScoreAdj", json!(5000))),
        same("process.oomScoreAdj a string", "process.oomScoreAdj", Refused, |b| {
            set(b, "/process/oomScoreAdj", json!("1"))
        }),
        same("process.terminal a string", "process.terminal", Refused, |b| {
            set(b, "/process/terminal", json!("yes"))
        }),
        same("process.terminal without a console socket", "terminal", Refused, |b| {
            set(b, "/process/terminal", json!(true))
        }),
        same("process.noNewPrivileges a string", "process.noNewPrivileges", Refused, |b| {
            set(b, "/process/noNewPrivileges", json!("true"))
        }),
        same("process.consoleSize.height -1", "process.consoleSize.height", Refused, |b| {
            set(b, "/process/consoleSize", json!({"height": -1, "width": 80}))
        }),
        // ---- root ----
        same("root an array", "root", Refused, |b| set(b, "/root", json!([]))),
        same("root.path missing", "root.path", Refused, |b| set(b, "/root", json!({"readonly": false}))),
        same("root.path does not exist", "root.path", Refused, |b| set(b, "/root/path", json!("nosuchdir"))),
        same("root.path a regular file", "root.path", Refused, |b| {
            fs::write(b.dir.join("afile"), "x").unwrap();
            set(b, "/root/path", json!("afile"))
        }),
        same("root.path the host's /", "root.path", Refused, |b| set(b, "/root/path", json!("/"))),
        same("root.path a symlink to /", "root.path", Refused, |b| {
            symlink("/", b.dir.join("hostroot")).unwrap();
            set(b, "/root/path", json!("hostroot"))
        }),
        same("root.path with ..", "", Accepted, |b| {
            let name = b.dir.file_name().unwrap().to_string_lossy().into_owned();
            set(b, "/root/path", json!(format!("../{name}/rootfs")))
        }),
        same("root.path with a NUL byte", "root.path", Refused, |b| set(b, "/root/path", json!("root\u{0}fs"))),
        same("root.readonly a string", "root.readonly", Refused, |b| set(b, "/root/readonly", json!("yes"))),
        same("rootfs /proc a symlink to the host's /", "/proc", Refused, |b| {
            fs::remove_dir(b.rootfs().join("proc")).unwrap();
            symlink("/", b.rootfs().join("proc")).unwrap();
            None
        }),
        stricter(
            "rootfs /dev a symlink to /tmp",
            "/dev",
            Accepted,
            "runc 1.1.5 follows the link inside the rootfs and mounts /dev on /tmp; moor refuses a non-directory /dev (security rule 4)",
            |b| {
                fs::remove_dir(b.rootfs().join("dev")).unwrap();
                symlink("/tmp", b.rootfs().join("dev")).unwrap();
                None
            },
        ),
        same("rootfs /sys a regular file", "/sys", Refused, |b| {
            fs::remove_dir(b.rootfs().join("sys")).unwrap();
            fs::write(b.rootfs().join("sys"), "x").unwrap();
            None
        }),
        // ---- hostname, domainname ----
        same("hostname of 300 bytes", "hostname", Refused, |b| set(b, "/hostname", json!("h".repeat(300)))),
        same("hostname without a uts namespace", "hostname", Refused, |b| {
            b.remove_namespace("uts");
            None
        }),
        same("hostname a number", "hostname", Refused, |b| set(b, "/hostname", json!(7))),
        stricter(
            "domainname of 65 bytes",
            "domainname",
            Accepted,
            "runc 1.1.5 ignores domainname",
            |b| set(b, "/domainname", json!("d".repeat(65))),
        ),
        stricter(
            "domainname without a uts namespace",
            "domainname",
            Accepted,
            "runc 1.1.5 ignores domainname",
            |b| {
                b.remove_namespace("uts");
                b.remove("/hostname");
                set(b, "/domainname", json!("example.org"))
            },
        ),
        // ---- mounts ----
        same("mounts an object", "mounts", Refused, |b| set(b, "/mounts", json!({}))),
        same("mount destination empty", "mounts[7].destination", Refused, |b| {
            b.push_mount(json!({"destination": "", "type": "tmpfs", "source": "tmpfs"}));
            None
        }),
        same("mount destination missing", "mounts[7].destination", Refused, |b| {
            b.push_mount(json!({"type": "tmpfs", "source": "tmpfs"}));
            None
        }),
        same("mount destination escaping with ..", "", Accepted, |b| {
            let dest = format!("../../../../..{ESCAPE}");
            b.push_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
            None
        }),
        stricter(
            "mount over /proc/sys",
            "mounts[7]",
            Accepted,
            "runc 1.1.5 allows a tmpfs anywhere below /proc; moor only the allow-list (security rule 5)",
            |b| {
                b.push_mount(json!({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}));
                None
            },
        ),
        same("mount of an unknown filesystem type", "mounts[7]", Refused, |b| {
            b.push_mount(json!({"destination": "/mnt", "type": "nosuchfs", "source": "none"}));
            None
        }),
        same("mount option a number", "mounts[7].options[0]", Refused, |b| {
            b.push_mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": [1]}));
            None
        }),
        same("bind mount of a missing source", "mounts[7]", Refused, |b| {
            b.push_mount(json!({"destination": "/mnt", "type": "bind", "source": "/nonexistent-moor", "options": ["rbind"]}));
            None
        }),
        same("mount source with a NUL byte", "mounts[7].source", Refused, |b| {
            b.push_mount(json!({"destination": "/mnt", "type": "bind", "source": "/tm\u{0}p", "options": ["rbind"]}));
            None
        }),
        stricter("mount uidMappings size 0", "mounts[7].uidMappings[0].size", Accepted, "runc 1.1.5 predates idmapped mounts and ignores the mappings", |b| {
            b.push_mount(json!({"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}]}));
            None
        }),
        // ---- namespaces ----
        same("namespaces an object", "linux.namespaces", Refused, |b| {
            set(b, "/linux/namespaces", json!({"type": "pid"}))
        }),
        same("namespace type unknown", "linux.namespaces[6].type", Refused, |b| {
            b.at("/linux/namespaces").as_array_mut().unwrap().push(json!({"type": "nope"}));
            None
        }),
        same("namespace given twice", "linux.namespaces", Refused, |b| {
            b.at("/linux/namespaces").as_array_mut().unwrap().push(json!({"type": "pid"}));
            None
        }),
        same("namespace path does not exist", "linux.namespaces[5].path", Refused, |b| {
            b.set_namespace("network", Some("/nonexistent-moor/ns"));
            None
        }),
        same("namespace path a regular file", "linux.namespaces[5].path", Refused, |b| {
            b.set_namespace("network", Some("/etc/hostname"));
            None
        }),
        same("namespace path of another type", "linux.namespaces[5].path", Refused, |b| {
            b.set_namespace("network", Some("/proc/self/ns/ipc"));
            None
        }),
        stricter(
            "namespace path a FIFO",
            "linux.namespaces[5].path",
            Hangs,
            "runc 1.1.5 opens the FIFO blocking and waits for a writer forever",
            |b| {
                let fifo = b.dir.join("nsfifo");
                nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
                b.set_namespace("network", Some(fifo.to_str().unwrap()));
                None
            },
        ),
        same("namespace path with a NUL byte", "linux.namespaces[5].path", Refused, |b| {
            b.set_namespace("network", Some("/proc/self/ns/n\u{0}et"));
            None
        }),
        same("user namespace without mappings", "linux.uidMappings", Refused, |b| {
            b.set_namespace("user", None);
            None
        }),
        stricter(
            "uidMappings without a user namespace",
            "linux.uidMappings",
            Accepted,
            "runc 1.1.5 ignores mappings when there is no user namespace",
            |b| set(b, "/linux/uidMappings", json!([{"containerID": 0, "hostID": 1000, "size": 1}])),
        ),
        same("uidMappings size 0", "linux.uidMappings[0].size", Refused, |b| {
            b.map_user_namespace(100000, 0);
            None
        }),
        same("uidMappings hostID -1", "linux.uidMappings[0].hostID", Refused, |b| {
            b.map_user_namespace(100000, 1);
            set(b, "/linux/uidMappings/0/hostID", json!(-1))
        }),
        same("uidMappings containerID + size past 2^32", "linux.uidMappings[0]", Refused, |b| {
            b.map_user_namespace(100000, 2);
            set(b, "/linux/uidMappings/0/containerID", json!(u32::MAX))
        }),
        same("341 uidMappings", "linux.uidMappings", Refused, |b| {
            b.map_user_namespace(100000, 1);
            let m: Vec<Value> = (0..341).map(|i| json!({"containerID": i, "hostID": 100000 + i, "size": 1})).collect();
            set(b, "/linux/uidMappings", json!(m))
        }),
        stricter(
            "timeOffsets without a time namespace",
            "linux.timeOffsets",
            Accepted,
            "runc 1.1.5 has no time namespaces and ignores timeOffsets",
            |b| set(b, "/linux/timeOffsets", json!({"monotonic": {"secs": 10, "nanosecs": 0}})),
        ),
        // ---- sysctl ----
        same("sysctl of the host (vm.swappiness)", "linux.sysctl", Refused, |b| {
            set(b, "/linux/sysctl", json!({"vm.swappiness": "10"}))
        }),
        same("net sysctl without a network namespace", "linux.sysctl", Refused, |b| {
            b.remove_namespace("network");
            set(b, "/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}))
        }),
        same("sysctl key with ..", "linux.sysctl", Refused, |b| {
            set(b, "/linux/sysctl", json!({"net./../kernel/hostname": "evil"}))
        }),
        same("sysctl key empty", "linux.sysctl", Refused, |b| set(b, "/linux/sysctl", json!({"": "1"}))),
        same("sysctl value a number", "linux.sysctl.net.ipv4.ip_forward", Refused, |b| {
            set(b, "/linux/sysctl", json!({"net.ipv4.ip_forward": 1}))
        }),
        same("sysctl that does not exist", "net.nosuch", Refused, |b| {
            set(b, "/linux/sysctl", json!({"net.nosuch": "1"}))
        }),
        // ---- devices ----
        same("device type unknown", "linux.devices[0].type", Refused, |b| {
            set(b, "/linux/devices", json!([{"path": "/dev/x", "type": "z", "major": 1, "minor": 3}]))
        }),
        same("device major -1", "linux.devices[0].major", Refused, |b| {
            set(b, "/linux/devices", json!([{"path": "/dev/x", "type": "c", "major": -1, "minor": 3}]))
        }),
        stricter(
            "device major 4096",
            "linux.devices[0].major",
            Accepted,
            "runc 1.1.5 makes the node with the number cut to the kernel's 12-bit major",
            |b| set(b, "/linux/devices", json!([{"path": "/dev/x", "type": "c", "major": 4096, "minor": 3}])),
        ),
        stricter(
            "device minor 2^32+5",
            "linux.devices[0].minor",
            Accepted,
            "runc 1.1.5 makes the node with the number cut to 32 bits: 1:5, /dev/zero",
            |b| set(b, "/linux/devices", json!([{"path": "/dev/x", "type": "c", "major": 1, "minor": (1u64 << 32) + 5}])),
        ),
        stricter(
            "device path empty",
            "linux.devices[0].path",
            Accepted,
            "runc 1.1.5 skips it silently",
            |b| set(b, "/linux/devices", json!([{"path": "", "type": "c", "major": 1, "minor": 3}])),
        ),
        stricter(
            "device path outside /dev",
            "linux.devices[0].path",
            Accepted,
            "runc 1.1.5 makes device nodes anywhere in the rootfs; moor only below /dev",
            |b| set(b, "/linux/devices", json!([{"path": "/etc/x", "type": "c", "major": 1, "minor": 3}])),
        ),
        stricter(
            "device path escaping /dev with ..",
            "linux.devices[0].path",
            Accepted,
            "runc 1.1.5 makes device nodes anywhere in the rootfs; moor only below /dev",
            |b| set(b, "/linux/devices", json!([{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 3}])),
        ),
        same("device fileMode 2^32", "linux.devices[0].fileMode", Refused, |b| {
            set(b, "/linux/devices", json!([{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 1u64 << 32}]))
        }),
        laxer(
            "device /dev/null again, as 1:3",
            "runc 1.1.5 then fails to reopen /dev/null in its init (EPERM from its device cgroup)",
            |b| set(b, "/linux/devices", json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}])),
        ),
        same(
            "device cgroup rule access rwmx (runc 1.1.5 drops the letters it does not know)",
            "linux.resources.devices[1].access",
            Accepted,
            |b| {
                b.at("/linux/resources/devices")
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwmx"}));
                None
            },
        ),
        same("device cgroup rule type q", "linux.resources.devices[1].type", Refused, |b| {
            b.at("/linux/resources/devices")
                .as_array_mut()
                .unwrap()
                .push(json!({"allow": true, "type": "q", "access": "r"}));
            None
        }),
        // ---- resources ----
        same("memory.limit a string", "linux.resources.memory.limit", Refused, |b| {
            set(b, "/linux/resources/memory", json!({"limit": "1G"}))
        }),
        same("memory.limit -5", "memory", Refused, |b| set(b, "/linux/resources/memory", json!({"limit": -5}))),
        same("pids.limit a string", "linux.resources.pids.limit", Refused, |b| {
            set(b, "/linux/resources/pids", json!({"limit": "x"}))
        }),
        same("cpu.cpus out of range", "cpuset", Refused, |b| {
            set(b, "/linux/resources/cpu", json!({"cpus": "0-99999"}))
        }),
        same("hugepage size unknown", "hugepageLimits", Refused, |b| {
            set(b, "/linux/resources/hugepageLimits", json!([{"pageSize": "3MB", "limit": 0}]))
        }),
        same("unified key with ..", "linux.resources.unified", Refused, |b| {
            set(b, "/linux/resources/unified", json!({"../../cgroup.procs": "1"}))
        }),
        // ---- seccomp ----
        same("seccomp defaultAction unknown", "linux.seccomp.defaultAction", Refused, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_NOPE"}))
        }),
        same("seccomp architecture unknown", "linux.seccomp.architectures[0]", Refused, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]}))
        }),
        same("seccomp unknown syscall name", "", Accepted, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["nosuchsyscall"], "action": "SCMP_ACT_ERRNO"}]}))
        }),
        same("seccomp argument index 6", "linux.seccomp", Refused, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}))
        }),
        same("seccomp operator unknown", "linux.seccomp.syscalls[0].args[0].op", Refused, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NOPE"}]}]}))
        }),
        same("seccomp flag unknown", "linux.seccomp.flags[0]", Refused, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}))
        }),
        same("seccomp notify without a listener", "linux.seccomp", Refused, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
        }),
        same("seccomp listenerPath does not exist", "linux.seccomp", Refused, |b| {
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/nonexistent-moor.sock",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
        }),
        same("seccomp program too large for the kernel", "linux.seccomp", Refused, |b| {
            let rules: Vec<Value> = (0..5000)
                .map(|i| json!({"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": i, "op": "SCMP_CMP_EQ"}]}))
                .collect();
            set(b, "/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}))
        }),
        // ---- other linux fields ----
        same("rootfsPropagation unknown", "linux.rootfsPropagation", Refused, |b| {
            set(b, "/linux/rootfsPropagation", json!("nope"))
        }),
        same("maskedPaths with a NUL byte", "linux.maskedPaths[0]", Refused, |b| {
            set(b, "/linux/maskedPaths", json!(["/proc/k\u{0}core"]))
        }),
        same("readonlyPaths an object", "linux.readonlyPaths", Refused, |b| {
            set(b, "/linux/readonlyPaths", json!({"/proc/sys": true}))
        }),
        stricter(
            "personality domain unknown",
            "linux.personality.domain",
            Accepted,
            "runc 1.1.5 predates linux.personality and ignores it",
            |b| set(b, "/linux/personality", json!({"domain": "NOPE"})),
        ),
        same("intelRdt closID without resctrl", "", Accepted, |b| {
            set(b, "/linux/intelRdt", json!({"closID": "moor-it"}))
        }),
        same("intelRdt l3CacheSchema without resctrl", "linux.intelRdt", Refused, |b| {
            set(b, "/linux/intelRdt", json!({"closID": "moor-it", "l3CacheSchema": "L3:0=f"}))
        }),
        same("cgroupsPath a number", "linux.cgroupsPath", Refused, |b| set(b, "/linux/cgroupsPath", json!(5))),
        stricter(
            "memoryPolicy mode unknown",
            "linux.memoryPolicy.mode",
            Accepted,
            "runc 1.1.5 predates linux.memoryPolicy (runtime-spec 1.3) and ignores it",
            |b| set(b, "/linux/memoryPolicy", json!({"mode": "MPOL_NOPE"})),
        ),
        stricter(
            "netDevices naming a missing device",
            "linux.netDevices",
            Accepted,
            "runc 1.1.5 predates linux.netDevices (runtime-spec 1.3) and ignores it",
            |b| set(b, "/linux/netDevices", json!({"nosuchdev0": {}})),
        ),
        // ---- hooks ----
        same("hooks an array", "hooks", Refused, |b| set(b, "/hooks", json!([]))),
        same("hook path does not exist", "prestart", Refused, |b| {
            set(b, "/hooks/prestart", json!([{"path": "/nonexistent-moor-hook"}]))
        }),
        same("hook path missing", "hooks.prestart[0].path", Refused, |b| {
            set(b, "/hooks/prestart", json!([{"args": ["x"]}]))
        }),
        same("hook timeout -1", "hooks.createRuntime[0].timeout", Refused, |b| {
            set(b, "/hooks/createRuntime", json!([{"path": "/bin/true", "timeout": -1}]))
        }),
        same("hook path relative", "hooks.createRuntime[0].path", Refused, |b| {
            set(b, "/hooks/createRuntime", json!([{"path": "bin/true"}]))
        }),
        same("hook path with a NUL byte", "hooks.createRuntime[0].path", Refused, |b| {
            set(b, "/hooks/createRuntime", json!([{"path": "/bin/tr\u{0}ue"}]))
        }),
        same("hook that fails", "createRuntime", Refused, |b| {
            set(b, "/hooks/createRuntime", json!([{"path": "/bin/false"}]))
        }),
    ]
}

/// One case's result on the runtime under test.
#[derive(PartialEq, Eq, Debug)]
enum Got {
    Refused,
    Accepted,
    Hung,
}

struct Row {
    got: Got,
    /// The runtime's error, shortened for the table.
    error: String,
    /// The error named the case's field.
    named: bool,
    problems: Vec<String>,
}

/// How long one create may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(20);

fn run_case(ctx: &Ctx, case: &Case) -> Row {
    let (id, mut b) = ctx.bundle(&["true"]);
    let raw = (case.edit)(&mut b);
    b.save();
    if let Some(raw) = raw {
        fs::write(b.dir.join("config.json"), raw).unwrap();
    }
    let bundle = b.dir.display().to_string();
    let (mut child, out) = ctx.spawn_with(&["create", "--bundle", &bundle, &id], |_| {});
    let started = Instant::now();
    let status = poll_for(DEADLINE, || child.try_wait().ok().flatten());
    let mut problems = Vec::new();
    let got = match status {
        None => {
            let _ = child.kill();
            let _ = child.wait();
            ctx.delete_force(&id);
            Got::Hung
        }
        Some(s) if s.success() => Got::Accepted,
        Some(_) => Got::Refused,
    };
    let stderr = out.stderr_now();
    if stderr.contains("panicked") {
        problems.push(format!("panic in stderr: {}", stderr.trim()));
    }
    let named = !case.field.is_empty() && stderr.contains(case.field);
    match got {
        Got::Accepted => {
            if ctx.status(&id).as_deref() != Some("created") {
                problems.push("create succeeded but the container is not created".into());
            }
            let d = ctx.delete_force(&id);
            if !d.success() {
                problems.push(format!("delete --force failed: {}", d.stderr.trim()));
            }
        }
        Got::Refused if started.elapsed() > Duration::from_secs(10) => {
            problems.push(format!("refused only after {:?}", started.elapsed()));
        }
        _ => {}
    }
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| ctx.assert_no_residue(&id, &b))) {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        problems.push(format!("residue: {why}"));
    }
    if got == Got::Refused && runtime_is("moor") {
        if !case.field.is_empty() && !named {
            problems.push(format!("the error does not name {:?}: {}", case.field, stderr.trim()));
        }
        if stderr.trim().is_empty() {
            problems.push("refused without a word".into());
        }
    }
    let error = stderr.lines().last().unwrap_or_default();
    let error = error.split_once("msg=").map_or(error, |(_, m)| m);
    let error: String = error.chars().take(140).collect::<String>().replace('|', "/");
    Row {
        got,
        error,
        named,
        problems,
    }
}

fn want_matches(want: Want, got: &Got) -> bool {
    matches!(
        (want, got),
        (Refused, Got::Refused) | (Accepted, Got::Accepted) | (Hangs, Got::Hung)
    )
}

fn label(w: Want) -> &'static str {
    match w {
        Refused => "refused",
        Accepted => "accepted",
        Hangs => "hangs",
    }
}

#[test]
fn hostile_configs_are_refused_cleanly_or_accepted_as_runc() {
    require_root!();
    let ctx = Ctx::new("hostile");
    let runc = runtime_is("runc");
    let moor = runtime_is("moor");
    let guard = host::SysctlGuard::new(&[
        "kernel.hostname",
        "kernel.domainname",
        "vm.swappiness",
        "net.ipv4.ip_forward",
    ]);
    let _ = fs::remove_dir(ESCAPE);
    let cases = cases();
    let mut failures = Vec::new();
    let mut counts = [0usize; 4];
    println!("\n| # | mutation | field | moor | runc 1.1.5 | this run | named | error (this run) | note |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, case) in cases.iter().enumerate() {
        let n = i + 1;
        match (case.moor, case.runc) {
            (Refused, Refused) => counts[0] += 1,
            (Accepted, Accepted) => counts[1] += 1,
            (Refused, _) => counts[2] += 1,
            _ => counts[3] += 1,
        }
        assert!(
            case.moor == case.runc || !case.why.is_empty(),
            "case {n} {:?}: moor and runc differ without a why",
            case.name
        );
        if runc && case.runc == Hangs {
            println!(
                "| {n} | {} | {} | {} | {} | not run | | | {} |",
                case.name,
                case.field,
                label(case.moor),
                label(case.runc),
                case.why
            );
            continue;
        }
        let row = run_case(&ctx, case);
        let want = if runc {
            Some(case.runc)
        } else if moor {
            Some(case.moor)
        } else {
            None
        };
        let mut problems = row.problems;
        if let Some(w) = want.filter(|w| !want_matches(*w, &row.got)) {
            problems.push(format!("expected {}, got {:?}", label(w), row.got));
        }
        let note = case.why;
        println!(
            "| {n} | {} | {} | {} | {} | {:?} | {} | {} | {} |",
            case.name,
            case.field,
            label(case.moor),
            label(case.runc),
            row.got,
            if row.named { "yes" } else { "" },
            row.error,
            note
        );
        failures.extend(problems.into_iter().map(|p| format!("case {n} {:?}: {p}", case.name)));
    }
    println!(
        "\n{} cases: refused by both {}, accepted by both {}, moor stricter {}, moor laxer {}",
        cases.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    if fs::symlink_metadata(ESCAPE).is_ok() {
        failures.push(format!(
            "a mount destination escaped the rootfs: {ESCAPE} exists on the host"
        ));
        let _ = fs::remove_dir(ESCAPE);
    }
    let changed = guard.changed();
    if !changed.is_empty() {
        failures.push(format!("host sysctls changed: {changed:?}"));
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
