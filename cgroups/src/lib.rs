//! moor's cgroup layer: creates the container's cgroup on cgroup v1, hybrid and v2 hosts,
//! applies OCI `linux.resources` (with errors naming the field), freezes, reports typed
//! statistics (also as runc's `events --stats` JSON), watches for OOM kills through a pollable
//! fd, programs device rules (v1 lists, v2 eBPF via bpf(2)) and removes only what it created.
//!
//! ```no_run
//! use moor_cgroups::{Cgroup, CgroupConfig};
//! # fn main() -> Result<(), moor_cgroups::Error> {
//! let cg = Cgroup::create(&CgroupConfig {
//!     cgroups_path: "/moor/ctr1",
//!     container_id: "ctr1",
//!     systemd: false,
//!     rootless: false,
//! })?;
//! cg.add_task(std::process::id() as i32)?;
//! cg.apply(&oci_spec::runtime::LinuxResources::default())?;
//! # Ok(()) }
//! ```

mod cgroup;
pub mod convert;
pub mod devices;
mod error;
mod fsutil;
mod mode;
mod oom;
mod parse;
pub mod paths;
mod runc_json;
mod stats;
#[cfg(test)]
mod stats_fixtures;
mod sub;
mod systemd;
mod update;
mod v1;
mod v2;

pub use cgroup::{Cgroup, CgroupConfig};
pub use error::{Error, Result};
pub use mode::{detect_mode, Mode};
pub use oom::{OomCounts, OomUpdate, OomWatcher};
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuThrottling, CpuUsage, CpusetStats, HugetlbStats, IoDevice, MemoryEntry,
    MemoryEvents, MemoryStat, MemoryStatV1, MemoryStatV2, MemoryStats, OomControl, PidsStats, Stats,
};
pub use sub::SubCgroups;
pub use update::{parse_ram_in_bytes, resources_from_update_flags, UpdateFlags};

impl Cgroup {
    /// The cgroup's statistics, typed (see [`Stats`]); [`Stats::to_runc_json`] renders them as
    /// runc's `events --stats` data.
    pub fn stats(&self) -> Result<Stats> {
        stats::stats(self)
    }

    /// The full runc `events --stats` object: `{"type":"stats","id":..,"data":..}`.
    pub fn stats_event(&self, id: &str) -> Result<serde_json::Value> {
        Ok(serde_json::json!({"type": "stats", "id": id, "data": self.stats()?.to_runc_json()}))
    }

    /// How many processes the kernel OOM killer has killed in this cgroup (v2 memory.events
    /// `oom_kill`, v1 memory.oom_control `oom_kill`).
    pub fn oom_count(&self) -> Result<u64> {
        stats::oom_kill_count(self)
    }

    /// Starts watching the cgroup for OOM events: see [`OomWatcher`].
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        OomWatcher::new(self)
    }
}
