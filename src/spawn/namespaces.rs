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
                if u64::from(kind.unsigned_abs()) != t as u64 {
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
        // An fd we own and its verified type.
        nix::sched::setns(fd, nix::sched::CloneFlags::from_bits_retain(*t as i32))
            .map_err(|e| Error::sys(format!("join {} namespace {}", ns_name(*t), path.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{plan, LinuxNamespaceType as T};
    use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceBuilder};

    fn new(t: T) -> LinuxNamespace {
        LinuxNamespaceBuilder::default().typ(t).build().unwrap()
    }

    fn join(t: T, path: &str) -> LinuxNamespace {
        LinuxNamespaceBuilder::default().typ(t).path(path).build().unwrap()
    }

    #[test]
    fn no_namespaces_means_no_clone_flags_and_nothing_to_join() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.clone_flags, 0);
        assert!(!p.new_time && !p.cgroup_ns_late && p.join.is_empty());
        assert!(!p.new_ns(T::Mount) && !p.new_ns(T::Time));
    }

    #[test]
    fn new_namespaces_become_exactly_their_clone_flags() {
        let p = plan(&[new(T::Mount), new(T::Pid), new(T::Network), new(T::User)]).unwrap();
        let want = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWUSER;
        assert_eq!(p.clone_flags, u64::try_from(want).unwrap());
        assert!(p.new_ns(T::Mount) && p.new_ns(T::User));
        assert!(!p.new_ns(T::Ipc) && !p.new_ns(T::Uts) && !p.new_ns(T::Cgroup));
    }

    #[test]
    fn a_new_time_namespace_is_not_a_clone_flag() {
        // clone3 cannot create a time namespace for the child itself: init unshares it.
        let p = plan(&[new(T::Time)]).unwrap();
        assert_eq!(p.clone_flags, 0);
        assert!(p.new_time && p.new_ns(T::Time));
    }

    #[test]
    fn a_repeated_namespace_plans_the_same_as_one() {
        // Loading the config refuses repeats; the plan itself stays idempotent.
        let once = plan(&[new(T::Ipc)]).unwrap();
        let twice = plan(&[new(T::Ipc), new(T::Ipc)]).unwrap();
        assert_eq!(once.clone_flags, twice.clone_flags);
        assert!(twice.join.is_empty());
    }

    #[test]
    fn a_deferred_cgroup_namespace_leaves_the_clone_but_stays_new() {
        let mut p = plan(&[new(T::Cgroup), new(T::Mount)]).unwrap();
        p.defer_cgroup_ns();
        assert_eq!(p.clone_flags, u64::try_from(libc::CLONE_NEWNS).unwrap());
        assert!(p.cgroup_ns_late && p.new_ns(T::Cgroup));
        let mut q = plan(&[new(T::Mount)]).unwrap();
        q.defer_cgroup_ns();
        assert!(!q.cgroup_ns_late && !q.new_ns(T::Cgroup));
    }

    #[test]
    fn a_missing_path_names_its_field() {
        let e = plan(&[new(T::Mount), join(T::Network, "/nonexistent/moor-ns")])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("linux.namespaces[1].path"), "{e}");
        assert!(e.contains("/nonexistent/moor-ns"), "{e}");
    }

    #[test]
    fn a_path_that_is_no_namespace_is_refused() {
        let e = plan(&[join(T::Network, "/dev/null")]).err().unwrap().to_string();
        assert!(
            e.contains("linux.namespaces[0].path") && e.contains("is not a namespace"),
            "{e}"
        );
    }

    #[test]
    fn a_namespace_of_another_type_is_refused() {
        let e = plan(&[join(T::Network, "/proc/self/ns/uts")])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is not a network namespace"), "{e}");
    }

    #[test]
    fn a_joined_user_namespace_is_entered_first() {
        let p = plan(&[join(T::Uts, "/proc/self/ns/uts"), join(T::User, "/proc/self/ns/user")]).unwrap();
        let order: Vec<T> = p.join.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(order, [T::User, T::Uts]);
        assert!(p.joins(T::Uts) && !p.new_ns(T::Uts) && !p.joins(T::Ipc));
        assert_eq!(p.clone_flags, 0);
    }
}
