//! `exec` into a running container: args, `--process`, `-e`, `--cwd`, `--user`,
//! `--additional-gids`, exit codes, `--detach` + `--pid-file`, `--tty` + `--console-socket`,
//! `--cap`, `--no-new-privs`, `--preserve-fds`, cgroup and namespace membership, stopped and
//! paused containers.

use moor_integration::bundle::Bundle;
use moor_integration::console::{pty_number, read_until};
use moor_integration::host::{cap_bit, cap_mask, ns_link, parse_cap_hex, pid_alive, status_field};
use moor_integration::runner::pass_fd;
use moor_integration::{host, poll_for, require_root, ConsoleReceiver, Ctx, Output, TIMEOUT};
use serde_json::json;
use std::collections::BTreeSet;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// A running container whose init is `sleep 1000`, with `tweak` applied to its bundle.
fn running(ctx: &Ctx, tweak: impl FnOnce(&mut Bundle)) -> (String, Bundle) {
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    tweak(&mut b);
    ctx.create_start(&b, &id);
    ctx.wait_status(&id, "running");
    (id, b)
}

/// `exec [opts...] ID cmd...`
fn exec(ctx: &Ctx, id: &str, opts: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["exec"];
    args.extend_from_slice(opts);
    args.push(id);
    args.extend_from_slice(cmd);
    ctx.run(&args)
}

/// Reads a pid file, which must hold bare decimal digits (containerd parses it with Atoi).
#[track_caller]
fn read_pid_file(p: &Path) -> i32 {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("pid file {}: {e}", p.display()));
    assert!(
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()),
        "pid file must hold bare digits, got {s:?}"
    );
    s.parse().unwrap()
}

#[test]
fn args_are_passed_verbatim() {
    require_root!();
    let ctx = Ctx::new("exec_args");
    let (id, _b) = running(&ctx, |_| {});
    let o = exec(
        &ctx,
        &id,
        &[],
        &["sh", "-c", "printf '[%s]' \"$0\" \"$@\"", "zero", "a", "b c", "", "-e"],
    )
    .ok();
    assert_eq!(o.stdout, "[zero][a][b c][][-e]");
    // PATH lookup with the container's PATH.
    let o = exec(&ctx, &id, &[], &["echo", "via", "PATH"]).ok();
    assert_eq!(o.stdout, "via PATH\n");
}

#[test]
fn process_file_is_used() {
    require_root!();
    let ctx = Ctx::new("exec_process");
    let (id, _b) = running(&ctx, |_| {});
    let caps = json!(["CAP_KILL"]);
    let process = json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000, "additionalGids": [10] },
        "args": ["sh", "-c", "echo \"foo=$FOO\"; pwd; id -u; id -g; id -G; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status"],
        "env": ["PATH=/bin:/usr/bin", "FOO=from-process-file"],
        "cwd": "/tmp",
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
        "noNewPrivileges": true
    });
    let pf = ctx.work_dir().join("process.json");
    fs::write(&pf, serde_json::to_vec_pretty(&process).unwrap()).unwrap();
    let o = exec(&ctx, &id, &["--process", &pf.display().to_string()], &[]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines.len() >= 5, "{o}");
    assert_eq!(lines[0], "foo=from-process-file", "env from the process file: {o}");
    assert_eq!(lines[1], "/tmp", "cwd from the process file: {o}");
    assert_eq!(lines[2], "1000", "uid from the process file: {o}");
    assert_eq!(lines[3], "1000", "gid from the process file: {o}");
    let groups: BTreeSet<&str> = lines[4].split_whitespace().collect();
    assert_eq!(groups, BTreeSet::from(["1000", "10"]), "additionalGids: {o}");
    // The process file's capabilities, not the config's (which add AUDIT_WRITE and
    // NET_BIND_SERVICE): the bounding set is exactly CAP_KILL. uid 1000 without ambient caps
    // has an empty effective set after execve.
    let bnd = status_field(&o.stdout, "CapBnd").unwrap_or_else(|| panic!("{o}"));
    assert_eq!(parse_cap_hex(&bnd), cap_mask(&["CAP_KILL"]), "CapBnd: {o}");
    let eff = status_field(&o.stdout, "CapEff").unwrap_or_else(|| panic!("{o}"));
    assert_eq!(parse_cap_hex(&eff), 0, "CapEff: {o}");
    assert_eq!(status_field(&o.stdout, "NoNewPrivs").as_deref(), Some("1"), "{o}");
}

#[test]
fn env_adds_and_overrides() {
    require_root!();
    let ctx = Ctx::new("exec_env");
    let (id, _b) = running(&ctx, |_| {});
    let o = exec(&ctx, &id, &["-e", "FOO=bar baz", "-e", "TERM=dumb"], &["env"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines.contains(&"FOO=bar baz"), "-e FOO not set: {o}");
    let terms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("TERM=")).collect();
    assert_eq!(
        terms,
        [&"TERM=dumb"],
        "-e TERM must replace the config's TERM=xterm: {o}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("PATH=/usr/local/sbin")),
        "the config's PATH is missing: {o}"
    );
    // Without -e the config's env is used.
    let o = exec(&ctx, &id, &[], &["env"]).ok();
    assert!(o.stdout.lines().any(|l| l == "TERM=xterm"), "{o}");
    assert!(!o.stdout.contains("FOO="), "{o}");
}

#[test]
fn cwd_option() {
    require_root!();
    let ctx = Ctx::new("exec_cwd");
    let (id, _b) = running(&ctx, |b| {
        b.set("/process/cwd", json!("/tmp"));
    });
    assert_eq!(exec(&ctx, &id, &[], &["pwd"]).ok().stdout, "/tmp\n");
    assert_eq!(exec(&ctx, &id, &["--cwd", "/etc"], &["pwd"]).ok().stdout, "/etc\n");
}

#[test]
fn user_and_additional_gids() {
    require_root!();
    let ctx = Ctx::new("exec_user");
    let (id, _b) = running(&ctx, |_| {});
    let o = exec(
        &ctx,
        &id,
        &[
            "--user",
            "1000:1000",
            "--additional-gids",
            "10",
            "--additional-gids",
            "100",
        ],
        &[
            "sh",
            "-c",
            "id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        ],
    )
    .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{o}");
    let uids = status_field(&o.stdout, "Uid").unwrap_or_default();
    assert_eq!(uids.split_whitespace().collect::<Vec<_>>(), ["1000"; 4], "{o}");
    let gids = status_field(&o.stdout, "Gid").unwrap_or_default();
    assert_eq!(gids.split_whitespace().collect::<Vec<_>>(), ["1000"; 4], "{o}");
    let groups: BTreeSet<String> = status_field(&o.stdout, "Groups")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(groups, BTreeSet::from(["10".into(), "100".into()]), "{o}");
    // Without --user the config's user (root) is used.
    assert_eq!(exec(&ctx, &id, &[], &["id", "-u"]).ok().stdout, "0\n");
}

#[test]
fn exit_code_is_relayed() {
    require_root!();
    let ctx = Ctx::new("exec_exit");
    let (id, _b) = running(&ctx, |_| {});
    let o = exec(&ctx, &id, &[], &["sh", "-c", "exit 7"]);
    assert_eq!(o.code(), Some(7), "{o}");
    let o = exec(&ctx, &id, &[], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(o.code(), Some(128 + 9), "killed by SIGKILL: {o}");
    let o = exec(&ctx, &id, &[], &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.code(), Some(128 + 15), "killed by SIGTERM: {o}");
    let o = exec(&ctx, &id, &[], &["true"]);
    assert_eq!(o.code(), Some(0), "{o}");
    // The container keeps running.
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
}

#[test]
fn detach_with_pid_file_in_container_namespaces() {
    require_root!();
    let ctx = Ctx::new("exec_detach");
    let (id, b) = running(&ctx, |_| {});
    let init = ctx.pid(&id);
    let pf = ctx.work_dir().join("exec.pid");
    let o = exec(
        &ctx,
        &id,
        &["--detach", "--pid-file", &pf.display().to_string()],
        &["sleep", "300"],
    )
    .ok();
    let pid = read_pid_file(&pf);
    assert!(pid_alive(pid), "exec'd pid {pid} is not running: {o}");
    assert_ne!(pid, init);
    // The runtime may return just before the final execve: wait for it.
    let mut cmdline = Vec::new();
    let execed = poll_for(TIMEOUT, || {
        cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        (cmdline == b"sleep\x00300\x00").then_some(())
    });
    assert!(
        execed.is_some(),
        "pid file names the wrong process: cmdline {:?}",
        String::from_utf8_lossy(&cmdline)
    );
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        let mine = ns_link(pid, ns);
        assert!(mine.is_some(), "no {ns} ns link for {pid}");
        assert_eq!(
            mine,
            ns_link(init, ns),
            "exec'd process is not in the container's {ns} namespace"
        );
    }
    // The container's init is pid 1 in that namespace, the exec'd process is not.
    let nspid = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| status_field(&s, "NSpid"))
        .unwrap_or_default();
    let inner: Vec<&str> = nspid.split_whitespace().collect();
    assert_eq!(
        inner.len(),
        2,
        "NSpid {nspid:?}: not one level below the host pid namespace"
    );
    assert_ne!(inner[1], "1");
    // The container's root: the exec'd process sees the bundle's rootfs.
    let root = fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(
        fs::metadata(format!("/proc/{pid}/root/bin/busybox"))
            .map(|m| m.len())
            .ok(),
        fs::metadata(b.rootfs().join("bin/busybox")).map(|m| m.len()).ok(),
        "exec'd root {} is not the container's rootfs",
        root.display()
    );
}

#[test]
fn exec_joins_the_container_cgroup() {
    require_root!();
    let ctx = Ctx::new("exec_cgroup");
    let (id, b) = running(&ctx, |_| {});
    let init = ctx.pid(&id);
    let pf = ctx.work_dir().join("exec.pid");
    exec(
        &ctx,
        &id,
        &["--detach", "--pid-file", &pf.display().to_string()],
        &["sleep", "300"],
    )
    .ok();
    let pid = read_pid_file(&pf);
    let mine = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let theirs = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert_eq!(mine, theirs, "exec'd process {pid} is not in the init's cgroups");
    assert!(
        mine.contains(&b.cgroups_path()),
        "cgroups do not mention {}:\n{mine}",
        b.cgroups_path()
    );
    let in_cg = host::cgroup_pids(&b.cgroups_path());
    assert!(
        in_cg.contains(&pid),
        "{pid} not in cgroup.procs of {}: {in_cg:?}",
        b.cgroups_path()
    );
    let ps = ctx.run(&["ps", "--format", "json", &id]).ok();
    let listed: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap_or_else(|e| panic!("ps json ({e}): {ps}"));
    assert!(listed.contains(&i64::from(pid)), "ps does not list {pid}: {ps}");
    assert!(listed.contains(&i64::from(init)), "ps does not list init {init}: {ps}");
    // A foreground exec too: inside, its cgroup equals the init's (cgroup namespace view).
    let o = exec(
        &ctx,
        &id,
        &[],
        &["sh", "-c", "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup"],
    )
    .ok();
    let (a, c) = o.stdout.split_once("---\n").unwrap_or_else(|| panic!("{o}"));
    assert_eq!(a, c, "foreground exec is in another cgroup than init: {o}");
}

#[test]
fn tty_with_console_socket() {
    require_root!();
    let ctx = Ctx::new("exec_tty");
    let (id, _b) = running(&ctx, |_| {});
    let recv = ConsoleReceiver::new(ctx.work_dir());
    let pf = ctx.work_dir().join("exec.pid");
    let sock = recv.path.display().to_string();
    let pfs = pf.display().to_string();
    let o = exec(
        &ctx,
        &id,
        &["--tty", "--detach", "--console-socket", &sock, "--pid-file", &pfs],
        &[
            "sh",
            "-c",
            "echo tty=$(tty); [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; read l; echo got=$l; echo END",
        ],
    )
    .ok();
    let master = recv.recv(TIMEOUT).unwrap_or_else(|e| panic!("{e}: {o}"));
    let ptn = pty_number(&master).expect("received fd is not a pty master (TIOCGPTN failed)");
    let pid = read_pid_file(&pf);
    let msg = b"typed-in\n";
    // SAFETY: writing a local buffer to a valid fd.
    let n = unsafe { libc::write(master.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    assert_eq!(n, isize::try_from(msg.len()).unwrap());
    let out = read_until(&master, TIMEOUT, |s| s.contains("END"));
    assert!(
        out.contains(&format!("tty=/dev/pts/{ptn}")),
        "stdin is not pty {ptn}:\n{out}"
    );
    assert!(out.contains("all-ttys"), "stdio are not all the tty:\n{out}");
    assert!(out.contains("got=typed-in"), "input did not reach the process:\n{out}");
    let gone = poll_for(TIMEOUT, || (!pid_alive(pid)).then_some(()));
    assert!(gone.is_some(), "exec'd tty process {pid} did not exit");
}

#[test]
fn cap_is_added_but_not_inheritable() {
    require_root!();
    let ctx = Ctx::new("exec_cap");
    let (id, _b) = running(&ctx, |_| {});
    let admin = 1u64 << cap_bit("CAP_SYS_ADMIN");
    let field = |o: &Output, k: &str| parse_cap_hex(&status_field(&o.stdout, k).unwrap_or_else(|| panic!("{k}: {o}")));
    let plain = exec(&ctx, &id, &[], &["cat", "/proc/self/status"]).ok();
    assert_eq!(
        field(&plain, "CapEff") & admin,
        0,
        "CAP_SYS_ADMIN without --cap: {plain}"
    );
    let o = exec(&ctx, &id, &["--cap", "CAP_SYS_ADMIN"], &["cat", "/proc/self/status"]).ok();
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_ne!(field(&o, k) & admin, 0, "--cap CAP_SYS_ADMIN missing from {k}: {o}");
    }
    // CVE-2022-29162: --cap must not add to the inheritable (or ambient) set.
    for k in ["CapInh", "CapAmb"] {
        assert_eq!(field(&o, k) & admin, 0, "--cap CAP_SYS_ADMIN leaked into {k}: {o}");
    }
    // The config's caps are still there.
    assert_ne!(field(&o, "CapEff") & (1u64 << cap_bit("CAP_KILL")), 0, "{o}");
}

#[test]
fn no_new_privs_option() {
    require_root!();
    let ctx = Ctx::new("exec_nnp");
    let (id, _b) = running(&ctx, |b| {
        b.set("/process/noNewPrivileges", json!(false));
    });
    let nnp = |opts: &[&str]| {
        let o = exec(&ctx, &id, opts, &["cat", "/proc/self/status"]).ok();
        status_field(&o.stdout, "NoNewPrivs").unwrap_or_else(|| panic!("{o}"))
    };
    assert_eq!(nnp(&[]), "0", "config says noNewPrivileges false");
    assert_eq!(nnp(&["--no-new-privs"]), "1", "--no-new-privs not applied");
}

#[test]
fn preserve_fds_passes_fd_3() {
    require_root!();
    let ctx = Ctx::new("exec_preserve");
    let (id, _b) = running(&ctx, |_| {});
    let data = ctx.work_dir().join("fd3-data");
    fs::write(&data, "preserved-fd-content\n").unwrap();
    let script = "cat <&3 2>&1; echo rc=$?";
    let with = |opts: &[&str]| {
        let f = fs::File::open(&data).unwrap();
        let fd = f.as_raw_fd();
        let mut args = vec!["exec"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[&id, "sh", "-c", script]);
        let o = ctx.run_with(&args, |c| pass_fd(c, fd, 3));
        drop(f);
        o.ok()
    };
    let o = with(&["--preserve-fds", "1"]);
    assert_eq!(
        o.stdout, "preserved-fd-content\nrc=0\n",
        "fd 3 not passed with --preserve-fds 1"
    );
    let o = with(&[]);
    assert!(
        !o.stdout.contains("preserved-fd-content") && !o.stdout.contains("rc=0"),
        "fd 3 leaked into the container without --preserve-fds: {o}"
    );
}

#[test]
fn exec_into_stopped_container_fails() {
    require_root!();
    let ctx = Ctx::new("exec_stopped");
    let (id, b) = ctx.bundle(&["true"]);
    ctx.run_to_stop(&b, &id);
    let o = exec(&ctx, &id, &[], &["echo", "should-not-run"]).fails();
    assert!(!o.stdout.contains("should-not-run"), "{o}");
    assert!(
        o.stderr.contains("stopped") || o.stderr.contains("not running"),
        "the error should say the container is stopped: {o}"
    );
    assert_eq!(ctx.status(&id).as_deref(), Some("stopped"));
}

#[test]
fn exec_into_paused_container_needs_ignore_paused() {
    require_root!();
    let ctx = Ctx::new("exec_paused");
    let (id, _b) = running(&ctx, |_| {});
    ctx.run(&["pause", &id]).ok();
    ctx.wait_status(&id, "paused");
    let o = exec(&ctx, &id, &[], &["echo", "should-not-run"]).fails();
    assert!(!o.stdout.contains("should-not-run"), "{o}");
    assert!(
        o.stderr.contains("paused"),
        "the error should say the container is paused: {o}"
    );
    assert_eq!(ctx.status(&id).as_deref(), Some("paused"));

    // With --ignore-paused the runtime goes ahead; the process joins the frozen cgroup, so it can
    // only finish once the container is resumed.
    let (child, out) = ctx.spawn_with(&["exec", "--ignore-paused", &id, "echo", "ran-after-resume"], |_| {});
    let mut child = child;
    let early = poll_for(Duration::from_secs(2), || child.try_wait().ok().flatten());
    if let Some(st) = early {
        assert!(
            st.success(),
            "exec --ignore-paused refused a paused container: {}",
            out.stderr_now()
        );
    }
    ctx.run(&["resume", &id]).ok();
    ctx.wait_status(&id, "running");
    let o = ctx.wait_output(child, out, TIMEOUT);
    assert!(o.success(), "exec --ignore-paused failed: {o}");
    assert_eq!(o.stdout, "ran-after-resume\n", "{o}");
}

#[test]
fn exec_sees_container_hostname_and_mounts() {
    require_root!();
    let ctx = Ctx::new("exec_view");
    let mut shared = None;
    let (id, _b) = running(&ctx, |b| {
        b.set("/hostname", json!("exec-view-host"));
        shared = Some(b.bind_out_dir("/shared"));
    });
    let shared = shared.unwrap();
    fs::write(shared.join("marker"), "from-host\n").unwrap();
    let o = exec(
        &ctx,
        &id,
        &[],
        &[
            "sh",
            "-c",
            "hostname; cat /shared/marker; grep -c ' /shared ' /proc/self/mountinfo; head -1 /etc/passwd",
        ],
    )
    .ok();
    assert_eq!(
        o.stdout, "exec-view-host\nfrom-host\n1\nroot:x:0:0:root:/root:/bin/sh\n",
        "exec'd process does not see the container's uts/mount namespace: {o}"
    );
}
