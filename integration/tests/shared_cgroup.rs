//! Two containers in one cgroup (the same `linux.cgroupsPath`): deleting the one that joined an
//! existing cgroup must not touch the one that made it.

use moor_integration::{host, poll_for, require_root, Ctx};
use std::time::Duration;

#[test]
fn delete_force_of_a_container_sharing_a_cgroup_leaves_the_other_running() {
    require_root!();
    let ctx = Ctx::new("shared_cgroup_delete");
    let (a, ba) = ctx.bundle(&["sleep", "1000"]);
    let (b, mut bb) = ctx.bundle(&["sleep", "1000"]);
    let path = ba.cgroups_path();
    bb.set("/linux/cgroupsPath", serde_json::json!(path));
    ctx.create_start(&ba, &a);
    let a_pid = ctx.pid(&a);
    ctx.create_start(&bb, &b);
    let b_pid = ctx.pid(&b);
    let dirs = host::cgroup_dirs(&path);
    assert!(!dirs.is_empty(), "no cgroup directory for {path}");
    let pids = host::cgroup_pids(&path);
    assert!(
        pids.contains(&a_pid) && pids.contains(&b_pid),
        "both inits should be in {path}: A {a_pid}, B {b_pid}, cgroup has {pids:?}"
    );

    ctx.delete_force(&b).ok();

    assert!(ctx.state(&b).is_none(), "B still has a state after delete --force");
    let b_gone = poll_for(Duration::from_secs(5), || (!host::pid_alive(b_pid)).then_some(()));
    assert!(b_gone.is_some(), "B's init {b_pid} survived delete --force B");
    assert_eq!(
        ctx.status(&a).as_deref(),
        Some("running"),
        "A is no longer running after delete --force B"
    );
    assert!(
        host::pid_alive(a_pid),
        "A's init {a_pid} was killed by delete --force B"
    );
    let left: Vec<_> = dirs.iter().filter(|d| !d.is_dir()).collect();
    assert!(
        left.is_empty(),
        "delete --force B removed A's cgroup directories {left:?}"
    );
    assert!(
        host::cgroup_pids(&path).contains(&a_pid),
        "A's init {a_pid} is no longer in its cgroup {path}"
    );

    ctx.delete_force(&a).ok();
    assert!(ctx.state(&a).is_none(), "A still has a state after delete --force");
    let a_gone = poll_for(Duration::from_secs(5), || (!host::pid_alive(a_pid)).then_some(()));
    assert!(a_gone.is_some(), "A's init {a_pid} survived delete --force A");
    let left = host::cgroup_dirs(&path);
    assert!(left.is_empty(), "A's cgroup is left after delete --force A: {left:?}");
}
