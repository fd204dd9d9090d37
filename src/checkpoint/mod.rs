//! `checkpoint` and `restore`: a running container saved to an image directory with CRIU, and
//! a container made again from such a directory, with runc's options and runc's image layout
//! (so checkpoints cross between the two runtimes).
//!
//! Host-side code, like `runtime`: it borrows init's in-root path resolution only to key bind
//! mounts where init mounted them. CRIU runs as a separate program (see [`criu`] for why its
//! command line, not its RPC); moor prepares what CRIU cannot know (the mounts and namespaces
//! from outside the container, the cgroup, the rootfs as a mount point, the stdio), records the
//! restored container in its state directory, and removes a container once dumped.

mod criu;
mod external;
mod image;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::runtime::state::{ContainerState, StateDir, Status};
use crate::runtime::Runtime;
use crate::spawn::child::Child;

/// CRIU's cgroup handling (`--manage-cgroups-mode`): runc 1.1's three, and `ignore` (runc 1.2,
/// CRIU leaves cgroups alone: the runtime puts the restored processes in the container's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupsMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl std::str::FromStr for CgroupsMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<CgroupsMode> {
        match s {
            "soft" => Ok(CgroupsMode::Soft),
            "full" => Ok(CgroupsMode::Full),
            "strict" => Ok(CgroupsMode::Strict),
            "ignore" => Ok(CgroupsMode::Ignore),
            _ => Err(Error::Flag {
                flag: "--manage-cgroups-mode",
                reason: format!("Invalid manage cgroups mode {s:?}: soft, full, strict or ignore"),
            }),
        }
    }
}

/// What checkpoint and restore share.
#[derive(Clone, Debug, Default)]
pub struct CriuOptions {
    /// The CRIU binary (runc's `--criu`); found in PATH when it has no slash.
    pub criu: PathBuf,
    pub image_path: PathBuf,
    /// Where CRIU writes its log and work files; the image directory when None.
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<CgroupsMode>,
    /// Namespaces to create without restoring their contents: runc allows "network" only,
    /// and always leaves the network namespace empty (runtimes do not own network setup).
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

#[derive(Clone, Debug, Default)]
pub struct CheckpointOptions {
    pub criu: CriuOptions,
    /// The parent images of an iterative dump, relative to the image path.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// With lazy pages: an fd CRIU writes a NUL to once the pages can be served.
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of a CRIU page server to send the memory to.
    pub page_server: Option<String>,
    /// Open files whose name was unlinked are saved through a link CRIU makes (runc 1.2).
    pub link_remap: bool,
    /// Connections still in a listener's accept queue are dropped, not dumped (runc 1.2).
    pub tcp_skip_in_flight: bool,
}

#[derive(Debug, Default)]
pub struct RestoreOptions {
    pub criu: CriuOptions,
    pub bundle: PathBuf,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
    pub systemd_cgroup: bool,
    pub rootless: crate::runtime::rootless::Mode,
}

impl CriuOptions {
    /// The options both actions pass the same way.
    fn apply(&self, c: &mut criu::Criu) -> Result<()> {
        for ns in &self.empty_ns {
            if ns != "network" {
                return Err(Error::Flag {
                    flag: "--empty-ns",
                    reason: format!("namespace {ns:?} is not supported (only \"network\")"),
                });
            }
        }
        c.arg("--empty-ns").arg("net");
        c.flag(self.tcp_established, "--tcp-established")
            .flag(self.ext_unix_sk, "--ext-unix-sk")
            .flag(self.shell_job, "--shell-job")
            .flag(self.file_locks, "--file-locks")
            .flag(self.auto_dedup, "--auto-dedup")
            .flag(self.lazy_pages, "--lazy-pages");
        c.arg(match self.manage_cgroups_mode {
            None => "--manage-cgroups",
            Some(CgroupsMode::Soft) => "--manage-cgroups=soft",
            Some(CgroupsMode::Full) => "--manage-cgroups=full",
            Some(CgroupsMode::Strict) => "--manage-cgroups=strict",
            Some(CgroupsMode::Ignore) => "--manage-cgroups=ignore",
        });
        Ok(())
    }

    fn work_dir(&self) -> Result<Option<image::ImageDir>> {
        self.work_path
            .as_deref()
            .map(|w| image::create_dir(w, "--work-path"))
            .transpose()
    }
}

/// A process handle for a pid we just learnt, only while it has the start time we read.
fn child_of(pid: i32) -> Result<(Child, u64)> {
    let pidfd = crate::sys::pidfd_open(pid).map_err(|e| Error::sys(format!("pidfd_open {pid}"), e))?;
    let start = crate::runtime::state::proc_stat(pid)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::InvalidState(format!("restored process {pid} is gone")))?;
    Ok((Child { pid, pidfd }, start))
}

fn check_status_fd(fd: i32) -> Result<()> {
    // SAFETY: F_GETFL only reads the flags of an fd number; a closed one gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let bad = |reason: String| {
        Err(Error::Flag {
            flag: "--status-fd",
            reason,
        })
    };
    if flags < 0 {
        return bad(format!(
            "invalid --status-fd argument {fd}: {}",
            std::io::Error::last_os_error()
        ));
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return bad(format!("invalid --status-fd argument {fd}: not writable"));
    }
    Ok(())
}

fn page_server(spec: &str) -> Result<(String, u16)> {
    let bad = |why: &str| Error::Flag {
        flag: "--page-server",
        reason: format!("{why}: use --page-server ADDRESS:PORT"),
    };
    let (addr, port) = spec.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr.is_empty() {
        return Err(bad("no address"));
    }
    let port = port.parse().map_err(|_| bad("invalid port number"))?;
    Ok((addr.to_string(), port))
}

impl Runtime {
    /// `checkpoint`: dumps a running (or paused) container into `image_path` with CRIU. The
    /// container is gone afterwards (as after `delete`) unless `leave_running` or `pre_dump`.
    pub fn checkpoint(&self, id: &str, opts: &CheckpointOptions) -> Result<()> {
        warn_rootless("checkpoint");
        let dir = StateDir::open(&self.root, id)?;
        let state = dir.load()?;
        let status = state.status(&dir.path, true, || state.frozen());
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(Error::InvalidState(format!(
                "Container cannot be checkpointed in {status} state"
            )));
        }
        let images = image::create_dir(&opts.criu.image_path, "--image-path")?;
        if let Some(parent) = &opts.parent_path {
            image::check_parent(&images, parent)?;
        }
        let page_server = opts.page_server.as_deref().map(page_server).transpose()?;
        if let (true, Some(fd)) = (opts.criu.lazy_pages, opts.status_fd) {
            check_status_fd(fd)?;
        }
        let work = opts.criu.work_dir()?;
        let exec = crate::runtime::state::exec_config(&self.root, id)?;
        if exec.process.terminal().unwrap_or(false) {
            return Err(Error::config(
                "process.terminal",
                "moor cannot checkpoint a container with a terminal (CRIU's command line cannot hand over the console)",
            ));
        }
        let action = if opts.pre_dump { "pre-dump" } else { "dump" };
        let mut c = criu::Criu::new(&opts.criu.criu, action, &images, work.as_ref());
        c.arg("--tree").arg(state.pid.to_string());
        c.arg("--root").arg(&state.rootfs);
        opts.criu.apply(&mut c)?;
        c.flag(opts.leave_running && !opts.pre_dump, "--leave-running")
            .flag(opts.link_remap, "--link-remap")
            // CRIU's own name for runc's --tcp-skip-in-flight.
            .flag(opts.tcp_skip_in_flight, "--skip-in-flight");
        if let Some(cg) = freezer(&state) {
            c.arg("--freeze-cgroup").arg(cg);
        }
        if let Some((addr, port)) = page_server {
            c.arg("--page-server")
                .arg("--address")
                .arg(addr)
                .arg("--port")
                .arg(port.to_string());
        }
        if let Some(parent) = &opts.parent_path {
            c.arg("--prev-images-dir").arg(parent);
        }
        c.flag(opts.pre_dump || opts.parent_path.is_some(), "--track-mem");
        if let (true, Some(fd)) = (opts.criu.lazy_pages, opts.status_fd) {
            c.arg("--status-fd").arg(fd.to_string()).keep_fd(fd);
        }
        if !opts.pre_dump {
            let bundle = crate::spec::config::load(&state.bundle)
                .map_err(|e| Error::context("checkpoint reads the bundle's mounts", e))?;
            let mounts = external::mounts(&bundle.spec, &state.rootfs);
            let masked = exec.linux.masked_paths().clone().unwrap_or_default();
            for e in external::dump_args(&mounts, &masked, state.pid) {
                c.arg("--external").arg(e);
            }
            for e in external::dump_namespaces(&exec.linux)? {
                c.arg("--external").arg(e);
            }
            images.write_descriptors(state.pid)?;
        }
        let log = c.log().to_path_buf();
        c.run()?;
        crate::debug(&format!("criu {action} of {id} done, log {}", log.display()));
        if opts.leave_running || opts.pre_dump {
            return Ok(());
        }
        // CRIU killed the processes; what is left is removed as `delete` does (the lock is
        // let go first: delete takes it).
        drop(dir);
        self.delete(id, true)
    }

    /// `restore`: makes container `id` from the bundle's config and the images, restored by
    /// CRIU into a new cgroup and state. Returns at once with `detach` (0); else forwards
    /// signals to the restored process, waits for it, deletes the container and returns its
    /// exit code, as `run` does.
    pub fn restore(&self, id: &str, opts: &RestoreOptions) -> Result<i32> {
        warn_rootless("restore");
        crate::runtime::state::validate_id(id)?;
        if opts.console_socket.is_some() {
            return Err(Error::Flag {
                flag: "--console-socket",
                reason:
                    "moor cannot restore a container with a terminal (CRIU's command line cannot hand over the console)"
                        .into(),
            });
        }
        if opts.systemd_cgroup {
            return Err(Error::Flag {
                flag: "--systemd-cgroup",
                reason: "restore does not support the systemd cgroup driver".into(),
            });
        }
        let images = image::open_dir(&opts.criu.image_path, "--image-path")?;
        let work = opts.criu.work_dir()?;
        images.check_for_restore(work.is_none())?;
        let pipes = images.read_pipes()?;
        let bundle = crate::spec::config::load(&opts.bundle)?;
        let spec = &bundle.spec;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::config("process", "missing"))?;
        if process.terminal().unwrap_or(false) {
            return Err(Error::config(
                "process.terminal",
                "moor cannot restore a container with a terminal (CRIU's command line cannot hand over the console)",
            ));
        }
        let linux = spec.linux().clone().unwrap_or_default();
        let namespaces = external::restore_namespaces(&linux)?;
        let mounts = external::mounts(spec, &bundle.rootfs);
        let masked = !linux.masked_paths().as_deref().unwrap_or_default().is_empty();
        // Before the restored process exists, so no signal meant for it is lost.
        let signals = if opts.detach {
            None
        } else {
            Some(crate::runtime::signals::Forwarder::block()?)
        };
        let create_opts = crate::spawn::create::CreateOptions {
            bundle: opts.bundle.clone(),
            rootless: opts.rootless,
            ..Default::default()
        };

        let dir = StateDir::create(&self.root, id)?;
        let me = nix::unistd::getpid().as_raw();
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
            poststart_hooks: Vec::new(),
            poststop_hooks: spec
                .hooks()
                .as_ref()
                .and_then(|h| h.poststop().clone())
                .unwrap_or_default(),
            cgroup: None,
            creator: crate::runtime::state::proc_stat(me).map(|(_, start)| (me, start)),
        };
        let root_mount = dir.path.join("criu-root");
        let pid_path = dir.path.join("criu.pid");
        let mut cgroup = None;
        let mut restored = None;
        let result = (|| -> Result<()> {
            // On record before it exists, as create does: a restore killed midway leaves what
            // `delete` needs.
            state.cgroup = crate::spawn::create::encode_cgroup(
                crate::spawn::create::plan_cgroup(id, &linux, &create_opts).as_ref(),
            )?;
            dir.save(&state)?;
            dir.save_exec_config(&crate::runtime::state::ExecConfig {
                process: process.clone(),
                linux: linux.clone(),
            })?;
            cgroup = crate::spawn::create::make_cgroup(id, &linux, &create_opts)?;
            state.cgroup = crate::spawn::create::encode_cgroup(cgroup.as_ref())?;
            dir.save(&state)?;
            // CRIU wants the root a mount point whose parent is not over-mounted.
            bind_root(&bundle.rootfs, &root_mount)?;
            let mut c = criu::Criu::new(&opts.criu.criu, "restore", &images, work.as_ref());
            c.arg("--root").arg(&root_mount);
            c.args_restore(&pid_path);
            opts.criu.apply(&mut c)?;
            for e in external::restore_args(&mounts, masked) {
                c.arg("--external").arg(e);
            }
            for (fd, key) in &pipes {
                c.arg("--inherit-fd").arg(format!("fd[{fd}]:{key}"));
            }
            for (fd, key) in &namespaces.inherited {
                c.arg("--inherit-fd").arg(format!("fd[{}]:{key}", fd.as_raw_fd()));
                c.keep_fd(fd.as_raw_fd());
            }
            for j in &namespaces.join {
                c.arg("--join-ns").arg(j);
            }
            if let Some(p) = &opts.lsm_profile {
                c.arg("--lsm-profile").arg(p);
            }
            if let Some(p) = &opts.lsm_mount_context {
                c.arg("--lsm-mount-context").arg(p);
            }
            if let Some(cg) = &cgroup {
                c.join_cgroups(cgroup_procs(cg)?);
                // CRIU would put the processes back where they were dumped from, which is
                // another container's cgroup when restored under a new id.
                if let Some(path) = cgroup_root(cg) {
                    c.arg("--cgroup-root").arg(path);
                }
            }
            let ran = c.run();
            // CRIU wrote the pid of what it restored, if it got that far.
            if let Ok(text) = std::fs::read_to_string(&pid_path) {
                if let Ok(pid) = text.trim().parse::<i32>() {
                    restored = child_of(pid).ok();
                }
            }
            ran?;
            let (child, start) = restored
                .as_ref()
                .ok_or_else(|| Error::InvalidState(format!("CRIU left no pid in {}", pid_path.display())))?;
            state.pid = child.pid;
            state.pid_start_time = *start;
            state.recorded_status = Status::Running;
            state.creator = None;
            dir.save(&state)?;
            if let Some(p) = &opts.pid_file {
                crate::spawn::create::write_pid_file(p, child.pid)?;
            }
            Ok(())
        })();
        unbind_root(&root_mount);
        let _ = std::fs::remove_file(&pid_path);
        if let Err(e) = result {
            if let Some((child, _)) = &restored {
                let _ = child.signal(libc::SIGKILL);
                let _ = child.wait();
            }
            if let Some(cg) = &cgroup {
                let _ = cg.destroy();
            }
            let _ = dir.remove();
            return Err(e);
        }
        let Some((child, _)) = restored else {
            return Err(Error::InvalidState("restore left no process".into()));
        };
        drop(dir);
        let Some(signals) = signals else {
            return Ok(0);
        };
        let code = signals.forward_until_exit(&child, None);
        self.delete(id, true)?;
        code
    }
}

impl criu::Criu {
    /// Restore's fixed options: the restored tree becomes our child (`--restore-sibling`, so
    /// moor can wait for it), CRIU leaves once it runs, and says its pid in `pid_file`.
    fn args_restore(&mut self, pid_file: &Path) {
        self.arg("--restore-detached")
            .arg("--restore-sibling")
            .arg("--evasive-devices")
            .arg("--pidfile")
            .arg(pid_file);
    }
}

/// CRIU needs root for both actions, as runc warns too.
fn warn_rootless(action: &str) {
    if crate::runtime::rootless::euid_rootless() {
        crate::warn(&format!("{action} is untested with rootless containers"));
    }
}

/// The cgroup CRIU freezes the container with: v1's freezer, else the unified one.
fn freezer(state: &ContainerState) -> Option<PathBuf> {
    let cg = state.cgroup()?;
    cg.v1_dir("freezer")
        .or_else(|| {
            (cg.mode() == moor_cgroups::Mode::Unified)
                .then(|| cg.unified_dir())
                .flatten()
        })
        .map(Path::to_path_buf)
}

/// The container's cgroup as a path from its hierarchy's root (the same in every hierarchy
/// moor makes it in): the root CRIU restores the dumped cgroup tree under.
fn cgroup_root(cg: &moor_cgroups::Cgroup) -> Option<PathBuf> {
    let dir = cg
        .unified_dir()
        .map(Path::to_path_buf)
        .or_else(|| cg.dirs().into_iter().next())?;
    let rel = dir.strip_prefix("/sys/fs/cgroup").ok()?;
    // cgroup v2 at /sys/fs/cgroup: the path itself; else /sys/fs/cgroup/<hierarchy>/path.
    let rel = if cg.mode() == moor_cgroups::Mode::Unified {
        rel.to_path_buf()
    } else {
        rel.components().skip(1).collect()
    };
    Some(Path::new("/").join(rel))
}

/// The cgroup.procs file of each of the container's cgroup directories, open for writing.
fn cgroup_procs(cg: &moor_cgroups::Cgroup) -> Result<Vec<OwnedFd>> {
    cg.dirs()
        .into_iter()
        .map(|d| {
            let f = d.join("cgroup.procs");
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&f)
                .map(OwnedFd::from)
                .map_err(|e| Error::path("cannot open", f, e))
        })
        .collect()
}

fn bind_root(rootfs: &Path, target: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .create(target)
        .map_err(|e| Error::path("cannot create", target, e))?;
    nix::mount::mount(
        Some(rootfs),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::sys(format!("bind {} on {}", rootfs.display(), target.display()), e))
}

fn unbind_root(target: &Path) {
    let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(target);
}

/// Whether the CRIU binary `criu` is there (looked up in PATH as the command would be): what
/// `features` reports as checkpoint support.
pub fn criu_available(criu: &Path) -> bool {
    if criu.components().count() > 1 {
        return criu.exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(criu).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_with_runc_s_rules() {
        assert_eq!("full".parse::<CgroupsMode>().unwrap(), CgroupsMode::Full);
        assert_eq!("ignore".parse::<CgroupsMode>().unwrap(), CgroupsMode::Ignore);
        let e = "none".parse::<CgroupsMode>().unwrap_err().to_string();
        assert!(e.starts_with("--manage-cgroups-mode"), "{e}");
        assert_eq!(page_server("10.0.0.1:27").unwrap(), ("10.0.0.1".into(), 27));
        assert_eq!(page_server("[::1]:27").unwrap(), ("::1".into(), 27));
        for bad in ["10.0.0.1", ":27", "h:port", "h:70000"] {
            assert!(
                page_server(bad).unwrap_err().to_string().starts_with("--page-server"),
                "{bad}"
            );
        }
        assert!(check_status_fd(-1).unwrap_err().to_string().starts_with("--status-fd"));
    }
}
