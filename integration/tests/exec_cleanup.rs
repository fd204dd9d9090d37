//! An `exec` that fails after it has cloned the new process kills and reaps that process: the
//! container is left exactly as it was (only its init in its cgroup), without a `delete`.
//!
//! The failures are injected (moor's `--features fault-injection`, `MOOR_FAULT=<point>:fail`):
//! moor-only, skipped loudly for other runtimes or a moor built without the feature (with
//! `MOOR_IT_REQUIRE_FAULTS=1` that is a failure instead).

use moor_integration::{host, require_root, runtime_is, skip, Ctx};

/// The steps after the clone where a failure used to leave the new process running: after it
/// was released into the workload, and after its execve.
const POINTS: [&str; 2] = ["exec.3.released", "exec.5.exec-done"];

#[test]
fn a_failed_exec_after_the_clone_leaves_no_process() {
    require_root!();
    if !runtime_is("moor") {
        skip!("fault injection is moor's test hook; the runtime under test has none");
    }
    let ctx = Ctx::new("exec_cleanup");
    let (id, b) = ctx.bundle(&["sleep", "100"]);
    ctx.create_start(&b, &id).ok();
    let init = ctx.pid(&id);
    let mut problems = Vec::new();
    for point in POINTS {
        let out = ctx.run_with(&["exec", "--detach", &id, "sleep", "4242"], |c| {
            c.env("MOOR_FAULT", format!("{point}:fail"));
        });
        if out.success() {
            let why = "the runtime under test has no fault injection (build moor with --features fault-injection)";
            assert!(
                std::env::var("MOOR_IT_REQUIRE_FAULTS").as_deref() != Ok("1"),
                "MOOR_IT_REQUIRE_FAULTS=1: {why}"
            );
            ctx.delete_force(&id);
            skip!("{why}");
        }
        if !out.stderr.contains(&format!("injected fault at {point}")) {
            problems.push(format!("{point}: not the injected error: {out}"));
        }
        let pids = host::cgroup_pids(&b.cgroups_path());
        if pids != [init] {
            let left: Vec<String> = pids
                .iter()
                .filter(|p| **p != init)
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
                })
                .collect();
            problems.push(format!(
                "{point}: processes left in the container besides init {init}: {left:?}"
            ));
        }
        if ctx.status(&id).as_deref() != Some("running") {
            problems.push(format!(
                "{point}: the container is {:?} after the failed exec",
                ctx.status(&id)
            ));
        }
    }
    ctx.delete_force(&id).ok();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
