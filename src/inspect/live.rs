//! The report of a created or running container: its processes (see `proc`), its root and
//! cgroup (see `root`), and where they differ from the config recorded at create (drift).

use oci_spec::runtime::{Linux, LinuxNamespaceType};

use super::config::{self, NS_KINDS};
use super::proc::{host_reference, read, read_process, status_caps};
use super::root::{devices, filesystem, limits, open_root};
use super::{caps, seccomp, NsState, Process, Report, SeccompMode, Source};
use crate::error::{Error, Result};
use crate::init::capabilities::Sets;
use crate::runtime::state::Status;
use crate::Runtime;

/// Builds the report of container `id`; with `all`, every process in its cgroup, else its init.
pub fn from_container(rt: &Runtime, id: &str, all: bool) -> Result<Report> {
    let (state, status) = rt.load(id)?;
    if status == Status::Stopped || status == Status::Creating {
        return Err(Error::InvalidState(format!(
            "container {id} is {status}: only a created, running or paused container can be inspected"
        )));
    }
    let cfg = &crate::runtime::state::exec_config(&rt.root, id)?;
    let init = state.pid;
    let mut pids = vec![init];
    if all {
        pids.extend(
            crate::runtime::container_pids(&state)
                .into_iter()
                .filter(|p| *p != init),
        );
    }
    let mut processes = Vec::new();
    for pid in pids {
        match read_process(pid, &cfg.linux) {
            Ok(p) => processes.push(p),
            // Another process may exit while we read it; init may not.
            Err(e) if pid == init => return Err(Error::context(format!("read init process {pid}"), e)),
            Err(_) => {}
        }
    }
    let root = open_root(init)?;
    let mut report = Report {
        source: Source::Live {
            id: id.to_string(),
            status: status.to_string(),
            host_namespaces: host_reference(),
        },
        drift: processes
            .first()
            .map(|p| drift(p, &cfg.process, &cfg.linux, status == Status::Created))
            .transpose()?
            .unwrap_or_default(),
        processes,
        filesystem: filesystem(init, &root, &cfg.linux)?,
        devices: devices(&state, &root, &cfg.linux),
        cgroup: limits(&state),
        seccomp_profile: cfg.linux.seccomp().as_ref().map(seccomp::analyse).transpose()?,
        sysctls: config::sysctls(&cfg.linux),
        findings: Vec::new(),
    };
    // The facts are init's only if the pid still names it (not a process that reused it).
    if !state.init_alive() {
        return Err(Error::InvalidState(format!(
            "container {id} stopped while it was inspected"
        )));
    }
    report.findings = super::findings(&report);
    Ok(report)
}

fn names(mask: u64) -> String {
    let n = caps::names(mask);
    if n.is_empty() {
        "none".into()
    } else {
        n.join(", ")
    }
}

/// The permitted (and effective) set execve leaves a process started with `sets` as `uid`,
/// running a file without file capabilities: root gets its bounding and inheritable sets
/// (no_new_privs caps that at what it had), any other user keeps only its ambient set.
fn after_execve(sets: &Sets, uid: u32, nnp: bool) -> u64 {
    if uid != 0 {
        return sets.ambient;
    }
    let p = sets.bounding | sets.inheritable | sets.ambient;
    if nnp {
        p & (sets.permitted | sets.ambient)
    } else {
        p
    }
}

/// Differences between init's live state and what the recorded config asked for. Capabilities
/// are compared with what execve makes of the configured sets ([`after_execve`]) once the
/// workload runs.
fn drift(
    live: &Process,
    process: &oci_spec::runtime::Process,
    linux: &Linux,
    before_exec: bool,
) -> Result<Vec<String>> {
    let want = config::cap_sets(process)?;
    let status = read(live.pid.unwrap_or(0), "status")?;
    let got = status_caps(&status);
    let nnp = process.no_new_privileges().unwrap_or(false);
    let uid = process.user().uid();
    // A created container's init waits on the exec fifo with the configured sets: execve is
    // still to come.
    let expected_eff = if before_exec {
        want.effective
    } else {
        after_execve(&want, uid, nnp)
    };
    let mut d = Vec::new();
    let mut set = |what: &str, want: u64, got: u64| {
        if want != got {
            d.push(format!(
                "{what} capabilities: the config leads to {}, process has {}",
                names(want),
                names(got)
            ));
        }
    };
    set("bounding", want.bounding, got.bounding);
    set("inheritable", want.inheritable, got.inheritable);
    set("ambient", want.ambient, got.ambient);
    set("effective", expected_eff, got.effective);
    if nnp != live.no_new_privs {
        d.push(format!(
            "no_new_privs: config says {nnp}, process has {}",
            live.no_new_privs
        ));
    }
    let filtered = linux.seccomp().is_some();
    if filtered != (live.seccomp.mode == SeccompMode::Filter) {
        d.push(format!(
            "seccomp: config {} a filter, process is in mode {:?}",
            if filtered { "has" } else { "has no" },
            live.seccomp.mode
        ));
    }
    if uid != live.user.uid {
        d.push(format!(
            "user: config says uid {uid}, process runs as uid {}",
            live.user.uid
        ));
    }
    for ns in &live.namespaces {
        let ty = NS_KINDS.iter().find(|(k, _)| *k == ns.kind).map(|(_, t)| *t);
        let asked = ty.is_some_and(|t| linux.namespaces().iter().flatten().any(|n| n.typ() == t));
        // The time and cgroup namespaces may be absent from a kernel; user is judged by maps.
        if asked && ns.state == NsState::Host && ty != Some(LinuxNamespaceType::User) {
            d.push(format!(
                "namespace {}: config asks for one, process shares the host's",
                ns.kind
            ));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execve_model() {
        let s = Sets {
            bounding: 0b1111,
            permitted: 0b0011,
            effective: 0b0011,
            inheritable: 0b0100,
            ambient: 0,
        };
        assert_eq!(after_execve(&s, 0, false), 0b1111);
        assert_eq!(after_execve(&s, 0, true), 0b0011);
        assert_eq!(after_execve(&s, 1000, false), 0);
        assert_eq!(after_execve(&Sets { ambient: 0b0100, ..s }, 1000, true), 0b0100);
    }
}
