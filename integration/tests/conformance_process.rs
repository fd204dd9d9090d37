//! The process runc starts, started the same way: old-style seccomp profiles that deny newer
//! syscalls with EPERM, the working directory entered before the user switch, stdio and the
//! pty given to the process user, errors after "created" reported by `start`, hook
//! environments, `exec -p /dev/fd/N`, `--preserve-fds` bounds, and out-of-range user ids.

use moor_integration::bundle::Bundle;
use moor_integration::console::read_until;
use moor_integration::runner::pass_fd;
use moor_integration::{require_root, runtime_is, skip, ConsoleReceiver, Ctx, Output, TIMEOUT};
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// The allow list of an old Docker profile: the x86_64 syscalls before statx (332), so no
/// clone3, openat2, faccessat2, close_range, pidfd_* or statx.
const CLASSIC_SYSCALLS: &str = "\
    accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown clock_adjtime \
    clock_getres clock_gettime clock_nanosleep close connect copy_file_range creat dup dup2 dup3 \
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_wait epoll_wait_old eventfd \
    eventfd2 execve execveat exit exit_group faccessat fadvise64 fallocate fanotify_mark fchdir fchmod \
    fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr \
    fstat fstatfs fsync ftruncate futex futimesat getcpu getcwd getdents getdents64 getegid geteuid \
    getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom \
    getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname getsockopt \
    get_thread_area gettid gettimeofday getuid getxattr inotify_add_watch inotify_init inotify_init1 \
    inotify_rm_watch io_cancel ioctl io_destroy io_getevents ioprio_get ioprio_set io_setup io_submit \
    kill lchown lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat \
    madvise membarrier memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap \
    mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl msgget \
    msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat open openat \
    pause pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2 \
    prlimit64 pselect6 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recvfrom \
    recvmmsg recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir \
    rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait \
    rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
    sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr \
    sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop sendfile \
    sendmmsg sendmsg sendto setfsgid setfsuid setgid setgroups setitimer setpgid setpriority setregid \
    setresgid setresuid setreuid setrlimit set_robust_list setsid setsockopt set_thread_area \
    set_tid_address setuid setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 \
    socketpair splice stat statfs symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time \
    timer_create timer_delete timer_getoverrun timer_gettime timer_settime timerfd_create \
    timerfd_gettime timerfd_settime times tkill truncate umask uname unlink unlinkat utime utimensat \
    utimes vfork vmsplice wait4 waitid write writev arch_prctl";

/// An old-style profile: ERRNO (EPERM) by default, the classic allow list, clone without
/// namespace flags (as Docker's), and landlock_restrict_self (446) allowed so that no "newer
/// than anything named" ENOSYS fallback applies: clone3, openat2, faccessat2, pidfd_open and
/// close_range all get EPERM.
fn classic_profile() -> Value {
    let mut names: Vec<&str> = CLASSIC_SYSCALLS.split_whitespace().collect();
    names.push("landlock_restrict_self");
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            { "names": names, "action": "SCMP_ACT_ALLOW" },
            { "names": ["clone"], "action": "SCMP_ACT_ALLOW",
              "args": [{ "index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ" }] }
        ]
    })
}

/// One combination for the classic-profile tests.
struct Combo {
    no_new_privs: bool,
    uid: u32,
    hook: bool,
}

fn combos() -> Vec<Combo> {
    let mut v = Vec::new();
    for no_new_privs in [true, false] {
        for uid in [0, 1000] {
            for hook in [false, true] {
                v.push(Combo {
                    no_new_privs,
                    uid,
                    hook,
                });
            }
        }
    }
    v
}

impl Combo {
    fn name(&self) -> String {
        format!(
            "noNewPrivileges={} uid={} startContainer hook={}",
            self.no_new_privs, self.uid, self.hook
        )
    }

    /// The bundle: the classic profile, and a workload printing its uid, cwd and whether the
    /// startContainer hook ran (the hook leaves /tmp/hook-ran in the container).
    fn apply(&self, b: &mut Bundle) {
        b.set("/linux/seccomp", classic_profile());
        b.set("/process/noNewPrivileges", json!(self.no_new_privs));
        b.set("/process/user", json!({ "uid": self.uid, "gid": self.uid }));
        b.set("/process/cwd", json!("/tmp"));
        if self.hook {
            b.set(
                "/hooks/startContainer",
                json!([{ "path": "/bin/sh", "args": ["sh", "-c", "echo yes > /tmp/hook-ran"] }]),
            );
        }
        b.set_sh("echo \"uid=$(id -u) cwd=$(pwd) hook=$(cat /tmp/hook-ran 2>/dev/null || echo no) END\"");
    }

    fn expected(&self) -> String {
        format!(
            "uid={} cwd=/tmp hook={} END",
            self.uid,
            if self.hook { "yes" } else { "no" }
        )
    }
}

#[test]
fn classic_errno_profile_starts_the_workload_without_terminal() {
    require_root!();
    let ctx = Ctx::new("classic_noterm");
    let mut failures = Vec::new();
    for combo in combos() {
        let (id, mut b) = ctx.bundle(&[]);
        combo.apply(&mut b);
        let o = ctx.run_container(&b, &id, &[]);
        if !o.success() || !o.stdout.contains(&combo.expected()) {
            failures.push(format!("{}: expected {:?}\n{o}", combo.name(), combo.expected()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn classic_errno_profile_starts_the_workload_with_terminal() {
    require_root!();
    let ctx = Ctx::new("classic_term");
    let mut failures = Vec::new();
    for (n, combo) in combos().into_iter().enumerate() {
        let dir = ctx.work_dir().join(format!("console{n}"));
        fs::create_dir(&dir).unwrap();
        let recv = ConsoleReceiver::new(&dir);
        let (id, mut b) = ctx.bundle(&[]);
        combo.apply(&mut b);
        b.set("/process/terminal", json!(true));
        let sock = recv.path.display().to_string();
        let c = ctx.create(&b, &id, &["--console-socket", &sock]);
        if !c.success() {
            failures.push(format!("{}: create failed\n{c}", combo.name()));
            continue;
        }
        let master = match recv.recv(TIMEOUT) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {e}", combo.name()));
                continue;
            }
        };
        let s = ctx.start(&id);
        let out = read_until(&master, Duration::from_secs(10), |s| s.contains("END"));
        if !s.success() || !out.contains(&combo.expected()) {
            failures.push(format!(
                "{}: expected {:?} on the pty, got {out:?}\nstart: {s}\ncreate: {}",
                combo.name(),
                combo.expected(),
                c.stderr_now()
            ));
        }
        ctx.delete_force(&id);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn classic_errno_profile_allows_exec() {
    require_root!();
    let ctx = Ctx::new("classic_exec");
    let mut failures = Vec::new();
    for no_new_privs in [true, false] {
        let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
        b.set("/linux/seccomp", classic_profile());
        b.set("/process/noNewPrivileges", json!(no_new_privs));
        ctx.create(&b, &id, &[]).ok();
        ctx.start(&id).ok();
        for user in ["0:0", "1000:1000"] {
            let o = ctx.run(&[
                "exec",
                "-u",
                user,
                "--cwd",
                "/tmp",
                &id,
                "sh",
                "-c",
                "echo uid=$(id -u) cwd=$(pwd)",
            ]);
            let uid = user.split(':').next().unwrap_or_default();
            let want = format!("uid={uid} cwd=/tmp");
            if !o.success() || !o.stdout.contains(&want) {
                failures.push(format!(
                    "noNewPrivileges={no_new_privs} user {user}: expected {want:?}\n{o}"
                ));
            }
        }
        ctx.delete_force(&id);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The error text a runtime reported: its stderr, or the log when it logs to a file.
fn said(o: &Output) -> String {
    format!("{}{}", o.stdout, o.stderr)
}

#[test]
fn start_reports_a_failing_start_container_hook() {
    require_root!();
    if runtime_is("runc") {
        skip!(
            "runc 1.1.5 releases `start` (writes the exec fifo) before its startContainer hooks \
             run, so its `start` succeeds and the hook's error only reaches the container's stderr"
        );
    }
    let ctx = Ctx::new("start_hook_err");
    let (id, mut b) = ctx.bundle(&["sh", "-c", "echo workload-ran"]);
    b.set(
        "/hooks/startContainer",
        json!([{ "path": "/bin/sh", "args": ["sh", "-c", "exit 3"] }]),
    );
    let c = ctx.create(&b, &id, &[]).ok();
    let s = ctx.start(&id).fails();
    assert!(
        said(&s).contains("startContainer") && said(&s).contains("exit status 3"),
        "start does not say that the startContainer hook failed: {s}"
    );
    assert!(
        !c.stdout_now().contains("workload-ran"),
        "the workload ran after a failed hook"
    );
}

#[test]
fn start_reports_a_failing_execve() {
    require_root!();
    if runtime_is("runc") {
        skip!(
            "runc 1.1.5 writes the exec fifo before execve, so its `start` succeeds even when \
             execve then fails; the error only reaches the container's stderr"
        );
    }
    let ctx = Ctx::new("start_exec_err");
    let (id, b) = ctx.bundle(&["/bin/gone"]);
    fs::copy(b.rootfs().join("bin/busybox"), b.rootfs().join("bin/gone")).unwrap();
    ctx.create(&b, &id, &[]).ok();
    // The program was found at create; it is gone when init execs it.
    fs::remove_file(b.rootfs().join("bin/gone")).unwrap();
    let s = ctx.start(&id).fails();
    assert!(
        said(&s).contains("/bin/gone") && said(&s).contains("No such file"),
        "start does not report execve's error: {s}"
    );
}

#[test]
fn cwd_only_root_can_reach_is_entered_before_the_user_switch() {
    require_root!();
    let ctx = Ctx::new("cwd_root_only");
    let (id, mut b) = ctx.bundle(&[]);
    let secret = b.rootfs().join("secret");
    fs::create_dir(&secret).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    b.set("/process/user", json!({ "uid": 1000, "gid": 1000 }));
    b.set("/process/cwd", json!("/secret"));
    b.set_sh("echo cwd=$(pwd); ls . >/dev/null 2>&1 && echo list=yes || echo list=no");
    let o = ctx.run_container(&b, &id, &[]);
    assert!(
        o.success(),
        "a cwd only root may enter must not fail the container: {o}"
    );
    assert!(o.stdout.contains("cwd=/secret"), "{o}");
    // The process runs as the user: it is in the directory but may not read it.
    assert!(o.stdout.contains("list=no"), "{o}");
}

/// The host's /dev/null as (uid, gid, mode), to check that nothing chowned it.
fn dev_null() -> (u32, u32, u32) {
    let m = fs::metadata("/dev/null").unwrap();
    (m.uid(), m.gid(), m.mode())
}

#[test]
fn stdio_is_given_to_the_process_user_keeping_its_group() {
    require_root!();
    let ctx = Ctx::new("stdio_chown");
    let null_before = dev_null();
    let (id, mut b) = ctx.bundle(&[]);
    b.set("/process/user", json!({ "uid": 1000, "gid": 1000 }));
    // A non-root workload can reopen its stdout and stderr (a file from the caller here).
    b.set_sh(
        "echo out=$(stat -L -c %u:%g /proc/$$/fd/1) err=$(stat -L -c %u:%g /proc/$$/fd/2) \
         in=$(stat -L -c %u:%g /proc/$$/fd/0); echo reopened >> /dev/stdout",
    );
    let c = ctx.create(&b, &id, &[]).ok();
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    let out = c.stdout_now();
    assert!(
        out.contains("out=1000:0 err=1000:0"),
        "stdout/stderr not given to uid 1000: {out:?}"
    );
    assert!(out.contains("reopened"), "uid 1000 cannot reopen /dev/stdout: {out:?}");
    let file = fs::metadata(&c.stdout_path).unwrap();
    assert_eq!((file.uid(), file.gid()), (1000, 0), "owner of the caller's stdout file");
    // stdin is the caller's /dev/null: never chowned.
    assert!(out.contains("in=0:0"), "{out:?}");
    assert_eq!(dev_null(), null_before, "the host's /dev/null was changed");
}

#[test]
fn pty_is_given_to_the_process_user() {
    require_root!();
    let ctx = Ctx::new("pty_chown");
    let recv = ConsoleReceiver::new(ctx.work_dir());
    let (id, mut b) = ctx.bundle(&[]);
    b.set("/process/terminal", json!(true));
    b.set("/process/user", json!({ "uid": 1000, "gid": 1000 }));
    b.set_sh("echo pty=$(stat -c %u:%g $(tty)); echo END");
    let sock = recv.path.display().to_string();
    ctx.create(&b, &id, &["--console-socket", &sock]).ok();
    let master = recv.recv(TIMEOUT).unwrap();
    ctx.start(&id).ok();
    let out = read_until(&master, TIMEOUT, |s| s.contains("END"));
    // devpts is mounted with gid=5: the group stays.
    assert!(out.contains("pty=1000:5"), "the pty slave is not uid 1000's: {out:?}");
    ctx.wait_status(&id, "stopped");
}

/// A running container (`sleep`), as uid 1000.
fn running_as_1000(ctx: &Ctx) -> String {
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set("/process/user", json!({ "uid": 1000, "gid": 1000 }));
    ctx.create(&b, &id, &[]).ok();
    ctx.start(&id).ok();
    id
}

#[test]
fn exec_reads_process_file_from_process_substitution() {
    require_root!();
    let ctx = Ctx::new("exec_procsub");
    let id = running_as_1000(&ctx);
    let (rd, wr) = nix::unistd::pipe().unwrap();
    let process = json!({
        "args": ["/bin/sh", "-c", "echo from-pipe uid=$(id -u)"],
        "cwd": "/",
        "user": { "uid": 1000, "gid": 1000 }
    });
    fs::File::from(wr).write_all(process.to_string().as_bytes()).unwrap();
    // As bash's <(...): the file is /dev/fd/N of a pipe the caller passed.
    let fd = 7;
    let o = ctx.run_with(&["exec", "-p", &format!("/dev/fd/{fd}"), &id], |c| {
        pass_fd(c, rd.as_raw_fd(), fd)
    });
    assert!(o.success(), "exec -p /dev/fd/{fd} failed: {o}");
    assert!(o.stdout.contains("from-pipe uid=1000"), "{o}");
}

/// Runs `create --preserve-fds N` with `fds` passed at the same numbers (and nothing else).
fn create_preserving(ctx: &Ctx, n: &str, fds: &[(i32, &OwnedFd)]) -> (Output, String, Bundle) {
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh("ls /proc/self/fd");
    let fds: Vec<(i32, i32)> = fds.iter().map(|(n, f)| (*n, f.as_raw_fd())).collect();
    let o = ctx.create_with(&b, &id, &["--preserve-fds", n], |c| {
        for (target, fd) in fds {
            pass_fd(c, fd, target);
        }
    });
    (o, id, b)
}

#[test]
fn preserve_fds_beyond_what_the_caller_passed_is_refused_quickly() {
    require_root!();
    let ctx = Ctx::new("preserve_bound");
    for n in ["5", "100000000", "4000000000", "4294967295"] {
        let t0 = Instant::now();
        let (o, id, b) = create_preserving(&ctx, n, &[]);
        assert!(!o.success(), "--preserve-fds {n} with no fds passed was accepted: {o}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "--preserve-fds {n} took {:?}",
            t0.elapsed()
        );
        assert!(
            said(&o).contains("preserved-fd"),
            "the error does not name the preserved fd: {o}"
        );
        ctx.assert_no_residue(&id, &b);
    }
}

#[test]
fn preserve_fds_gap_is_refused_not_filled_with_runtime_fds() {
    require_root!();
    if runtime_is("runc") {
        skip!(
            "runc 1.1.5 checks the preserved fds after opening its own, so a gap (fd 4 here) is \
             filled with one of runc's fds and passed to the container"
        );
    }
    let ctx = Ctx::new("preserve_gap");
    let a = OwnedFd::from(fs::File::open("/dev/null").unwrap());
    let c = OwnedFd::from(fs::File::open("/dev/null").unwrap());
    let (o, id, b) = create_preserving(&ctx, "3", &[(3, &a), (5, &c)]);
    assert!(
        !o.success(),
        "fd 4 was not passed, yet --preserve-fds 3 was accepted: {o}"
    );
    assert!(said(&o).contains("preserved-fd 1"), "{o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn exec_preserve_fds_beyond_what_the_caller_passed_is_refused() {
    require_root!();
    let ctx = Ctx::new("exec_preserve_bound");
    let id = running_as_1000(&ctx);
    for n in ["5", "4294967295"] {
        let t0 = Instant::now();
        let o = ctx.run(&[
            "exec",
            "--preserve-fds",
            n,
            &id,
            "sh",
            "-c",
            "echo ran; ls /proc/self/fd",
        ]);
        assert!(
            !o.success(),
            "exec --preserve-fds {n} with no fds passed was accepted: {o}"
        );
        assert!(!o.stdout.contains("ran"), "{o}");
        assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    }
}

/// The environment a hook saw, as `KEY=value` lines written by `env`.
fn read_env(p: &Path) -> Vec<String> {
    let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines().map(String::from).collect()
}

fn env_hook(out: &str) -> Value {
    json!({ "path": "/bin/busybox", "args": ["sh", "-c", format!("/bin/busybox env > {out}")] })
}

#[test]
fn hooks_without_env_inherit_like_runc() {
    require_root!();
    let ctx = Ctx::new("hook_env");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/process/env", json!(["PATH=/bin", "FROM_CONFIG=container"]));
    let host = ctx.work_dir().display().to_string();
    let mut empty = env_hook("/tmp/start-empty.env");
    empty["env"] = json!([]);
    b.set(
        "/hooks",
        json!({
            // Run by the runtime: its own environment.
            "createRuntime": [env_hook(&format!("{host}/createRuntime.env"))],
            // Run in the container (before pivot_root, so a host path still works): the
            // container process's environment.
            "createContainer": [env_hook(&format!("{host}/createContainer.env"))],
            "startContainer": [env_hook("/tmp/start.env"), empty]
        }),
    );
    let c = ctx.create_with(&b, &id, &[], |c| {
        c.env("FROM_RUNTIME", "host");
    });
    assert!(c.success(), "{c}");
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    let runtime = read_env(&ctx.work_dir().join("createRuntime.env"));
    assert!(
        runtime.contains(&"FROM_RUNTIME=host".into()),
        "createRuntime: {runtime:?}"
    );
    assert!(
        !runtime.contains(&"FROM_CONFIG=container".into()),
        "createRuntime: {runtime:?}"
    );
    for (hook, env) in [
        ("createContainer", read_env(&ctx.work_dir().join("createContainer.env"))),
        ("startContainer", read_env(&b.rootfs().join("tmp/start.env"))),
    ] {
        assert!(env.contains(&"FROM_CONFIG=container".into()), "{hook}: {env:?}");
        assert!(env.contains(&"PATH=/bin".into()), "{hook}: {env:?}");
        assert!(!env.iter().any(|e| e.starts_with("FROM_RUNTIME=")), "{hook}: {env:?}");
    }
    // "env": [] is an empty environment, not an absent one.
    let empty = read_env(&b.rootfs().join("tmp/start-empty.env"));
    assert!(
        !empty.iter().any(|e| e.starts_with("FROM_")),
        "a hook with \"env\": [] got an environment: {empty:?}"
    );
}

#[test]
fn out_of_range_user_ids_are_refused() {
    require_root!();
    let ctx = Ctx::new("user_range");
    for (user, field) in [
        (json!({ "uid": 4294967295u32, "gid": 0 }), "uid"),
        (json!({ "uid": 0, "gid": 4294967295u32 }), "gid"),
        (json!({ "uid": 2147483648u32, "gid": 0 }), "uid"),
        (json!({ "uid": 0, "gid": 0, "additionalGids": [4294967295u32] }), "gid"),
    ] {
        let (id, mut b) = ctx.bundle(&["sh", "-c", "echo ran as $(id -u)"]);
        b.set("/process/user", user.clone());
        let o = ctx.run_container(&b, &id, &[]);
        assert!(!o.success(), "process.user {user} was accepted: {o}");
        assert!(!o.stdout.contains("ran as"), "{o}");
        assert!(
            said(&o).contains(field) && said(&o).contains("2147483647"),
            "the error does not name the range of the {field}: {o}"
        );
        ctx.assert_no_residue(&id, &b);
    }
    // The largest valid id still works.
    let (id, mut b) = ctx.bundle(&["sh", "-c", "echo ran as $(id -u)"]);
    b.set("/process/user", json!({ "uid": 2147483647u32, "gid": 2147483647u32 }));
    let o = ctx.run_container(&b, &id, &[]);
    assert!(o.stdout.contains("ran as 2147483647"), "{o}");
}

#[test]
fn exec_refuses_out_of_range_user_ids() {
    require_root!();
    let ctx = Ctx::new("exec_user_range");
    let id = running_as_1000(&ctx);
    for args in [
        vec!["-u", "4294967295:4294967295"],
        vec!["-u", "1000", "--additional-gids", "4294967295"],
    ] {
        let mut argv = vec!["exec"];
        argv.extend(&args);
        argv.extend([id.as_str(), "sh", "-c", "echo ran as $(id -u)"]);
        let o = ctx.run(&argv);
        assert!(!o.success(), "exec {args:?} was accepted: {o}");
        assert!(!o.stdout.contains("ran as"), "exec {args:?} ran: {o}");
    }
}
