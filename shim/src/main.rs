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

/// The error on stderr (containerd shows `start`'s and `delete`'s), without panicking if stderr
/// is a closed pipe.
fn fail(e: &Error) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "containerd-shim-moor-v2: {e}");
    std::process::exit(1)
}
