//! Security group, part 2: isolation properties of a container with the default (protective)
//! config, and a self-test proving each check is not vacuous.
//!
//! Each property is a `check_*` function that runs a probe in a container built from the given
//! bundle and returns `Err(Fail::Violation)` when the protection is missing. Its `weaken_*`
//! partner removes exactly that protection from the config (or the launch). The per-property
//! tests assert `Ok` with the protective config; `security_selftest_checks_are_not_vacuous`
//! asserts every check reports a violation once its protection is removed.

use moor_integration::host::{cap_mask, parse_cap_hex, status_field, SysctlGuard};
use moor_integration::runner::pass_fd;
use moor_integration::{require_root, Bundle, Ctx};
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;

/// How a check failed.
#[derive(Debug)]
enum Fail {
    /// The property does not hold.
    Violation(String),
    /// The probe could not run (the runtime refused the config, ...).
    Setup(String),
}

/// Launch options outside config.json.
#[derive(Default)]
struct Launch {
    /// An fd handed to `create` as fd 3 with `--preserve-fds 1`.
    preserve: Option<fs::File>,
}

/// Runs `script` (sh -c) to completion and returns its stdout.
fn probe(ctx: &Ctx, b: &mut Bundle, launch: &Launch, script: &str) -> Result<String, Fail> {
    let id = ctx.new_id();
    b.set("/linux/cgroupsPath", json!(format!("/moor-it/{id}")));
    b.set_sh(script);
    let c = match &launch.preserve {
        Some(f) => ctx.create_with(b, &id, &["--preserve-fds", "1"], |c| pass_fd(c, f.as_raw_fd(), 3)),
        None => ctx.create(b, &id, &[]),
    };
    if !c.success() {
        return Err(Fail::Setup(c.to_string()));
    }
    let s = ctx.start(&id);
    if !s.success() {
        ctx.delete_force(&id);
        return Err(Fail::Setup(s.to_string()));
    }
    ctx.wait_status(&id, "stopped");
    let out = c.stdout_now();
    ctx.delete(&id);
    if !out.contains("PROBE-END") {
        return Err(Fail::Setup(format!(
            "probe did not finish:\nstdout:\n{out}\nstderr:\n{}",
            c.stderr_now()
        )));
    }
    Ok(out)
}

fn violation(ok: bool, msg: impl FnOnce() -> String) -> Result<(), Fail> {
    if ok {
        Ok(())
    } else {
        Err(Fail::Violation(msg()))
    }
}

fn add_cap(b: &mut Bundle, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        b.at(&format!("/process/capabilities/{set}"))
            .as_array_mut()
            .unwrap()
            .push(json!(cap));
    }
}

// --- no fd leak --------------------------------------------------------------------------------

/// Only fds 0, 1, 2 are open in the container process (besides `ls`'s own directory fd).
fn check_no_fd_leak(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let out = probe(ctx, b, l, "ls -l /proc/self/fd; echo PROBE-END")?;
    let extra: Vec<&str> = out
        .lines()
        .filter_map(|line| {
            let (left, target) = line.split_once(" -> ")?;
            let fd: i32 = left.split_whitespace().last()?.parse().ok()?;
            let own_dir = target.starts_with("/proc/") && target.ends_with("/fd");
            (fd > 2 && !own_dir).then_some(line)
        })
        .collect();
    violation(extra.is_empty(), || {
        format!("fds other than 0,1,2 open in the container: {extra:?}\n{out}")
    })
}

fn weaken_no_fd_leak(ctx: &Ctx, _: &mut Bundle, l: &mut Launch) {
    let p = ctx.work_dir().join("preserved-fd");
    fs::write(&p, "x").unwrap();
    l.preserve = Some(fs::File::open(p).unwrap());
}

// --- masked paths ------------------------------------------------------------------------------

const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// Every masked path that exists is the null device (files) or empty (dirs); reading /proc/keys
/// and /proc/timer_list gives nothing.
fn check_masked_paths(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let script = format!(
        "for p in {}; do if [ -d $p ]; then echo \"DIR $p $(ls -A $p | wc -l)\"; \
         elif [ -e $p ]; then echo \"FILE $p $(stat -L -c '%F %t:%T' $p)\"; fi; done; \
         echo READ=$(cat /proc/keys /proc/timer_list 2>/dev/null | wc -c); echo PROBE-END",
        MASKED.join(" ")
    );
    let out = probe(ctx, b, l, &script)?;
    let bad: Vec<&str> = out
        .lines()
        .filter(|line| {
            (line.starts_with("DIR ") && !line.ends_with(" 0"))
                || (line.starts_with("FILE ") && !line.ends_with("character special file 1:3"))
                || (line.starts_with("READ=") && line != &"READ=0")
        })
        .collect();
    violation(bad.is_empty(), || format!("masked paths readable: {bad:?}\n{out}"))
}

fn weaken_masked_paths(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    b.remove("/linux/maskedPaths");
}

// --- readonly paths ----------------------------------------------------------------------------

/// Every readonly path that exists is a read-only mount, and a write to
/// /proc/sys/kernel/domainname fails (EROFS). The write can only reach the container's uts
/// namespace; a guard restores the host's value if a broken runtime shares it.
fn check_readonly_paths(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let guard = SysctlGuard::new(&["kernel.domainname"]);
    let script = "for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do [ -e $p ] || continue; \
                  o=$(awk -v p=$p '$5 == p {o = $6} END {print o}' /proc/self/mountinfo); echo \"RO $p ${o:-none}\"; done; \
                  if echo moor-it-probe > /proc/sys/kernel/domainname; then echo DOMAIN-WRITTEN; fi; echo PROBE-END";
    let out = probe(ctx, b, l, script)?;
    let changed = guard.changed();
    let bad: Vec<&str> = out
        .lines()
        .filter(|line| {
            line.starts_with("RO ") && line.rsplit(' ').next().and_then(|o| o.split(',').next()) != Some("ro")
        })
        .collect();
    violation(
        bad.is_empty() && !out.contains("DOMAIN-WRITTEN") && changed.is_empty(),
        || format!("readonly paths writable: {bad:?}; host sysctls changed: {changed:?}\n{out}"),
    )
}

fn weaken_readonly_paths(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    b.remove("/linux/readonlyPaths");
}

// --- pid isolation -----------------------------------------------------------------------------

/// The container sees only its own processes: pid 1 is its init and `ps` lists a handful.
fn check_pid_isolation(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let out = probe(
        ctx,
        b,
        l,
        "echo INIT=$(cat /proc/1/comm); echo SELF=$$; echo PS=$(ps -o pid | wc -l); echo PROBE-END",
    )?;
    let ps: usize = out
        .lines()
        .find_map(|x| x.strip_prefix("PS="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX);
    violation(out.contains("INIT=sh\n") && out.contains("SELF=1\n") && ps <= 8, || {
        format!("the container sees processes outside it (ps lists {ps} lines):\n{out}")
    })
}

fn weaken_pid_isolation(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    b.remove_namespace("pid");
}

// --- uts isolation -----------------------------------------------------------------------------

/// The container has its own uts namespace with the configured hostname; an attempt to change
/// the hostname inside (denied without CAP_SYS_ADMIN, or confined to that namespace) leaves the
/// host's hostname as it was (a guard restores it otherwise).
fn check_uts_isolation(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let guard = SysctlGuard::new(&["kernel.hostname"]);
    let host_uts = fs::read_link("/proc/self/ns/uts").unwrap().display().to_string();
    let out = probe(
        ctx,
        b,
        l,
        "echo UTS=$(readlink /proc/self/ns/uts); echo NAME=$(hostname); \
         hostname moor-it-changed 2>/dev/null && echo HOSTNAME-SET; echo PROBE-END",
    )?;
    let changed = guard.changed();
    let want_name = b.config["hostname"].as_str().unwrap_or("moor-it").to_string();
    violation(
        !out.contains(&format!("UTS={host_uts}\n"))
            && out.contains(&format!("NAME={want_name}\n"))
            && changed.is_empty(),
        || format!("uts not isolated (host {host_uts}, host sysctls changed: {changed:?}):\n{out}"),
    )
}

fn weaken_uts_isolation(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    b.remove_namespace("uts");
    b.remove("/hostname");
}

// --- mount escape ------------------------------------------------------------------------------

/// Without CAP_SYS_ADMIN, mount(2) fails in the container (no tmpfs, no bind of /).
fn check_mount_denied(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let out = probe(
        ctx,
        b,
        l,
        "mkdir -p /mnt/x /mnt/y; mount -t tmpfs none /mnt/x 2>/dev/null && echo MOUNTED-TMPFS; \
         mount --bind / /mnt/y 2>/dev/null && echo MOUNTED-BIND; echo PROBE-END",
    )?;
    violation(!out.contains("MOUNTED"), || {
        format!("mount succeeded inside the container:\n{out}")
    })
}

fn weaken_mount_denied(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    add_cap(b, "CAP_SYS_ADMIN");
}

// --- chroot ------------------------------------------------------------------------------------

/// Without CAP_SYS_CHROOT, chroot(2) fails (the first step of the classic chroot escape).
fn check_chroot_denied(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let out = probe(
        ctx,
        b,
        l,
        "chroot / /bin/true 2>/dev/null && echo CHROOTED; echo PROBE-END",
    )?;
    violation(!out.contains("CHROOTED"), || {
        format!("chroot succeeded inside the container:\n{out}")
    })
}

fn weaken_chroot_denied(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    add_cap(b, "CAP_SYS_CHROOT");
}

// --- minimal /dev ------------------------------------------------------------------------------

/// /dev holds only the default devices (with their real numbers), pts, shm, mqueue and the
/// standard links; never a block device.
fn check_minimal_dev(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let out = probe(
        ctx,
        b,
        l,
        "for f in /dev/* /dev/.[!.]*; do [ -e \"$f\" ] || [ -L \"$f\" ] || continue; \
         echo \"DEV $(stat -c '%n|%F|%t:%T' \"$f\")\"; done; echo PROBE-END",
    )?;
    let expect_char = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
        ("ptmx", "5:2"),
        ("console", ""),
    ];
    let other_ok = [
        "fd", "stdin", "stdout", "stderr", "pts", "shm", "mqueue", "core", "ptmx",
    ];
    let mut bad = Vec::new();
    let mut seen = Vec::new();
    for line in out.lines().filter_map(|x| x.strip_prefix("DEV ")) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 3 {
            continue;
        }
        let name = f[0].trim_start_matches("/dev/");
        seen.push(name.to_string());
        if f[1] == "character special file" {
            match expect_char.iter().find(|(n, _)| *n == name) {
                Some((_, want)) if want.is_empty() || *want == f[2] => {}
                _ => bad.push(line.to_string()),
            }
        } else if f[1] == "block special file" || !(other_ok.contains(&name)) {
            bad.push(line.to_string());
        }
    }
    for must in ["null", "zero", "full", "random", "urandom", "tty"] {
        if !seen.iter().any(|s| s == must) {
            bad.push(format!("missing /dev/{must}"));
        }
    }
    violation(bad.is_empty(), || format!("/dev is not minimal: {bad:?}\n{out}"))
}

fn weaken_minimal_dev(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    // /dev/kmsg: the device cgroup still denies access, but the node must not be there.
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 384, "uid": 0, "gid": 0}]),
    );
}

// --- exact capabilities ------------------------------------------------------------------------

const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// CapEff, CapPrm and CapBnd are exactly the default minimal set; CapInh and CapAmb are empty.
fn check_exact_caps(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let out = probe(ctx, b, l, "cat /proc/self/status; echo PROBE-END")?;
    let want = cap_mask(DEFAULT_CAPS);
    let mut bad = Vec::new();
    for (key, w) in [
        ("CapEff", want),
        ("CapPrm", want),
        ("CapBnd", want),
        ("CapInh", 0),
        ("CapAmb", 0),
    ] {
        let got = status_field(&out, key).map(|s| parse_cap_hex(&s));
        if got != Some(w) {
            bad.push(format!("{key}={got:x?} want {w:x}"));
        }
    }
    violation(bad.is_empty(), || format!("capabilities differ: {bad:?}"))
}

fn weaken_exact_caps(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    add_cap(b, "CAP_SYS_ADMIN");
}

// --- no_new_privs ------------------------------------------------------------------------------

/// noNewPrivileges: true gives NoNewPrivs: 1.
fn check_no_new_privs(ctx: &Ctx, b: &mut Bundle, l: &Launch) -> Result<(), Fail> {
    let out = probe(ctx, b, l, "grep NoNewPrivs /proc/self/status; echo PROBE-END")?;
    violation(status_field(&out, "NoNewPrivs").as_deref() == Some("1"), || {
        format!("no_new_privs not set:\n{out}")
    })
}

fn weaken_no_new_privs(_: &Ctx, b: &mut Bundle, _: &mut Launch) {
    b.set("/process/noNewPrivileges", json!(false));
}

// --- registry ----------------------------------------------------------------------------------

type Check = fn(&Ctx, &mut Bundle, &Launch) -> Result<(), Fail>;
type Weaken = fn(&Ctx, &mut Bundle, &mut Launch);

const PROPS: &[(&str, Check, Weaken)] = &[
    ("no_fd_leak", check_no_fd_leak, weaken_no_fd_leak),
    ("masked_paths", check_masked_paths, weaken_masked_paths),
    ("readonly_paths", check_readonly_paths, weaken_readonly_paths),
    ("pid_isolation", check_pid_isolation, weaken_pid_isolation),
    ("uts_isolation", check_uts_isolation, weaken_uts_isolation),
    ("mount_denied", check_mount_denied, weaken_mount_denied),
    ("chroot_denied", check_chroot_denied, weaken_chroot_denied),
    ("minimal_dev", check_minimal_dev, weaken_minimal_dev),
    ("exact_caps", check_exact_caps, weaken_exact_caps),
    ("no_new_privs", check_no_new_privs, weaken_no_new_privs),
];

/// Runs one property with the protective default config and panics unless it holds.
fn holds(name: &str) {
    let (_, check, _) = PROPS.iter().find(|p| p.0 == name).unwrap();
    let ctx = Ctx::new(&format!("prop{}", name.replace('_', "")));
    let (_, mut b) = ctx.bundle(&["true"]);
    match check(&ctx, &mut b, &Launch::default()) {
        Ok(()) => {}
        Err(Fail::Violation(m)) => panic!("property {name} violated: {m}"),
        Err(Fail::Setup(m)) => panic!("property {name}: probe could not run: {m}"),
    }
}

#[test]
fn security_no_fd_leak() {
    require_root!();
    holds("no_fd_leak");
}

#[test]
fn security_masked_paths_are_masked() {
    require_root!();
    holds("masked_paths");
}

#[test]
fn security_readonly_paths_are_readonly() {
    require_root!();
    holds("readonly_paths");
}

#[test]
fn security_pid_isolation() {
    require_root!();
    holds("pid_isolation");
}

#[test]
fn security_uts_isolation() {
    require_root!();
    holds("uts_isolation");
}

#[test]
fn security_mount_denied_without_cap_sys_admin() {
    require_root!();
    holds("mount_denied");
}

#[test]
fn security_chroot_denied_without_cap_sys_chroot() {
    require_root!();
    holds("chroot_denied");
}

#[test]
fn security_minimal_dev() {
    require_root!();
    holds("minimal_dev");
}

#[test]
fn security_exact_capabilities() {
    require_root!();
    holds("exact_caps");
}

#[test]
fn security_no_new_privs_set() {
    require_root!();
    holds("no_new_privs");
}

/// Every check must report a violation once its protection is removed; otherwise it proves
/// nothing. A weakened config the runtime refuses also fails this test (the check was not
/// exercised).
#[test]
fn security_selftest_checks_are_not_vacuous() {
    require_root!();
    let ctx = Ctx::new("propselftest");
    let mut problems = Vec::new();
    for (name, check, weaken) in PROPS {
        let (_, mut b) = ctx.bundle(&["true"]);
        let mut launch = Launch::default();
        weaken(&ctx, &mut b, &mut launch);
        match check(&ctx, &mut b, &launch) {
            Err(Fail::Violation(m)) => eprintln!(
                "selftest {name}: detected as expected: {}",
                m.lines().next().unwrap_or_default()
            ),
            Ok(()) => problems.push(format!("{name}: check passed with its protection removed (vacuous)")),
            Err(Fail::Setup(m)) => problems.push(format!("{name}: weakened config did not run: {m}")),
        }
    }
    assert!(problems.is_empty(), "self-test failures:\n{}", problems.join("\n\n"));
}
