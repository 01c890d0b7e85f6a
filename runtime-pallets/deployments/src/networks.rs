//! The index of private networks.
//!
//! The network workloads of one owner's contracts that share a name form one network across
//! nodes. [`Networks`] keeps, per (owner, name), the range and one member per node: its contract,
//! its subnet and its WireGuard port slot. Creating or updating a contract joins, changes or leaves
//! its networks in the same call, and fails if a member would have another range, a subnet that
//! overlaps another member's, or a node already in the network through another contract. Ending a
//! contract leaves its networks. Every change is an event, so nodes follow their peers without
//! reading the whole index.
//!
//! A node's networks each listen on a port of their own: the node's endpoint port plus the lowest
//! slot free on the node when the member joined ([`NodeNetworkSlots`]).

use crate::{
    pallet::{Config, Error, Event, Networks, NodeNetworkSlots, Pallet},
    ContractId, NetworkMember, NetworkRecord, MAX_NODE_NETWORKS,
};
use alloc::vec::Vec;
use zos_contracts::{Deployment, Name, Network, WorkloadSpec};

/// One bit per network slot of a node.
pub type Slots = [u8; (MAX_NODE_NETWORKS / 8) as usize];

/// The network workloads of a deployment, by name.
pub fn networks_of(deployment: &Deployment) -> impl Iterator<Item = (&Name, &Network)> {
    deployment.workloads.iter().filter_map(|w| match &w.spec {
        WorkloadSpec::Network(n) => Some((&w.name, n)),
        _ => None,
    })
}

impl<T: Config> Pallet<T> {
    /// Brings the index in line with a contract whose network workloads were those of `old`
    /// (none for a new contract) and are now those of `new`. Fails, changing nothing the call
    /// keeps, when a network of `new` cannot take this member.
    pub(crate) fn index_networks(
        owner: &T::AccountId,
        node: &T::AccountId,
        contract_id: ContractId,
        old: Option<&Deployment>,
        new: Option<&Deployment>,
    ) -> Result<(), Error<T>> {
        if let Some(old) = old {
            for (name, _) in networks_of(old) {
                if !new.is_some_and(|new| networks_of(new).any(|(n, _)| n == name)) {
                    Self::leave_network(owner, name, node, contract_id);
                }
            }
        }
        for (name, network) in new.into_iter().flat_map(networks_of) {
            Self::join_network(owner, name, node, contract_id, network)?;
        }
        Ok(())
    }

    /// Takes a contract that ends out of all its networks. Never fails.
    pub(crate) fn leave_networks(
        owner: &T::AccountId,
        node: &T::AccountId,
        contract_id: ContractId,
        deployment: &Deployment,
    ) {
        for (name, _) in networks_of(deployment) {
            Self::leave_network(owner, name, node, contract_id);
        }
    }

    /// Adds the contract's member to the network, or changes its subnet (and, for a sole member,
    /// the range).
    fn join_network(
        owner: &T::AccountId,
        name: &Name,
        node: &T::AccountId,
        contract_id: ContractId,
        network: &Network,
    ) -> Result<(), Error<T>> {
        let is_self =
            |m: &NetworkMember<T::AccountId>| m.node == *node && m.contract_id == contract_id;
        let mut record = Networks::<T>::get(owner, name).unwrap_or(NetworkRecord {
            range: network.range,
            members: Default::default(),
        });
        let mut others = record.members.iter().filter(|m| !is_self(m)).peekable();
        if others.peek().is_some() && record.range != network.range {
            return Err(Error::<T>::NetworkRangeMismatch);
        }
        for m in others {
            if m.node == *node {
                return Err(Error::<T>::NetworkAlreadyOnNode);
            }
            if m.subnet.overlaps(&network.subnet) {
                return Err(Error::<T>::NetworkSubnetOverlap);
            }
        }
        record.range = network.range;
        let event = match record.members.iter_mut().find(|m| is_self(m)) {
            Some(m) if m.subnet == network.subnet => None,
            Some(m) => {
                m.subnet = network.subnet;
                Some(Event::NetworkMemberChanged {
                    owner: owner.clone(),
                    network: name.clone(),
                    node: node.clone(),
                    contract_id,
                    subnet: network.subnet,
                })
            }
            None => {
                let port_offset = Self::take_slot(node)?;
                record
                    .members
                    .try_push(NetworkMember {
                        node: node.clone(),
                        contract_id,
                        subnet: network.subnet,
                        port_offset,
                    })
                    .map_err(|_| Error::<T>::NetworkFull)?;
                Some(Event::NetworkMemberJoined {
                    owner: owner.clone(),
                    network: name.clone(),
                    node: node.clone(),
                    contract_id,
                    subnet: network.subnet,
                    port_offset,
                })
            }
        };
        Networks::<T>::insert(owner, name, record);
        if let Some(event) = event {
            Self::deposit_event(event);
        }
        Ok(())
    }

    /// Removes the contract's member from the network, and the network with its last member.
    fn leave_network(
        owner: &T::AccountId,
        name: &Name,
        node: &T::AccountId,
        contract_id: ContractId,
    ) {
        let Some(mut record) = Networks::<T>::get(owner, name) else {
            return;
        };
        let (gone, kept): (Vec<_>, Vec<_>) = record
            .members
            .into_iter()
            .partition(|m| m.node == *node && m.contract_id == contract_id);
        for m in &gone {
            Self::free_slot(node, m.port_offset);
        }
        if kept.is_empty() {
            Networks::<T>::remove(owner, name);
        } else {
            record.members = kept
                .try_into()
                .expect("kept is a part of what was bounded; qed");
            Networks::<T>::insert(owner, name, record);
        }
        if !gone.is_empty() {
            Self::deposit_event(Event::NetworkMemberLeft {
                owner: owner.clone(),
                network: name.clone(),
                node: node.clone(),
                contract_id,
            });
        }
    }

    /// Takes the node's lowest free network slot.
    pub(crate) fn take_slot(node: &T::AccountId) -> Result<u16, Error<T>> {
        let mut slots = NodeNetworkSlots::<T>::get(node).unwrap_or_default();
        let slot = (0..MAX_NODE_NETWORKS as u16)
            .find(|&i| slots[usize::from(i / 8)] & (1 << (i % 8)) == 0)
            .ok_or(Error::<T>::NodeNetworksFull)?;
        slots[usize::from(slot / 8)] |= 1 << (slot % 8);
        NodeNetworkSlots::<T>::insert(node, slots);
        Ok(slot)
    }

    fn free_slot(node: &T::AccountId, slot: u16) {
        NodeNetworkSlots::<T>::mutate_exists(node, |slots| {
            if let Some(bits) = slots {
                if let Some(byte) = bits.get_mut(usize::from(slot / 8)) {
                    *byte &= !(1 << (slot % 8));
                }
                if bits.iter().all(|b| *b == 0) {
                    *slots = None;
                }
            }
        });
    }

    /// Whether the network index is what the contracts' deployments say, and each node's slots
    /// are those its members hold.
    #[cfg(any(test, feature = "try-runtime"))]
    pub(crate) fn networks_try_state() -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
        use alloc::collections::{btree_map::BTreeMap, btree_set::BTreeSet};
        use polkadot_sdk::frame_support::ensure;
        let cidr = |c: &zos_contracts::Ipv4Cidr| (c.addr, c.prefix);
        let mut expected = BTreeSet::new();
        for (id, c) in crate::pallet::Contracts::<T>::iter() {
            for (name, network) in networks_of(&Self::stored_deployment(id)) {
                expected.insert((
                    c.owner.clone(),
                    name.clone(),
                    c.node.clone(),
                    id,
                    cidr(&network.subnet),
                ));
            }
        }
        let mut found = BTreeSet::new();
        let mut slots: BTreeMap<T::AccountId, Slots> = BTreeMap::new();
        for (owner, name, record) in Networks::<T>::iter() {
            ensure!(
                !record.members.is_empty(),
                "a network without members is kept"
            );
            for (i, m) in record.members.iter().enumerate() {
                ensure!(
                    record.range.covers(&m.subnet),
                    "a member's subnet is outside its range"
                );
                for other in &record.members[i + 1..] {
                    ensure!(
                        other.node != m.node && !other.subnet.overlaps(&m.subnet),
                        "two members share a node or overlap"
                    );
                }
                let bits = slots.entry(m.node.clone()).or_default();
                let (byte, bit) = (usize::from(m.port_offset / 8), 1 << (m.port_offset % 8));
                ensure!(bits[byte] & bit == 0, "two networks of a node share a slot");
                bits[byte] |= bit;
                found.insert((
                    owner.clone(),
                    name.clone(),
                    m.node.clone(),
                    m.contract_id,
                    cidr(&m.subnet),
                ));
            }
        }
        ensure!(
            found == expected,
            "the network index is not what the contracts say"
        );
        ensure!(
            NodeNetworkSlots::<T>::iter().collect::<BTreeMap<_, _>>() == slots,
            "a node's network slots are not those its members hold"
        );
        Ok(())
    }
}
