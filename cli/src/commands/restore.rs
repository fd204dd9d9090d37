//! `restore`: runc's flags, into [`moor::RestoreOptions`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use moor::{RestoreOptions, Runtime};

use super::checkpoint::CriuArgs;

#[derive(Args)]
pub struct RestoreArgs {
    id: String,
    #[command(flatten)]
    criu: CriuArgs,
    /// Path to the bundle directory [default: the current directory].
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Return once restored instead of waiting for the container.
    #[arg(short, long)]
    detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket for the console's pty master (containers with a terminal: not supported).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility: the restored process is moor's own child, so there is
    /// nothing for a subreaper to collect.
    #[arg(long = "no-subreaper")]
    _no_subreaper: bool,
    /// Accepted for runc compatibility: CRIU makes the restored root itself.
    #[arg(long = "no-pivot")]
    _no_pivot: bool,
    /// LSM profile for the restored processes, TYPE:NAME.
    #[arg(long)]
    lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts.
    #[arg(long)]
    lsm_mount_context: Option<String>,
}

pub fn restore(
    rt: &Runtime,
    args: &RestoreArgs,
    criu: PathBuf,
    systemd_cgroup: bool,
    rootless: moor::RootlessMode,
) -> Result<i32> {
    // CRIU gets only the fds restore names: nothing else the caller left open rides along.
    moor::caller::seal_inherited(0)?;
    let opts = RestoreOptions {
        criu: args.criu.options(criu)?,
        bundle: args.bundle.clone(),
        detach: args.detach,
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone().filter(|p| !p.as_os_str().is_empty()),
        lsm_profile: args.lsm_profile.clone().filter(|p| !p.is_empty()),
        lsm_mount_context: args.lsm_mount_context.clone().filter(|p| !p.is_empty()),
        systemd_cgroup,
        rootless,
    };
    rt.restore(&args.id, &opts)
        .with_context(|| format!("restore {}", args.id))
}
