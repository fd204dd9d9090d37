//! The serving shim's log: logrus-style lines on stderr, which is the bundle's `log` fifo that
//! containerd copies into its own log.

use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Never fails the caller: the fifo's reader goes away when the container whose bundle holds it
/// is deleted (the shim serves on for the rest of its group), and eprintln! would panic on EPIPE.
fn line(level: &str, msg: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "time=\"{}\" level={level} msg={:?} runtime=io.containerd.moor.v2",
        moor::now_rfc3339(),
        msg
    );
}

pub fn error(msg: &str) {
    line("error", msg);
}

pub fn info(msg: &str) {
    line("info", msg);
}

pub fn debug(msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        line("debug", msg);
    }
}
