//! Private networks on the host: a network namespace per network, WireGuard between nodes, and a
//! veth per container (see docs/networks.md).
//!
//! Per network workload (namespace `<dir>/networks/zos-<contract>-<name>`): a bridge `br0` holding
//! the subnet's gateway address; the WireGuard interface `zw<12 hex>` (a hash of the node's key
//! and the workload, since interface names and wireguard-go's sockets are host-wide), made in the
//! host's namespace (so its UDP socket listens there) and moved in; a route for the rest of the
//! range through it; forwarding on. Nothing else is in the namespace: no link to the host, no
//! default route, so the only way in or out is a peer's authenticated tunnel. Per attached
//! container (`<dir>/containers/zos-<contract>-<name>`): a namespace of its own with `eth0`, the
//! other end of a veth on the network's bridge, its address and its default route through the
//! gateway.
//!
//! Everything is found again by name: a restarted agent converges without touching what is
//! already right, and peers change in place.

mod egress;
mod netns;
pub mod wireguard;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures::TryStreamExt;

use crate::WorkloadId;
use rtnetlink::{
    packet_route::{address::AddressAttribute, link::LinkMessage},
    Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

pub use wireguard::PeerConfig;

/// Why a network could not be set up or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: nix::Error,
    },
    /// A netlink request failed.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The error.
        source: rtnetlink::Error,
    },
    /// wireguard-go failed or refused.
    #[error("wireguard: {0}")]
    WireGuard(String),
    /// The spec is not one a network can have.
    #[error("{0}")]
    Invalid(String),
    /// A worker thread panicked.
    #[error("a network worker thread panicked")]
    Panicked,
}

impl NetError {
    fn io(what: &str, source: std::io::Error) -> NetError {
        NetError::Io {
            what: what.to_string(),
            source,
        }
    }

    fn sys(what: &'static str, source: nix::Error) -> NetError {
        NetError::Sys { what, source }
    }

    fn netlink(what: &str) -> impl FnOnce(rtnetlink::Error) -> NetError + '_ {
        move |source| NetError::Netlink {
            what: what.to_string(),
            source,
        }
    }
}

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// Its length.
    pub prefix: u8,
}

impl Cidr {
    /// The first host address: the gateway of a subnet.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(1))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: no prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{s:?}: not IPv4"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s:?}: bad prefix"))?;
        Ok(Cidr { addr, prefix })
    }
}

/// One network on this node as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network workload.
    pub workload: WorkloadId,
    /// The whole range.
    pub range: Cidr,
    /// This node's part of it.
    pub subnet: Cidr,
    /// The UDP port its WireGuard listens on in the host's namespace.
    pub listen_port: u16,
    /// The other members.
    pub peers: Vec<PeerConfig>,
    /// Whether its workloads reach the internet, through the node's address (nothing reaches
    /// them from it).
    pub egress: bool,
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The network workload.
    pub network: WorkloadId,
    /// The container (or anything else with a namespace of its own).
    pub container: WorkloadId,
    /// Its address, inside the subnet.
    pub ip: Ipv4Addr,
    /// The network's subnet on this node.
    pub subnet: Cidr,
}

/// The networks of this host.
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
    host_ns: Option<PathBuf>,
    wireguard_go: PathBuf,
    private_key: [u8; 32],
    public_key: [u8; 32],
}

const BRIDGE: &str = "br0";

impl Networks {
    /// Networks whose namespaces are kept under `dir`, with WireGuard's UDP sockets in the
    /// namespace at `host_ns` (this process's when `None`), keyed by `private_key`.
    pub fn new(
        dir: PathBuf,
        host_ns: Option<PathBuf>,
        wireguard_go: PathBuf,
        private_key: [u8; 32],
    ) -> Networks {
        Networks {
            dir,
            host_ns,
            wireguard_go,
            public_key: wireguard::public_key(&private_key),
            private_key,
        }
    }

    /// This node's WireGuard key.
    pub fn private_key(&self) -> &[u8; 32] {
        &self.private_key
    }

    /// The namespace file of network workload `network`.
    pub fn namespace(&self, network: &WorkloadId) -> PathBuf {
        self.dir.join("networks").join(network.container_id())
    }

    /// The namespace file of `container`.
    pub fn container_namespace(&self, container: &WorkloadId) -> PathBuf {
        self.dir.join("containers").join(container.container_id())
    }

    /// The WireGuard interface of network workload `network` on this node.
    pub fn interface(&self, network: &WorkloadId) -> String {
        let mut hash = blake3::Hasher::new();
        hash.update(b"zos/wireguard-interface/v1");
        hash.update(&self.public_key);
        hash.update(&network.contract.to_le_bytes());
        hash.update(network.name.as_bytes());
        format!("zw{}", &hash.finalize().to_hex()[..12])
    }

    /// The network workloads on the host.
    pub fn list(&self) -> Result<Vec<WorkloadId>, NetError> {
        ids(&self.dir.join("networks"))
    }

    /// The containers with a namespace on the host.
    pub fn attached(&self) -> Result<Vec<WorkloadId>, NetError> {
        ids(&self.dir.join("containers"))
    }

    /// Makes network `spec` exist as it should, changing only what is not.
    pub fn ensure(&self, spec: &NetworkSpec) -> Result<(), NetError> {
        check(&spec.workload)?;
        if !spec.range.contains(&spec.subnet) {
            return Err(NetError::Invalid(format!(
                "subnet {} is not inside range {}",
                spec.subnet, spec.range
            )));
        }
        let ns = self.namespace(&spec.workload);
        netns::create(&ns)?;
        let gateway = spec.subnet.gateway();
        let subnet = spec.subnet;
        netns::with_netlink(Some(&ns), |h| async move {
            set_up(&h, "lo").await?;
            let bridge = match link(&h, BRIDGE).await? {
                Some(l) => l.header.index,
                None => {
                    h.link()
                        .add(LinkBridge::new(BRIDGE).build())
                        .execute()
                        .await
                        .map_err(NetError::netlink("adding the bridge"))?;
                    index(&h, BRIDGE).await?
                }
            };
            // A subnet changed by an update leaves no old gateway address behind.
            only_address(&h, bridge, gateway, subnet.prefix, "the bridge").await?;
            set_up(&h, BRIDGE).await
        })?;
        netns::within(&ns, || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .map_err(|e| NetError::io("turning forwarding on", e))
        })?;

        let name = self.interface(&spec.workload);
        self.ensure_interface(&ns, &name)?;
        let range = spec.range;
        netns::with_netlink(Some(&ns), |h| {
            let name = name.clone();
            async move {
                set_up(&h, &name).await?;
                let wg = index(&h, &name).await?;
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(range.addr, range.prefix)
                    .output_interface(wg)
                    .build();
                replace_route(&h, route, "routing the range to WireGuard").await
            }
        })?;
        wireguard::configure(&name, &self.private_key, spec.listen_port, &spec.peers)?;
        let host = self.host_ns.as_deref();
        if spec.egress {
            egress::ensure(&ns, host, &egress::Uplink::new(&name, spec.listen_port))
        } else {
            egress::remove(Some(&ns), host, &name, false)
        }
    }

    /// Makes the WireGuard interface `name` exist inside `ns`, started in the host namespace.
    fn ensure_interface(&self, ns: &Path, name: &str) -> Result<(), NetError> {
        let inside = netns::with_netlink(Some(ns), |h| async move { link(&h, name).await })?;
        let socket = wireguard::socket_path(name);
        if inside.is_some() && socket.exists() {
            return Ok(());
        }
        let host = self.host_ns.as_deref();
        // What a crash left: an interface not moved yet, or one whose socket is gone.
        if let Some(l) = inside {
            netns::with_netlink(Some(ns), |h| delete(h, l.header.index))?;
        }
        if let Some(l) = netns::with_netlink(host, |h| async move { link(&h, name).await })? {
            netns::with_netlink(host, |h| delete(h, l.header.index))?;
        }
        wait_gone(&socket)?;
        let log = self.dir.join("networks").join(format!("{name}.log"));
        match host {
            Some(host) => netns::within(host, || wireguard::start(&self.wireguard_go, name, &log))?,
            None => wireguard::start(&self.wireguard_go, name, &log)?,
        }
        // wireguard-go's child looks its interface up by name in its own namespace as it starts:
        // moved before it answers, it would not find it and end.
        wireguard::get(name)?;
        let target = netns::open(ns)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&target);
        netns::with_netlink(host, |h| async move {
            let wg = index(&h, name).await?;
            h.link()
                .set(LinkUnspec::new_with_index(wg).setns_by_fd(fd).build())
                .execute()
                .await
                .map_err(NetError::netlink("moving WireGuard into the network"))
        })
    }

    /// Removes network workload `network`: its namespace, and with it its bridge, WireGuard
    /// interface and wireguard-go. Containers still attached lose their link.
    pub fn remove(&self, network: &WorkloadId) -> Result<(), NetError> {
        check(network)?;
        let ns = self.namespace(network);
        let name = self.interface(network);
        let host = self.host_ns.as_deref();
        egress::remove(None, host, &name, true)?;
        // An interface a crash left in the host's namespace, not moved yet.
        if let Some(l) = netns::with_netlink(host, |h| {
            let name = name.clone();
            async move { link(&h, &name).await }
        })? {
            netns::with_netlink(host, |h| delete(h, l.header.index))?;
        }
        if netns::is_mounted(&ns)? {
            // Deleting the interface ends wireguard-go at once, whoever else holds the namespace.
            if let Some(l) = netns::with_netlink(Some(&ns), |h| {
                let name = name.clone();
                async move { link(&h, &name).await }
            })? {
                netns::with_netlink(Some(&ns), |h| delete(h, l.header.index))?;
            }
        }
        netns::remove(&ns)?;
        let _ = std::fs::remove_file(self.dir.join("networks").join(format!("{name}.log")));
        wait_gone(&wireguard::socket_path(&name))
    }

    /// The peers network workload `network`'s WireGuard has, with their handshakes and traffic.
    pub fn device(&self, network: &WorkloadId) -> Result<wireguard::Device, NetError> {
        check(network)?;
        wireguard::get(&self.interface(network))
    }

    /// Gives the container `attachment.key` its namespace on the network, with `eth0` at its
    /// address; returns the namespace's file for the container's runtime to join. Idempotent.
    pub fn attach(&self, attachment: &Attachment) -> Result<PathBuf, NetError> {
        let Attachment {
            network,
            container,
            ip,
            subnet,
        } = attachment;
        check(network)?;
        check(container)?;
        if !subnet.contains(&Cidr {
            addr: *ip,
            prefix: 32,
        }) {
            return Err(NetError::Invalid(format!("{ip} is not inside {subnet}")));
        }
        let net_ns = self.namespace(network);
        if !netns::is_mounted(&net_ns)? {
            return Err(NetError::Invalid(format!(
                "network {} is not set up",
                network.name
            )));
        }
        let ctr_ns = self.container_namespace(container);
        netns::create(&ctr_ns)?;
        let (ip, gateway, prefix) = (*ip, subnet.gateway(), subnet.prefix);
        let ready = netns::with_netlink(Some(&ctr_ns), |h| async move {
            let Some(eth) = link(&h, "eth0").await? else {
                return Ok(false);
            };
            let mut addresses = h
                .address()
                .get()
                .set_link_index_filter(eth.header.index)
                .execute();
            while let Some(a) = addresses
                .try_next()
                .await
                .map_err(NetError::netlink("reading eth0's address"))?
            {
                let has_ip = a
                    .attributes
                    .iter()
                    .any(|at| matches!(at, AddressAttribute::Address(IpAddr::V4(v)) if *v == ip));
                if has_ip {
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        if ready {
            return Ok(ctr_ns);
        }

        // The veth's names in the network's namespace: short, unique per container.
        let key = &blake3::hash(container.container_id().as_bytes()).to_hex()[..12];
        let (outer, inner) = (format!("c{key}"), format!("p{key}"));
        let target = netns::open(&ctr_ns)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&target);
        netns::with_netlink(Some(&net_ns), |h| {
            let (outer, inner) = (outer.clone(), inner.clone());
            async move {
                for stale in [&outer, &inner] {
                    if let Some(l) = link(&h, stale).await? {
                        delete(h.clone(), l.header.index).await?;
                    }
                }
                h.link()
                    .add(LinkVeth::new(&outer, &inner).build())
                    .execute()
                    .await
                    .map_err(NetError::netlink("adding the container's veth"))?;
                let bridge = index(&h, BRIDGE).await?;
                let outer_index = index(&h, &outer).await?;
                h.link()
                    .set(
                        LinkUnspec::new_with_index(outer_index)
                            .controller(bridge)
                            .up()
                            .build(),
                    )
                    .execute()
                    .await
                    .map_err(NetError::netlink("putting the veth on the bridge"))?;
                let inner_index = index(&h, &inner).await?;
                h.link()
                    .set(
                        LinkUnspec::new_with_index(inner_index)
                            .setns_by_fd(fd)
                            .build(),
                    )
                    .execute()
                    .await
                    .map_err(NetError::netlink("moving the veth into the container"))
            }
        })?;
        netns::with_netlink(Some(&ctr_ns), |h| {
            let inner = inner.clone();
            async move {
                set_up(&h, "lo").await?;
                if let Some(old) = link(&h, "eth0").await? {
                    delete(h.clone(), old.header.index).await?;
                }
                let eth = index(&h, &inner).await?;
                h.link()
                    .set(
                        LinkUnspec::new_with_index(eth)
                            .name("eth0".to_string())
                            .build(),
                    )
                    .execute()
                    .await
                    .map_err(NetError::netlink("naming eth0"))?;
                h.address()
                    .add(eth, ip.into(), prefix)
                    .replace()
                    .execute()
                    .await
                    .map_err(NetError::netlink("addressing eth0"))?;
                set_up(&h, "eth0").await?;
                // Everything goes to the gateway: the network's namespace decides what leaves
                // (the range through WireGuard; the rest through the uplink when the network has
                // egress, else nowhere).
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gateway)
                    .output_interface(eth)
                    .build();
                replace_route(&h, route, "routing through the gateway").await
            }
        })?;
        Ok(ctr_ns)
    }

    /// The tap of `vm` (made by its QEMU in the network's namespace), and its MAC address.
    pub fn tap(vm: &WorkloadId) -> (String, [u8; 6]) {
        let hash = blake3::hash(vm.container_id().as_bytes());
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&hash.as_bytes()[..6]);
        // Locally administered, unicast.
        mac[0] = (mac[0] & 0xfc) | 0x02;
        (format!("t{}", &hash.to_hex()[..12]), mac)
    }

    /// Puts `tap` (a VM's, in network `network`'s namespace) on the network's bridge, up.
    pub fn plug(&self, network: &WorkloadId, tap: &str) -> Result<(), NetError> {
        check(network)?;
        let ns = self.namespace(network);
        netns::with_netlink(Some(&ns), |h| async move {
            let bridge = index(&h, BRIDGE).await?;
            let tap_index = index(&h, tap).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(tap_index)
                        .controller(bridge)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(NetError::netlink("putting the tap on the bridge"))
        })
    }

    /// Removes `container`'s namespace, and with it both ends of its veth.
    pub fn detach(&self, container: &WorkloadId) -> Result<(), NetError> {
        check(container)?;
        netns::remove(&self.container_namespace(container))
    }
}

/// Runs `work` on a thread inside the network namespace at `ns`: what it spawns lives there.
pub fn in_namespace<R: Send>(ns: &Path, work: impl FnOnce() -> R + Send) -> Result<R, NetError> {
    netns::within(ns, || Ok(work()))
}

impl Cidr {
    /// Whether `other` lies wholly inside this prefix.
    pub fn contains(&self, other: &Cidr) -> bool {
        let mask = |p: u8| {
            if p == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(p))
            }
        };
        other.prefix >= self.prefix
            && u32::from(other.addr) & mask(self.prefix) == u32::from(self.addr) & mask(self.prefix)
    }
}

/// Where a peer's packets go: its node's endpoint host (an address, or a name looked up now)
/// with this network's port.
pub fn peer_endpoint(endpoint: &str, port_offset: u16) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let (host, port) = endpoint.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?.checked_add(port_offset)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => Some(SocketAddr::new(ip, port)),
        Err(_) => (host, port).to_socket_addrs().ok()?.next(),
    }
}

/// This node's port for a network: its endpoint's port plus the network's slot.
pub fn listen_port(endpoint: &str, port_offset: u16) -> Option<u16> {
    endpoint
        .rsplit_once(':')?
        .1
        .parse::<u16>()
        .ok()?
        .checked_add(port_offset)
}

fn check(id: &WorkloadId) -> Result<(), NetError> {
    id.validate().map_err(|e| NetError::Invalid(e.to_string()))
}

/// The workloads whose namespaces are under `dir`.
fn ids(dir: &Path) -> Result<Vec<WorkloadId>, NetError> {
    Ok(netns::list(dir, "zos-")?
        .iter()
        .filter_map(|p| WorkloadId::parse_container_id(p.file_name()?.to_str()?))
        .collect())
}

async fn link(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(NetError::netlink(&format!("looking up {name}"))(e)),
    }
}

/// Gives link `index` the IPv4 address `addr/prefix` and no other IPv4 address (an update or a
/// new port leaves none behind); its IPv6 link-local address stays.
async fn only_address(
    h: &Handle,
    index: u32,
    addr: Ipv4Addr,
    prefix: u8,
    what: &str,
) -> Result<(), NetError> {
    let mut addresses = h.address().get().set_link_index_filter(index).execute();
    let mut stale = Vec::new();
    while let Some(a) = addresses
        .try_next()
        .await
        .map_err(NetError::netlink(&format!("reading {what}'s addresses")))?
    {
        let v4 = a.attributes.iter().find_map(|at| match at {
            AddressAttribute::Address(IpAddr::V4(v)) => Some(*v),
            _ => None,
        });
        if v4.is_some_and(|v| v != addr || a.header.prefix_len != prefix) {
            stale.push(a);
        }
    }
    for a in stale {
        h.address()
            .del(a)
            .execute()
            .await
            .map_err(NetError::netlink(&format!(
                "removing an old address of {what}"
            )))?;
    }
    h.address()
        .add(index, addr.into(), prefix)
        .replace()
        .execute()
        .await
        .map_err(NetError::netlink(&format!("addressing {what}")))
}

/// Adds `route`, or replaces the one with its destination.
async fn replace_route(
    h: &Handle,
    route: rtnetlink::packet_route::route::RouteMessage,
    what: &str,
) -> Result<(), NetError> {
    h.route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(NetError::netlink(what))
}

async fn index(h: &Handle, name: &str) -> Result<u32, NetError> {
    link(h, name)
        .await?
        .map(|l| l.header.index)
        .ok_or_else(|| NetError::Invalid(format!("link {name} vanished")))
}

async fn set_up(h: &Handle, name: &str) -> Result<(), NetError> {
    let index = index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(NetError::netlink(&format!("setting {name} up")))
}

async fn delete(h: Handle, index: u32) -> Result<(), NetError> {
    h.link()
        .del(index)
        .execute()
        .await
        .map_err(NetError::netlink("deleting a link"))
}

/// Waits for a wireguard-go that lost its interface to end (its socket goes with it); a socket
/// no one listens on (a wireguard-go that was killed) is removed.
fn wait_gone(socket: &Path) -> Result<(), NetError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while socket.exists() {
        if let Err(e) = std::os::unix::net::UnixStream::connect(socket) {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                std::fs::remove_file(socket)
                    .map_err(|e| NetError::io("removing a dead socket", e))?;
                continue;
            }
        }
        if Instant::now() > deadline {
            return Err(NetError::WireGuard(format!(
                "{} is still there 5 s after its interface went",
                socket.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
