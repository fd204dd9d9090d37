//! Fuzzing of config.json loading and validation, on stable Rust with proptest.
//!
//! Three generators feed `moor::spec::config::parse` (the bytes) and `moor::spec::config::load` (a bundle
//! holding them), then the checks `create` makes before anything exists (namespaces to join,
//! capabilities, the seccomp program):
//! - `bytes`: arbitrary bytes, and byte-level damage (flips, cuts, insertions) of the corpus;
//! - `documents`: JSON documents built from the runtime-spec's own field names and hostile leaves;
//! - `mutations`: field-level mutations of the corpus configs at random JSON pointers (replace,
//!   delete, retype, add known fields; huge and negative numbers, NUL bytes, long strings,
//!   unicode, `..` paths, deep nesting, values moved from other fields).
//!
//! Properties: no panic; each case within [`PER_CASE`]; a refusal names a field (or the
//! document) and says what is wrong; a document `parse` refuses is refused by `load` too; a
//! config moor accepts still loads after moor's own re-serialization; and a single mutation
//! that only changes a field's JSON type is refused naming that field.
//!
//! Budget: `MOOR_FUZZ_CASES` cases per generator (default [`DEFAULT_CASES`], about a minute for
//! the whole file in a debug build on 2 cores); `MOOR_FUZZ_SEED=<u64>` repeats a run (each run
//! prints its seed). A failing input is shrunk and written to
//! `tests/corpus/config/found-<hash>.json`: commit it with the fix, and
//! `corpus_replays_cleanly` checks it on every run from then on.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use moor::Error;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::{json, Map, Value};

/// A case taking longer than this is a hang (the slowest real case takes milliseconds).
const PER_CASE: Duration = Duration::from_secs(10);
const DEFAULT_CASES: u32 = 8000;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/config")
}

fn cases() -> u32 {
    std::env::var("MOOR_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

// ---- the bundle the cases are loaded from ----------------------------------------------

/// A bundle dir with a rootfs and some hostile neighbours for `root.path` to point at.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("moor-fuzz-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("rootfs/proc")).unwrap();
        fs::write(dir.join("afile"), "not a directory").unwrap();
        symlink("/", dir.join("link-to-root")).unwrap();
        symlink("nowhere", dir.join("dangling")).unwrap();
        symlink("rootfs", dir.join("link-to-rootfs")).unwrap();
        nix::unistd::mkfifo(&dir.join("afifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        Sandbox { dir }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---- one case ---------------------------------------------------------------------------

#[derive(Debug)]
enum Outcome {
    Accepted,
    /// The error's field (None when it is not a config error) and its message.
    Refused(Option<String>, String),
}

/// Checks an error: non-empty, and a config error says what is wrong with a field that is in
/// the input (or with a missing field of an object that is), or with the whole document.
fn check_error(e: &Error, doc: Option<&Value>) -> Result<(Option<String>, String), String> {
    let msg = e.to_string();
    if msg.trim().is_empty() {
        return Err(format!("empty error message: {e:?}"));
    }
    if msg.contains("panicked") {
        return Err(format!("error mentions a panic: {msg}"));
    }
    match e {
        Error::Config { field, reason } => {
            if reason.trim().is_empty() {
                return Err(format!("error on {field:?} does not say what is wrong: {e:?}"));
            }
            if let Some(doc) = doc.filter(|_| field != "config.json") {
                if !names_input_field(doc, field, true) {
                    return Err(format!("error field {field:?} is not in the input: {msg}"));
                }
            }
            Ok((Some(field.clone()), msg))
        }
        _ => Ok((None, msg)),
    }
}

/// Whether `field` (as moor names fields: `a.b[0].c`, a key with odd bytes quoted) is a path
/// in `v`, or a missing member of an object that is. Keys may hold dots (sysctl names), so
/// every way of splitting is tried.
fn names_input_field(v: &Value, field: &str, top: bool) -> bool {
    if field.is_empty() {
        return true;
    }
    match v {
        Value::Object(m) => {
            let Some(rest) = (if top { Some(field) } else { field.strip_prefix('.') }) else {
                return false;
            };
            let found = m.iter().any(|(k, c)| {
                [k.clone(), format!("{k:?}")].iter().any(|name| {
                    rest.strip_prefix(name.as_str()).is_some_and(|after| {
                        (after.is_empty() || after.starts_with(['.', '['])) && names_input_field(c, after, false)
                    })
                })
            });
            found || (!rest.is_empty() && !rest.contains(['.', '[']))
        }
        Value::Array(a) => {
            let Some((index, after)) = field.strip_prefix('[').and_then(|r| r.split_once(']')) else {
                return false;
            };
            index
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .is_some_and(|c| names_input_field(c, after, false))
        }
        Value::Null => field.strip_prefix('.').is_some_and(|r| !r.contains(['.', '['])),
        _ => false,
    }
}

/// What `create` checks after loading the bundle and before creating anything.
fn pre_create_checks(spec: &oci_spec::runtime::Spec) -> moor::Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    moor::checks::namespaces(linux.namespaces().as_deref().unwrap_or_default())?;
    if let Some(process) = spec.process() {
        moor::checks::of_process(process, moor::checks::last_cap())?;
    }
    if let Some(s) = linux.seccomp() {
        moor_seccomp::compile(s)?;
    }
    Ok(())
}

fn evaluate(dir: &Path, data: &[u8]) -> Result<Outcome, String> {
    let doc: Option<Value> = serde_json::from_slice(data).ok();
    let check_error = |e: &Error| check_error(e, doc.as_ref());
    let parsed = moor::spec::config::parse(data);
    if let Err(e) = &parsed {
        check_error(e)?;
    }
    fs::write(dir.join("config.json"), data).map_err(|e| format!("write config.json: {e}"))?;
    let bundle = match moor::spec::config::load(dir) {
        Ok(b) => b,
        Err(e) => {
            let (field, msg) = check_error(&e)?;
            return Ok(Outcome::Refused(field, msg));
        }
    };
    if let Err(e) = parsed {
        return Err(format!("parse refused ({e}) but load accepted"));
    }
    if let Err(e) = pre_create_checks(&bundle.spec) {
        let (field, msg) = check_error(&e)?;
        return Ok(Outcome::Refused(field, msg));
    }
    // What moor accepted must survive its own re-serialization (the state file and hooks see
    // the spec that way).
    let again = serde_json::to_vec(&bundle.spec).map_err(|e| format!("re-serialize: {e}"))?;
    if let Err(e) = moor::spec::config::parse(&again) {
        return Err(format!("accepted, but its re-serialization is refused: {e}"));
    }
    Ok(Outcome::Accepted)
}

/// Runs one case on its own thread so that a panic is caught and a hang is seen.
fn run_case(dir: &Path, data: &[u8]) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    let (d, input) = (dir.to_path_buf(), data.to_vec());
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = tx.send(evaluate(&d, &input));
        })
        .map_err(|e| format!("spawn: {e}"))?;
    match rx.recv_timeout(PER_CASE) {
        Ok(r) => {
            let _ = worker.join();
            r
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let why = worker.join().err().map(|p| panic_text(&*p)).unwrap_or_default();
            Err(format!("panicked: {why}"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The stuck thread cannot be stopped: keep the input, then end the test binary.
            // The test harness's capture would swallow eprintln! output at exit.
            let path = save(data);
            let _ = writeln!(
                std::io::stderr(),
                "HANG: a case took over {PER_CASE:?}; input saved to {}",
                path.display()
            );
            std::process::exit(101);
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Writes a failing input into the corpus (named by its FNV-1a hash) and returns the path.
fn save(data: &[u8]) -> PathBuf {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = corpus_dir().join(format!("found-{hash:016x}.json"));
    if let Err(e) = fs::write(&path, data) {
        eprintln!("could not save the failing input to {}: {e}", path.display());
    }
    path
}

fn runner(name: &str) -> TestRunner {
    let seed: u64 = std::env::var("MOOR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        });
    eprintln!("{name}: MOOR_FUZZ_SEED={seed} MOOR_FUZZ_CASES={}", cases());
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    }
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Runs `strategy` through `check`; on failure saves the shrunk input and fails the test.
fn fuzz<S: Strategy>(
    name: &str,
    sandbox: &Sandbox,
    strategy: S,
    to_bytes: impl Fn(&S::Value) -> Vec<u8>,
    check: impl Fn(&S::Value, Result<Outcome, String>) -> Result<(), String>,
) {
    let started = Instant::now();
    let stats = RefCell::new(Stats::default());
    let result = runner(name).run(&strategy, |v| {
        let data = to_bytes(&v);
        let outcome = run_case(&sandbox.dir, &data);
        stats.borrow_mut().count(&outcome);
        check(&v, outcome).map_err(TestCaseError::fail)
    });
    eprintln!(
        "{name}: {} cases in {:?}; {}",
        cases(),
        started.elapsed(),
        stats.borrow()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, v)) => {
            let path = save(&to_bytes(&v));
            panic!("{name}: {why}\ninput saved to {} (commit it)", path.display());
        }
        Err(TestError::Abort(why)) => panic!("{name}: aborted: {why}"),
    }
}

/// How far the cases got: accepted, or refused by which field (indices left out).
#[derive(Default)]
struct Stats {
    accepted: usize,
    refused: BTreeMap<String, usize>,
}

impl Stats {
    fn count(&mut self, o: &Result<Outcome, String>) {
        match o {
            Ok(Outcome::Accepted) => self.accepted += 1,
            Ok(Outcome::Refused(field, msg)) => {
                let key = match field {
                    Some(f) => f.split('[').next().unwrap_or_default().to_string(),
                    None => msg.split(':').next().unwrap_or_default().to_string(),
                };
                *self.refused.entry(key).or_default() += 1;
            }
            Err(_) => {}
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut top: Vec<_> = self.refused.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        write!(
            f,
            "{} accepted, {} distinct refusals; most refused:",
            self.accepted,
            self.refused.len()
        )?;
        for (k, n) in top.iter().take(12) {
            write!(f, " {k} {n};")?;
        }
        Ok(())
    }
}

fn plain(_: &impl std::fmt::Debug, outcome: Result<Outcome, String>) -> Result<(), String> {
    outcome.map(|_| ())
}

// ---- the corpus ------------------------------------------------------------------------

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(corpus_dir())
        .expect("tests/corpus/config")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

/// The configs mutations start from: the default spec and every corpus file that is a JSON
/// object.
fn seeds() -> Vec<Value> {
    let mut v = vec![moor::spec::default_spec(false), moor::spec::default_spec(true)];
    v.extend(
        corpus()
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_slice::<Value>(&d).ok())
            .filter(Value::is_object),
    );
    v
}

#[test]
fn corpus_replays_cleanly() {
    let sandbox = Sandbox::new("corpus");
    let corpus = corpus();
    assert!(
        corpus.iter().any(|(n, _)| n.starts_with("seed-")),
        "no seeds in the corpus"
    );
    let mut failures = Vec::new();
    for (name, data) in &corpus {
        match run_case(&sandbox.dir, data) {
            Ok(Outcome::Accepted) => eprintln!("{name}: accepted"),
            Ok(Outcome::Refused(_, msg)) => eprintln!("{name}: refused: {msg}"),
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    assert!(failures.is_empty(), "corpus failures:\n{}", failures.join("\n"));
}

#[test]
fn the_seeds_are_accepted() {
    let sandbox = Sandbox::new("seeds");
    for (i, seed) in seeds().iter().enumerate().take(2) {
        let o = run_case(&sandbox.dir, &serde_json::to_vec(seed).unwrap());
        assert!(matches!(o, Ok(Outcome::Accepted)), "default spec {i}: {o:?}");
    }
    // A refused seed would make every mutation of it stop at the same error.
    for (name, data) in corpus().iter().filter(|(n, _)| n.starts_with("seed-")) {
        let o = run_case(&sandbox.dir, data);
        assert!(matches!(o, Ok(Outcome::Accepted)), "{name}: {o:?}");
    }
}

/// Namespace paths are opened before anything exists: a FIFO there must be refused at once,
/// not block until some writer opens it.
#[test]
fn a_namespace_path_to_a_fifo_is_refused_at_once() {
    let sandbox = Sandbox::new("nsfifo");
    let mut spec = moor::spec::default_spec(false);
    spec["linux"]["namespaces"][1] = json!({"type": "network", "path": sandbox.dir.join("afifo")});
    let started = Instant::now();
    let o = run_case(&sandbox.dir, &serde_json::to_vec(&spec).unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    match o {
        Ok(Outcome::Refused(Some(field), _)) if field == "linux.namespaces[1].path" => {}
        other => panic!("not refused naming linux.namespaces[1].path: {other:?}"),
    }
}

// ---- generator: bytes ------------------------------------------------------------------

#[derive(Clone, Debug)]
enum ByteEdit {
    Flip(usize, u8),
    Cut(usize, usize),
    Insert(usize, Vec<u8>),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "-",
    "0",
    "1e999",
    "-1",
    "18446744073709551616",
    "\u{0}",
    "\u{ff}",
    "\u{202e}",
];

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| ByteEdit::Cut(i, n)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| ByteEdit::Insert(i, t.as_bytes().to_vec())),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
    ]
}

fn apply_bytes(seed: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            ByteEdit::Flip(i, b) if !d.is_empty() => {
                let n = i % d.len();
                d[n] ^= b | 1;
            }
            ByteEdit::Flip(..) => {}
            ByteEdit::Cut(i, n) => {
                let s = at(*i, d.len());
                let end = (s + n).min(d.len());
                d.drain(s..end);
            }
            ByteEdit::Insert(i, b) => {
                let s = at(*i, d.len());
                d.splice(s..s, b.iter().copied());
            }
        }
    }
    d
}

#[derive(Clone, Debug)]
enum BytesCase {
    Raw(Vec<u8>),
    Damaged(usize, Vec<ByteEdit>),
}

#[test]
fn bytes() {
    let texts: Vec<Vec<u8>> = seeds()
        .iter()
        .flat_map(|s| [serde_json::to_vec(s).unwrap(), serde_json::to_vec_pretty(s).unwrap()])
        .collect();
    let n = texts.len();
    let strategy = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..2048).prop_map(BytesCase::Raw),
        3 => (0..n, prop::collection::vec(byte_edit(), 1..6)).prop_map(|(s, e)| BytesCase::Damaged(s, e)),
    ];
    let to_bytes = |c: &BytesCase| match c {
        BytesCase::Raw(b) => b.clone(),
        BytesCase::Damaged(s, e) => apply_bytes(&texts[*s], e),
    };
    fuzz("bytes", &Sandbox::new("bytes"), strategy, to_bytes, plain);
}

// ---- hostile values -------------------------------------------------------------------

fn nested(depth: usize, object: bool) -> Value {
    (0..depth).fold(json!(1), |v, _| if object { json!({ "a": v }) } else { json!([v]) })
}

/// Values a hostile config puts where a field should be (`sandbox` for paths next to the
/// bundle: a FIFO, a file).
fn hostile_values(sandbox: &Sandbox) -> Vec<Value> {
    let long = "a".repeat(70_000);
    let fifo = sandbox.dir.join("afifo");
    let file = sandbox.dir.join("afile");
    vec![
        json!(fifo),
        json!(file),
        json!({"type": "network", "path": fifo}),
        json!({"type": "user", "path": file}),
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(-1),
        json!(255),
        json!(65536),
        json!(i32::MAX),
        json!(i64::from(i32::MAX) + 1),
        json!(u32::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5),
        json!(-0.0),
        json!(1e308),
        json!(-1e308),
        json!(""),
        json!("\0"),
        json!("a\0b"),
        json!("."),
        json!(".."),
        json!("../../../../etc"),
        json!("/"),
        json!("//"),
        json!("/.."),
        json!("/proc"),
        json!("/proc/self/exe"),
        json!("/sys/kernel"),
        json!("/dev/null"),
        json!("relative/path"),
        json!("rootfs"),
        json!("afile"),
        json!("afifo"),
        json!("dangling"),
        json!("link-to-root"),
        json!("link-to-rootfs"),
        json!("1.0.0"),
        json!("0x10"),
        json!("-5"),
        json!("1e3"),
        json!("é😀\u{202e}\u{feff}\u{7f}"),
        json!("\u{fffd}\u{10ffff}"),
        json!("=="),
        json!("A="),
        json!("=B"),
        json!("CAP_SYS_ADMIN"),
        json!("CAP_NOPE"),
        json!("cap_kill"),
        json!("RLIMIT_NOFILE"),
        json!("SCMP_ACT_KILL"),
        json!("SCMP_ACT_ERRNO"),
        json!("SCMP_ACT_NOTIFY"),
        json!("SCMP_ARCH_AARCH64"),
        json!("user"),
        json!("pid"),
        json!("mount"),
        json!("time"),
        json!("bind"),
        json!("rbind"),
        json!("idmap"),
        json!("shared"),
        json!("kernel.shmmax"),
        json!("net.ipv4.ip_forward"),
        json!("vm.swappiness"),
        json!(long),
        json!([]),
        json!([null]),
        json!([""]),
        json!(["\0"]),
        json!([0, -1, u64::MAX]),
        json!(vec![json!("x"); 2000]),
        json!({}),
        json!({"": ""}),
        json!({"\0": 1}),
        json!({"type": "pid"}),
        json!({"type": "user", "path": "/proc/self/ns/user"}),
        json!({"type": "network", "path": "/proc/1/ns/mnt"}),
        json!({"type": "mount", "path": "/dev/null"}),
        json!({"type": "ipc", "path": "afifo"}),
        json!({"containerID": 0, "hostID": 0, "size": u32::MAX}),
        json!({"containerID": u32::MAX, "hostID": u32::MAX, "size": 2}),
        json!({"destination": "/proc/sys", "type": "bind", "source": "/proc/sys", "options": ["rbind"]}),
        json!({"destination": "..", "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": "/x", "type": "bind", "source": "/", "options": ["idmap"]}),
        json!({"path": "/bin/true", "timeout": -1}),
        json!({"path": "", "args": []}),
        json!({"type": "RLIMIT_NOFILE", "soft": u64::MAX, "hard": 1}),
        json!({"names": [], "action": "SCMP_ACT_ERRNO", "errnoRet": u32::MAX}),
        json!({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}),
        json!({"defaultAction": "SCMP_ACT_TRACE", "syscalls": [{"names": ["\u{e9}"], "action": "SCMP_ACT_LOG"}]}),
        json!({"path": "/dev/x", "type": "c", "major": -1, "minor": u64::MAX}),
        json!({"path": "/dev/../etc/x", "type": "z", "major": 1, "minor": 1}),
        json!({"allow": true, "type": "a", "access": "rwmx"}),
        json!({"limit": -2, "swap": i64::MIN}),
        json!({"mode": "MPOL_BIND", "nodes": "0-99999999999", "flags": ["MPOL_F_NOPE"]}),
        json!({"monotonic": {"secs": i64::MAX, "nanosecs": u32::MAX}}),
        json!({"initial": "0-99999", "final": "-"}),
        nested(100, false),
        nested(100, true),
        nested(126, false),
        nested(140, true),
    ]
}

/// The field names of the runtime-spec, for documents and for adding fields.
fn vocabulary(seeds: &[Value]) -> Vec<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.insert(k.clone());
                walk(v, out);
            }),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    seeds.iter().for_each(|s| walk(s, &mut out));
    for extra in [
        "solaris",
        "windows",
        "vm",
        "zos",
        "path",
        "ociVersion",
        "netDevices",
        "scheduler",
        "apparmorProfile",
        "selinuxLabel",
        "listenerPath",
        "listenerMetadata",
        "kernel",
        "kernelTCP",
        "rdmaResources",
        "pids",
    ] {
        out.insert(extra.to_string());
    }
    out.into_iter().collect()
}

// ---- generator: documents --------------------------------------------------------------

/// The top-level fields of a config.
const TOP_FIELDS: &[&str] = &[
    "ociVersion",
    "root",
    "mounts",
    "process",
    "hostname",
    "domainname",
    "hooks",
    "annotations",
    "linux",
    "solaris",
    "windows",
    "vm",
    "zos",
    "uidMappings",
    "gidMappings",
];

fn documents(keys: Vec<String>, leaves: Vec<Value>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        3 => prop::sample::select(leaves),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => ".{0,24}".prop_map(Value::from),
    ];
    let key = prop::sample::select(keys);
    let tree = leaf.prop_recursive(6, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    // Mostly objects under the real top-level keys, so the checks past serde are reached.
    let top = prop::sample::select(TOP_FIELDS).prop_map(str::to_string);
    (prop::collection::btree_map(top, tree, 0..9), any::<bool>()).prop_map(|(m, version)| {
        let mut m: Map<String, Value> = m.into_iter().collect();
        if version {
            m.insert("ociVersion".into(), json!("1.0.2"));
        }
        Value::Object(m)
    })
}

#[test]
fn json_documents() {
    let sandbox = Sandbox::new("documents");
    let strategy = documents(vocabulary(&seeds()), hostile_values(&sandbox));
    fuzz(
        "json_documents",
        &sandbox,
        strategy,
        |v| serde_json::to_vec(v).unwrap(),
        plain,
    );
}

// ---- generator: mutations --------------------------------------------------------------

/// Every JSON pointer in `v` (the root excluded), parents before children.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        let children: Vec<(String, &Value)> = match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
                .collect(),
            Value::Array(a) => a.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
            _ => return,
        };
        for (k, c) in children {
            let p = format!("{at}/{k}");
            out.push(p.clone());
            walk(c, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

#[derive(Clone, Debug)]
enum Op {
    /// Replace the value at pointer #n with hostile value #m.
    Set(usize, usize),
    /// Replace the value at pointer #n with the value at pointer #m (a field from elsewhere).
    Move(usize, usize),
    Delete(usize),
    /// Give an object at pointer #n the field named #k, with hostile value #m.
    Add(usize, usize, usize),
    /// Change the JSON type of the value at pointer #n (variant #m).
    Retype(usize, usize),
}

#[derive(Clone, Debug)]
struct Mutation {
    seed: usize,
    ops: Vec<Op>,
}

fn op() -> impl Strategy<Value = Op> {
    let n = any::<usize>;
    prop_oneof![
        4 => (n(), n()).prop_map(|(a, b)| Op::Set(a, b)),
        2 => (n(), n()).prop_map(|(a, b)| Op::Move(a, b)),
        2 => n().prop_map(Op::Delete),
        2 => (n(), n(), n()).prop_map(|(a, b, c)| Op::Add(a, b, c)),
        2 => (n(), n()).prop_map(|(a, b)| Op::Retype(a, b)),
    ]
}

/// A value of another JSON type than `v`, never null (null means "absent" for optional fields).
fn retyped(v: &Value, variant: usize) -> Value {
    let options: [Value; 5] = [json!("1"), json!(1), json!(true), json!([1]), json!({"x": 1})];
    let same = |c: &Value| {
        std::mem::discriminant(c) == std::mem::discriminant(v)
            || (c.is_array() && v.is_object() && v.as_object().is_some_and(|m| m.is_empty()))
    };
    let others: Vec<&Value> = options.iter().filter(|c| !same(c)).collect();
    others[variant % others.len()].clone()
}

struct Mutator {
    seeds: Vec<Value>,
    values: Vec<Value>,
    keys: Vec<String>,
}

impl Mutator {
    /// Applies the ops; returns the config and, for a single Retype, the field it retyped.
    fn apply(&self, m: &Mutation) -> (Value, Option<String>) {
        let mut doc = self.seeds[m.seed % self.seeds.len()].clone();
        let mut retyped_field = None;
        for op in &m.ops {
            let ptrs = pointers(&doc);
            if ptrs.is_empty() {
                break;
            }
            let pick = |n: usize| ptrs[n % ptrs.len()].clone();
            match *op {
                Op::Set(p, v) => set(&mut doc, &pick(p), self.values[v % self.values.len()].clone()),
                Op::Move(p, from) => {
                    let v = doc.pointer(&pick(from)).cloned().unwrap_or(Value::Null);
                    set(&mut doc, &pick(p), v);
                }
                Op::Delete(p) => delete(&mut doc, &pick(p)),
                Op::Add(p, k, v) => {
                    let target = pick(p);
                    let key = &self.keys[k % self.keys.len()];
                    let value = self.values[v % self.values.len()].clone();
                    let parent = match doc.pointer(&target) {
                        Some(Value::Object(_)) => target,
                        _ => target.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default(),
                    };
                    if let Some(Value::Object(o)) = doc.pointer_mut(&parent) {
                        o.insert(key.clone(), value);
                    }
                }
                Op::Retype(p, variant) => {
                    let at = pick(p);
                    if let Some(old) = doc.pointer(&at) {
                        if !old.is_null() {
                            let new = retyped(old, variant);
                            set(&mut doc, &at, new);
                            retyped_field = Some(at);
                        }
                    }
                }
            }
        }
        let single = m.ops.len() == 1;
        (doc, retyped_field.filter(|_| single))
    }
}

fn set(doc: &mut Value, ptr: &str, v: Value) {
    if let Some(slot) = doc.pointer_mut(ptr) {
        *slot = v;
    }
}

fn delete(doc: &mut Value, ptr: &str) {
    let Some((parent, key)) = ptr.rsplit_once('/') else {
        return;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent) {
        Some(Value::Object(o)) => {
            o.remove(&key);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        _ => {}
    }
}

/// "/process/rlimits/0/hard" as moor's errors name it: "process.rlimits[0].hard".
fn dotted(ptr: &str) -> String {
    let mut out = String::new();
    for part in ptr.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

/// Subtrees whose contents moor does not model as typed fields: a retype inside them is not an
/// error of that field.
const OPAQUE: &[&str] = &["annotations", "linux.sysctl", "linux.resources.unified"];

#[test]
fn mutations() {
    // Only what moor accepts as it is: then a refusal is the mutation's doing.
    let sandbox = Sandbox::new("mutations");
    let seeds: Vec<Value> = seeds()
        .into_iter()
        .filter(|s| {
            matches!(
                run_case(&sandbox.dir, &serde_json::to_vec(s).unwrap()),
                Ok(Outcome::Accepted)
            )
        })
        .collect();
    let mutator = Mutator {
        keys: vocabulary(&seeds),
        values: hostile_values(&sandbox),
        seeds,
    };
    let strategy = (any::<usize>(), prop::collection::vec(op(), 1..5)).prop_map(|(seed, ops)| Mutation { seed, ops });
    let to_bytes = |m: &Mutation| serde_json::to_vec(&mutator.apply(m).0).unwrap();
    let check = |m: &Mutation, outcome: Result<Outcome, String>| {
        let outcome = outcome?;
        let Some(ptr) = mutator.apply(m).1 else { return Ok(()) };
        let want = dotted(&ptr);
        if OPAQUE.iter().any(|o| want.starts_with(o)) {
            return Ok(());
        }
        match outcome {
            Outcome::Refused(Some(field), _) if field.starts_with(&want) || want.starts_with(&field) => Ok(()),
            other => Err(format!("retyping {want} gave {other:?}, not an error naming {want}")),
        }
    };
    fuzz("mutations", &sandbox, strategy, to_bytes, check);
}
