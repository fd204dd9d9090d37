//! Per-process attributes of the workload that are not credentials: rlimits, oom_score_adj,
//! I/O priority, scheduler, personality, sysctls and LSM labels.

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimit,
    PosixRlimitType, Process, Scheduler,
};
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::sys::procfs::Procfs;

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads one valid rlimit struct.
        if unsafe { libc::setrlimit(rlimit_resource(r.typ()), &lim) } != 0 {
            return Err(Error::last_os(format!(
                "process.rlimits: {} soft {} hard {}",
                r.typ(),
                r.soft(),
                r.hard()
            )));
        }
    }
    Ok(())
}

pub fn set_oom_score_adj(procfs: &Procfs, adj: i32) -> Result<()> {
    procfs
        .write("self/oom_score_adj", &adj.to_string())
        .map_err(|e| Error::field("process.oomScoreAdj", e))
}

pub fn set_io_priority(process: &Process) -> Result<()> {
    let Some(io) = process.io_priority() else { return Ok(()) };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        return Err(Error::config("process.ioPriority.priority", "must be between 0 and 7"));
    }
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let value = (class << 13) | io.priority();
    // SAFETY: ioprio_set with integer arguments, on ourselves.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) } != 0 {
        return Err(Error::last_os("process.ioPriority: ioprio_set"));
    }
    Ok(())
}

#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    // The struct is a few dozen bytes.
    #[allow(clippy::cast_possible_truncation)]
    let size = std::mem::size_of::<SchedAttr>() as u32;
    let attr = SchedAttr {
        size,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0).unsigned_abs(),
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: sched_setattr reads attr.size bytes of a valid struct.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        return Err(Error::last_os("process.scheduler: sched_setattr"));
    }
    Ok(())
}

pub fn set_personality(p: &LinuxPersonality) -> Result<()> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::config(
            "linux.personality.flags",
            "no personality flags are supported",
        ));
    }
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    nix::sys::personality::set(nix::sys::personality::Persona::from_bits_retain(persona))
        .map(drop)
        .map_err(|e| Error::sys("linux.personality: personality", e))
}

/// Writes linux.sysctl through the trusted procfs (net.* keys land in the container's network
/// namespace, because the writer is in it).
pub fn set_sysctls(procfs: &Procfs, sysctl: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<_> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let path = format!("sys/{}", key.replace('.', "/"));
        procfs
            .write(&path, &sysctl[key])
            .map_err(|e| Error::field(format!("linux.sysctl.{key}"), e))?;
    }
    Ok(())
}

/// True when AppArmor is enabled (runc's test: securityfs has it and the module says so).
pub fn apparmor_enabled() -> bool {
    std::path::Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.first() == Some(&b'Y'))
}

/// True when SELinux is enabled (selinuxfs is mounted).
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Asks the LSM to label the workload at exec. A label that cannot be applied is an error,
/// as with runc: the process must never run less confined than asked.
pub fn set_lsm_labels(procfs: &Procfs, process: &Process) -> Result<()> {
    if let Some(profile) = process.apparmor_profile().as_deref().filter(|p| !p.is_empty()) {
        if !apparmor_enabled() {
            return Err(Error::config(
                "process.apparmorProfile",
                format!("{profile:?}: AppArmor is not enabled on this host"),
            ));
        }
        procfs
            .write("self/attr/apparmor/exec", &format!("exec {profile}"))
            .or_else(|_| procfs.write("self/attr/exec", &format!("exec {profile}")))
            .map_err(|e| Error::field("process.apparmorProfile", e))?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if !selinux_enabled() {
            return Err(Error::config(
                "process.selinuxLabel",
                format!("{label:?}: SELinux is not enabled on this host"),
            ));
        }
        procfs
            .write("self/attr/exec", label)
            .map_err(|e| Error::field("process.selinuxLabel", e))?;
    }
    Ok(())
}
