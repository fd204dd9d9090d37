//! Library-level checks of bundle validation: bad input is refused before anything is created,
//! with the offending JSON field named.

use std::fs;
use std::path::PathBuf;

use moor::spec::config;

fn bundle(config: serde_json::Value) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "moor-config-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    fs::write(dir.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    dir
}

fn base() -> serde_json::Value {
    moor::spec::default_spec(false)
}

fn load_err(config: serde_json::Value) -> String {
    let dir = bundle(config);
    let err = match config::load(&dir) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    fs::remove_dir_all(&dir).unwrap();
    err
}

#[test]
fn the_default_spec_is_valid() {
    assert_eq!(load_err(base()), "");
}

#[test]
fn unknown_capability_names_the_field() {
    let mut c = base();
    c["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_KILL", "CAP_NOPE"]);
    let err = load_err(c);
    assert!(err.contains("process.capabilities.bounding"), "{err}");
}

#[test]
fn unknown_rlimit_names_the_field() {
    let mut c = base();
    c["process"]["rlimits"] = serde_json::json!([{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]);
    let err = load_err(c);
    assert!(err.contains("process.rlimits"), "{err}");
}

#[test]
fn relative_cwd_is_refused() {
    let mut c = base();
    c["process"]["cwd"] = "tmp".into();
    assert!(load_err(c).contains("process.cwd"));
}

#[test]
fn mappings_without_a_user_namespace_are_refused() {
    let mut c = base();
    c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    assert!(load_err(c).contains("linux.uidMappings"));
}

#[test]
fn a_host_sysctl_is_refused() {
    let mut c = base();
    c["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "10"});
    let err = load_err(c);
    assert!(err.contains("linux.sysctl.vm.swappiness"), "{err}");
}

#[test]
fn an_ipc_sysctl_needs_an_ipc_namespace() {
    let mut c = base();
    c["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}]);
    c["linux"]["sysctl"] = serde_json::json!({"kernel.shmmax": "4096"});
    let err = load_err(c);
    assert!(err.contains("ipc namespace"), "{err}");
}

#[test]
fn a_missing_rootfs_is_named() {
    let mut c = base();
    c["root"]["path"] = "nope".into();
    assert!(load_err(c).contains("root.path"));
}

#[test]
fn broken_json_is_refused() {
    let dir = bundle(base());
    fs::write(dir.join("config.json"), b"{\"ociVersion\": ").unwrap();
    let err = config::load(&dir).err().map(|e| e.to_string()).unwrap_or_default();
    fs::remove_dir_all(&dir).unwrap();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn container_ids_are_checked() {
    for bad in ["", "..", "a/b", "a b", "x\0y"] {
        assert!(moor::validate_id(bad).is_err(), "{bad:?}");
    }
    moor::validate_id("abc-1.2_3+x").unwrap();
}

#[test]
fn mounts_over_proc_are_refused_outside_the_safe_set() {
    let mut c = base();
    c["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}
    ));
    let err = load_err(c);
    assert!(
        err.contains("mounts[7].destination") && err.contains("/proc/sys"),
        "{err}"
    );

    let mut c = base();
    c["mounts"][0]["type"] = "tmpfs".into();
    assert!(load_err(c).contains("only a procfs"));

    let mut c = base();
    c["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/proc/../proc/./meminfo", "type": "bind", "source": "/dev/null", "options": ["bind"]}
    ));
    assert_eq!(load_err(c), "");
}
