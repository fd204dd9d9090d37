//! `checkpoint`: runc's flags, into [`moor::CheckpointOptions`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use moor::{CgroupsMode, CheckpointOptions, CriuOptions, Runtime};

/// The flags checkpoint and restore share, as runc spells them.
#[derive(Args)]
pub struct CriuArgs {
    /// Path for the CRIU image files [default: ./checkpoint].
    #[arg(long)]
    image_path: Option<PathBuf>,
    /// Path for CRIU's work files and log [default: the image path].
    #[arg(long)]
    work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long)]
    tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long)]
    ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long)]
    shell_job: bool,
    /// Handle file locks.
    #[arg(long)]
    file_locks: bool,
    /// CRIU's cgroup mode: soft (default), full, strict or ignore.
    #[arg(long)]
    manage_cgroups_mode: Option<String>,
    /// Create a namespace but do not restore its properties (network only).
    #[arg(long)]
    empty_ns: Vec<String>,
    /// Deduplicate memory images automatically.
    #[arg(long)]
    auto_dedup: bool,
    /// Restore memory pages lazily (userfaultfd).
    #[arg(long)]
    lazy_pages: bool,
}

impl CriuArgs {
    pub fn options(&self, criu: PathBuf) -> Result<CriuOptions> {
        let manage_cgroups_mode = self
            .manage_cgroups_mode
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(str::parse::<CgroupsMode>)
            .transpose()?;
        Ok(CriuOptions {
            criu,
            // runc's default: ./checkpoint
            image_path: self.image_path.clone().unwrap_or_else(|| PathBuf::from("checkpoint")),
            work_path: self.work_path.clone(),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode,
            empty_ns: self.empty_ns.clone(),
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        })
    }
}

#[derive(Args)]
pub struct CheckpointArgs {
    id: String,
    #[command(flatten)]
    criu: CriuArgs,
    /// Path of the previous (pre-dump) images, relative to the image path.
    #[arg(long)]
    parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long)]
    leave_running: bool,
    /// Dump the memory only, and leave the container running.
    #[arg(long)]
    pre_dump: bool,
    /// With --lazy-pages: CRIU writes \0 to this fd once the pages can be served.
    #[arg(long, allow_negative_numbers = true, default_value_t = -1)]
    status_fd: i32,
    /// ADDRESS:PORT of a CRIU page server.
    #[arg(long)]
    page_server: Option<String>,
    /// Save open files whose name was unlinked, through a link CRIU makes.
    #[arg(long)]
    link_remap: bool,
    /// Drop connections that are still in a listener's accept queue.
    #[arg(long)]
    tcp_skip_in_flight: bool,
}

pub fn checkpoint(rt: &Runtime, args: &CheckpointArgs, criu: PathBuf) -> Result<()> {
    let opts = CheckpointOptions {
        criu: args.criu.options(criu)?,
        parent_path: args.parent_path.clone().filter(|p| !p.as_os_str().is_empty()),
        leave_running: args.leave_running,
        pre_dump: args.pre_dump,
        status_fd: (args.status_fd >= 0).then_some(args.status_fd),
        page_server: args.page_server.clone().filter(|p| !p.is_empty()),
        link_remap: args.link_remap,
        tcp_skip_in_flight: args.tcp_skip_in_flight,
    };
    rt.checkpoint(&args.id, &opts)
        .with_context(|| format!("checkpoint {}", args.id))
}
