//! Pods' namespaces and CNI networking, on a bridge and subnet of each test's own (root only).

mod net_common;

use moorlet::net::{HostPort, NetError, Network, PodNamespaces};
use net_common::{sh, Fixture};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

fn ns_inode(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat namespace").ino()
}

#[test]
fn two_pods_on_the_bridge_reach_each_other() {
    let Some(mut fx) = Fixture::new(1) else { return };
    let (a, ans) = fx.pod_with_ns("pod-a");
    let (b, bns) = fx.pod_with_ns("pod-b");
    let a_ip = fx.net().attach(&a, &ans, &[]).expect("attach a").expect("a has an IP");
    let b_ip = fx.net().attach(&b, &bns, &[]).expect("attach b").expect("b has an IP");
    for ip in [a_ip, b_ip] {
        assert!(
            ip.to_string().starts_with(&format!("{}.", fx.prefix)),
            "{ip} not in the test's subnet"
        );
    }
    assert_ne!(a_ip, b_ip);
    let (anet, bnet) = (ans.net.clone().expect("netns a"), bns.net.clone().expect("netns b"));
    let (ok, out) = Fixture::in_netns(&anet, &format!("busybox ping -c1 -W2 {b_ip}"));
    assert!(ok, "a cannot ping b: {out}");
    let (ok, out) = Fixture::in_netns(&anet, "busybox ping -c1 -W2 127.0.0.1");
    assert!(ok, "loopback is not up in the pod: {out}");
    fx.serve(&bnet, 8080, "hello from b");
    let (ok, out) = Fixture::http_in(&anet, &b_ip.to_string(), 8080);
    assert!(ok && out.contains("hello from b"), "a cannot reach b over TCP: {out}");

    // By name, through the hosts file write_etc_files makes (bind-mounted in a private mount
    // namespace, as a container would have it).
    let etc = fx.dir.join("etc-a");
    let peers = vec![("pod-b".to_string(), b_ip)];
    let files = moorlet::net::write_etc_files(&etc, "pod-a", Some(a_ip), &[], &peers, false).expect("etc files");
    let cmd = format!(
        "unshare -m --propagation private sh -c 'mount --bind {} /etc/hosts && nsenter --net={} busybox ping -c1 -W2 pod-b'",
        files.hosts.display(),
        anet.display()
    );
    let (ok, out) = sh(&cmd);
    assert!(ok && out.contains(&b_ip.to_string()), "a cannot reach b by name: {out}");

    // Its own uts namespace, with the hostname; its own ipc namespace.
    let uts = ans.uts.clone().expect("uts ns");
    let (ok, out) = sh(&format!("nsenter --uts={} busybox hostname", uts.display()));
    assert!(ok && out.trim() == "pod-a", "hostname in the uts namespace: {out}");
    assert_ne!(ns_inode(&uts), ns_inode(Path::new("/proc/self/ns/uts")));
    let ipc = ans.ipc.clone().expect("ipc ns");
    assert_ne!(ns_inode(&ipc), ns_inode(Path::new("/proc/self/ns/ipc")));
    assert_ne!(ns_inode(&anet), ns_inode(&bnet));
}

#[test]
fn host_network_and_ipc_use_the_hosts_namespaces() {
    let Some(mut fx) = Fixture::new(5) else { return };
    let pod = fx.pod("hostnet");
    let ns = fx
        .net()
        .create_namespaces(&pod, "hostnet", true, true)
        .expect("create_namespaces");
    assert_eq!(ns, PodNamespaces::default());
    assert_eq!(fx.net().attach(&pod, &ns, &[]).expect("attach"), None);
    let pod2 = fx.pod("hostipc");
    let ns2 = fx
        .net()
        .create_namespaces(&pod2, "hostipc", false, true)
        .expect("create_namespaces");
    assert!(ns2.ipc.is_none() && ns2.net.is_some() && ns2.uts.is_some());
}

#[test]
fn a_taken_host_port_fails_and_leaves_nothing() {
    let Some(mut fx) = Fixture::new(2) else { return };
    let port = HostPort {
        host_port: 40002,
        container_port: 80,
        protocol: "TCP".into(),
        host_ip: None,
    };
    let (a, ans) = fx.pod_with_ns("holder");
    fx.net()
        .attach(&a, &ans, std::slice::from_ref(&port))
        .expect("attach the holder");
    let (b, bns) = fx.pod_with_ns("second");
    let err = fx
        .net()
        .attach(&b, &bns, std::slice::from_ref(&port))
        .expect_err("the port is taken");
    match &err {
        NetError::HostPortInUse {
            port: 40002,
            protocol,
            pod,
        } => {
            assert_eq!(protocol, "TCP");
            assert_eq!(pod, "default/holder");
        }
        other => panic!("expected HostPortInUse, got {other:?}"),
    }
    assert!(err.to_string().contains("default/holder"), "{err}");
    assert!(
        !fx.dir.join(format!("cni/pods/{}.json", b.uid)).exists(),
        "a record of the refused pod"
    );
    assert_eq!(fx.leases().len(), 1, "leases: {:?}", fx.leases());
    assert_eq!(fx.bridge_ports().lines().count(), 1, "veths: {}", fx.bridge_ports());
    let (_, links) = Fixture::in_netns(bns.net.as_deref().expect("netns"), "ip -o link");
    assert_eq!(links.lines().count(), 1, "the refused pod got interfaces: {links}");
    assert!(!sh("iptables-save").1.contains(&b.uid), "rules for the refused pod");
    // The same port number on the other protocol is free.
    let udp = HostPort {
        protocol: "UDP".into(),
        ..port
    };
    fx.net().attach(&b, &bns, &[udp]).expect("the UDP port is free");
}

fn http_get(addr: IpAddr, port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn a_host_port_answers_on_the_hosts_addresses() {
    let Some(mut fx) = Fixture::new(3) else { return };
    let (a, ans) = fx.pod_with_ns("web");
    let port = HostPort {
        host_port: 40003,
        container_port: 8080,
        protocol: "TCP".into(),
        host_ip: None,
    };
    fx.net().attach(&a, &ans, &[port]).expect("attach");
    fx.serve(ans.net.as_deref().expect("netns"), 8080, "published");
    let gateway: IpAddr = format!("{}.1", fx.prefix).parse().expect("gateway");
    let body = http_get(gateway, 40003).expect("hostPort on the bridge's address");
    assert!(body.contains("published"), "{body}");
    // portmap sets route_localnet on the bridge and masquerades 127/8, so loopback works too.
    let body = http_get("127.0.0.1".parse().expect("lo"), 40003).expect("hostPort on 127.0.0.1");
    assert!(body.contains("published"), "{body}");
}

#[test]
fn detach_after_a_restart_leaves_no_veth_netns_lease_or_rule() {
    let Some(mut fx) = Fixture::new(4) else { return };
    let (a, ans) = fx.pod_with_ns("gone");
    let port = HostPort {
        host_port: 40004,
        container_port: 80,
        protocol: "TCP".into(),
        host_ip: None,
    };
    let ip = fx.net().attach(&a, &ans, &[port]).expect("attach").expect("ip");
    let ip_s = ip.to_string();
    // What must go is there first.
    assert!(sh("iptables-save").1.contains(&ip_s), "no rule mentions the pod");
    assert_eq!(fx.leases(), vec![ip_s.clone()]);
    assert_eq!(fx.bridge_ports().lines().count(), 1);

    // An agent restart: a new Network on the same state dir, with nothing in memory.
    fx.net = None;
    let net = Network::with_options(&fx.dir, &fx.options).expect("reopen");
    net.detach(&a, &ans).expect("detach");
    net.detach(&a, &ans).expect("a second detach is a no-op");
    net.remove_namespaces(&a).expect("remove_namespaces");
    net.remove_namespaces(&a).expect("a second remove is a no-op");
    fx.net = Some(net);

    assert_eq!(fx.bridge_ports().trim(), "", "a veth is left");
    assert!(fx.leases().is_empty(), "leases left: {:?}", fx.leases());
    let netns = ans.net.clone().expect("netns path");
    assert!(!netns.exists(), "the netns file is left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&a.uid), "a namespace mount is left");
    let rules = sh("iptables-save").1;
    assert!(
        !rules.contains(&ip_s) && !rules.contains(&a.uid),
        "rules left:\n{rules}"
    );
    let (_, nft) = sh("nft list ruleset");
    assert!(!nft.contains(&ip_s), "nft rules left:\n{nft}");
    assert!(!fx.dir.join(format!("cni/pods/{}.json", a.uid)).exists());
}

#[test]
fn hostile_uids_and_hostnames_are_refused() {
    let Some(mut fx) = Fixture::new(6) else { return };
    let mut pod = fx.pod("bad");
    pod.uid = "../../etc".into();
    let err = fx
        .net()
        .create_namespaces(&pod, "bad", false, false)
        .expect_err("uid with ..");
    assert!(err.to_string().contains("metadata.uid"), "{err}");
    let pod = fx.pod("bad2");
    let err = fx
        .net()
        .create_namespaces(&pod, "a b", false, false)
        .expect_err("hostname with a space");
    assert!(err.to_string().contains("spec.hostname"), "{err}");
    assert!(!fx.dir.join("run/ns").join(&pod.uid).exists());
}

#[test]
fn a_failing_plugin_rolls_back_what_the_others_made() {
    let Some(mut fx) = Fixture::new(7) else { return };
    let broken = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": fx.options.network_name,
        "plugins": [
            { "type": "bridge", "bridge": fx.bridge, "isGateway": true, "ipMasq": true,
              "ipam": { "type": "host-local", "ranges": [[{ "subnet": format!("{}.0/24", fx.prefix) }]],
                        "dataDir": fx.dir.join("cni/ipam") } },
            { "type": "tuning", "sysctl": { "net.ipv4.no_such_sysctl": "1" } }
        ]
    });
    std::fs::write(fx.dir.join("cni/net.d/00-broken.conflist"), broken.to_string()).expect("write conflist");
    fx.net = Some(Network::with_options(&fx.dir, &fx.options).expect("reopen"));
    let (a, ans) = fx.pod_with_ns("rollback");
    let err = fx.net().attach(&a, &ans, &[]).expect_err("tuning fails");
    assert!(
        matches!(&err, NetError::Plugin { plugin, .. } if plugin == "tuning"),
        "{err:?}"
    );
    assert_eq!(fx.bridge_ports().trim(), "", "the bridge plugin's veth is left");
    assert!(fx.leases().is_empty(), "leases left: {:?}", fx.leases());
    assert!(!sh("iptables-save").1.contains(&a.uid), "masquerade rules left");
    assert!(!fx.dir.join(format!("cni/pods/{}.json", a.uid)).exists());
}

#[test]
fn removing_the_namespaces_first_still_removes_the_rules() {
    let Some(mut fx) = Fixture::new(8) else { return };
    let (a, ans) = fx.pod_with_ns("early");
    let ip = fx.net().attach(&a, &ans, &[]).expect("attach").expect("ip").to_string();
    assert!(sh("iptables-save").1.contains(&ip), "no masquerade rule for the pod");
    fx.net().remove_namespaces(&a).expect("remove_namespaces");
    fx.net().detach(&a, &ans).expect("detach after remove");
    let rules = sh("iptables-save").1;
    assert!(!rules.contains(&ip) && !rules.contains(&a.uid), "rules left:\n{rules}");
    assert!(fx.leases().is_empty(), "leases left: {:?}", fx.leases());
    assert_eq!(fx.bridge_ports().trim(), "", "a veth is left");
}

#[test]
fn two_pods_racing_for_a_host_port_get_it_once() {
    let Some(mut fx) = Fixture::new(9) else { return };
    let port = HostPort {
        host_port: 40009,
        container_port: 80,
        protocol: "TCP".into(),
        host_ip: None,
    };
    let (a, ans) = fx.pod_with_ns("racer-a");
    let (b, bns) = fx.pod_with_ns("racer-b");
    // Two Networks on one state dir, as two monitor processes have: the record lock is a file lock.
    let other = Network::with_options(&fx.dir, &fx.options).expect("second Network");
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| fx.net().attach(&a, &ans, std::slice::from_ref(&port)));
        let tb = s.spawn(|| other.attach(&b, &bns, std::slice::from_ref(&port)));
        (ta.join().expect("thread a"), tb.join().expect("thread b"))
    });
    let won = [ra.is_ok(), rb.is_ok()];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "a: {ra:?}, b: {rb:?}");
    let lost = if won[0] { rb } else { ra };
    assert!(
        matches!(lost, Err(NetError::HostPortInUse { port: 40009, .. })),
        "{lost:?}"
    );
    assert_eq!(fx.leases().len(), 1, "leases: {:?}", fx.leases());
}
