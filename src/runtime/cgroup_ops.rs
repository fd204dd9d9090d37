//! Operations on a running container's cgroup: pause, resume, ps, update, events.

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::runtime::state::Status;
use crate::runtime::transitions::{self, Op};
use crate::runtime::Runtime;

impl Runtime {
    fn cgroup_of(&self, id: &str) -> Result<(moor_cgroups::Cgroup, Status)> {
        let (state, status) = self.load(id)?;
        let cg = state
            .cgroup()
            .ok_or_else(|| Error::InvalidState(format!("container {id} has no cgroup")))?;
        Ok((cg, status))
    }

    /// `pause`: freezes every process of the container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let (cg, status) = self.cgroup_of(id)?;
        transitions::check(Op::Pause, status, id)?;
        Ok(cg.freeze()?)
    }

    /// `resume`: thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let (cg, status) = self.cgroup_of(id)?;
        transitions::check(Op::Resume, status, id)?;
        Ok(cg.thaw()?)
    }

    /// `ps`: the pids of every process in the container.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (state, status) = self.load(id)?;
        if status == Status::Stopped {
            return Ok(Vec::new());
        }
        Ok(crate::runtime::container_pids(&state))
    }

    /// `update`: changes the resources of a created, running or paused container.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        let (cg, status) = self.cgroup_of(id)?;
        transitions::check(Op::Update, status, id)?;
        Ok(cg.update(resources)?)
    }

    /// The container's cgroup statistics, typed (cgroup v1, v2 or hybrid).
    pub fn stats(&self, id: &str) -> Result<moor_cgroups::Stats> {
        let (cg, status) = self.cgroup_of(id)?;
        transitions::check(Op::Stats, status, id)?;
        Ok(cg.stats()?)
    }

    /// `events --stats`: [`Runtime::stats`] as one event object in runc's schema.
    pub fn stats_event(&self, id: &str) -> Result<serde_json::Value> {
        let data = self.stats(id)?.to_runc_json();
        Ok(serde_json::json!({"type": "stats", "id": id, "data": data}))
    }

    /// A watcher of the container's OOM events (a pollable fd; see [`moor_cgroups::OomWatcher`]).
    pub fn oom_watcher(&self, id: &str) -> Result<moor_cgroups::OomWatcher> {
        let (cg, _) = self.cgroup_of(id)?;
        Ok(cg.oom_watcher()?)
    }
}
