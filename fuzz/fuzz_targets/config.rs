//! config.json bytes through loading and the checks made before a container exists: no panic,
//! a document `parse` refuses is refused by `load` too, and what moor accepts survives its own
//! re-serialization. (tests/fuzz_config.rs checks the error messages as well.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One bundle dir per fuzzing process, holding a rootfs; config.json is rewritten per input.
fn bundle() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("moor-libfuzzer-{}", std::process::id()));
        std::fs::create_dir_all(d.join("rootfs/proc")).expect("make the bundle");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = moor::spec::config::parse(data);
    std::fs::write(bundle().join("config.json"), data).expect("write config.json");
    let loaded = moor::spec::config::load(bundle());
    assert!(!(parsed.is_err() && loaded.is_ok()), "parse refused what load accepted");
    if let Ok(b) = loaded {
        let linux = b.spec.linux().clone().unwrap_or_default();
        let _ = moor::checks::namespaces(linux.namespaces().as_deref().unwrap_or_default());
        if let Some(p) = b.spec.process() {
            let _ = moor::checks::of_process(p, moor::checks::last_cap());
        }
        if let Some(s) = linux.seccomp() {
            let _ = moor_seccomp::compile(s);
        }
        let again = serde_json::to_vec(&b.spec).expect("re-serialize");
        if let Err(e) = moor::spec::config::parse(&again) {
            panic!("accepted, but its re-serialization is refused: {e}");
        }
    }
});
