//! moor's cgroup layer: creates the container's cgroup on cgroup v1, hybrid and v2 hosts,
//! applies OCI `linux.resources` (with errors naming the field), freezes, reports runc-style
//! statistics, programs device rules (v1 lists, v2 eBPF via bpf(2)) and removes only what it
//! created.
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
pub mod paths;
mod stats;
mod sub;
mod systemd;
mod update;
mod v1;
mod v2;

pub use cgroup::{Cgroup, CgroupConfig};
pub use error::{Error, Result};
pub use mode::{detect_mode, Mode};
pub use sub::SubCgroups;
pub use update::{parse_ram_in_bytes, resources_from_update_flags, UpdateFlags};

impl Cgroup {
    /// Statistics as the "data" object of runc's `events --stats`.
    pub fn stats(&self) -> Result<serde_json::Value> {
        stats::stats(self)
    }

    /// The full runc `events --stats` object: `{"type":"stats","id":..,"data":..}`.
    pub fn stats_event(&self, id: &str) -> Result<serde_json::Value> {
        Ok(serde_json::json!({"type": "stats", "id": id, "data": self.stats()?}))
    }

    /// How many processes the kernel OOM killer has killed in this cgroup (v2 memory.events
    /// `oom_kill`, v1 memory.oom_control `oom_kill`). Compare successive values for `events`.
    pub fn oom_count(&self) -> Result<u64> {
        stats::oom_count(self)
    }
}
