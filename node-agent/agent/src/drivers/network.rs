//! Private networks (`zos_host::network`): this node's part of each network a contract names,
//! with the other members as WireGuard peers, read from the chain's index of the owner's network
//! (see docs/networks.md).
//!
//! A network workload exists rather than runs, so the engine applies it at every pass of its
//! contract: each pass reads the index and the members' node records again and changes only what
//! differs (peers in place). The agent passes the contract again when a member joins, changes or
//! leaves, or a member node's key or endpoint changes.

use std::{collections::BTreeSet, net::Ipv4Addr, sync::Arc};

use zos_chain_client::{AccountId32, NetworkRecord, Node};
use zos_contracts::{
    Deployment, Ipv4Cidr, NetworkAttachment, Workload, WorkloadKind, WorkloadSpec,
};
use zos_host::{
    network::{listen_port, peer_endpoint, Attachment, Cidr, NetworkSpec, Networks, PeerConfig},
    WorkloadId,
};

use super::chain_of;
use crate::engine::{Applied, Driver, DriverError, Observed, RunState};

/// Seconds between keepalives to each peer, so that a member behind NAT stays reachable.
const KEEPALIVE: u16 = 25;

/// What the driver reads from the chain.
pub trait NetworkIndex: Send + Sync + 'static {
    /// `owner`'s network `name`, at the finalized head.
    fn network(&self, owner: &AccountId32, name: &[u8]) -> anyhow::Result<Option<NetworkRecord>>;
    /// A node's record (its WireGuard key and endpoint).
    fn node(&self, node: &AccountId32) -> anyhow::Result<Option<Node>>;
}

/// See the module documentation.
pub struct NetworkDriver {
    networks: Networks,
    index: Arc<dyn NetworkIndex>,
    node: AccountId32,
    endpoint: String,
}

impl NetworkDriver {
    /// Networks made by `networks` for node `node`, whose WireGuard endpoint is `endpoint`
    /// (`host:port`: each network listens on its port plus the network's slot on this node).
    pub fn new(
        networks: Networks,
        index: Arc<dyn NetworkIndex>,
        node: AccountId32,
        endpoint: String,
    ) -> NetworkDriver {
        NetworkDriver {
            networks,
            index,
            node,
            endpoint,
        }
    }

    /// The host's networks.
    pub fn networks(&self) -> &Networks {
        &self.networks
    }

    /// Gives container `name` of `deployment` (contract `contract`) its namespace on the network
    /// it names; returns the namespace's file for its runtime to join.
    pub fn attach(
        &self,
        contract: u64,
        name: &str,
        attachment: &NetworkAttachment,
        deployment: &Deployment,
    ) -> Result<std::path::PathBuf, DriverError> {
        let container = WorkloadId {
            contract,
            name: name.to_string(),
        };
        let place = self.place(&container, attachment, deployment)?;
        let network_name = place.network.name.clone();
        self.networks.attach(&place).map_err(|e| {
            DriverError::Transient(format!("network {network_name}: {}", chain_of(&e)))
        })
    }

    /// Where `workload` of `deployment` is on the network it names: the network workload, its
    /// address, the subnet and the range.
    pub fn place(
        &self,
        workload: &WorkloadId,
        attachment: &NetworkAttachment,
        deployment: &Deployment,
    ) -> Result<Attachment, DriverError> {
        let (contract, name) = (workload.contract, workload.name.as_str());
        let network_name = String::from_utf8_lossy(&attachment.network).into_owned();
        let net = deployment
            .workloads
            .iter()
            .find_map(|w| match &w.spec {
                WorkloadSpec::Network(n) if w.name == attachment.network => Some(n),
                _ => None,
            })
            .ok_or_else(|| {
                DriverError::Permanent(format!("network {network_name} is not in the deployment"))
            })?;
        let ip = address(deployment, &attachment.network, name).ok_or_else(|| {
            DriverError::Permanent(format!(
                "network {network_name}: no address left in subnet {}",
                cidr(&net.subnet)
            ))
        })?;
        Ok(Attachment {
            network: WorkloadId {
                contract,
                name: network_name,
            },
            container: workload.clone(),
            ip,
            subnet: cidr(&net.subnet),
        })
    }

    /// Removes `name`'s namespace (both ends of its veth go with it).
    pub fn detach(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.networks.detach(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }

    /// The contracts with a network of this name on the host (whoever owns them: the host does
    /// not keep owners), for the events that name a network.
    pub fn contracts_with(&self, network: &[u8]) -> anyhow::Result<BTreeSet<u64>> {
        Ok(self
            .networks
            .list()?
            .into_iter()
            .filter(|id| id.name.as_bytes() == network)
            .map(|id| id.contract)
            .collect())
    }

    /// This node's spec of `owner`'s network `name`, from the chain's index.
    fn spec(
        &self,
        contract: u64,
        owner: &[u8; 32],
        name: &str,
        range: Cidr,
        subnet: Cidr,
        egress: bool,
    ) -> Result<NetworkSpec, DriverError> {
        let owner = AccountId32(*owner);
        let record = self
            .index
            .network(&owner, name.as_bytes())
            .map_err(|e| DriverError::transient("reading the network's members", format!("{e:#}")))?
            .ok_or_else(|| {
                DriverError::Transient(format!("network {name} is not in the chain's index yet"))
            })?;
        let me = record
            .members
            .iter()
            .find(|m| m.node == self.node && m.contract_id == contract)
            .ok_or_else(|| {
                DriverError::Transient(format!(
                    "network {name}: this contract is not its member on this node in the chain's index"
                ))
            })?;
        let listen_port = listen_port(&self.endpoint, me.port_offset).ok_or_else(|| {
            DriverError::Permanent(format!(
                "network {name}: this node's endpoint {} has no port for slot {}",
                self.endpoint, me.port_offset
            ))
        })?;
        let peers = self.peers(name, &record)?;
        Ok(NetworkSpec {
            workload: WorkloadId {
                contract,
                name: name.to_string(),
            },
            range,
            subnet,
            listen_port,
            peers,
            egress,
        })
    }
}

impl NetworkDriver {
    /// This node's WireGuard peers on a network of `record`'s members. A member whose node has an
    /// endpoint is dialed there; one behind NAT (no endpoint) is a peer of those with endpoints
    /// only, which it dials and keeps its NAT mapping open to with keepalives. Members behind NAT
    /// reach each other through the relay: the first member, in the order they joined, whose
    /// node has an endpoint. All members must agree on it (WireGuard accepts a relayed packet
    /// only from the peer whose allowed IPs hold its source), so it is chosen from what changes
    /// only with the events that make every member pass again: the index and the node records,
    /// not liveness.
    fn peers(&self, name: &str, record: &NetworkRecord) -> Result<Vec<PeerConfig>, DriverError> {
        let mine = zos_host::network::wireguard::public_key(self.networks.private_key());
        let mut members: Vec<(&zos_chain_client::NetworkMember, Node)> = Vec::new();
        let mut me_behind_nat = false;
        for m in &record.members {
            let node = self
                .index
                .node(&m.node)
                .map_err(|e| DriverError::transient("reading a member node", format!("{e:#}")))?;
            // A member whose node left the grid has no key to reach it by.
            let Some(node) = node else { continue };
            if m.node == self.node {
                me_behind_nat = node.endpoint.is_none();
                continue;
            }
            // A key another member (or this node) claims too is no one's: WireGuard tells peers
            // apart by key.
            if node.wg_public_key == mine
                || members
                    .iter()
                    .any(|(_, n)| n.wg_public_key == node.wg_public_key)
            {
                tracing::warn!(network = name, node = %m.node, "a member's WireGuard key is another's: left out");
                continue;
            }
            members.push((m, node));
        }
        // The relay among the members with endpoints, this node included.
        let relay = record.members.iter().find_map(|m| {
            if m.node == self.node {
                return (!me_behind_nat).then_some(&self.node);
            }
            members
                .iter()
                .find(|(o, n)| o.node == m.node && n.endpoint.is_some())
                .map(|_| &m.node)
        });
        let subnet = |m: &zos_chain_client::NetworkMember| Cidr {
            addr: Ipv4Addr::from(m.subnet.0),
            prefix: m.subnet.1,
        };
        // Behind NAT: the other members behind NAT are reached through the relay.
        let relayed: Vec<Cidr> = if me_behind_nat {
            members
                .iter()
                .filter(|(_, n)| n.endpoint.is_none())
                .map(|(m, _)| subnet(m))
                .collect()
        } else {
            Vec::new()
        };
        if !relayed.is_empty() && relay.is_none() {
            tracing::warn!(
                network = name,
                "members behind NAT and none with an endpoint to relay between them: they cannot reach each other"
            );
        }
        let mut peers = Vec::new();
        for (m, node) in &members {
            let endpoint = match &node.endpoint {
                Some(e) => {
                    let at = peer_endpoint(e, m.port_offset);
                    if at.is_none() {
                        // Kept as a peer: a session it opens (or has) still carries traffic.
                        tracing::warn!(network = name, node = %m.node, endpoint = e, "a member's endpoint does not resolve");
                    }
                    at
                }
                // Behind NAT both: the relay carries it.
                None if me_behind_nat => continue,
                // It dials this node; its address is learnt from what it sends.
                None => None,
            };
            let mut allowed_ips = vec![subnet(m)];
            if relay == Some(&m.node) {
                allowed_ips.extend(relayed.iter().copied());
            }
            peers.push(PeerConfig {
                public_key: node.wg_public_key,
                endpoint,
                allowed_ips,
                keepalive: KEEPALIVE,
            });
        }
        Ok(peers)
    }
}

impl Driver for NetworkDriver {
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>> {
        Ok(self
            .networks
            .list()?
            .into_iter()
            .map(|id| id.contract)
            .collect())
    }

    fn observe(&self, contract: u64) -> anyhow::Result<Vec<Observed>> {
        Ok(self
            .networks
            .list()?
            .into_iter()
            .filter(|id| id.contract == contract)
            .map(|id| Observed {
                name: id.name,
                kind: WorkloadKind::Network,
                version: None,
                state: RunState::Present,
            })
            .collect())
    }

    fn apply(
        &self,
        contract: u64,
        owner: &[u8; 32],
        workload: &Workload,
        _deployment: &Deployment,
    ) -> Result<Applied, DriverError> {
        let WorkloadSpec::Network(n) = &workload.spec else {
            return Err(DriverError::Permanent(format!(
                "the network driver cannot make a {}",
                workload.spec.kind()
            )));
        };
        let name = String::from_utf8_lossy(&workload.name).into_owned();
        let spec = self.spec(
            contract,
            owner,
            &name,
            cidr(&n.range),
            cidr(&n.subnet),
            n.egress,
        )?;
        self.networks
            .ensure(&spec)
            .map(|()| Applied::Done)
            .map_err(|e| DriverError::Transient(format!("network {name}: {}", chain_of(&e))))
    }

    fn remove(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.networks.remove(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }

    fn remove_all(&self, contract: u64) -> anyhow::Result<()> {
        for id in self.networks.attached()? {
            if id.contract == contract {
                self.networks.detach(&id)?;
            }
        }
        for id in self.networks.list()? {
            if id.contract == contract {
                self.networks.remove(&id)?;
            }
        }
        Ok(())
    }

    fn pause(&self, _contract: u64, _name: &str) -> anyhow::Result<()> {
        // Nothing of a network runs on its own: its containers are paused.
        Ok(())
    }

    fn resume(&self, _contract: u64, _name: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

fn cidr(c: &Ipv4Cidr) -> Cidr {
    Cidr {
        addr: Ipv4Addr::from(c.addr),
        prefix: c.prefix,
    }
}

/// The address of workload `name` on `network` of `deployment`: its fixed one, or else the
/// lowest host address of the node's subnet that is not the gateway, another workload's fixed
/// address, or given to a workload before it in the deployment. The same deployment always gives
/// the same addresses; `None` when the subnet is full.
pub fn address(deployment: &Deployment, network: &[u8], name: &str) -> Option<Ipv4Addr> {
    let subnet = deployment.workloads.iter().find_map(|w| match &w.spec {
        WorkloadSpec::Network(n) if w.name[..] == network[..] => Some(n.subnet),
        _ => None,
    })?;
    let attachments: Vec<(&[u8], &NetworkAttachment)> = deployment
        .workloads
        .iter()
        .filter_map(|w| {
            let att = match &w.spec {
                WorkloadSpec::Container(c) => c.network.as_ref(),
                WorkloadSpec::VirtualMachine(vm) => vm.network.as_ref(),
                _ => None,
            }?;
            (att.network[..] == network[..]).then_some((&w.name[..], att))
        })
        .collect();
    let fixed: BTreeSet<[u8; 4]> = attachments.iter().filter_map(|(_, a)| a.ip).collect();
    let base = subnet.base();
    let hosts = (1u64 << (32 - u32::from(subnet.prefix))).saturating_sub(2);
    // Host addresses from the second (the first is the gateway).
    let mut free = (2..=hosts)
        .map(|i| (base + i as u32).to_be_bytes())
        .filter(|ip| !fixed.contains(ip));
    for (w, att) in attachments {
        let ip = match att.ip {
            Some(ip) => ip,
            None => free.next()?,
        };
        if w == name.as_bytes() {
            return Some(Ipv4Addr::from(ip));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use zos_contracts::file::DeploymentFile;

    fn deployment(yaml_workloads: &str) -> Deployment {
        DeploymentFile::from_yaml(&format!("version: 1\nworkloads:\n{yaml_workloads}"))
            .unwrap()
            .into_deployment(None)
            .unwrap()
    }

    const IMAGE: &str = "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

    fn container(name: &str, network: &str, ip: Option<&str>) -> String {
        let ip = ip.map(|ip| format!(", ip: {ip}")).unwrap_or_default();
        format!(
            "  - name: {name}\n    version: 1\n    container: {{ image: {IMAGE}, cpu: 1, memory: 64MiB, rootfs: 64MiB, network: {{ name: {network}{ip} }} }}\n"
        )
    }

    #[test]
    fn addresses_skip_the_gateway_and_fixed_ones_and_follow_the_deployment() {
        let d = deployment(&format!(
            "  - name: net\n    version: 1\n    network: {{ range: 10.20.0.0/16, subnet: 10.20.3.0/29 }}\n{}{}{}{}",
            container("a", "net", None),
            container("b", "net", Some("10.20.3.2")),
            container("c", "net", None),
            container("d", "net", None),
        ));
        let ip = |n| address(&d, b"net", n).map(|ip| ip.to_string());
        assert_eq!(ip("a").as_deref(), Some("10.20.3.3"));
        assert_eq!(ip("b").as_deref(), Some("10.20.3.2"));
        assert_eq!(ip("c").as_deref(), Some("10.20.3.4"));
        assert_eq!(ip("d").as_deref(), Some("10.20.3.5"));
        assert_eq!(ip("nobody"), None);
    }

    /// An index of one network `net` of Bob's, in memory: members (node, contract, third octet
    /// of the subnet, port slot) in the order they joined; nodes 1 (this one), 2, 4, 5 and 6 are
    /// on the grid (those in `behind_nat` without an endpoint), others have left it.
    #[derive(Default)]
    struct FakeIndex {
        members: Vec<(u8, u64, u8, u16)>,
        behind_nat: Vec<u8>,
    }

    fn account(n: u8) -> AccountId32 {
        AccountId32([n; 32])
    }

    impl NetworkIndex for FakeIndex {
        fn network(
            &self,
            owner: &AccountId32,
            name: &[u8],
        ) -> anyhow::Result<Option<NetworkRecord>> {
            if *owner != account(0xb0) || name != b"net" {
                return Ok(None);
            }
            let members = self
                .members
                .iter()
                .map(
                    |&(node, contract_id, third, port_offset)| zos_chain_client::NetworkMember {
                        node: account(node),
                        contract_id,
                        subnet: ([10, 20, third, 0], 24),
                        port_offset,
                    },
                )
                .collect();
            Ok(Some(NetworkRecord {
                range: ([10, 20, 0, 0], 16),
                members,
            }))
        }

        fn node(&self, node: &AccountId32) -> anyhow::Result<Option<Node>> {
            let n = node.0[0];
            let endpoint = match n {
                1 => "10.250.0.1:51820".to_string(),
                2 => "10.250.0.2:40000".to_string(),
                4..=6 => format!("10.250.0.{n}:51820"),
                _ => return Ok(None),
            };
            Ok(Some(Node {
                account: *node,
                farm: 1,
                capacity: Default::default(),
                wg_public_key: [n + 100; 32],
                endpoint: (!self.behind_nat.contains(&n)).then_some(endpoint),
                last_seen: 0,
                uptime: 0,
            }))
        }
    }

    fn driver_of(index: FakeIndex, endpoint: &str) -> NetworkDriver {
        NetworkDriver::new(
            Networks::new("/nonexistent".into(), None, "/nonexistent".into(), [1; 32]),
            Arc::new(index),
            account(1),
            endpoint.into(),
        )
    }

    /// Nodes 2, 1 (this one) and 3 (3 has left the grid), all with endpoints.
    fn driver(endpoint: &str) -> NetworkDriver {
        let members = vec![(2, 7, 2, 3), (1, 9, 1, 2), (3, 8, 3, 0)];
        driver_of(
            FakeIndex {
                members,
                ..FakeIndex::default()
            },
            endpoint,
        )
    }

    fn peer(node: u8, endpoint: Option<&str>, subnets: &[u8]) -> PeerConfig {
        PeerConfig {
            public_key: [node + 100; 32],
            endpoint: endpoint.map(|e| e.parse().unwrap()),
            allowed_ips: subnets
                .iter()
                .map(|t| format!("10.20.{t}.0/24").parse().unwrap())
                .collect(),
            keepalive: KEEPALIVE,
        }
    }

    #[test]
    fn members_behind_nat_dial_those_with_endpoints_and_reach_each_other_through_the_first() {
        let range = "10.20.0.0/16".parse().unwrap();
        let subnet = "10.20.1.0/24".parse().unwrap();
        // Joined in this order: 4 (behind NAT), 2, 1 (this node), 5, 6 (behind NAT). The relay is
        // 2: the first with an endpoint.
        let members = vec![
            (4, 3, 4, 0),
            (2, 7, 2, 0),
            (1, 9, 1, 0),
            (5, 5, 5, 0),
            (6, 6, 6, 0),
        ];
        let spec = |behind_nat: Vec<u8>| {
            driver_of(
                FakeIndex {
                    members: members.clone(),
                    behind_nat,
                },
                "10.250.0.1:51820",
            )
            .spec(9, &[0xb0; 32], "net", range, subnet, false)
            .expect("spec")
            .peers
        };
        // This node has an endpoint: every member is its peer; those behind NAT dial it (no
        // endpoint to send to until they do).
        assert_eq!(
            spec(vec![4, 6]),
            vec![
                peer(4, None, &[4]),
                peer(2, Some("10.250.0.2:40000"), &[2]),
                peer(5, Some("10.250.0.5:51820"), &[5]),
                peer(6, None, &[6]),
            ]
        );
        // This node behind NAT too: it dials the members with endpoints, and the relay carries
        // the subnets of the other members behind NAT.
        assert_eq!(
            spec(vec![1, 4, 6]),
            vec![
                peer(2, Some("10.250.0.2:40000"), &[2, 4, 6]),
                peer(5, Some("10.250.0.5:51820"), &[5]),
            ]
        );
        // This node is the relay (the first with an endpoint): nothing more to carry than its
        // peers' own subnets; the kernel forwards between them.
        assert_eq!(
            spec(vec![2, 4, 6]),
            vec![
                peer(4, None, &[4]),
                peer(2, None, &[2]),
                peer(5, Some("10.250.0.5:51820"), &[5]),
                peer(6, None, &[6]),
            ]
        );
        // The first member with an endpoint moved behind NAT: the next one relays.
        assert_eq!(
            spec(vec![1, 2, 4, 6]),
            vec![peer(5, Some("10.250.0.5:51820"), &[5, 4, 2, 6])]
        );
        // Everyone behind NAT: no one to dial, no relay; nothing is made up.
        assert_eq!(spec(vec![1, 2, 4, 5, 6]), vec![]);
    }

    #[test]
    fn peers_are_the_other_members_at_their_nodes_ports_for_this_network() {
        let range = "10.20.0.0/16".parse().unwrap();
        let subnet = "10.20.1.0/24".parse().unwrap();
        let spec = driver("10.250.0.1:51820")
            .spec(9, &[0xb0; 32], "net", range, subnet, true)
            .expect("spec");
        // This node's slot for the network is 2: its endpoint's port plus 2.
        assert_eq!(spec.listen_port, 51822);
        assert!(spec.egress);
        assert_eq!(spec.workload, WorkloadId::new(9, "net").unwrap());
        // Node 2 at its own endpoint's port plus its slot; node 3 left the grid: no peer.
        assert_eq!(
            spec.peers,
            vec![PeerConfig {
                public_key: [102; 32],
                endpoint: Some("10.250.0.2:40003".parse().unwrap()),
                allowed_ips: vec!["10.20.2.0/24".parse().unwrap()],
                keepalive: KEEPALIVE,
            }]
        );
    }

    #[test]
    fn a_network_the_index_does_not_name_this_member_in_is_retried_and_a_port_past_65535_is_not() {
        let range: Cidr = "10.20.0.0/16".parse().unwrap();
        let subnet: Cidr = "10.20.1.0/24".parse().unwrap();
        let d = driver("10.250.0.1:51820");
        for (contract, owner, name) in [
            (9, [0xb1; 32], "net"),
            (9, [0xb0; 32], "other"),
            (10, [0xb0; 32], "net"),
        ] {
            assert!(
                matches!(
                    d.spec(contract, &owner, name, range, subnet, false),
                    Err(DriverError::Transient(_))
                ),
                "{contract} {name}"
            );
        }
        assert!(matches!(
            driver("10.250.0.1:65534").spec(9, &[0xb0; 32], "net", range, subnet, true),
            Err(DriverError::Permanent(_))
        ));
    }

    #[test]
    fn a_full_subnet_gives_no_address() {
        // A /30 has two hosts: the gateway and one more.
        let d = deployment(&format!(
            "  - name: net\n    version: 1\n    network: {{ range: 10.20.0.0/16, subnet: 10.20.3.0/30 }}\n{}{}",
            container("a", "net", None),
            container("b", "net", None),
        ));
        assert_eq!(address(&d, b"net", "a"), Some(Ipv4Addr::new(10, 20, 3, 2)));
        assert_eq!(address(&d, b"net", "b"), None);
    }
}
