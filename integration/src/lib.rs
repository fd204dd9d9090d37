//! Support library for moor's black-box integration suite.
//!
//! Everything here drives a runtime binary through its command line only (runc's CLI), so the
//! same tests run against moor, runc and crun. Select the binary with `RUNTIME=/path`.

pub mod attack;
pub mod bundle;
pub mod console;
pub mod host;
pub mod images;
pub mod mountinfo;
pub mod runner;

pub use bundle::Bundle;
pub use console::ConsoleReceiver;
pub use runner::{runtime_is, runtime_path, runtime_version, Ctx, Output};

use std::time::{Duration, Instant};

/// Skips the current test (returns early) when not running as root, saying why. With
/// `MOOR_IT_REQUIRE_ROOT=1` (CI, and scripts/test run as root) the test fails instead: a run
/// without root would otherwise pass with most of the suite skipped.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            $crate::report_skip(
                file!(),
                line!(),
                "this test needs root (container creation needs CAP_SYS_ADMIN)",
                true,
            );
            return;
        }
    };
}

/// Skips the current test (returns early) with a reason printed on stderr.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        $crate::report_skip(file!(), line!(), &format!($($arg)*), false);
        return;
    }};
}

/// What the skip macros do: `SKIP: why` on stderr (which cargo test shows only with
/// --nocapture), and, when `MOOR_IT_SKIP_LOG` names a file, a line `test<TAB>file:line<TAB>why`
/// appended to it, from which scripts/test lists every skip in its summary. A root skip panics
/// when `MOOR_IT_REQUIRE_ROOT` is set (to anything but 0).
#[doc(hidden)]
pub fn report_skip(file: &str, line: u32, why: &str, for_root: bool) {
    if for_root && std::env::var("MOOR_IT_REQUIRE_ROOT").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("MOOR_IT_REQUIRE_ROOT is set, so this test may not skip: {why}");
    }
    eprintln!("SKIP: {why}");
    let Some(log) = std::env::var_os("MOOR_IT_SKIP_LOG") else {
        return;
    };
    // libtest names each test's thread after the test
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let entry = format!("{test}\t{file}:{line}\t{}\n", why.replace(['\n', '\t'], " "));
    // one write with O_APPEND: lines of tests running in parallel do not interleave
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, entry.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "cannot record the skip in MOOR_IT_SKIP_LOG={}: {e}",
            log.to_string_lossy()
        );
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Like [`poll_until`] but returns `None` on timeout instead of panicking.
pub fn poll_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// The default deadline for a container to reach a state.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The deadline for one runtime command: `MOOR_IT_CMD_TIMEOUT` seconds, default 60. Lower it
/// when running against a runtime that hangs, to get through the suite faster.
pub fn command_timeout() -> Duration {
    std::env::var("MOOR_IT_CMD_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}
