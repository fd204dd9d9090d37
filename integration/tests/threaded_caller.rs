//! A multi-threaded caller (what a containerd shim or a pod agent is) drives moor as a library
//! through its supported path, `moor::Helper`: create, start, state, exec, kill,
//! delete, 200 times from several threads. Every exit status must reach the caller (init and
//! the exec'd processes are its children), nothing may hang, and nothing may be left: no
//! process, no child, no state, no cgroup. The library's own guard is checked too: a
//! threaded caller of `Runtime::create` gets `Error::ThreadedCaller`, and a dead helper is
//! `Error::HelperGone`.
//!
//! This tests moor's library, not a runtime binary: it skips, loudly, when RUNTIME is not
//! moor. Its own `main` (no libtest harness): the helper must be forked while the process is
//! still single-threaded, which a libtest process never is.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moor::ExecOptions;
use moor::Helper;
use moor::Stdio;
use moor::{CreateOptions, Error, Runtime};
use moor_integration::bundle::{build_rootfs, default_config, temp_dir};
use moor_integration::{host, require_root, runtime_is, skip};

const THREADS: usize = 4;
const ROUNDS: usize = 50;
/// The whole run; a hang anywhere fails it.
const DEADLINE: Duration = Duration::from_secs(600);

fn null() -> OwnedFd {
    OwnedFd::from(fs::File::options().read(true).write(true).open("/dev/null").unwrap())
}

fn null_stdio() -> Stdio {
    Stdio {
        stdin: null(),
        stdout: null(),
        stderr: null(),
    }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> (fs::File, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (fs::File::from(r), w)
}

/// Our children (zombies included), but not `except`.
fn children(except: &[i32]) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) && !except.contains(&pid) {
            out.push(format!(
                "pid {pid} ({}) state {}",
                stat.split(')').next().unwrap_or(""),
                fields[0]
            ));
        }
    }
    out
}

/// One container's whole life through the helper; every status checked.
fn round(helper: &Helper, rt: &Runtime, rootfs: &Path, id: &str) -> Result<(), String> {
    let bundle = bundle_running(rootfs, id, &["sleep", "100"]);
    let result = (|| {
        let opts = CreateOptions {
            bundle: bundle.clone(),
            stdio: Some(null_stdio()),
            ..Default::default()
        };
        let created = helper.create(id, &opts).map_err(|e| format!("create: {e}"))?;
        drop(opts);
        if created.state.pid != created.init.pid {
            return Err(format!(
                "create: state pid {} but init {}",
                created.state.pid, created.init.pid
            ));
        }
        helper.start(id).map_err(|e| format!("start: {e}"))?;
        let state = helper.state(id).map_err(|e| format!("state: {e}"))?;
        if state.status != moor::Status::Running || state.pid != created.init.pid {
            return Err(format!("state after start: {:?} pid {}", state.status, state.pid));
        }
        // An exec that fails after its clone: the helper kills the process, the client reaps it
        // (the final check finds no child left).
        let mut missing = rt.process_template(id).map_err(|e| format!("template: {e}"))?;
        missing.set_args(Some(vec!["/nonexistent-tc".into()]));
        let failing = ExecOptions {
            process: Some(missing),
            stdio: Some(null_stdio()),
            ..Default::default()
        };
        if let Ok(c) = helper.exec(id, &failing) {
            return Err(format!("exec of a missing program started pid {}", c.pid));
        }
        let (mut out_r, out_w) = pipe();
        let mut process = rt.process_template(id).map_err(|e| format!("template: {e}"))?;
        process.set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            "echo out-$0; exit 7".into(),
            id.into(),
        ]));
        let opts = ExecOptions {
            process: Some(process),
            stdio: Some(Stdio {
                stdin: null(),
                stdout: out_w,
                stderr: null(),
            }),
            ..Default::default()
        };
        let exec = helper.exec(id, &opts).map_err(|e| format!("exec: {e}"))?;
        drop(opts);
        let mut said = String::new();
        out_r
            .read_to_string(&mut said)
            .map_err(|e| format!("read exec output: {e}"))?;
        let code = exec.wait().map_err(|e| format!("wait for exec: {e}"))?;
        if code != 7 || said != format!("out-{id}\n") {
            return Err(format!("exec: exit {code}, said {said:?}"));
        }
        helper
            .kill(id, libc::SIGKILL, false)
            .map_err(|e| format!("kill: {e}"))?;
        let code = created.init.wait().map_err(|e| format!("wait for init: {e}"))?;
        if code != 128 + libc::SIGKILL {
            return Err(format!("init: exit {code}, not death by SIGKILL"));
        }
        helper.delete(id, false).map_err(|e| format!("delete: {e}"))?;
        match helper.state(id) {
            Err(Error::DoesNotExist(_)) => Ok(()),
            other => Err(format!("state after delete: {other:?}")),
        }
    })();
    if result.is_err() {
        let _ = helper.delete(id, true);
    }
    let _ = fs::remove_dir_all(&bundle);
    result
}

/// The blocked-signal mask of this thread.
fn signal_mask() -> Vec<i32> {
    // SAFETY: sigset_t is plain data; a NULL new set only reads the mask.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut set) };
    // SAFETY: sigismember reads the set filled above.
    (1..libc::SIGRTMAX())
        .filter(|s| unsafe { libc::sigismember(&set, *s) } == 1)
        .collect()
}

fn dumpable() -> i32 {
    // SAFETY: PR_GET_DUMPABLE takes no pointer.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }
}

fn bundle_running(rootfs: &Path, id: &str, args: &[&str]) -> PathBuf {
    let bundle = temp_dir("tc-bundle");
    let mut config = default_config(id, args);
    config["root"] = serde_json::json!({ "path": rootfs, "readonly": true });
    fs::write(bundle.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    bundle
}

/// Still single-threaded, the library in this process: the container gets exactly the extra
/// fds given (as 3, ...) and the socket-activation variables; neither create nor run changes
/// the caller's dumpable flag or signal mask, and run reaps only its own container (an
/// unrelated child's status stays ours).
fn in_process(rt: &Runtime, rootfs: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let (mask, dump) = (signal_mask(), dumpable());
    let id = format!("tc-{}-inproc", std::process::id());
    let bundle = bundle_running(rootfs, &id, &["sh", "-c", "echo extra-$LISTEN_FDS-$LISTEN_PID >&3"]);
    let (mut extra_r, extra_w) = pipe();
    let opts = CreateOptions {
        bundle: bundle.clone(),
        stdio: Some(null_stdio()),
        extra_fds: vec![extra_w],
        listen_fds: 1,
        ..Default::default()
    };
    let result = (|| -> Result<(), String> {
        let created = rt.create(&id, &opts).map_err(|e| format!("create: {e}"))?;
        drop(opts);
        rt.start(&id).map_err(|e| format!("start: {e}"))?;
        let mut said = String::new();
        extra_r
            .read_to_string(&mut said)
            .map_err(|e| format!("read fd 3: {e}"))?;
        let code = created.init.wait().map_err(|e| format!("wait for init: {e}"))?;
        if said != "extra-1-1\n" || code != 0 {
            return Err(format!("the workload said {said:?} on its fd 3 and exited {code}"));
        }
        rt.delete(&id, false).map_err(|e| format!("delete: {e}"))
    })();
    if let Err(e) = result {
        failures.push(format!("in-process create: {e}"));
        let _ = rt.delete(&id, true);
    }
    let _ = fs::remove_dir_all(&bundle);

    let mut unrelated = std::process::Command::new("sleep").arg("0.5").spawn().unwrap();
    let id = format!("tc-{}-run", std::process::id());
    let bundle = bundle_running(rootfs, &id, &["sh", "-c", "sleep 1; exit 3"]);
    let opts = CreateOptions {
        bundle: bundle.clone(),
        stdio: Some(null_stdio()),
        ..Default::default()
    };
    match rt.run(&id, &opts, false) {
        Ok(3) => {}
        other => failures.push(format!("in-process run: {other:?}, not exit 3")),
    }
    match unrelated.wait() {
        Ok(st) if st.success() => {}
        other => failures.push(format!("an unrelated child of the caller after run: {other:?}")),
    }
    let _ = fs::remove_dir_all(&bundle);
    if signal_mask() != mask {
        failures.push(format!(
            "signal mask {:?} after create and run, {mask:?} before",
            signal_mask()
        ));
    }
    if dumpable() != dump {
        failures.push(format!("dumpable {} after create and run, {dump} before", dumpable()));
    }
    failures
}

fn main() {
    require_root!();
    if !runtime_is("moor") {
        skip!(
            "this drives moor's library (moor::Helper), not RUNTIME={}",
            moor_integration::runtime_path().display()
        );
    }
    let base = temp_dir("tc-rootfs");
    let rootfs = base.join("rootfs");
    build_rootfs(&rootfs);
    let state_root = temp_dir("tc-state");
    let rt = Runtime::new(&state_root);
    let mut failures = in_process(&rt, &rootfs);
    let helper = Helper::spawn(&state_root).expect("spawn the helper while single-threaded");

    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if started.elapsed() > DEADLINE {
                    eprintln!("threaded_caller: no end after {DEADLINE:?}: a hang");
                    std::process::exit(1);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        // Threads are running now: the library refuses to clone here.
        let probe = PathBuf::from("/nonexistent-bundle");
        let refused = rt.create(
            "tc-refused",
            &CreateOptions {
                bundle: probe,
                ..Default::default()
            },
        );
        match refused {
            Err(Error::ThreadedCaller { threads }) if threads >= 2 => {}
            other => failures.push(format!("Runtime::create from a threaded caller: {other:?}")),
        }
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (helper, rt, rootfs) = (&helper, &rt, &rootfs);
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for i in 0..ROUNDS {
                        let id = format!("tc-{}-{t}-{i}", std::process::id());
                        if i % 10 == 0 {
                            // A create that fails after the clone (no such program): the same.
                            let bundle = bundle_running(rootfs, &id, &["/nonexistent-tc"]);
                            let opts = CreateOptions {
                                bundle: bundle.clone(),
                                stdio: Some(null_stdio()),
                                ..Default::default()
                            };
                            if let Ok(c) = helper.create(&id, &opts) {
                                failed.push(format!("{id}: create of a missing program made pid {}", c.init.pid));
                                let _ = helper.delete(&id, true);
                            }
                            let _ = fs::remove_dir_all(&bundle);
                        }
                        if let Err(e) = round(helper, rt, rootfs, &id) {
                            failed.push(format!("{id}: {e}"));
                        }
                    }
                    failed
                })
            })
            .collect();
        for w in workers {
            failures.extend(w.join().unwrap_or_else(|_| vec!["a worker panicked".into()]));
        }
        done.store(true, Ordering::SeqCst);
    });
    eprintln!(
        "threaded_caller: {} rounds on {THREADS} threads in {:?}",
        THREADS * ROUNDS,
        started.elapsed()
    );

    let left = children(&[helper.pid()]);
    if !left.is_empty() {
        failures.push(format!("children left: {left:?}"));
    }
    let states: Vec<_> = fs::read_dir(&state_root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    if !states.is_empty() {
        failures.push(format!("state left under {}: {states:?}", state_root.display()));
    }
    for h in host::cgroup_hierarchies() {
        let dirs: Vec<_> = fs::read_dir(h.join("moor-it"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("tc-{}-", std::process::id()))
            })
            .map(|e| e.path())
            .collect();
        if !dirs.is_empty() {
            failures.push(format!("cgroups left: {dirs:?}"));
        }
    }

    // A helper that dies is a typed error, not a hang; dropping the handle reaps it.
    let helper_pid = helper.pid();
    // SAFETY: our own child, the helper.
    unsafe { libc::kill(helper_pid, libc::SIGKILL) };
    match helper.state("tc-after-death") {
        Err(Error::HelperGone(_)) => {}
        other => failures.push(format!("a call to a dead helper: {other:?}")),
    }
    drop(helper);
    let left = children(&[]);
    if !left.is_empty() {
        failures.push(format!("children left after dropping the helper: {left:?}"));
    }

    // Its threads joined, the process may spawn a helper again; dropping it ends the helper by
    // EOF alone (the drop would kill it only after 10 s).
    match Helper::spawn(&state_root) {
        Ok(h) => {
            let _ = h.state("tc-none");
            let t = Instant::now();
            drop(h);
            if t.elapsed() > Duration::from_secs(5) {
                failures.push(format!("the helper took {:?} to exit at EOF", t.elapsed()));
            }
        }
        Err(e) => failures.push(format!("spawn a helper once single-threaded again: {e}")),
    }
    let left = children(&[]);
    if !left.is_empty() {
        failures.push(format!("children left after the second helper: {left:?}"));
    }

    let _ = fs::remove_dir_all(&base);
    let _ = fs::remove_dir(&state_root);
    if !failures.is_empty() {
        eprintln!(
            "threaded_caller: {} failure(s):\n{}",
            failures.len(),
            failures.join("\n")
        );
        std::process::exit(1);
    }
    eprintln!("threaded_caller: ok");
}
