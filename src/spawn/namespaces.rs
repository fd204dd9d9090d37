//! Which namespaces a container gets: new ones become clone3 flags, existing ones (by `path`)
//! are joined with setns(2) after checking that the file really is a namespace of that type.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::{Error, Result};

/// The namespaces a container asks for, split into what to create and what to join.
#[derive(Default)]
pub struct Plan {
    /// CLONE_NEW* flags for the clone that creates init (time is unshared later, see init).
    pub clone_flags: u64,
    pub new_time: bool,
    /// A new cgroup namespace that init unshares itself once the parent has put it into its
    /// cgroup (when CLONE_INTO_CGROUP is not available), so the namespace is rooted there.
    pub cgroup_ns_late: bool,
    /// Namespaces to join, in the order setns must happen (user first).
    pub join: Vec<(LinuxNamespaceType, PathBuf, OwnedFd)>,
}

impl Plan {
    pub fn new_ns(&self, t: LinuxNamespaceType) -> bool {
        if t == LinuxNamespaceType::Time {
            return self.new_time;
        }
        if t == LinuxNamespaceType::Cgroup && self.cgroup_ns_late {
            return true;
        }
        self.clone_flags & (t as u64) != 0
    }

    /// Defers a new cgroup namespace to init (see `cgroup_ns_late`).
    pub fn defer_cgroup_ns(&mut self) {
        if self.clone_flags & libc::CLONE_NEWCGROUP as u64 != 0 {
            self.clone_flags &= !(libc::CLONE_NEWCGROUP as u64);
            self.cgroup_ns_late = true;
        }
    }

    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join.iter().any(|(jt, _, _)| *jt == t)
    }
}

pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// Builds the plan and opens (and type-checks) every namespace to join, before anything is
/// created, so a bad path fails early and leaves nothing.
pub fn plan(namespaces: &[LinuxNamespace]) -> Result<Plan> {
    let mut plan = Plan::default();
    for (i, ns) in namespaces.iter().enumerate() {
        let t = ns.typ();
        match ns.path() {
            None => {
                if t == LinuxNamespaceType::Time {
                    plan.new_time = true;
                } else {
                    plan.clone_flags |= t as u64;
                }
            }
            Some(path) => {
                let field = format!("linux.namespaces[{i}].path");
                // Non-blocking and no controlling tty: a FIFO or a terminal named here must fail
                // the type check below, not hang or change moor's session.
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
                    .open(path)
                    .map_err(|e| Error::config(&field, format!("{}: {e}", path.display())))?;
                let fd = OwnedFd::from(file);
                // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
                let kind = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
                if kind < 0 {
                    return Err(Error::config(field, format!("{} is not a namespace", path.display())));
                }
                if kind as u64 != t as u64 {
                    return Err(Error::config(
                        field,
                        format!("{} is not a {} namespace", path.display(), ns_name(t)),
                    ));
                }
                plan.join.push((t, path.clone(), fd));
            }
        }
    }
    // A joined user namespace must be entered first: the others are then owned by it.
    plan.join.sort_by_key(|(t, _, _)| *t != LinuxNamespaceType::User);
    Ok(plan)
}

/// Enters every namespace to join.
pub fn join_all(plan: &Plan) -> Result<()> {
    for (t, path, fd) in &plan.join {
        // SAFETY: setns with an fd we own and its verified type.
        if unsafe { libc::setns(fd.as_raw_fd(), *t as i32) } != 0 {
            return Err(Error::last_os(format!(
                "join {} namespace {}",
                ns_name(*t),
                path.display()
            )));
        }
    }
    Ok(())
}
