//! Container state on disk: `<root>/<id>/state.json`, written atomically (temp file + rename)
//! while holding the container's lock, plus the `exec.fifo` start barrier beside it.
//!
//! The status is derived, never trusted from the file alone: the init pid must still exist with
//! the start time recorded at create (a reused pid means "stopped"), the fifo's presence means
//! "created" (start removes it), and a frozen cgroup means "paused".

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// What `exec` applies ([`ExecConfig`]), written once at create: apart from state.json, which
/// is rewritten at every step of create and read by every `list` and `state`.
pub const EXEC_FILE: &str = "exec.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What moor records about a container. The public OCI state is derived from it by
/// [`ContainerState::oci_state`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    /// The init process, in the runtime's pid namespace; 0 while creating.
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot, /proc/PID/stat field 22): guards against pid reuse.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// The last status moor wrote; see [`ContainerState::status`] for the live one.
    pub recorded_status: Status,
    /// Hooks that run after start, kept here so `start` never re-reads the bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart_hooks: Vec<oci_spec::runtime::Hook>,
    /// Hooks that must run after delete, kept here because the bundle may be gone by then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop_hooks: Vec<oci_spec::runtime::Hook>,
    /// The cgroup moor created for the container, if any (opaque to this module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<serde_json::Value>,
    /// The `create` process (pid, start time) while the record says "creating": an orphaned init
    /// briefly holds an inherited copy of the lock after its creator died, so the lock alone
    /// cannot tell a live create from a dead one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<(i32, u64)>,
}

/// The parts of config.json that `exec` applies, kept in moor's own state directory: the bundle
/// belongs to whoever wrote it, and editing or removing it after create must not change the
/// confinement (seccomp, capabilities, LSM labels) of processes exec'd into the container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The container's process: the template of an exec without --process.
    pub process: oci_spec::runtime::Process,
    pub linux: oci_spec::runtime::Linux,
}

/// What `exec` applies to container `id` of the state root `root`, as recorded at its create.
pub fn exec_config(root: &Path, id: &str) -> Result<ExecConfig> {
    let file = root.join(id).join(EXEC_FILE);
    let data = fs::read(&file).map_err(|e| Error::path("cannot read the exec configuration", &file, e))?;
    serde_json::from_slice(&data).map_err(|e| Error::sys(format!("corrupt state {}", file.display()), e))
}

/// A container's public state. Fields are declared in runc's order, which is the order they
/// are printed in.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    /// 0 once stopped.
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    /// Sorted, as Go prints a map.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub owner: String,
}

/// The per-container directory, held open and locked while an operation runs.
pub struct StateDir {
    pub path: PathBuf,
    lock: OwnedFd,
}

pub fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("is a relative path element");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b)) {
        return bad("only letters, digits and _ + - . are allowed");
    }
    Ok(())
}

impl StateDir {
    /// Creates `<root>/<id>` exclusively (so a second create of the same id fails) and locks it.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(|e| Error::path("cannot create state root", root, e))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(Error::path("cannot create state directory", &path, e)),
        }
        match Self::lock(path.clone()) {
            Ok(dir) => Ok(dir),
            Err(e) => {
                let _ = fs::remove_dir_all(&path);
                Err(e)
            }
        }
    }

    /// Opens and locks an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let path = root.join(id);
        match Self::lock(path) {
            Err(Error::Path { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::DoesNotExist(id.to_string()))
            }
            r => r,
        }
    }

    fn lock(path: PathBuf) -> Result<StateDir> {
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::path("cannot open state directory", &path, e))?;
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::path("cannot lock state directory", &path, e));
            }
        }
        // Whoever held the lock before us may have deleted the container (a concurrent
        // `delete`): the directory we locked must still be the one at `path`.
        let gone = || {
            Error::path(
                "cannot open state directory",
                &path,
                std::io::ErrorKind::NotFound.into(),
            )
        };
        let held = dir
            .metadata()
            .map_err(|e| Error::path("cannot stat state directory", &path, e))?;
        match fs::symlink_metadata(&path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {}
            Ok(_) => return Err(gone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(Error::path("cannot stat state directory", &path, e)),
        }
        Ok(StateDir {
            path,
            lock: OwnedFd::from(dir),
        })
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<ContainerState> {
        let file = self.path.join(STATE_FILE);
        let data = fs::read(&file).map_err(|e| Error::path("cannot read state", &file, e))?;
        serde_json::from_slice(&data).map_err(|e| Error::sys(format!("corrupt state {}", file.display()), e))
    }

    /// Replaces state.json atomically: a reader sees the old or the new state, never a torn one.
    pub fn save(&self, state: &ContainerState) -> Result<()> {
        let data = serde_json::to_vec(state).map_err(|e| Error::sys("cannot encode state", e))?;
        self.replace(STATE_FILE, &data)
    }

    /// Records what `exec` applies (see [`EXEC_FILE`]).
    pub fn save_exec_config(&self, config: &ExecConfig) -> Result<()> {
        let data = serde_json::to_vec(config).map_err(|e| Error::sys("cannot encode the exec configuration", e))?;
        self.replace(EXEC_FILE, &data)
    }

    fn replace(&self, name: &str, data: &[u8]) -> Result<()> {
        let tmp = self.path.join(format!(".{name}.tmp"));
        let file = self.path.join(name);
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .and_then(|mut f| f.write_all(data));
        if let Err(e) = written {
            // A full filesystem must not keep an empty temp file behind.
            let _ = fs::remove_file(&tmp);
            return Err(Error::path("cannot write state", &tmp, e));
        }
        fs::rename(&tmp, &file).map_err(|e| Error::path("cannot replace state", &file, e))
    }

    /// Removes the directory; the lock goes with it.
    pub fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::path("cannot remove state directory", &self.path, e))
            }
            _ => Ok(()),
        }
    }

    pub fn lock_fd(&self) -> &OwnedFd {
        &self.lock
    }
}

/// Whether someone holds the lock of the container directory `dir` (its creator, while the
/// record says "creating"). A lock only lives as long as its holder: a killed creator frees it.
fn creator_alive(dir: &Path) -> bool {
    let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
    else {
        return false;
    };
    // SAFETY: flock on an fd we own; a shared lock taken here is released when `f` closes.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}

/// What /proc/PID/stat says about a process: its state letter and start time.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    // One read into a buffer that fits the whole line (procfs reports a size of 0, so a plain
    // read_to_string grows its buffer from 32 bytes, one read each: `list` does this for every
    // container).
    // The command name is whatever the process set: not necessarily UTF-8.
    let path = format!("/proc/{pid}/stat");
    let mut buf = [0u8; 1024];
    let n = std::io::Read::read(&mut fs::File::open(&path).ok()?, &mut buf).ok()?;
    let data = if n < buf.len() {
        String::from_utf8_lossy(&buf[..n]).into_owned()
    } else {
        String::from_utf8_lossy(&fs::read(&path).ok()?).into_owned()
    };
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // Field 22 (starttime) is the 20th after the state field.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl ContainerState {
    /// The container's cgroup, when moor made one.
    pub fn cgroup(&self) -> Option<moor_cgroups::Cgroup> {
        // Straight from the parsed record, without a deep copy of it: `list` asks this of every
        // running container (whether it is paused).
        self.cgroup
            .as_ref()
            .and_then(|v| moor_cgroups::Cgroup::deserialize(v).ok())
    }

    /// False when the container joined a cgroup its create did not make (another container's,
    /// sharing its cgroupsPath): the cgroup record lists what create made, so this holds for
    /// records of any age. Only an owner may kill the cgroup's other processes.
    pub fn owns_cgroup(&self) -> bool {
        self.cgroup().is_none_or(|c| c.made_by_us())
    }

    /// True when the container's cgroup is frozen.
    pub fn frozen(&self) -> bool {
        self.cgroup().is_some_and(|c| c.is_frozen().unwrap_or(false))
    }

    /// True when the recorded init process still exists and is not a zombie.
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && matches!(proc_stat(self.pid), Some((s, start)) if start == self.pid_start_time && s != 'Z' && s != 'X')
    }

    /// The live status, derived from the process, the fifo and (when paused) the cgroup.
    /// `frozen` is only asked when init is alive (it reads the cgroup). A "creating" record is
    /// only creating while its creator holds the container's lock: one that died (killed by a
    /// caller's timeout, say) left a container that will never be created, and it is "stopped"
    /// (`delete` removes what it recorded). `locked` says the caller holds the lock itself.
    pub fn status(&self, dir: &Path, locked: bool, frozen: impl FnOnce() -> bool) -> Status {
        if self.recorded_status == Status::Creating {
            let creator_running = self.creator.is_none_or(
                |(pid, start)| matches!(proc_stat(pid), Some((s, t)) if t == start && s != 'Z' && s != 'X'),
            );
            return if !locked && creator_running && creator_alive(dir) {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if frozen() {
            return Status::Paused;
        }
        if dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// The state as `runc state` and `runc list` print it: the OCI state plus runc's rootfs,
    /// created and owner, in runc's field order.
    pub fn oci_state(&self, status: Status) -> OciState {
        OciState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped { 0 } else { self.pid },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: self.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            owner: self.owner.clone(),
        }
    }

    /// The runtime-spec state given to hooks on stdin.
    pub fn hook_state(&self, status: Status) -> Vec<u8> {
        self.hook_state_with_pid(status, self.pid)
    }

    /// The hook state for `pid`: what init builds for its own hooks, from the record as it was
    /// at the clone and the pid the parent sends.
    pub fn hook_state_with_pid(&self, status: Status, pid: i32) -> Vec<u8> {
        let state = HookState {
            oci_version: &self.oci_version,
            id: &self.id,
            status,
            pid,
            bundle: &self.bundle,
            annotations: self.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        };
        // Only a bundle path that is not UTF-8 fails; its hooks then get an empty state.
        serde_json::to_vec(&state).unwrap_or_default()
    }
}

/// The runtime-spec state as hooks (and a seccomp agent) get it, built whole with its status:
/// nothing edits the encoded JSON afterwards.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HookState<'a> {
    oci_version: &'a str,
    id: &'a str,
    status: Status,
    pid: i32,
    bundle: &'a Path,
    /// Sorted, as Go prints a map.
    annotations: BTreeMap<&'a str, &'a str>,
}

#[cfg(test)]
mod tests {
    use super::{validate_id, ContainerState, StateDir, Status, STATE_FILE};
    use crate::error::Error;
    use std::collections::HashMap;
    use std::path::PathBuf;

    #[test]
    fn hook_state_is_the_runtime_spec_state_with_the_status_asked_for() {
        let state = ContainerState {
            oci_version: "1.2.0".into(),
            id: "c1".into(),
            pid: 0,
            pid_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: HashMap::from([("k".into(), "v\"".into())]),
            recorded_status: Status::Creating,
            poststart_hooks: Vec::new(),
            poststop_hooks: Vec::new(),
            cgroup: None,
            creator: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&state.hook_state_with_pid(Status::Created, 42)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "created", "pid": 42,
                "bundle": "/b", "annotations": {"k": "v\""}})
        );
    }

    /// A fresh state root under the temp dir, removed on drop.
    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Root {
            let p = std::env::temp_dir().join(format!("moor-unit-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Root(p)
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(id: &str) -> ContainerState {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.3.0", "id": id, "pid": 0, "pidStartTime": 0, "bundle": "/b",
            "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z", "owner": "",
            "recordedStatus": "running"
        }))
        .unwrap()
    }

    #[test]
    fn ids_are_bounded_and_never_a_path() {
        validate_id(&"a".repeat(1024)).unwrap();
        for bad in ["", ".", "..", "a/b", "../x", "a\0b", "a b", "é"] {
            assert!(matches!(validate_id(bad), Err(Error::InvalidId { .. })), "{bad:?}");
        }
        assert!(validate_id(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn a_state_round_trips_through_its_file() {
        let root = Root::new("roundtrip");
        let dir = StateDir::create(&root.0, "c1").unwrap();
        let mut st = record("c1");
        st.annotations.insert("k".into(), "v".into());
        st.creator = Some((12, 34));
        dir.save(&st).unwrap();
        let back = dir.load().unwrap();
        assert_eq!(
            (back.id.as_str(), back.recorded_status, back.creator),
            ("c1", Status::Running, Some((12, 34)))
        );
        assert_eq!(back.annotations.get("k").map(String::as_str), Some("v"));
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir.path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, [STATE_FILE]);
    }

    #[test]
    fn a_second_create_of_the_same_id_fails_and_a_missing_one_does_not_exist() {
        let root = Root::new("exclusive");
        let _first = StateDir::create(&root.0, "c1").unwrap();
        assert!(StateDir::create(&root.0, "c1").is_err());
        assert!(matches!(StateDir::open(&root.0, "nope"), Err(Error::DoesNotExist(id)) if id == "nope"));
    }

    #[test]
    fn a_garbled_state_file_is_an_error_naming_it_never_a_panic() {
        let root = Root::new("garbled");
        let dir = StateDir::create(&root.0, "c1").unwrap();
        let file = dir.path.join(STATE_FILE);
        let cases: [&[u8]; 7] = [
            b"",
            b"{\"id\":",
            b"[]",
            b"\xff\xfe\x00garbage",
            br#"{"ociVersion":"1.3.0","id":"c1","pid":4294967296,"pidStartTime":0,"bundle":"/b","rootfs":"/r","created":"","owner":"","recordedStatus":"running"}"#,
            br#"{"ociVersion":"1.3.0","id":"c1","pid":1,"pidStartTime":0,"bundle":"/b","rootfs":"/r","created":"","owner":"","recordedStatus":"exploded"}"#,
            br#"{"ociVersion":"1.3.0","id":"c1","pid":1,"pidStartTime":-1,"bundle":"/b","rootfs":"/r","created":"","owner":"","recordedStatus":"running"}"#,
        ];
        for data in cases {
            std::fs::write(&file, data).unwrap();
            let e = dir
                .load()
                .err()
                .unwrap_or_else(|| panic!("{data:?} loaded"))
                .to_string();
            assert!(e.contains("corrupt state") && e.contains(STATE_FILE), "{data:?}: {e}");
        }
        std::fs::remove_file(&file).unwrap();
        assert!(dir.load().err().unwrap().to_string().contains("cannot read state"));
    }

    #[test]
    fn a_record_whose_init_is_gone_is_stopped_and_shows_pid_zero() {
        let root = Root::new("stopped");
        let mut st = record("c1");
        // No process has pid 0 to look up, and pid_max is far below i32::MAX.
        st.pid = i32::MAX;
        assert_eq!(
            st.status(&root.0, false, || unreachable!("init is not alive")),
            Status::Stopped
        );
        let oci = st.oci_state(Status::Stopped);
        assert_eq!((oci.pid, oci.status), (0, Status::Stopped));
    }

    #[test]
    fn a_creating_record_whose_creator_died_is_stopped() {
        let root = Root::new("creating");
        let mut st = record("c1");
        st.recorded_status = Status::Creating;
        st.creator = Some((i32::MAX, 1));
        assert_eq!(st.status(&root.0, false, || false), Status::Stopped);
        // A live creator (this process, with its real start time) holding the container's lock
        // is still creating; the same record read by the lock's holder itself is not.
        let dir = StateDir::create(&root.0, "c1").unwrap();
        let me = nix::unistd::getpid().as_raw();
        st.creator = super::proc_stat(me).map(|(_, start)| (me, start));
        assert_eq!(st.status(&dir.path, false, || false), Status::Creating);
        assert_eq!(st.status(&dir.path, true, || false), Status::Stopped);
    }
}
