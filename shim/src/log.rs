//! The serving shim's log: logrus-style lines on stderr, which is the bundle's `log` fifo that
//! containerd copies into its own log.

use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

fn line(level: &str, msg: &str) {
    eprintln!(
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
