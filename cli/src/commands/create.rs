//! `create` and `run`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use moor::{CreateOptions, Runtime};

use super::enter_sealed;

#[derive(Args, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is set.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the init process's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for rootfs on ramfs).
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, ...) to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

impl CreateArgs {
    fn options(&self, systemd_cgroup: bool, rootless: moor::RootlessMode) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            console_fd: None,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            systemd_cgroup,
            rootless,
        }
    }
}

pub fn create(
    rt: &Runtime,
    id: &str,
    args: &CreateArgs,
    systemd_cgroup: bool,
    rootless: moor::RootlessMode,
) -> Result<()> {
    enter_sealed(args.preserve_fds)?;
    rt.create(id, &args.options(systemd_cgroup, rootless))
        .with_context(|| format!("create {id}"))?;
    Ok(())
}

pub fn run(
    rt: &Runtime,
    id: &str,
    args: &CreateArgs,
    detach: bool,
    keep: bool,
    systemd_cgroup: bool,
    rootless: moor::RootlessMode,
) -> Result<i32> {
    enter_sealed(args.preserve_fds)?;
    if detach {
        rt.create(id, &args.options(systemd_cgroup, rootless))
            .with_context(|| format!("create {id}"))?;
        if let Err(e) = rt.start(id) {
            let _ = rt.delete(id, true);
            return Err(e.into());
        }
    } else {
        return Ok(rt.run(id, &args.options(systemd_cgroup, rootless), keep)?);
    }
    Ok(0)
}
