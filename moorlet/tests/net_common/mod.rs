//! Shared by the net tests: a state dir, a bridge and a subnet of the test's own, and the
//! cleanup of everything they make (included with `mod net_common;`, not a test of its own).

#![allow(dead_code)] // each test file uses a different part

use moorlet::net::{NetOptions, Network, PodNamespaces, PodRef};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};

/// Tests that run CNI plugins take turns, across test processes too (another engineer's run of
/// the same suite): the portmap chains they share are removed at the end.
static SERIAL: Mutex<()> = Mutex::new(());
const LOCK_FILE: &str = "/tmp/moorlet-net-tests.lock";

pub struct Fixture {
    pub dir: PathBuf,
    pub bridge: String,
    /// "10.251.N": the test's /24.
    pub prefix: String,
    pub options: NetOptions,
    pub net: Option<Network>,
    pub pods: Vec<PodRef>,
    pub children: Vec<Child>,
    nat_before: String,
    tables_before: String,
    ip_forward: String,
    _serial: MutexGuard<'static, ()>,
    _flock: nix::fcntl::Flock<std::fs::File>,
}

pub fn sh(cmd: &str) -> (bool, String) {
    match Command::new("sh").arg("-c").arg(cmd).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Fixture {
    /// None (after saying why) when not root.
    pub fn new(n: u8) -> Option<Fixture> {
        if !is_root() {
            eprintln!("SKIP: the net tests need root (namespaces, bridges, iptables)");
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(LOCK_FILE)
            .expect("open the tests' lock file");
        let flock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock the tests' lock file");
        let pid = std::process::id();
        let dir = PathBuf::from(format!("/tmp/moorlet-net-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's state dir");
        let bridge = format!("mlt{}{n}", pid % 1_000_000);
        let prefix = format!("10.251.{n}");
        let options = NetOptions {
            network_name: format!("mlt-{pid}-{n}"),
            bridge: bridge.clone(),
            subnet: format!("{prefix}.0/24"),
            ..NetOptions::default()
        };
        let net = Network::with_options(&dir, &options).expect("Network::with_options");
        Some(Fixture {
            dir,
            bridge,
            prefix,
            options,
            net: Some(net),
            pods: Vec::new(),
            children: Vec::new(),
            nat_before: sh("iptables -t nat -S").1,
            tables_before: sh("nft list tables").1,
            ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default(),
            _serial: serial,
            _flock: flock,
        })
    }

    pub fn net(&self) -> &Network {
        self.net.as_ref().expect("network open")
    }

    pub fn pod(&mut self, name: &str) -> PodRef {
        let pod = PodRef {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
        };
        self.pods.push(pod.clone());
        pod
    }

    /// A pod with its namespaces, hostname = its name.
    pub fn pod_with_ns(&mut self, name: &str) -> (PodRef, PodNamespaces) {
        let pod = self.pod(name);
        let ns = self
            .net()
            .create_namespaces(&pod, name, false, false)
            .expect("create_namespaces");
        (pod, ns)
    }

    pub fn lease_dir(&self) -> PathBuf {
        self.dir.join("cni/ipam").join(&self.options.network_name)
    }

    /// The IPs host-local holds for this network.
    pub fn leases(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.lease_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Interfaces enslaved to the test bridge (the pods' veths).
    pub fn bridge_ports(&self) -> String {
        sh(&format!("ip -o link show master {}", self.bridge)).1
    }

    /// Runs a program in a pod's network namespace.
    pub fn in_netns(netns: &Path, cmd: &str) -> (bool, String) {
        sh(&format!("nsenter --net={} {cmd}", netns.display()))
    }

    /// GET /index.html from inside a network namespace (busybox nc: the static wget crashes
    /// resolving names).
    pub fn http_in(netns: &Path, ip: &str, port: u16) -> (bool, String) {
        let request = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n'";
        let cmd = format!("timeout 5 sh -c \"{request} | busybox nc {ip} {port}\"");
        sh(&format!("nsenter --net={} {cmd}", netns.display()))
    }

    /// A web server in the pod's network namespace, serving `body` as /index.html on `port`.
    pub fn serve(&mut self, netns: &Path, port: u16, body: &str) {
        let www = self.dir.join(format!("www-{port}-{}", self.children.len()));
        std::fs::create_dir_all(&www).expect("www dir");
        std::fs::write(www.join("index.html"), body).expect("index.html");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["busybox", "httpd", "-f", "-p", &port.to_string(), "-h"])
            .arg(&www)
            .spawn()
            .expect("start busybox httpd");
        self.children.push(child);
        for _ in 0..50 {
            if Fixture::http_in(netns, "127.0.0.1", port).1.contains("200 OK") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("httpd did not listen on {port}");
    }
}

/// portmap's chains shared by every pod (with their fixed rules), removed if this test made
/// them: the tests take turns, so no other pod of theirs uses them.
fn remove_shared_chains(nat_before: &str, tables_before: &str) {
    let all = sh("iptables -t nat -S").1;
    for chain in ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"] {
        if nat_before.contains(&format!("-N {chain}")) || !all.contains(&format!("-N {chain}")) {
            continue;
        }
        for rule in all
            .lines()
            .filter(|l| l.starts_with("-A") && l.ends_with(&format!("-j {chain}")))
        {
            let _ = sh(&format!("iptables -t nat {}", rule.replacen("-A", "-D", 1)));
        }
        let _ = sh(&format!("iptables -t nat -F {chain}; iptables -t nat -X {chain}"));
    }
    // iptables-nft makes the nat tables on first use: gone again if the test made them and
    // they hold no rule.
    for (family, save) in [("ip", "iptables-save -t nat"), ("ip6", "ip6tables-save -t nat")] {
        if !tables_before.contains(&format!("table {family} nat\n"))
            && !sh(save).1.lines().any(|l| l.starts_with("-A") || l.starts_with(":CNI"))
        {
            let _ = sh(&format!("nft delete table {family} nat"));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(net) = &self.net {
            for pod in &self.pods {
                let ns = PodNamespaces {
                    net: Some(self.dir.join("run/ns").join(&pod.uid).join("net")),
                    ..PodNamespaces::default()
                };
                let _ = net.detach(pod, &ns);
                let _ = net.remove_namespaces(pod);
            }
        }
        let _ = nix::mount::umount2(&self.dir.join("run/ns"), nix::mount::MntFlags::MNT_DETACH);
        let _ = sh(&format!("ip link del {}", self.bridge));
        remove_shared_chains(&self.nat_before, &self.tables_before);
        if !self.ip_forward.is_empty() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
