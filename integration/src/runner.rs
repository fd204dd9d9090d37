//! Runtime runner: a per-test context with its own `--root`, unique ids and cleanup on drop.

use crate::bundle::{temp_dir, Bundle};
use crate::host;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The runtime binary under test: `$RUNTIME`, else `$MOOR_BIN`, else
/// `$CARGO_TARGET_DIR/debug/moor` when it exists, else `<workspace>/target/debug/moor`.
pub fn runtime_path() -> PathBuf {
    if let Some(p) = std::env::var_os("RUNTIME").filter(|s| !s.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("MOOR_BIN").filter(|s| !s.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let p = PathBuf::from(t).join("debug/moor");
        if p.exists() {
            return p;
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/moor")
}

/// First line of `<runtime> --version` (cached), e.g. "runc version 1.1.5+ds1".
pub fn runtime_version_line() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        Command::new(runtime_path())
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    })
}

/// Whether the runtime under test is `name` ("runc", "crun", "moor"), judged by the first word of
/// its `--version` output, falling back to the binary's file name.
pub fn runtime_is(name: &str) -> bool {
    let first = runtime_version_line()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    if !first.is_empty() {
        return first == name;
    }
    runtime_path()
        .file_name()
        .map(|f| f.to_string_lossy().starts_with(name))
        .unwrap_or(false)
}

/// (major, minor, patch) of the runtime under test, from `--version`.
pub fn runtime_version() -> (u32, u32, u32) {
    let line = runtime_version_line();
    let v = line
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or("0.0.0");
    let mut it = v.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Result of one runtime invocation. stdout/stderr were redirected to files (so a container that
/// inherits them never blocks the test); the strings are what the files held when the runtime
/// exited, and [`Output::stdout_now`] re-reads later output written by the container.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub args: Vec<String>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn stdout_now(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }
    pub fn stderr_now(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
    /// Panics with the full invocation and output unless it succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "runtime command failed: {self}");
        self
    }
    /// Panics unless it failed.
    #[track_caller]
    pub fn fails(self) -> Self {
        assert!(!self.success(), "runtime command unexpectedly succeeded: {self}");
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {:?} (signal {:?})\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args.join(" "),
            self.status.code(),
            self.status.signal(),
            self.stdout,
            self.stderr
        )
    }
}

/// Live contexts in this process; the `/moor-it` cgroup parents are removed when it drops to 0
/// (under this lock, so no context can be creating a container meanwhile).
static ACTIVE: Mutex<usize> = Mutex::new(0);
static ID_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's runtime context: a private `--root`, the containers and temp dirs to clean up.
pub struct Ctx {
    pub runtime: PathBuf,
    pub root: PathBuf,
    pub name: String,
    work: PathBuf,
    log: RefCell<Option<PathBuf>>,
    ids: RefCell<Vec<String>>,
    cgroups: RefCell<Vec<String>>,
    dirs: RefCell<Vec<PathBuf>>,
    calls: Cell<usize>,
    /// Extra global args placed before the subcommand (e.g. `--systemd-cgroup`).
    pub global: RefCell<Vec<String>>,
}

impl Ctx {
    /// A context for the runtime under test.
    pub fn new(name: &str) -> Ctx {
        Ctx::with_runtime(name, runtime_path())
    }

    pub fn with_runtime(name: &str, runtime: PathBuf) -> Ctx {
        assert!(
            runtime.exists(),
            "runtime binary {} not found: build moor or set RUNTIME=/path/to/runtime",
            runtime.display()
        );
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let work = temp_dir(&format!("ctx-{name}"));
        let root = work.join("root");
        fs::create_dir(&root).unwrap();
        Ctx {
            runtime,
            root,
            name: name.to_string(),
            work,
            log: RefCell::new(None),
            ids: RefCell::new(Vec::new()),
            cgroups: RefCell::new(Vec::new()),
            dirs: RefCell::new(Vec::new()),
            calls: Cell::new(0),
            global: RefCell::new(Vec::new()),
        }
    }

    /// The per-test scratch dir (removed on drop).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// A fresh unique container id (registered for `delete --force` on drop).
    pub fn new_id(&self) -> String {
        let n = ID_COUNTER.fetch_add(1, Ordering::SeqCst);
        let short: String = self
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        let id = format!("mit-{short}-{}-c{n:04}", std::process::id());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A fresh id and a bundle running `args` with cgroupsPath `/moor-it/<id>`.
    pub fn bundle(&self, args: &[&str]) -> (String, Bundle) {
        let id = self.new_id();
        let b = Bundle::new(&id, args);
        self.dirs.borrow_mut().push(b.dir.clone());
        self.cgroups.borrow_mut().push(b.cgroups_path());
        (id, b)
    }

    /// Registers an extra dir for removal on drop.
    pub fn own_dir(&self, p: PathBuf) {
        self.dirs.borrow_mut().push(p);
    }

    /// Makes every later invocation pass `--log <path> --log-format json`; returns the path.
    pub fn enable_json_log(&self) -> PathBuf {
        let p = self.work.join("runtime-log.json");
        *self.log.borrow_mut() = Some(p.clone());
        p
    }

    /// The full argument vector (after the binary) for a subcommand.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec!["--root".to_string(), self.root.display().to_string()];
        if let Some(l) = self.log.borrow().as_ref() {
            v.extend([
                "--log".into(),
                l.display().to_string(),
                "--log-format".into(),
                "json".into(),
            ]);
        }
        v.extend(self.global.borrow().iter().cloned());
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// A Command for the runtime with the given full argv, wrapped for crun on hybrid hosts.
    pub fn raw_command(&self, argv: &[String]) -> Command {
        runtime_command(&self.runtime, argv)
    }

    /// Runs a subcommand (stdin null, stdout/stderr to files) and waits for it (30 s deadline).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, |_| {})
    }

    /// Like [`Ctx::run`], letting `customize` adjust the Command (stdio, pre_exec) first.
    pub fn run_with(&self, args: &[&str], customize: impl FnOnce(&mut Command)) -> Output {
        let (child, out) = self.spawn_with(args, customize);
        self.wait_output(child, out, crate::command_timeout())
    }

    /// Like [`Ctx::run_with`], with the runtime started the way systemd starts a socket-activated
    /// service: `LISTEN_FDS=n`, and `LISTEN_PID` naming the runtime itself (runc ignores
    /// `LISTEN_FDS` otherwise). A shell exports `LISTEN_PID=$$` and execs the runtime, which keeps
    /// that pid. Hand over the fds themselves (3..3+n) with [`pass_fd`] in `customize`.
    pub fn run_socket_activated(&self, args: &[&str], n: u32, customize: impl FnOnce(&mut Command)) -> Output {
        let launch = |argv: &[String]| {
            let runtime = self.raw_command(argv);
            let mut c = Command::new("/bin/sh");
            c.args(["-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\""])
                .arg(runtime.get_program())
                .args(runtime.get_args())
                .env("LISTEN_FDS", n.to_string());
            c
        };
        let (child, out) = self.spawn_launched(args, launch, customize);
        self.wait_output(child, out, crate::command_timeout())
    }

    /// Spawns a subcommand without waiting. Returns the child and an [`Output`] skeleton whose
    /// paths hold its stdout/stderr; finish with [`Ctx::wait_output`].
    pub fn spawn_with(&self, args: &[&str], customize: impl FnOnce(&mut Command)) -> (Child, Output) {
        self.spawn_launched(args, |argv| self.raw_command(argv), customize)
    }

    /// [`Ctx::spawn_with`], with `launch` making the Command from the full argv.
    fn spawn_launched(
        &self,
        args: &[&str],
        launch: impl FnOnce(&[String]) -> Command,
        customize: impl FnOnce(&mut Command),
    ) -> (Child, Output) {
        let n = self.calls.get();
        self.calls.set(n + 1);
        let sub = args.first().copied().unwrap_or("none");
        let stdout_path = self.work.join(format!("call{n:04}-{sub}.out"));
        let stderr_path = self.work.join(format!("call{n:04}-{sub}.err"));
        let argv = self.argv(args);
        let mut cmd = launch(&argv);
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).unwrap())
            .stderr(fs::File::create(&stderr_path).unwrap());
        customize(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.runtime.display()));
        let mut shown = vec![self.runtime.display().to_string()];
        shown.extend(argv);
        let out = Output {
            status: ExitStatus::from_raw(0),
            stdout: String::new(),
            stderr: String::new(),
            stdout_path,
            stderr_path,
            args: shown,
        };
        (child, out)
    }

    /// Waits for a spawned runtime command; kills it and panics after `timeout`.
    pub fn wait_output(&self, mut child: Child, mut out: Output, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(1);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "runtime command did not finish within {timeout:?}: {}\nstderr: {}",
                    out.args.join(" "),
                    out.stderr_now()
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(20));
        };
        out.status = status;
        out.stdout = out.stdout_now();
        out.stderr = out.stderr_now();
        out
    }

    /// `create --bundle B [extra...] ID` (writes config.json first).
    pub fn create(&self, b: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.create_with(b, id, extra, |_| {})
    }

    pub fn create_with(&self, b: &Bundle, id: &str, extra: &[&str], customize: impl FnOnce(&mut Command)) -> Output {
        b.save();
        self.track_cgroup(b);
        let bundle = b.dir.display().to_string();
        let mut args = vec!["create", "--bundle", &bundle];
        args.extend_from_slice(extra);
        args.push(id);
        self.run_with(&args, customize)
    }

    fn track_cgroup(&self, b: &Bundle) {
        let cg = b.cgroups_path();
        let mut v = self.cgroups.borrow_mut();
        if !v.contains(&cg) {
            v.push(cg);
        }
    }

    /// `run --bundle B [extra...] ID` in the foreground.
    pub fn run_container(&self, b: &Bundle, id: &str, extra: &[&str]) -> Output {
        b.save();
        self.track_cgroup(b);
        let bundle = b.dir.display().to_string();
        let mut args = vec!["run", "--bundle", &bundle];
        args.extend_from_slice(extra);
        args.push(id);
        self.run(&args)
    }

    /// Spawns `run --bundle B [extra...] ID` without waiting.
    pub fn spawn_run(&self, b: &Bundle, id: &str, extra: &[&str]) -> (Child, Output) {
        b.save();
        self.track_cgroup(b);
        let bundle = b.dir.display().to_string();
        let mut args = vec!["run", "--bundle", &bundle];
        args.extend_from_slice(extra);
        args.push(id);
        self.spawn_with(&args, |_| {})
    }

    pub fn start(&self, id: &str) -> Output {
        self.run(&["start", id])
    }

    pub fn kill(&self, id: &str, sig: &str) -> Output {
        self.run(&["kill", id, sig])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.run(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.run(&["delete", "--force", id])
    }

    /// `state ID` parsed, or None when the command fails.
    pub fn state(&self, id: &str) -> Option<Value> {
        let o = self.run(&["state", id]);
        if !o.success() {
            return None;
        }
        Some(serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state is not JSON ({e}): {o}")))
    }

    #[track_caller]
    pub fn state_ok(&self, id: &str) -> Value {
        let o = self.run(&["state", id]).ok();
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state is not JSON ({e}): {o}"))
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id).and_then(|s| s["status"].as_str().map(String::from))
    }

    /// Polls `state` until status == `want`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = None;
        let ok = crate::poll_for(crate::TIMEOUT, || {
            last = self.status(id);
            (last.as_deref() == Some(want)).then_some(())
        });
        assert!(
            ok.is_some(),
            "container {id} never became {want:?}; last status {last:?}"
        );
    }

    /// The init pid from `state`.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        let s = self.state_ok(id);
        i32::try_from(s["pid"].as_i64().unwrap_or_else(|| panic!("no pid in state {s}")))
            .unwrap_or_else(|_| panic!("pid out of range in state {s}"))
    }

    /// create + start, returning create's Output (its stdout file collects container output).
    #[track_caller]
    pub fn create_start(&self, b: &Bundle, id: &str) -> Output {
        let c = self.create(b, id, &[]).ok();
        self.start(id).ok();
        c
    }

    /// create + start + wait stopped; returns the container's stdout.
    #[track_caller]
    pub fn run_to_stop(&self, b: &Bundle, id: &str) -> String {
        let c = self.create_start(b, id);
        self.wait_status(id, "stopped");
        c.stdout_now()
    }

    /// Asserts that nothing is left of a container whose create failed.
    #[track_caller]
    pub fn assert_no_residue(&self, id: &str, b: &Bundle) {
        let entries: Vec<String> = fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !entries.iter().any(|e| e.contains(id)),
            "state dir left under --root {}: {entries:?}",
            self.root.display()
        );
        let st = self.run(&["state", id]);
        assert!(!st.success(), "state still works after a failed create: {st}");
        let mounts = host::mounts_mentioning(&b.dir.display().to_string());
        assert!(mounts.is_empty(), "mounts left mentioning the bundle: {mounts:#?}");
        let cg = host::cgroup_dirs(&b.cgroups_path());
        assert!(cg.is_empty(), "cgroup dirs left: {cg:?}");
        // A process may take a moment to be reaped by its new parent.
        let left = crate::poll_for(Duration::from_secs(5), || {
            let p = host::pids_with_cmdline(id);
            p.is_empty().then_some(())
        });
        assert!(
            left.is_some(),
            "processes left whose cmdline mentions {id}: {:?}",
            host::pids_with_cmdline(id)
        );
    }
}

/// Builds the Command for a runtime binary. For crun (1.8 refuses this hybrid host) it is run in
/// a private mount namespace with an empty tmpfs over /sys/fs/cgroup/unified; the host is never
/// changed (`unshare -m --propagation private`).
pub fn runtime_command(runtime: &Path, argv: &[String]) -> Command {
    if crun_needs_wrap(runtime) {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg("mount -t tmpfs -o size=4k moor-it-empty /sys/fs/cgroup/unified && exec \"$@\"")
            .arg("sh")
            .arg(runtime)
            .args(argv);
        c
    } else {
        let mut c = Command::new(runtime);
        c.args(argv);
        c
    }
}

fn crun_needs_wrap(runtime: &Path) -> bool {
    std::env::var_os("MOOR_IT_NO_CRUN_WRAP").is_none()
        && runtime
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("crun"))
        && Path::new("/sys/fs/cgroup/unified").is_dir()
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // delete --force every id we handed out (ignore failures: most are already gone).
        for id in self.ids.borrow().iter() {
            let argv = self.argv(&["delete", "--force", id]);
            if let Ok(mut child) = self
                .raw_command(&argv)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                let done = crate::poll_for(Duration::from_secs(20), || child.try_wait().ok().flatten());
                if done.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        // A buggy runtime may leave processes behind (e.g. an init blocked before exec): kill
        // anything whose cmdline names one of our ids (ids are unique to this test process).
        for id in self.ids.borrow().iter() {
            for pid in host::pids_with_cmdline(id) {
                eprintln!("cleanup: killing leftover process {pid} naming {id}");
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        for cg in self.cgroups.borrow().iter() {
            host::remove_cgroup(cg);
        }
        let mut dirs = self.dirs.borrow().clone();
        dirs.push(self.work.clone());
        for d in dirs {
            let ds = d.display().to_string();
            // Never recurse into a still-mounted tree (a bind mount of a host dir).
            let mounted: Vec<String> = host::mounts_mentioning(&ds)
                .iter()
                .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
                .collect();
            for m in mounted.iter().rev() {
                eprintln!("cleanup: lazily unmounting leaked mount {m}");
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
            if host::mounts_mentioning(&ds).is_empty() {
                let _ = fs::remove_dir_all(&d);
            } else {
                eprintln!("cleanup: leaving {ds}: still mounted");
            }
        }
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        *active -= 1;
        if *active == 0 {
            host::remove_cgroup_parents();
        }
    }
}

/// Makes `fd` appear as `target` (without CLOEXEC) in the spawned runtime only.
pub fn pass_fd(cmd: &mut Command, fd: std::os::fd::RawFd, target: std::os::fd::RawFd) {
    // SAFETY: the hook runs in the forked child before exec and makes only async-signal-safe
    // calls (fcntl, dup2) on plain integers.
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                let fl = libc::fcntl(fd, libc::F_GETFD);
                if fl < 0 || libc::fcntl(fd, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
