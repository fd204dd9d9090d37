//! What the moorlet tests share: an agent on a throwaway state dir, socket, log root, bridge
//! and subnet; the busybox image; the client run as a user runs it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn moorlet_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOORLET_BIN").filter(|s| !s.is_empty()) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/moorlet")
}

/// scripts/test runs these tests in their own group ("moorlet"), not among the host tests,
/// which set MOORLET_IT_IN_OWN_GROUP.
pub fn in_own_group() -> bool {
    let elsewhere = std::env::var_os("MOORLET_IT_IN_OWN_GROUP").is_some_and(|v| !v.is_empty() && v != "0");
    if elsewhere {
        eprintln!("moorlet tests run in scripts/test's moorlet group");
    }
    elsewhere
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One agent and everything it made; Drop deletes its pods, stops it and removes the rest.
pub struct Agent {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub logs: PathBuf,
    pub bridge: String,
    pub cgroup_parent: String,
    pub backoff_scale: Option<f64>,
    /// More environment for the agent (and so its monitors), e.g. MOORLET_LOG_MAX_SIZE.
    pub env: Vec<(String, String)>,
    pub child: Option<Child>,
}

impl Agent {
    /// An agent with restart delays scaled by `backoff_scale` (None: the real kubelet delays).
    pub fn start(backoff_scale: Option<f64>) -> Agent {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("moorlet-it-{id}"));
        let state = dir.join("state");
        let net_d = state.join("cni/net.d");
        std::fs::create_dir_all(&net_d).expect("state dir");
        // A bridge and subnet of this test's own: pods of parallel tests never meet.
        let octet = (std::process::id() % 200 + n * 7) % 250 + 1;
        let bridge = format!("mlt{}", id.replace('-', "x"));
        let bridge = bridge[..bridge.len().min(15)].to_string();
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("moorlet-it-{id}"),
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("10.213.{octet}.0/24")}]],
                          "dataDir": state.join("cni/ipam-test")}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        std::fs::write(net_d.join("10-test.conflist"), conf.to_string()).expect("conflist");
        let mut a = Agent {
            socket: dir.join("moorlet.sock"),
            logs: dir.join("pods"),
            state,
            dir,
            bridge,
            cgroup_parent: format!("/moor-it/moorlet-{id}"),
            backoff_scale,
            env: Vec::new(),
            child: None,
        };
        a.spawn();
        a
    }

    /// Like [`Agent::start`], with more environment for the agent.
    pub fn start_with_env(backoff_scale: Option<f64>, env: &[(&str, &str)]) -> Agent {
        let mut a = Agent::start(backoff_scale);
        a.kill9();
        a.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        a.spawn();
        a
    }

    /// Starts (or restarts) the agent process and waits for its socket.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .expect("agent log");
        let mut cmd = Command::new(moorlet_bin());
        cmd.arg("agent")
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--log-root")
            .arg(&self.logs)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        match self.backoff_scale {
            Some(s) => cmd.env("MOORLET_BACKOFF_SCALE", s.to_string()),
            None => cmd.env_remove("MOORLET_BACKOFF_SCALE"),
        };
        let child = cmd.spawn().expect("start moorlet agent");
        self.child = Some(child);
        let sock = self.socket.clone();
        moor_integration::poll_until(Duration::from_secs(10), "the agent's socket", || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        });
    }

    /// kill -9 of the agent (its monitors and containers live on).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Runs a client command; panics with its output when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "moorlet {args:?} failed: {}{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.agent_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(moorlet_bin())
            .args(args)
            .env("MOORLET_SOCKET", &self.socket)
            .output()
            .expect("run moorlet")
    }

    /// `apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> String {
        let mut child = Command::new(moorlet_bin())
            .args(["apply", "-f", "-"])
            .env("MOORLET_SOCKET", &self.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run moorlet apply");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), yaml.as_bytes()).expect("write yaml");
        let out = child.wait_with_output().expect("moorlet apply");
        assert!(
            out.status.success(),
            "apply failed: {}{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.agent_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn pod(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", "pod", name, "-o", "json"])).expect("pod json")
    }

    /// Polls the pod until `f` holds for it; panics after `timeout` with the pod as it is.
    pub fn wait_pod(&self, name: &str, timeout: Duration, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.pod(name);
            if f(&p) {
                return p;
            }
            if Instant::now() > deadline {
                let monitor = std::fs::read_to_string(
                    self.state
                        .join("run")
                        .join(p["metadata"]["uid"].as_str().unwrap_or("?"))
                        .join("monitor.log"),
                )
                .unwrap_or_default();
                panic!("pod {name}: timed out waiting for {what}: {p:#}\nmonitor log:\n{monitor}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_running(&self, name: &str) -> Value {
        self.wait_pod(
            name,
            Duration::from_secs(30),
            "Running with every container ready",
            |p| {
                p["status"]["phase"] == "Running"
                    && p["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().all(|c| c["ready"] == true))
            },
        )
    }

    /// The host pid of a container's process, from moor's own state.
    pub fn container_pid(&self, pod: &Value, container: &str) -> i32 {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let id = format!("{ns}_{name}_{container}_{}", &uid[..8]);
        let state: Value = serde_json::from_slice(
            &std::fs::read(self.state.join("moor").join(&id).join("state.json"))
                .unwrap_or_else(|e| panic!("moor state of {id}: {e}")),
        )
        .expect("moor state.json");
        let pid = state["pid"]
            .as_i64()
            .or_else(|| state["init_process_pid"].as_i64())
            .unwrap_or_else(|| panic!("no pid in moor's state of {id}: {state}"));
        i32::try_from(pid).expect("pid")
    }

    /// The busybox image, imported; returns the reference pods use.
    pub fn import_busybox(&self) -> String {
        let reference = "moorlet-it/busybox:1";
        let layout = moor_integration::images::busybox_oci_layout(&self.dir, reference);
        let out = self.ok(&["images", "import", layout.to_str().expect("utf-8 path")]);
        let ls = self.ok(&["images", "ls"]);
        assert!(
            ls.contains("busybox"),
            "images ls after import: {ls}\nimport said: {out}"
        );
        reference.into()
    }

    /// Monitor pids of every pod, from the state dir.
    pub fn monitor_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for e in std::fs::read_dir(self.state.join("run"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(t) = std::fs::read_to_string(e.path().join("monitor.pid")) {
                pids.extend(t.split_whitespace().next().and_then(|p| p.parse::<i32>().ok()));
            }
        }
        pids
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.is_none() && std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            self.spawn();
        }
        if let Ok(list) = serde_json::from_str::<Value>(&String::from_utf8_lossy(
            &self.run(&["get", "pods", "-A", "-o", "json"]).stdout,
        )) {
            for p in list["items"].as_array().into_iter().flatten() {
                let name = p["metadata"]["name"].as_str().unwrap_or_default();
                let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
                let _ = self.run(&["delete", "pod", name, "-n", ns]);
            }
        }
        self.kill9();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        for d in moor_integration::host::cgroup_dirs(&self.cgroup_parent) {
            let _ = std::fs::remove_dir(d);
        }
        // The net module keeps its namespace files under a bind mount of its own (as `ip netns`
        // does with /run/netns): a state-dir-wide mount, gone with the state dir.
        let ns_dir = self.state.join("run/ns");
        if !moor_integration::host::mounts_mentioning(&ns_dir.display().to_string()).is_empty() {
            let _ = nix::mount::umount2(&ns_dir, nix::mount::MntFlags::MNT_DETACH);
        }
        if moor_integration::host::mounts_mentioning(&self.dir.display().to_string()).is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("{} keeps mounts: not removed", self.dir.display());
        }
    }
}

/// A pod manifest: `containers` as (name, shell script) on busybox.
pub fn pod_yaml(name: &str, image: &str, extra_spec: &str, containers: &[(&str, &str)]) -> String {
    let mut y = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra_spec}  containers:\n");
    for (c, script) in containers {
        y.push_str(&format!(
            "  - name: {c}\n    image: {image}\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {}]\n",
            serde_json::to_string(script).expect("script")
        ));
    }
    y
}
