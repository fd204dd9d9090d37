//! Security group, part 1: one regression test per published container-runtime breakout.
//!
//! Each test rebuilds the attack against the runtime under test (a private copy of it where the
//! attack targets the binary). The "victims" are decoy files and dirs in fresh temp dirs
//! ([`Decoy`]); no attack is ever pointed at a real host path. A runtime may refuse an attack
//! (create/start fails): that passes, as long as nothing outside the rootfs changed. See
//! `integration/security/README.md` for what each test attacks and how runc and crun fare.

use moor_integration::attack::{
    install_attacker, run_or_refuse, snapshot, start_or_refuse, Decoy, Outcome, RuntimeCopy,
};
use moor_integration::bundle::temp_dir;
use moor_integration::console::read_until;
use moor_integration::host::{cap_mask, parse_cap_hex, status_field, SysctlGuard};
use moor_integration::runner::pass_fd;
use moor_integration::{poll_for, require_root, Bundle, ConsoleReceiver, Ctx, TIMEOUT};
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

/// Panics listing every violation (so one run reports all variants of an attack).
#[track_caller]
fn assert_no_violations(cve: &str, v: &[String]) {
    assert!(v.is_empty(), "{cve}: {} violation(s):\n\n{}", v.len(), v.join("\n\n"));
}

/// Drops the config's tmpfs on /dev, so the runtime populates the rootfs's own /dev (where the
/// attacker's planted symlinks are).
fn no_dev_tmpfs(b: &mut Bundle) {
    if let Some(a) = b.at("/mounts").as_array_mut() {
        a.retain(|m| m["destination"] != "/dev");
    }
}

/// `../` repeated enough to climb from the rootfs to `/`, then `target` (absolute).
fn relative_escape(target: &Path) -> String {
    format!(
        "{}{}",
        "../".repeat(16),
        target.display().to_string().trim_start_matches('/')
    )
}

fn replace_with_symlink(rootfs: &Path, rel: &str, target: &str) {
    let p = rootfs.join(rel);
    if p.is_dir() && !p.is_symlink() {
        fs::remove_dir_all(&p).unwrap();
    } else if p.symlink_metadata().is_ok() {
        fs::remove_file(&p).unwrap();
    }
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    symlink(target, &p).unwrap();
}

// ---------------------------------------------------------------------------------------------
// CVE-2019-5736 and CVE-2016-9962: an attacker inside the container aims at the runtime process
// that enters it.
// ---------------------------------------------------------------------------------------------

struct Session {
    attacker: String,
    binary_modified: bool,
    notes: Vec<String>,
}

/// Starts container A running the attacker (`/attack.sh`) on a private copy of the runtime, then
/// makes runtime processes enter A's pid namespace: `exec` of each of `execs` (twice), a second
/// container J joining A's pid namespace with `joiner` as its workload (kept in the created state
/// until the attacker has seen it), and a third one started with `run` running `runner`.
fn attack_session(tag: &str, execs: &[&[&str]], joiner: &[&str], runner: &[&str]) -> Session {
    let copy = RuntimeCopy::new();
    let mut notes = Vec::new();
    let (attacker, modified) = {
        let ctx = Ctx::with_runtime(tag, copy.path.clone());
        let (a, ba) = ctx.bundle(&["sh", "/attack.sh", "8"]);
        install_attacker(&ba);
        let ca = ctx.create(&ba, &a, &[]).ok();
        ctx.start(&a).ok();
        moor_integration::poll_until(TIMEOUT, "attacker READY", || {
            ca.stdout_now().contains("READY").then_some(())
        });
        let pid = ctx.pid(&a);
        let pidns = format!("/proc/{pid}/ns/pid");
        let candidates = |s: &str| s.matches("CANDIDATE").count();

        // A container joining the attacker's pid namespace: its init is a runtime process inside
        // that namespace for the whole created state.
        let (j, mut bj) = ctx.bundle(joiner);
        install_attacker(&bj);
        bj.set_namespace("pid", Some(&pidns));
        let before = candidates(&ca.stdout_now());
        let cj = ctx.create(&bj, &j, &[]);
        if cj.success() {
            let seen = poll_for(Duration::from_secs(3), || {
                (candidates(&ca.stdout_now()) > before).then_some(())
            });
            if seen.is_none() {
                notes.push("the attacker never saw the joining container's init".to_string());
            }
            let _ = ctx.start(&j);
        } else {
            notes.push(format!("joining container not created: {cj}"));
        }
        for args in execs {
            for _ in 0..2 {
                let mut v = vec!["exec", a.as_str()];
                v.extend_from_slice(args);
                let _ = ctx.run(&v);
            }
        }
        let (r, mut br) = ctx.bundle(runner);
        install_attacker(&br);
        br.set_namespace("pid", Some(&pidns));
        let _ = ctx.run_container(&br, &r, &[]);
        ctx.wait_status(&a, "stopped");
        let out = ca.stdout_now();
        let modified = copy.modified();
        if modified {
            // Let the cleanup in Ctx's drop run with a working binary.
            copy.restore();
        }
        (out, modified)
    };
    Session {
        attacker,
        binary_modified: modified,
        notes,
    }
}

/// CVE-2019-5736: the container's workload is `/proc/self/exe` (or a script whose interpreter is
/// `#!/proc/self/exe`), so that the process the runtime starts inside the container re-executes
/// the runtime's own binary; an attacker process in the same pid namespace opens
/// `/proc/PID/exe` of any runtime process it sees and, once the binary is no longer busy, reopens
/// it for writing through `/proc/self/fd/N`. Covers `exec`, `create`/`start` of a container
/// joining the pid namespace, and `run`. Runs against a copy of the runtime; the copy must be
/// byte-for-byte unchanged afterwards.
#[test]
fn cve_2019_5736_proc_self_exe_overwrite() {
    require_root!();
    let s = attack_session(
        "cve20195736",
        &[&["/proc/self/exe"], &["/evil.sh"], &["/proc/self/exe", "--version"]],
        &["/proc/self/exe"],
        &["/evil.sh"],
    );
    eprintln!("attacker output:\n{}\nnotes: {:?}", s.attacker, s.notes);
    assert!(
        s.attacker.contains("ATTACK-DONE"),
        "the attacker did not finish:\n{}",
        s.attacker
    );
    assert!(
        !s.binary_modified,
        "CVE-2019-5736: the container overwrote the runtime binary (a copy in a temp dir).\n\
         attacker output:\n{}",
        s.attacker
    );
}

/// CVE-2016-9962: a runtime process that joins the container (the init of a container joining
/// this pid namespace, kept in the created state; each `exec`) must be non-dumpable until it
/// exec's the workload, so a process in the container cannot read its `/proc/PID/exe`, list
/// `/proc/PID/fd`, or walk `/proc/PID/cwd` and `/proc/PID/root` (which may still be host dirs).
#[test]
fn cve_2016_9962_runtime_entering_container_is_not_dumpable() {
    require_root!();
    let s = attack_session("cve20169962", &[&["true"], &["sleep", "0"]], &["sleep", "1"], &["true"]);
    eprintln!("attacker output:\n{}\nnotes: {:?}", s.attacker, s.notes);
    let bad: Vec<&str> = s
        .attacker
        .lines()
        .filter(|l| {
            ["EXE-READABLE", "FD-LIST", "CWD-LIST", "ROOT-LIST"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect();
    assert!(
        s.attacker.contains("CANDIDATE"),
        "the attacker never saw a runtime process in its pid namespace (test would be vacuous); \
         notes: {:?}\n{}",
        s.notes,
        s.attacker
    );
    assert!(
        bad.is_empty(),
        "CVE-2016-9962: a runtime process inside the container was dumpable (its /proc entries were \
         readable from the container):\n{}\n\nfull attacker output:\n{}",
        bad.join("\n"),
        s.attacker
    );
}

// ---------------------------------------------------------------------------------------------
// CVE-2024-21626: working directory through a leaked fd.
// ---------------------------------------------------------------------------------------------

/// Climbs `..` from the cwd as far as it goes and compares that with `/`: inside the root they are
/// the same directory; from a host directory the climb ends at the host's root.
const CWD_PROBE: &str =
    "r=$(stat -c %d:%i /); t=$(cd -P ../../../../../../../../../../.. 2>/dev/null && stat -c %d:%i .); \
     if [ \"$r\" = \"$t\" ]; then echo CWD-INSIDE; else echo \"CWD-ESCAPED top=$t root=$r\"; fi; ls -a; echo PROBE-END";

fn cwd_violation(what: &str, out: &str, marker: &str) -> Option<String> {
    (out.contains("CWD-ESCAPED") || out.contains(marker))
        .then(|| format!("{what}: the process's cwd is outside the container's root:\n{out}"))
}

/// CVE-2024-21626 (run): `process.cwd` = `/proc/self/fd/N` for N = 3..12, first with only the
/// runtime's own fds (runc leaked an fd of the host's /sys/fs/cgroup), then with a host directory
/// fd leaked by the caller of the runtime at every N. The process must not start with a cwd
/// outside the container's root (refusing is fine).
#[test]
fn cve_2024_21626_run_cwd_through_leaked_fd() {
    require_root!();
    let ctx = Ctx::new("cve202421626run");
    let hostdir = temp_dir("hostdir");
    ctx.own_dir(hostdir.clone());
    let marker = "HOST-MARKER-21626";
    fs::write(hostdir.join(marker), "x").unwrap();
    let d = fs::File::open(&hostdir).unwrap();
    let mut v = Vec::new();
    for leak in [false, true] {
        for n in 3..=12 {
            let (id, mut b) = ctx.bundle(&["sh", "-c", CWD_PROBE]);
            b.set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
            b.save();
            let bundle = b.path().display().to_string();
            let o = ctx.run_with(&["run", "--bundle", &bundle, &id], |c| {
                if leak {
                    for t in 3..=12 {
                        pass_fd(c, d.as_raw_fd(), t);
                    }
                }
            });
            let what = format!("run, cwd /proc/self/fd/{n}, caller leaked host dir fds: {leak}");
            if let Some(e) = cwd_violation(&what, &format!("{}{}", o.stdout, o.stderr), marker) {
                v.push(e);
            }
            ctx.delete_force(&id);
        }
    }
    assert_no_violations("CVE-2024-21626", &v);
}

/// CVE-2024-21626 (exec): `exec --cwd /proc/self/fd/N` into a running container, with and without
/// a host directory fd leaked by the caller at every N.
#[test]
fn cve_2024_21626_exec_cwd_through_leaked_fd() {
    require_root!();
    let ctx = Ctx::new("cve202421626exec");
    let hostdir = temp_dir("hostdir");
    ctx.own_dir(hostdir.clone());
    let marker = "HOST-MARKER-21626";
    fs::write(hostdir.join(marker), "x").unwrap();
    let d = fs::File::open(&hostdir).unwrap();
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b, &id);
    let mut v = Vec::new();
    for leak in [false, true] {
        for n in 3..=12 {
            let cwd = format!("/proc/self/fd/{n}");
            let o = ctx.run_with(&["exec", "--cwd", &cwd, &id, "sh", "-c", CWD_PROBE], |c| {
                if leak {
                    for t in 3..=12 {
                        pass_fd(c, d.as_raw_fd(), t);
                    }
                }
            });
            let what = format!("exec --cwd {cwd}, caller leaked host dir fds: {leak}");
            if let Some(e) = cwd_violation(&what, &format!("{}{}", o.stdout, o.stderr), marker) {
                v.push(e);
            }
        }
    }
    ctx.delete_force(&id);
    assert_no_violations("CVE-2024-21626", &v);
}

// ---------------------------------------------------------------------------------------------
// Mount targets through symlinks.
// ---------------------------------------------------------------------------------------------

/// CVE-2021-30465: a bind-mount destination that is a symlink in the rootfs pointing outside it
/// (`/a -> <host decoy dir>`, absolute and as `../../..` relative). The runtime must resolve the
/// destination inside the rootfs (the bind then shows at `/a` in the container) or refuse; it must
/// never mount onto the host decoy.
#[test]
fn cve_2021_30465_bind_mount_destination_symlink_stays_in_rootfs() {
    require_root!();
    let ctx = Ctx::new("cve202130465");
    let src = temp_dir("bindsrc");
    ctx.own_dir(src.clone());
    fs::write(src.join("SRC-MARKER"), "bind-source-content\n").unwrap();
    let mut v = Vec::new();
    for relative in [false, true] {
        let decoy = Decoy::dir(&ctx, "30465");
        let (id, mut b) = ctx.bundle(&["sh", "-c", "cat /a/SRC-MARKER; ls -a /a; echo END"]);
        let target = if relative {
            relative_escape(&decoy.path)
        } else {
            decoy.path_str()
        };
        replace_with_symlink(&b.rootfs(), "a", &target);
        b.push_mount(json!({"destination": "/a", "type": "bind", "source": src, "options": ["rbind", "rw"]}));
        let what = format!("dest /a -> {target}");
        let o = run_or_refuse(&ctx, &b, &id);
        if let Err(e) = decoy.check() {
            v.push(format!("{what}: {e}"));
        }
        if let Outcome::Ran { stdout, stderr } = &o {
            if !stdout.contains("bind-source-content") {
                v.push(format!(
                    "{what}: create succeeded but the bind mount is not visible at /a inside the \
                     container (it landed outside the rootfs):\n{stdout}{stderr}"
                ));
            }
        }
    }
    assert_no_violations("CVE-2021-30465", &v);
}

/// CVE-2024-45310: creating a missing mount target through a symlinked parent must not create
/// files or dirs outside the rootfs: `/b/sub` (dir bind) and `/c/file` (file bind) with `/b`, `/c`
/// -> a host decoy dir; `/d` and `/e/x/y` with `/d`, `/e` -> a host path that does not exist;
/// `/f/t` (tmpfs) with `/f` -> a host decoy dir.
#[test]
fn cve_2024_45310_mount_target_creation_through_symlink() {
    require_root!();
    let ctx = Ctx::new("cve202445310");
    let src = temp_dir("bindsrc");
    ctx.own_dir(src.clone());
    fs::create_dir(src.join("dir")).unwrap();
    fs::write(src.join("file"), "bind-source-file\n").unwrap();
    let mut v = Vec::new();
    // (link in rootfs, mount destination, mount type, source, decoy kind)
    let cases: &[(&str, &str, &str, &str, bool)] = &[
        ("b", "/b/sub", "bind", "dir", true),
        ("c", "/c/file", "bind", "file", true),
        ("d", "/d", "bind", "dir", false),
        ("e", "/e/x/y", "bind", "dir", false),
        ("f", "/f/t", "tmpfs", "", true),
    ];
    for (link, dest, ty, source, existing) in cases {
        let decoy = if *existing {
            Decoy::dir(&ctx, "45310")
        } else {
            Decoy::missing(&ctx, "45310")
        };
        let (id, mut b) = ctx.bundle(&["true"]);
        replace_with_symlink(&b.rootfs(), link, &decoy.path_str());
        if *ty == "bind" {
            b.push_mount(json!({"destination": dest, "type": "bind",
                "source": src.join(source), "options": ["rbind", "rw"]}));
        } else {
            b.push_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        }
        let _ = run_or_refuse(&ctx, &b, &id);
        if let Err(e) = decoy.check() {
            v.push(format!(
                "mount {ty} at {dest} with /{link} -> {}: {e}",
                decoy.path_str()
            ));
        }
    }
    assert_no_violations("CVE-2024-45310", &v);
}

// ---------------------------------------------------------------------------------------------
// procfs write redirection.
// ---------------------------------------------------------------------------------------------

/// Fills `dir` with files named like the procfs files a runtime writes, holding "0".
fn fake_proc_tree(dir: &Path) {
    for f in [
        "self/oom_score_adj",
        "self/attr/exec",
        "self/attr/current",
        "self/attr/apparmor/exec",
        "sys/net/ipv4/ip_forward",
        "sys/kernel/domainname",
    ] {
        let p = dir.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "0\n").unwrap();
    }
}

/// Sets `oomScoreAdj` 100 and `net.ipv4.ip_forward=1`, starts `sleep`, then checks from the host
/// that both landed in the container's real procfs (or that the runtime refused), that the fake
/// files (`fakes`: dirs snapshotted before) are untouched, and that the host sysctl is unchanged.
fn proc_write_attack(ctx: &Ctx, what: &str, b: &mut Bundle, id: &str, fakes: &[&Path], v: &mut Vec<String>) {
    let guard = SysctlGuard::new(&["net.ipv4.ip_forward"]);
    b.set("/process/oomScoreAdj", json!(100));
    b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}));
    b.set_args(&["sleep", "1000"]);
    let before: Vec<_> = fakes.iter().map(|f| snapshot(f)).collect();
    match start_or_refuse(ctx, b, id) {
        Err(e) => eprintln!("{what}: refused (fine): {}", e.lines().last().unwrap_or_default()),
        Ok(_) => {
            let pid = ctx.pid(id);
            let oom = fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap_or_default();
            if oom.trim() != "100" {
                v.push(format!(
                    "{what}: oomScoreAdj 100 not applied to the container (it has {:?})",
                    oom.trim()
                ));
            }
            let fw = std::process::Command::new("nsenter")
                .args(["-t", &pid.to_string(), "-n", "cat", "/proc/sys/net/ipv4/ip_forward"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if fw != "1" {
                v.push(format!(
                    "{what}: sysctl net.ipv4.ip_forward=1 not applied in the container's netns (it has {fw:?})"
                ));
            }
            ctx.delete_force(id);
        }
    }
    for (f, s) in fakes.iter().zip(before) {
        if snapshot(f) != s {
            v.push(format!(
                "{what}: the runtime wrote into the fake procfs files at {}",
                f.display()
            ));
        }
    }
    let ch = guard.changed();
    if !ch.is_empty() {
        v.push(format!("{what}: host sysctls changed: {ch:?}"));
    }
}

/// CVE-2019-16884: the rootfs's `/proc` is a symlink to a plain dir of fake procfs files inside
/// the rootfs. The runtime's writes (oom_score_adj, sysctls, LSM attrs) must reach the real procfs
/// or the runtime must refuse.
#[test]
fn cve_2019_16884_proc_symlink_does_not_redirect_proc_writes() {
    require_root!();
    let ctx = Ctx::new("cve201916884");
    let mut v = Vec::new();
    let (id, mut b) = ctx.bundle(&["true"]);
    let fake = b.rootfs().join("fakeproc");
    fake_proc_tree(&fake);
    replace_with_symlink(&b.rootfs(), "proc", "/fakeproc");
    proc_write_attack(&ctx, "/proc -> /fakeproc", &mut b, &id, &[&fake], &mut v);
    assert_no_violations("CVE-2019-16884", &v);
}

/// CVE-2019-19921: a config bind mount over `/proc` (directly, and through a rootfs symlink
/// `/evil -> /proc`) of a host dir of fake procfs files. The runtime must refuse or keep writing to
/// the real procfs; the host decoy must be untouched.
#[test]
fn cve_2019_19921_mount_over_proc_does_not_redirect_proc_writes() {
    require_root!();
    let ctx = Ctx::new("cve201919921");
    let mut v = Vec::new();
    for via_symlink in [false, true] {
        let mut decoy = Decoy::dir(&ctx, "19921");
        fake_proc_tree(&decoy.path);
        decoy.rebaseline();
        let (id, mut b) = ctx.bundle(&["true"]);
        let dest = if via_symlink {
            replace_with_symlink(&b.rootfs(), "evil", "/proc");
            "/evil"
        } else {
            "/proc"
        };
        b.push_mount(json!({"destination": dest, "type": "bind", "source": decoy.path, "options": ["rbind", "rw"]}));
        let what = format!("bind of a fake proc dir at {dest}");
        proc_write_attack(&ctx, &what, &mut b, &id, &[], &mut v);
        if let Err(e) = decoy.check() {
            v.push(format!("{what}: {e}"));
        }
    }
    assert_no_violations("CVE-2019-19921", &v);
}

/// CVE-2025-52881: config mounts over parts of procfs that the runtime writes to after mounting:
/// a host decoy file bound over `/proc/sys/net/ipv4/ip_forward` and over
/// `/proc/self/oom_score_adj`, a tmpfs over `/proc/sys`, a tmpfs over `/proc/self/attr`. The
/// runtime must refuse or write through a trusted procfs handle: decoys untouched, values applied
/// to the container.
#[test]
fn cve_2025_52881_overmounted_procfs_does_not_redirect_writes() {
    require_root!();
    let ctx = Ctx::new("cve202552881");
    let mut v = Vec::new();
    for dest in ["/proc/sys/net/ipv4/ip_forward", "/proc/self/oom_score_adj"] {
        let decoy = Decoy::file(&ctx, "52881");
        let (id, mut b) = ctx.bundle(&["true"]);
        b.push_mount(json!({"destination": dest, "type": "bind", "source": decoy.path, "options": ["bind", "rw"]}));
        let what = format!("host decoy file bound over {dest}");
        proc_write_attack(&ctx, &what, &mut b, &id, &[], &mut v);
        if let Err(e) = decoy.check() {
            v.push(format!("{what}: {e}"));
        }
    }
    for dest in ["/proc/sys", "/proc/self/attr"] {
        let (id, mut b) = ctx.bundle(&["true"]);
        b.push_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["rw"]}));
        let what = format!("tmpfs over {dest}");
        proc_write_attack(&ctx, &what, &mut b, &id, &[], &mut v);
    }
    assert_no_violations("CVE-2025-52881", &v);
}

/// CVE-2023-27561 / CVE-2023-28642: the rootfs's `/proc` or `/sys` is a symlink to a host decoy
/// dir (absolute path), or `/proc` is a symlink to another dir inside the rootfs. Nothing may be
/// mounted or created in the host decoy; if the container runs, `/proc` must be a real, masked
/// procfs with /proc/sys read-only.
#[test]
fn cve_2023_27561_28642_proc_and_sys_symlinks() {
    require_root!();
    let ctx = Ctx::new("cve202327561");
    let mut v = Vec::new();
    let probe = "echo FSTYPE=$(stat -f -c %T /proc/); echo KEYS=$(stat -c %t:%T /proc/keys); \
                 grep -q . /proc/self/status && echo STATUS-OK; \
                 awk '$5 == \"/proc/sys\" {print \"SYSOPT=\" $6}' /proc/self/mountinfo; echo END";
    for (link, to_host) in [("proc", true), ("sys", true), ("proc", false)] {
        let decoy = Decoy::dir(&ctx, "27561");
        let (id, b) = ctx.bundle(&["sh", "-c", probe]);
        let target = if to_host {
            decoy.path_str()
        } else {
            fs::create_dir(b.rootfs().join("elsewhere")).unwrap();
            "/elsewhere".to_string()
        };
        replace_with_symlink(&b.rootfs(), link, &target);
        let what = format!("/{link} -> {target}");
        let o = run_or_refuse(&ctx, &b, &id);
        if let Err(e) = decoy.check() {
            v.push(format!("{what}: {e}"));
        }
        if let Outcome::Ran { stdout, stderr } = &o {
            let ok = stdout.contains("FSTYPE=proc")
                && stdout.contains("STATUS-OK")
                && stdout.contains("KEYS=1:3")
                && stdout.lines().any(|l| l.starts_with("SYSOPT=ro"));
            if !ok {
                v.push(format!(
                    "{what}: the container ran without a real, masked, read-only-/proc/sys procfs at /proc:\n{stdout}{stderr}"
                ));
            }
        }
    }
    assert_no_violations("CVE-2023-27561/CVE-2023-28642", &v);
}

// ---------------------------------------------------------------------------------------------
// /dev: masking, console, /dev itself.
// ---------------------------------------------------------------------------------------------

/// CVE-2025-31133: maskedPaths are masked by bind-mounting /dev/null over them; if the rootfs's
/// `/dev/null` is a symlink (to a host decoy file, or to a file inside the rootfs) or a regular
/// file, a runtime that trusts it masks with the wrong file (readable, writable) or silently not
/// at all. Masking must use a verified null device (char 1:3) or fail closed. (/dev is not a tmpfs
/// here, so the runtime populates the rootfs's /dev with the planted entry in place.)
#[test]
fn cve_2025_31133_masked_paths_with_fake_dev_null() {
    require_root!();
    let ctx = Ctx::new("cve202531133");
    let mut v = Vec::new();
    let probe = "for p in /proc/keys /proc/timer_list; do echo \"MASK $p $(stat -L -c '%F %t:%T' $p)\"; done; \
                 head -c 100 /proc/keys; head -c 100 /proc/timer_list; \
                 echo OVERWRITTEN > /proc/keys 2>/dev/null; echo END";
    for variant in ["symlink-to-host", "symlink-in-rootfs", "regular-file"] {
        let decoy = Decoy::file(&ctx, "31133");
        let (id, mut b) = ctx.bundle(&["sh", "-c", probe]);
        no_dev_tmpfs(&mut b);
        let inroot = b.rootfs().join("decoy-null");
        fs::write(&inroot, "IN-ROOTFS-DECOY\n").unwrap();
        match variant {
            "symlink-to-host" => replace_with_symlink(&b.rootfs(), "dev/null", &decoy.path_str()),
            "symlink-in-rootfs" => replace_with_symlink(&b.rootfs(), "dev/null", "/decoy-null"),
            _ => fs::write(b.rootfs().join("dev/null"), "NOT-A-DEVICE\n").unwrap(),
        }
        let what = format!("rootfs /dev/null is a {variant}");
        let o = run_or_refuse(&ctx, &b, &id);
        if let Err(e) = decoy.check() {
            v.push(format!("{what}: {e}"));
        }
        let now = fs::read_to_string(&inroot).unwrap_or_default();
        if now != "IN-ROOTFS-DECOY\n" {
            v.push(format!(
                "{what}: the in-rootfs decoy /decoy-null was written; it now holds {now:?}"
            ));
        }
        if variant == "regular-file" {
            let now = fs::read_to_string(b.rootfs().join("dev/null")).unwrap_or_default();
            if now != "NOT-A-DEVICE\n" && !now.is_empty() {
                v.push(format!(
                    "{what}: the planted regular /dev/null was written; it now holds {now:?}"
                ));
            }
        }
        if let Outcome::Ran { stdout, stderr } = &o {
            if !stdout.contains("END") {
                v.push(format!(
                    "{what}: the container's output never reached its stdout (the runtime replaced \
                     the container's stdio with the planted /dev/null?)"
                ));
            }
            let masked = stdout.matches("character special file 1:3").count() == 2;
            let leaked = ["HOST-DECOY-CONTENT", "IN-ROOTFS-DECOY", "NOT-A-DEVICE"]
                .iter()
                .any(|m| stdout.contains(m));
            if !masked || leaked {
                v.push(format!(
                    "{what}: masked paths are not masked with the null device:\n{stdout}{stderr}"
                ));
            }
        }
    }
    assert_no_violations("CVE-2025-31133", &v);
}

/// CVE-2025-52565: with a terminal, the runtime bind-mounts the pty over `/dev/console`. If the
/// rootfs's `/dev/console` is a symlink (to a file inside the rootfs, or to a host decoy file),
/// the runtime must not follow it: the target must not be truncated or mounted over, and
/// `/dev/console` must end up the pty (a char device) or the create must fail.
#[test]
fn cve_2025_52565_dev_console_symlink_not_followed() {
    require_root!();
    let ctx = Ctx::new("cve202552565");
    let mut v = Vec::new();
    for to_host in [false, true] {
        let decoy = Decoy::file(&ctx, "52565");
        let recv_dir = temp_dir("sock");
        ctx.own_dir(recv_dir.clone());
        let recv = ConsoleReceiver::new(&recv_dir);
        let (id, mut b) = ctx.bundle(&[]);
        no_dev_tmpfs(&mut b);
        b.set("/process/terminal", json!(true));
        b.set_sh(
            "echo CONSOLE=$(stat -c %F /dev/console); echo INROOT=$(cat /decoy-console); \
             echo DECOY-MOUNTS=$(grep -c decoy /proc/self/mountinfo); echo END",
        );
        let inroot = b.rootfs().join("decoy-console");
        fs::write(&inroot, "IN-ROOTFS-CONSOLE-DECOY\n").unwrap();
        let target = if to_host {
            decoy.path_str()
        } else {
            "/decoy-console".to_string()
        };
        replace_with_symlink(&b.rootfs(), "dev/console", &target);
        let what = format!("/dev/console -> {target}");
        let sock = recv.path.display().to_string();
        let c = ctx.create(&b, &id, &["--console-socket", &sock]);
        if c.success() {
            match recv.recv(TIMEOUT) {
                Err(e) => v.push(format!("{what}: create succeeded but {e}")),
                Ok(master) => {
                    if ctx.start(&id).success() {
                        let out = read_until(&master, TIMEOUT, |s| s.contains("END"));
                        let ok = out.contains("CONSOLE=character special file")
                            && out.contains("INROOT=IN-ROOTFS-CONSOLE-DECOY")
                            && out.contains("DECOY-MOUNTS=0");
                        if !ok {
                            v.push(format!("{what}: /dev/console handling followed the symlink:\n{out}"));
                        }
                    }
                }
            }
            ctx.delete_force(&id);
        }
        if let Err(e) = decoy.check() {
            v.push(format!("{what}: {e}"));
        }
        if fs::read_to_string(&inroot).unwrap_or_default() != "IN-ROOTFS-CONSOLE-DECOY\n" {
            v.push(format!(
                "{what}: the in-rootfs decoy /decoy-console was truncated or written"
            ));
        }
    }
    assert_no_violations("CVE-2025-52565", &v);
}

/// CVE-2026-41579: the rootfs's `/dev` is a symlink to a host decoy dir (absolute or `../..`
/// relative; with the config's tmpfs on /dev and without it). Device nodes, mounts and links must
/// not be created in the decoy; the runtime must refuse or keep /dev inside the rootfs.
#[test]
fn cve_2026_41579_dev_symlink_in_rootfs() {
    require_root!();
    let ctx = Ctx::new("cve202641579");
    let mut v = Vec::new();
    for (relative, tmpfs) in [(false, true), (true, true), (false, false), (true, false)] {
        let decoy = Decoy::dir(&ctx, "41579");
        let (id, mut b) = ctx.bundle(&["sh", "-c", "echo NULL=$(stat -c '%F %t:%T' /dev/null); echo END"]);
        if !tmpfs {
            no_dev_tmpfs(&mut b);
        }
        let target = if relative {
            relative_escape(&decoy.path)
        } else {
            decoy.path_str()
        };
        replace_with_symlink(&b.rootfs(), "dev", &target);
        let what = format!("/dev -> {target} (tmpfs on /dev: {tmpfs})");
        let o = run_or_refuse(&ctx, &b, &id);
        if let Err(e) = decoy.check() {
            v.push(format!("{what}: {e}"));
        }
        if let Outcome::Ran { stdout, stderr } = &o {
            if !stdout.contains("NULL=character special file 1:3") {
                v.push(format!(
                    "{what}: container ran without a working /dev/null:\n{stdout}{stderr}"
                ));
            }
        }
    }
    assert_no_violations("CVE-2026-41579", &v);
}

// ---------------------------------------------------------------------------------------------
// Credentials.
// ---------------------------------------------------------------------------------------------

fn caps_of(status: &str, key: &str) -> u64 {
    parse_cap_hex(&status_field(status, key).unwrap_or_else(|| panic!("no {key} in:\n{status}")))
}

/// CVE-2022-29162 / CVE-2022-24769: the inheritable (and ambient) sets are empty unless the config
/// asks for them, for the init and for `exec --cap`; a configured inheritable set is applied
/// exactly.
#[test]
fn cve_2022_29162_24769_inheritable_caps_empty_unless_configured() {
    require_root!();
    let ctx = Ctx::new("cve202229162");
    let mut v = Vec::new();
    let (id, b) = ctx.bundle(&["cat", "/proc/self/status"]);
    let out = ctx.run_to_stop(&b, &id);
    for key in ["CapInh", "CapAmb"] {
        if caps_of(&out, key) != 0 {
            v.push(format!(
                "init: {key} is {:x}, want 0 (not configured)",
                caps_of(&out, key)
            ));
        }
    }
    let (id2, mut b2) = ctx.bundle(&["cat", "/proc/self/status"]);
    b2.set("/process/capabilities/inheritable", json!(["CAP_KILL"]));
    let out2 = ctx.run_to_stop(&b2, &id2);
    if caps_of(&out2, "CapInh") != cap_mask(&["CAP_KILL"]) {
        v.push(format!(
            "init with inheritable [CAP_KILL]: CapInh is {:x}",
            caps_of(&out2, "CapInh")
        ));
    }
    let (id3, b3) = ctx.bundle(&["sleep", "1000"]);
    ctx.create_start(&b3, &id3);
    let e = ctx
        .run(&["exec", "--cap", "CAP_NET_RAW", &id3, "cat", "/proc/self/status"])
        .ok();
    for key in ["CapInh", "CapAmb"] {
        if caps_of(&e.stdout, key) != 0 {
            v.push(format!(
                "exec --cap CAP_NET_RAW: {key} is {:x}, want 0",
                caps_of(&e.stdout, key)
            ));
        }
    }
    if caps_of(&e.stdout, "CapEff") & cap_mask(&["CAP_NET_RAW"]) == 0 {
        v.push("exec --cap CAP_NET_RAW: CAP_NET_RAW not effective (flag ignored)".to_string());
    }
    ctx.delete_force(&id3);
    assert_no_violations("CVE-2022-29162/CVE-2022-24769", &v);
}

/// CVE-2016-3697: a numeric user is a uid, never a user name. The rootfs's /etc/passwd has a
/// user *named* "1000" with uid 0 and one named "0" with uid 1000; config uid 1000 and
/// `exec --user 1000` / `--user 1000:1000` must all run as uid 1000, not root.
#[test]
fn cve_2016_3697_numeric_user_is_uid_not_name() {
    require_root!();
    let ctx = Ctx::new("cve20163697");
    let mut v = Vec::new();
    let (id, mut b) = ctx.bundle(&["cat", "/proc/self/status"]);
    fs::write(
        b.rootfs().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n1000:x:0:0:evil:/root:/bin/sh\n0:x:1000:1000:evil:/home/user:/bin/sh\n",
    )
    .unwrap();
    fs::write(b.rootfs().join("etc/group"), "root:x:0:\n1000:x:0:\n0:x:1000:\n").unwrap();
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let out = ctx.run_to_stop(&b, &id);
    let uid = status_field(&out, "Uid").unwrap_or_default();
    if uid.split_whitespace().any(|u| u != "1000") {
        v.push(format!("config uid 1000 ran with Uid: {uid}"));
    }
    let gid = status_field(&out, "Gid").unwrap_or_default();
    if gid.split_whitespace().any(|g| g != "1000") {
        v.push(format!("config gid 1000 ran with Gid: {gid}"));
    }
    // exec into a container with the same rootfs.
    let (id2, mut b2) = ctx.bundle(&["sleep", "1000"]);
    fs::copy(b.rootfs().join("etc/passwd"), b2.rootfs().join("etc/passwd")).unwrap();
    fs::copy(b.rootfs().join("etc/group"), b2.rootfs().join("etc/group")).unwrap();
    b2.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    ctx.create_start(&b2, &id2);
    for user in ["1000", "1000:1000"] {
        let e = ctx.run(&["exec", "--user", user, &id2, "cat", "/proc/self/status"]);
        if !e.success() {
            v.push(format!("exec --user {user} failed: {e}"));
            continue;
        }
        let uid = status_field(&e.stdout, "Uid").unwrap_or_default();
        if uid.split_whitespace().any(|u| u != "1000") {
            v.push(format!("exec --user {user} ran with Uid: {uid}"));
        }
    }
    ctx.delete_force(&id2);
    assert_no_violations("CVE-2016-3697", &v);
}
