//! `linux.seccomp` in real containers: ERRNO (with errnoRet and defaultErrnoRet), KILL and
//! KILL_PROCESS, the Docker default allowlist, argument conditions, NOTIFY with a listener
//! socket, filters without noNewPrivileges, unknown syscall names and invalid profiles.
//!
//! Every test that expects a denial also checks that the same command is not refused for another
//! reason (a control run, or a command that only the filter can make fail), so a runtime that
//! ignored `linux.seccomp` would fail it.

use moor_integration::bundle::Bundle;
use moor_integration::{require_root, runtime_is, Ctx, Output, TIMEOUT};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use serde_json::{json, Value};
use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// strerror(EDOM), the errno the ERRNO rules below return: no file-system call fails with it
/// on its own, so seeing it proves the filter produced the error.
const EDOM_TEXT: &str = "Numerical argument out of domain";
/// strerror(ERANGE), used for defaultErrnoRet and the personality rule.
const ERANGE_TEXT: &str = "Numerical result out of range";
const EPERM_TEXT: &str = "Operation not permitted";

/// A profile allowing everything except `rules`.
fn allow_profile(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })
}

/// The rule that denies mkdir and mkdirat with EDOM.
fn deny_mkdir_edom() -> Value {
    json!({ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM })
}

/// The Docker default profile shipped with moor's seccomp crate (OCI `linux.seccomp` form).
fn docker_default() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seccomp/tests/data/docker-default.json");
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs the bundle in the foreground (`run`) and returns the Output: exit code relayed,
/// container stdout/stderr in the Output (scripts merge stderr with `2>&1`).
fn run_fg(ctx: &Ctx, b: &Bundle, id: &str) -> Output {
    ctx.run_container(b, id, &[])
}

/// The line starting with `tag ` in `out`, e.g. `mount rc=1 mount: ...`.
fn tagged<'a>(out: &'a str, tag: &str) -> &'a str {
    let prefix = format!("{tag} ");
    out.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in output:\n{out}"))
}

/// Shell snippet printing `<tag> rc=<exit code> <merged output of cmd>` on one line.
fn probe(tag: &str, cmd: &str) -> String {
    format!("o=$({cmd} 2>&1); echo \"{tag} rc=$? $o\"; ")
}

#[test]
fn errno_rule_denies_mkdir_with_chosen_errno_and_default_eperm() {
    require_root!();
    let ctx = Ctx::new("sc_errno");
    let (id, mut b) = ctx.bundle(&[]);
    fs::create_dir(b.rootfs().join("tmp/keep")).unwrap();
    b.set(
        "/linux/seccomp",
        allow_profile(json!([
            deny_mkdir_edom(),
            // ERRNO without errnoRet: EPERM.
            { "names": ["rmdir"], "action": "SCMP_ACT_ERRNO" }
        ])),
    );
    let script =
        probe("mkdir", "mkdir /x") + &probe("touch", "touch /t") + &probe("rmdir", "rmdir /tmp/keep") + "echo END";
    b.set_sh(&script);
    let o = run_fg(&ctx, &b, &id);
    assert_eq!(o.code(), Some(0), "{o}");
    let mkdir = tagged(&o.stdout, "mkdir");
    assert!(
        mkdir.starts_with("mkdir rc=1 ") && mkdir.contains(EDOM_TEXT),
        "mkdir was not denied with errnoRet EDOM: {mkdir:?}\n{o}"
    );
    assert_eq!(tagged(&o.stdout, "touch"), "touch rc=0 ", "touch must work: {o}");
    let rmdir = tagged(&o.stdout, "rmdir");
    assert!(
        rmdir.starts_with("rmdir rc=1 ") && rmdir.contains(EPERM_TEXT),
        "SCMP_ACT_ERRNO without errnoRet must give EPERM: {rmdir:?}\n{o}"
    );
    assert!(!b.rootfs().join("x").exists(), "/x was created despite the filter");
    assert!(b.rootfs().join("t").exists(), "touch /t left no file");
    assert!(b.rootfs().join("tmp/keep").is_dir(), "rmdir was not denied");
}

#[test]
fn default_errno_ret_applies_to_default_action() {
    require_root!();
    let ctx = Ctx::new("sc_default_errno");
    let (id, mut b) = ctx.bundle(&[]);
    // The Docker allowlist without mkdir/mkdirat, whose default action returns ERANGE.
    let mut prof = docker_default();
    prof["defaultErrnoRet"] = json!(libc::ERANGE);
    for rule in prof["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "mkdir" && n != "mkdirat");
        }
    }
    b.set("/linux/seccomp", prof);
    b.set_sh(&(probe("mkdir", "mkdir /x") + &probe("touch", "touch /t") + "echo END"));
    let o = run_fg(&ctx, &b, &id);
    assert_eq!(o.code(), Some(0), "{o}");
    let mkdir = tagged(&o.stdout, "mkdir");
    assert!(
        mkdir.starts_with("mkdir rc=1 ") && mkdir.contains(ERANGE_TEXT),
        "mkdir must fail with defaultErrnoRet (ERANGE): {mkdir:?}\n{o}"
    );
    assert_eq!(tagged(&o.stdout, "touch"), "touch rc=0 ", "{o}");
    assert!(!b.rootfs().join("x").exists());
}

#[test]
fn kill_actions_kill_the_process_with_sigsys() {
    require_root!();
    let ctx = Ctx::new("sc_kill");
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"] {
        // The container's own init is mkdir: it must die of SIGSYS, relayed as 128+31.
        let (id, mut b) = ctx.bundle(&["mkdir", "/x"]);
        b.set(
            "/linux/seccomp",
            allow_profile(json!([{ "names": ["mkdir", "mkdirat"], "action": action }])),
        );
        // No core file in the rootfs.
        b.set(
            "/process/rlimits",
            json!([
                { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 },
                { "type": "RLIMIT_CORE", "hard": 0, "soft": 0 }
            ]),
        );
        let o = run_fg(&ctx, &b, &id);
        assert_eq!(
            o.code(),
            Some(128 + libc::SIGSYS),
            "{action}: mkdir must be killed by SIGSYS: {o}"
        );
        assert!(!b.rootfs().join("x").exists(), "{action}: /x was created");
    }
}

#[test]
fn docker_default_profile_runs_normal_commands_and_blocks_privileged_ones() {
    require_root!();
    let ctx = Ctx::new("sc_docker");
    let script = "echo hello; ".to_string()
        + &probe("ls", "ls /bin/sh")
        + &probe("cat", "cat /etc/group")
        + &probe("ps", "ps")
        + &probe("sleep", "sleep 0.1")
        + &probe("mkdir", "mkdir /tmp/d")
        + &probe("mount", "busybox mount -t tmpfs none /mnt")
        + &probe("unshare", "busybox unshare -U true")
        + &probe("hostname", "hostname blocked-by-seccomp")
        + "echo END";
    // CAP_SYS_ADMIN so that mount and sethostname are refused by nothing but the filter.
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]);
    let make = |with_profile: bool| {
        let (id, mut b) = ctx.bundle(&[]);
        b.set_sh(&script);
        for set in ["bounding", "effective", "permitted"] {
            b.set(&format!("/process/capabilities/{set}"), caps.clone());
        }
        if with_profile {
            b.set("/linux/seccomp", docker_default());
        }
        (id, b)
    };

    // Control: without the profile, the privileged commands work.
    let (cid, cb) = make(false);
    let c = run_fg(&ctx, &cb, &cid);
    assert_eq!(c.code(), Some(0), "control run failed: {c}");
    for tag in ["mount", "unshare", "hostname"] {
        let l = tagged(&c.stdout, tag);
        assert!(
            l.starts_with(&format!("{tag} rc=0")),
            "control: {tag} fails even without seccomp, the test cannot judge the filter: {l:?}"
        );
    }

    let (id, b) = make(true);
    let o = run_fg(&ctx, &b, &id);
    assert_eq!(o.code(), Some(0), "{o}");
    assert!(o.stdout.starts_with("hello\n"), "{o}");
    assert!(o.stdout.contains("\nEND"), "{o}");
    assert_eq!(tagged(&o.stdout, "ls"), "ls rc=0 /bin/sh", "{o}");
    assert!(tagged(&o.stdout, "cat").starts_with("cat rc=0 root:x:0:"), "{o}");
    let ps = tagged(&o.stdout, "ps");
    assert!(ps.starts_with("ps rc=0 PID"), "ps failed under the profile: {ps:?}");
    assert_eq!(tagged(&o.stdout, "sleep"), "sleep rc=0 ", "{o}");
    assert_eq!(tagged(&o.stdout, "mkdir"), "mkdir rc=0 ", "{o}");
    for tag in ["mount", "unshare", "hostname"] {
        let l = tagged(&o.stdout, tag);
        // busybox mount reports EPERM (and only EPERM) as "permission denied (are you root?)".
        let eperm = l.contains(EPERM_TEXT) || (tag == "mount" && l.contains("permission denied (are you root?)"));
        assert!(
            !l.starts_with(&format!("{tag} rc=0")) && eperm,
            "{tag} must be refused with EPERM by the Docker profile: {l:?}\n{o}"
        );
    }
}

#[test]
fn arg_condition_eq_on_kill_signal() {
    require_root!();
    let ctx = Ctx::new("sc_arg_eq");
    let (id, mut b) = ctx.bundle(&[]);
    b.set(
        "/linux/seccomp",
        allow_profile(json!([{
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EDOM,
            "args": [{ "index": 1, "value": 9, "op": "SCMP_CMP_EQ" }]
        }])),
    );
    let script = "sleep 100 & p=$!; ".to_string()
        + &probe("k0", "kill -0 $p")
        + &probe("k9", "kill -9 $p")
        + &probe("k15", "kill -15 $p")
        + "wait $p; echo waited=$?; echo END";
    b.set_sh(&script);
    let o = run_fg(&ctx, &b, &id);
    assert_eq!(o.code(), Some(0), "{o}");
    assert_eq!(tagged(&o.stdout, "k0"), "k0 rc=0 ", "kill -0 must work: {o}");
    let k9 = tagged(&o.stdout, "k9");
    assert!(
        k9.starts_with("k9 rc=1 ") && k9.contains(EDOM_TEXT),
        "kill(pid, 9) must be denied with EDOM: {k9:?}\n{o}"
    );
    assert_eq!(tagged(&o.stdout, "k15"), "k15 rc=0 ", "kill -15 must work: {o}");
    assert!(o.stdout.contains("waited=143"), "sleep was not ended by SIGTERM: {o}");
}

#[test]
fn arg_condition_masked_eq_on_personality() {
    require_root!();
    let ctx = Ctx::new("sc_arg_masked");
    let (id, mut b) = ctx.bundle(&[]);
    // (persona & 0xff) == PER_LINUX32 (8): `linux32` calls personality(8), `linux64`
    // personality(0). value is the mask, valueTwo the datum; swapping them would deny neither.
    b.set(
        "/linux/seccomp",
        allow_profile(json!([{
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::ERANGE,
            "args": [{ "index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ" }]
        }])),
    );
    let script = probe("l32", "busybox linux32 true") + &probe("l64", "busybox linux64 true") + "echo END";
    b.set_sh(&script);
    let o = run_fg(&ctx, &b, &id);
    assert_eq!(o.code(), Some(0), "{o}");
    let l32 = tagged(&o.stdout, "l32");
    assert!(
        l32.starts_with("l32 rc=1 ") && l32.contains(ERANGE_TEXT),
        "personality(PER_LINUX32) must be denied with ERANGE: {l32:?}\n{o}"
    );
    assert_eq!(tagged(&o.stdout, "l64"), "l64 rc=0 ", "personality(0) must work: {o}");
}

/// One connection the seccomp agent received: the ContainerProcessState JSON, how many fds came
/// with it, and what the first fd is (readlink of /proc/self/fd/N).
struct Received {
    state: Value,
    fd_count: usize,
    fd_link: String,
}

/// What the agent saw: every connection, and the mkdir paths it answered, in order.
struct AgentReport {
    received: Vec<Received>,
    paths: Vec<String>,
}

/// A minimal seccomp agent on `listener`: accepts connections (each carries a state JSON and
/// a notify fd over SCM_RIGHTS, until EOF) and answers mkdir/mkdirat notifications on every fd
/// it holds: path "/a" gets -EXDEV, "/b" a fake success (nothing created), anything else
/// SECCOMP_USER_NOTIF_FLAG_CONTINUE. Runs until `stop` is set (deadline 2 * TIMEOUT).
fn seccomp_agent(listener: UnixListener, stop: Arc<AtomicBool>) -> Result<AgentReport, String> {
    let mut report = AgentReport {
        received: Vec::new(),
        paths: Vec::new(),
    };
    let mut notify_fds: Vec<OwnedFd> = Vec::new();
    let deadline = Instant::now() + TIMEOUT * 2;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let mut pfds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
            .chain(notify_fds.iter().map(|f| f.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 200) };
        if r <= 0 {
            continue;
        }
        if pfds[0].revents & libc::POLLIN != 0 {
            let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            let (state, fds) = receive_state(&conn)?;
            let fd_link = fds
                .first()
                .and_then(|f| fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            report.received.push(Received {
                state,
                fd_count: fds.len(),
                fd_link,
            });
            notify_fds.extend(fds.into_iter().take(1));
        }
        let mut hung_up = Vec::new();
        for (i, p) in pfds.iter().enumerate().skip(1) {
            if p.revents & libc::POLLIN != 0 {
                if let Some(path) = answer_one(&notify_fds[i - 1]) {
                    report.paths.push(path);
                }
            } else if p.revents != 0 {
                hung_up.push(i - 1); // POLLHUP: no task uses that filter any more
            }
        }
        for i in hung_up.into_iter().rev() {
            notify_fds.remove(i);
        }
    }
    Ok(report)
}

/// Reads one listener connection: the JSON message (complete as soon as it parses; the runtime
/// may keep the connection open) and the fds sent with it.
fn receive_state(conn: &UnixStream) -> Result<(Value, Vec<OwnedFd>), String> {
    conn.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    loop {
        let mut buf = vec![0u8; 65536];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 8]);
        let msg = recvmsg::<UnixAddr>(conn.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(|e| format!("recvmsg after {:?}: {e}", String::from_utf8_lossy(&data)))?;
        let n = msg.bytes;
        for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
            if let ControlMessageOwned::ScmRights(v) = c {
                // SAFETY: these fds were just received via SCM_RIGHTS; nothing else owns them.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        data.extend_from_slice(&buf[..n]);
        if let Ok(state) = serde_json::from_slice::<Value>(&data) {
            return Ok((state, fds));
        }
        if n == 0 {
            return Err(format!(
                "listener message is not JSON: {:?}",
                String::from_utf8_lossy(&data)
            ));
        }
    }
}

/// Receives one notification on `nfd` and answers it; returns the mkdir path it was about.
fn answer_one(nfd: &OwnedFd) -> Option<String> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed before RECV.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV fills a struct seccomp_notif we own.
    let r = unsafe { libc::ioctl(nfd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
    if r < 0 {
        return None; // e.g. ENOENT: the task was killed meanwhile
    }
    let addr = match libc::c_long::from(req.data.nr) {
        libc::SYS_mkdir => req.data.args[0],
        libc::SYS_mkdirat => req.data.args[1],
        _ => 0,
    };
    let path = read_c_string(i32::try_from(req.pid).unwrap(), addr).unwrap_or_else(|| format!("<nr {}>", req.data.nr));
    // SAFETY: seccomp_notif_resp is plain data.
    let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    resp.id = req.id;
    match path.as_str() {
        "/a" => resp.error = -libc::EXDEV,
        "/b" => {} // fake success: val 0, error 0, nothing created
        _ => resp.flags = u32::try_from(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE).unwrap(),
    }
    // SAFETY: NOTIF_SEND reads a struct seccomp_notif_resp we own.
    unsafe { libc::ioctl(nfd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    Some(path)
}

/// Reads a NUL-terminated string at `addr` in process `pid`'s memory.
fn read_c_string(pid: i32, addr: u64) -> Option<String> {
    if addr == 0 {
        return None;
    }
    let mem = fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = mem.read_at(&mut buf, addr).ok()?;
    let s = &buf[..n];
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// The agent thread and the socket it listens on (in the test's work dir).
struct Agent {
    sock: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<AgentReport, String>>,
}

impl Agent {
    fn start(ctx: &Ctx) -> Agent {
        let sock = ctx.work_dir().join("seccomp-agent.sock");
        let listener = UnixListener::bind(&sock).expect("bind listener socket");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || seccomp_agent(listener, stop))
        };
        Agent { sock, stop, thread }
    }

    /// A profile that sends mkdir and mkdirat to this agent.
    fn profile(&self) -> Value {
        let mut prof = allow_profile(json!([{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]));
        prof["listenerPath"] = json!(self.sock);
        prof["listenerMetadata"] = json!("moor-it-metadata");
        prof
    }

    fn finish(self) -> AgentReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .expect("agent thread panicked")
            .unwrap_or_else(|e| panic!("seccomp agent: {e}"))
    }
}

/// Checks the ContainerProcessState fields common to every connection.
#[track_caller]
fn check_process_state(r: &Received, id: &str, b: &Bundle) {
    let st = &r.state;
    assert_eq!(st["fds"], json!(["seccompFd"]), "fds in {st}");
    assert_eq!(r.fd_count, 1, "expected exactly one fd with {st}");
    assert_eq!(
        r.fd_link, "anon_inode:seccomp notify",
        "the fd sent is not a seccomp notify fd"
    );
    assert!(st["ociVersion"].is_string(), "ociVersion in {st}");
    assert_eq!(st["metadata"], json!("moor-it-metadata"), "metadata in {st}");
    assert_eq!(st["state"]["id"], json!(id), "state.id in {st}");
    assert!(
        st["state"]["bundle"].as_str().is_some_and(|s| Path::new(s) == b.path()),
        "state.bundle in {st}"
    );
}

const MKDIR_ABC: &str = "o=$(mkdir /a 2>&1); echo \"a rc=$? $o\"; \
     o=$(mkdir /b 2>&1); echo \"b rc=$? $o\"; \
     o=$(mkdir /c 2>&1); echo \"c rc=$? $o\"; echo END";

/// The agent's three answers reached the container.
#[track_caller]
fn check_abc(out: &str, paths: &[String], b: &Bundle) {
    for p in ["/a", "/b", "/c"] {
        assert!(
            paths.iter().any(|x| x == p),
            "mkdir {p} was not notified; notified: {paths:?}\n{out}"
        );
    }
    let a = tagged(out, "a");
    assert!(
        a.starts_with("a rc=1 ") && a.contains("Invalid cross-device link"),
        "the agent's -EXDEV did not reach mkdir /a: {a:?}"
    );
    assert_eq!(
        tagged(out, "b"),
        "b rc=0 ",
        "the agent's fake success did not reach mkdir /b"
    );
    assert_eq!(tagged(out, "c"), "c rc=0 ", "CONTINUE did not let mkdir /c run");
    assert!(!b.rootfs().join("a").exists(), "/a exists");
    assert!(
        !b.rootfs().join("b").exists(),
        "/b exists though the agent only faked success"
    );
    assert!(
        b.rootfs().join("c").is_dir(),
        "/c missing though the agent answered CONTINUE"
    );
}

#[test]
fn notify_sends_fd_and_state_to_listener_and_agent_answers() {
    require_root!();
    let ctx = Ctx::new("sc_notify");
    let agent = Agent::start(&ctx);
    let (id, mut b) = ctx.bundle(&[]);
    b.set("/linux/seccomp", agent.profile());
    b.set_sh(MKDIR_ABC);
    let c = ctx.create(&b, &id, &[]);
    if !c.success() {
        let _ = agent.finish();
        panic!("create with a NOTIFY profile failed: {c}");
    }
    let init_pid = ctx.pid(&id);
    ctx.start(&id).ok();
    ctx.wait_status(&id, "stopped");
    let report = agent.finish();
    let out = c.stdout_now();

    assert_eq!(report.received.len(), 1, "expected one listener connection");
    let r = &report.received[0];
    check_process_state(r, &id, &b);
    let st = &r.state;
    assert_eq!(st["pid"].as_i64(), Some(i64::from(init_pid)), "pid in {st}");
    assert_eq!(
        st["state"]["pid"].as_i64(),
        Some(i64::from(init_pid)),
        "state.pid in {st}"
    );
    assert!(
        matches!(st["state"]["status"].as_str(), Some("creating" | "created")),
        "state.status in {st}"
    );
    check_abc(&out, &report.paths, &b);
}

#[test]
fn notify_for_exec_process_sends_its_own_fd_and_state() {
    require_root!();
    let ctx = Ctx::new("sc_notify_exec");
    let agent = Agent::start(&ctx);
    let (id, mut b) = ctx.bundle(&["sleep", "1000"]);
    b.set("/linux/seccomp", agent.profile());
    let c = ctx.create(&b, &id, &[]);
    if !c.success() {
        let _ = agent.finish();
        panic!("create with a NOTIFY profile failed: {c}");
    }
    let init_pid = ctx.pid(&id);
    ctx.start(&id).ok();
    ctx.wait_status(&id, "running");
    let e = ctx.run(&["exec", &id, "sh", "-c", MKDIR_ABC]);
    ctx.kill(&id, "KILL");
    let report = agent.finish();
    let e = e.ok();

    assert_eq!(
        report.received.len(),
        2,
        "expected one connection for init and one for exec"
    );
    let r = &report.received[1];
    check_process_state(r, &id, &b);
    let st = &r.state;
    let pid = st["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {st}"));
    assert!(
        pid > 0 && pid != i64::from(init_pid),
        "pid of the exec'd process expected in {st}"
    );
    assert_eq!(
        st["state"]["pid"].as_i64(),
        Some(i64::from(init_pid)),
        "state.pid in {st}"
    );
    assert_eq!(st["state"]["status"], json!("running"), "state.status in {st}");
    check_abc(&e.stdout, &report.paths, &b);
}

#[test]
fn filter_applies_without_no_new_privileges_for_root_and_non_root() {
    require_root!();
    let ctx = Ctx::new("sc_no_nnp");
    for (uid, gid) in [(0, 0), (1000, 1000)] {
        let (id, mut b) = ctx.bundle(&[]);
        b.set("/process/noNewPrivileges", json!(false));
        b.set("/process/user", json!({ "uid": uid, "gid": gid }));
        b.set("/linux/seccomp", allow_profile(json!([deny_mkdir_edom()])));
        b.set_sh(
            &(probe("mkdir", "mkdir /tmp/x")
                + &probe("touch", "touch /tmp/t")
                + "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; id -u; echo END"),
        );
        let o = run_fg(&ctx, &b, &id);
        assert_eq!(o.code(), Some(0), "uid {uid}: {o}");
        assert!(
            o.stdout.contains(&format!("\n{uid}\nEND")),
            "uid {uid}: wrong user: {o}"
        );
        let nnp = o.stdout.lines().find(|l| l.starts_with("NoNewPrivs:"));
        assert_eq!(
            nnp.map(|l| l.split_whitespace().nth(1)),
            Some(Some("0")),
            "uid {uid}: no_new_privs must stay off: {o}"
        );
        let sc = o.stdout.lines().find(|l| l.starts_with("Seccomp:"));
        assert_eq!(
            sc.map(|l| l.split_whitespace().nth(1)),
            Some(Some("2")),
            "uid {uid}: not in seccomp filter mode: {o}"
        );
        let mkdir = tagged(&o.stdout, "mkdir");
        assert!(
            mkdir.starts_with("mkdir rc=1 ") && mkdir.contains(EDOM_TEXT),
            "uid {uid}: mkdir not denied without noNewPrivileges: {mkdir:?}\n{o}"
        );
        assert_eq!(tagged(&o.stdout, "touch"), "touch rc=0 ", "uid {uid}: {o}");
        assert!(!b.rootfs().join("tmp/x").exists(), "uid {uid}: /tmp/x was created");
    }
}

#[test]
fn unknown_syscall_name_is_skipped() {
    require_root!();
    let ctx = Ctx::new("sc_unknown_name");
    let (id, mut b) = ctx.bundle(&[]);
    b.set(
        "/linux/seccomp",
        allow_profile(json!([{
            "names": ["moor_no_such_syscall", "mkdir", "mkdirat"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EDOM
        }])),
    );
    b.set_sh(&(probe("mkdir", "mkdir /x") + "echo END"));
    let o = run_fg(&ctx, &b, &id);
    assert_eq!(o.code(), Some(0), "an unknown syscall name must be skipped: {o}");
    // The known names of the same rule are still applied.
    let mkdir = tagged(&o.stdout, "mkdir");
    assert!(
        mkdir.contains(EDOM_TEXT),
        "the rest of the rule was dropped: {mkdir:?}\n{o}"
    );
}

fn assert_bad_profile_fails(ctx: &Ctx, rule: Value, what: &str) {
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/linux/seccomp", allow_profile(json!([rule])));
    let o = ctx.create(&b, &id, &[]);
    assert!(!o.success(), "{what}: create must fail: {o}");
    assert!(
        o.stderr.contains("seccomp"),
        "{what}: the error does not mention seccomp: {o}"
    );
    // runc 1.1.5 only says "string SCMP_ACT_NOPE is not a valid action for seccomp", without the
    // config path; other runtimes must name the field.
    if !runtime_is("runc") {
        assert!(
            o.stderr.contains("linux.seccomp"),
            "{what}: the error does not name linux.seccomp: {o}"
        );
    }
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn unknown_action_fails_create_and_leaves_nothing() {
    require_root!();
    let ctx = Ctx::new("sc_bad_action");
    assert_bad_profile_fails(
        &ctx,
        json!({ "names": ["mkdir"], "action": "SCMP_ACT_NOPE" }),
        "unknown action SCMP_ACT_NOPE",
    );
}

#[test]
fn errno_ret_on_allow_rule_fails_create_and_leaves_nothing() {
    require_root!();
    if runtime_is("runc") {
        // runc 1.1.5 silently ignores errnoRet on actions other than ERRNO/TRACE (verified: the
        // container runs). The spec only allows errnoRet with those actions.
        moor_integration::skip!("runc 1.1.5 ignores errnoRet on SCMP_ACT_ALLOW");
    }
    let ctx = Ctx::new("sc_bad_errnoret");
    assert_bad_profile_fails(
        &ctx,
        json!({ "names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5 }),
        "errnoRet on SCMP_ACT_ALLOW",
    );
}
