//! Volumes: each kind's files and modes, tmpfs where Kubernetes uses memory, hostPath type checks,
//! hostile keys and paths, and what cleanup keeps (root only: tmpfs mounts).

mod volume_common;

use moorlet::volume::{cleanup, prepare, VolumeError};
use serde_json::json;
use std::path::Path;
use volume_common::{is_root, is_tmpfs, mode, mounts_under, pod, Scratch, Store};

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("SKIP: the volume tests need root (tmpfs mounts)");
            return;
        }
    };
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn config_map_items_paths_and_modes() {
    need_root!();
    let s = Scratch::new("cm");
    let store = Store::default();
    store.put_config_map(json!({"metadata": {"name": "cfg"}, "data": {"a": "alpha", "b": "beta", "c": "gamma"}}));
    let p = pod(json!([
        {"name": "all", "configMap": {"name": "cfg"}},
        {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o640,
            "items": [{"key": "a", "path": "dir/x.txt", "mode": 0o600}, {"key": "b", "path": "y"}]}}
    ]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect("prepare");
    assert_eq!(vols.len(), 2);
    assert!(vols.iter().all(|v| v.read_only), "configMap volumes are read-only");
    let all = &vols[0].path;
    for (k, v) in [("a", "alpha"), ("b", "beta"), ("c", "gamma")] {
        assert_eq!(read(&all.join(k)), v);
        assert_eq!(mode(&all.join(k)), 0o644, "default mode of {k}");
        assert_eq!(
            std::fs::read_link(all.join(k)).expect("a symlink"),
            Path::new("..data").join(k)
        );
    }
    assert!(std::fs::symlink_metadata(all.join("..data"))
        .expect("..data")
        .file_type()
        .is_symlink());
    let some = &vols[1].path;
    assert_eq!(read(&some.join("dir/x.txt")), "alpha");
    assert_eq!(mode(&some.join("dir/x.txt")), 0o600);
    assert_eq!(mode(&some.join("y")), 0o640);
    assert!(
        !some.join("c").exists() && !some.join("a").exists(),
        "only the listed items"
    );
    assert!(!is_tmpfs(all), "configMaps are on disk");
}

#[test]
fn secret_on_tmpfs_with_string_data_and_default_mode() {
    need_root!();
    let s = Scratch::new("secret");
    let store = Store::default();
    // "c2VjcmV0" is base64 for "secret".
    store.put_secret(
        json!({"metadata": {"name": "creds"}, "data": {"password": "c2VjcmV0", "user": "c2VjcmV0"},
                            "stringData": {"user": "admin"}}),
    );
    let p = pod(json!([{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect("prepare");
    let dir = &vols[0].path;
    assert!(is_tmpfs(dir), "a secret volume must be on tmpfs");
    assert_eq!(read(&dir.join("password")), "secret");
    assert_eq!(read(&dir.join("user")), "admin", "stringData wins over data");
    assert_eq!(mode(&dir.join("password")), 0o400);
    cleanup(&p, &s.pod_dir()).expect("cleanup");
    assert!(mounts_under(&s.0).is_empty(), "tmpfs left: {:?}", mounts_under(&s.0));
    assert!(!s.pod_dir().join("volumes").exists());
}

#[test]
fn missing_objects_fail_unless_optional() {
    need_root!();
    let s = Scratch::new("optional");
    let store = Store::default();
    let p = pod(json!([{"name": "opt", "configMap": {"name": "nope", "optional": true}}]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect("optional and missing is fine");
    assert_eq!(
        std::fs::read_dir(&vols[0].path)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
            .count(),
        0
    );
    cleanup(&p, &s.pod_dir()).expect("cleanup");
    let p = pod(
        json!([{"name": "e", "emptyDir": {"medium": "Memory"}}, {"name": "req", "secret": {"secretName": "nope"}}]),
    );
    let err = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect_err("missing secret");
    assert!(
        matches!(&err, VolumeError::Missing { field, .. } if field == "spec.volumes[1].secret"),
        "{err}"
    );
    assert!(!s.pod_dir().join("volumes").exists(), "a failed prepare left volumes");
    assert!(mounts_under(&s.0).is_empty(), "a failed prepare left mounts");
    store.put_config_map(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}}));
    let p = pod(json!([{"name": "k", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}]));
    let err = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect_err("missing key");
    assert!(
        err.to_string().contains("spec.volumes[0].configMap.items[0].key"),
        "{err}"
    );
}

#[test]
fn downward_api_files() {
    need_root!();
    let s = Scratch::new("downward");
    let p = pod(json!([{"name": "info", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "note", "fieldRef": {"fieldPath": "metadata.annotations['note']"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}, "mode": 0o600},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}
    ]}}]));
    let vols = prepare(
        &p,
        &s.pod_dir(),
        &s.claims(),
        &Store::default(),
        Some("10.87.0.9".parse().expect("ip")),
    )
    .expect("prepare");
    let d = &vols[0].path;
    assert_eq!(read(&d.join("name")), "web");
    assert_eq!(read(&d.join("ns")), "ns1");
    assert_eq!(read(&d.join("uid")), "u-123");
    assert_eq!(read(&d.join("labels")), "app=\"web\"\ntier=\"front\"");
    assert_eq!(read(&d.join("note")), "say \"hi\"");
    assert_eq!(read(&d.join("annotations")), "note=\"say \\\"hi\\\"\"");
    assert_eq!(read(&d.join("ip")), "10.87.0.9");
    assert_eq!(mode(&d.join("ip")), 0o600);
    assert_eq!(read(&d.join("mem")), "64");
    assert_eq!(read(&d.join("cpu")), "500");
    let bad = pod(
        json!([{"name": "info", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.secret"}}]}}]),
    );
    let err = prepare(&bad, &s.pod_dir(), &s.claims(), &Store::default(), None).expect_err("unknown field");
    assert!(
        err.to_string()
            .contains("spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath"),
        "{err}"
    );
}

#[test]
fn projected_combines_sources_on_tmpfs() {
    need_root!();
    let s = Scratch::new("projected");
    let store = Store::default();
    store.put_config_map(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}}));
    store.put_secret(json!({"metadata": {"name": "sec"}, "stringData": {"token": "t0k"}}));
    let p = pod(
        json!([{"name": "all-in-one", "projected": {"defaultMode": 0o440, "sources": [
            {"configMap": {"name": "cfg"}},
            {"secret": {"name": "sec", "items": [{"key": "token", "path": "auth/token"}]}},
            {"downwardAPI": {"items": [{"path": "pod", "fieldRef": {"fieldPath": "metadata.name"}}]}}
        ]}}]),
    );
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect("prepare");
    let d = &vols[0].path;
    assert!(is_tmpfs(d), "a projected volume (it may hold secrets) is on tmpfs");
    assert_eq!(read(&d.join("a")), "1");
    assert_eq!(read(&d.join("auth/token")), "t0k");
    assert_eq!(read(&d.join("pod")), "web");
    assert_eq!(mode(&d.join("auth/token")), 0o440);
    let clash = pod(
        json!([{"name": "x", "projected": {"sources": [{"configMap": {"name": "cfg"}}, {"configMap": {"name": "cfg"}}]}}]),
    );
    let err = prepare(&clash, &s.pod_dir(), &s.claims(), &store, None).expect_err("two sources, one path");
    assert!(
        err.to_string()
            .contains("spec.volumes[0].projected.sources[1].configMap"),
        "{err}"
    );
}

#[test]
fn hostile_keys_and_paths_are_refused() {
    need_root!();
    let s = Scratch::new("hostile");
    let store = Store::default();
    store.put_config_map(json!({"metadata": {"name": "dots"}, "data": {"..data": "x"}}));
    store.put_config_map(json!({"metadata": {"name": "ok"}, "data": {"a": "1"}}));
    let cases = [
        (
            json!({"name": "v", "configMap": {"name": "dots"}}),
            "spec.volumes[0].configMap",
        ),
        (
            json!({"name": "v", "configMap": {"name": "ok", "items": [{"key": "a", "path": "/etc/passwd"}]}}),
            "spec.volumes[0].configMap.items[0].path",
        ),
        (
            json!({"name": "v", "configMap": {"name": "ok", "items": [{"key": "a", "path": "x/../../../escape"}]}}),
            "spec.volumes[0].configMap.items[0].path",
        ),
        (
            json!({"name": "v", "configMap": {"name": "ok", "items": [{"key": "a", "path": "..data/a"}]}}),
            "spec.volumes[0].configMap.items[0].path",
        ),
        (
            json!({"name": "v", "configMap": {"name": "ok", "defaultMode": 0o4777}}),
            "spec.volumes[0].configMap.defaultMode",
        ),
        (json!({"name": "../up", "emptyDir": {}}), "spec.volumes[0].name"),
        (
            json!({"name": "v", "persistentVolumeClaim": {"claimName": "../../etc"}}),
            "spec.volumes[0].persistentVolumeClaim.claimName",
        ),
        (
            json!({"name": "v", "nfs": {"server": "x", "path": "/"}}),
            "spec.volumes[0].nfs",
        ),
    ];
    for (volume, field) in cases {
        let p = pod(json!([volume]));
        let err = prepare(&p, &s.pod_dir(), &s.claims(), &store, None).expect_err(field);
        assert!(err.to_string().starts_with(field), "{field}: {err}");
        assert!(!s.0.join("escape").exists() && !s.pod_dir().join("volumes").exists());
    }
    assert!(mounts_under(&s.0).is_empty());
}

#[test]
fn host_path_types_are_checked() {
    need_root!();
    let s = Scratch::new("hostpath");
    let base = s.0.join("host");
    std::fs::create_dir_all(&base).expect("base");
    std::fs::write(base.join("file"), "f").expect("file");
    let _sock = std::os::unix::net::UnixListener::bind(base.join("sock")).expect("socket");
    let ok = |path: &Path, kind: &str| {
        let p = pod(json!([{"name": "h", "hostPath": {"path": path, "type": kind}}]));
        prepare(&p, &s.pod_dir(), &s.claims(), &Store::default(), None)
    };
    let made = base.join("made/deep");
    assert_eq!(ok(&made, "DirectoryOrCreate").expect("DirectoryOrCreate")[0].path, made);
    assert!(made.is_dir());
    assert_eq!(mode(&made), 0o755);
    ok(&base.join("newfile"), "FileOrCreate").expect("FileOrCreate");
    assert!(base.join("newfile").is_file());
    assert_eq!(mode(&base.join("newfile")), 0o644);
    ok(&base, "Directory").expect("Directory");
    ok(&base.join("file"), "File").expect("File");
    ok(&base.join("sock"), "Socket").expect("Socket");
    ok(Path::new("/dev/null"), "CharDevice").expect("CharDevice");
    ok(&base.join("nothing"), "").expect("no type: no check");
    for (path, kind) in [
        (base.join("missing"), "Directory"),
        (base.join("file"), "Directory"),
        (base.clone(), "File"),
        (base.join("file"), "Socket"),
        (base.join("file"), "CharDevice"),
        (std::path::PathBuf::from("/dev/null"), "BlockDevice"),
        (base.join("file"), "DirectoryOrCreate"),
        (base.join("nodir/f"), "FileOrCreate"),
    ] {
        let err = ok(&path, kind).expect_err(kind);
        assert!(
            matches!(&err, VolumeError::HostPath { field, .. } if field == "spec.volumes[0].hostPath"),
            "{kind} {}: {err}",
            path.display()
        );
    }
    let err = ok(&base, "Fifo").expect_err("unknown type");
    assert!(err.to_string().starts_with("spec.volumes[0].hostPath.type"), "{err}");
    let err = ok(Path::new("relative/dir"), "").expect_err("relative");
    assert!(err.to_string().starts_with("spec.volumes[0].hostPath.path"), "{err}");
}

#[test]
fn memory_empty_dir_is_full_at_its_size_limit_and_pvc_data_survives_cleanup() {
    need_root!();
    let s = Scratch::new("emptydir");
    let p = pod(json!([
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "disk", "emptyDir": {}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "db-data", "readOnly": true}}
    ]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &Store::default(), None).expect("prepare");
    let mem = &vols[0].path;
    assert!(is_tmpfs(mem));
    assert_eq!(mode(mem), 0o777);
    let err = std::fs::write(mem.join("big"), vec![0u8; 2 << 20]).expect_err("2 MiB into a 1 MiB tmpfs");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(!is_tmpfs(&vols[1].path) && vols[1].path.is_dir());
    assert_eq!(mode(&vols[1].path), 0o777);
    let claim = &vols[2].path;
    assert_eq!(claim, &s.claims().join("ns1/db-data"));
    assert!(vols[2].read_only);
    std::fs::write(claim.join("keep"), "me").expect("write to the claim");
    cleanup(&p, &s.pod_dir()).expect("cleanup");
    cleanup(&p, &s.pod_dir()).expect("cleanup is idempotent");
    assert_eq!(read(&claim.join("keep")), "me", "claim data must survive the pod");
    assert!(mounts_under(&s.0).is_empty(), "mounts left: {:?}", mounts_under(&s.0));
    assert!(!s.pod_dir().join("volumes").exists());
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &Store::default(), None).expect("prepare again");
    assert_eq!(
        read(&vols[2].path.join("keep")),
        "me",
        "a re-created pod finds its claim's data"
    );
    let bad = pod(json!([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "0"}}]));
    let err = prepare(&bad, &s.0.join("pod2"), &s.claims(), &Store::default(), None).expect_err("size 0");
    assert!(
        err.to_string().starts_with("spec.volumes[0].emptyDir.sizeLimit"),
        "{err}"
    );
}

#[test]
fn a_failed_prepare_keeps_the_volumes_that_were_there() {
    need_root!();
    let s = Scratch::new("reprepare");
    let p = pod(json!([{"name": "scratch", "emptyDir": {"medium": "Memory"}}]));
    let vols = prepare(&p, &s.pod_dir(), &s.claims(), &Store::default(), None).expect("prepare");
    std::fs::write(vols[0].path.join("work"), "in progress").expect("write");
    // An agent restart prepares the running pod again, and a secret is gone meanwhile.
    let p2 = pod(json!([{"name": "scratch", "emptyDir": {"medium": "Memory"}},
                        {"name": "gone", "secret": {"secretName": "gone"}}]));
    prepare(&p2, &s.pod_dir(), &s.claims(), &Store::default(), None).expect_err("missing secret");
    assert_eq!(
        read(&vols[0].path.join("work")),
        "in progress",
        "a running pod's emptyDir was wiped"
    );
    assert!(is_tmpfs(&vols[0].path));
    assert!(!s.pod_dir().join("volumes/gone").exists());
}
