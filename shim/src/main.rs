//! containerd-shim-moor-v2: moor's containerd shim (runtime type `io.containerd.moor.v2`), one
//! small synchronous process per group of containers (a pod). See shim/README.md.

mod bootproto;
mod bootstrap;
mod error;
mod events;
mod flags;
mod io;
mod log;
mod metrics;
mod mount;
mod reaper;
mod rpc;
mod server;
mod service;
mod table;

use error::Error;
use flags::Flags;

fn main() {
    tune_malloc();
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => fail(&e),
    };
    if flags.version {
        println!("containerd-shim-moor-v2:");
        println!("  Version: {}", env!("CARGO_PKG_VERSION"));
        println!(
            "  Runtime: moor {} (OCI {})",
            env!("CARGO_PKG_VERSION"),
            moor::OCI_VERSION
        );
        return;
    }
    if flags.info {
        if let Err(e) = bootstrap::info() {
            fail(&e);
        }
        return;
    }
    let result = match flags.action.as_deref() {
        Some("start") => bootstrap::start(flags),
        Some("delete") => bootstrap::delete(&flags),
        None => server::serve(&flags),
        Some(other) => Err(Error::flag("action", format!("unknown action {other:?}"))),
    };
    if let Err(e) = result {
        fail(&e);
    }
}

/// One malloc arena, and fixed trim and mmap thresholds. Every ttrpc connection (containerd
/// opens one per container) has its own threads, and glibc gives each thread an arena that kept
/// about 1 MB after a request; the dynamic thresholds kept freed buffers in the heap. The helper,
/// forked later, inherits the settings and gives back what a create allocated.
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// The error on stderr (containerd shows `start`'s and `delete`'s), without panicking if stderr
/// is a closed pipe.
fn fail(e: &Error) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "containerd-shim-moor-v2: {e}");
    std::process::exit(1)
}
