//! Resource leaks over many sequential container lifecycles.

use moor_integration::{host, require_root, Ctx};
use std::fs;
use std::time::Instant;

const CYCLES: usize = 200;

#[test]
fn sequential_lifecycles_leak_nothing() {
    require_root!();
    let ctx = Ctx::new("leaks");
    let fds_before = host::my_fds().len();
    let mounts_before = host::mount_count();
    let t0 = Instant::now();
    let mut ids = Vec::new();
    let mut cgroups = Vec::new();
    for i in 0..CYCLES {
        let (id, b) = ctx.bundle(&["true"]);
        ctx.create(&b, &id, &[]).ok();
        ctx.start(&id).ok();
        ctx.wait_status(&id, "stopped");
        ctx.delete(&id).ok();
        // Bundles are cheap but not free; remove each one now (the ctx would at the end).
        fs::remove_dir_all(b.path()).unwrap_or_else(|e| panic!("cycle {i}: bundle busy: {e}"));
        cgroups.push(b.cgroups_path());
        ids.push(id);
    }
    eprintln!("{CYCLES} cycles in {:?}", t0.elapsed());

    let left: Vec<_> = fs::read_dir(&ctx.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "--root not empty: {left:?}");
    assert_eq!(host::my_fds().len(), fds_before, "fd count of the test process changed");
    assert_eq!(host::mount_count(), mounts_before, "mount count changed");
    let cg: Vec<_> = cgroups.iter().flat_map(|c| host::cgroup_dirs(c)).collect();
    assert!(cg.is_empty(), "cgroup dirs left: {cg:?}");
    assert_eq!(host::zombie_children(), Vec::<i32>::new(), "zombie children");
    let prefix = ids[0].rsplit_once("-c").unwrap().0.to_string();
    assert_eq!(
        host::pids_with_cmdline(&prefix),
        Vec::<i32>::new(),
        "leftover processes"
    );
}
