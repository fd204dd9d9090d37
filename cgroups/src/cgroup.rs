//! The container's cgroup: creation (recording what we created), joining, freezing, listing,
//! and destruction.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{read_opt, read_procs, read_string, walk_dirs, write_file};
use crate::mode::{
    detect_mode, is_cgroup2, own_cgroups, relative_to_mount, v1_mounts, Mode, V1Mount, CGROUP_ROOT, HYBRID_UNIFIED,
};
use crate::paths::{join_rel, resolve_cgroupfs, systemd_running, CgroupPath, SystemdUnit};
use crate::systemd;

/// What the runtime knows about the container when creating its cgroup.
#[derive(Clone, Copy, Debug)]
pub struct CgroupConfig<'a> {
    /// OCI `linux.cgroupsPath`; may be "".
    pub cgroups_path: &'a str,
    pub container_id: &'a str,
    /// `--systemd-cgroup`: `cgroupsPath` is `slice:prefix:name`.
    pub systemd: bool,
    /// Rootless: controllers we may not write to are skipped instead of failing.
    pub rootless: bool,
}

/// A container's cgroup on this host. Serializable so the runtime can keep it in its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub(crate) mode: Mode,
    /// v1 controller name → directory (controllers mounted together share a directory).
    #[serde(default)]
    pub(crate) v1: BTreeMap<String, PathBuf>,
    /// The cgroup2 directory: the container's cgroup on a pure v2 host, or its directory in the
    /// hybrid unified hierarchy.
    #[serde(default)]
    pub(crate) unified: Option<PathBuf>,
    /// Directories this library created, parents first. Only these are ever removed.
    #[serde(default)]
    pub(crate) created: Vec<PathBuf>,
    #[serde(default)]
    pub(crate) rootless: bool,
    /// With the systemd driver: the transient unit that owns the cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) systemd: Option<SystemdUnit>,
    /// The unit was started by us (until then, a unit of that name belongs to someone else).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) unit_started: bool,
    /// Rootless: the first directory we were not allowed to create, and why.
    #[serde(skip)]
    pub(crate) denied: Option<String>,
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
const EMPTY_TIMEOUT: Duration = Duration::from_secs(10);

fn target(mount: &Path, own: &str, spec: &CgroupPath) -> PathBuf {
    match spec {
        CgroupPath::Absolute(p) => join_rel(mount, p),
        CgroupPath::Relative(p) => join_rel(&join_rel(mount, Path::new(own)), p),
    }
}

fn skippable_for_rootless(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
    )
}

/// Enables in `dir` every controller it has available but does not yet pass to its children.
fn enable_subtree_controllers(dir: &Path) {
    let avail = read_opt(&dir.join("cgroup.controllers")).ok().flatten();
    let enabled = read_opt(&dir.join("cgroup.subtree_control"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let enabled: BTreeSet<&str> = enabled.split_whitespace().collect();
    for c in avail.as_deref().unwrap_or("").split_whitespace() {
        if !enabled.contains(c) {
            // Best effort: a busy parent (processes inside) refuses; apply() then reports the
            // missing interface file with the field that needed it.
            let _ = write_file(&dir.join("cgroup.subtree_control"), &format!("+{c}"));
        }
    }
}

impl Cgroup {
    /// Creates (mkdir -p) the container's cgroup in every hierarchy and records what it created.
    pub fn create(cfg: &CgroupConfig) -> Result<Cgroup> {
        let mode = detect_mode()?;
        if cfg.systemd {
            return Cgroup::for_systemd_unit(cfg, mode);
        }
        let spec = resolve_cgroupfs(cfg.cgroups_path, cfg.container_id)?;
        let own = own_cgroups()?;
        let mut cg = Cgroup {
            mode,
            v1: BTreeMap::new(),
            unified: None,
            created: Vec::new(),
            rootless: cfg.rootless,
            systemd: None,
            unit_started: false,
            denied: None,
        };
        match cg.create_dirs(&spec, &own) {
            Ok(()) => Ok(cg),
            Err(e) => {
                let _ = cg.remove_created();
                Err(e)
            }
        }
    }

    /// With the systemd driver nothing exists until [`Cgroup::enter`] starts the unit: this
    /// checks that systemd can be used and works out where the unit's cgroup will be.
    fn for_systemd_unit(cfg: &CgroupConfig, mode: Mode) -> Result<Cgroup> {
        let unit = SystemdUnit::parse(cfg.cgroups_path, cfg.container_id)?;
        let unavailable = |msg: &str| Error::SystemdUnavailable {
            path: cfg.cgroups_path.to_string(),
            msg: format!("{msg}; use the cgroupfs driver (omit --systemd-cgroup)"),
        };
        if !systemd_running() {
            return Err(unavailable(
                "systemd is not running on this host (no /run/systemd/system)",
            ));
        }
        if cfg.rootless {
            return Err(unavailable(
                "moor's systemd driver talks to the system manager, which needs root",
            ));
        }
        let root = systemd::Manager::connect()?.root_cgroup()?;
        let rel = join_rel(
            &PathBuf::from("/").join(root.trim_start_matches('/')),
            &unit.cgroup_path()?,
        );
        let mut cg = Cgroup {
            mode,
            v1: BTreeMap::new(),
            unified: None,
            created: Vec::new(),
            rootless: false,
            systemd: Some(unit),
            unit_started: false,
            denied: None,
        };
        if mode == Mode::Unified {
            cg.unified = Some(join_rel(Path::new(CGROUP_ROOT), &rel));
        } else {
            for (ctrl, m) in v1_mounts()? {
                cg.v1.insert(ctrl, join_rel(&m.mount_point, &rel));
            }
            let uroot = Path::new(HYBRID_UNIFIED);
            if mode == Mode::Hybrid && is_cgroup2(uroot) {
                cg.unified = Some(join_rel(uroot, &rel));
            }
        }
        Ok(cg)
    }

    /// True when systemd owns the cgroup (the systemd driver).
    pub fn is_systemd(&self) -> bool {
        self.systemd.is_some()
    }

    /// Puts the container's first process in its cgroup. With the systemd driver this starts
    /// the unit around it, then writes `resources` (the cgroupfs driver has written them at
    /// creation, before any process was inside).
    pub fn enter(&mut self, pid: i32, resources: Option<&LinuxResources>, description: &str) -> Result<()> {
        let Some(unit) = &self.systemd else {
            return self.add_task(pid);
        };
        let v2 = self.mode == Mode::Unified;
        let mut manager = systemd::Manager::connect()?;
        let job = manager.start(unit, pid, description, resources, v2)?;
        // From here on the unit is ours, also if its start fails: stop and reset it then.
        self.unit_started = true;
        let unit = unit.clone();
        let placed = (|| {
            manager.wait_started(job, &unit)?;
            if !v2 {
                // systemd made the unit's cgroup in the v1 hierarchies it manages; the others
                // (cpuset, freezer, net_cls, ...) are ours to make, and init joins them all.
                self.make_v1_dirs()?;
                self.add_task(pid)?;
            } else if unit.is_slice() {
                self.add_task(pid)?;
            } else if !read_procs(self.v2_dir()?)?.contains(&pid) {
                return Err(Error::Systemd {
                    op: "start",
                    unit: unit.unit.clone(),
                    msg: format!("pid {pid} is not in {} afterwards", self.v2_dir()?.display()),
                });
            }
            if let Some(r) = resources {
                self.apply(r)?;
                self.sync_v1_devices(&mut manager, &unit)?;
            }
            Ok(())
        })();
        if placed.is_err() {
            let _ = self.destroy();
        }
        placed
    }

    fn make_v1_dirs(&mut self) -> Result<()> {
        let mounts = v1_mounts()?;
        for (ctrl, dir) in self.v1.clone() {
            if let Some(m) = mounts.get(&ctrl) {
                self.mkdir_p(&m.mount_point, &dir, false)?;
            }
        }
        if let Some(dir) = self.v1.get("cpuset").cloned() {
            self.init_cpuset(&dir)?;
        }
        Ok(())
    }

    /// v1 only: systemd rewrites devices.allow/deny from its own view when it reloads, so it is
    /// told the list the kernel now holds.
    fn sync_v1_devices(&self, manager: &mut systemd::Manager, unit: &SystemdUnit) -> Result<()> {
        let Some(dir) = self.v1_dir("devices").filter(|_| self.mode != Mode::Unified) else {
            return Ok(());
        };
        manager.set_device_list(unit, &read_string(&dir.join("devices.list"))?)
    }

    fn create_dirs(&mut self, spec: &CgroupPath, own: &BTreeMap<String, String>) -> Result<()> {
        let own_v2 = own.get("").map(String::as_str).unwrap_or("/");
        match self.mode {
            Mode::Unified => {
                let root = Path::new(CGROUP_ROOT);
                let dir = target(root, own_v2, spec);
                if self.mkdir_p(root, &dir, true)? {
                    self.unified = Some(dir);
                } else {
                    return Err(self.denied_error());
                }
            }
            Mode::Legacy | Mode::Hybrid => {
                for (ctrl, m) in v1_mounts()? {
                    let own_rel = relative_to_mount(own.get(&ctrl).map(String::as_str).unwrap_or("/"), &m.root);
                    let dir = target(&m.mount_point, &own_rel, spec);
                    if self.mkdir_p(&m.mount_point, &dir, false)? {
                        self.v1.insert(ctrl, dir);
                    }
                }
                if self.v1.is_empty() && self.denied.is_some() {
                    return Err(self.denied_error());
                }
                if self.v1.is_empty() {
                    return Err(Error::Setup("no usable cgroup v1 controller is mounted".into()));
                }
                let uroot = Path::new(HYBRID_UNIFIED);
                if self.mode == Mode::Hybrid && is_cgroup2(uroot) {
                    let dir = target(uroot, own_v2, spec);
                    if self.mkdir_p(uroot, &dir, false)? {
                        self.unified = Some(dir);
                    }
                }
                if let Some(dir) = self.v1.get("cpuset").cloned() {
                    self.init_cpuset(&dir)?;
                }
            }
        }
        Ok(())
    }

    /// mkdir -p `dir` below `root`, recording created directories. With `v2_enable`, also turns
    /// on controllers in existing ancestors (pure v2; runc does the same); on the hybrid unified
    /// tree only directories we created are touched. Returns false if rootless and denied.
    fn mkdir_p(&mut self, root: &Path, dir: &Path, v2_enable: bool) -> Result<bool> {
        let rel = dir.strip_prefix(root).map_err(|_| Error::InvalidPath {
            path: dir.display().to_string(),
            msg: format!("not below {}", root.display()),
        })?;
        let is_v2 = v2_enable || root == Path::new(HYBRID_UNIFIED);
        // An ancestor may vanish under us when another container's delete removes the parent
        // it created: start over a few times.
        for _ in 0..5 {
            match self.mkdir_p_once(root, rel, is_v2, v2_enable) {
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => continue,
                r => return r,
            }
        }
        self.mkdir_p_once(root, rel, is_v2, v2_enable)
    }

    fn mkdir_p_once(&mut self, root: &Path, rel: &Path, is_v2: bool, v2_enable: bool) -> Result<bool> {
        let mut cur = root.to_path_buf();
        for comp in rel.components() {
            let parent = cur.clone();
            cur.push(comp);
            if is_v2 && (v2_enable || self.created.contains(&parent)) {
                enable_subtree_controllers(&parent);
            }
            match std::fs::create_dir(&cur) {
                Ok(()) => self.created.push(cur.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if self.rootless && skippable_for_rootless(&e) => {
                    self.denied
                        .get_or_insert_with(|| format!("mkdir {}: {e}", cur.display()));
                    return Ok(false);
                }
                Err(e) => return Err(Error::io("mkdir", &cur, e)),
            }
        }
        Ok(true)
    }

    fn denied_error(&self) -> Error {
        Error::RootlessDenied(self.denied.clone().unwrap_or_default())
    }

    /// A new v1 cpuset cgroup starts with empty cpus/mems; copy them down from the parent, top
    /// down, also through ancestors another container created but has not filled in yet.
    fn init_cpuset(&self, leaf: &Path) -> Result<()> {
        let chain: Vec<&Path> = leaf.ancestors().collect();
        let below_root = |d: &&Path| d.parent().is_some_and(|p| p.join("cpuset.cpus").exists());
        for dir in chain.into_iter().rev().filter(below_root) {
            let Some(parent) = dir.parent() else { continue };
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let cur = read_string(&dir.join(f))?;
                if cur.trim().is_empty() {
                    let from_parent = read_string(&parent.join(f))?;
                    write_file(&dir.join(f), from_parent.trim())?;
                }
            }
        }
        Ok(())
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// v2 only: the directory to open for clone3(CLONE_INTO_CGROUP). None on v1 and hybrid hosts
    /// (there the process must also join the v1 hierarchies: use [`Cgroup::add_task`]).
    pub fn unified_dir(&self) -> Option<&Path> {
        if self.systemd.is_some() {
            // It exists only once systemd has started the unit around init.
            return None;
        }
        match self.mode {
            Mode::Unified => self.unified.as_deref(),
            _ => None,
        }
    }

    /// The directory of a v1 controller, if mounted and ours.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// Directories this library created (parents first).
    pub fn created_dirs(&self) -> &[PathBuf] {
        &self.created
    }

    /// Every distinct cgroup directory of this container.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut set: BTreeSet<PathBuf> = self.v1.values().cloned().collect();
        if let Some(u) = &self.unified {
            set.insert(u.clone());
        }
        set.into_iter().collect()
    }

    /// Moves a process into the cgroup (every hierarchy).
    pub fn add_task(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::Setup(format!("add_task: invalid pid {pid}")));
        }
        for dir in self.dirs() {
            let path = dir.join("cgroup.procs");
            std::fs::write(&path, pid.to_string()).map_err(|e| Error::io("write pid to", &path, e))?;
        }
        Ok(())
    }

    /// Applies the container's resources at creation. Device rules are always programmed (the
    /// configured rules followed by runc's default allow-list), even when none are configured.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        self.set_resources(r, true)
    }

    /// Applies changed resources to a running container; only the fields present are written and
    /// device rules only when some are given.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        let Some(unit) = &self.systemd else {
            return self.set_resources(r, false);
        };
        let mut manager = systemd::Manager::connect()?;
        manager.set_properties(unit, r, self.mode == Mode::Unified)?;
        self.set_resources(r, false)?;
        if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            self.sync_v1_devices(&mut manager, unit)?;
        }
        Ok(())
    }

    fn set_resources(&self, r: &LinuxResources, initial: bool) -> Result<()> {
        match self.mode {
            Mode::Unified => crate::v2::apply(self, r, initial),
            Mode::Legacy | Mode::Hybrid => crate::v1::apply(self, r, initial),
        }
    }

    fn freezer_v1(&self) -> Result<&Path> {
        self.v1_dir("freezer").ok_or_else(|| {
            Error::unsupported(
                "freezer",
                "the cgroup v1 freezer controller is not mounted (or not accessible)",
            )
        })
    }

    fn v2_dir(&self) -> Result<&Path> {
        self.unified
            .as_deref()
            .ok_or_else(|| Error::Setup("no cgroup v2 directory (rootless without delegation?)".into()))
    }

    /// Freezes every process of the container and waits until the kernel reports it frozen.
    pub fn freeze(&self) -> Result<()> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        if self.mode == Mode::Unified {
            let dir = self.v2_dir()?;
            write_file(&dir.join("cgroup.freeze"), "1")?;
            loop {
                let events = read_string(&dir.join("cgroup.events"))?;
                if events.lines().any(|l| l.trim() == "frozen 1") {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = write_file(&dir.join("cgroup.freeze"), "0");
                    return Err(Error::Timeout {
                        what: format!("freezing {}", dir.display()),
                        millis: u64::try_from(FREEZE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                    });
                }
                sleep(Duration::from_millis(1));
            }
        }
        let dir = self.freezer_v1()?;
        let state = dir.join("freezer.state");
        let mut pause = Duration::from_micros(100);
        loop {
            // Re-writing FROZEN retries tasks that were busy (e.g. in vfork) when last tried.
            write_file(&state, "FROZEN")?;
            if read_string(&state)?.trim() == "FROZEN" {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = write_file(&state, "THAWED");
                return Err(Error::Timeout {
                    what: format!("freezing {}", dir.display()),
                    millis: u64::try_from(FREEZE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                });
            }
            sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Thaws the container.
    pub fn thaw(&self) -> Result<()> {
        if self.mode == Mode::Unified {
            return write_file(&self.v2_dir()?.join("cgroup.freeze"), "0");
        }
        let state = self.freezer_v1()?.join("freezer.state");
        write_file(&state, "THAWED")?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        while read_string(&state)?.trim() != "THAWED" {
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: format!("thawing {}", state.display()),
                    millis: u64::try_from(FREEZE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                });
            }
            sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// True when the container is frozen or being frozen, by its own freezer or an ancestor's.
    pub fn is_frozen(&self) -> Result<bool> {
        if self.mode == Mode::Unified {
            let dir = self.v2_dir()?;
            let own = read_opt(&dir.join("cgroup.freeze"))?.unwrap_or_default();
            let events = read_opt(&dir.join("cgroup.events"))?.unwrap_or_default();
            return Ok(own.trim() == "1" || events.lines().any(|l| l.trim() == "frozen 1"));
        }
        match self.v1_dir("freezer") {
            Some(d) => Ok(matches!(
                read_string(&d.join("freezer.state"))?.trim(),
                "FROZEN" | "FREEZING"
            )),
            None => Ok(false),
        }
    }

    /// The directory whose tree lists the container's processes.
    fn procs_dir(&self) -> Option<&Path> {
        if self.mode == Mode::Unified {
            return self.unified.as_deref();
        }
        ["pids", "freezer", "devices", "memory", "cpu"]
            .iter()
            .find_map(|c| self.v1_dir(c))
            .or_else(|| self.v1.values().next().map(PathBuf::as_path))
    }

    /// Every process in the container's cgroup, including nested cgroups.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = BTreeSet::new();
        if let Some(d) = self.procs_dir() {
            for dir in walk_dirs(d) {
                out.extend(read_procs(&dir)?);
            }
        }
        Ok(out.into_iter().collect())
    }

    fn all_pids(&self) -> Result<BTreeSet<i32>> {
        let mut out = BTreeSet::new();
        for d in self.dirs() {
            for dir in walk_dirs(&d) {
                out.extend(read_procs(&dir)?);
            }
        }
        Ok(out)
    }

    fn kill_all(&self) -> Result<()> {
        if let Some(u) = &self.unified {
            let kill = u.join("cgroup.kill");
            if kill.exists() {
                match write_file(&kill, "1") {
                    // The cgroup emptied and was removed meanwhile (systemd collects an empty
                    // unit on its own): nothing is left to kill in it.
                    Err(Error::Io { source, .. })
                        if matches!(source.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENOENT)) => {}
                    r => r?,
                }
                if self.mode == Mode::Unified {
                    return Ok(());
                }
            }
        }
        let frozen = self.mode != Mode::Unified && self.v1_dir("freezer").is_some() && {
            // A frozen cgroup cannot fork while we signal it.
            self.freeze().is_ok()
        };
        for pid in self.all_pids()? {
            // SAFETY: kill(2) with a pid read from our own cgroup; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if frozen || self.mode == Mode::Unified {
            let _ = self.thaw();
        }
        Ok(())
    }

    /// Kills what is left (only if we created the container's cgroup), waits until it is empty,
    /// and removes the directories we created, deepest first (with any nested cgroups inside).
    pub fn destroy(&self) -> Result<()> {
        if self.systemd.is_some() && !self.unit_started {
            // Nothing was made: a unit of that name, if any, is not ours to stop.
            return Ok(());
        }
        let ours = self.systemd.is_some() || self.dirs().iter().any(|d| self.created.contains(d));
        if ours {
            self.kill_all()?;
            let deadline = Instant::now() + EMPTY_TIMEOUT;
            let mut last_kill = Instant::now();
            while !self.all_pids()?.is_empty() {
                if Instant::now() > deadline {
                    return Err(Error::Timeout {
                        what: "waiting for the container's cgroup to become empty".into(),
                        millis: u64::try_from(EMPTY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                    });
                }
                if last_kill.elapsed() > Duration::from_millis(500) {
                    // New processes may have been forked between listing and killing.
                    self.kill_all()?;
                    last_kill = Instant::now();
                }
                sleep(Duration::from_millis(5));
            }
        }
        if let Some(unit) = &self.systemd {
            systemd::Manager::connect()?.stop(unit)?;
        }
        self.remove_created()
    }

    /// Undoes `create` before any process was put in: removes the directories it made and
    /// touches nothing else (a pre-existing cgroup keeps its processes and its freezer state).
    pub fn abandon(&self) -> Result<()> {
        self.remove_created()
    }

    fn remove_created(&self) -> Result<()> {
        let leaves = self.dirs();
        let mut dirs = self.created.clone();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            if leaves.contains(&d) {
                // The container's own cgroup: nested cgroups inside it are the container's too.
                for sub in walk_dirs(&d).into_iter().rev() {
                    rmdir_retry(&sub)?;
                }
            } else {
                // An ancestor we created may by now hold other containers' cgroups: remove it
                // only if it is empty, never what is inside.
                match std::fs::remove_dir(&d) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound && !is_busy(&e) => {
                        return Err(Error::io("rmdir", &d, e))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
    )
}

fn rmdir_retry(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::io("rmdir", dir, e)),
        }
    }
}

impl Cgroup {
    /// What [`Cgroup::create`] (and, with the systemd driver, [`Cgroup::enter`]) would make for
    /// `cfg`, without making anything; see [`Cgroup::as_if_made`]. A runtime records this before
    /// it creates the cgroup, so that when it is killed halfway [`Cgroup::destroy`] still finds
    /// whatever was made.
    pub fn planned(cfg: &CgroupConfig) -> Result<Cgroup> {
        let mode = detect_mode()?;
        if cfg.systemd {
            return Cgroup::for_systemd_unit(cfg, mode)?.as_if_made();
        }
        let mounts = if mode == Mode::Unified {
            BTreeMap::new()
        } else {
            v1_mounts()?
        };
        let spec = resolve_cgroupfs(cfg.cgroups_path, cfg.container_id)?;
        let own = own_cgroups()?;
        let own_v2 = own.get("").map(String::as_str).unwrap_or("/");
        let mut cg = Cgroup {
            mode,
            v1: BTreeMap::new(),
            unified: None,
            created: Vec::new(),
            rootless: cfg.rootless,
            denied: None,
            systemd: None,
            unit_started: false,
        };
        if mode == Mode::Unified {
            cg.unified = Some(target(Path::new(CGROUP_ROOT), own_v2, &spec));
        } else {
            for (ctrl, m) in &mounts {
                let own_rel = relative_to_mount(own.get(ctrl).map(String::as_str).unwrap_or("/"), &m.root);
                cg.v1.insert(ctrl.clone(), target(&m.mount_point, &own_rel, &spec));
            }
            let uroot = Path::new(HYBRID_UNIFIED);
            if mode == Mode::Hybrid && is_cgroup2(uroot) {
                cg.unified = Some(target(uroot, own_v2, &spec));
            }
        }
        cg.mark_unmade(&mounts);
        Ok(cg)
    }

    /// This cgroup as it will be once made: every one of its directories (and their ancestors)
    /// that does not exist now counts as created, and a systemd unit as started. Destroying that
    /// removes what was made of it (what was not is simply not found; ancestors go only if
    /// empty, as always; stopping a unit that was never started finds no unit).
    pub fn as_if_made(&self) -> Result<Cgroup> {
        let mut cg = self.clone();
        let mounts = if cg.mode == Mode::Unified {
            BTreeMap::new()
        } else {
            v1_mounts()?
        };
        cg.mark_unmade(&mounts);
        Ok(cg)
    }

    fn mark_unmade(&mut self, mounts: &BTreeMap<String, V1Mount>) {
        let mut dirs: Vec<(PathBuf, PathBuf)> = Vec::new();
        for (ctrl, dir) in &self.v1 {
            if let Some(m) = mounts.get(ctrl) {
                dirs.push((m.mount_point.clone(), dir.clone()));
            }
        }
        // With the systemd driver systemd makes (and removes) the cgroup2 directory itself.
        if let (Some(dir), false) = (&self.unified, self.systemd.is_some()) {
            let root = if self.mode == Mode::Unified {
                CGROUP_ROOT
            } else {
                HYBRID_UNIFIED
            };
            dirs.push((PathBuf::from(root), dir.clone()));
        }
        for (root, dir) in dirs {
            let Ok(rel) = dir.strip_prefix(&root) else { continue };
            let mut cur = root;
            for comp in rel.components() {
                cur.push(comp);
                if !cur.exists() && !self.created.contains(&cur) {
                    self.created.push(cur.clone());
                }
            }
        }
        self.unit_started |= self.systemd.is_some();
    }
}
