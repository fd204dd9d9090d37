//! `update`: new resource limits from --resources or runc's flags.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use moor::Runtime;

use super::json_error;
use crate::log::log;

#[derive(Args)]
pub struct UpdateArgs {
    id: String,
    /// A JSON file (or - for stdin) with runtime-spec linux.resources.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    #[arg(long, allow_negative_numbers = true)]
    memory: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    memory_swap: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    memory_reservation: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    kernel_memory: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    kernel_memory_tcp: Option<String>,
    /// runc's flag is --cpu-share (its update.bats uses it).
    #[arg(long, alias = "cpu-share", allow_negative_numbers = true)]
    cpu_shares: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_quota: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_period: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_burst: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_rt_period: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_rt_runtime: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_idle: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpuset_cpus: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpuset_mems: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pids_limit: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    blkio_weight: Option<String>,
}

pub fn update(rt: &Runtime, a: UpdateArgs) -> Result<()> {
    let resources: oci_spec::runtime::LinuxResources = match &a.resources {
        Some(path) => {
            let data = if path.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).context("read resources from stdin")?;
                v
            } else {
                moor::spec::config::read_bounded(path, "--resources", true)?
            };
            moor::spec::config::parse_json(&data).map_err(|e| json_error("--resources", e))?
        }
        None => {
            let flags = moor_cgroups::UpdateFlags {
                memory: a.memory,
                memory_swap: a.memory_swap,
                memory_reservation: a.memory_reservation,
                kernel_memory: a.kernel_memory,
                kernel_memory_tcp: a.kernel_memory_tcp,
                cpu_shares: a.cpu_shares,
                cpu_quota: a.cpu_quota,
                cpu_period: a.cpu_period,
                cpu_burst: a.cpu_burst,
                cpu_rt_period: a.cpu_rt_period,
                cpu_rt_runtime: a.cpu_rt_runtime,
                cpu_idle: a.cpu_idle,
                cpuset_cpus: a.cpuset_cpus,
                cpuset_mems: a.cpuset_mems,
                pids_limit: a.pids_limit,
                blkio_weight: a.blkio_weight,
            };
            moor_cgroups::resources_from_update_flags(&flags)?
        }
    };
    for w in moor::spec::config::resource_warnings(&resources) {
        log("warning", &w);
    }
    rt.update(&a.id, &resources)?;
    Ok(())
}
