//! Fd hygiene, /proc/self/exe protection, masked paths, and "a failed create leaves nothing".

use moor_integration::runner::pass_fd;
use moor_integration::{bundle::temp_dir, require_root, runtime_is, runtime_path, runtime_version, skip, Ctx};
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Parses `ls -l /proc/self/fd` into (fd, target) pairs.
fn fd_links(out: &str) -> Vec<(i32, String)> {
    out.lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.to_string()))
        })
        .collect()
}

/// Fds other than 0-2 and ls's own directory fd.
fn extra_fds(out: &str) -> Vec<(i32, String)> {
    fd_links(out)
        .into_iter()
        .filter(|(fd, t)| *fd > 2 && !(t.starts_with("/proc/") && t.ends_with("/fd")))
        .collect()
}

#[test]
fn only_stdio_fds_inside_container() {
    require_root!();
    let ctx = Ctx::new("fds");
    let (id, b) = ctx.bundle(&["ls", "-l", "/proc/self/fd"]);
    let out = ctx.run_to_stop(&b, &id);
    assert!(fd_links(&out).len() >= 3, "unexpected ls output: {out}");
    assert_eq!(extra_fds(&out), vec![], "fds leaked into the container:\n{out}");
}

#[test]
fn caller_leaked_fd_not_visible_inside() {
    require_root!();
    let ctx = Ctx::new("fd_leak");
    let secret = ctx.work_dir().join("caller-secret");
    fs::write(&secret, "secret").unwrap();
    let f = fs::File::open(&secret).unwrap();
    let dir = fs::File::open(ctx.work_dir()).unwrap();
    let (id, b) = ctx.bundle(&["ls", "-l", "/proc/self/fd"]);
    // fd 7 and 9 are inherited without CLOEXEC by the runtime (as from a careless caller).
    let c = ctx
        .create_with(&b, &id, &[], |c| {
            pass_fd(c, f.as_raw_fd(), 7);
            pass_fd(c, dir.as_raw_fd(), 9);
        })
        .ok();
    ctx.run_with(&["start", &id], |c| {
        pass_fd(c, f.as_raw_fd(), 7);
        pass_fd(c, dir.as_raw_fd(), 9);
    })
    .ok();
    ctx.wait_status(&id, "stopped");
    let out = c.stdout_now();
    assert!(!out.contains("caller-secret"), "caller's fd visible inside:\n{out}");
    assert_eq!(extra_fds(&out), vec![], "fds leaked into the container:\n{out}");
}

#[test]
fn cwd_through_leaked_fd_cannot_escape_root() {
    require_root!();
    // CVE-2024-21626 class: a cwd of /proc/self/fd/N naming a host directory fd must not give the
    // process a working directory outside the container's root.
    if runtime_is("runc") && runtime_version() < (1, 1, 12) {
        skip!("runc < 1.1.12 is vulnerable to CVE-2024-21626");
    }
    let ctx = Ctx::new("cwd_escape");
    let hostdir = temp_dir("hostdir");
    ctx.own_dir(hostdir.clone());
    fs::write(hostdir.join("HOST-MARKER"), "x").unwrap();
    let d = fs::File::open(&hostdir).unwrap();
    for n in 3..12 {
        let (id, mut b) = ctx.bundle(&["sh", "-c", "ls; pwd"]);
        b.set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
        let c = ctx.create_with(&b, &id, &[], |c| {
            for t in 3..12 {
                pass_fd(c, d.as_raw_fd(), t);
            }
        });
        if !c.success() {
            continue;
        }
        if !ctx.start(&id).success() {
            continue;
        }
        ctx.wait_status(&id, "stopped");
        let out = c.stdout_now();
        assert!(
            !out.contains("HOST-MARKER"),
            "cwd escaped to the host via fd {n}:\n{out}"
        );
    }
}

#[test]
fn preserve_fds_passes_fd_3() {
    require_root!();
    let ctx = Ctx::new("preserve");
    let data = ctx.work_dir().join("preserved");
    fs::write(&data, "preserved-content\n").unwrap();
    let f = fs::File::open(&data).unwrap();
    let (id, b) = ctx.bundle(&["sh", "-c", "cat <&3; ls -l /proc/self/fd"]);
    let c = ctx
        .create_with(&b, &id, &["--preserve-fds", "1"], |c| pass_fd(c, f.as_raw_fd(), 3))
        .ok();
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    let out = c.stdout_now();
    assert!(
        out.starts_with("preserved-content\n"),
        "fd 3 not passed/readable.\nstdout:\n{out}\nstderr:\n{}",
        c.stderr_now()
    );
    // Nothing beyond the preserved fd (and ls's own dir fd).
    let extra: Vec<_> = extra_fds(&out).into_iter().filter(|(fd, _)| *fd != 3).collect();
    assert_eq!(extra, vec![], "{out}");
}

fn sha(p: &PathBuf) -> Vec<u8> {
    fs::read(p).unwrap()
}

#[test]
fn container_cannot_reach_writable_runtime_binary() {
    require_root!();
    // CVE-2019-5736: run a private copy of the runtime so damage (if any) is contained, then try
    // to write the runtime's executable from inside the container while its init (the runtime)
    // is pid 1 in the created state.
    let dir = temp_dir("rtcopy");
    // Removed on drop, also when the test panics (after the Ctx below has cleaned up).
    struct RmDir(PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _rm = RmDir(dir.clone());
    let copy = dir.join(runtime_path().file_name().unwrap());
    fs::copy(runtime_path(), &copy).unwrap();
    let before = sha(&copy);
    {
        let ctx = Ctx::with_runtime("exe_protect", copy.clone());
        let (id, b) = ctx.bundle(&["sleep", "1000"]);
        ctx.create(&b, &id, &[]).ok();
        let pid = ctx.pid(&id);
        // Like the exploit: hold an O_PATH handle on the init's /proc/<pid>/exe, let the init
        // exec the workload (so the binary is no longer busy), then reopen the handle for writing.
        let handle = nix::fcntl::open(
            format!("/proc/{pid}/exe").as_str(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .expect("open /proc/<pid>/exe O_PATH");
        // From inside (exec) try to write /proc/1/exe while the init still runs (informative).
        let e = ctx.run(&["exec", &id, "sh", "-c", "echo PWNED >> /proc/1/exe && echo wrote"]);
        assert!(!e.stdout.contains("wrote"), "wrote /proc/1/exe from inside: {e}");
        ctx.start(&id).ok();
        ctx.wait_status(&id, "running");
        moor_integration::poll_until(moor_integration::TIMEOUT, "init exec'd", || {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .filter(|c| c.trim() == "sleep")
        });
        let reopen = nix::fcntl::open(
            format!("/proc/self/fd/{handle}").as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_APPEND | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        );
        let _ = nix::unistd::close(handle);
        if let Ok(fd) = reopen {
            // Reopening is harmless when what it reaches is not the runtime's file (a sealed
            // copy, as moor and runc >= 1.1.12 use): writing must then fail or miss the binary.
            use std::os::unix::fs::MetadataExt;
            let st = nix::sys::stat::fstat(fd).expect("fstat reopened exe");
            let meta = fs::metadata(&copy).unwrap();
            let same_inode = st.st_dev == meta.dev() && st.st_ino == meta.ino();
            // SAFETY: fd was opened just above and is closed right after this write.
            let wrote = nix::unistd::write(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, b"\n#PWNED\n").is_ok();
            let _ = nix::unistd::close(fd);
            // Reaching the inode is harmless when the view is read-only (EROFS) or a sealed
            // copy; what must never succeed is the write.
            eprintln!("reopened the init's exe for writing: same inode as the binary: {same_inode}");
            assert!(
                !wrote,
                "the container init's executable could be written through /proc/PID/exe: \
                 it is the runtime's writable on-disk binary (CVE-2019-5736)"
            );
        }
        // A workload that execs /proc/self/exe (the runtime, if unprotected) must not change it.
        let (id2, b2) = ctx.bundle(&["/proc/self/exe", "--version"]);
        if ctx.create(&b2, &id2, &[]).success() {
            ctx.start(&id2);
        }
        ctx.delete_force(&id).ok();
        ctx.delete_force(&id2);
    }
    let after = sha(&copy);
    assert!(
        before == after,
        "the runtime binary was modified from inside the container"
    );
}

#[test]
fn masked_and_readonly_paths() {
    require_root!();
    let ctx = Ctx::new("masked");
    let (id, b) = ctx.bundle(&[
        "sh",
        "-c",
        "echo timer=$(cat /proc/timer_list | wc -c); echo keys=$(cat /proc/keys | wc -c); \
         echo fw=$(ls /sys/firmware | wc -l); echo acpi=$(ls /proc/acpi | wc -l); \
         echo 1 > /proc/sys/kernel/domainname && echo sys-writable; echo end",
    ]);
    let out = ctx.run_to_stop(&b, &id);
    // Both files are non-empty on this host (checked by hand); masked they read empty.
    assert!(out.contains("timer=0\n"), "{out}");
    assert!(out.contains("keys=0\n"), "{out}");
    assert!(out.contains("fw=0\n"), "/sys/firmware not masked: {out}");
    assert!(out.contains("acpi=0\n"), "/proc/acpi not masked: {out}");
    assert!(!out.contains("sys-writable"), "/proc/sys is writable:\n{out}");
    assert!(out.contains("end"), "{out}");
}

#[test]
fn proc_symlink_in_rootfs_is_refused() {
    require_root!();
    // CVE-2023-27561/28642: a rootfs whose /proc is a symlink must not get procfs mounted
    // through it.
    let ctx = Ctx::new("proc_symlink");
    let (id, b) = ctx.bundle(&["true"]);
    let victim = temp_dir("victim");
    ctx.own_dir(victim.clone());
    fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink(&victim, b.rootfs().join("proc")).unwrap();
    let o = ctx.create(&b, &id, &[]);
    assert!(!o.success(), "create with /proc a symlink must fail: {o}");
    assert!(
        moor_integration::host::mounts_mentioning(victim.to_str().unwrap()).is_empty(),
        "mounted onto the symlink target"
    );
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn bad_rootfs_path_fails_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("bad_rootfs");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/root/path", json!("no-such-rootfs-dir"));
    let o = ctx.create(&b, &id, &[]).fails();
    assert!(o.stderr.contains("no-such-rootfs-dir"), "{o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn broken_json_fails_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("bad_json");
    let (id, b) = ctx.bundle(&["true"]);
    let bundle = b.path().display().to_string();
    fs::write(
        b.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": {",
    )
    .unwrap();
    let o = ctx.run(&["create", "--bundle", &bundle, &id]).fails();
    assert!(!o.stderr.is_empty(), "{o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn missing_config_fails_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("no_config");
    let (id, b) = ctx.bundle(&["true"]);
    let bundle = b.path().display().to_string();
    fs::remove_file(b.path().join("config.json")).unwrap();
    let o = ctx.run(&["create", "--bundle", &bundle, &id]).fails();
    assert!(o.stderr.contains("config.json"), "{o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn unknown_capability_in_effective_leaves_nothing() {
    require_root!();
    if runtime_is("runc") || runtime_is("crun") {
        skip!("runc 1.1 and crun 1.8 ignore unknown capabilities (runc with a warning)");
    }
    let ctx = Ctx::new("bad_cap");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/process/capabilities/effective", json!(["CAP_NOT_A_CAP"]));
    let o = ctx.create(&b, &id, &[]).fails();
    assert!(o.stderr.contains("CAP_NOT_A_CAP"), "{o}");
    ctx.assert_no_residue(&id, &b);
}
