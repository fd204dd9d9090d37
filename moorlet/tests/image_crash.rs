//! An import killed at any point leaves nothing half-done that `get` could return: the test
//! runs imports in child processes (this test binary again) and SIGKILLs them at several
//! moments, then checks the store.

mod image_support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use image_support::{contents, names, TempDir};
use moor_integration::images::{self, HELLO};
use moor_integration::{require_root, skip};
use moorlet::image::{mount_rootfs, unmount_rootfs, ImageStore};

const CHILD: &str = "MOORLET_IMAGE_TEST_CHILD_IMPORT";

/// Runs as the child when CHILD is set (`<store>\n<layout>`): imports, then exits.
fn child_import() -> bool {
    let Ok(spec) = std::env::var(CHILD) else {
        return false;
    };
    let (store, layout) = spec.split_once('\n').expect("store and layout");
    let store = ImageStore::open(Path::new(store)).expect("open the store");
    store.import(Path::new(layout)).expect("import");
    true
}

#[test]
fn killed_imports_leave_nothing_get_returns() {
    if child_import() {
        return;
    }
    require_root!();
    if !images::busybox_available() {
        skip!("needs /bin/busybox from Debian's busybox-static (apt-get install busybox-static)");
    }
    let t = TempDir::new("crash");
    let layout = images::busybox_oci_layout(t.path(), "busybox");
    let root = t.join("store");
    let store = ImageStore::open(&root).expect("open");
    let exe = std::env::current_exe().expect("the test binary");
    for delay_ms in [5, 80, 300, 700, 1200, 2000] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "killed_imports_leave_nothing_get_returns",
                "--test-threads=1",
            ])
            .env(CHILD, format!("{}\n{}", root.display(), layout.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child import");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // whatever the moment: no image, or a whole one
        if let Some(image) = store.get("busybox").expect("get") {
            let c = t.join(&format!("c{delay_ms}"));
            let rootfs = mount_rootfs(&store, &image, &c).expect("a listed image mounts");
            assert_eq!(std::fs::read_to_string(rootfs.join("etc/hello")).expect("hello"), HELLO);
            unmount_rootfs(&c).expect("unmount");
            store.prune(&HashSet::new()).expect("prune");
        }
        assert!(store.list().expect("list").is_empty());
        // the leftovers (staging, unindexed blobs and layers) are prune's
        store.prune(&HashSet::new()).expect("prune");
        let (blobs, layers, tmp, n) = contents(&root, &store);
        assert!(
            blobs.is_empty() && layers.is_empty() && tmp.is_empty() && n == 0,
            "{blobs:?} {layers:?} {tmp:?}"
        );
    }
    // and the store still imports
    let image = store.import(&layout).expect("import after the kills").remove(0);
    assert_eq!(store.layer_dirs(&image).expect("layers").len(), 3);
    assert_eq!(names(&root.join("layers")).len(), 3);
}
