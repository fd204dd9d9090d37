//! Bundle builder: a temp dir with a busybox rootfs and a runc-`spec`-like config.json.

use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Applets hard-linked to busybox in the rootfs `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "id", "sleep", "true", "false", "env", "pwd", "hostname", "mkdir", "grep", "stat",
    "readlink", "wc", "touch", "ps", "stty", "tty", "ionice", "kill", "head", "tail", "cut", "tr", "sed", "ip",
    "uptime", "test", "printf", "sysctl", "awk", "rm", "ln", "cp", "sort", "xargs", "uname", "date",
];

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Creates a fresh directory `/tmp/moor-it-<tag>-<pid>-<n>` (mode 0755 so that a container in a
/// user namespace can still traverse it).
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let p = PathBuf::from(format!("/tmp/moor-it-{tag}-{}-{n}-{nanos:x}", std::process::id()));
    fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A bundle directory. Removed by the owning [`crate::Ctx`] (not on its own drop, so that a
/// bundle outlives a container that still references it).
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// Builds a bundle whose config runs `args` with cgroupsPath `/moor-it/<id>`.
    pub fn new(id: &str, args: &[&str]) -> Bundle {
        let dir = temp_dir("bundle");
        let rootfs = dir.join("rootfs");
        build_rootfs(&rootfs);
        let config = default_config(id, args);
        let b = Bundle { dir, config };
        b.save();
        b
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `config.json` (call after mutating [`Bundle::config`]; the runner calls it before
    /// `create`/`run` too).
    pub fn save(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Mutable access to a JSON pointer, creating intermediate objects as needed.
    pub fn at(&mut self, pointer: &str) -> &mut Value {
        let mut cur = &mut self.config;
        for part in pointer.split('/').filter(|s| !s.is_empty()) {
            if cur.is_null() {
                *cur = json!({});
            }
            cur = match cur {
                Value::Object(m) => m.entry(part.to_string()).or_insert(Value::Null),
                Value::Array(a) => {
                    let i: usize = part.parse().expect("array index");
                    &mut a[i]
                }
                _ => panic!("cannot descend into {part} of non-object"),
            };
        }
        cur
    }

    /// Sets the value at a JSON pointer (e.g. `/process/cwd`).
    pub fn set(&mut self, pointer: &str, v: Value) -> &mut Self {
        *self.at(pointer) = v;
        self
    }

    /// Removes a key (e.g. `/linux/namespaces`).
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        if let Some(Value::Object(m)) = self.config.pointer_mut(parent) {
            m.remove(key);
        }
        self
    }

    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// Shell one-liner as the workload: `sh -c <script>`.
    pub fn set_sh(&mut self, script: &str) -> &mut Self {
        self.set_args(&["sh", "-c", script])
    }

    pub fn push_env(&mut self, kv: &str) -> &mut Self {
        self.at("/process/env").as_array_mut().unwrap().push(json!(kv));
        self
    }

    pub fn push_mount(&mut self, m: Value) -> &mut Self {
        self.at("/mounts").as_array_mut().unwrap().push(m);
        self
    }

    /// Bind-mounts a fresh host temp dir (mode 0777) at `dest` in the container and returns its
    /// host path. The runner's context removes it.
    pub fn bind_out_dir(&mut self, dest: &str) -> PathBuf {
        let host = self.dir.join(format!("out{}", dest.replace('/', "_")));
        fs::create_dir_all(&host).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o777)).unwrap();
        self.push_mount(json!({
            "destination": dest,
            "type": "bind",
            "source": host,
            "options": ["rbind", "rw"]
        }));
        host
    }

    /// Namespace entries (type names).
    pub fn namespaces(&self) -> Vec<String> {
        self.config["linux"]["namespaces"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["type"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    pub fn remove_namespace(&mut self, ty: &str) -> &mut Self {
        if let Some(a) = self.at("/linux/namespaces").as_array_mut() {
            a.retain(|n| n["type"] != ty);
        }
        self
    }

    /// Adds (or replaces) a namespace entry, optionally with a path to join.
    pub fn set_namespace(&mut self, ty: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(ty);
        let mut ns = json!({ "type": ty });
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        self.at("/linux/namespaces").as_array_mut().unwrap().push(ns);
        self
    }

    /// A new user namespace mapping container ids 0..size to host ids host..host+size.
    pub fn map_user_namespace(&mut self, host: u32, size: u32) -> &mut Self {
        self.set_namespace("user", None);
        let map = json!([{"containerID": 0, "hostID": host, "size": size}]);
        self.set("/linux/uidMappings", map.clone());
        self.set("/linux/gidMappings", map);
        self
    }

    /// The cgroupsPath this bundle uses.
    pub fn cgroups_path(&self) -> String {
        self.config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Populates a rootfs with static busybox (copied) and hard links for the applets.
pub fn build_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "etc",
        "root",
        "mnt",
        "usr/bin",
        "home/user",
    ] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    for d in [
        "", "bin", "dev", "proc", "sys", "etc", "root", "mnt", "usr", "usr/bin", "home",
    ] {
        fs::set_permissions(rootfs.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(rootfs.join("home/user"), fs::Permissions::from_mode(0o777)).unwrap();
    let bb = rootfs.join("bin/busybox");
    fs::copy(busybox_path(), &bb).expect("copy busybox");
    fs::set_permissions(&bb, fs::Permissions::from_mode(0o755)).unwrap();
    for a in APPLETS {
        fs::hard_link(&bb, rootfs.join("bin").join(a)).unwrap();
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nwheel:x:10:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

pub fn busybox_path() -> PathBuf {
    std::env::var_os("BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

/// The runc-`spec`-like default config, with terminal false, readonly false (tests write into the
/// rootfs), no ambient caps, a cgroup namespace and an absolute cgroupsPath.
pub fn default_config(id: &str, args: &[&str]) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "moor-it",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": format!("/moor-it/{id}"),
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}
