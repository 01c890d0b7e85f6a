//! # Grid pallet
//!
//! The farms and nodes of the grid. A farm is created by any account and owned by it. A node is
//! registered by the node itself: its account is its ed25519 public key, so the chain knows the
//! key it signs reports with and the key secrets are sealed to. A node states its capacity, its
//! WireGuard public key and endpoint (none for a node behind NAT, which other nodes cannot dial:
//! it dials them), and reports its uptime; its status (up or down) is derived
//! from its last report, or from its own word that it is going down.
//!
//! A node joins a farm only with the farmer's consent: the farm's owner approves the node's
//! account first ([`Pallet::approve_node`]), and the node's registration consumes the approval.
//! So no one can attach a node to someone else's farm, and the farmer is paid only for nodes they
//! chose.
//!
//! Other pallets see nodes through [`NodeRegistry`]; this pallet asks whether a node still
//! carries contracts through [`Config::NodeUsage`] before it lets the node go.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use weights::WeightInfo;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
pub mod weights;

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use polkadot_sdk::{frame_support, frame_system};
use scale_info::TypeInfo;
use zos_contracts::Capacity;

/// A farm's id.
pub type FarmId = u32;

/// Longest farm name, bytes.
pub const MAX_FARM_NAME_LEN: u32 = 64;
/// A farm's name: `[A-Za-z0-9_-]`, 1 to [`MAX_FARM_NAME_LEN`] bytes.
pub type FarmName =
    frame_support::BoundedVec<u8, frame_support::traits::ConstU32<MAX_FARM_NAME_LEN>>;

/// Longest node endpoint (`host:port`), bytes.
pub const MAX_ENDPOINT_LEN: u32 = 128;
/// A node's WireGuard endpoint, `host:port`.
pub type Endpoint =
    frame_support::BoundedVec<u8, frame_support::traits::ConstU32<MAX_ENDPOINT_LEN>>;

/// A farm: a name and an owner, who is paid for its nodes' work.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Farm<AccountId> {
    /// Who created it and is paid.
    pub owner: AccountId,
    /// Unique on the chain.
    pub name: FarmName,
}

/// How a node runs virtual machines, as it found by booting a probe guest.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum Hypervisor {
    /// Hardware virtualization (KVM).
    #[codec(index = 0)]
    Kvm,
    /// QEMU's translator (TCG): runs anywhere, several times slower.
    #[codec(index = 1)]
    Tcg,
}

/// A registered node.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Node<BlockNumber> {
    /// The farm it belongs to.
    pub farm: FarmId,
    /// What it offers.
    pub capacity: Capacity,
    /// Its WireGuard public key (x25519).
    pub wg_public_key: [u8; 32],
    /// Where other nodes reach its WireGuard endpoint, `host:port`; `None` for a node behind
    /// NAT, which no one can dial: it connects out to the nodes that have one.
    pub endpoint: Option<Endpoint>,
    /// The block it registered in.
    pub registered_at: BlockNumber,
    /// Chain time (unix seconds) of its registration or its last accepted uptime report.
    pub last_seen: u64,
    /// Chain time (unix seconds) of its last accepted uptime report.
    pub last_report: Option<u64>,
    /// Seconds the node said it had been up in its last report.
    pub uptime: u64,
    /// Since when (unix seconds) the node has said it is down, until its next uptime report.
    pub down_since: Option<u64>,
    /// Seconds the node was down before its last uptime report, over its whole life: the
    /// stretches it said it was down, and those it was silent past [`Config::OfflineAfter`].
    pub downtime: u64,
}

/// Whether a node is reachable, derived from its last report.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum NodeStatus {
    /// Reported within [`Config::OfflineAfter`].
    Up,
    /// Silent for longer.
    Down,
}

/// What other pallets need to know of a node.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeInfo<AccountId> {
    /// Its farm's owner, who is paid for its work.
    pub farmer: AccountId,
    /// What it offers.
    pub capacity: Capacity,
    /// Whether it is up.
    pub status: NodeStatus,
    /// Seconds it has been down over its whole life, up to now (see [`Node::downtime`]); what
    /// was down between two readings is the difference, and is not billed.
    pub downtime: u64,
}

/// Read access to the registered nodes, for other pallets.
pub trait NodeRegistry<AccountId> {
    /// The node, if registered.
    fn node(node: &AccountId) -> Option<NodeInfo<AccountId>>;
}

/// Whether a node still carries contracts; implemented by the deployments pallet.
pub trait NodeUsage<AccountId> {
    /// Whether any contract names this node.
    fn has_contracts(node: &AccountId) -> bool;
}

impl<AccountId> NodeUsage<AccountId> for () {
    fn has_contracts(_: &AccountId) -> bool {
        false
    }
}

#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use alloc::vec::Vec;
    use frame_support::{pallet_prelude::*, traits::UnixTime};
    use frame_system::pallet_prelude::*;

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    #[pallet::config]
    pub trait Config: polkadot_sdk::frame_system::Config<RuntimeEvent: From<Event<Self>>> {
        /// May remove any farm or node.
        type AdminOrigin: EnsureOrigin<Self::RuntimeOrigin>;
        /// Chain time, to judge uptime reports.
        type UnixTime: UnixTime;
        /// Whether a node still carries contracts.
        type NodeUsage: NodeUsage<Self::AccountId>;
        /// How far (seconds) an uptime report's timestamp may be from chain time.
        #[pallet::constant]
        type UptimeTolerance: Get<u64>;
        /// Fewest seconds between two accepted uptime reports of one node.
        #[pallet::constant]
        type MinUptimeInterval: Get<u64>;
        /// Seconds without a report after which a node counts as down.
        #[pallet::constant]
        type OfflineAfter: Get<u64>;
        /// Weights of this pallet's calls.
        type WeightInfo: WeightInfo;
    }

    /// The next farm id.
    #[pallet::storage]
    pub type NextFarmId<T> = StorageValue<_, FarmId, ValueQuery>;

    /// Farms by id.
    #[pallet::storage]
    pub type Farms<T: Config> = StorageMap<_, Blake2_128Concat, FarmId, Farm<T::AccountId>>;

    /// Farm ids by name; names are unique.
    #[pallet::storage]
    pub type FarmIdByName<T> = StorageMap<_, Blake2_128Concat, FarmName, FarmId>;

    /// Nodes by account (the node's ed25519 public key).
    #[pallet::storage]
    pub type Nodes<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, Node<BlockNumberFor<T>>>;

    /// Nodes the farm's owner approved and that have not registered yet.
    #[pallet::storage]
    pub type NodeApprovals<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, FarmId, Blake2_128Concat, T::AccountId, ()>;

    /// How each node that runs VMs runs them; a node absent here runs none.
    #[pallet::storage]
    pub type NodeHypervisors<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, Hypervisor>;

    /// The nodes of each farm.
    #[pallet::storage]
    pub type FarmNodes<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, FarmId, Blake2_128Concat, T::AccountId, ()>;

    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    // Field names say what they hold; the variant's comment says what happened.
    #[allow(missing_docs)]
    pub enum Event<T: Config> {
        /// A farm was created.
        FarmCreated {
            farm: FarmId,
            owner: T::AccountId,
            name: FarmName,
        },
        /// A farm was removed.
        FarmRemoved { farm: FarmId },
        /// A node registered.
        NodeRegistered {
            node: T::AccountId,
            farm: FarmId,
            capacity: Capacity,
        },
        /// A node changed its capacity, WireGuard key or endpoint.
        NodeUpdated {
            node: T::AccountId,
            capacity: Capacity,
        },
        /// A node reported its uptime.
        UptimeReported {
            node: T::AccountId,
            uptime: u64,
            timestamp: u64,
        },
        /// A node was removed.
        NodeRemoved { node: T::AccountId, farm: FarmId },
        /// A farm's owner approved a node, which may now register under the farm.
        NodeApproved { farm: FarmId, node: T::AccountId },
        /// A node said it is going down; it is down until its next uptime report.
        NodeWentDown { node: T::AccountId, at: u64 },
        /// A node said how it runs VMs (`None`: it runs none).
        NodeHypervisorSet {
            node: T::AccountId,
            hypervisor: Option<Hypervisor>,
        },
    }

    #[pallet::error]
    pub enum Error<T> {
        /// The farm name is empty, too long, or has characters other than `[A-Za-z0-9_-]`.
        InvalidFarmName,
        /// Another farm has this name.
        FarmNameTaken,
        /// No farm has this id.
        UnknownFarm,
        /// Only the farm's owner may do this.
        NotFarmOwner,
        /// The farm still has nodes.
        FarmHasNodes,
        /// This account is already a registered node.
        NodeExists,
        /// No node is registered under this account.
        UnknownNode,
        /// Only the node itself or its farm's owner may do this.
        NotNodeOrFarmer,
        /// A node must offer some CPU and memory.
        NoCapacity,
        /// The endpoint is empty, too long, or not `host:port`.
        InvalidEndpoint,
        /// The report's timestamp is further from chain time than the tolerance.
        TimestampOutOfRange,
        /// The node reported its uptime too recently.
        ReportTooEarly,
        /// Contracts still name this node.
        NodeHasContracts,
        /// No more farm ids.
        FarmIdOverflow,
        /// The farm's owner has not approved this node (`approve_node`).
        NodeNotApproved,
        /// The node already said it is down.
        AlreadyDown,
        /// The node already said this of its hypervisor.
        HypervisorUnchanged,
    }

    #[pallet::call]
    impl<T: Config> Pallet<T> {
        /// Creates a farm owned by the caller, under a unique name.
        #[pallet::call_index(0)]
        #[pallet::weight(T::WeightInfo::create_farm())]
        pub fn create_farm(origin: OriginFor<T>, name: Vec<u8>) -> DispatchResult {
            let owner = ensure_signed(origin)?;
            let name: FarmName = name.try_into().map_err(|_| Error::<T>::InvalidFarmName)?;
            ensure!(
                !name.is_empty()
                    && name
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'),
                Error::<T>::InvalidFarmName
            );
            ensure!(
                !FarmIdByName::<T>::contains_key(&name),
                Error::<T>::FarmNameTaken
            );
            let farm = NextFarmId::<T>::get();
            let next = farm.checked_add(1).ok_or(Error::<T>::FarmIdOverflow)?;
            NextFarmId::<T>::put(next);
            FarmIdByName::<T>::insert(&name, farm);
            Farms::<T>::insert(
                farm,
                Farm {
                    owner: owner.clone(),
                    name: name.clone(),
                },
            );
            Self::deposit_event(Event::FarmCreated { farm, owner, name });
            Ok(())
        }

        /// Registers the calling account as a node of `farm`.
        #[pallet::call_index(1)]
        #[pallet::weight(T::WeightInfo::register_node())]
        pub fn register_node(
            origin: OriginFor<T>,
            farm: FarmId,
            capacity: Capacity,
            wg_public_key: [u8; 32],
            endpoint: Option<Vec<u8>>,
        ) -> DispatchResult {
            let node = ensure_signed(origin)?;
            ensure!(!Nodes::<T>::contains_key(&node), Error::<T>::NodeExists);
            ensure!(Farms::<T>::contains_key(farm), Error::<T>::UnknownFarm);
            ensure!(
                NodeApprovals::<T>::contains_key(farm, &node),
                Error::<T>::NodeNotApproved
            );
            ensure!(
                capacity.cpu_millis > 0 && capacity.mru > 0,
                Error::<T>::NoCapacity
            );
            let endpoint = endpoint.map(Self::endpoint).transpose()?;
            Nodes::<T>::insert(
                &node,
                Node {
                    farm,
                    capacity,
                    wg_public_key,
                    endpoint,
                    registered_at: frame_system::Pallet::<T>::block_number(),
                    last_seen: T::UnixTime::now().as_secs(),
                    last_report: None,
                    uptime: 0,
                    down_since: None,
                    downtime: 0,
                },
            );
            NodeApprovals::<T>::remove(farm, &node);
            FarmNodes::<T>::insert(farm, &node, ());
            Self::deposit_event(Event::NodeRegistered {
                node,
                farm,
                capacity,
            });
            Ok(())
        }

        /// Changes the calling node's capacity, WireGuard key and endpoint.
        #[pallet::call_index(2)]
        #[pallet::weight(T::WeightInfo::update_node())]
        pub fn update_node(
            origin: OriginFor<T>,
            capacity: Capacity,
            wg_public_key: [u8; 32],
            endpoint: Option<Vec<u8>>,
        ) -> DispatchResult {
            let node = ensure_signed(origin)?;
            ensure!(
                capacity.cpu_millis > 0 && capacity.mru > 0,
                Error::<T>::NoCapacity
            );
            let endpoint = endpoint.map(Self::endpoint).transpose()?;
            Nodes::<T>::try_mutate(&node, |n| {
                let n = n.as_mut().ok_or(Error::<T>::UnknownNode)?;
                n.capacity = capacity;
                n.wg_public_key = wg_public_key;
                n.endpoint = endpoint;
                Ok::<_, Error<T>>(())
            })?;
            Self::deposit_event(Event::NodeUpdated { node, capacity });
            Ok(())
        }

        /// The calling node says it has been up `uptime` seconds at chain time `timestamp`.
        /// Free of fees when accepted; at most one per [`Config::MinUptimeInterval`].
        #[pallet::call_index(3)]
        #[pallet::weight(T::WeightInfo::report_uptime())]
        pub fn report_uptime(
            origin: OriginFor<T>,
            uptime: u64,
            timestamp: u64,
        ) -> DispatchResultWithPostInfo {
            let node = ensure_signed(origin)?;
            let now = T::UnixTime::now().as_secs();
            ensure!(
                now.abs_diff(timestamp) <= T::UptimeTolerance::get(),
                Error::<T>::TimestampOutOfRange
            );
            Nodes::<T>::try_mutate(&node, |n| {
                let n = n.as_mut().ok_or(Error::<T>::UnknownNode)?;
                let too_early = n
                    .last_report
                    .is_some_and(|last| now < last.saturating_add(T::MinUptimeInterval::get()));
                ensure!(!too_early, Error::<T>::ReportTooEarly);
                n.downtime = Self::downtime_at(n, now);
                n.down_since = None;
                n.last_seen = now;
                n.last_report = Some(now);
                n.uptime = uptime;
                Ok::<_, Error<T>>(())
            })?;
            Self::deposit_event(Event::UptimeReported {
                node,
                uptime,
                timestamp,
            });
            Ok(Pays::No.into())
        }

        /// Removes a node that no contract names. Called by the node itself or its farm's owner.
        #[pallet::call_index(4)]
        #[pallet::weight(T::WeightInfo::remove_node())]
        pub fn remove_node(origin: OriginFor<T>, node: T::AccountId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let n = Nodes::<T>::get(&node).ok_or(Error::<T>::UnknownNode)?;
            let farmer = Farms::<T>::get(n.farm).map(|f| f.owner);
            ensure!(
                who == node || farmer.as_ref() == Some(&who),
                Error::<T>::NotNodeOrFarmer
            );
            Self::do_remove_node(node, n.farm)
        }

        /// Removes a farm without nodes. Called by its owner.
        #[pallet::call_index(5)]
        #[pallet::weight(T::WeightInfo::remove_farm())]
        pub fn remove_farm(origin: OriginFor<T>, farm: FarmId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let f = Farms::<T>::get(farm).ok_or(Error::<T>::UnknownFarm)?;
            ensure!(f.owner == who, Error::<T>::NotFarmOwner);
            Self::do_remove_farm(farm, f)
        }

        /// Removes any node that no contract names. Admin origin.
        #[pallet::call_index(6)]
        #[pallet::weight(T::WeightInfo::remove_node())]
        pub fn force_remove_node(origin: OriginFor<T>, node: T::AccountId) -> DispatchResult {
            T::AdminOrigin::ensure_origin(origin)?;
            let n = Nodes::<T>::get(&node).ok_or(Error::<T>::UnknownNode)?;
            Self::do_remove_node(node, n.farm)
        }

        /// Removes any farm without nodes. Admin origin.
        #[pallet::call_index(7)]
        #[pallet::weight(T::WeightInfo::remove_farm())]
        pub fn force_remove_farm(origin: OriginFor<T>, farm: FarmId) -> DispatchResult {
            T::AdminOrigin::ensure_origin(origin)?;
            let f = Farms::<T>::get(farm).ok_or(Error::<T>::UnknownFarm)?;
            Self::do_remove_farm(farm, f)
        }

        /// The farm's owner lets `node` register under `farm`; the registration consumes it.
        #[pallet::call_index(8)]
        #[pallet::weight(T::WeightInfo::approve_node())]
        pub fn approve_node(
            origin: OriginFor<T>,
            farm: FarmId,
            node: T::AccountId,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let f = Farms::<T>::get(farm).ok_or(Error::<T>::UnknownFarm)?;
            ensure!(f.owner == who, Error::<T>::NotFarmOwner);
            ensure!(!Nodes::<T>::contains_key(&node), Error::<T>::NodeExists);
            NodeApprovals::<T>::insert(farm, &node, ());
            Self::deposit_event(Event::NodeApproved { farm, node });
            Ok(())
        }

        /// The calling node says it is going down (a shutdown, maintenance): from now until its
        /// next uptime report it is down, takes no new contracts, and its contracts are not
        /// billed for the time.
        #[pallet::call_index(9)]
        #[pallet::weight(T::WeightInfo::report_down())]
        pub fn report_down(origin: OriginFor<T>) -> DispatchResult {
            let node = ensure_signed(origin)?;
            let now = T::UnixTime::now().as_secs();
            Nodes::<T>::try_mutate(&node, |n| {
                let n = n.as_mut().ok_or(Error::<T>::UnknownNode)?;
                ensure!(
                    Self::node_status(n) == NodeStatus::Up,
                    Error::<T>::AlreadyDown
                );
                n.down_since = Some(now);
                Ok::<_, Error<T>>(())
            })?;
            Self::deposit_event(Event::NodeWentDown { node, at: now });
            Ok(())
        }

        /// The calling node says how it runs VMs: with KVM, with TCG, or not at all (`None`).
        /// Users read it before they deploy a VM there.
        #[pallet::call_index(10)]
        #[pallet::weight(T::WeightInfo::set_hypervisor())]
        pub fn set_hypervisor(
            origin: OriginFor<T>,
            hypervisor: Option<Hypervisor>,
        ) -> DispatchResult {
            let node = ensure_signed(origin)?;
            ensure!(Nodes::<T>::contains_key(&node), Error::<T>::UnknownNode);
            ensure!(
                NodeHypervisors::<T>::get(&node) != hypervisor,
                Error::<T>::HypervisorUnchanged
            );
            NodeHypervisors::<T>::set(&node, hypervisor);
            Self::deposit_event(Event::NodeHypervisorSet { node, hypervisor });
            Ok(())
        }
    }

    impl<T: Config> Pallet<T> {
        /// When the node's current down stretch started, if it is down at `now`: when it said so,
        /// or [`Config::OfflineAfter`] after it was last seen.
        fn down_from(node: &Node<BlockNumberFor<T>>, now: u64) -> Option<u64> {
            let silent_from = node.last_seen.saturating_add(T::OfflineAfter::get());
            match node.down_since {
                Some(since) => Some(since.min(silent_from)),
                None if now > silent_from => Some(silent_from),
                None => None,
            }
        }

        /// Seconds the node has been down over its life, up to `now`.
        pub fn downtime_at(node: &Node<BlockNumberFor<T>>, now: u64) -> u64 {
            let current = Self::down_from(node, now).map_or(0, |from| now.saturating_sub(from));
            node.downtime.saturating_add(current)
        }

        fn endpoint(endpoint: Vec<u8>) -> Result<Endpoint, Error<T>> {
            let endpoint: Endpoint = endpoint
                .try_into()
                .map_err(|_| Error::<T>::InvalidEndpoint)?;
            let valid = core::str::from_utf8(&endpoint)
                .ok()
                .and_then(|e| e.rsplit_once(':'))
                .is_some_and(|(host, port)| {
                    !host.is_empty()
                        && host
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                        && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
            ensure!(valid, Error::<T>::InvalidEndpoint);
            Ok(endpoint)
        }

        fn do_remove_node(node: T::AccountId, farm: FarmId) -> DispatchResult {
            ensure!(
                !T::NodeUsage::has_contracts(&node),
                Error::<T>::NodeHasContracts
            );
            Nodes::<T>::remove(&node);
            NodeHypervisors::<T>::remove(&node);
            FarmNodes::<T>::remove(farm, &node);
            Self::deposit_event(Event::NodeRemoved { node, farm });
            Ok(())
        }

        fn do_remove_farm(farm: FarmId, f: Farm<T::AccountId>) -> DispatchResult {
            ensure!(
                FarmNodes::<T>::iter_prefix(farm).next().is_none(),
                Error::<T>::FarmHasNodes
            );
            Farms::<T>::remove(farm);
            FarmIdByName::<T>::remove(&f.name);
            Self::deposit_event(Event::FarmRemoved { farm });
            Ok(())
        }

        /// A node's status at the current chain time.
        pub fn node_status(node: &Node<BlockNumberFor<T>>) -> NodeStatus {
            let now = T::UnixTime::now().as_secs();
            if node.down_since.is_none()
                && now.saturating_sub(node.last_seen) <= T::OfflineAfter::get()
            {
                NodeStatus::Up
            } else {
                NodeStatus::Down
            }
        }
    }

    impl<T: Config> NodeRegistry<T::AccountId> for Pallet<T> {
        fn node(node: &T::AccountId) -> Option<NodeInfo<T::AccountId>> {
            let n = Nodes::<T>::get(node)?;
            let farmer = Farms::<T>::get(n.farm)?.owner;
            Some(NodeInfo {
                farmer,
                capacity: n.capacity,
                status: Self::node_status(&n),
                downtime: Self::downtime_at(&n, T::UnixTime::now().as_secs()),
            })
        }
    }
}
