//! Rootless containers: a real unprivileged user (created here if missing, with /etc/subuid and
//! /etc/subgid ranges) runs the runtime, as with runc: `spec --rootless`, the whole lifecycle,
//! state under `$XDG_RUNTIME_DIR`, cgroups skipped or refused, ranges mapped through
//! newuidmap/newgidmap, /sys bound where sysfs cannot be mounted, `--rootless`, a delegated v2
//! cgroup. The runtime binary is copied to a world-readable temp dir for that user. The user
//! account is left behind; every container, dir and cgroup is removed.

use moor_integration::bundle::temp_dir;
use moor_integration::{poll_until, require_root, runtime_is, runtime_path, skip, Bundle, Ctx, Output, TIMEOUT};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const USER: &str = "moor-rootless-test";

/// The unprivileged test user and the id ranges it owns.
struct User {
    uid: u32,
    gid: u32,
    home: String,
    subuid: u32,
    subgid: u32,
}

fn passwd_entry(name: &str) -> Option<(u32, u32, String)> {
    fs::read_to_string("/etc/passwd").ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && f[0] == name)
            .then(|| (f[2].parse().ok(), f[3].parse().ok(), f[5].to_string()))
            .and_then(|(u, g, h)| Some((u?, g?, h)))
    })
}

/// The start of the user's range of at least 65536 ids in `file`; when it has none, a free one
/// is added with usermod.
fn ensure_range(file: &str, flag: &str) -> u32 {
    let parse = || -> Vec<(String, u32, u32)> {
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((f.first()?.to_string(), f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
            })
            .collect()
    };
    if let Some((_, start, _)) = parse().into_iter().find(|(n, _, c)| n == USER && *c >= 65536) {
        return start;
    }
    let start = parse().iter().map(|(_, s, c)| s + c).max().unwrap_or(0).max(100_000);
    let st = Command::new("usermod")
        .args([flag, &format!("{start}-{}", start + 65535), USER])
        .status()
        .expect("run usermod");
    assert!(st.success(), "usermod {flag} for {USER} failed");
    start
}

fn user() -> &'static User {
    static U: OnceLock<User> = OnceLock::new();
    U.get_or_init(|| {
        if passwd_entry(USER).is_none() {
            let out = Command::new("useradd")
                .args(["-m", USER])
                .output()
                .expect("run useradd");
            assert!(
                out.status.success() || passwd_entry(USER).is_some(),
                "useradd -m {USER}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (uid, gid, home) = passwd_entry(USER).expect("test user in /etc/passwd");
        assert_ne!(uid, 0, "{USER} must not be root");
        User {
            uid,
            gid,
            home,
            subuid: ensure_range("/etc/subuid", "--add-subuids"),
            subgid: ensure_range("/etc/subgid", "--add-subgids"),
        }
    })
}

fn chown_r(p: &Path, u: &User) {
    let st = Command::new("chown")
        .args(["-R", &format!("{}:{}", u.uid, u.gid)])
        .arg(p)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown -R {}", p.display());
}

/// The name the runtime keeps its per-user state under, in `$XDG_RUNTIME_DIR`.
fn runtime_name() -> &'static str {
    if runtime_is("runc") {
        "runc"
    } else {
        "moor"
    }
}

/// A test context whose runtime commands run as the unprivileged user.
struct Rootless {
    ctx: Ctx,
    user: &'static User,
    /// The user's `$XDG_RUNTIME_DIR` (private, owned by the user).
    xdg: PathBuf,
    path_env: String,
}

impl Rootless {
    fn new(name: &str) -> Rootless {
        let user = user();
        // A copy the user can execute (the build tree may not be reachable for it).
        let bin = temp_dir("rlbin");
        let copy = bin.join(runtime_path().file_name().unwrap());
        fs::copy(runtime_path(), &copy).expect("copy the runtime binary");
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        let ctx = Ctx::with_runtime(name, copy);
        ctx.own_dir(bin);
        std::os::unix::fs::chown(&ctx.root, Some(user.uid), Some(user.gid)).unwrap();
        let xdg = ctx.work_dir().join("xdg");
        fs::create_dir(&xdg).unwrap();
        std::os::unix::fs::chown(&xdg, Some(user.uid), Some(user.gid)).unwrap();
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        Rootless {
            ctx,
            user,
            xdg,
            path_env: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        }
    }

    /// Makes `cmd` run as the user, with a login-like environment.
    fn as_user(&self, cmd: &mut Command) {
        cmd.uid(self.user.uid).gid(self.user.gid);
        self.user_env(cmd);
    }

    fn user_env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", &self.user.home)
            .env("USER", USER)
            .env("LOGNAME", USER)
            .env("XDG_RUNTIME_DIR", &self.xdg);
    }

    /// A runtime subcommand as the user, with the context's `--root`.
    fn run(&self, args: &[&str]) -> Output {
        self.ctx.run_with(args, |c| self.as_user(c))
    }

    /// A bundle owned by the user, made rootless the way `spec --rootless` does: a user
    /// namespace mapping the user's uid and gid to 0, no `gid=5` on /dev/pts (gid 5 is not
    /// mapped). cgroupsPath stays `/moor-it/<id>`.
    fn bundle(&self, args: &[&str]) -> (String, Bundle) {
        let (id, mut b) = self.ctx.bundle(args);
        b.set_namespace("user", None);
        b.set(
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": self.user.uid, "size": 1}]),
        );
        b.set(
            "/linux/gidMappings",
            json!([{"containerID": 0, "hostID": self.user.gid, "size": 1}]),
        );
        for m in b.at("/mounts").as_array_mut().unwrap() {
            if m["destination"] == "/dev/pts" {
                m["options"] = json!(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]);
            }
        }
        if runtime_is("runc") {
            // runc 1.1 skips a cgroup it may not create only when cgroupsPath is empty (then it
            // is under the caller's own cgroup, root-owned here: the user's mkdir fails with
            // EACCES and changes nothing); an explicit path it cannot create is fatal. moor
            // skips either (see the README's Rootless section).
            b.set("/linux/cgroupsPath", json!(""));
        }
        b.save();
        chown_r(&b.dir, self.user);
        (id, b)
    }

    fn create(&self, b: &Bundle, id: &str) -> Output {
        self.ctx.create_with(b, id, &[], |c| self.as_user(c))
    }

    /// `run` in the foreground, as the user.
    fn run_container(&self, b: &Bundle, id: &str) -> Output {
        b.save();
        let dir = b.dir.display().to_string();
        self.run(&["run", "--bundle", &dir, id])
    }

    fn status(&self, id: &str) -> Option<String> {
        let o = self.run(&["state", id]);
        if !o.success() {
            return None;
        }
        let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state is not JSON ({e}): {o}"));
        v["status"].as_str().map(String::from)
    }

    #[track_caller]
    fn wait_status(&self, id: &str, want: &str) {
        poll_until(TIMEOUT, &format!("{id} to be {want}"), || {
            (self.status(id).as_deref() == Some(want)).then_some(())
        });
    }

    /// A runtime command as the user without `--root` (so the runtime picks its default),
    /// stdout and stderr to files; waits for it.
    fn run_default_root(&self, args: &[&str]) -> (bool, String, String) {
        let n = fs::read_dir(self.ctx.work_dir()).map(|d| d.count()).unwrap_or(0);
        let out = self.ctx.work_dir().join(format!("noroot-{n}-{}.out", args[0]));
        let err = out.with_extension("err");
        let mut cmd = Command::new(&self.ctx.runtime);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        self.as_user(&mut cmd);
        let mut child = cmd.spawn().expect("spawn the runtime");
        let deadline = Instant::now() + moor_integration::command_timeout();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} did not finish");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        (status.success(), read(&out), read(&err))
    }
}

fn host_uid_of(pid: i32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    moor_integration::host::status_field(&status, "Uid")
        .and_then(|v| v.split_whitespace().next().and_then(|u| u.parse().ok()))
        .unwrap_or_else(|| panic!("no Uid in /proc/{pid}/status"))
}

fn map_lines(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| l.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .filter(|v: &Vec<u64>| v.len() == 3)
        .collect()
}

fn pure_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// `spec --rootless` as the user maps the caller's uid and gid to 0 in a new user namespace
/// (and drops the network namespace, whose sysfs the user could not mount); `run` of that spec
/// prints uid 0 inside, and the container's uid_map shows the caller's host uid.
#[test]
fn spec_rootless_maps_the_callers_ids_and_runs() {
    require_root!();
    let rl = Rootless::new("rl_spec");
    let (id, mut b) = rl.bundle(&["true"]);
    fs::remove_file(b.dir.join("config.json")).unwrap();
    let dir = b.dir.display().to_string();
    rl.run(&["spec", "--rootless", "--bundle", &dir]).ok();
    let spec: Value = serde_json::from_slice(&fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    let (uid, gid) = (rl.user.uid, rl.user.gid);
    assert_eq!(
        spec["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert_eq!(
        spec["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": gid, "size": 1}])
    );
    let ns: Vec<&str> = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "namespaces: {ns:?}");

    b.config = spec;
    b.set("/process/terminal", json!(false));
    b.set_sh("id; cat /proc/self/uid_map /proc/self/gid_map");
    let path = if runtime_is("runc") {
        String::new()
    } else {
        format!("/moor-it/{id}")
    };
    b.set("/linux/cgroupsPath", json!(path));
    let o = rl.run_container(&b, &id).ok();
    assert!(o.stdout.contains("uid=0(root) gid=0(root)"), "{o}");
    let maps = map_lines(&o.stdout);
    assert_eq!(
        maps,
        vec![vec![0, u64::from(uid), 1], vec![0, u64::from(gid), 1]],
        "{o}"
    );
}

/// create, state, list, start, exec, kill and delete all work for the unprivileged user; the
/// container's processes run as the user's uid on the host.
#[test]
fn lifecycle_as_unprivileged_user() {
    require_root!();
    let rl = Rootless::new("rl_lifecycle");
    let (id, b) = rl.bundle(&["sleep", "1000"]);
    rl.create(&b, &id).ok();
    assert_eq!(rl.status(&id).as_deref(), Some("created"));
    let st: Value = serde_json::from_str(&rl.run(&["state", &id]).ok().stdout).unwrap();
    let pid = i32::try_from(st["pid"].as_i64().unwrap()).unwrap();
    assert!(pid > 0, "{st}");
    assert_eq!(host_uid_of(pid), rl.user.uid, "init's uid on the host");
    let list = rl.run(&["list", "--format", "json"]).ok();
    let items: Value = serde_json::from_str(&list.stdout).unwrap();
    let mine = items.as_array().unwrap().iter().find(|c| c["id"] == id.as_str());
    assert!(mine.is_some_and(|c| c["owner"] == USER), "list: {}", list.stdout);

    rl.run(&["start", &id]).ok();
    rl.wait_status(&id, "running");
    let e = rl.run(&["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]).ok();
    assert_eq!(e.stdout.lines().next(), Some("0"), "{e}");
    assert_eq!(map_lines(&e.stdout), vec![vec![0, u64::from(rl.user.uid), 1]], "{e}");

    rl.run(&["kill", &id, "KILL"]).ok();
    rl.wait_status(&id, "stopped");
    rl.run(&["delete", &id]).ok();
    assert!(rl.status(&id).is_none(), "state works after delete");
    let list = rl.run(&["list", "-q"]).ok();
    assert!(!list.stdout.lines().any(|l| l == id), "{list}");
}

/// Without --root a rootless runtime keeps its state in `$XDG_RUNTIME_DIR/<runtime>` (runc:
/// `$XDG_RUNTIME_DIR/runc`), a private directory of the user's.
#[test]
fn state_under_xdg_runtime_dir_without_root_flag() {
    require_root!();
    let rl = Rootless::new("rl_xdg");
    let (id, b) = rl.bundle(&["sleep", "1000"]);
    let root = rl.xdg.join(runtime_name());
    // Cleanup as root, also when an assertion fails.
    struct Delete(PathBuf, PathBuf, String);
    impl Drop for Delete {
        fn drop(&mut self) {
            let _ = Command::new(&self.0)
                .arg("--root")
                .arg(&self.1)
                .args(["delete", "--force", &self.2])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let _cleanup = Delete(rl.ctx.runtime.clone(), root.clone(), id.clone());
    let dir = b.dir.display().to_string();
    let (ok, _, err) = rl.run_default_root(&["create", "--bundle", &dir, &id]);
    assert!(ok, "create without --root failed: {err}");
    let state_dir = root.join(&id);
    assert!(state_dir.is_dir(), "no state in {}: {err}", state_dir.display());
    let meta = fs::metadata(&root).unwrap();
    assert_eq!(meta.uid(), rl.user.uid, "{} is not the user's", root.display());
    assert_eq!(
        meta.mode() & 0o077,
        0,
        "{} is open to others: {:o}",
        root.display(),
        meta.mode()
    );
    let (ok, out, err) = rl.run_default_root(&["list", "-q"]);
    assert!(ok && out.lines().any(|l| l == id), "list without --root: {out}{err}");
    let (ok, _, err) = rl.run_default_root(&["delete", "--force", &id]);
    assert!(ok, "delete without --root: {err}");
    assert!(!state_dir.exists(), "state left in {}", state_dir.display());
}

/// Rootless, resource limits cannot be applied where the user may not write the cgroup
/// hierarchy: create fails, names the field, and leaves nothing.
#[test]
fn rootless_limits_without_a_writable_cgroup_fail_naming_the_field() {
    require_root!();
    let rl = Rootless::new("rl_limits");
    let (id, mut b) = rl.bundle(&["true"]);
    b.set("/linux/resources/memory", json!({"limit": 104857600}));
    let o = rl.create(&b, &id).fails();
    if runtime_is("runc") {
        // runc 1.1 names no JSON field: "cannot set memory limit: container could not join or
        // create cgroup" (v1), "rootless needs no limits + no cgrouppath when no permission is
        // granted for cgroups" (v2).
        assert!(
            o.stderr.contains("memory") || o.stderr.contains("needs no limits"),
            "{o}"
        );
    } else {
        assert!(o.stderr.contains("linux.resources.memory.limit"), "{o}");
        assert!(o.stderr.contains("cannot write to the cgroup hierarchy"), "{o}");
    }
    rl.ctx.assert_no_residue(&id, &b);
}

/// Rootless without limits (device rules do not count: every default config has them), a
/// cgroup the user cannot write is skipped with an accurate warning and the container runs.
#[test]
fn rootless_without_limits_warns_and_runs() {
    require_root!();
    let rl = Rootless::new("rl_nolimits");
    let (id, b) = rl.bundle(&["echo", "container-ran"]);
    assert!(b.config["linux"]["resources"]["devices"].is_array());
    let o = rl.run_container(&b, &id).ok();
    assert!(o.stdout.contains("container-ran"), "{o}");
    if runtime_is("runc") {
        eprintln!("SKIP (warning text): runc 1.1 skips the cgroup silently");
        return;
    }
    assert!(o.stderr.contains("cannot write to the cgroup hierarchy"), "{o}");
    assert!(!o.stderr.contains("no usable cgroup"), "misleading warning: {o}");
}

/// Mappings beyond the user's own ids (its /etc/subuid and /etc/subgid ranges) go through
/// newuidmap/newgidmap: a container user 1000 is host id range-start + 999.
#[test]
fn ranges_are_mapped_with_newuidmap_and_newgidmap() {
    require_root!();
    if !Path::new("/usr/bin/newuidmap").exists() || !Path::new("/usr/bin/newgidmap").exists() {
        skip!("newuidmap/newgidmap are not installed (Debian package uidmap)");
    }
    let rl = Rootless::new("rl_ranges");
    let u = rl.user;
    let (id, mut b) = rl.bundle(&["true"]);
    let out = b.bind_out_dir("/out");
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": u.uid, "size": 1}, {"containerID": 1, "hostID": u.subuid, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": u.gid, "size": 1}, {"containerID": 1, "hostID": u.subgid, "size": 65536}]),
    );
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set_sh("id; cat /proc/self/uid_map /proc/self/gid_map; touch /out/made-by-1000");
    let o = rl.run_container(&b, &id).ok();
    assert!(o.stdout.contains("uid=1000(user) gid=1000(user)"), "{o}");
    let maps = map_lines(&o.stdout);
    let want = |own: u32, sub: u32| vec![vec![0, u64::from(own), 1], vec![1, u64::from(sub), 65536]];
    assert_eq!(maps[..2], want(u.uid, u.subuid)[..], "{o}");
    assert_eq!(maps[2..], want(u.gid, u.subgid)[..], "{o}");
    let meta = fs::metadata(out.join("made-by-1000")).expect("file made in the container");
    assert_eq!((meta.uid(), meta.gid()), (u.subuid + 999, u.subgid + 999));
}

/// Ranges without newuidmap on PATH cannot be written by the user: create fails, says so
/// (naming the mapping field) and leaves nothing.
#[test]
fn ranges_without_newuidmap_fail_and_leave_nothing() {
    require_root!();
    let mut rl = Rootless::new("rl_notool");
    rl.path_env = "/nonexistent".into();
    let u = rl.user;
    let (id, mut b) = rl.bundle(&["true"]);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": u.uid, "size": 1}, {"containerID": 1, "hostID": u.subuid, "size": 65536}]),
    );
    let o = rl.create(&b, &id).fails();
    if runtime_is("runc") {
        // runc 1.1: "nsexec-0[...]: mapping tool not present".
        assert!(o.stderr.contains("mapping tool"), "{o}");
    } else {
        assert!(
            o.stderr.contains("linux.uidMappings") && o.stderr.contains("newuidmap"),
            "{o}"
        );
    }
    rl.ctx.assert_no_residue(&id, &b);
}

/// In a user namespace without its own network namespace the kernel refuses a new sysfs: the
/// host's /sys is bound read-only instead, and the cgroup mount still works over it.
#[test]
fn sysfs_that_cannot_be_mounted_is_bound_read_only() {
    require_root!();
    if runtime_is("runc") {
        skip!("runc 1.1.5 fails with EPERM mounting sysfs here (its spec --rootless binds /sys instead)");
    }
    let rl = Rootless::new("rl_sysfs");
    let (id, mut b) = rl.bundle(&["true"]);
    b.remove_namespace("network");
    b.set_sh(
        "grep ' /sys ' /proc/self/mountinfo; ls /sys/kernel >/dev/null && echo listed; touch /sys/x || echo ro; \
         ls /sys/fs/cgroup | grep -q . && echo cgroupfs",
    );
    let o = rl.run_container(&b, &id).ok();
    let line = o.stdout.lines().next().unwrap_or_default();
    assert!(
        line.split_whitespace()
            .nth(5)
            .is_some_and(|f| f.split(',').any(|x| x == "ro")),
        "{o}"
    );
    assert!(o.stdout.contains("listed") && o.stdout.contains("\nro"), "{o}");
    // /sys/fs/cgroup still mounts over the bound /sys (on v2 the kernel refuses a second
    // cgroup2 mount there).
    assert!(o.stdout.contains("cgroupfs"), "{o}");
}

/// `--rootless false` makes cgroup permission errors fatal again; `--rootless true` as the
/// user behaves as `auto`.
#[test]
fn rootless_flag_decides_cgroup_handling() {
    require_root!();
    let rl = Rootless::new("rl_flag");
    let (id, b) = rl.bundle(&["true"]);
    *rl.ctx.global.borrow_mut() = vec!["--rootless".into(), "false".into()];
    let o = rl.create(&b, &id).fails();
    assert!(o.stderr.to_lowercase().contains("permission denied"), "{o}");
    rl.ctx.assert_no_residue(&id, &b);
    *rl.ctx.global.borrow_mut() = vec!["--rootless".into(), "true".into()];
    let (id2, b2) = rl.bundle(&["echo", "ran"]);
    let o = rl.run_container(&b2, &id2).ok();
    assert!(o.stdout.contains("ran"), "{o}");
}

/// CVE-2019-5736 for a rootless user: the runtime binary belongs to the user (who could write
/// it), yet the container's init must not reach a writable inode of it. An unprivileged user
/// cannot make moor's read-only bind mount, so this goes through the sealed memfd.
#[test]
fn rootless_runtime_binary_is_not_writable_from_the_container() {
    require_root!();
    let rl = Rootless::new("rl_exe");
    let copy = rl.ctx.runtime.clone();
    std::os::unix::fs::chown(&copy, Some(rl.user.uid), Some(rl.user.gid)).unwrap();
    let before = fs::read(&copy).unwrap();
    let (id, b) = rl.bundle(&["sleep", "1000"]);
    rl.create(&b, &id).ok();
    let st: Value = serde_json::from_str(&rl.run(&["state", &id]).ok().stdout).unwrap();
    let pid = i32::try_from(st["pid"].as_i64().unwrap()).unwrap();
    // Inside, container root is the binary's owner: try to write it through /proc/1/exe.
    let e = rl.run(&["exec", &id, "sh", "-c", "echo PWNED >> /proc/1/exe && echo wrote"]);
    assert!(!e.stdout.contains("wrote"), "wrote /proc/1/exe from inside: {e}");
    let handle = fs::File::open(format!("/proc/{pid}/exe")).ok();
    rl.run(&["start", &id]).ok();
    rl.wait_status(&id, "running");
    poll_until(TIMEOUT, "init exec'd", || {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .filter(|c| c.trim() == "sleep")
    });
    if let Some(h) = handle {
        use std::os::fd::AsRawFd;
        let reopened = fs::OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{}", h.as_raw_fd()));
        if let Ok(mut f) = reopened {
            use std::io::Write;
            assert!(
                f.write_all(b"\n#PWNED\n").is_err(),
                "the init's executable was writable: it is the user's on-disk binary"
            );
        }
    }
    rl.run(&["delete", "--force", &id]).ok();
    assert!(fs::read(&copy).unwrap() == before, "the runtime binary was modified");
}

/// On pure cgroup v2, a user with a delegated cgroup (what systemd's `Delegate=yes` gives
/// user@UID.service: the directory and its cgroup.procs, cgroup.subtree_control and
/// cgroup.threads chowned to the user) gets a real cgroup below it, with limits.
#[test]
fn delegated_cgroup_v2_is_used() {
    require_root!();
    if !pure_cgroup_v2() {
        skip!("needs a pure cgroup v2 host (run integration/run-v2-in-vm.sh)");
    }
    let rl = Rootless::new("rl_delegated");
    let u = rl.user;
    let deleg = PathBuf::from(format!("/sys/fs/cgroup/moor-it-deleg-{}", std::process::id()));
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for d in [self.0.join("runner"), self.0.clone()] {
                if let Ok(p) = fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in p.lines().filter_map(|l| l.parse().ok()) {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                    }
                }
            }
            let _ = poll_for_rmdir(&self.0);
        }
    }
    fs::create_dir(&deleg).unwrap();
    let _cleanup = Cleanup(deleg.clone());
    fs::write(deleg.join("cgroup.subtree_control"), "+pids").unwrap();
    for f in ["", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
        std::os::unix::fs::chown(deleg.join(f), Some(u.uid), Some(u.gid)).unwrap();
    }
    // The runtime runs in a leaf of the delegated cgroup, as in a user's systemd scope.
    let runner = deleg.join("runner");
    fs::create_dir(&runner).unwrap();
    for f in ["", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
        std::os::unix::fs::chown(runner.join(f), Some(u.uid), Some(u.gid)).unwrap();
    }
    let (id, mut b) = rl.bundle(&["sleep", "1000"]);
    let rel = format!("/{}/{id}", deleg.file_name().unwrap().to_string_lossy());
    b.set("/linux/cgroupsPath", json!(rel));
    b.set("/linux/resources/pids", json!({"limit": 42}));
    let procs = std::ffi::CString::new(runner.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap();
    let (uid, gid) = (u.uid, u.gid);
    let o = rl.ctx.create_with(&b, &id, &[], |c| {
        rl.user_env(c);
        // Still root: join the runner cgroup (which needs write access up to the common
        // ancestor), then become the user. Only async-signal-safe calls between fork and exec.
        // SAFETY: open/write/close/setgroups/setgid/setuid on prepared data, no allocation.
        unsafe {
            c.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert!(o.success(), "{o}");
    let cg = deleg.join(&id);
    let st: Value = serde_json::from_str(&rl.run(&["state", &id]).ok().stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let members = fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
    assert!(
        members.lines().any(|l| l == pid.to_string()),
        "init not in {}: {members:?}",
        cg.display()
    );
    assert_eq!(fs::read_to_string(cg.join("pids.max")).unwrap().trim(), "42");
    rl.run(&["delete", "--force", &id]).ok();
    assert!(!cg.exists(), "{} left after delete", cg.display());
}

fn poll_for_rmdir(d: &Path) -> Option<()> {
    moor_integration::poll_for(Duration::from_secs(5), || {
        for sub in fs::read_dir(d).into_iter().flatten().flatten() {
            if sub.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_dir(sub.path());
            }
        }
        let _ = fs::remove_dir(d);
        (!d.exists()).then_some(())
    })
}
