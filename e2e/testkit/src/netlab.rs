//! A network lab: two "hosts", each a network namespace the test makes, joined by a veth pair
//! (the underlay: `10.250.0.1` on host `a`, `10.250.0.2` on host `b`, IPv4 only); more hosts
//! may sit behind host `b` as their NAT router ([`Lab::add_behind_nat`]). Test traffic stays in
//! namespaces the test made; everything is removed on drop, also when the test fails.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// An address on the lab's "internet" ([`Lab::add_internet`]).
pub const INTERNET_HOST: &str = "198.51.100.7";

/// Where host `a` and host `b` are on the underlay.
pub const UNDERLAY: [(&str, &str); 2] = [("a", "10.250.0.1"), ("b", "10.250.0.2")];

/// See the module documentation.
pub struct Lab {
    tag: String,
    number: u32,
    names: Vec<String>,
    /// Hosts behind NAT and their addresses.
    behind_nat: Vec<(String, String)>,
}

impl Lab {
    /// Hosts `a` and `b` and the underlay between them. Panics (never skips) when this machine
    /// cannot make them.
    pub fn new() -> Lab {
        static LABS: AtomicU32 = AtomicU32::new(0);
        let number = LABS.fetch_add(1, Ordering::SeqCst);
        let tag = format!("zt{}{number}", std::process::id() % 100_000);
        let mut lab = Lab {
            tag,
            number,
            names: Vec::new(),
            behind_nat: Vec::new(),
        };
        for (host, _) in UNDERLAY {
            let name = lab.host(host);
            ip(&["netns", "add", &name]);
            lab.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"]);
            // The underlay carries IPv4 only, so a capture shows the nodes' traffic alone.
            for conf in ["all", "default"] {
                let key = format!("net.ipv6.conf.{conf}.disable_ipv6=1");
                ip(&["netns", "exec", &name, "sysctl", "-qw", &key]);
            }
        }
        let (a, b) = (lab.host("a"), lab.host("b"));
        ip(&[
            "-n", &a, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", &b,
        ]);
        for (host, addr) in UNDERLAY {
            let name = lab.host(host);
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "u0",
            ]);
            ip(&["-n", &name, "link", "set", "u0", "up"]);
        }
        lab
    }

    /// This lab's number among those of this process (labs run at once).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The namespace name of `host`.
    pub fn host(&self, host: &str) -> String {
        format!("{}{host}", self.tag)
    }

    /// The namespace file of `host`.
    pub fn host_ns(&self, host: &str) -> PathBuf {
        Path::new("/run/netns").join(self.host(host))
    }

    /// Host `host`'s own address: on the underlay, or on its LAN behind NAT.
    pub fn address(&self, host: &str) -> Option<&str> {
        UNDERLAY
            .iter()
            .find(|(h, _)| *h == host)
            .map(|(_, addr)| *addr)
            .or_else(|| {
                self.behind_nat
                    .iter()
                    .find(|(h, _)| h == host)
                    .map(|(_, addr)| addr.as_str())
            })
    }

    /// Whether `host` sits behind NAT.
    pub fn is_behind_nat(&self, host: &str) -> bool {
        self.behind_nat.iter().any(|(h, _)| h == host)
    }

    /// Puts new hosts `hosts` behind host `b`, which becomes their NAT router: host number `i`
    /// has `10.251.<i+1>.2` on a veth of its own to `b` (`10.251.<i+1>.1`, its default route);
    /// `b` masquerades what they send out of the underlay and lets in from the underlay only
    /// what answers it (a home router: no one outside can open a connection to them).
    pub fn add_behind_nat(&mut self, hosts: &[&str]) {
        let router = self.host("b");
        for (i, host) in hosts.iter().enumerate() {
            let name = self.host(host);
            ip(&["netns", "add", &name]);
            self.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"]);
            for conf in ["all", "default"] {
                let key = format!("net.ipv6.conf.{conf}.disable_ipv6=1");
                ip(&["netns", "exec", &name, "sysctl", "-qw", &key]);
            }
            let lan = format!("l{}", i + 1);
            ip(&[
                "-n", &router, "link", "add", &lan, "type", "veth", "peer", "name", "u0", "netns",
                &name,
            ]);
            let (gateway, addr) = (format!("10.251.{}.1", i + 1), format!("10.251.{}.2", i + 1));
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{gateway}/24"),
                "dev",
                &lan,
            ]);
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "u0",
            ]);
            ip(&["-n", &router, "link", "set", &lan, "up"]);
            ip(&["-n", &name, "link", "set", "u0", "up"]);
            ip(&["-n", &name, "route", "add", "default", "via", &gateway]);
            self.behind_nat.push((host.to_string(), addr));
        }
        ip(&[
            "netns",
            "exec",
            &router,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let rules = "table ip zoslabnat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname \"u0\" masquerade; }
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname \"l*\" oifname \"u0\" accept
    iifname \"u0\" ct state established,related accept
  }
}
";
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &router, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft (Debian: nftables)");
        use std::io::Write;
        nft.stdin
            .take()
            .expect("stdin")
            .write_all(rules.as_bytes())
            .expect("nft rules");
        assert!(nft.wait().expect("nft").success(), "nft -f: the NAT rules");
    }

    /// An "internet" beyond host `host`: a namespace joined to it by a veth (`203.0.113.1` on
    /// the host, which routes everything else there, `203.0.113.2` beyond), that also answers on
    /// [`INTERNET_HOST`]. Returns its namespace file.
    pub fn add_internet(&mut self, host: &str) -> PathBuf {
        let (name, inet) = (self.host(host), self.host("inet"));
        ip(&["netns", "add", &inet]);
        self.names.push(inet.clone());
        ip(&["-n", &inet, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &name, "link", "add", "w0", "type", "veth", "peer", "name", "w0", "netns", &inet,
        ]);
        ip(&["-n", &name, "addr", "add", "203.0.113.1/24", "dev", "w0"]);
        ip(&["-n", &inet, "addr", "add", "203.0.113.2/24", "dev", "w0"]);
        ip(&[
            "-n",
            &inet,
            "addr",
            "add",
            &format!("{INTERNET_HOST}/32"),
            "dev",
            "lo",
        ]);
        for ns in [&name, &inet] {
            ip(&["-n", ns, "link", "set", "w0", "up"]);
        }
        ip(&["-n", &name, "route", "add", "default", "via", "203.0.113.2"]);
        self.host_ns("inet")
    }

    /// Starts a capture of the underlay as host `a` sees it, into `file`.
    pub fn capture(&self, file: &Path) -> Capture {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.host_ns("a").display()))
            // Immediate mode: without it packets wait in the kernel's ring for a block to fill,
            // and those still waiting when the capture stops are lost ("received by filter",
            // not "captured").
            .args(["tcpdump", "-i", "u0", "-n", "--immediate-mode", "-U", "-w"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump (Debian: tcpdump)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !file.metadata().is_ok_and(|m| m.len() > 0) {
            assert!(Instant::now() < deadline, "the capture did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Capture {
            child,
            file: file.to_path_buf(),
        }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A capture of the underlay under way.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Stops the capture; returns what it holds, raw (every byte that crossed) and as tcpdump's
    /// one-line summaries.
    pub fn stop(mut self) -> (Vec<u8>, Vec<String>) {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let raw = std::fs::read(&self.file).expect("the capture file");
        let summary = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&self.file)
            .output()
            .expect("tcpdump -r");
        let lines = String::from_utf8_lossy(&summary.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        (raw, lines)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ip args`, panicking with its error when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs busybox `args` inside the network namespace at `ns`.
pub fn busybox_in(ns: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("/bin/busybox")
        .args(args)
        .output()
        .expect("run nsenter")
}

/// Whether one ping from the namespace at `ns` to `to` is answered within 2 s.
pub fn pings(ns: &Path, to: &str) -> bool {
    busybox_in(ns, &["ping", "-c", "1", "-W", "2", to])
        .status
        .success()
}

/// The links in the namespace at `ns` whose names start with `prefix`.
pub fn links(ns: &Path, prefix: &str) -> Vec<String> {
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

/// Whether a live process has `word` as one of its arguments.
pub fn process_with_arg(word: &str) -> bool {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten().any(|p| {
                std::fs::read(p.path().join("cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == word.as_bytes()))
            })
        })
        .unwrap_or(false)
}
