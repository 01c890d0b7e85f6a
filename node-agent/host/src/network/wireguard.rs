//! WireGuard through `wireguard-go` and its control socket (the cross-platform userspace API:
//! `set=1`/`get=1`, `key=value` lines, `errno=` answer).
//!
//! `wireguard-go <name>` makes the TUN interface and the control socket, hands both to a child
//! in a session of its own and exits: once it returns, the interface can be moved into another
//! namespace and configured. Its UDP socket stays in the namespace it was started in. The child
//! lives as long as its interface: removing the interface (or its namespace) ends it.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use super::{Cidr, NetError};

/// Where wireguard-go puts the control socket of interface `name` (host-wide names).
pub fn socket_path(name: &str) -> PathBuf {
    Path::new("/var/run/wireguard").join(format!("{name}.sock"))
}

/// Starts wireguard-go for a new interface `name` in the calling thread's namespace; what it
/// logs (errors only) is appended to `log`.
pub fn start(wireguard_go: &Path, name: &str, log: &Path) -> Result<(), NetError> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| NetError::io(&format!("opening {}", log.display()), e))?;
    let output = Command::new(wireguard_go)
        .arg(name)
        .env("LOG_LEVEL", "error")
        .env_remove("WG_PROCESS_FOREGROUND")
        .stdin(Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .map_err(|e| NetError::io("sharing the log", e))?,
        )
        .stderr(log_file)
        .output()
        .map_err(|e| NetError::io(&format!("starting {}", wireguard_go.display()), e))?;
    if !output.status.success() {
        return Err(NetError::WireGuard(format!(
            "{} {name} failed ({}); see {}",
            wireguard_go.display(),
            output.status,
            log.display()
        )));
    }
    Ok(())
}

/// What a WireGuard interface is configured with and has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// Its private key.
    pub private_key: Option<[u8; 32]>,
    /// Its UDP port.
    pub listen_port: u16,
    /// Its peers, by public key.
    pub peers: BTreeMap<[u8; 32], PeerState>,
}

/// A configured peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerState {
    /// Where its packets go (set, or learnt from what it sent).
    pub endpoint: Option<SocketAddr>,
    /// The source addresses accepted from it and routed to it.
    pub allowed_ips: Vec<Cidr>,
    /// Unix seconds of the last handshake, 0 for none.
    pub last_handshake: u64,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Seconds between keepalives (0: none).
    pub keepalive: u16,
}

/// One peer as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its public key.
    pub public_key: [u8; 32],
    /// Where to reach it; `None` waits for it to reach us.
    pub endpoint: Option<SocketAddr>,
    /// What it may send from and is routed to.
    pub allowed_ips: Vec<Cidr>,
    /// Seconds between keepalives, so that a peer behind NAT stays reachable (0: none).
    pub keepalive: u16,
}

/// Reads interface `name`'s configuration and peer statistics.
pub fn get(name: &str) -> Result<Device, NetError> {
    let answer = exchange(name, "get=1\n\n")?;
    let mut device = Device::default();
    let mut peer: Option<[u8; 32]> = None;
    for (key, value) in answer {
        let bad = || NetError::WireGuard(format!("{name}: cannot read {key}={value}"));
        match key.as_str() {
            "private_key" => device.private_key = Some(hex32(&value).ok_or_else(bad)?),
            "listen_port" => device.listen_port = value.parse().map_err(|_| bad())?,
            "public_key" => {
                let key = hex32(&value).ok_or_else(bad)?;
                device.peers.entry(key).or_default();
                peer = Some(key);
            }
            _ => {
                let Some(state) = peer.and_then(|p| device.peers.get_mut(&p)) else {
                    continue;
                };
                match key.as_str() {
                    "endpoint" => state.endpoint = value.parse().ok(),
                    "allowed_ip" => state.allowed_ips.push(value.parse().map_err(|_| bad())?),
                    "last_handshake_time_sec" => {
                        state.last_handshake = value.parse().map_err(|_| bad())?
                    }
                    "rx_bytes" => state.rx_bytes = value.parse().map_err(|_| bad())?,
                    "tx_bytes" => state.tx_bytes = value.parse().map_err(|_| bad())?,
                    "persistent_keepalive_interval" => {
                        state.keepalive = value.parse().map_err(|_| bad())?
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(device)
}

/// Brings interface `name` to `private_key`, `listen_port` and exactly `peers`, in place:
/// peers that stay keep their sessions; others are added or removed.
pub fn configure(
    name: &str,
    private_key: &[u8; 32],
    listen_port: u16,
    peers: &[PeerConfig],
) -> Result<(), NetError> {
    let current = get(name)?;
    let mut set = String::from("set=1\n");
    if current.private_key.as_ref() != Some(private_key) {
        set.push_str(&format!("private_key={}\n", hex::encode(private_key)));
    }
    if current.listen_port != listen_port {
        set.push_str(&format!("listen_port={listen_port}\n"));
    }
    for key in current.peers.keys() {
        if !peers.iter().any(|p| p.public_key == *key) {
            set.push_str(&format!("public_key={}\nremove=true\n", hex::encode(key)));
        }
    }
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for p in peers {
        let now = current.peers.get(&p.public_key);
        // As sets: the order wireguard-go lists them in is its own.
        let same_ips = now.is_some_and(|s| {
            let (mut have, mut want) = (s.allowed_ips.clone(), p.allowed_ips.clone());
            have.sort();
            want.sort();
            have == want
        });
        let same_keepalive = now.is_some_and(|s| s.keepalive == p.keepalive);
        // A peer heard from lately keeps the endpoint it was heard from (it roamed, or sits
        // behind NAT); one silent for longer than a session is sent to its endpoint on chain.
        let live = now.is_some_and(|s| unix_now.saturating_sub(s.last_handshake) < 180);
        let endpoint = p
            .endpoint
            .filter(|e| !live && now.is_none_or(|s| s.endpoint != Some(*e)));
        if now.is_some() && same_ips && same_keepalive && endpoint.is_none() {
            continue;
        }
        set.push_str(&format!("public_key={}\n", hex::encode(p.public_key)));
        if let Some(e) = endpoint {
            set.push_str(&format!("endpoint={e}\n"));
        }
        if !same_keepalive {
            set.push_str(&format!("persistent_keepalive_interval={}\n", p.keepalive));
        }
        if !same_ips {
            set.push_str("replace_allowed_ips=true\n");
            for ip in &p.allowed_ips {
                set.push_str(&format!("allowed_ip={ip}\n"));
            }
        }
    }
    if set == "set=1\n" {
        return Ok(());
    }
    set.push('\n');
    exchange(name, &set).map(drop)
}

/// Sends one request on the control socket; returns the answer's `key=value` lines before
/// `errno`, or the error it names.
fn exchange(name: &str, request: &str) -> Result<Vec<(String, String)>, NetError> {
    let path = socket_path(name);
    let mut stream = UnixStream::connect(&path)
        .map_err(|e| NetError::io(&format!("connecting to {}", path.display()), e))?;
    let timeout = Some(Duration::from_secs(5));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| NetError::io(&format!("writing to {}", path.display()), e))?;
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| NetError::io(&format!("reading {}", path.display()), e))?;
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(NetError::WireGuard(format!(
                "{name}: unexpected answer {line:?}"
            )));
        };
        if key == "errno" {
            return match value {
                "0" => Ok(lines),
                errno => Err(NetError::WireGuard(format!(
                    "{name} refused the configuration (errno {errno})"
                ))),
            };
        }
        lines.push((key.to_string(), value.to_string()));
    }
    Err(NetError::WireGuard(format!(
        "{name}: the answer ended without errno"
    )))
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// The X25519 public key of `private_key` (clamped, as WireGuard does).
pub fn public_key(private_key: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*private_key).to_bytes()
}
