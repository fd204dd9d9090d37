//! CNI 1.0.0: plugins run as binaries with the CNI_* environment and the network config on stdin.

use super::{HostPort, NetError, NetOptions, PodRef};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const VERSION: &str = "1.0.0";
const IFNAME: &str = "eth0";
const PLUGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct Cni {
    plugin_dir: PathBuf,
    pods_dir: PathBuf,
    lock: PathBuf,
    /// The conflist found at open, and the file it came from.
    list: Value,
    list_path: PathBuf,
}

/// portmap's runtimeConfig entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortMapping {
    host_port: u16,
    container_port: u16,
    protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    host_ip: Option<IpAddr>,
}

/// What moorlet keeps of an attached pod: enough to run DEL after a restart, and to find
/// hostPort conflicts. `result` is None while ADD runs (a crash then still gets a DEL).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    pod: String,
    netns: PathBuf,
    config: Value,
    port_mappings: Vec<PortMapping>,
    result: Option<Value>,
}

impl Cni {
    pub(crate) fn open(dir: &Path, options: &NetOptions) -> Result<Cni, NetError> {
        let conf_dir = dir.join("net.d");
        let pods_dir = dir.join("pods");
        for d in [&conf_dir, &pods_dir] {
            std::fs::create_dir_all(d).map_err(|e| NetError::io("create directory", d, e))?;
        }
        let list_path = match first_config(&conf_dir)? {
            Some(p) => p,
            None => write_default(&conf_dir, &dir.join("ipam"), options)?,
        };
        let text = std::fs::read_to_string(&list_path).map_err(|e| NetError::io("read", &list_path, e))?;
        let list = parse_list(&list_path, &text)?;
        Ok(Cni {
            plugin_dir: options.plugin_dir.clone(),
            pods_dir,
            lock: dir.join("lock"),
            list,
            list_path,
        })
    }

    fn record_path(&self, pod: &PodRef) -> PathBuf {
        self.pods_dir.join(format!("{}.json", pod.uid))
    }

    pub(crate) fn add(&self, pod: &PodRef, netns: &Path, ports: &[HostPort]) -> Result<IpAddr, NetError> {
        let mappings = port_mappings(ports)?;
        let record_path = self.record_path(pod);
        {
            let lock = self.lock()?;
            if let Some(old) = read_record(&record_path)? {
                if old.netns == netns {
                    if let Some(ip) = old.result.as_ref().and_then(result_ip) {
                        return Ok(ip);
                    }
                }
                drop(lock);
                self.del(pod)?;
                return self.add(pod, netns, ports);
            }
            self.check_ports(&pod.uid, &mappings)?;
            let record = Record {
                pod: format!("{}/{}", pod.namespace, pod.name),
                netns: netns.to_path_buf(),
                config: self.list.clone(),
                port_mappings: mappings,
                result: None,
            };
            write_record(&record_path, &record)?;
        }
        match self.run_add(pod, netns) {
            Ok(result) => {
                let mut record = read_record(&record_path)?.ok_or_else(|| NetError::Config {
                    path: record_path.clone(),
                    reason: "the pod's record vanished during ADD".into(),
                })?;
                let ip = result_ip(&result);
                record.result = Some(result);
                write_record(&record_path, &record)?;
                ip.ok_or_else(|| NetError::Config {
                    path: self.list_path.clone(),
                    reason: "the plugins' result has no IP address".into(),
                })
            }
            Err(e) => {
                let _ = self.del(pod);
                Err(e)
            }
        }
    }

    fn run_add(&self, pod: &PodRef, netns: &Path) -> Result<Value, NetError> {
        let record = read_record(&self.record_path(pod))?.ok_or_else(|| NetError::Config {
            path: self.record_path(pod),
            reason: "the pod's record vanished during ADD".into(),
        })?;
        // lo and eth0 are independent: loopback runs beside the chain (pod start latency).
        let lo = self.spawn("ADD", pod, Some(netns), "lo", &loopback_conf())?;
        let chain = (|| {
            let mut prev: Option<Value> = None;
            for plugin in plugins(&record.config) {
                let conf = plugin_conf(&record.config, plugin, &record.port_mappings, prev.as_ref());
                prev = self.exec("ADD", pod, Some(netns), IFNAME, &conf)?;
            }
            Ok(prev)
        })();
        lo.finish()?;
        chain?.ok_or_else(|| NetError::Config {
            path: self.list_path.clone(),
            reason: "the plugins gave no result".into(),
        })
    }

    /// DEL every plugin, last first, from the recorded config and result; the record goes only
    /// once all succeeded, so a failed DEL can be retried.
    pub(crate) fn del(&self, pod: &PodRef) -> Result<(), NetError> {
        let record_path = self.record_path(pod);
        let Some(record) = read_record(&record_path)? else {
            return Ok(());
        };
        // A namespace that is gone (or no longer an nsfs mount) is an empty CNI_NETNS: plugins
        // then release what lives outside it (leases, port rules).
        let netns = super::ns::is_nsfs_path(&record.netns).then_some(record.netns.as_path());
        let lo = self.spawn("DEL", pod, netns, "lo", &loopback_conf())?;
        let mut first_error = None;
        let mut plugins = plugins(&record.config);
        plugins.reverse();
        for plugin in plugins {
            let conf = plugin_conf(&record.config, plugin, &record.port_mappings, record.result.as_ref());
            if let Err(e) = self.exec("DEL", pod, netns, IFNAME, &conf) {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = lo.finish() {
            first_error.get_or_insert(e);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        match std::fs::remove_file(&record_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io("remove", &record_path, e)),
        }
    }

    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, NetError> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock)
            .map_err(|e| NetError::io("open", &self.lock, e))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| NetError::os("lock", &self.lock, e))
    }

    /// A hostPort is taken when another pod's record has the same port and protocol on the
    /// same address, or either side listens on every address.
    fn check_ports(&self, uid: &str, wanted: &[PortMapping]) -> Result<(), NetError> {
        let entries =
            std::fs::read_dir(&self.pods_dir).map_err(|e| NetError::io("read directory", &self.pods_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| NetError::io("read directory", &self.pods_dir, e))?;
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "json") || path.file_stem().is_some_and(|s| s == uid) {
                continue;
            }
            let Some(other) = read_record(&path)? else {
                continue;
            };
            for w in wanted {
                let clash = other.port_mappings.iter().any(|o| {
                    o.host_port == w.host_port
                        && o.protocol == w.protocol
                        && (o.host_ip.is_none_or(|ip| ip.is_unspecified())
                            || w.host_ip.is_none_or(|ip| ip.is_unspecified())
                            || o.host_ip == w.host_ip)
                });
                if clash {
                    return Err(NetError::HostPortInUse {
                        port: w.host_port,
                        protocol: w.protocol.to_uppercase(),
                        pod: other.pod,
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs one plugin; its JSON output (None when it printed nothing, as DEL does).
    fn exec(
        &self,
        command: &'static str,
        pod: &PodRef,
        netns: Option<&Path>,
        ifname: &str,
        conf: &Value,
    ) -> Result<Option<Value>, NetError> {
        self.spawn(command, pod, netns, ifname, conf)?.finish()
    }

    /// Starts one plugin with its config written to stdin (a few KiB: within the pipe's buffer).
    fn spawn(
        &self,
        command: &'static str,
        pod: &PodRef,
        netns: Option<&Path>,
        ifname: &str,
        conf: &Value,
    ) -> Result<Running, NetError> {
        let kind = conf.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let binary = self.plugin_dir.join(&kind);
        let mut child = Command::new(&binary)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &pod.uid)
            .env("CNI_NETNS", netns.map(Path::as_os_str).unwrap_or_default())
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.plugin_dir)
            .env("CNI_ARGS", cni_args(pod))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NetError::io("run CNI plugin", &binary, e))?;
        let input = serde_json::to_vec(conf).unwrap_or_default();
        let written = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(&input),
            None => Ok(()),
        };
        let running = Running {
            child,
            binary,
            kind,
            command,
        };
        match written {
            Ok(()) => Ok(running),
            Err(e) => {
                let binary = running.binary.clone();
                running.kill();
                Err(NetError::io("write the config to", binary, e))
            }
        }
    }
}

/// A plugin started by `spawn`.
struct Running {
    child: std::process::Child,
    binary: PathBuf,
    kind: String,
    command: &'static str,
}

impl Running {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its output and exit status: the JSON result, or its error as NetError::Plugin.
    fn finish(self) -> Result<Option<Value>, NetError> {
        let (kind, command) = (self.kind.clone(), self.command);
        let out = wait_with_timeout(self.child, &self.binary)?;
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if out.status.success() {
            return Ok(parsed);
        }
        let code = parsed.as_ref().and_then(|v| v.get("code")).and_then(Value::as_u64);
        let text = |key| {
            parsed
                .as_ref()
                .and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut msg = text("msg");
        let details = text("details");
        if !details.is_empty() {
            msg = format!("{msg}: {details}");
        }
        if msg.is_empty() {
            msg = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Err(NetError::Plugin {
            plugin: kind,
            command,
            code: code.unwrap_or(999),
            msg,
        })
    }
}

/// A plugin that hangs (a stuck iptables lock, a dead DHCP server) must not hang the agent: it
/// is killed after PLUGIN_TIMEOUT. Its stdout and stderr are read as they come (poll), so a
/// large output cannot block it; no thread is started (the per-pod monitor must stay
/// single-threaded).
fn wait_with_timeout(mut child: std::process::Child, binary: &Path) -> Result<std::process::Output, NetError> {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::io::Read as _;
    let deadline = std::time::Instant::now() + PLUGIN_TIMEOUT;
    let timed_out = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
        NetError::io("run CNI plugin", binary, std::io::ErrorKind::TimedOut.into())
    };
    let mut pipes: [(Option<Pipe>, Vec<u8>); 2] = [
        (child.stdout.take().map(|p| Box::new(p) as Box<dyn ReadFd>), Vec::new()),
        (child.stderr.take().map(|p| Box::new(p) as Box<dyn ReadFd>), Vec::new()),
    ];
    while pipes.iter().any(|(p, _)| p.is_some()) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(timed_out(&mut child));
        }
        let ms = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = pipes
                .iter()
                .filter_map(|(p, _)| p.as_ref().map(|p| PollFd::new(p.fd(), PollFlags::POLLIN)))
                .collect();
            match poll(&mut fds, ms) {
                Ok(_) => fds.iter().map(|f| f.any().unwrap_or(true)).collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(NetError::os("poll the output of", binary, e)),
            }
        };
        let mut ready = ready.into_iter();
        for (pipe, buf) in pipes.iter_mut() {
            let Some(p) = pipe.as_mut() else { continue };
            if !ready.next().unwrap_or(false) {
                continue;
            }
            let mut chunk = [0u8; 16384];
            match p.read(&mut chunk) {
                Ok(0) => *pipe = None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(NetError::io("read the output of", binary, e)),
            }
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() >= deadline => return Err(timed_out(&mut child)),
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => return Err(NetError::io("wait for CNI plugin", binary, e)),
        }
    };
    let [(_, stdout), (_, stderr)] = pipes;
    Ok(std::process::Output { status, stdout, stderr })
}

type Pipe = Box<dyn ReadFd>;

/// A child's stdout or stderr: readable, and pollable through its fd.
trait ReadFd: std::io::Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl<T: std::io::Read + std::os::fd::AsFd> ReadFd for T {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

fn loopback_conf() -> Value {
    json!({"cniVersion": VERSION, "name": "cni-loopback", "type": "loopback"})
}

fn plugins(list: &Value) -> Vec<&Value> {
    list.get("plugins")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// One plugin's stdin: its object, with the list's name and version, the runtime config for the
/// capabilities it declares, and the previous result.
fn plugin_conf(list: &Value, plugin: &Value, ports: &[PortMapping], prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    if let Some(obj) = conf.as_object_mut() {
        obj.insert(
            "cniVersion".into(),
            list.get("cniVersion").cloned().unwrap_or(json!(VERSION)),
        );
        obj.insert("name".into(), list.get("name").cloned().unwrap_or(Value::Null));
        let wants_ports = plugin
            .pointer("/capabilities/portMappings")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if wants_ports {
            obj.insert("runtimeConfig".into(), json!({ "portMappings": ports }));
        }
        if let Some(prev) = prev {
            obj.insert("prevResult".into(), prev.clone());
        }
    }
    conf
}

/// The first address of the result (IPv4 first).
fn result_ip(result: &Value) -> Option<IpAddr> {
    let ips: Vec<IpAddr> = result
        .get("ips")?
        .as_array()?
        .iter()
        .filter_map(|ip| ip.get("address")?.as_str()?.split('/').next()?.parse().ok())
        .collect();
    ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied()
}

fn cni_args(pod: &PodRef) -> String {
    let safe = |s: &str| !s.contains([';', '=', '\0']);
    let mut args = String::from("IgnoreUnknown=1");
    if safe(&pod.namespace) && safe(&pod.name) {
        args.push_str(&format!(
            ";K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.uid, pod.uid
        ));
    }
    args
}

fn port_mappings(ports: &[HostPort]) -> Result<Vec<PortMapping>, NetError> {
    let mut out: Vec<PortMapping> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        if p.host_port == 0 {
            continue;
        }
        let protocol = p.protocol.to_ascii_lowercase();
        if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
            return Err(NetError::Invalid {
                field: format!("ports[{i}].protocol"),
                value: p.protocol.clone(),
                reason: "must be TCP, UDP or SCTP",
            });
        }
        if p.container_port == 0 {
            return Err(NetError::Invalid {
                field: format!("ports[{i}].containerPort"),
                value: "0".into(),
                reason: "must be 1 to 65535",
            });
        }
        let m = PortMapping {
            host_port: p.host_port,
            container_port: p.container_port,
            protocol,
            host_ip: p.host_ip,
        };
        if out
            .iter()
            .any(|o| o.host_port == m.host_port && o.protocol == m.protocol)
        {
            return Err(NetError::Invalid {
                field: format!("ports[{i}].hostPort"),
                value: m.host_port.to_string(),
                reason: "the pod publishes this hostPort twice",
            });
        }
        out.push(m);
    }
    Ok(out)
}

fn read_record(path: &Path) -> Result<Option<Record>, NetError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| NetError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetError::io("read", path, e)),
    }
}

fn write_record(path: &Path, record: &Record) -> Result<(), NetError> {
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| NetError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| NetError::io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| NetError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| NetError::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NetError::io("rename", path, e))
}

/// libcni's choice: the first .conflist, .conf or .json file in name order.
fn first_config(dir: &Path) -> Result<Option<PathBuf>, NetError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| NetError::io("read directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "conflist" | "conf" | "json"))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

/// A .conflist as it is; a single-plugin .conf is made a list of one.
fn parse_list(path: &Path, text: &str) -> Result<Value, NetError> {
    let bad = |reason: String| NetError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let mut v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if v.get("plugins").is_none() {
        let name = v.get("name").cloned();
        let version = v.get("cniVersion").cloned();
        v = json!({"cniVersion": version, "name": name, "plugins": [v]});
    }
    if v.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(bad("\"name\" must be a non-empty string".into()));
    }
    let list = plugins(&v);
    if list.is_empty() {
        return Err(bad("\"plugins\" must be a non-empty array".into()));
    }
    for (i, p) in list.iter().enumerate() {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
        let ok = !kind.is_empty()
            && !kind.starts_with('.')
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            return Err(bad(format!("plugins[{i}].type {kind:?} is not a plugin name")));
        }
    }
    Ok(v)
}

fn write_default(conf_dir: &Path, ipam_dir: &Path, o: &NetOptions) -> Result<PathBuf, NetError> {
    let bridge_ok = !o.bridge.is_empty()
        && o.bridge.len() <= 15
        && o.bridge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !bridge_ok {
        return Err(NetError::Invalid {
            field: "bridge".into(),
            value: o.bridge.clone(),
            reason: "an interface name: 1 to 15 letters, digits, '-' or '_'",
        });
    }
    let subnet_ok = o.subnet.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| (8..=30).contains(&l))
    });
    if !subnet_ok {
        return Err(NetError::Invalid {
            field: "subnet".into(),
            value: o.subnet.clone(),
            reason: "an IPv4 CIDR with a prefix of 8 to 30 bits",
        });
    }
    let list = json!({
        "cniVersion": VERSION,
        "name": o.network_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": o.bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": o.subnet }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": ipam_dir,
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
        ]
    });
    let path = conf_dir.join("10-moorlet.conflist");
    let bytes = serde_json::to_vec_pretty(&list).unwrap_or_default();
    write_atomic(&path, &bytes)?;
    Ok(path)
}
