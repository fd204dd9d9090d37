//! The pod's generated /etc/hosts, /etc/hostname and /etc/resolv.conf.

use moorlet::net::{write_etc_files, NetError};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = PathBuf::from(format!("/tmp/moorlet-etc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP")
}

#[test]
fn hosts_has_localhost_the_pod_aliases_and_peers() {
    let dir = TempDir::new("hosts");
    let aliases = vec![(ip("10.1.2.3"), vec!["db".to_string(), "db.local".to_string()])];
    let peers = vec![("pod-b".to_string(), ip("10.87.0.7"))];
    let files = write_etc_files(&dir.0, "pod-a", Some(ip("10.87.0.5")), &aliases, &peers, false).expect("write");
    let hosts = std::fs::read_to_string(&files.hosts).expect("hosts");
    let lines: Vec<&str> = hosts.lines().collect();
    assert!(lines.contains(&"127.0.0.1\tlocalhost"), "{hosts}");
    assert!(lines.contains(&"10.87.0.5\tpod-a"), "{hosts}");
    assert!(lines.contains(&"10.1.2.3\tdb\tdb.local"), "{hosts}");
    assert!(lines.contains(&"10.87.0.7\tpod-b"), "{hosts}");
    assert_eq!(std::fs::read_to_string(&files.hostname).expect("hostname"), "pod-a\n");

    // A new peer: the same inode (containers bind-mount it), the new line in it.
    let inode = std::fs::metadata(&files.hosts).expect("stat").ino();
    let peers = vec![
        ("pod-b".to_string(), ip("10.87.0.7")),
        ("pod-c".to_string(), ip("10.87.0.8")),
    ];
    write_etc_files(&dir.0, "pod-a", Some(ip("10.87.0.5")), &aliases, &peers, false).expect("rewrite");
    assert_eq!(std::fs::metadata(&files.hosts).expect("stat").ino(), inode);
    let hosts = std::fs::read_to_string(&files.hosts).expect("hosts");
    assert!(hosts.lines().any(|l| l == "10.87.0.8\tpod-c"), "{hosts}");
    // Shorter content later: nothing of the old tail remains.
    write_etc_files(&dir.0, "pod-a", Some(ip("10.87.0.5")), &[], &[], false).expect("rewrite");
    let hosts = std::fs::read_to_string(&files.hosts).expect("hosts");
    assert!(!hosts.contains("pod-c") && !hosts.contains("db.local"), "{hosts}");
}

#[test]
fn resolv_conf_drops_loopback_resolvers_unless_host_network() {
    let dir = TempDir::new("resolv");
    let files = write_etc_files(&dir.0, "p", Some(ip("10.87.0.5")), &[], &[], false).expect("write");
    let resolv = std::fs::read_to_string(&files.resolv_conf).expect("resolv.conf");
    for line in resolv.lines().filter(|l| l.starts_with("nameserver")) {
        let addr = line.split_whitespace().nth(1).and_then(|a| a.parse::<IpAddr>().ok());
        assert!(
            addr.is_some_and(|a| !a.is_loopback()),
            "a loopback resolver in a pod: {line}"
        );
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let remote = host
        .lines()
        .filter(|l| l.starts_with("nameserver") && !l.contains(" 127.") && !l.contains("::1"));
    for line in remote {
        assert!(
            resolv.contains(line),
            "the host's resolver {line} is missing:\n{resolv}"
        );
    }
    let dir2 = TempDir::new("resolv-host");
    let files = write_etc_files(&dir2.0, "p", None, &[], &[], true).expect("write");
    assert_eq!(std::fs::read_to_string(&files.resolv_conf).expect("resolv.conf"), host);
    let hosts = std::fs::read_to_string(&files.hosts).expect("hosts");
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert!(
        hosts.contains(host_hosts.trim_end()),
        "hostNetwork pods get the node's hosts file"
    );
}

#[test]
fn names_that_would_add_hosts_lines_are_refused() {
    let dir = TempDir::new("hostile");
    let aliases = vec![(ip("10.1.2.3"), vec!["ok".to_string(), "evil\n1.2.3.4 bank".to_string()])];
    let err = write_etc_files(&dir.0, "p", None, &aliases, &[], false).expect_err("newline in an alias");
    assert!(
        matches!(&err, NetError::Invalid { field, .. } if field == "spec.hostAliases[0].hostnames[1]"),
        "{err}"
    );
    let err = write_etc_files(&dir.0, "p q", None, &[], &[], false).expect_err("space in the hostname");
    assert!(err.to_string().contains("hostname"), "{err}");
    assert!(!dir.0.join("hosts").exists(), "a file written despite the error");
}
