//! Cgroup checks at create that runc's own suite makes (cgroups.bats).

use moor_integration::{require_root, skip, Ctx};
use std::fs;
use std::path::PathBuf;

/// The container's freezer directory and the file that freezes it, for v1/hybrid or pure v2.
fn freezer(cgroups_path: &str) -> Option<(PathBuf, PathBuf, &'static str, &'static str)> {
    let rel = cgroups_path.trim_start_matches('/');
    if fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok() {
        let dir = PathBuf::from("/sys/fs/cgroup").join(rel);
        return Some((dir.clone(), dir.join("cgroup.freeze"), "1", "0"));
    }
    let root = PathBuf::from("/sys/fs/cgroup/freezer");
    root.join("cgroup.procs").exists().then(|| {
        let dir = root.join(rel);
        (dir.clone(), dir.join("freezer.state"), "FROZEN", "THAWED")
    })
}

#[test]
fn create_refuses_a_frozen_cgroup() {
    require_root!();
    let ctx = Ctx::new("frozen_cgroup");
    let (id, b) = ctx.bundle(&["true"]);
    let Some((dir, file, freeze, thaw)) = freezer(&b.cgroups_path()) else {
        skip!("no freezer: neither a v1 freezer hierarchy nor cgroup v2 is mounted");
    };
    fs::create_dir_all(&dir).unwrap();
    fs::write(&file, freeze).unwrap();
    let c = ctx.create(&b, &id, &[]);
    let left_frozen = fs::read_to_string(&file).unwrap_or_default();
    let r = ctx.run(&["run", "--bundle", &b.dir.display().to_string(), &format!("{id}-run")]);
    let _ = fs::write(&file, thaw);
    assert!(
        !c.success(),
        "create into a frozen cgroup succeeded (its init can never run): {c}"
    );
    assert!(
        c.stderr.contains("container's cgroup unexpectedly frozen"),
        "runc's wording: {c}"
    );
    assert!(!r.success(), "run into a frozen cgroup succeeded: {r}");
    assert_eq!(
        left_frozen.trim(),
        freeze,
        "a cgroup the runtime did not make keeps its freezer state"
    );
    assert!(ctx.run(&["state", &id]).code() != Some(0), "a record was left");
}

#[test]
fn sharing_a_non_empty_cgroup_warns() {
    require_root!();
    let ctx = Ctx::new("shared_cgroup");
    let (id1, b1) = ctx.bundle(&["sleep", "1000"]);
    ctx.create(&b1, &id1, &[]).ok();
    let (id2, mut b2) = ctx.bundle(&["true"]);
    b2.set("/linux/cgroupsPath", serde_json::json!(b1.cgroups_path()));
    let c = ctx.create(&b2, &id2, &[]).ok();
    assert!(
        c.stderr.contains("container's cgroup is not empty"),
        "runc's warning: {c}"
    );
    ctx.delete_force(&id2).ok();
    ctx.delete_force(&id1).ok();
}

#[test]
fn unified_resources_on_cgroup_v1_are_an_invalid_configuration() {
    require_root!();
    if fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok() {
        skip!("a pure cgroup v2 host accepts linux.resources.unified");
    }
    let ctx = Ctx::new("unified_on_v1");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/linux/resources/unified", serde_json::json!({"memory.min": "131072"}));
    let c = ctx.create(&b, &id, &[]);
    assert!(!c.success(), "{c}");
    assert!(
        c.stderr.contains("invalid configuration"),
        "runc's wording, which its tests match: {c}"
    );
    ctx.assert_no_residue(&id, &b);
}

/// Callers (runc's events.bats among them) match the line as text: `{"type":"stats","id":...`.
#[test]
fn events_keys_come_in_runcs_order() {
    require_root!();
    let ctx = Ctx::new("events_order");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    let o = ctx.run(&["events", "--stats", &id]).ok();
    let want = format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":");
    assert!(o.stdout.starts_with(&want), "expected a line starting {want}: {o}");
}

/// `-1` means "unlimited" for these flags (runc's update.bats passes it).
#[test]
fn update_takes_minus_one() {
    require_root!();
    let ctx = Ctx::new("update_minus_one");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    ctx.run(&["update", "--memory", "-1", "--memory-swap", "-1", &id]).ok();
    ctx.run(&["update", "--cpu-quota", "-1", &id]).ok();
}
