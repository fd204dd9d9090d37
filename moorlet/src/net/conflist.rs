//! The network configuration: the conflist moorlet finds or writes, and each plugin's stdin.

use super::{HostPort, NetError, NetOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const VERSION: &str = "1.0.0";

/// portmap's runtimeConfig entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PortMapping {
    pub(crate) host_port: u16,
    pub(crate) container_port: u16,
    pub(crate) protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub(crate) host_ip: Option<IpAddr>,
}

pub(crate) fn loopback_conf() -> Value {
    json!({"cniVersion": VERSION, "name": "cni-loopback", "type": "loopback"})
}

pub(crate) fn plugins(list: &Value) -> Vec<&Value> {
    list.get("plugins")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// One plugin's stdin: its object, with the list's name and version, the runtime config for the
/// capabilities it declares, and the previous result.
pub(crate) fn plugin_conf(list: &Value, plugin: &Value, ports: &[PortMapping], prev: Option<&Value>) -> Value {
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

pub(crate) fn port_mappings(ports: &[HostPort]) -> Result<Vec<PortMapping>, NetError> {
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

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| NetError::io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| NetError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| NetError::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NetError::io("rename", path, e))
}

/// libcni's choice: the first .conflist, .conf or .json file in name order.
pub(crate) fn first_config(dir: &Path) -> Result<Option<PathBuf>, NetError> {
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
pub(crate) fn parse_list(path: &Path, text: &str) -> Result<Value, NetError> {
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

pub(crate) fn write_default(conf_dir: &Path, ipam_dir: &Path, o: &NetOptions) -> Result<PathBuf, NetError> {
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
