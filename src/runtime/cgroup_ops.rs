//! Operations on a running container's cgroup: pause, resume, ps, update, events.

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::runtime::state::Status;
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
        match status {
            Status::Running | Status::Created => Ok(cg.freeze()?),
            Status::Stopped => Err(Error::NotRunning(id.to_string())),
            s => Err(Error::InvalidState(format!("container {id} is {s}: cannot pause it"))),
        }
    }

    /// `resume`: thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let (cg, status) = self.cgroup_of(id)?;
        if status != Status::Paused {
            return Err(Error::InvalidState(format!("container {id} is not paused")));
        }
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
        if status == Status::Stopped {
            return Err(Error::NotRunning(id.to_string()));
        }
        Ok(cg.update(resources)?)
    }

    /// `events --stats`: one statistics object in runc's schema.
    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let (cg, status) = self.cgroup_of(id)?;
        if status == Status::Stopped {
            return Err(Error::NotRunning(id.to_string()));
        }
        Ok(cg.stats_event(id)?)
    }

    /// The number of OOM kills so far (for the `events` stream).
    pub fn oom_count(&self, id: &str) -> Result<u64> {
        let (cg, _) = self.cgroup_of(id)?;
        Ok(cg.oom_count()?)
    }
}
