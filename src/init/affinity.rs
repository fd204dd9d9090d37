//! `process.execCPUAffinity` (runtime-spec 1.3) for `exec`: the `initial` CPUs are where the
//! process runs while it enters the container (set before it joins the cgroup), the `final` CPUs
//! are set by the parent once it is in the cgroup (joining a cpuset cgroup resets the affinity).
//! The container's init is not affected, as the spec says.

use nix::sched::CpuSet;
use oci_spec::runtime::ExecCPUAffinity;

use crate::error::{Error, Result};

/// Both sets, parsed before anything is cloned so a bad list fails the exec cleanly.
#[derive(Default)]
pub struct ExecAffinity {
    initial: Option<CpuSet>,
    last: Option<CpuSet>,
}

impl ExecAffinity {
    pub fn parse(spec: Option<&ExecCPUAffinity>) -> Result<Self> {
        let Some(spec) = spec else {
            return Ok(Self::default());
        };
        let set = |field: &str, text: &Option<String>| -> Result<Option<CpuSet>> {
            match text.as_deref().filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(text) => to_set(field, text).map(Some),
            }
        };
        Ok(Self {
            initial: set("process.execCPUAffinity.initial", spec.initial())?,
            last: set("process.execCPUAffinity.final", spec.cpu_affinity_final())?,
        })
    }

    /// In the process that is about to join the container (its children inherit it).
    pub fn apply_initial(&self) -> Result<()> {
        match &self.initial {
            Some(set) => apply(0, set, "process.execCPUAffinity.initial"),
            None => Ok(()),
        }
    }

    /// From the parent, once `pid` is in the container's cgroup.
    pub fn apply_final(&self, pid: i32) -> Result<()> {
        match &self.last {
            Some(set) => apply(pid, set, "process.execCPUAffinity.final"),
            None => Ok(()),
        }
    }
}

fn to_set(field: &str, text: &str) -> Result<CpuSet> {
    let limit = u32::try_from(CpuSet::count()).unwrap_or(1024);
    let cpus = crate::spec::cpulist::parse(field, text, limit)?;
    let mut set = CpuSet::new();
    for cpu in cpus {
        // parse() keeps every id below the set's size in bits: this never fails.
        set.set(cpu as usize)
            .map_err(|_| Error::config(field, format!("CPU {cpu} is out of range")))?;
    }
    Ok(set)
}

fn apply(pid: i32, set: &CpuSet, field: &str) -> Result<()> {
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), set)
        .map_err(|e| Error::config(field, format!("sched_setaffinity: {}", std::io::Error::from(e))))
}
