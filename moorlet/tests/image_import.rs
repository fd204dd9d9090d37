//! The image store: imports of the three kinds, the unpacked layers, the overlay rootfs,
//! idempotence, corrupted and hostile input, names, prune.

mod image_support;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use image_support::{contents, is_mounted, is_whiteout, names, xattr, TempDir};
use moor_integration::images::{self, Compression, Layer, Tar, HELLO, HIDDEN_FILE, OPAQUE_DIR};
use moor_integration::{require_root, skip};
use moorlet::image::{mount_rootfs, unmount_rootfs, ImageError, ImageStore};
use serde_json::json;

macro_rules! need_busybox {
    () => {
        require_root!();
        if !images::busybox_available() {
            skip!("needs /bin/busybox from Debian's busybox-static (apt-get install busybox-static)");
        }
    };
}

const NAME: &str = "docker.io/library/busybox:latest";

fn check_busybox_layers(store: &ImageStore, image: &moorlet::image::Image) {
    let dirs = store.layer_dirs(image).expect("layer dirs");
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    let (l1, l2, l3) = (&dirs[0], &dirs[1], &dirs[2]);
    let bb = fs::metadata(l1.join("bin/busybox")).expect("layer 1 has bin/busybox");
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    assert_eq!(bb.len(), fs::metadata(images::BUSYBOX).expect("busybox").len());
    let sh = fs::metadata(l1.join("bin/sh")).expect("bin/sh");
    assert_eq!(sh.ino(), bb.ino(), "bin/sh is a hard link to bin/busybox");
    assert_eq!(
        fs::metadata(l1.join("tmp")).expect("tmp").permissions().mode() & 0o7777,
        0o1777
    );
    assert!(l1.join(HIDDEN_FILE).is_file());
    assert!(
        is_whiteout(&l2.join(HIDDEN_FILE)),
        "layer 2's .wh. entry is a 0/0 char device"
    );
    assert!(!l2.join("etc/.wh.removed-later").exists());
    assert_eq!(
        xattr(&l2.join(OPAQUE_DIR), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l2.join(OPAQUE_DIR).join(".wh..wh..opq").exists());
    assert_eq!(
        fs::read_link(l3.join("etc/motd")).expect("motd symlink"),
        Path::new("hello")
    );
    assert_eq!(fs::read_to_string(l3.join("etc/hello")).expect("hello"), HELLO);
}

#[test]
fn import_oci_layout_unpacks_every_layer() {
    need_busybox!();
    let t = TempDir::new("layout");
    let layout = images::busybox_oci_layout(t.path(), "busybox");
    let store = t.store();
    let imported = store.import(&layout).expect("import the layout");
    assert_eq!(imported.len(), 1);
    let image = &imported[0];
    assert_eq!(image.names, vec![NAME.to_string()]);
    assert_eq!(image.id, images::busybox_image().id());
    assert_eq!(image.config.cmd, vec!["/bin/sh".to_string()]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/"));
    assert!(image.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert!(image.size >= fs::metadata(images::BUSYBOX).expect("busybox").len());
    check_busybox_layers(&store, image);
    for r in ["busybox", "busybox:latest", NAME, &image.id, &image.id[7..19]] {
        assert_eq!(store.get(r).expect("get").as_ref(), Some(image), "get({r})");
    }
    assert_eq!(store.get("busybox:other").expect("get"), None);
    assert_eq!(store.list().expect("list"), imported);
}

#[test]
fn import_oci_archive_and_docker_archive_share_layers() {
    need_busybox!();
    let t = TempDir::new("archives");
    let oci = images::busybox_oci_archive(t.path(), "example.com/team/bb:v1");
    let docker = images::busybox_docker_archive(t.path(), "bb:saved");
    let store = t.store();
    let a = store.import(&oci).expect("import the oci-archive");
    assert_eq!(a[0].names, vec!["example.com/team/bb:v1".to_string()]);
    check_busybox_layers(&store, &a[0]);
    let b = store.import(&docker).expect("import the docker-archive");
    assert_eq!(b[0].id, a[0].id, "the same config is the same image");
    assert_eq!(
        b[0].names,
        vec![
            "example.com/team/bb:v1".to_string(),
            "docker.io/library/bb:saved".to_string()
        ]
    );
    check_busybox_layers(&store, &b[0]);
    assert_eq!(names(&t.join("store/layers")).len(), 3, "layers are unpacked once");
    assert_eq!(store.list().expect("list").len(), 1);
}

#[test]
fn docker_archive_alone_imports() {
    need_busybox!();
    let t = TempDir::new("docker");
    let docker = images::busybox_docker_archive(t.path(), "busybox:1.35");
    let store = t.store();
    let imported = store.import(&docker).expect("import the docker-archive");
    assert_eq!(imported[0].names, vec!["docker.io/library/busybox:1.35".to_string()]);
    check_busybox_layers(&store, &imported[0]);
}

#[test]
fn compressed_archives_import() {
    need_busybox!();
    let t = TempDir::new("gz");
    let docker = images::busybox_docker_archive(t.path(), "busybox:gz");
    let oci = images::busybox_oci_archive(t.path(), "busybox:zst");
    let gz = t.join("saved.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(fs::File::create(&gz).expect("create"), flate2::Compression::fast());
    std::io::copy(&mut fs::File::open(&docker).expect("open"), &mut enc).expect("gzip");
    enc.finish().expect("gzip");
    let zst = t.join("oci.tar.zst");
    let data = ruzstd::encoding::compress_to_vec(
        fs::File::open(&oci).expect("open"),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    fs::write(&zst, data).expect("write");
    let store = t.store();
    let a = store.import(&gz).expect("import a gzip'd docker-archive").remove(0);
    let b = store.import(&zst).expect("import a zstd oci-archive").remove(0);
    assert_eq!(a.id, b.id);
    assert_eq!(
        b.names,
        vec![
            "docker.io/library/busybox:gz".to_string(),
            "docker.io/library/busybox:zst".to_string()
        ]
    );
    check_busybox_layers(&store, &b);
    assert!(names(&t.join("store/tmp")).is_empty(), "the decompressed copy is gone");
}

#[test]
fn multi_platform_index_gives_the_amd64_image() {
    need_busybox!();
    let t = TempDir::new("multiarch");
    let img = images::busybox_image();
    let layout = images::write_oci_layout_multiarch(&img, t.path(), "multi");
    let store = t.store();
    let imported = store.import(&layout).expect("import");
    assert_eq!(imported[0].id, img.id());
    assert_eq!(imported[0].names, vec!["docker.io/library/multi:latest".to_string()]);
}

#[test]
fn reimport_changes_nothing() {
    need_busybox!();
    let t = TempDir::new("reimport");
    let layout = images::busybox_oci_layout(t.path(), "busybox");
    let store = t.store();
    let first = store.import(&layout).expect("import");
    let before = contents(&t.join("store"), &store);
    let index = fs::read(t.join("store/index.json")).expect("index");
    let second = store.import(&layout).expect("import again");
    assert_eq!(first, second);
    assert_eq!(contents(&t.join("store"), &store), before);
    assert_eq!(fs::read(t.join("store/index.json")).expect("index"), index);
}

#[test]
fn overlay_rootfs_stacks_layers_and_unmounts() {
    need_busybox!();
    let t = TempDir::new("overlay");
    let layout = images::busybox_oci_layout(t.path(), "busybox");
    let store = t.store();
    let image = store.import(&layout).expect("import").remove(0);
    let c = t.join("c1");
    let rootfs = mount_rootfs(&store, &image, &c).expect("mount the rootfs");
    assert_eq!(rootfs, c.join("rootfs"));
    assert!(is_mounted(&rootfs));
    assert_eq!(
        mount_rootfs(&store, &image, &c).expect("mount again"),
        rootfs,
        "a second mount is the first"
    );
    assert_eq!(fs::read_to_string(rootfs.join("etc/hello")).expect("hello"), HELLO);
    assert!(
        !rootfs.join(HIDDEN_FILE).exists(),
        "layer 2's whiteout hides layer 1's file"
    );
    assert_eq!(
        names(&rootfs.join(OPAQUE_DIR)),
        vec!["new".to_string()],
        "the opaque dir hides 'old'"
    );
    // the image runs: busybox from the merged tree, chrooted
    let out = std::process::Command::new("chroot")
        .arg(&rootfs)
        .args(["/bin/sh", "-c", "cat /etc/motd; ls /var/opaque"])
        .output()
        .expect("run chroot");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{HELLO}new\n"));
    fs::write(rootfs.join("tmp/written"), b"x").expect("write into the rootfs");
    assert!(c.join("upper/tmp/written").is_file(), "writes land in upper/");
    let layer1 = &store.layer_dirs(&image).expect("layers")[0];
    assert!(!layer1.join("tmp/written").exists());
    // a second container of the same image, at the same time: the layers are shared, not the writes
    let c2 = t.join("c2");
    let rootfs2 = mount_rootfs(&store, &image, &c2).expect("mount a second rootfs");
    assert!(!rootfs2.join("tmp/written").exists());
    assert_eq!(fs::read_to_string(rootfs2.join("etc/hello")).expect("hello"), HELLO);
    unmount_rootfs(&c2).expect("unmount the second");
    assert!(!is_mounted(&rootfs2) && is_mounted(&rootfs));

    unmount_rootfs(&c).expect("unmount");
    assert!(!is_mounted(&rootfs));
    for d in ["rootfs", "upper", "work"] {
        assert!(!c.join(d).exists(), "{d} removed");
    }
    unmount_rootfs(&c).expect("a second unmount is no error");
}

#[test]
fn many_layers_mount() {
    need_busybox!();
    let t = TempDir::new("many");
    // 80 layers: their store paths would not fit in one page of mount(2) options
    let mut layers = images::busybox_layers();
    for i in 0..77 {
        let mut tar = Tar::new();
        tar.dir("etc", 0o755)
            .file(&format!("etc/layer{i}"), 0o644, format!("{i}\n").as_bytes());
        layers.push(Layer {
            tar: tar.finish(),
            compression: Compression::Gzip,
        });
    }
    let img = images::image(layers, json!({"Cmd": ["/bin/sh"]}));
    let layout = images::write_oci_layout(&img, t.path(), "many");
    let store = t.store();
    let image = store.import(&layout).expect("import").remove(0);
    let c = t.join("c1");
    let rootfs = mount_rootfs(&store, &image, &c).expect("mount 80 layers");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/layer76")).expect("top layer"),
        "76\n"
    );
    assert_eq!(fs::read_to_string(rootfs.join("etc/hello")).expect("layer 3"), HELLO);
    unmount_rootfs(&c).expect("unmount");
}

#[test]
fn ownership_modes_xattrs_and_nodes_are_kept() {
    require_root!();
    let t = TempDir::new("attrs");
    let tar = Tar::new()
        .file_owned("setuid", 0o4755, 1234, 5678, b"#!/bin/sh\n")
        .pax(&[
            ("SCHILY.xattr.user.origin", b"layer"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ])
        .file("xattrs", 0o640, b"x")
        .pax(&[("uid", b"3000000000"), ("gid", b"3000000001")])
        .file("big-ids", 0o600, b"y")
        .dir("d", 0o750)
        .node("d/null", tar::EntryType::Char, 0o666, 1, 3)
        .node("d/fifo", tar::EntryType::Fifo, 0o644, 0, 0)
        .finish();
    let img = images::image(
        vec![Layer {
            tar,
            compression: Compression::Zstd,
        }],
        json!({"User": "1234:5678"}),
    );
    let store = t.store();
    let image = store
        .import(&images::write_oci_layout(&img, t.path(), "attrs"))
        .expect("import")
        .remove(0);
    assert_eq!(image.config.user.as_deref(), Some("1234:5678"));
    let root = &store.layer_dirs(&image).expect("layers")[0];
    let m = fs::metadata(root.join("setuid")).expect("setuid");
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (1234, 5678, 0o4755),
        "owner, then mode: set-id kept"
    );
    assert_eq!(
        xattr(&root.join("xattrs"), "user.origin").as_deref(),
        Some(&b"layer"[..])
    );
    assert_eq!(
        xattr(&root.join("xattrs"), "trusted.overlay.redirect"),
        None,
        "overlay's own xattrs are not taken"
    );
    let m = fs::metadata(root.join("big-ids")).expect("big-ids");
    assert_eq!((m.uid(), m.gid()), (3_000_000_000, 3_000_000_001), "pax uid/gid");
    let d = fs::metadata(root.join("d")).expect("d");
    assert_eq!(
        (d.mode() & 0o7777, d.mtime()),
        (0o750, 1_700_000_000),
        "a directory's mode and mtime"
    );
    let null = fs::metadata(root.join("d/null")).expect("null");
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&null.file_type()));
    assert_eq!((null.rdev(), null.mode() & 0o777), (libc::makedev(1, 3), 0o666));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::metadata(root.join("d/fifo")).expect("fifo").file_type()
    ));
    assert_eq!(m.mtime(), 1_700_000_000);
}

#[test]
fn repeated_layers_mount() {
    need_busybox!();
    let t = TempDir::new("repeated");
    // busybox, an empty layer, a layer whiting out /etc/hello, the empty layer again: the empty
    // layer's two copies are one directory, which overlayfs takes only once
    let empty = || Layer {
        tar: Tar::new().finish(),
        compression: Compression::None,
    };
    let mut layers = images::busybox_layers();
    layers.push(empty());
    layers.push(Layer {
        tar: Tar::new().whiteout("etc/hello").finish(),
        compression: Compression::Gzip,
    });
    layers.push(empty());
    let img = images::image(layers, json!({"Cmd": ["/bin/sh"]}));
    let store = t.store();
    let image = store
        .import(&images::write_oci_layout(&img, t.path(), "repeated"))
        .expect("import")
        .remove(0);
    assert_eq!(store.layer_dirs(&image).expect("layers").len(), 6);
    let c = t.join("c1");
    let rootfs = mount_rootfs(&store, &image, &c).expect("mount an image that repeats a layer");
    assert!(
        !rootfs.join("etc/hello").exists(),
        "the whiteout above the first copy still hides"
    );
    assert!(rootfs.join("bin/busybox").is_file());
    unmount_rootfs(&c).expect("unmount");
}

fn assert_nothing_stored(t: &TempDir, store: &ImageStore) {
    let (blobs, layers, tmp, images) = contents(&t.join("store"), store);
    assert!(
        blobs.is_empty() && layers.is_empty() && tmp.is_empty() && images == 0,
        "blobs {blobs:?} layers {layers:?} tmp {tmp:?} images {images}"
    );
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_stored() {
    need_busybox!();
    let img = images::busybox_image();
    // a layer with one byte flipped, and a config still valid JSON but saying another Cmd
    type Corrupt = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(String, Corrupt)> = vec![
        (
            images::sha256(&img.layers[2].0),
            Box::new(|data: &mut Vec<u8>| {
                let last = data.len() - 1;
                data[last] ^= 0xff;
            }),
        ),
        (
            img.id(),
            Box::new(|data: &mut Vec<u8>| {
                let text = String::from_utf8(data.clone())
                    .expect("config text")
                    .replace("/bin/sh", "/bin/xx");
                *data = text.into_bytes();
            }),
        ),
    ];
    for (digest, corrupt) in cases {
        let t = TempDir::new("corrupt");
        let layout = images::write_oci_layout(&img, t.path(), "busybox");
        let blob = layout.join("blobs/sha256").join(&digest[7..]);
        let mut data = fs::read(&blob).expect("blob");
        let size = data.len();
        corrupt(&mut data);
        assert_eq!(data.len(), size, "same size, other content");
        fs::write(&blob, &data).expect("corrupt the blob");
        let store = t.store();
        let err = store.import(&layout).expect_err("a corrupted blob must be refused");
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&digest), "the error names the blob: {err}");
        assert_nothing_stored(&t, &store);
        assert_eq!(store.get("busybox").expect("get"), None);
    }
}

#[test]
fn wrong_diff_id_is_rejected() {
    need_busybox!();
    let t = TempDir::new("diffid");
    let mut img = images::busybox_image();
    // the config claims another uncompressed digest for layer 3
    let mut config: serde_json::Value = serde_json::from_slice(&img.config).expect("config");
    config["rootfs"]["diff_ids"][2] = json!(images::sha256(b"something else"));
    img.config = serde_json::to_vec(&config).expect("config");
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).expect("manifest");
    manifest["config"] = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": images::sha256(&img.config), "size": img.config.len()});
    img.manifest = serde_json::to_vec(&manifest).expect("manifest");
    let layout = images::write_oci_layout(&img, t.path(), "busybox");
    let store = t.store();
    let err = store.import(&layout).expect_err("a wrong diff id must be refused");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert_nothing_stored(&t, &store);
}

fn import_hostile(tag: &str, tar: Vec<u8>) -> (TempDir, ImageError) {
    let t = TempDir::new(tag);
    let img = images::image(
        vec![Layer {
            tar,
            compression: Compression::Gzip,
        }],
        json!({}),
    );
    let layout = images::write_oci_layout(&img, t.path(), "hostile");
    let store = t.store();
    let err = store.import(&layout).expect_err("a hostile layer must be refused");
    assert_nothing_stored(&t, &store);
    (t, err)
}

#[test]
fn hostile_layers_are_refused() {
    require_root!();
    let outside = TempDir::new("outside");
    let target = outside.path().display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            Tar::new().dir("a", 0o755).file("a/../../escaped", 0o644, b"x").finish(),
            "a/../../escaped",
        ),
        (
            "absolute",
            Tar::new().file(&format!("{target}/abs"), 0o644, b"x").finish(),
            "abs",
        ),
        (
            "symlink-parent",
            Tar::new()
                .symlink("evil", &target)
                .file("evil/pwned", 0o644, b"x")
                .finish(),
            "evil/pwned",
        ),
        (
            "symlink-dotdot",
            Tar::new()
                .symlink("up", "../../../../../../../..")
                .file("up/tmp/pwned2", 0o644, b"x")
                .finish(),
            "up/tmp/pwned2",
        ),
        (
            "hardlink-out",
            Tar::new().hardlink("passwd", "../../../../../../etc/passwd").finish(),
            "passwd",
        ),
        (
            "whiteout-dotdot",
            Tar::new().file(".wh...", 0o644, b"").finish(),
            ".wh...",
        ),
    ];
    for (tag, tar, entry) in cases {
        let (_t, err) = import_hostile(tag, tar);
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{tag}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("sha256:") && msg.contains(entry),
            "{tag}: the error names the blob and the entry: {msg}"
        );
    }
    assert!(
        names(outside.path()).is_empty(),
        "nothing was written outside: {:?}",
        names(outside.path())
    );
    assert!(!Path::new("/tmp/pwned2").exists());
}

#[test]
fn names_move_and_remove() {
    need_busybox!();
    let t = TempDir::new("names");
    let store = t.store();
    let a = store
        .import(&images::busybox_oci_layout(t.path(), "app:v1"))
        .expect("import a")
        .remove(0);
    let mut layers = images::busybox_layers();
    layers.push(Layer {
        tar: Tar::new().file("extra", 0o644, b"extra\n").finish(),
        compression: Compression::None,
    });
    let img_b = images::image(layers, json!({"Cmd": ["/bin/true"]}));
    let b = store
        .import(&images::write_oci_layout(&img_b, t.path(), "app:v1"))
        .expect("import b")
        .remove(0);
    assert_ne!(a.id, b.id);
    assert_eq!(
        store.get("app:v1").expect("get").map(|i| i.id),
        Some(b.id.clone()),
        "the name moved to b"
    );
    let a_now = store.get(&a.id).expect("get a").expect("a is still there, by id");
    assert!(a_now.names.is_empty());
    assert!(matches!(store.remove("nosuch"), Err(ImageError::NotFound(_))));
    store.remove("app:v1").expect("remove b by name");
    assert_eq!(store.get("app:v1").expect("get"), None);
    assert_eq!(store.list().expect("list").len(), 1);
}

#[test]
fn prune_keeps_images_in_use_and_what_they_share() {
    need_busybox!();
    let t = TempDir::new("prune");
    let store = t.store();
    let a = store
        .import(&images::busybox_oci_layout(t.path(), "a"))
        .expect("import a")
        .remove(0);
    let mut layers = images::busybox_layers();
    layers.push(Layer {
        tar: Tar::new().file("extra", 0o644, b"extra\n").finish(),
        compression: Compression::Zstd,
    });
    let img_b = images::image(layers, json!({"Cmd": ["/bin/true"]}));
    let b = store
        .import(&images::write_oci_layout(&img_b, t.path(), "b"))
        .expect("import b")
        .remove(0);
    assert_eq!(names(&t.join("store/layers")).len(), 4);
    let report = store.prune(&HashSet::from([a.id.clone()])).expect("prune");
    assert_eq!(report.images, vec![b.id.clone()]);
    assert_eq!(report.layers, 1, "only b's own layer goes");
    assert_eq!(report.blobs, 3, "b's config, manifest and own layer blob go");
    assert!(report.bytes > 0);
    assert_eq!(store.get("b").expect("get"), None);
    let c = t.join("c1");
    let rootfs = mount_rootfs(&store, &a, &c).expect("a still mounts");
    assert_eq!(fs::read_to_string(rootfs.join("etc/hello")).expect("hello"), HELLO);
    unmount_rootfs(&c).expect("unmount");
    store.prune(&HashSet::new()).expect("prune all");
    let (blobs, layers, tmp, images) = contents(&t.join("store"), &store);
    assert!(blobs.is_empty() && layers.is_empty() && tmp.is_empty() && images == 0);
    let c2 = t.join("c2");
    let err = mount_rootfs(&store, &a, &c2).expect_err("a pruned image does not mount");
    assert!(matches!(err, ImageError::NotFound(_)), "{err}");
    assert!(names(&c2).is_empty(), "a failed mount leaves nothing: {:?}", names(&c2));
}

#[test]
fn concurrent_imports_into_one_store() {
    need_busybox!();
    let t = TempDir::new("concurrent");
    let layout = images::busybox_oci_layout(t.path(), "busybox");
    let archive = images::busybox_docker_archive(t.path(), "busybox:other");
    let store = t.store();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (store, path) = (&store, if i % 2 == 0 { &layout } else { &archive });
                s.spawn(move || store.import(path))
            })
            .collect();
        for h in handles {
            h.join().expect("thread").expect("import");
        }
    });
    let list = store.list().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].names.len(), 2);
    assert_eq!(names(&t.join("store/layers")).len(), 3);
    assert!(names(&t.join("store/tmp")).is_empty());
    let _ = ImageStore::open(t.join("store").as_path()).expect("reopen");
}

#[test]
fn import_an_image_made_by_umoci() {
    need_busybox!();
    if !Path::new("/usr/bin/umoci").is_file() {
        skip!("needs /usr/bin/umoci from Debian's umoci package (apt-get install umoci)");
    }
    let t = TempDir::new("umoci");
    let umoci = |args: &[&str]| {
        let out = std::process::Command::new("/usr/bin/umoci")
            .args(args)
            .current_dir(t.path())
            .output()
            .expect("run umoci");
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    umoci(&["init", "--layout", "img"]);
    umoci(&["new", "--image", "img:bb"]);
    umoci(&["unpack", "--image", "img:bb", "bundle"]);
    let bin = t.join("bundle/rootfs/bin");
    fs::create_dir_all(&bin).expect("bin");
    fs::copy(images::BUSYBOX, bin.join("busybox")).expect("copy busybox");
    fs::hard_link(bin.join("busybox"), bin.join("sh")).expect("link sh");
    umoci(&["repack", "--image", "img:bb", "bundle"]);
    umoci(&[
        "config",
        "--image",
        "img:bb",
        "--config.cmd",
        "/bin/sh",
        "--config.workingdir",
        "/tmp",
    ]);
    let store = t.store();
    let image = store.import(&t.join("img")).expect("import umoci's layout").remove(0);
    assert_eq!(image.names, vec!["docker.io/library/bb:latest".to_string()]);
    assert_eq!(image.config.cmd, vec!["/bin/sh".to_string()]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/tmp"));
    let c = t.join("c1");
    let rootfs = mount_rootfs(&store, &image, &c).expect("mount");
    let out = std::process::Command::new("chroot")
        .arg(&rootfs)
        .args(["/bin/sh", "-c", "echo made by umoci"])
        .output()
        .expect("chroot");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "made by umoci\n");
    unmount_rootfs(&c).expect("unmount");
}
