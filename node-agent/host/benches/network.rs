//! Private networks on this host: round-trip time and TCP throughput between two containers'
//! namespaces on two "nodes" through WireGuard (wireguard-go), beside the same between the bare
//! underlay's ends, in the same run. Needs root and wireguard-go; traffic stays in the lab's
//! namespaces. `cargo bench --profile dev -p zos-host --bench network`.

use std::{path::Path, time::Instant};

use zos_host::{
    network::{in_namespace, wireguard, Attachment, Cidr, NetworkSpec, Networks, PeerConfig},
    WorkloadId,
};
use zos_testkit::netlab::{busybox_in, Lab};

const PINGS: usize = 200;
const BYTES: u64 = 256 << 20;

fn main() {
    assert!(nix::unistd::geteuid().is_root(), "the bench needs root");
    let lab = Lab::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let _unmount = Unmount(dir.path().to_path_buf());
    let key = |n: u8| {
        let mut k = [n; 32];
        k[..4].copy_from_slice(&std::process::id().to_le_bytes());
        k
    };
    let node = |host: &str, n: u8| {
        Networks::new(
            dir.path().join(host),
            Some(lab.host_ns(host)),
            "/usr/bin/wireguard-go".into(),
            key(n),
        )
    };
    let (a, b) = (node("a", 1), node("b", 2));
    let cidr = |s: &str| s.parse::<Cidr>().expect("cidr");
    let id = |c, n: &str| WorkloadId::new(c, n).expect("id");
    let spec = |c, subnet: &str, peer: u8, endpoint: &str, peer_subnet: &str| NetworkSpec {
        workload: id(c, "net"),
        range: cidr("10.77.0.0/16"),
        subnet: cidr(subnet),
        listen_port: 51820,
        peers: vec![PeerConfig {
            public_key: wireguard::public_key(&key(peer)),
            endpoint: Some(endpoint.parse().expect("endpoint")),
            allowed_ips: vec![cidr(peer_subnet)],
            keepalive: 0,
        }],
        egress: false,
    };
    a.ensure(&spec(
        1,
        "10.77.1.0/24",
        2,
        "10.250.0.2:51820",
        "10.77.2.0/24",
    ))
    .expect("network a");
    b.ensure(&spec(
        2,
        "10.77.2.0/24",
        1,
        "10.250.0.1:51820",
        "10.77.1.0/24",
    ))
    .expect("network b");
    let attach = |n: &Networks, c, ip: &str, subnet: &str| {
        n.attach(&Attachment {
            network: id(c, "net"),
            container: id(c, "bench"),
            ip: ip.parse().expect("ip"),
            subnet: cidr(subnet),
        })
        .expect("attach")
    };
    let ca = attach(&a, 1, "10.77.1.10", "10.77.1.0/24");
    let cb = attach(&b, 2, "10.77.2.10", "10.77.2.0/24");

    let bare = (lab.host_ns("a"), lab.host_ns("b"), "10.250.0.2");
    let tunnel = (ca.clone(), cb.clone(), "10.77.2.10");
    // Warm both paths (ARP, the handshake) before measuring.
    for (from, _, to) in [&bare, &tunnel] {
        busybox_in(from, &["ping", "-c", "3", "-W", "2", to]);
    }
    println!(
        "path                 rtt p50    rtt p99    TCP throughput ({} MiB)",
        BYTES >> 20
    );
    for round in 0..2 {
        for (label, (from, at, to)) in [("bare underlay", &bare), ("through WireGuard", &tunnel)] {
            let (p50, p99) = rtt(from, to);
            let mbit = throughput(from, at, to);
            println!(
                "{label:<20} {p50:>7.3} ms {p99:>7.3} ms {mbit:>8.0} Mbit/s   (round {round})"
            );
        }
    }
    for (n, net, ctr) in [(&a, 1, "bench"), (&b, 2, "bench")] {
        n.detach(&id(net, ctr)).expect("detach");
        n.remove(&id(net, "net")).expect("remove");
    }
}

/// p50 and p99 of `PINGS` round trips from the namespace at `from` to `to`, one at a time.
fn rtt(from: &Path, to: &str) -> (f64, f64) {
    let out = busybox_in(
        from,
        &["ping", "-A", "-c", &PINGS.to_string(), "-W", "2", to],
    );
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(times.len() >= PINGS * 9 / 10, "pings lost: {out:?}");
    times.sort_by(|x, y| x.total_cmp(y));
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

/// Mbit/s of `BYTES` sent by TCP from the namespace at `from` to a listener in the namespace at
/// `at` on `to` (both ends this process's threads, each in its namespace).
fn throughput(from: &Path, at: &Path, to: &str) -> f64 {
    use std::io::{Read, Write};
    let listener = in_namespace(at, || std::net::TcpListener::bind("0.0.0.0:7001"))
        .expect("enter the receiver's namespace")
        .expect("listen");
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf).expect("read") {
                0 => return total,
                n => total += n as u64,
            }
        }
    });
    let to: std::net::SocketAddr = format!("{to}:7001").parse().expect("address");
    let started = Instant::now();
    in_namespace(from, || {
        let mut stream = std::net::TcpStream::connect(to).expect("connect");
        let chunk = vec![0x5au8; 1 << 16];
        for _ in 0..BYTES / chunk.len() as u64 {
            stream.write_all(&chunk).expect("write");
        }
    })
    .expect("enter the sender's namespace");
    let received = receiver.join().expect("receiver");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(received, BYTES, "the receiver got {received} bytes");
    (BYTES * 8) as f64 / secs / 1e6
}

/// Unmounts the nodes' namespaces under a directory when the bench ends, also by a panic.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let root = self.0.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(4)) {
            if m.starts_with(&root) {
                let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}
