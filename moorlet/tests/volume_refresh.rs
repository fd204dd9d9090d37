//! refresh(): every key of a configMap/secret volume changes at once, kubelet-style.

mod volume_common;

use moorlet::volume::{prepare, refresh};
use serde_json::json;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use volume_common::{is_root, pod, Scratch, Store};

fn version(i: usize) -> String {
    format!("v{i};").repeat(3000)
}

/// One version, whole: the same chunk repeated.
fn whole(s: &str) -> bool {
    let chunk = s.split_inclusive(';').next().unwrap_or_default();
    !chunk.is_empty() && s == chunk.repeat(s.len() / chunk.len())
}

#[test]
fn a_reader_never_sees_a_mix_of_versions() {
    if !is_root() {
        eprintln!("SKIP: the volume tests need root (tmpfs mounts)");
        return;
    }
    let s = Scratch::new("refresh");
    let store = Store::default();
    let put = |i: usize| {
        store.put_secret(json!({"metadata": {"name": "s"}, "stringData": {"a": version(i), "b": version(i)}}))
    };
    put(0);
    let p = pod(json!([{"name": "sec", "secret": {"secretName": "s"}}]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect("prepare");
    let dir = vols[0].path.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, dir) = (stop.clone(), dir.clone());
        std::thread::spawn(move || {
            let (mut consistent, mut mixed, mut torn) = (0u32, 0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                // One look at ..data, then both keys through it: a snapshot.
                if let Ok(snap) = std::fs::File::open(dir.join("..data")) {
                    let fd = snap.as_raw_fd();
                    let a = std::fs::read_to_string(format!("/proc/self/fd/{fd}/a"));
                    let b = std::fs::read_to_string(format!("/proc/self/fd/{fd}/b"));
                    if let (Ok(a), Ok(b)) = (a, b) {
                        if a == b {
                            consistent += 1
                        } else {
                            mixed += 1
                        }
                    }
                }
                // Through the name a container uses: always one version, whole.
                if let Ok(a) = std::fs::read_to_string(dir.join("a")) {
                    if !whole(&a) {
                        torn += 1;
                    }
                }
            }
            (consistent, mixed, torn)
        })
    };
    for i in 1..=200 {
        put(i);
        refresh(&p, &s.pod_dir(), &store, None).expect("refresh");
    }
    stop.store(true, Ordering::Relaxed);
    let (consistent, mixed, torn) = reader.join().expect("reader");
    assert_eq!(mixed, 0, "a snapshot mixed two versions ({consistent} consistent)");
    assert_eq!(torn, 0, "a file was read half-written");
    assert!(consistent > 0, "the reader never got a snapshot");
    assert_eq!(std::fs::read_to_string(dir.join("b")).expect("b"), version(200));
    let data_dirs = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .count();
    assert_eq!(data_dirs, 1, "old timestamped directories are left");
}

#[test]
fn refresh_adds_and_removes_keys() {
    if !is_root() {
        eprintln!("SKIP: the volume tests need root (tmpfs mounts)");
        return;
    }
    let s = Scratch::new("refresh-keys");
    let store = Store::default();
    store.put_config_map(json!({"metadata": {"name": "c"}, "data": {"old": "1", "kept": "2"}}));
    let p = pod(json!([{"name": "cfg", "configMap": {"name": "c"}}]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect("prepare");
    let dir = &vols[0].path;
    store.put_config_map(json!({"metadata": {"name": "c"}, "data": {"kept": "3", "new": "4"}}));
    refresh(&p, &s.pod_dir(), &store, None).expect("refresh");
    assert!(
        std::fs::symlink_metadata(dir.join("old")).is_err(),
        "a removed key is still there"
    );
    assert_eq!(std::fs::read_to_string(dir.join("kept")).expect("kept"), "3");
    assert_eq!(std::fs::read_to_string(dir.join("new")).expect("new"), "4");
}

#[test]
fn a_secret_refreshed_after_its_tmpfs_is_gone_goes_to_a_new_tmpfs() {
    if !is_root() {
        eprintln!("SKIP: the volume tests need root (tmpfs mounts)");
        return;
    }
    let s = Scratch::new("refresh-tmpfs");
    let store = Store::default();
    store.put_secret(json!({"metadata": {"name": "s"}, "stringData": {"k": "v1"}}));
    let p = pod(json!([{"name": "sec", "secret": {"secretName": "s"}}]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect("prepare");
    let dir = vols[0].path.clone();
    // As after a reboot: the tmpfs is gone, the (empty) directory under it stays.
    nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).expect("unmount");
    store.put_secret(json!({"metadata": {"name": "s"}, "stringData": {"k": "v2"}}));
    refresh(&p, &s.pod_dir(), &store, None).expect("refresh");
    assert!(volume_common::is_tmpfs(&dir), "the refreshed secret is on disk");
    assert_eq!(std::fs::read_to_string(dir.join("k")).expect("k"), "v2");
}
