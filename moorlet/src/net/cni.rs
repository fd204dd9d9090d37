//! CNI 1.0.0: plugins run as binaries with the CNI_* environment and the network config on stdin.

use super::conflist::{
    first_config, loopback_conf, parse_list, plugin_conf, plugins, port_mappings, write_atomic, write_default,
    PortMapping,
};
use super::{HostPort, NetError, NetOptions, PodRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const IFNAME: &str = "eth0";

#[derive(Debug)]
pub(crate) struct Cni {
    plugin_dir: PathBuf,
    pods_dir: PathBuf,
    lock: PathBuf,
    /// The conflist found at open, and the file it came from.
    list: Value,
    list_path: PathBuf,
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

    pub(crate) fn plugin_dir(&self) -> &Path {
        &self.plugin_dir
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
        // Anything short of a recorded result with an address is undone: nothing is left behind.
        let done = self.run_add(pod, netns).and_then(|result| {
            let ip = result_ip(&result).ok_or_else(|| NetError::Config {
                path: self.list_path.clone(),
                reason: "the plugins' result has no IP address".into(),
            })?;
            let mut record = read_record(&record_path)?.ok_or_else(|| NetError::Config {
                path: record_path.clone(),
                reason: "the pod's record vanished during ADD".into(),
            })?;
            record.result = Some(result);
            write_record(&record_path, &record)?;
            Ok(ip)
        });
        if done.is_err() {
            let _ = self.del(pod);
        }
        done
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
