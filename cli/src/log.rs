//! Where moor's messages go: --log (else stderr), as text or --log-format json, as runc writes them.

use std::io::Write;
use std::sync::OnceLock;

pub struct Logger {
    pub file: Option<std::fs::File>,
    pub json: bool,
}

pub static LOGGER: OnceLock<Logger> = OnceLock::new();

pub fn log(level: &str, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        eprintln!("moor: {level}: {msg}");
        return;
    };
    let time = moor::now_rfc3339();
    let line = if logger.json {
        serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level={level} msg={msg:?}")
    };
    match &logger.file {
        Some(f) => {
            let mut w: &std::fs::File = f;
            let _ = writeln!(w, "{line}");
        }
        None => eprintln!("{line}"),
    }
}

pub static DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn library_log(level: moor::Level, msg: &str) {
    match level {
        moor::Level::Warning => log("warning", msg),
        moor::Level::Debug if DEBUG.load(std::sync::atomic::Ordering::Relaxed) => log("debug", msg),
        moor::Level::Debug => {}
    }
}
