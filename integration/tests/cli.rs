//! Command-line surface: spec, --version, unknown flags, JSON logs, features.

use moor_integration::{bundle::temp_dir, require_root, Ctx};
use serde_json::Value;
use std::fs;

#[test]
fn spec_writes_valid_config_in_cwd_and_bundle_dir() {
    let ctx = Ctx::new("spec");
    let dir = temp_dir("spec");
    ctx.own_dir(dir.clone());
    let o = ctx.run_with(&["spec"], |c| {
        c.current_dir(&dir);
    });
    assert!(o.success(), "{o}");
    let v: Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).expect("config.json in cwd")).expect("valid JSON");
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert!(v["ociVersion"].is_string());
    assert_eq!(v["root"]["path"], "rootfs");

    let bdir = temp_dir("spec-bundle");
    ctx.own_dir(bdir.clone());
    let bs = bdir.display().to_string();
    ctx.run(&["spec", "--bundle", &bs]).ok();
    let v: Value = serde_json::from_slice(&fs::read(bdir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));

    // Refuses to overwrite an existing config.json.
    fs::write(bdir.join("config.json"), "precious").unwrap();
    ctx.run(&["spec", "--bundle", &bs]).fails();
    assert_eq!(fs::read_to_string(bdir.join("config.json")).unwrap(), "precious");
}

#[test]
fn spec_rootless_has_user_namespace_and_mappings() {
    let ctx = Ctx::new("spec_rootless");
    let dir = temp_dir("spec-rootless");
    ctx.own_dir(dir.clone());
    let ds = dir.display().to_string();
    ctx.run(&["spec", "--rootless", "--bundle", &ds]).ok();
    let v: Value = serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(ns.contains(&"user"), "rootless spec lacks a user namespace: {ns:?}");
    let uid = u64::from(nix::unistd::getuid().as_raw());
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"].as_u64(), Some(uid));
    assert_eq!(v["linux"]["uidMappings"][0]["containerID"].as_u64(), Some(0));
    assert!(v["linux"]["gidMappings"][0].is_object());
}

#[test]
fn version_prints_runtime_and_spec_version() {
    let ctx = Ctx::new("version");
    let o = ctx.run(&["--version"]).ok();
    let first = o.stdout.lines().next().unwrap_or_default();
    assert!(first.contains("version"), "first line: {first:?}");
    assert!(
        first
            .split_whitespace()
            .any(|w| w.starts_with(|c: char| c.is_ascii_digit())),
        "no version number: {first:?}"
    );
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("spec: ") && l[6..].starts_with(|c: char| c.is_ascii_digit())),
        "no `spec: X.Y.Z` line:\n{}",
        o.stdout
    );
}

#[test]
fn unknown_flag_fails_with_message() {
    let ctx = Ctx::new("badflag");
    let o = ctx.run(&["--no-such-flag-xyz", "list"]).fails();
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(all.contains("no-such-flag-xyz"), "{o}");
    let o = ctx.run(&["create", "--no-such-flag-xyz", "x"]).fails();
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(all.contains("no-such-flag-xyz"), "{o}");
}

#[test]
fn unknown_subcommand_fails() {
    let ctx = Ctx::new("badcmd");
    ctx.run(&["no-such-command-xyz"]).fails();
}

#[test]
fn json_log_has_level_msg_time_and_error_text() {
    require_root!();
    let ctx = Ctx::new("jsonlog");
    let log = ctx.enable_json_log();
    let o = ctx.run(&["state", "moor-it-nosuch-container"]).fails();
    let text = fs::read_to_string(&log).unwrap_or_else(|e| panic!("no log file ({e}): {o}"));
    let mut last_error = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line:?}"));
        for k in ["level", "msg", "time"] {
            assert!(v.get(k).is_some_and(Value::is_string), "log line lacks {k}: {line}");
        }
        if v["level"] == "error" {
            last_error = Some(v);
        }
    }
    let e = last_error.unwrap_or_else(|| panic!("no level=error line in log:\n{text}"));
    assert!(e["msg"].as_str().unwrap().contains("does not exist"), "{e}");
}

#[test]
fn features_reports_json() {
    let ctx = Ctx::new("features");
    let o = ctx.run(&["features"]).ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o}"));
    assert!(v["ociVersionMin"].is_string(), "{v}");
    assert!(v["ociVersionMax"].is_string(), "{v}");
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "features.hooks lacks {h}: {hooks:?}");
    }
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for n in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
        assert!(ns.contains(&n), "features.linux.namespaces lacks {n}: {ns:?}");
    }
}
