//! Config validation as `create` sees it: a bundle whose config.json breaks one rule is refused
//! with the JSON field named, before anything exists.

use serde_json::{json, Value};

use super::config;

/// A bundle (config.json + rootfs/) under the temp dir, removed on drop.
struct Bundle(std::path::PathBuf);

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bundle(name: &str, spec: &Value) -> Bundle {
    let dir = std::env::temp_dir().join(format!("moor-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_vec(spec).unwrap()).unwrap();
    Bundle(dir)
}

/// The default spec with `edit` applied; the error loading it gives.
fn refused(name: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut spec = super::default_spec(false);
    edit(&mut spec);
    let b = bundle(name, &spec);
    match config::load(&b.0) {
        Ok(_) => panic!("{name}: accepted {spec}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_default_spec_loads() {
    let b = bundle("default", &super::default_spec(false));
    config::load(&b.0).unwrap();
}

#[test]
fn a_namespace_given_twice_is_refused() {
    let e = refused("ns-twice", |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "pid"}));
    });
    assert!(e.contains("linux.namespaces") && e.contains("given twice"), "{e}");
}

#[test]
fn an_empty_or_overflowing_id_mapping_of_a_mount_is_refused() {
    let mount = |maps: Value| {
        move |s: &mut Value| {
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/data", "type": "bind", "source": "/tmp",
                "options": ["rbind"], "uidMappings": maps
            }));
        }
    };
    let e = refused(
        "map-empty",
        mount(json!([{"containerID": 0, "hostID": 1000, "size": 0}])),
    );
    assert!(
        e.contains("uidMappings[0].size") && e.contains("must not be zero"),
        "{e}"
    );
    let e = refused(
        "map-wrap",
        mount(json!([{"containerID": 4294967295u32, "hostID": 0, "size": 2}])),
    );
    assert!(
        e.contains("uidMappings[0]") && e.contains("runs past id 4294967295"),
        "{e}"
    );
}

#[test]
fn devices_stay_below_dev_with_numbers_a_dev_t_holds() {
    let device = |path: &str, major: i64| {
        let d = json!({"path": path, "type": "c", "major": major, "minor": 1});
        move |s: &mut Value| s["linux"]["devices"] = json!([d])
    };
    let e = refused("dev-escape", device("/dev/../etc/shadow", 1));
    assert!(e.contains("linux.devices[0].path"), "{e}");
    let e = refused("dev-root", device("/dev", 1));
    assert!(e.contains("linux.devices[0].path"), "{e}");
    let e = refused("dev-major", device("/dev/x", 4096));
    assert!(
        e.contains("linux.devices[0].major") && e.contains("out of range 0-4095"),
        "{e}"
    );
}

#[test]
fn an_rlimit_twice_or_with_soft_above_hard_is_refused() {
    let e = refused("rlimit-twice", |s| {
        s["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
            {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}
        ]);
    });
    assert!(e.contains("process.rlimits") && e.contains("given twice"), "{e}");
    let e = refused("rlimit-soft", |s| {
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 3, "hard": 2}]);
    });
    assert!(e.contains("soft limit above hard limit"), "{e}");
}

#[test]
fn process_fields_are_checked_by_name() {
    let e = refused("oom", |s| s["process"]["oomScoreAdj"] = json!(1001));
    assert!(e.contains("process.oomScoreAdj"), "{e}");
    let e = refused("env", |s| s["process"]["env"] = json!(["PATH=/bin", "NOEQUALS"]));
    assert!(e.contains("process.env[1]"), "{e}");
    let e = refused("args", |s| s["process"]["args"] = json!([""]));
    assert!(e.contains("process.args"), "{e}");
    let e = refused("uid", |s| s["process"]["user"]["uid"] = json!(4294967295u32));
    assert!(e.contains("process.user.uid"), "{e}");
}

#[test]
fn a_hostname_longer_than_the_kernel_takes_is_refused() {
    let e = refused("hostname", |s| s["hostname"] = json!("h".repeat(65)));
    assert!(e.contains("hostname"), "{e}");
}

#[test]
fn seccomp_notify_on_write_is_refused_naming_the_rule() {
    let e = refused("notify-write", |s| {
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["openat", "write"], "action": "SCMP_ACT_NOTIFY"}
            ]
        });
    });
    assert!(e.contains("linux.seccomp.syscalls[1].names[1]"), "{e}");
}

#[test]
fn a_hook_with_a_relative_path_is_refused() {
    let e = refused("hook", |s| s["hooks"] = json!({"prestart": [{"path": "bin/hook"}]}));
    assert!(e.contains("hooks.prestart[0].path"), "{e}");
}
