//! Mounts: every mount feature of the OCI runtime-spec, each observed from inside the container
//! (its /proc/self/mountinfo, stat, or attempted writes).

use moor_integration::bundle::temp_dir;
use moor_integration::console::{pty_number, read_until};
use moor_integration::mountinfo::{fs_type, optional_fields, super_opts, HostMount};
use moor_integration::{require_root, runtime_is, skip, Bundle, ConsoleReceiver, Ctx, TIMEOUT};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// create + start + wait stopped; returns the container's stdout followed by its stderr, so the
/// assertion messages show both.
#[track_caller]
fn run(ctx: &Ctx, b: &Bundle, id: &str, extra: &[&str]) -> (String, String) {
    let c = ctx.create(b, id, extra);
    assert!(c.success(), "create failed: {c}");
    let s = ctx.start(id);
    assert!(s.success(), "start failed: {s}\ncontainer stderr: {}", c.stderr_now());
    ctx.wait_status(id, "stopped");
    (c.stdout_now(), c.stderr_now())
}

/// A host temp dir owned by the test context.
fn host_dir(ctx: &Ctx, tag: &str) -> PathBuf {
    let d = temp_dir(tag);
    ctx.own_dir(d.clone());
    d
}

fn bind(src: &Path, dest: &str, opts: &[&str]) -> Value {
    json!({ "destination": dest, "type": "bind", "source": src, "options": opts })
}

/// The mountinfo line (as printed by the container) whose mount point is `mp`, last one wins.
fn mi_line<'a>(out: &'a str, mp: &str) -> Option<&'a str> {
    out.lines().rfind(|l| l.split_whitespace().nth(4) == Some(mp))
}

/// Per-mount options (field 6) of a mountinfo line.
fn mount_opts(line: &str) -> Vec<&str> {
    line.split_whitespace().nth(5).unwrap_or("").split(',').collect()
}

#[test]
fn bind_ro_and_rw() {
    require_root!();
    let ctx = Ctx::new("bind_ro_rw");
    let ro = host_dir(&ctx, "ro");
    let rw = host_dir(&ctx, "rw");
    fs::write(ro.join("f"), "ro-content\n").unwrap();
    fs::write(rw.join("f"), "rw-content\n").unwrap();
    let (id, mut b) = ctx.bundle(&[]);
    b.push_mount(bind(&ro, "/ro", &["bind", "ro"]));
    b.push_mount(bind(&rw, "/rw", &["bind", "rw"]));
    b.set_sh(
        "cat /ro/f /rw/f; (echo x > /ro/new) 2>&1 && echo RO-WRITE-OK; \
         (echo from-container > /rw/new) 2>&1 && echo RW-WRITE-OK; cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(out.contains("ro-content") && out.contains("rw-content"), "{out}\n{err}");
    assert!(!out.contains("RO-WRITE-OK"), "write to the ro bind worked:\n{out}");
    assert!(out.contains("Read-only file system"), "no EROFS on the ro bind:\n{out}");
    assert!(!ro.join("new").exists(), "file appeared in the ro host dir");
    assert!(
        out.contains("RW-WRITE-OK"),
        "write to the rw bind failed:\n{out}\n{err}"
    );
    assert_eq!(
        fs::read_to_string(rw.join("new")).unwrap_or_default(),
        "from-container\n"
    );
    let l = mi_line(&out, "/ro").unwrap_or_else(|| panic!("no /ro mount:\n{out}"));
    assert_eq!(mount_opts(l)[0], "ro", "{l}");
    let l = mi_line(&out, "/rw").unwrap_or_else(|| panic!("no /rw mount:\n{out}"));
    assert_eq!(mount_opts(l)[0], "rw", "{l}");
}

#[test]
fn bind_file_and_missing_nested_destinations_are_created() {
    require_root!();
    let ctx = Ctx::new("bind_file");
    let d = host_dir(&ctx, "bindsrc");
    fs::write(d.join("single"), "single-file\n").unwrap();
    let sub = d.join("dir");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("inner"), "inner-file\n").unwrap();
    let (id, mut b) = ctx.bundle(&[]);
    b.push_mount(bind(&d.join("single"), "/injected.txt", &["bind", "ro"]));
    b.push_mount(bind(&sub, "/a/b/c", &["rbind", "ro"]));
    b.set_sh(
        "test -f /injected.txt && echo IS-FILE; cat /injected.txt; \
         test -d /a/b/c && echo IS-DIR; cat /a/b/c/inner",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(out.contains("IS-FILE") && out.contains("single-file"), "{out}\n{err}");
    assert!(out.contains("IS-DIR") && out.contains("inner-file"), "{out}\n{err}");
    // The runtime created the mount points in the rootfs: a file and nested dirs.
    let m = fs::symlink_metadata(b.rootfs().join("injected.txt")).expect("mount point file");
    assert!(
        m.file_type().is_file(),
        "/injected.txt mount point is not a file: {m:?}"
    );
    assert!(b.rootfs().join("a/b/c").is_dir());
}

/// A host dir `top` holding `f` and a tmpfs submount `top/sub` holding `marker`.
fn dir_with_submount(ctx: &Ctx) -> (PathBuf, HostMount) {
    let top = host_dir(ctx, "rbind");
    fs::write(top.join("f"), "top\n").unwrap();
    fs::create_dir(top.join("sub")).unwrap();
    let m = HostMount::tmpfs(&top.join("sub"));
    fs::write(top.join("sub/marker"), "submount\n").unwrap();
    fs::set_permissions(top.join("sub"), fs::Permissions::from_mode(0o755)).unwrap();
    (top, m)
}

#[test]
fn rbind_includes_submounts_bind_does_not() {
    require_root!();
    let ctx = Ctx::new("rbind");
    let (top, _m) = dir_with_submount(&ctx);
    let (id, mut b) = ctx.bundle(&[]);
    b.push_mount(bind(&top, "/r", &["rbind", "rw"]));
    b.push_mount(bind(&top, "/b", &["bind", "rw"]));
    b.set_sh(
        "cat /r/f /b/f; cat /r/sub/marker && echo R-SUB-VISIBLE; \
         cat /b/sub/marker && echo B-SUB-VISIBLE; cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(out.contains("R-SUB-VISIBLE"), "rbind lost the submount:\n{out}\n{err}");
    assert!(mi_line(&out, "/r/sub").is_some(), "no /r/sub in mountinfo:\n{out}");
    assert!(
        !out.contains("B-SUB-VISIBLE"),
        "plain bind carried the submount:\n{out}"
    );
    assert!(mi_line(&out, "/b/sub").is_none(), "/b/sub mounted:\n{out}");
}

#[test]
fn rro_makes_submounts_read_only() {
    require_root!();
    // "rro" (recursive read-only through mount_setattr) is supported since runc 1.1.0, so runc
    // 1.1.5 is not skipped.
    let ctx = Ctx::new("rro");
    let (top, _m) = dir_with_submount(&ctx);
    let (id, mut b) = ctx.bundle(&[]);
    b.push_mount(bind(&top, "/r", &["rbind", "rro"]));
    b.set_sh(
        "cat /r/sub/marker; (echo x > /r/new) 2>&1 && echo TOP-WRITE-OK; \
         (echo x > /r/sub/new) 2>&1 && echo SUB-WRITE-OK; cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(out.contains("submount"), "{out}\n{err}");
    assert!(
        !out.contains("TOP-WRITE-OK"),
        "top of the rro mount is writable:\n{out}"
    );
    assert!(
        !out.contains("SUB-WRITE-OK"),
        "submount of the rro mount is writable:\n{out}"
    );
    let l = mi_line(&out, "/r/sub").unwrap_or_else(|| panic!("no /r/sub:\n{out}"));
    assert_eq!(mount_opts(l)[0], "ro", "{l}");
    assert!(!top.join("sub/new").exists());
}

#[test]
fn nosuid_nodev_noexec_options() {
    require_root!();
    let ctx = Ctx::new("nosuid");
    let d = host_dir(&ctx, "nx");
    let (id, mut b) = ctx.bundle(&[]);
    b.push_mount(json!({"destination": "/nx", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec"]}));
    b.push_mount(json!({"destination": "/ex", "type": "tmpfs", "source": "tmpfs", "options": []}));
    b.push_mount(bind(&d, "/bnx", &["rbind", "nosuid", "nodev", "noexec"]));
    b.set_sh(
        "for d in /nx /ex /bnx; do printf '#!/bin/sh\\necho RAN-$1\\n' > $d/s.sh; chmod 755 $d/s.sh; \
         $d/s.sh $d 2>&1; done; cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(
        out.contains("RAN-/ex"),
        "control script on a plain tmpfs did not run:\n{out}\n{err}"
    );
    assert!(!out.contains("RAN-/nx"), "script on noexec tmpfs ran:\n{out}");
    assert!(!out.contains("RAN-/bnx"), "script on noexec bind ran:\n{out}");
    assert!(out.contains("Permission denied"), "{out}");
    for mp in ["/nx", "/bnx"] {
        let l = mi_line(&out, mp).unwrap_or_else(|| panic!("no {mp}:\n{out}"));
        let o = mount_opts(l);
        for f in ["nosuid", "nodev", "noexec"] {
            assert!(o.contains(&f), "{mp} lacks {f}: {l}");
        }
    }
    let l = mi_line(&out, "/ex").unwrap();
    assert!(!mount_opts(l).contains(&"noexec"), "{l}");
}

#[test]
fn tmpfs_size_and_mode() {
    require_root!();
    let ctx = Ctx::new("tmpfs_size");
    let (id, mut b) = ctx.bundle(&[]);
    fs::write(b.rootfs().join("two-mib"), vec![b'z'; 2 << 20]).unwrap();
    b.push_mount(json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["size=1m", "mode=0710"]}));
    b.set_sh(
        "echo mode=$(stat -c %a /t); (cat /two-mib > /t/big) 2>&1 || echo WRITE-FAILED; \
         echo size=$(stat -c %s /t/big); cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(out.contains("mode=710"), "mode not applied:\n{out}\n{err}");
    assert!(
        out.contains("WRITE-FAILED"),
        "writing 2 MiB to a 1 MiB tmpfs worked:\n{out}"
    );
    assert!(
        out.contains("No space left on device"),
        "no ENOSPC writing 2 MiB:\n{out}"
    );
    assert!(out.contains("size=1048576\n"), "{out}");
    let l = mi_line(&out, "/t").unwrap_or_else(|| panic!("no /t:\n{out}"));
    assert_eq!(fs_type(l), "tmpfs", "{l}");
    assert!(super_opts(l).contains(&"size=1024k"), "{l}");
}

#[test]
fn devpts_options() {
    require_root!();
    let ctx = Ctx::new("devpts");
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh("ls -A /dev/pts; stat -c 'ptmx=%a' /dev/pts/ptmx; cat /proc/self/mountinfo");
    let (out, err) = run(&ctx, &b, &id, &[]);
    let l = mi_line(&out, "/dev/pts").unwrap_or_else(|| panic!("no /dev/pts:\n{out}\n{err}"));
    assert_eq!(fs_type(l), "devpts", "{l}");
    let so = super_opts(l);
    for want in ["gid=5", "mode=620", "ptmxmode=666"] {
        assert!(so.contains(&want), "devpts lacks {want}: {l}");
    }
    let o = mount_opts(l);
    assert!(o.contains(&"nosuid") && o.contains(&"noexec"), "{l}");
    // newinstance: a fresh devpts instance has no ptys of the host, only ptmx.
    let names: Vec<&str> = out.lines().take_while(|l| !l.starts_with("ptmx=")).collect();
    assert_eq!(names, ["ptmx"], "/dev/pts is not a new instance:\n{out}");
    assert!(out.contains("ptmx=666"), "{out}");
}

#[test]
fn mqueue_and_read_only_sysfs() {
    require_root!();
    let ctx = Ctx::new("mqueue_sys");
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh("(touch /sys/kernel/moor-it) 2>&1; cat /proc/self/mountinfo");
    let (out, err) = run(&ctx, &b, &id, &[]);
    let l = mi_line(&out, "/dev/mqueue").unwrap_or_else(|| panic!("no /dev/mqueue:\n{out}\n{err}"));
    assert_eq!(fs_type(l), "mqueue", "{l}");
    let l = mi_line(&out, "/sys").unwrap_or_else(|| panic!("no /sys:\n{out}"));
    assert_eq!(fs_type(l), "sysfs", "{l}");
    assert_eq!(mount_opts(l)[0], "ro", "/sys is not read-only: {l}");
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
fn cgroup_mount_read_only_and_namespaced() {
    require_root!();
    let ctx = Ctx::new("cgroup_mnt");
    let (id, mut b) = ctx.bundle(&[]);
    b.set("/linux/resources/pids", json!({"limit": 42}));
    let v2 = !Path::new("/sys/fs/cgroup/pids").exists();
    let pids_max = if v2 {
        "/sys/fs/cgroup/pids.max"
    } else {
        "/sys/fs/cgroup/pids/pids.max"
    };
    let mk = if v2 {
        "/sys/fs/cgroup/moor-it-x"
    } else {
        "/sys/fs/cgroup/pids/moor-it-x"
    };
    b.set_sh(&format!(
        "echo max=$(cat {pids_max}); (mkdir {mk}) 2>&1 || echo MKDIR-FAILED; \
         (echo 1 > {pids_max}) 2>&1 || echo WRITE-FAILED; echo max2=$(cat {pids_max}); \
         cat /proc/self/mountinfo"
    ));
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(
        out.contains("max=42\n"),
        "pids.max of the container's cgroup not shown:\n{out}\n{err}"
    );
    assert!(out.contains("MKDIR-FAILED") && out.contains("WRITE-FAILED"), "{out}");
    assert!(
        out.contains("Read-only file system"),
        "cgroup mount is writable:\n{out}"
    );
    assert!(out.contains("max2=42\n"), "{out}");
    let mp = if v2 { "/sys/fs/cgroup" } else { "/sys/fs/cgroup/pids" };
    let l = mi_line(&out, mp).unwrap_or_else(|| panic!("no {mp}:\n{out}"));
    assert_eq!(mount_opts(l)[0], "ro", "{l}");
    // Only the container's own cgroup: the mount's root is "/" in the cgroup namespace, or the
    // container's cgroup path.
    let root = l.split_whitespace().nth(3).unwrap_or("");
    assert!(root == "/" || root.ends_with(&id), "cgroup mount shows {root}: {l}");
}

#[test]
fn overlay_mount() {
    require_root!();
    let ctx = Ctx::new("overlay");
    let d = host_dir(&ctx, "ovl");
    for s in ["lower", "upper", "work"] {
        fs::create_dir(d.join(s)).unwrap();
    }
    fs::write(d.join("lower/from-lower"), "lower-data\n").unwrap();
    let opt = |s: &str| format!("{s}dir={}", d.join(s).display());
    let (id, mut b) = ctx.bundle(&[]);
    b.push_mount(json!({"destination": "/ov", "type": "overlay", "source": "overlay",
        "options": [opt("lower"), opt("upper"), opt("work")]}));
    b.set_sh("cat /ov/from-lower; echo new-data > /ov/new && echo WROTE; cat /proc/self/mountinfo");
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(out.contains("lower-data"), "lower file not visible:\n{out}\n{err}");
    assert!(out.contains("WROTE"), "{out}\n{err}");
    let l = mi_line(&out, "/ov").unwrap_or_else(|| panic!("no /ov:\n{out}"));
    assert_eq!(fs_type(l), "overlay", "{l}");
    assert_eq!(
        fs::read_to_string(d.join("upper/new")).unwrap_or_default(),
        "new-data\n"
    );
    assert!(!d.join("lower/new").exists());
}

/// The suite runs crun inside `unshare -m --propagation private` (see README), which turns the
/// host's shared mounts private before crun starts: propagation from the host is then not
/// observable, whatever crun does.
fn crun_wrapped() -> bool {
    runtime_is("crun") && std::env::var_os("MOOR_IT_NO_CRUN_WRAP").is_none()
}

#[test]
fn per_mount_propagation() {
    require_root!();
    if crun_wrapped() {
        skip!("crun runs in a private mount namespace here, host propagation is not observable");
    }
    let ctx = Ctx::new("mnt_prop");
    // Sources are shared mounts on the host, so a bind of them would carry a propagation tag
    // unless the runtime applies the requested one.
    let p = host_dir(&ctx, "priv");
    let sl = host_dir(&ctx, "slave");
    let s = host_dir(&ctx, "shared");
    let _mp = HostMount::shared_self_bind(&p);
    let _msl = HostMount::shared_self_bind(&sl);
    let (id, mut b) = ctx.bundle(&[]);
    b.push_mount(bind(&p, "/p", &["rbind", "rprivate"]));
    b.push_mount(bind(&sl, "/sl", &["rbind", "rslave"]));
    b.push_mount(bind(&s, "/s", &["rbind", "rshared"]));
    b.set_sh("cat /proc/self/mountinfo");
    let (out, err) = run(&ctx, &b, &id, &[]);
    let l = mi_line(&out, "/p").unwrap_or_else(|| panic!("no /p:\n{out}\n{err}"));
    let f = optional_fields(l);
    assert!(
        !f.iter().any(|t| t.starts_with("shared:") || t.starts_with("master:")),
        "rprivate mount has propagation tags: {l}"
    );
    let l = mi_line(&out, "/sl").unwrap_or_else(|| panic!("no /sl:\n{out}"));
    let f = optional_fields(l);
    assert!(
        f.iter().any(|t| t.starts_with("master:")) && !f.iter().any(|t| t.starts_with("shared:")),
        "rslave mount is not a (non-shared) slave: {l}"
    );
    let l = mi_line(&out, "/s").unwrap_or_else(|| panic!("no /s:\n{out}"));
    assert!(
        optional_fields(l).iter().any(|t| t.starts_with("shared:")),
        "rshared mount has no shared: tag: {l}"
    );
}

/// Runs a container whose rootfs is a shared bind mount on the host, with
/// `linux.rootfsPropagation` = `prop` (None: not set). Once it runs, the host mounts a tmpfs at
/// `<rootfs>/mnt/late`. Returns (root mountinfo line, whether the late mount reached the container).
fn rootfs_propagation_run(ctx: &Ctx, prop: Option<&str>) -> (String, bool) {
    let (id, mut b) = ctx.bundle(&[]);
    let rootfs = b.rootfs();
    fs::create_dir(rootfs.join("mnt/late")).unwrap();
    let _root_bind = HostMount::shared_self_bind(&rootfs);
    if let Some(p) = prop {
        b.set("/linux/rootfsPropagation", json!(p));
    }
    b.set_sh(
        "awk '$5 == \"/\"' /proc/self/mountinfo; echo READY; i=0; \
         while [ $i -lt 40 ] && ! [ -e /mnt/late/marker ]; do sleep 0.1; i=$((i+1)); done; \
         test -e /mnt/late/marker && echo PROPAGATED; echo END",
    );
    let c = ctx.create(&b, &id, &[]);
    assert!(c.success(), "{prop:?}: create failed: {c}");
    let s = ctx.start(&id);
    assert!(s.success(), "{prop:?}: start failed: {s}\n{}", c.stderr_now());
    moor_integration::poll_until(TIMEOUT, "READY", || c.stdout_now().contains("READY").then_some(()));
    let late = HostMount::tmpfs(&rootfs.join("mnt/late"));
    fs::write(rootfs.join("mnt/late/marker"), "late\n").unwrap();
    ctx.wait_status(&id, "stopped");
    drop(late);
    let out = c.stdout_now();
    let root = mi_line(&out, "/").unwrap_or_else(|| panic!("{prop:?}: no / line:\n{out}\n{}", c.stderr_now()));
    (root.to_string(), out.contains("PROPAGATED"))
}

#[test]
fn rootfs_propagation_private_rslave_and_default() {
    require_root!();
    if crun_wrapped() {
        skip!("crun runs in a private mount namespace here, host propagation is not observable");
    }
    let ctx = Ctx::new("root_prop");
    let (l, got) = rootfs_propagation_run(&ctx, Some("private"));
    assert!(
        optional_fields(&l).is_empty(),
        "rootfsPropagation private: / has tags: {l}"
    );
    assert!(
        !got,
        "rootfsPropagation private: a host mount propagated into the container: {l}"
    );
    // "rslave" (what containerd sets for HostToContainer propagation). runc applies a
    // non-recursive "slave" to the old "/" only, so its rootfs ends up private; not tested.
    let (l, got) = rootfs_propagation_run(&ctx, Some("rslave"));
    assert!(
        optional_fields(&l).iter().any(|t| t.starts_with("master:")),
        "rootfsPropagation rslave: / has no master: tag: {l}"
    );
    assert!(got, "rootfsPropagation rslave: a host mount did not propagate: {l}");
    // Unset: runc makes the root rslave; moor, a drop-in for runc, must do the same.
    let (l, got) = rootfs_propagation_run(&ctx, None);
    assert!(
        optional_fields(&l).iter().any(|t| t.starts_with("master:")) && got,
        "default rootfsPropagation is not slave (propagated: {got}): {l}"
    );
}

#[test]
fn root_readonly() {
    require_root!();
    let ctx = Ctx::new("root_ro");
    for ro in [true, false] {
        let (id, mut b) = ctx.bundle(&[]);
        b.set("/root/readonly", json!(ro));
        b.set_sh("(echo x > /written) 2>&1 && echo ROOT-WRITE-OK; touch /tmp/x 2>&1; cat /proc/self/mountinfo");
        let (out, err) = run(&ctx, &b, &id, &[]);
        let l = mi_line(&out, "/").unwrap_or_else(|| panic!("no / :\n{out}\n{err}"));
        if ro {
            assert!(!out.contains("ROOT-WRITE-OK"), "readonly root is writable:\n{out}");
            assert!(out.contains("Read-only file system"), "{out}");
            assert_eq!(mount_opts(l)[0], "ro", "{l}");
            assert!(!b.rootfs().join("written").exists());
        } else {
            assert!(
                out.contains("ROOT-WRITE-OK"),
                "writable root refused a write:\n{out}\n{err}"
            );
            assert!(b.rootfs().join("written").exists(), "write did not land in the rootfs");
        }
    }
}

#[test]
fn no_pivot_still_uses_rootfs() {
    require_root!();
    let ctx = Ctx::new("no_pivot");
    let (id, b) = ctx.bundle(&["ls", "/"]);
    fs::write(b.rootfs().join("ROOTFS-MARKER"), "").unwrap();
    let (out, err) = run(&ctx, &b, &id, &["--no-pivot"]);
    let names: Vec<&str> = out.lines().collect();
    assert!(names.contains(&"ROOTFS-MARKER"), "/ is not the rootfs:\n{out}\n{err}");
    assert!(names.contains(&"bin") && !names.contains(&"work"), "{out}");
}

#[test]
fn linux_devices_char_and_fifo() {
    require_root!();
    let ctx = Ctx::new("devices");
    let (id, mut b) = ctx.bundle(&[]);
    b.set(
        "/linux/devices",
        json!([
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 9, "fileMode": 0o600,
             "uid": 1000, "gid": 1000},
            {"path": "/dev/myfifo", "type": "p", "fileMode": 0o640}
        ]),
    );
    b.at("/linux/resources/devices")
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"}));
    // The workload runs as the device's owner (it has no CAP_DAC_OVERRIDE), so reading it also
    // checks the ownership.
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set_sh(
        "stat -c 'dev=%F %a %u %g %t:%T' /dev/mydev; stat -c 'fifo=%F %a' /dev/myfifo; \
         echo read=$(head -c 16 /dev/mydev | wc -c)",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(
        out.contains("dev=character special file 600 1000 1000 1:9"),
        "/dev/mydev wrong:\n{out}\n{err}"
    );
    assert!(out.contains("fifo=fifo 640"), "/dev/myfifo wrong:\n{out}\n{err}");
    assert!(out.contains("read=16"), "/dev/mydev does not work:\n{out}\n{err}");
}

/// Removes a host device node this test made, on drop.
struct HostNode(PathBuf);

impl Drop for HostNode {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn linux_devices_in_user_namespace_are_bind_mounted() {
    require_root!();
    let ctx = Ctx::new("devices_userns");
    // In a user namespace mknod is not allowed, so the runtime bind-mounts the host's node at the
    // same path. A node with a unique name (urandom's 1:9, mode 0666) is made on the host for it.
    let path = format!("/dev/moor-it-dev-{}", std::process::id());
    let dev = nix::sys::stat::makedev(1, 9);
    nix::sys::stat::mknod(
        path.as_str(),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        dev,
    )
    .unwrap_or_else(|e| panic!("mknod {path}: {e}"));
    let _node = HostNode(PathBuf::from(&path));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let (id, mut b) = ctx.bundle(&[]);
    b.map_user_namespace(100000, 65536);
    b.set(
        "/linux/devices",
        json!([{"path": path, "type": "c", "major": 1, "minor": 9, "fileMode": 0o666}]),
    );
    b.at("/linux/resources/devices")
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"}));
    b.set_sh(&format!(
        "stat -c 'dev=%F %t:%T' {path}; echo read=$(head -c 16 {path} | wc -c); cat /proc/self/mountinfo"
    ));
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(
        out.contains("dev=character special file 1:9"),
        "{path} wrong:\n{out}\n{err}"
    );
    assert!(out.contains("read=16"), "{path} does not work:\n{out}\n{err}");
    assert!(mi_line(&out, &path).is_some(), "{path} is not a bind mount:\n{out}");
}

#[test]
fn default_devices() {
    require_root!();
    let ctx = Ctx::new("default_devs");
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh(
        "for d in null zero full random urandom tty; do stat -c \"$d=%F %t:%T\" /dev/$d; done; \
         for l in ptmx fd stdin stdout stderr; do echo \"$l->$(readlink /dev/$l)\"; done; \
         cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    for (d, mm) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let want = format!("{d}=character special file {mm}");
        assert!(out.lines().any(|l| l == want), "want {want:?}:\n{out}\n{err}");
    }
    for want in [
        "ptmx->pts/ptmx",
        "fd->/proc/self/fd",
        "stdin->/proc/self/fd/0",
        "stdout->/proc/self/fd/1",
        "stderr->/proc/self/fd/2",
    ] {
        assert!(out.lines().any(|l| l == want), "want {want:?}:\n{out}");
    }
    let l = mi_line(&out, "/dev/shm").unwrap_or_else(|| panic!("no /dev/shm:\n{out}"));
    assert_eq!(fs_type(l), "tmpfs", "{l}");
}

#[test]
fn dev_console_is_the_pty() {
    require_root!();
    let ctx = Ctx::new("dev_console");
    let recv = ConsoleReceiver::new(ctx.work_dir());
    let (id, mut b) = ctx.bundle(&[]);
    b.set("/process/terminal", json!(true));
    b.set_sh("echo console=$(stat -c %F-%t:%T /dev/console); grep ' /dev/console ' /proc/self/mountinfo; echo END");
    let sock = recv.path.display().to_string();
    let c = ctx.create(&b, &id, &["--console-socket", &sock]);
    assert!(c.success(), "create failed: {c}");
    let master = recv.recv(TIMEOUT).unwrap_or_else(|e| panic!("{e}: {c}"));
    let ptn = pty_number(&master).expect("console fd is not a pty master");
    let s = ctx.start(&id);
    assert!(s.success(), "start failed: {s}");
    let out = read_until(&master, TIMEOUT, |s| s.contains("END"));
    assert!(
        out.contains(&format!("console=character special file-88:{ptn:x}")),
        "/dev/console is not pty {ptn}:\n{out}"
    );
    assert!(
        out.contains(" /dev/console "),
        "/dev/console is not a bind mount:\n{out}"
    );
    ctx.wait_status(&id, "stopped");
}

#[test]
fn idmapped_bind_mount() {
    require_root!();
    // runc 1.1.5 has no idmapped mounts (mount uidMappings/gidMappings came in runc 1.2).
    if runtime_is("runc") {
        skip!("runc 1.1.5 does not support idmapped mounts");
    }
    let ctx = Ctx::new("idmap");
    let d = host_dir(&ctx, "idmap");
    fs::write(d.join("owned"), "idmapped\n").unwrap();
    nix::unistd::chown(&d.join("owned"), Some(1000.into()), Some(1000.into())).unwrap();
    let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let (id, mut b) = ctx.bundle(&[]);
    // The rootfs belongs to host root, which the container's root (host 100000) cannot write:
    // the mount points are made here.
    for m in ["idm", "plain"] {
        fs::create_dir(b.rootfs().join(m)).unwrap();
    }
    b.set_namespace("user", None);
    b.set("/linux/uidMappings", maps.clone());
    b.set("/linux/gidMappings", maps.clone());
    // The mount's idmapping mirrors the container's: on-disk uid 1000 shows as 1000 inside.
    b.push_mount(
        json!({"destination": "/idm", "type": "bind", "source": d, "options": ["rbind"],
        "uidMappings": maps, "gidMappings": maps}),
    );
    // Without the idmapping the same dir shows uid 1000 as the overflow id (65534).
    b.push_mount(bind(&d, "/plain", &["rbind"]));
    b.set_sh(
        "stat -c 'idm=%u:%g' /idm/owned; stat -c 'plain=%u:%g' /plain/owned; cat /idm/owned; cat /proc/self/mountinfo",
    );
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(
        out.contains("plain=65534:65534"),
        "unexpected plain owner:\n{out}\n{err}"
    );
    assert!(
        out.contains("idm=1000:1000"),
        "idmapped mount does not map the owner:\n{out}\n{err}"
    );
    let l = mi_line(&out, "/idm").unwrap_or_else(|| panic!("no /idm:\n{out}"));
    assert!(mount_opts(l).contains(&"idmapped"), "mount is not idmapped: {l}");
}

#[test]
fn sysfs_in_user_namespace_without_network_namespace() {
    require_root!();
    // The kernel refuses a new sysfs to a user namespace that does not own a network
    // namespace; the runtime must still give a read-only /sys (runc binds the host's).
    if runtime_is("runc") {
        // runc 1.1.5 fails with EPERM here; its rootless spec binds /sys instead of mounting it.
        skip!("runc 1.1.5 has no sysfs fallback for a user namespace without a network namespace");
    }
    let ctx = Ctx::new("sysfs_userns");
    let (id, mut b) = ctx.bundle(&[]);
    b.remove_namespace("network");
    b.map_user_namespace(100000, 65536);
    b.set_sh("ls /sys/kernel >/dev/null && echo SYS-OK; (touch /sys/kernel/moor-it) 2>&1; cat /proc/self/mountinfo");
    let (out, err) = run(&ctx, &b, &id, &[]);
    assert!(out.contains("SYS-OK"), "/sys is not usable:\n{out}\n{err}");
    let l = mi_line(&out, "/sys").unwrap_or_else(|| panic!("no /sys:\n{out}\n{err}"));
    assert_eq!(mount_opts(l)[0], "ro", "/sys is not read-only: {l}");
    assert!(
        out.contains("Read-only file system") || out.contains("Permission denied"),
        "{out}"
    );
}
