//! Private networks on the real host: two "nodes", each a network namespace the test makes,
//! joined by a veth pair (the underlay); each node's networks in namespaces of their own with
//! WireGuard through wireguard-go. Traffic stays inside the namespaces this test made.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use zos_testkit::netlab::{links, pings, process_with_arg, Lab, INTERNET_HOST};

use zos_host::{
    network::{wireguard, Attachment, Cidr, NetworkSpec, Networks, PeerConfig},
    WorkloadId,
};

use crate::support::wait_until;

const WIREGUARD_GO: &str = "/usr/bin/wireguard-go";

/// A lab with a directory for its nodes' namespaces, unmounted on drop.
struct NodeLab {
    lab: Lab,
    dir: tempfile::TempDir,
}

impl NodeLab {
    fn new() -> NodeLab {
        assert!(
            nix::unistd::geteuid().is_root(),
            "network tests need root (namespaces, links)"
        );
        assert!(
            Path::new(WIREGUARD_GO).is_file(),
            "network tests need {WIREGUARD_GO} (Debian: wireguard-go)"
        );
        NodeLab {
            lab: Lab::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The node on host `host`, its networks' namespaces under the test's directory.
    fn node(&self, host: &str, key: u8) -> Networks {
        Networks::new(
            self.dir.path().join(host),
            Some(self.lab.host_ns(host)),
            WIREGUARD_GO.into(),
            self.key(key),
        )
    }

    /// Node key `n` of this lab: interface names derive from it and are host-wide, so labs
    /// running at once have keys of their own.
    fn key(&self, n: u8) -> [u8; 32] {
        let mut key = [n; 32];
        key[..4].copy_from_slice(&std::process::id().to_le_bytes());
        key[4..8].copy_from_slice(&self.lab.number().to_le_bytes());
        key
    }
}

impl Drop for NodeLab {
    fn drop(&mut self) {
        // The nodes' own namespaces, in case the test failed before removing them.
        for host in ["a", "b"] {
            for sub in ["networks", "containers"] {
                if let Ok(entries) = std::fs::read_dir(self.dir.path().join(host).join(sub)) {
                    for e in entries.flatten() {
                        let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
                    }
                }
            }
        }
    }
}

fn cidr(s: &str) -> Cidr {
    s.parse().expect("cidr")
}

fn peer(lab: &NodeLab, key: u8, endpoint: &str, subnet: &str) -> PeerConfig {
    PeerConfig {
        public_key: wireguard::public_key(&lab.key(key)),
        endpoint: Some(endpoint.parse().expect("endpoint")),
        allowed_ips: vec![cidr(subnet)],
        keepalive: 0,
    }
}

fn spec(workload: &WorkloadId, subnet: &str, port: u16, peers: Vec<PeerConfig>) -> NetworkSpec {
    NetworkSpec {
        workload: workload.clone(),
        range: cidr("10.77.0.0/16"),
        subnet: cidr(subnet),
        listen_port: port,
        peers,
        egress: false,
    }
}

fn attachment(network: &WorkloadId, container: &WorkloadId, ip: &str, subnet: &str) -> Attachment {
    Attachment {
        network: network.clone(),
        container: container.clone(),
        ip: ip.parse().expect("ip"),
        subnet: cidr(subnet),
    }
}

#[test]
fn containers_on_two_nodes_talk_over_wireguard_and_nothing_else_crosses_or_gets_in() {
    let lab = NodeLab::new();
    let (a, b) = (lab.node("a", 1), lab.node("b", 2));
    let id = |contract, name: &str| WorkloadId::new(contract, name).unwrap();
    let (net_a, net_b, other) = (id(1, "net"), id(2, "net"), id(3, "net"));
    let (ctr_a, ctr_b, ctr_other) = (id(1, "web"), id(2, "db"), id(3, "spy"));
    a.ensure(&spec(
        &net_a,
        "10.77.1.0/24",
        51820,
        vec![peer(&lab, 2, "10.250.0.2:51820", "10.77.2.0/24")],
    ))
    .expect("network on a");
    b.ensure(&spec(
        &net_b,
        "10.77.2.0/24",
        51820,
        vec![peer(&lab, 1, "10.250.0.1:51820", "10.77.1.0/24")],
    ))
    .expect("network on b");
    let ca = a
        .attach(&attachment(&net_a, &ctr_a, "10.77.1.10", "10.77.1.0/24"))
        .expect("attach on a");
    let cb = b
        .attach(&attachment(&net_b, &ctr_b, "10.77.2.10", "10.77.2.0/24"))
        .expect("attach on b");

    // Another owner's network on b, with the same range and b's same subnet, and no peers.
    b.ensure(&spec(&other, "10.77.2.0/24", 51821, vec![]))
        .expect("other network on b");
    let intruder = b
        .attach(&attachment(
            &other,
            &ctr_other,
            "10.77.2.20",
            "10.77.2.0/24",
        ))
        .expect("attach the other owner's container");

    let capture = lab.lab.capture(&lab.dir.path().join("underlay.pcap"));
    assert!(
        pings(&ca, "10.77.2.10"),
        "a's container reaches b's by ICMP"
    );
    // TCP: b listens, a sends a marker through the tunnel.
    let marker = "zos-marker-7c1d";
    let listener = Command::new("nsenter")
        .arg(format!("--net={}", cb.display()))
        .args(["/bin/busybox", "nc", "-l", "-p", "7000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("nc -l");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("nsenter")
        .arg(format!("--net={}", ca.display()))
        .args(["/bin/busybox", "sh", "-c"])
        .arg(format!(
            "echo {marker} | /bin/busybox nc -w 2 10.77.2.10 7000"
        ))
        .status()
        .expect("nc");
    assert!(sent.success(), "a's container connects to b's by TCP");
    let received = listener.wait_with_output().expect("nc output");
    assert_eq!(String::from_utf8_lossy(&received.stdout).trim(), marker);

    // Nothing reaches the other owner's container, from either side.
    assert!(
        !pings(&ca, "10.77.2.20"),
        "a reaches another owner's container"
    );
    assert!(!pings(&intruder, "10.77.1.10"), "another owner reaches a");
    assert!(
        !pings(&intruder, "10.77.2.10"),
        "another owner reaches b's container on its own node"
    );
    // Nor does the host: the network has no link to it.
    assert!(
        !pings(&lab.lab.host_ns("b"), "10.77.2.10"),
        "host b reaches its container"
    );

    // The underlay saw WireGuard's UDP only, and never the marker.
    let (raw, lines) = capture.stop();
    assert!(
        !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    assert!(lines.len() > 4, "the capture saw the tunnel: {lines:?}");
    for line in &lines {
        assert!(
            line.contains(".51820: UDP") || line.contains("ARP"),
            "something other than WireGuard crossed the underlay: {line}"
        );
    }

    // Converging again (a restarted agent) changes nothing: same session, same interface.
    let before = a.device(&net_a).expect("device");
    let handshake = before.peers.values().next().expect("peer").last_handshake;
    assert!(handshake > 0, "a and b shook hands");
    let a_again = lab.node("a", 1);
    a_again
        .ensure(&spec(
            &net_a,
            "10.77.1.0/24",
            51820,
            vec![peer(&lab, 2, "10.250.0.2:51820", "10.77.2.0/24")],
        ))
        .expect("converge again");
    a_again
        .attach(&attachment(&net_a, &ctr_a, "10.77.1.10", "10.77.1.0/24"))
        .expect("attach again");
    let after = a.device(&net_a).expect("device");
    assert_eq!(
        after.peers.values().next().map(|p| p.last_handshake),
        Some(handshake)
    );
    assert!(
        pings(&ca, "10.77.2.10"),
        "traffic flows after converging again"
    );

    // A member leaving is a peer removed in place.
    a.ensure(&spec(&net_a, "10.77.1.0/24", 51820, vec![]))
        .expect("peer removed");
    assert!(a.device(&net_a).expect("device").peers.is_empty());
    assert!(!pings(&ca, "10.77.2.10"), "a removed peer is still reached");

    // Removal leaves no namespace, link, process or socket.
    for (node, ids, keys) in [
        (&a, vec![&net_a], vec![&ctr_a]),
        (&b, vec![&net_b, &other], vec![&ctr_b, &ctr_other]),
    ] {
        for key in keys {
            node.detach(key).expect("detach");
        }
        for id in ids {
            node.remove(id).expect("remove");
            let interface = node.interface(id);
            assert!(
                !wireguard::socket_path(&interface).exists(),
                "{interface}'s socket is left"
            );
            wait_until("wireguard-go to end", Duration::from_secs(5), || {
                !process_with_arg(&interface)
            });
        }
        assert_eq!(node.list().expect("list"), vec![]);
        assert_eq!(node.attached().expect("attached"), vec![]);
    }
    for host in ["a", "b"] {
        assert_eq!(
            links(&lab.lab.host_ns(host), "zw"),
            Vec::<String>::new(),
            "WireGuard links left on {host}"
        );
    }
}

#[test]
fn a_bad_spec_is_refused_before_anything_is_made() {
    let lab = NodeLab::new();
    let a = lab.node("a", 1);
    let bad = [
        spec(
            &WorkloadId {
                contract: 1,
                name: "../../etc".into(),
            },
            "10.77.1.0/24",
            51830,
            vec![],
        ),
        spec(
            &WorkloadId::new(1, "net").unwrap(),
            "10.78.1.0/24",
            51830,
            vec![],
        ),
    ];
    for s in bad {
        assert!(a.ensure(&s).is_err(), "{s:?} was accepted");
    }
    assert!(
        a.attach(&attachment(
            &WorkloadId::new(2, "net").unwrap(),
            &WorkloadId::new(2, "web").unwrap(),
            "10.77.1.10",
            "10.77.1.0/24"
        ))
        .is_err(),
        "attached to a network that does not exist"
    );
    assert!(
        a.attach(&attachment(
            &WorkloadId::new(2, "net").unwrap(),
            &WorkloadId::new(2, "web").unwrap(),
            "10.77.9.10",
            "10.77.1.0/24"
        ))
        .is_err(),
        "attached outside the subnet"
    );
    assert_eq!(a.list().expect("list"), vec![]);
    assert_eq!(a.attached().expect("attached"), vec![]);
}

#[test]
fn a_network_whose_wireguard_go_died_comes_back_and_a_new_subnet_replaces_the_old() {
    let lab = NodeLab::new();
    let (a, b) = (lab.node("a", 1), lab.node("b", 2));
    let id = |contract, name: &str| WorkloadId::new(contract, name).unwrap();
    let (net_a, net_b) = (id(1, "net"), id(2, "net"));
    let spec_a = |peer_subnet: &str| {
        spec(
            &net_a,
            "10.77.1.0/24",
            51820,
            vec![peer(&lab, 2, "10.250.0.2:51820", peer_subnet)],
        )
    };
    a.ensure(&spec_a("10.77.2.0/24")).expect("network on a");
    let b_spec = |subnet: &str| {
        spec(
            &net_b,
            subnet,
            51820,
            vec![peer(&lab, 1, "10.250.0.1:51820", "10.77.1.0/24")],
        )
    };
    b.ensure(&b_spec("10.77.2.0/24")).expect("network on b");
    let ca = a
        .attach(&attachment(
            &net_a,
            &id(1, "web"),
            "10.77.1.10",
            "10.77.1.0/24",
        ))
        .expect("attach on a");
    b.attach(&attachment(
        &net_b,
        &id(2, "db"),
        "10.77.2.10",
        "10.77.2.0/24",
    ))
    .expect("attach on b");
    assert!(pings(&ca, "10.77.2.10"), "a reaches b");

    // wireguard-go killed: the link goes with it, and the next pass brings both back.
    let interface = a.interface(&net_a);
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &format!("wireguard-go {interface}$")])
        .status()
        .expect("pkill");
    assert!(killed.success(), "no wireguard-go for {interface}");
    wait_until("the interface to go", Duration::from_secs(5), || {
        links(&a.namespace(&net_a), "zw").is_empty()
    });
    assert!(!pings(&ca, "10.77.2.10"), "traffic without wireguard-go");
    a.ensure(&spec_a("10.77.2.0/24"))
        .expect("converge after the crash");
    assert!(pings(&ca, "10.77.2.10"), "a reaches b again");

    // b's member moves to another subnet: its bridge keeps only the new gateway, and a follows.
    b.ensure(&b_spec("10.77.3.0/24")).expect("new subnet on b");
    b.attach(&attachment(
        &net_b,
        &id(2, "db"),
        "10.77.3.10",
        "10.77.3.0/24",
    ))
    .expect("attach again on b");
    a.ensure(&spec_a("10.77.3.0/24")).expect("a follows");
    assert!(pings(&ca, "10.77.3.10"), "a reaches b's new address");
    let bridge = Command::new("nsenter")
        .arg(format!("--net={}", b.namespace(&net_b).display()))
        .args(["ip", "-o", "-4", "addr", "show", "br0"])
        .output()
        .expect("ip addr");
    let bridge = String::from_utf8_lossy(&bridge.stdout).to_string();
    assert!(
        bridge.contains("10.77.3.1/24") && !bridge.contains("10.77.2.1"),
        "{bridge}"
    );

    for (node, net, ctr) in [(&a, &net_a, id(1, "web")), (&b, &net_b, id(2, "db"))] {
        node.detach(&ctr).expect("detach");
        node.remove(net).expect("remove");
    }
}

#[test]
fn egress_reaches_the_internet_only_when_asked_and_never_the_host_or_private_addresses() {
    let mut lab = NodeLab::new();
    let inet = lab.lab.add_internet("a");
    let a = lab.node("a", 1);
    let id = |contract, name: &str| WorkloadId::new(contract, name).unwrap();
    let net = id(1, "net");
    let mut s = spec(&net, "10.77.1.0/24", 51820, vec![]);
    a.ensure(&s).expect("network without egress");
    let ctr = a
        .attach(&attachment(
            &net,
            &id(1, "web"),
            "10.77.1.10",
            "10.77.1.0/24",
        ))
        .expect("attach");
    assert!(!pings(&ctr, INTERNET_HOST), "the internet without egress");

    s.egress = true;
    a.ensure(&s).expect("egress on");
    a.ensure(&s).expect("egress on, again");
    assert!(pings(&ctr, INTERNET_HOST), "the internet with egress");

    // A member node cannot use this node as its exit: b's farmer sends the internet address into
    // its tunnel to a (as a dishonest farmer may: b's side is b's), and a drops it.
    let b = lab.node("b", 2);
    let net_b = id(2, "net");
    s.peers = vec![peer(&lab, 2, "10.250.0.2:51820", "10.77.2.0/24")];
    a.ensure(&s).expect("a with b as its peer");
    b.ensure(&spec(
        &net_b,
        "10.77.2.0/24",
        51820,
        vec![peer(&lab, 1, "10.250.0.1:51820", "10.77.1.0/24")],
    ))
    .expect("network on b");
    let on_b = b
        .attach(&attachment(
            &net_b,
            &id(2, "db"),
            "10.77.2.10",
            "10.77.2.0/24",
        ))
        .expect("attach on b");
    assert!(pings(&on_b, "10.77.1.10"), "b reaches a through the tunnel");
    let mut widened = peer(&lab, 1, "10.250.0.1:51820", "10.77.1.0/24");
    widened
        .allowed_ips
        .push(format!("{INTERNET_HOST}/32").parse().unwrap());
    wireguard::configure(&b.interface(&net_b), &lab.key(2), 51820, &[widened]).expect("widen");
    let routed = Command::new("nsenter")
        .arg(format!("--net={}", b.namespace(&net_b).display()))
        .args([
            "ip",
            "route",
            "add",
            &format!("{INTERNET_HOST}/32"),
            "dev",
            &b.interface(&net_b),
        ])
        .status()
        .expect("ip route");
    assert!(routed.success());
    assert!(
        !pings(&on_b, INTERNET_HOST),
        "a member node exits through a"
    );
    b.detach(&id(2, "db")).expect("detach on b");
    b.remove(&net_b).expect("remove on b");
    s.peers = vec![];
    // Not the host itself, nor a private address beyond it (b on the underlay), nor the link's
    // own host end; and the internet cannot reach in.
    for to in ["10.250.0.1", "10.250.0.2", "203.0.113.1"] {
        assert!(
            !pings(&ctr, to),
            "the network reaches {to} through its uplink"
        );
    }
    assert!(
        !pings(&inet, "10.77.1.10"),
        "the internet reaches the container"
    );

    // Off again: the uplink, its route and the host's rules go.
    s.egress = false;
    a.ensure(&s).expect("egress off");
    assert!(
        !pings(&ctr, INTERNET_HOST),
        "the internet after egress went off"
    );
    assert_eq!(links(&lab.lab.host_ns("a"), "zu"), Vec::<String>::new());
    let tables = Command::new("nsenter")
        .arg(format!("--net={}", lab.lab.host_ns("a").display()))
        .args(["nft", "list", "tables"])
        .output()
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("zos_"),
        "{}",
        String::from_utf8_lossy(&tables.stdout)
    );
    s.egress = true;
    a.ensure(&s).expect("egress on");
    a.detach(&id(1, "web")).expect("detach");
    a.remove(&net).expect("remove");
    let tables = Command::new("nsenter")
        .arg(format!("--net={}", lab.lab.host_ns("a").display()))
        .args(["nft", "list", "tables"])
        .output()
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("zos_"),
        "the host's rules outlive the network"
    );
    assert_eq!(links(&lab.lab.host_ns("a"), "zu"), Vec::<String>::new());
}
