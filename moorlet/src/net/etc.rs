//! The pod's /etc/hosts, /etc/hostname and /etc/resolv.conf, generated on the host and bind-mounted
//! into each container by the spec.

use super::NetError;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where write_etc_files put the pod's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

const LOCALHOST: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
fe00::0\tip6-mcastprefix\n\
fe00::1\tip6-allnodes\n\
fe00::2\tip6-allrouters\n";

/// Writes `dir`/hosts, `dir`/hostname and `dir`/resolv.conf. Called again (new peers), it updates
/// the files in place: containers hold a bind mount of the inode, so a rename would hide the update.
pub fn write_etc_files(
    dir: &Path,
    hostname: &str,
    pod_ip: Option<IpAddr>,
    host_aliases: &[(IpAddr, Vec<String>)],
    peers: &[(String, IpAddr)],
    host_network: bool,
) -> Result<EtcFiles, NetError> {
    check_name("spec.hostname", hostname)?;
    let mut hosts = String::from("# Kubernetes-managed hosts file (moorlet).\n");
    if host_network {
        let host = read("/etc/hosts")?;
        hosts.push_str(&host);
        if !host.ends_with('\n') && !host.is_empty() {
            hosts.push('\n');
        }
    } else {
        hosts.push_str(LOCALHOST);
        if let Some(ip) = pod_ip {
            let _ = writeln!(hosts, "{ip}\t{hostname}");
        }
    }
    if !host_aliases.is_empty() {
        hosts.push_str("\n# Entries added by HostAliases.\n");
        for (i, (ip, names)) in host_aliases.iter().enumerate() {
            for (j, name) in names.iter().enumerate() {
                check_name(&format!("spec.hostAliases[{i}].hostnames[{j}]"), name)?;
            }
            let _ = writeln!(hosts, "{ip}\t{}", names.join("\t"));
        }
    }
    if !peers.is_empty() {
        hosts.push_str("\n# Other pods on this node.\n");
        for (i, (name, ip)) in peers.iter().enumerate() {
            check_name(&format!("peers[{i}]"), name)?;
            let _ = writeln!(hosts, "{ip}\t{name}");
        }
    }
    let resolv = resolv_conf(host_network)?;
    std::fs::create_dir_all(dir).map_err(|e| NetError::io("create directory", dir, e))?;
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        hostname: dir.join("hostname"),
        resolv_conf: dir.join("resolv.conf"),
    };
    publish(&files.hosts, hosts.as_bytes())?;
    publish(&files.hostname, format!("{hostname}\n").as_bytes())?;
    publish(&files.resolv_conf, resolv.as_bytes())?;
    Ok(files)
}

/// A name that goes on a hosts line: anything with white space or a newline would add entries.
fn check_name(field: &str, name: &str) -> Result<(), NetError> {
    let bad = |reason| NetError::Invalid {
        field: field.to_string(),
        value: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(bad("only letters, digits, '-', '.' and '_' are allowed"));
    }
    Ok(())
}

fn read(path: &str) -> Result<String, NetError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(NetError::io("read", path, e)),
    }
}

/// The host's resolv.conf; a pod in its own network namespace cannot reach the host's loopback
/// resolvers, so those lines go (systemd-resolved's stub gives way to its upstream list).
fn resolv_conf(host_network: bool) -> Result<String, NetError> {
    let host = read("/etc/resolv.conf")?;
    if host_network {
        return Ok(host);
    }
    let is_loopback = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback())
    };
    let has_remote = host
        .lines()
        .any(|l| l.trim_start().starts_with("nameserver") && !is_loopback(l));
    let source = if !has_remote && Path::new("/run/systemd/resolve/resolv.conf").exists() {
        read("/run/systemd/resolve/resolv.conf")?
    } else {
        host
    };
    let mut out = String::new();
    for line in source.lines().filter(|l| !is_loopback(l)) {
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// A new file appears whole (temporary file, fsync, rename). An existing file is rewritten in
/// place, new bytes first and truncation last, so a reader never finds it empty.
fn publish(path: &Path, data: &[u8]) -> Result<(), NetError> {
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => {
            f.write_all_at(data, 0).map_err(|e| NetError::io("write", path, e))?;
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            f.set_len(len).map_err(|e| NetError::io("truncate", path, e))?;
            f.sync_all().map_err(|e| NetError::io("fsync", path, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = path.with_extension("moorlet-tmp");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(|e| NetError::io("create", &tmp, e))?;
            f.write_all(data).map_err(|e| NetError::io("write", &tmp, e))?;
            f.sync_all().map_err(|e| NetError::io("fsync", &tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| NetError::io("rename", path, e))
        }
        Err(e) => Err(NetError::io("open", path, e)),
    }
}
