//! Error wording that callers and runc's own tests match as text.

use moor_integration::{require_root, Ctx};
use serde_json::json;

#[test]
fn a_failing_hook_says_error_running_hook() {
    require_root!();
    let ctx = Ctx::new("hook_words");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/hooks", json!({"createRuntime": [{"path": "/bin/false"}]}));
    let c = ctx.create(&b, &id, &[]);
    assert!(!c.success(), "{c}");
    assert!(
        c.stderr.contains("error running hook"),
        "runc's words, which its tests match: {c}"
    );
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn an_absent_seccomp_agent_says_so() {
    require_root!();
    let ctx = Ctx::new("agent_words");
    let (id, mut b) = ctx.bundle(&["true"]);
    let sock = ctx.work_dir().join("no-agent.sock");
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let c = ctx.create(&b, &id, &[]);
    assert!(!c.success(), "{c}");
    assert!(
        c.stderr.contains("failed to connect with seccomp agent"),
        "runc's words: {c}"
    );
    ctx.assert_no_residue(&id, &b);
}

/// A notified write would stop the runtime's own report from init once the filter is in (the
/// agent gets its fd only after that report): refused before anything exists, as runc does.
#[test]
fn notify_on_write_is_refused() {
    require_root!();
    let ctx = Ctx::new("notify_write");
    let (id, mut b) = ctx.bundle(&["true"]);
    let sock = ctx.work_dir().join("agent.sock");
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let c = ctx.create(&b, &id, &[]);
    assert!(!c.success(), "{c}");
    assert!(
        c.stderr
            .contains("SCMP_ACT_NOTIFY cannot be used for the write syscall"),
        "{c}"
    );
    ctx.assert_no_residue(&id, &b);
}
