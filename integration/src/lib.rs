//! Support library for moor's black-box integration suite.
//!
//! Everything here drives a runtime binary through its command line only (runc's CLI), so the
//! same tests run against moor, runc and crun. Select the binary with `RUNTIME=/path`.

pub mod attack;
pub mod bundle;
pub mod console;
pub mod host;
pub mod runner;

pub use bundle::Bundle;
pub use console::ConsoleReceiver;
pub use runner::{runtime_is, runtime_path, runtime_version, Ctx, Output};

use std::time::{Duration, Instant};

/// Skips the current test (returns early) when not running as root, saying why.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!("SKIP: this test needs root (container creation needs CAP_SYS_ADMIN)");
            return;
        }
    };
}

/// Skips the current test (returns early) with a reason printed on stderr.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        eprintln!("SKIP: {}", format!($($arg)*));
        return;
    }};
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
