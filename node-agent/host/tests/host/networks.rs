//! Private networks on the real host: two "nodes", each a network namespace the test makes,
//! joined by a veth pair (the underlay); each node's networks in namespaces of their own with
//! WireGuard through wireguard-go. Traffic stays inside the namespaces this test made.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use zos_host::network::{wireguard, Attachment, Cidr, NetworkSpec, Networks, PeerConfig};

use crate::support::wait_until;

const WIREGUARD_GO: &str = "/usr/bin/wireguard-go";

/// The test's hosts and underlay: namespaces under `/run/netns`, removed on drop (also when the
/// test fails).
struct Lab {
    tag: String,
    number: u32,
    names: Vec<String>,
    dir: tempfile::TempDir,
}

impl Lab {
    /// Hosts `a` and `b`, `10.250.0.1` and `10.250.0.2` on the underlay between them.
    fn new() -> Lab {
        assert!(
            nix::unistd::geteuid().is_root(),
            "network tests need root (namespaces, links)"
        );
        assert!(
            Path::new(WIREGUARD_GO).is_file(),
            "network tests need {WIREGUARD_GO} (Debian: wireguard-go)"
        );
        static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = LABS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("zt{}{n}", std::process::id() % 100_000);
        let mut lab = Lab {
            tag: tag.clone(),
            number: n,
            names: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for host in ["a", "b"] {
            let name = format!("{tag}{host}");
            ip(&["netns", "add", &name]);
            lab.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"]);
            // The underlay carries IPv4 only, so a capture shows the node's traffic alone.
            for conf in ["all", "default"] {
                ip(&[
                    "netns",
                    "exec",
                    &name,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{conf}.disable_ipv6=1"),
                ]);
            }
        }
        let (a, b) = (lab.host("a"), lab.host("b"));
        ip(&[
            "-n", &a, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", &b,
        ]);
        for (host, addr) in [(&a, "10.250.0.1/24"), (&b, "10.250.0.2/24")] {
            ip(&["-n", host, "addr", "add", addr, "dev", "u0"]);
            ip(&["-n", host, "link", "set", "u0", "up"]);
        }
        lab
    }

    fn host(&self, host: &str) -> String {
        format!("{}{host}", self.tag)
    }

    fn host_ns(&self, host: &str) -> PathBuf {
        Path::new("/run/netns").join(self.host(host))
    }

    /// The node on host `host`, its networks' namespaces under the test's directory.
    fn node(&self, host: &str, key: u8) -> Networks {
        Networks::new(
            self.dir.path().join(host),
            Some(self.host_ns(host)),
            WIREGUARD_GO.into(),
            [key; 32],
        )
    }

    /// A network id unique to this lab.
    fn id(&self, n: u8) -> String {
        format!("{:08x}{:02x}{n:02x}", std::process::id(), self.number)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        // The nodes' own namespaces, in case the test failed before removing them.
        for host in ["a", "b"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.path().join(host)) {
                for e in entries.flatten() {
                    let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs busybox `args` inside the namespace at `ns`.
fn run_in(ns: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("/bin/busybox")
        .args(args)
        .output()
        .expect("run nsenter")
}

fn pings(ns: &Path, to: Ipv4Addr) -> bool {
    run_in(ns, &["ping", "-c", "1", "-W", "2", &to.to_string()])
        .status
        .success()
}

fn cidr(s: &str) -> Cidr {
    s.parse().expect("cidr")
}

fn peer(key: u8, endpoint: &str, subnet: &str) -> PeerConfig {
    PeerConfig {
        public_key: wireguard::public_key(&[key; 32]),
        endpoint: Some(endpoint.parse().expect("endpoint")),
        allowed_ips: vec![cidr(subnet)],
        keepalive: 0,
    }
}

fn wireguard_go_running(interface: &str) -> bool {
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == interface.as_bytes()))
        })
}

/// Links in the namespace at `ns` whose names start with `prefix`.
fn links(ns: &Path, prefix: &str) -> Vec<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ip", "-o", "link"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn spec(id: &str, subnet: &str, port: u16, peers: Vec<PeerConfig>) -> NetworkSpec {
    NetworkSpec {
        id: id.to_string(),
        range: cidr("10.77.0.0/16"),
        subnet: cidr(subnet),
        listen_port: port,
        peers,
    }
}

fn attachment(network: &str, key: &str, ip: &str, subnet: &str) -> Attachment {
    Attachment {
        network: network.to_string(),
        key: key.to_string(),
        ip: ip.parse().expect("ip"),
        subnet: cidr(subnet),
        range: cidr("10.77.0.0/16"),
    }
}

/// Starts a capture of the underlay on host `a`; returns it and its output file.
fn capture(lab: &Lab) -> (Child, PathBuf) {
    let file = lab.dir.path().join("underlay.pcap");
    let child = Command::new("nsenter")
        .arg(format!("--net={}", lab.host_ns("a").display()))
        .args(["tcpdump", "-i", "u0", "-n", "-U", "-w"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump (Debian: tcpdump)");
    wait_until("the capture to start", Duration::from_secs(10), || {
        file.metadata().is_ok_and(|m| m.len() > 0)
    });
    (child, file)
}

#[test]
fn containers_on_two_nodes_talk_over_wireguard_and_nothing_else_crosses_or_gets_in() {
    let lab = Lab::new();
    let (a, b) = (lab.node("a", 1), lab.node("b", 2));
    // Interface names are host-wide, so each node's part of one network has its own id (the agent
    // derives it from the node, the owner and the network's name).
    let (net_a, net_b, other) = (lab.id(1), lab.id(2), lab.id(3));
    a.ensure(&spec(
        &net_a,
        "10.77.1.0/24",
        51820,
        vec![peer(2, "10.250.0.2:51820", "10.77.2.0/24")],
    ))
    .expect("network on a");
    b.ensure(&spec(
        &net_b,
        "10.77.2.0/24",
        51820,
        vec![peer(1, "10.250.0.1:51820", "10.77.1.0/24")],
    ))
    .expect("network on b");
    let ca = a
        .attach(&attachment(
            &net_a,
            "00000000a1",
            "10.77.1.10",
            "10.77.1.0/24",
        ))
        .expect("attach on a");
    let cb = b
        .attach(&attachment(
            &net_b,
            "00000000b1",
            "10.77.2.10",
            "10.77.2.0/24",
        ))
        .expect("attach on b");

    // Another owner's network on b, with the same range and b's same subnet, and no peers.
    b.ensure(&spec(&other, "10.77.2.0/24", 51821, vec![]))
        .expect("other network on b");
    let intruder = b
        .attach(&attachment(
            &other,
            "00000000b2",
            "10.77.2.20",
            "10.77.2.0/24",
        ))
        .expect("attach the other owner's container");

    let (mut tcpdump, pcap) = capture(&lab);
    assert!(
        pings(&ca, "10.77.2.10".parse().unwrap()),
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
        !pings(&ca, "10.77.2.20".parse().unwrap()),
        "a reaches another owner's container"
    );
    assert!(
        !pings(&intruder, "10.77.1.10".parse().unwrap()),
        "another owner reaches a"
    );
    assert!(
        !pings(&intruder, "10.77.2.10".parse().unwrap()),
        "another owner reaches b's container on its own node"
    );
    // Nor does the host: the network has no link to it.
    assert!(
        !pings(&lab.host_ns("b"), "10.77.2.10".parse().unwrap()),
        "host b reaches its container"
    );

    // The underlay saw WireGuard's UDP only, and never the marker.
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tcpdump.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("stop tcpdump");
    tcpdump.wait().expect("tcpdump");
    let raw = std::fs::read(&pcap).expect("pcap");
    assert!(
        !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    let summary = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&pcap)
        .output()
        .expect("tcpdump -r");
    let lines = String::from_utf8_lossy(&summary.stdout).to_string();
    assert!(
        lines.lines().count() > 4,
        "the capture saw the tunnel: {lines}"
    );
    for line in lines.lines() {
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
            vec![peer(2, "10.250.0.2:51820", "10.77.2.0/24")],
        ))
        .expect("converge again");
    a_again
        .attach(&attachment(
            &net_a,
            "00000000a1",
            "10.77.1.10",
            "10.77.1.0/24",
        ))
        .expect("attach again");
    let after = a.device(&net_a).expect("device");
    assert_eq!(
        after.peers.values().next().map(|p| p.last_handshake),
        Some(handshake)
    );
    assert!(
        pings(&ca, "10.77.2.10".parse().unwrap()),
        "traffic flows after converging again"
    );

    // A member leaving is a peer removed in place.
    a.ensure(&spec(&net_a, "10.77.1.0/24", 51820, vec![]))
        .expect("peer removed");
    assert!(a.device(&net_a).expect("device").peers.is_empty());
    assert!(
        !pings(&ca, "10.77.2.10".parse().unwrap()),
        "a removed peer is still reached"
    );

    // Removal leaves no namespace, link, process or socket.
    for (node, ids, keys) in [
        (&a, vec![&net_a], vec!["00000000a1"]),
        (&b, vec![&net_b, &other], vec!["00000000b1", "00000000b2"]),
    ] {
        for key in keys {
            node.detach(key).expect("detach");
        }
        for id in ids {
            node.remove(id).expect("remove");
            let interface = Networks::interface(id);
            assert!(
                !wireguard::socket_path(&interface).exists(),
                "{interface}'s socket is left"
            );
            wait_until("wireguard-go to end", Duration::from_secs(5), || {
                !wireguard_go_running(&interface)
            });
        }
        assert_eq!(node.list().expect("list"), Vec::<String>::new());
        assert_eq!(node.attached().expect("attached"), Vec::<String>::new());
    }
    for host in ["a", "b"] {
        assert_eq!(
            links(&lab.host_ns(host), "zw"),
            Vec::<String>::new(),
            "WireGuard links left on {host}"
        );
    }
}

#[test]
fn a_bad_spec_is_refused_before_anything_is_made() {
    let lab = Lab::new();
    let a = lab.node("a", 1);
    let bad = [
        spec("not-hex-at-all", "10.77.1.0/24", 51830, vec![]),
        spec(&lab.id(4), "10.78.1.0/24", 51830, vec![]),
    ];
    for s in bad {
        assert!(a.ensure(&s).is_err(), "{s:?} was accepted");
    }
    assert!(
        a.attach(&attachment(
            &lab.id(4),
            "00000000a9",
            "10.77.1.10",
            "10.77.1.0/24"
        ))
        .is_err(),
        "attached to a network that does not exist"
    );
    assert!(
        a.attach(&attachment(
            &lab.id(4),
            "00000000a9",
            "10.77.9.10",
            "10.77.1.0/24"
        ))
        .is_err(),
        "attached outside the subnet"
    );
    assert_eq!(a.list().expect("list"), Vec::<String>::new());
    assert_eq!(a.attached().expect("attached"), Vec::<String>::new());
}
