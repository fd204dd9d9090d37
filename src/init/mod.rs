//! The container's init, from the clone into its namespaces to the execve of the workload.
//! Each step below runs in the order the kernel and the runtime-spec require; the comments on
//! [`steps`] are the checklist. Any failure up to Created is reported to the parent as
//! `Msg::Error` and init exits; the parent then removes everything. After Created the parent is
//! gone: a failure is written to the exec fifo, where `start` reads it.

pub mod affinity;
pub mod capabilities;
pub mod mempolicy;
pub mod process;
pub mod pty;
pub mod rootfs;
pub mod user;
pub mod workload;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{report, Error, Result};
use crate::init::capabilities::Sets;
use crate::runtime::hooks;
use crate::runtime::state::{ContainerState, Status};
use crate::spawn::namespaces::Plan;
use crate::spawn::sync::{Channel, Msg};
use crate::sys::procfs::Procfs;
use crate::sys::terminal::{self, console_dim};

/// Everything init needs, prepared by the parent before the clone.
pub struct Init<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    /// The record as it was at the clone: init builds its hooks' state from it.
    pub state: &'a ContainerState,
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    pub sync: Channel,
    /// The parent's end of the sync socket, inherited by the clone: closed first thing, or the
    /// parent's death would never reach us as EOF.
    pub parent_sync: RawFd,
    /// O_PATH fd of the exec fifo, reopened for writing through the trusted procfs.
    pub fifo: OwnedFd,
    pub console_socket: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// The process's stdio and extra fds, moved into place first thing (see `fds::install`).
    pub stdio: Option<&'a crate::sys::fds::Stdio>,
    pub extra_fds: &'a [OwnedFd],
    /// How many of `extra_fds` are socket-activation sockets.
    pub listen_fds: u32,
    pub caps: Option<Sets>,
    pub last_cap: u32,
    pub seccomp: Option<&'a moor_seccomp::Compiled>,
    pub memory_policy: Option<&'a crate::init::mempolicy::MemPolicy>,
    /// The parent's copy of the state directory lock: closed first thing, or init would hold
    /// the container locked for its whole life.
    pub state_lock: RawFd,
    /// Bind mount trees made by the parent, by index into `mounts`.
    pub parent_trees: Vec<Option<rootfs::ParentTree>>,
    /// The container's cgroups as the host sees them, for the /sys/fs/cgroup mount.
    pub cgroups: Vec<rootfs::cgroupfs::Membership>,
    /// Init turns itself non-dumpable first thing: nothing in the container may ptrace or open
    /// /proc/PID/* of a process that still holds moor's memory (CVE-2016-9962). An unprivileged
    /// parent can only write the id maps of a dumpable init (the /proc files of a non-dumpable
    /// one belong to root), so that init stays dumpable until its maps are written, as runc's
    /// does; nothing else is in its new namespaces yet.
    pub stay_dumpable: bool,
}

/// Runs init; never returns.
pub fn run(init: Init) -> ! {
    let created = match steps(&init) {
        Ok(c) => c,
        Err(e) => {
            if init.sync.send(&Msg::Error(e.to_wire())).is_err() {
                eprintln!("moor: container init: {}", report(&e));
            }
            // SAFETY: _exit skips atexit handlers and destructors that belong to the parent's copy.
            unsafe { libc::_exit(1) }
        }
    };
    // 13. The start barrier: opening the fifo for writing blocks until `start` opens it. A plain
    //     openat through the procfs handle (openat2 may be filtered by now). Without a filter
    //     (else that was done before it) init drops its code pages on the way, to wait small.
    let release = init.seccomp.is_none().then_some(&created.code);
    let fifo = match created.procfs.reopen_fd(init.fifo.as_fd(), libc::O_WRONLY, release) {
        Ok(f) => f,
        Err(e) => {
            // `start` sees init gone without a word; the workload's stderr gets the reason.
            eprintln!("moor: container init: {}", report(&e));
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    };
    let err = start(&created, &fifo);
    // `start` reads the fifo until EOF: a failure reaches it as text instead of "0" (or after
    // it, when execve itself failed).
    if crate::sys::write_all(fifo.as_fd(), err.to_wire().as_bytes()).is_err() {
        eprintln!("moor: container init: {}", report(&err));
    }
    // SAFETY: as above.
    unsafe { libc::_exit(1) }
}

/// What init keeps for the time after Created.
struct Created {
    procfs: Procfs,
    code: crate::sys::pages::CodeRanges,
    exec: workload::Exec,
    /// The container state for startContainer hooks (status "created").
    state: Vec<u8>,
    start_hooks: Vec<oci_spec::runtime::Hook>,
    /// The container process's environment: hooks in the container inherit it, as in runc.
    env: Vec<String>,
}

/// After `start` has opened the fifo: the startContainer hooks, the "0" that tells `start` the
/// workload is about to run, execve. Only what every seccomp profile must allow runs here.
fn start(c: &Created, fifo: &OwnedFd) -> Error {
    if let Err(e) = hooks::run_with(
        "startContainer",
        &c.start_hooks,
        &c.state,
        hooks::Inherit::Container(&c.env),
    ) {
        return e;
    }
    if let Err(e) = crate::sys::write_all(fifo.as_fd(), b"0") {
        return Error::sys("write the exec fifo", e);
    }
    c.exec.run()
}

fn wait_continue(sync: &Channel) -> Result<()> {
    match sync.recv().map_err(|e| Error::sys("sync with the parent", e))? {
        Msg::Continue => Ok(()),
        other => Err(Error::Protocol {
            got: format!("{other:?}"),
        }),
    }
}

fn steps(init: &Init) -> Result<Created> {
    let spec = init.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    let linux = spec.linux().clone().unwrap_or_default();

    // 1. Only our own end of the sync socket, and no lock: a killed parent must free the
    //    container's lock (so `state` sees the creator gone) and reach us as EOF. A clean
    //    signal state for the workload, and death with the parent while it drives us (the
    //    kernel clears that at a credential change; the socket's EOF still holds then).
    // Our inherited copies of the parent's fds; nothing else uses them here.
    let _ = nix::unistd::close(init.state_lock);
    let _ = nix::unistd::close(init.parent_sync);
    if !init.stay_dumpable {
        crate::sys::set_non_dumpable()?;
    }
    crate::sys::fds::install(init.stdio, init.extra_fds)?;
    crate::sys::reset_signals();
    die_with_parent()?;

    // 2. The parent writes our uid/gid maps and puts us into our cgroup; then we become root
    //    of the new user namespace and, if asked, enter a cgroup namespace rooted there.
    wait_continue(&init.sync)?;
    // A rootless parent left us dumpable to write our maps (see create.rs); that ends here.
    crate::sys::set_non_dumpable()?;
    if init.plan.new_ns(LinuxNamespaceType::User) {
        user::become_ns_root()?;
        die_with_parent()?;
    }
    if init.plan.cgroup_ns_late {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| Error::sys("unshare the cgroup namespace", e))?;
    }

    // 3. A time namespace is unshared, the parent writes its offsets, then we enter it
    //    ourselves (setns to time_for_children: execve only does that on newer kernels).
    if init.plan.new_ns(LinuxNamespaceType::Time) {
        nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .map_err(|e| Error::sys("unshare the time namespace", e))?;
        init.sync.send(&Msg::TimeNsReady).map_err(|e| Error::sys("sync", e))?;
        wait_continue(&init.sync)?;
        let ns = std::fs::File::open("/proc/self/ns/time_for_children")
            .map_err(|e| Error::sys("open the new time namespace", e))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .map_err(|e| Error::sys("enter the new time namespace", e))?;
    }

    // 4. A session keyring of our own, so containers never share the caller's keys.
    if !init.no_new_keyring {
        join_session_keyring(init.id)?;
    }

    // 5. The root filesystem, up to the point where the createRuntime hooks run. Without a
    //    mount namespace of its own the container mounts into the caller's (as with runc).
    let prepared = rootfs::prepare(
        spec,
        init.rootfs,
        init.plan.new_ns(LinuxNamespaceType::Mount) || init.plan.joins(LinuxNamespaceType::Mount),
        init.plan.new_ns(LinuxNamespaceType::User) || init.plan.joins(LinuxNamespaceType::User),
        &init.cgroups,
        &init.parent_trees,
    )?;
    let procfs = Procfs::open()?;

    // 6. The console, from our own devpts, before masks can hide anything.
    let pty = if process.terminal().unwrap_or(false) {
        let pty = pty::open_pty(prepared.root.as_fd())?;
        if let Some(size) = process.console_size() {
            terminal::set_size(pty.slave.as_fd(), console_dim(size.height()), console_dim(size.width()))?;
        }
        let socket = init
            .console_socket
            .as_ref()
            .ok_or_else(|| Error::config("process.terminal", "a terminal needs --console-socket"))?;
        terminal::send_fd(
            socket.as_fd(),
            pty.master.as_fd(),
            b"/dev/ptmx",
            "the pty master over the console socket",
        )?;
        rootfs::bind_console(prepared.root.as_fd(), pty.slave.as_fd())?;
        Some(pty.slave)
    } else {
        None
    };

    // 7. The parent runs prestart and createRuntime hooks and tells us our pid as it sees it;
    //    the state for our hooks is built here, whatever its size.
    init.sync
        .send(&Msg::RunRuntimeHooks)
        .map_err(|e| Error::sys("sync", e))?;
    let pid = match init.sync.recv().map_err(|e| Error::sys("sync with the parent", e))? {
        Msg::HooksDone { pid } => pid,
        other => {
            return Err(Error::Protocol {
                got: format!("{other:?}"),
            })
        }
    };
    let state = init.state.hook_state_with_pid(Status::Creating, pid);
    let hooks_cfg = spec.hooks().clone().unwrap_or_default();
    // Socket activation is passed on as runc does: its fds come first, and the env names them.
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(crate::sys::fds::listen_env(init.listen_fds));
    // createContainer hooks run in the rootfs, as runc's do: they may use paths relative to it.
    nix::unistd::fchdir(prepared.root.as_raw_fd())
        .map_err(|e| Error::sys("enter the rootfs for the createContainer hooks", e))?;
    hooks::run_with(
        "createContainer",
        hooks_cfg.create_container().as_deref().unwrap_or_default(),
        &state,
        hooks::Inherit::Container(&env),
    )?;

    // 8. Masked and read-only paths, then pivot_root into the rootfs.
    rootfs::mask_paths(
        prepared.root.as_fd(),
        linux.masked_paths().as_deref().unwrap_or_default(),
    )?;
    rootfs::readonly_paths(
        prepared.root.as_fd(),
        linux.readonly_paths().as_deref().unwrap_or_default(),
    )?;
    let cwd = process.cwd().clone();
    rootfs::paths::ensure_in_root(prepared.root.as_fd(), &cwd, rootfs::paths::Kind::Dir)
        .map_err(|e| Error::field("process.cwd", e))?;
    let readonly = spec.root().as_ref().is_some_and(|r| r.readonly().unwrap_or(false));
    rootfs::enter(prepared, init.no_pivot, readonly)?;

    // 9. Names and kernel parameters while we still hold privileges, then the workload's
    //    attributes, credentials, capabilities and seccomp (see workload.rs for the order).
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| Error::config("hostname", e.to_string()))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: d points to d.len() bytes.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::last_os("domainname"));
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        process::set_sysctls(&procfs, sysctl)?;
    }
    // The console becomes our stdio before credentials change, so it is given to the user too.
    if let Some(slave) = &pty {
        pty::become_controlling(slave)?;
    } else {
        // A session of its own, as runc's init has: CRIU dumps a process tree only when its
        // session leader is inside it.
        nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
    }
    // The parent may exit once we are created: stop tying our life to it while prctl is surely
    // allowed (a user switch would clear it anyway).
    nix::sys::prctl::set_pdeathsig(None).map_err(|e| Error::sys("PR_SET_PDEATHSIG", e))?;
    let start_state = init.state.hook_state_with_pid(Status::Created, pid);
    let code = crate::sys::pages::CodeRanges::of_main_executable();
    // 10. Only stdio and the preserved fds survive execve.
    let ready = workload::become_workload(
        &procfs,
        &workload::Workload {
            process,
            personality: linux.personality().as_ref(),
            memory_policy: init.memory_policy,
            caps: init.caps,
            last_cap: init.last_cap,
            seccomp: init.seccomp,
            env: &env,
            keep_fds: u32::try_from(init.extra_fds.len()).unwrap_or(u32::MAX),
            pty: pty.as_ref(),
            release_code: Some(&code),
        },
    )?;
    // 11. From here on the seccomp filter may be in: only write and read on the socket, no
    //     allocation. The parent takes the notify fd itself (pidfd_getfd), so the profile need
    //     not allow sendmsg.
    let seccomp_fd = ready.notify_fd.as_ref().map(|fd| fd.as_raw_fd());
    init.sync
        .send_after_filter(&Msg::Created { seccomp_fd })
        .map_err(|e| Error::sys("sync", e))?;

    // 12. The parent records us as created, then answers; only then may we wait at the fifo.
    //     No answer (EOF, a reset connection) means it died before: nobody will ever start us,
    //     so we leave. A profile that denies read leaves us only the fifo (runc's init reads
    //     here too, with NOTIFY).
    if init.sync.wait_continue_filtered().is_err() {
        // SAFETY: as in `run`; there is nobody to report to.
        unsafe { libc::_exit(1) }
    }
    drop(ready.notify_fd);
    // The startContainer hooks run after `start` has opened the fifo, so `start` runs the
    // poststart hooks only after them.
    Ok(Created {
        procfs,
        code,
        exec: ready.exec,
        state: start_state,
        start_hooks: hooks_cfg.start_container().clone().unwrap_or_default(),
        env,
    })
}

/// SIGKILL when the parent dies. A parent that died before the prctl is EOF at our next read.
fn die_with_parent() -> Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(|e| Error::sys("PR_SET_PDEATHSIG", e))?;
    Ok(())
}

fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = CString::new(format!("_ses.{id}")).unwrap_or_default();
    // SAFETY: keyctl with a NUL-terminated name.
    if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) } < 0 {
        let e = std::io::Error::last_os_error();
        // Keyrings are optional kernel features (and denied by some seccomp policies).
        if e.raw_os_error() != Some(libc::ENOSYS) && e.raw_os_error() != Some(libc::EACCES) {
            return Err(Error::sys("join a new session keyring", e));
        }
    }
    Ok(())
}

/// What the process `exec` clones into a running container needs to become its workload, as
/// init does at its end: the exec side's counterpart of [`Init`].
pub(crate) struct ExecInit<'a> {
    pub(crate) process: &'a oci_spec::runtime::Process,
    pub(crate) linux: &'a oci_spec::runtime::Linux,
    pub(crate) memory_policy: Option<&'a mempolicy::MemPolicy>,
    pub(crate) caps: Option<Sets>,
    pub(crate) last_cap: u32,
    pub(crate) seccomp: Option<&'a moor_seccomp::Compiled>,
    pub(crate) procfs: &'a Procfs,
    pub(crate) console: Option<&'a OwnedFd>,
    pub(crate) stdio: Option<&'a crate::sys::fds::Stdio>,
    pub(crate) extra_fds: &'a [OwnedFd],
    /// The channel to the parent, when the profile sends notifications to a listener.
    pub(crate) notify: Option<&'a crate::spawn::sync::Channel>,
}

impl ExecInit<'_> {
    /// Runs in the cloned process, inside the container; returns only with an error.
    pub(crate) fn run(&self) -> Result<std::convert::Infallible> {
        crate::sys::fds::install(self.stdio, self.extra_fds)?;
        crate::sys::reset_signals();
        let pty = match self.console {
            Some(socket) => {
                let root = crate::sys::open_tree(libc::AT_FDCWD, c"/", 0).map_err(|e| Error::sys("open /", e))?;
                let pty = pty::open_pty(root.as_fd())?;
                if let Some(size) = self.process.console_size() {
                    terminal::set_size(pty.slave.as_fd(), console_dim(size.height()), console_dim(size.width()))?;
                }
                terminal::send_fd(
                    socket.as_fd(),
                    pty.master.as_fd(),
                    b"/dev/ptmx",
                    "the pty master over the console socket",
                )?;
                Some(pty.slave)
            }
            None => None,
        };
        // The console becomes our stdio before credentials change, so it is given to the user.
        if let Some(slave) = &pty {
            pty::become_controlling(slave)?;
        }
        let env = self.process.env().clone().unwrap_or_default();
        let ready = workload::become_workload(
            self.procfs,
            &workload::Workload {
                process: self.process,
                personality: self.linux.personality().as_ref(),
                memory_policy: self.memory_policy,
                caps: self.caps,
                last_cap: self.last_cap,
                seccomp: self.seccomp,
                env: &env,
                keep_fds: u32::try_from(self.extra_fds.len()).unwrap_or(u32::MAX),
                pty: pty.as_ref(),
                release_code: None,
            },
        )?;
        // From here on the seccomp filter may be in: only write and read. The parent takes the
        // notify fd (pidfd_getfd) and sends it to the listener, then answers; a profile need
        // not allow sendmsg. EOF: the parent died, and the process is not run.
        if let (Some(fd), Some(sync)) = (&ready.notify_fd, self.notify) {
            let created = crate::spawn::sync::Msg::Created {
                seccomp_fd: Some(fd.as_raw_fd()),
            };
            sync.send_after_filter(&created)
                .map_err(|e| Error::sys("sync with the parent", e))?;
            sync.wait_continue_filtered()
                .map_err(|e| Error::sys("wait for the exec parent (gone?)", e))?;
        }
        Err(ready.exec.run())
    }
}
