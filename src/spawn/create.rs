//! `create`: the parent's half of building a container. It validates the bundle, prepares
//! everything that can be prepared outside (state directory, exec fifo, console socket,
//! seccomp program), clones init straight into its new namespaces and drives it through the
//! protocol in [`crate::spawn::sync`]. Any failure kills init and removes what was made.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

use crate::error::{Error, Result};
use crate::init::capabilities;
use crate::init::rootfs::ParentTree;
use crate::init::{self, Init};
use crate::runtime::hooks;
use crate::runtime::state::{ContainerState, StateDir, Status};
use crate::spawn::child::{self, Child, Spawner};
use crate::spawn::idmap;
use crate::spawn::namespaces;
use crate::spawn::sync::{self, Msg};
use crate::spec::config;
use crate::sys::fault;
use crate::sys::{self, Cloned};

#[derive(Default, Debug)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// The container process's fds 0-2; None: the runtime's own.
    pub stdio: Option<crate::sys::fds::Stdio>,
    /// Fds the container process gets as 3, 4, ... (runc's --preserve-fds and socket
    /// activation). Nothing else of the caller's reaches it.
    pub extra_fds: Vec<OwnedFd>,
    /// How many of `extra_fds` (the first ones) are socket-activation sockets: the process then
    /// gets `LISTEN_FDS` and `LISTEN_PID=1` in its environment, as with runc.
    pub listen_fds: u32,
    /// `--systemd-cgroup`: linux.cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// `--rootless`: how cgroups are handled (see `runtime::rootless::cgroups_rootless`).
    pub rootless: crate::runtime::rootless::Mode,
}

/// Creates the container and returns its recorded state (status "created") and its init, a
/// child of ours (or, with `spawner.siblings`, of our parent).
/// `console` is an already connected console socket (used by `run` to relay a terminal itself).
pub(crate) fn create(
    root: &Path,
    id: &str,
    opts: &CreateOptions,
    console: Option<OwnedFd>,
    spawner: &mut Spawner,
) -> Result<(ContainerState, Child)> {
    // Before moor opens anything: see `fds::install`.
    let _slots = crate::sys::fds::reserve_low(opts.extra_fds.len())?;
    crate::runtime::state::validate_id(id)?;
    let bundle = config::load(&opts.bundle)?;
    let spec = &bundle.spec;
    config::warnings(spec).iter().for_each(|w| crate::warn(w));
    if crate::runtime::rootless::euid_rootless() {
        crate::runtime::rootless::check_config(spec)?;
    }
    let linux = spec.linux().clone().unwrap_or_default();
    let mut plan = namespaces::plan(linux.namespaces().as_deref().unwrap_or_default())?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    let last_cap = capabilities::last_cap();
    let caps = capabilities::of_process(process, last_cap)?;
    let seccomp = match linux.seccomp() {
        Some(s) => {
            let compiled = moor_seccomp::compile(s)?;
            // Names unknown on this architecture are normal in portable profiles (libseccomp
            // skips them silently too): only --debug shows them.
            for w in compiled.warnings() {
                crate::debug(&format!("linux.seccomp: {w}"));
            }
            Some(compiled)
        }
        None => None,
    };
    let memory_policy = linux
        .memory_policy()
        .as_ref()
        .map(crate::init::mempolicy::MemPolicy::parse)
        .transpose()?;
    let net_devices = crate::spawn::netdev::plan(linux.net_devices().as_ref(), &plan)?;
    if process.terminal().unwrap_or(false) && opts.console_socket.is_none() && console.is_none() {
        return Err(Error::config("process.terminal", "a terminal needs --console-socket"));
    }
    let console_socket = match (&opts.console_socket, console) {
        (_, Some(fd)) => Some(fd),
        (Some(path), None) => Some(OwnedFd::from(
            UnixStream::connect(path).map_err(|e| Error::path("connect to console socket", path, e))?,
        )),
        (None, None) => None,
    };

    let dir = StateDir::create(root, id)?;
    let mut state = ContainerState {
        oci_version: crate::OCI_VERSION.to_string(),
        id: id.to_string(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::sys::time::now_rfc3339(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        recorded_status: Status::Creating,
        poststart_hooks: spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default(),
        poststop_hooks: spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default(),
        cgroup: None,
        creator: crate::runtime::state::proc_stat(nix::unistd::getpid().as_raw())
            .map(|(_, start)| (nix::unistd::getpid().as_raw(), start)),
    };
    let exec_config = crate::runtime::state::ExecConfig {
        process: process.clone(),
        linux: linux.clone(),
    };
    let mut child = None;
    let mut cgroup = None;
    let result = (|| {
        // What exists is on record before it is made (the cgroup as planned, the pid as soon as
        // there is one): a `create` killed at any step leaves what `delete` needs to remove it.
        fault::point("create.1.state-dir")?;
        // (The systemd driver makes nothing before `enter`.)
        if !opts.systemd_cgroup {
            state.cgroup = encode_cgroup(plan_cgroup(id, &linux, opts).as_ref())?;
        }
        dir.save(&state)?;
        dir.save_exec_config(&exec_config)?;
        fault::point("create.2.recorded")?;
        cgroup = make_cgroup(id, &linux, opts)?;
        fault::point("create.3.cgroup-made")?;
        let into_cgroup = cgroup.as_ref().and_then(open_unified_dir);
        if into_cgroup.is_none() {
            plan.defer_cgroup_ns();
        }
        let memberships = match &cgroup {
            Some(cg) => cgroup_memberships(cg),
            None => crate::init::rootfs::memberships("self"),
        };
        let listener = connect_listener(seccomp.as_ref())?;
        let fifo = make_fifo(&dir.fifo_path())?;
        let (parent_end, init_end) = sync::pair().map_err(|e| Error::sys("socketpair", e))?;
        // Init turns itself non-dumpable (see `Init::stay_dumpable`); the caller's own
        // process is left as it is.
        let maps_unprivileged = plan.new_ns(LinuxNamespaceType::User) && crate::runtime::rootless::euid_rootless();
        let init_ctx = Init {
            id,
            spec,
            state: &state,
            rootfs: &bundle.rootfs,
            plan: &plan,
            sync: init_end,
            parent_sync: parent_end.raw_fd(),
            fifo,
            console_socket,
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            stdio: opts.stdio.as_ref(),
            extra_fds: &opts.extra_fds,
            listen_fds: opts.listen_fds,
            caps,
            last_cap,
            seccomp: seccomp.as_ref(),
            memory_policy: memory_policy.as_ref(),
            state_lock: dir.lock_fd().as_raw_fd(),
            cgroups: memberships,
            stay_dumpable: maps_unprivileged,
            parent_trees: parent_trees(spec, &plan)?,
        };
        let init = spawn_init(&plan, init_ctx, into_cgroup.as_ref().map(|fd| fd.as_raw_fd()), spawner)?;
        let pid = init.pid;
        child = Some(init);
        fault::point("create.4.cloned")?;
        state.pid = pid;
        state.pid_start_time = crate::runtime::state::proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
        // A systemd unit is recorded as if started until it is.
        state.cgroup = match &cgroup {
            Some(cg) if cg.is_systemd() => encode_cgroup(cg.as_if_made().ok().as_ref())?,
            cg => encode_cgroup(cg.as_ref())?,
        };
        dir.save(&state)?;
        fault::point("create.5.pid-recorded")?;
        if let (Some(cg), None) = (&mut cgroup, &into_cgroup) {
            cg.enter(pid, linux.resources().as_ref(), &format!("moor container {id}"))?;
            fault::point("create.6.cgroup-joined")?;
        }
        let notify_fd = drive_init(&parent_end, pid, &plan, spec, &state, &net_devices)?;
        if let (Some(fd), Some(listener), Some(filter)) = (notify_fd, &listener, &seccomp) {
            send_notify_fd(pid, fd, listener, filter, &state.hook_state(Status::Creating))?;
            fault::point("create.12.notify-fd-sent")?;
        }
        state.cgroup = encode_cgroup(cgroup.as_ref())?;
        state.recorded_status = Status::Created;
        dir.save(&state)?;
        fault::point("create.13.state-created")?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, pid)?;
            fault::point("create.14.pid-file")?;
        }
        // Only now may init wait at the exec fifo: until this answer, the parent's death is EOF
        // to init, and it exits instead of waiting for a `start` that cannot come.
        send(&parent_end, Msg::Continue)?;
        fault::point("create.15.released")?;
        Ok(())
    })();
    match (result, child) {
        (Ok(()), Some(init)) => Ok((state, init)),
        (result, child) => {
            if let Some(init) = child {
                spawner.kill(init);
            }
            if let Some(cg) = &cgroup {
                let _ = cg.destroy();
            }
            let _ = dir.remove();
            Err(result
                .err()
                .unwrap_or_else(|| Error::InvalidState("init was not cloned".into())))
        }
    }
}

fn make_fifo(path: &Path) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Error::config("--root", "NUL in path"))?;
    // 0622: anyone may start (open for reading), only we write.
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o622);
    nix::unistd::mkfifo(c.as_c_str(), mode).map_err(|e| Error::sys(format!("mkfifo {}", path.display()), e))?;
    // The umask applies to mkfifo; init may run as any user and must still open it to write.
    nix::sys::stat::fchmodat(None, c.as_c_str(), mode, nix::sys::stat::FchmodatFlags::FollowSymlink)
        .map_err(|e| Error::sys(format!("chmod {}", path.display()), e))?;
    // O_PATH opens nothing, so it cannot block.
    let fd = nix::fcntl::open(
        c.as_c_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {}", path.display()), e))?;
    // SAFETY: open just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clones init into its namespaces. When namespaces are joined by path, a short-lived
/// middle process joins them first (a joined pid namespace only applies to children) and
/// clones init with CLONE_PARENT, so init is still the child of whoever the middle's parent is.
/// With `spawner.siblings` both go to our caller (see [`crate::Helper`]).
fn spawn_init(plan: &namespaces::Plan, init_ctx: Init, cgroup_fd: Option<i32>, spawner: &mut Spawner) -> Result<Child> {
    let clone_init = |flags: u64, init_ctx: Init, close_first: Option<i32>| -> Result<Child> {
        match sys::clone3(plan.clone_flags | flags, cgroup_fd)
            .map_err(|e| Error::sys("clone3 into the new namespaces", e))?
        {
            Cloned::Child => {
                if let Some(fd) = close_first {
                    // The middle's reply socket: init must not keep it open.
                    let _ = nix::unistd::close(fd);
                }
                init::run(init_ctx)
            }
            Cloned::Parent(pid, pidfd) => Ok(Child { pid, pidfd }),
        }
    };
    if plan.join.is_empty() {
        return clone_init(spawner.parent_flag(), init_ctx, None);
    }
    let (rx, tx) = child::seqpacket_pair()?;
    match sys::clone3(spawner.parent_flag(), None).map_err(|e| Error::sys("clone", e))? {
        Cloned::Child => {
            drop(rx);
            // Non-dumpable before entering anything the container's processes share (init
            // inherits it), unless init must stay dumpable until its maps are written.
            let dumpable = if init_ctx.stay_dumpable {
                Ok(())
            } else {
                sys::set_non_dumpable()
            };
            let reply = dumpable
                .and_then(|()| namespaces::join_all(plan))
                .and_then(|()| clone_init(libc::CLONE_PARENT as u64, init_ctx, Some(tx.as_raw_fd())));
            child::send_reply(tx.as_fd(), reply);
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Cloned::Parent(pid, pidfd) => {
            drop(tx);
            let reply = child::recv_reply(rx.as_fd());
            spawner.reap(Child { pid, pidfd });
            reply
        }
    }
}

/// The parent's side of the sync protocol (see the diagram in [`crate::spawn::sync`]).
fn drive_init(
    sync: &sync::Channel,
    pid: i32,
    plan: &namespaces::Plan,
    spec: &oci_spec::runtime::Spec,
    state: &ContainerState,
    net_devices: &[crate::spawn::netdev::Move],
) -> Result<Option<i32>> {
    let linux = spec.linux().clone().unwrap_or_default();
    if plan.new_ns(LinuxNamespaceType::User) {
        let uid = linux.uid_mappings().clone().unwrap_or_default();
        let gid = linux.gid_mappings().clone().unwrap_or_default();
        idmap::write_id_maps(pid, &uid, &gid)?;
    }
    // Before any hook runs, so prestart/createRuntime hooks already see the devices inside.
    crate::spawn::netdev::move_into(net_devices, pid)?;
    fault::point("create.7.id-maps")?;
    send(sync, Msg::Continue)?;
    let hooks_cfg = spec.hooks().clone().unwrap_or_default();
    loop {
        match sync.recv() {
            Ok(Msg::TimeNsReady) => {
                write_time_offsets(pid, &linux)?;
                fault::point("create.8.time-offsets")?;
                send(sync, Msg::Continue)?;
            }
            Ok(Msg::RunRuntimeHooks) => {
                let json = state.hook_state(Status::Creating);
                #[allow(deprecated)]
                let prestart = hooks_cfg.prestart().clone().unwrap_or_default();
                hooks::run("prestart", &prestart, &json)?;
                hooks::run(
                    "createRuntime",
                    hooks_cfg.create_runtime().as_deref().unwrap_or_default(),
                    &json,
                )?;
                fault::point("create.9.runtime-hooks")?;
                send(sync, Msg::HooksDone { pid })?;
                fault::point_queued("create.10.created-unread", sync.as_fd())?;
            }
            Ok(Msg::Created { seccomp_fd }) => {
                fault::point("create.11.created")?;
                return Ok(seccomp_fd);
            }
            Ok(Msg::Error(text)) => return Err(Error::from_wire(text.as_bytes())),
            Ok(other) => {
                return Err(Error::Protocol {
                    got: format!("{other:?}"),
                })
            }
            Err(source) => return Err(Error::InitExited { source }),
        }
    }
}

/// Takes the seccomp user-notification fd `fd` from process `pid` (init, or an exec'd process
/// with its filter in and waiting) and sends it with the process state to listenerPath. The
/// process itself need not be allowed sendmsg by its profile, as with runc.
pub(crate) fn send_notify_fd(
    pid: i32,
    fd: i32,
    listener: &OwnedFd,
    filter: &moor_seccomp::Compiled,
    state: &[u8],
) -> Result<()> {
    let pidfd = sys::pidfd_open(pid).map_err(|e| Error::sys("pidfd_open for the seccomp notify fd", e))?;
    let notify = sys::pidfd_getfd(pidfd.as_fd(), fd)
        .map_err(|e| Error::sys(format!("take the seccomp notify fd {fd} of pid {pid} (pidfd_getfd)"), e))?;
    let message = moor_seccomp::process_state_json(crate::OCI_VERSION, pid, filter.listener_metadata(), state);
    crate::sys::terminal::send_fd(
        listener.as_fd(),
        notify.as_fd(),
        &message,
        "the seccomp notify fd to linux.seccomp.listenerPath",
    )
}

fn send(sync: &sync::Channel, msg: Msg) -> Result<()> {
    sync.send(&msg).map_err(|source| Error::InitExited { source })
}

fn write_time_offsets(pid: i32, linux: &oci_spec::runtime::Linux) -> Result<()> {
    let Some(offsets) = linux.time_offsets() else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    // Through a verified procfs handle, like every other /proc write moor makes.
    crate::sys::procfs::Procfs::open()?.write(&format!("{pid}/timens_offsets"), &text)
}

/// The pid file holds bare digits and no newline (containerd parses it with Atoi); written
/// to a temporary name and renamed so a reader never sees it half-written.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    if let Err(e) = std::fs::write(&tmp, pid.to_string()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::path("write pid file", &tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::path("write pid file", path, e))
}

/// Creates the container's cgroup and applies linux.resources to it, before any process is in
/// it; with the systemd driver systemd creates it around init, and `enter` applies them.
/// Rootless, a cgroup the caller may not create is skipped with a warning, unless limits were
/// asked for: then the error names the first one.
pub(crate) fn make_cgroup(
    id: &str,
    linux: &oci_spec::runtime::Linux,
    opts: &CreateOptions,
) -> Result<Option<moor_cgroups::Cgroup>> {
    let path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cfg = moor_cgroups::CgroupConfig {
        cgroups_path: &path,
        container_id: id,
        systemd: opts.systemd_cgroup,
        rootless: crate::runtime::rootless::cgroups_rootless(opts.rootless),
    };
    let cg = match moor_cgroups::Cgroup::create(&cfg) {
        Ok(cg) => cg,
        Err(e @ moor_cgroups::Error::RootlessDenied(_)) => {
            if let Some(field) = linux
                .resources()
                .as_ref()
                .and_then(crate::runtime::rootless::requested_limit)
            {
                return Err(Error::config(field, format!("cannot be applied: {e}")));
            }
            crate::warn(&format!(
                "container {id} gets no cgroup: {e}; it runs without resource limits, and pause, \
                 resume, update and events do not work for it"
            ));
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    // Init cloned into a frozen cgroup would never run, and create would wait for it forever.
    if cg.is_frozen().unwrap_or(false) {
        let _ = cg.abandon();
        return Err(Error::config(
            "linux.cgroupsPath",
            "container's cgroup unexpectedly frozen",
        ));
    }
    // Sharing a cgroup is allowed, as with runc, but worth a word: limits, pause and kill --all
    // then reach the other processes too.
    if let Ok(pids) = cg.pids() {
        if !pids.is_empty() {
            crate::warn(&format!(
                "container's cgroup is not empty: {} process(es) already in it",
                pids.len()
            ));
        }
    }
    if let Some(resources) = linux.resources().as_ref().filter(|_| !cg.is_systemd()) {
        if let Err(e) = cg.apply(resources) {
            let _ = cg.destroy();
            return Err(e.into());
        }
    }
    Ok(Some(cg))
}

/// The cgroup `make_cgroup` is about to make, for the record written before it exists. None
/// when it cannot be worked out: `make_cgroup` then reports why (or goes without, rootless).
pub(crate) fn plan_cgroup(
    id: &str,
    linux: &oci_spec::runtime::Linux,
    opts: &CreateOptions,
) -> Option<moor_cgroups::Cgroup> {
    let path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    moor_cgroups::Cgroup::planned(&moor_cgroups::CgroupConfig {
        cgroups_path: &path,
        container_id: id,
        systemd: false,
        rootless: crate::runtime::rootless::cgroups_rootless(opts.rootless),
    })
    .ok()
}

pub(crate) fn encode_cgroup(cg: Option<&moor_cgroups::Cgroup>) -> Result<Option<serde_json::Value>> {
    cg.map(serde_json::to_value)
        .transpose()
        .map_err(|e| Error::sys("encode cgroup", e))
}

/// On a pure cgroup v2 host, init is cloned straight into its cgroup (CLONE_INTO_CGROUP).
fn open_unified_dir(cg: &moor_cgroups::Cgroup) -> Option<OwnedFd> {
    if cg.mode() != moor_cgroups::Mode::Unified {
        return None;
    }
    let dir = cg.unified_dir()?;
    std::fs::File::open(dir).ok().map(OwnedFd::from)
}

/// The container's cgroup directories, as /sys/fs/cgroup entries for its cgroup mount.
fn cgroup_memberships(cg: &moor_cgroups::Cgroup) -> Vec<crate::init::rootfs::Membership> {
    let mut out: Vec<crate::init::rootfs::Membership> = Vec::new();
    for dir in cg.dirs() {
        let Ok(rel) = dir.strip_prefix("/sys/fs/cgroup") else {
            continue;
        };
        let mut parts = rel.components();
        let Some(hier) = parts.next() else { continue };
        let hier = hier.as_os_str().to_string_lossy().into_owned();
        let path = format!("/{}", parts.as_path().display());
        let m = crate::init::rootfs::Membership::new(if hier == "unified" { String::new() } else { hier }, path);
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Connects to linux.seccomp.listenerPath on the host, before init leaves the host's view.
pub(crate) fn connect_listener(seccomp: Option<&moor_seccomp::Compiled>) -> Result<Option<OwnedFd>> {
    let Some(path) = seccomp.filter(|s| s.needs_notify_fd()).and_then(|s| s.listener_path()) else {
        return Ok(None);
    };
    let stream = UnixStream::connect(path).map_err(|e| {
        Error::config(
            "linux.seccomp.listenerPath",
            format!("failed to connect with seccomp agent at {}: {e}", path.display()),
        )
    })?;
    Ok(Some(OwnedFd::from(stream)))
}

/// The detached, idmapped bind trees of the mounts that ask for uid/gid mappings, made here on
/// the host (an idmap needs privilege over the filesystem); init only attaches them.
fn parent_trees(spec: &oci_spec::runtime::Spec, plan: &namespaces::Plan) -> Result<Vec<Option<ParentTree>>> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let in_userns = (plan.new_ns(LinuxNamespaceType::User) || plan.joins(LinuxNamespaceType::User))
        && !crate::runtime::rootless::euid_rootless();
    mounts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let uid = m.uid_mappings().as_deref().unwrap_or_default();
            let gid = m.gid_mappings().as_deref().unwrap_or_default();
            let is_bind =
                m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind");
            if uid.is_empty() && gid.is_empty() {
                // A source the parent cannot bind either is init's to report.
                let fallback = (in_userns && is_bind)
                    .then(|| crate::init::rootfs::bind_tree(m, &format!("mounts[{i}]"), None).ok())
                    .flatten();
                return Ok(fallback.map(ParentTree::Fallback));
            }
            if uid.is_empty() || gid.is_empty() {
                return Err(Error::config(
                    format!("mounts[{i}]"),
                    "an idmapped mount needs both uidMappings and gidMappings",
                ));
            }
            if !is_bind {
                return Err(Error::config(
                    format!("mounts[{i}]"),
                    "uidMappings/gidMappings need a bind mount",
                ));
            }
            let userns = idmap::idmap_userns(uid, gid)?;
            crate::init::rootfs::bind_tree(m, &format!("mounts[{i}]"), Some(userns.as_fd()))
                .map(|t| Some(ParentTree::Idmapped(t)))
        })
        .collect()
}
