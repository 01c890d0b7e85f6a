//! # Deployments pallet
//!
//! Deployment contracts: what must run on which node, who pays for it, and what the node says
//! about it.
//!
//! - A contract stores the whole SCALE-encoded [`Deployment`] (at most
//!   [`zos_contracts::limits::MAX_ENCODED_LEN`] bytes) and its canonical hash, so a node rebuilds
//!   its work from the chain alone. It is validated with `zos-contracts` and reserves its capacity
//!   on the node. Only its owner (possibly a multisig account) updates or cancels it.
//! - Nodes report workload states and consumption, signed by the node the contract names. Accepted
//!   reports are free; at most one per contract per [`Config::MinReportInterval`].
//! - Billing runs in `on_initialize` over one bucket of contracts per block (see [`billing`]):
//!   reserved capacity per hour plus consumption, paid from the owner to the farm's owner. An owner
//!   who cannot pay puts the contract in a grace period (nodes pause it); paying resumes it; the
//!   end of the grace period deletes it.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use types::*;
pub use weights::WeightInfo;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
pub mod billing;
#[cfg(test)]
mod mock;
pub mod networks;
#[cfg(test)]
mod tests;
mod types;
pub mod weights;

use polkadot_sdk::{frame_support, frame_system, sp_runtime};
use zos_contracts::{Capacity, Deployment, Ipv4Cidr, Name};

/// Test and benchmark hooks the runtime provides.
#[cfg(feature = "runtime-benchmarks")]
pub trait BenchmarkHelper<AccountId> {
    /// Sets chain time, unix seconds.
    fn set_time(secs: u64);
    /// Registers `node` with `capacity` under a farm owned by `farmer`.
    fn register_node(node: &AccountId, farmer: &AccountId, capacity: Capacity);
}

#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use alloc::vec::Vec;
    use frame_support::{
        pallet_prelude::*,
        traits::{
            fungible::{Inspect, Mutate, MutateHold},
            tokens::{Fortitude, Precision, Preservation, Restriction},
            UnixTime,
        },
    };
    use frame_system::pallet_prelude::*;
    use pallet_grid::{NodeInfo, NodeRegistry, NodeStatus};
    use sp_runtime::{traits::Zero, SaturatedConversion, Saturating};

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    #[pallet::config]
    pub trait Config: polkadot_sdk::frame_system::Config<RuntimeEvent: From<Event<Self>>> {
        /// The currency contracts are paid in; deposits and reserves are held in it.
        type Currency: Mutate<Self::AccountId>
            + MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;
        /// The runtime's hold reasons, of which this pallet's [`HoldReason`] is a part.
        type RuntimeHoldReason: From<HoldReason>;
        /// The registered nodes.
        type Nodes: NodeRegistry<Self::AccountId>;
        /// Sets prices.
        type AdminOrigin: EnsureOrigin<Self::RuntimeOrigin>;
        /// Chain time.
        type UnixTime: UnixTime;
        /// Seconds between two bills of one contract (at least: see [`billing`]).
        #[pallet::constant]
        type BillingPeriod: Get<u64>;
        /// Seconds a contract stays in its grace period before it is deleted.
        #[pallet::constant]
        type GracePeriod: Get<u64>;
        /// Most contracts billed in one block; the rest wait for the next.
        #[pallet::constant]
        type MaxBillsPerBlock: Get<u32>;
        /// Most seconds of the billing queue one block walks, so that a chain that stood still
        /// catches up over several blocks.
        #[pallet::constant]
        type MaxBillingSecondsPerBlock: Get<u32>;
        /// Most live contracts one owner may have.
        #[pallet::constant]
        type MaxContractsPerOwner: Get<u32>;
        /// Most live contracts one node may carry.
        #[pallet::constant]
        type MaxContractsPerNode: Get<u32>;
        /// Held per contract for the records every contract has, whatever its size.
        #[pallet::constant]
        type DepositBase: Get<BalanceOf<Self>>;
        /// Held per byte of the deployment and of the workload states the node may report.
        #[pallet::constant]
        type DepositPerByte: Get<BalanceOf<Self>>;
        /// Fewest seconds between two accepted reports of one kind for one contract.
        #[pallet::constant]
        type MinReportInterval: Get<u64>;
        /// Contracts in one consumption report.
        #[pallet::constant]
        type MaxReportContracts: Get<u32>;
        /// Most traffic (received and sent) a contract may be reported for, bytes per second.
        #[pallet::constant]
        type MaxNetworkBytesPerSecond: Get<u64>;
        /// Weights of this pallet's calls and of billing.
        type WeightInfo: WeightInfo;
        /// Hooks for benchmarks.
        #[cfg(feature = "runtime-benchmarks")]
        type BenchmarkHelper: BenchmarkHelper<Self::AccountId>;
    }

    /// Why this pallet holds an owner's funds.
    #[pallet::composite_enum]
    pub enum HoldReason {
        /// Pays for the bytes a contract keeps in storage; returned when it ends.
        StorageDeposit,
        /// A contract's first billing period, held from its creation to its end.
        BillingReserve,
    }

    /// The next contract id.
    #[pallet::storage]
    pub type NextContractId<T> = StorageValue<_, ContractId, ValueQuery>;

    /// Contracts by id.
    #[pallet::storage]
    pub type Contracts<T: Config> =
        StorageMap<_, Twox64Concat, ContractId, Contract<T::AccountId, BalanceOf<T>>>;

    /// Each contract's deployment, SCALE-encoded as validated.
    #[pallet::storage]
    pub type ContractDeployment<T: Config> =
        StorageMap<_, Twox64Concat, ContractId, EncodedDeployment>;

    /// The contracts naming each node.
    #[pallet::storage]
    pub type ContractsByNode<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, ContractId, ()>;

    /// The contracts of each owner.
    #[pallet::storage]
    pub type ContractsByOwner<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, ContractId, ()>;

    /// How many live contracts each owner has.
    #[pallet::storage]
    pub type OwnerContractCount<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, u32, ValueQuery>;

    /// How many live contracts each node carries.
    #[pallet::storage]
    pub type NodeContractCount<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, u32, ValueQuery>;

    /// Capacity reserved on each node by its contracts.
    #[pallet::storage]
    pub type Reserved<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, Capacity, ValueQuery>;

    /// The latest workload states the node reported for each contract.
    #[pallet::storage]
    pub type WorkloadStates<T: Config> = StorageMap<_, Twox64Concat, ContractId, StateReport>;

    /// Consumption of each contract: reported but not yet billed, in total, and what may still be
    /// reported.
    #[pallet::storage]
    pub type Usage<T: Config> = StorageMap<_, Twox64Concat, ContractId, UsageRecord, ValueQuery>;

    /// The billing queue: the contracts to bill at each chain second (unix seconds).
    #[pallet::storage]
    pub type BillingQueue<T: Config> =
        StorageDoubleMap<_, Twox64Concat, u64, Twox64Concat, ContractId, ()>;

    /// The first second of the billing queue not yet walked.
    #[pallet::storage]
    pub type BillingCursor<T> = StorageValue<_, u64>;

    /// Prices, set by the admin origin.
    #[pallet::storage]
    pub type Prices<T> = StorageValue<_, Pricing, ValueQuery>;

    /// The private networks, by owner and name: range and members (see [`networks`]).
    #[pallet::storage]
    pub type Networks<T: Config> = StorageDoubleMap<
        _,
        Blake2_128Concat,
        T::AccountId,
        Blake2_128Concat,
        Name,
        NetworkRecord<T::AccountId>,
    >;

    /// Which of a node's [`MAX_NODE_NETWORKS`] network slots (WireGuard ports) are taken, one
    /// bit each, lowest slot in the lowest bit of the first byte.
    #[pallet::storage]
    pub type NodeNetworkSlots<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, networks::Slots>;

    #[pallet::genesis_config]
    #[derive(frame_support::DefaultNoBound)]
    pub struct GenesisConfig<T: Config> {
        /// Prices at genesis.
        pub pricing: Pricing,
        #[serde(skip)]
        #[allow(missing_docs)]
        pub _config: core::marker::PhantomData<T>,
    }

    #[pallet::genesis_build]
    impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
        fn build(&self) {
            Prices::<T>::put(self.pricing);
        }
    }

    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    // Field names say what they hold; the variant's comment says what happened.
    #[allow(missing_docs)]
    pub enum Event<T: Config> {
        /// A contract was created.
        ContractCreated {
            contract_id: ContractId,
            node: T::AccountId,
            owner: T::AccountId,
            version: u32,
            hash: [u8; 32],
        },
        /// A contract's deployment was replaced by a newer version.
        ContractUpdated {
            contract_id: ContractId,
            node: T::AccountId,
            owner: T::AccountId,
            version: u32,
            hash: [u8; 32],
        },
        /// The owner canceled a contract; its node tears it down.
        ContractCanceled {
            contract_id: ContractId,
            node: T::AccountId,
            owner: T::AccountId,
        },
        /// The node reported its workloads' states.
        WorkloadsReported {
            contract_id: ContractId,
            node: T::AccountId,
            version: u32,
        },
        /// A node reported consumption for some of its contracts.
        ConsumptionReported { node: T::AccountId, contracts: u32 },
        /// A contract was billed and paid.
        ContractBilled {
            contract_id: ContractId,
            owner: T::AccountId,
            farmer: T::AccountId,
            amount: BalanceOf<T>,
        },
        /// The owner could not pay: the node pauses the workloads.
        GracePeriodStarted {
            contract_id: ContractId,
            node: T::AccountId,
            owner: T::AccountId,
            unpaid: BalanceOf<T>,
        },
        /// The owner paid what was due: the node resumes the workloads.
        GracePeriodEnded {
            contract_id: ContractId,
            node: T::AccountId,
            owner: T::AccountId,
            paid: BalanceOf<T>,
        },
        /// The chain deleted a contract; its node tears it down.
        ContractDeleted {
            contract_id: ContractId,
            node: T::AccountId,
            owner: T::AccountId,
            cause: DeletionCause,
        },
        /// A contract ended owing more than its owner had, free and held: the rest is forgiven.
        DebtForgiven {
            contract_id: ContractId,
            owner: T::AccountId,
            amount: BalanceOf<T>,
        },
        /// Prices changed.
        PricingSet { pricing: Pricing },
        /// A contract put a node into its owner's private network.
        NetworkMemberJoined {
            owner: T::AccountId,
            network: Name,
            node: T::AccountId,
            contract_id: ContractId,
            subnet: Ipv4Cidr,
            port_offset: u16,
        },
        /// A member of a private network changed its subnet.
        NetworkMemberChanged {
            owner: T::AccountId,
            network: Name,
            node: T::AccountId,
            contract_id: ContractId,
            subnet: Ipv4Cidr,
        },
        /// A node left a private network: its contract dropped the network workload or ended.
        NetworkMemberLeft {
            owner: T::AccountId,
            network: Name,
            node: T::AccountId,
            contract_id: ContractId,
        },
    }

    #[pallet::error]
    pub enum Error<T> {
        /// The deployment breaks a rule of `zos-contracts`; the reason says which.
        InvalidDeployment(InvalidReason),
        /// No node is registered under this account.
        UnknownNode,
        /// The node has not reported recently enough to take new work.
        NodeDown,
        /// The node lacks the free capacity this deployment reserves.
        InsufficientCapacity,
        /// The owner cannot hold the storage deposit and the first billing period of this
        /// deployment.
        InsufficientBalance,
        /// No contract has this id.
        ContractNotFound,
        /// Only the contract's owner may do this.
        NotOwner,
        /// An update must carry a higher deployment version.
        VersionNotGrowing,
        /// The update changes a workload in a way its node would not apply; the refusal names
        /// the rule and the workload's position in the new deployment.
        UpdateRefused(UpdateRefusal),
        /// Only the node the contract names may report on it.
        NotContractNode,
        /// This contract was reported on too recently.
        ReportTooEarly,
        /// The report is about a deployment version the contract never had.
        UnknownVersion,
        /// The report is about an older deployment version than the last accepted one.
        StaleReport,
        /// The report says nothing the chain does not know: no workloads or contracts, or the
        /// same states as the last report.
        EmptyReport,
        /// The report names a workload twice.
        DuplicateWorkloadReport,
        /// The consumption report names a contract twice.
        DuplicateContractReport,
        /// More CPU time than the contract reserved over its life.
        CpuOverReservation,
        /// A memory peak above what the contract reserved.
        MemoryOverReservation,
        /// More traffic than the chain's bound per second over the contract's life.
        NetworkOverBound,
        /// The owner has as many live contracts as it may.
        TooManyOwnerContracts,
        /// The node carries as many live contracts as it may.
        TooManyNodeContracts,
        /// No more contract ids.
        ContractIdOverflow,
        /// The owner's network of this name has another range.
        NetworkRangeMismatch,
        /// The subnet overlaps another member's subnet of the owner's network of this name.
        NetworkSubnetOverlap,
        /// Another contract of the owner already puts this node into the network of this name:
        /// a network has one subnet per node.
        NetworkAlreadyOnNode,
        /// The network has as many members as it may ([`MAX_NETWORK_MEMBERS`]).
        NetworkFull,
        /// The node takes part in as many networks as it may ([`MAX_NODE_NETWORKS`]).
        NodeNetworksFull,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn on_initialize(_n: BlockNumberFor<T>) -> Weight {
            let (bills, seconds) = Self::bill_due(T::UnixTime::now().as_secs());
            T::WeightInfo::bill_due(bills, seconds)
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call]
    impl<T: Config> Pallet<T> {
        /// Creates a contract for `deployment` on `node`, owned by the caller. Holds the storage
        /// deposit and the first billing period from the caller.
        #[pallet::call_index(0)]
        #[pallet::weight(T::WeightInfo::create_contract())]
        pub fn create_contract(
            origin: OriginFor<T>,
            node: T::AccountId,
            deployment: Deployment,
        ) -> DispatchResult {
            let owner = ensure_signed(origin)?;
            let encoded = Self::check(&deployment)?;
            let info = T::Nodes::node(&node).ok_or(Error::<T>::UnknownNode)?;
            ensure!(info.status == NodeStatus::Up, Error::<T>::NodeDown);
            let capacity = deployment.capacity();
            let reserved = Reserved::<T>::get(&node)
                .checked_add(&capacity)
                .ok_or(Error::<T>::InsufficientCapacity)?;
            ensure!(
                info.capacity.fits(&reserved),
                Error::<T>::InsufficientCapacity
            );
            let owner_count = OwnerContractCount::<T>::get(&owner);
            ensure!(
                owner_count < T::MaxContractsPerOwner::get(),
                Error::<T>::TooManyOwnerContracts
            );
            let node_count = NodeContractCount::<T>::get(&node);
            ensure!(
                node_count < T::MaxContractsPerNode::get(),
                Error::<T>::TooManyNodeContracts
            );

            let deposit = Self::deposit_for(&deployment, encoded.len());
            let reserve = Self::reserve_for(&capacity);
            Self::hold(HoldReason::StorageDeposit, &owner, deposit)?;
            Self::hold(HoldReason::BillingReserve, &owner, reserve)?;

            let contract_id = NextContractId::<T>::get();
            NextContractId::<T>::put(
                contract_id
                    .checked_add(1)
                    .ok_or(Error::<T>::ContractIdOverflow)?,
            );
            let now = T::UnixTime::now().as_secs();
            let next_bill = now.saturating_add(T::BillingPeriod::get().max(1));
            BillingQueue::<T>::insert(next_bill, contract_id, ());
            // The queue is walked from here on; nothing is queued before it.
            if !BillingCursor::<T>::exists() {
                BillingCursor::<T>::put(now);
            }
            Self::index_networks(&owner, &node, contract_id, None, Some(&deployment))?;
            let hash = zos_contracts::hash_encoded(&encoded);
            ContractDeployment::<T>::insert(contract_id, encoded);
            Contracts::<T>::insert(
                contract_id,
                Contract {
                    owner: owner.clone(),
                    node: node.clone(),
                    version: deployment.version,
                    hash,
                    capacity,
                    unsupported: Capacity::default(),
                    state: ContractState::Active,
                    created_at: now,
                    last_billed: now,
                    downtime_mark: info.downtime,
                    next_bill,
                    unpaid: Zero::zero(),
                    deposit,
                    reserve,
                },
            );
            Usage::<T>::insert(
                contract_id,
                UsageRecord {
                    memory_allowance: capacity.mru,
                    // A few seconds of headroom for the edges of the node's sampling.
                    allowance_at: now.saturating_sub(billing::ALLOWANCE_HEADROOM_SECS),
                    ..Default::default()
                },
            );
            Reserved::<T>::insert(&node, reserved);
            ContractsByNode::<T>::insert(&node, contract_id, ());
            ContractsByOwner::<T>::insert(&owner, contract_id, ());
            OwnerContractCount::<T>::insert(&owner, owner_count.saturating_add(1));
            NodeContractCount::<T>::insert(&node, node_count.saturating_add(1));
            Self::deposit_event(Event::ContractCreated {
                contract_id,
                node,
                owner,
                version: deployment.version,
                hash,
            });
            Ok(())
        }

        /// Replaces a contract's deployment with a higher version. Owner only. Every workload
        /// that changed must raise its own version, and no volume or disk may shrink (see
        /// [`zos_contracts::check_update`]); the deposit and the reserve follow the new size.
        #[pallet::call_index(1)]
        #[pallet::weight(T::WeightInfo::update_contract())]
        pub fn update_contract(
            origin: OriginFor<T>,
            contract_id: ContractId,
            deployment: Deployment,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut contract =
                Contracts::<T>::get(contract_id).ok_or(Error::<T>::ContractNotFound)?;
            ensure!(contract.owner == who, Error::<T>::NotOwner);
            ensure!(
                deployment.version > contract.version,
                Error::<T>::VersionNotGrowing
            );
            let encoded = Self::check(&deployment)?;
            let old = Self::stored_deployment(contract_id);
            zos_contracts::check_update(&old, &deployment).map_err(|e| {
                Error::<T>::UpdateRefused(UpdateRefusal {
                    rule: e.rule,
                    workload: e.index,
                })
            })?;
            let info = T::Nodes::node(&contract.node).ok_or(Error::<T>::UnknownNode)?;

            let capacity = deployment.capacity();
            let reserved = Reserved::<T>::get(&contract.node)
                .saturating_sub(&contract.capacity)
                .checked_add(&capacity)
                .ok_or(Error::<T>::InsufficientCapacity)?;
            // Shrinking never fails, even on a node that lowered its capacity since.
            ensure!(
                info.capacity.fits(&reserved) || contract.capacity.fits(&capacity),
                Error::<T>::InsufficientCapacity
            );

            let deposit = Self::deposit_for(&deployment, encoded.len());
            let reserve = Self::reserve_for(&capacity);
            Self::rehold(
                HoldReason::StorageDeposit,
                &who,
                &mut contract.deposit,
                deposit,
            )?;
            Self::rehold(
                HoldReason::BillingReserve,
                &who,
                &mut contract.reserve,
                reserve,
            )?;

            let now = T::UnixTime::now().as_secs();
            // What the old deployment ran up to now is owed at its own size, and paid at the
            // next bill; what may be reported so far is counted at its size too.
            contract.unpaid =
                Self::due(contract_id, &mut contract, Some(&info), now).saturated_into();
            Usage::<T>::mutate(contract_id, |u| {
                Self::grow_allowance(u, &contract.capacity, now);
                u.memory_allowance = u.memory_allowance.max(capacity.mru);
            });

            Self::index_networks(
                &who,
                &contract.node,
                contract_id,
                Some(&old),
                Some(&deployment),
            )?;
            let hash = zos_contracts::hash_encoded(&encoded);
            ContractDeployment::<T>::insert(contract_id, encoded);
            contract.version = deployment.version;
            contract.hash = hash;
            contract.capacity = capacity;
            // The node tells again what it cannot run of the new version.
            contract.unsupported = Capacity::default();
            Reserved::<T>::insert(&contract.node, reserved);
            let node = contract.node.clone();
            Contracts::<T>::insert(contract_id, contract);
            Self::deposit_event(Event::ContractUpdated {
                contract_id,
                node,
                owner: who,
                version: deployment.version,
                hash,
            });
            Ok(())
        }

        /// Cancels a contract: it is billed up to now (from the owner's free balance, then from
        /// what is held), its holds are returned, its capacity is freed, and its node tears it
        /// down. Owner only.
        #[pallet::call_index(2)]
        #[pallet::weight(T::WeightInfo::cancel_contract())]
        pub fn cancel_contract(origin: OriginFor<T>, contract_id: ContractId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut contract =
                Contracts::<T>::get(contract_id).ok_or(Error::<T>::ContractNotFound)?;
            ensure!(contract.owner == who, Error::<T>::NotOwner);
            Self::settle_final(contract_id, &mut contract, T::UnixTime::now().as_secs());
            Self::remove(contract_id, &contract);
            Self::deposit_event(Event::ContractCanceled {
                contract_id,
                node: contract.node,
                owner: contract.owner,
            });
            Ok(())
        }

        /// The node a contract names reports the state of its workloads for deployment
        /// `version`. Free when accepted; accepted only when it says something new, at most once
        /// per [`Config::MinReportInterval`] — except the first report on the contract's current
        /// version after an update, which answers the (paid) update at once.
        #[pallet::call_index(3)]
        #[pallet::weight(T::WeightInfo::report_workloads())]
        pub fn report_workloads(
            origin: OriginFor<T>,
            contract_id: ContractId,
            version: u32,
            workloads: BoundedVec<
                WorkloadReport,
                ConstU32<{ zos_contracts::limits::MAX_WORKLOADS }>,
            >,
        ) -> DispatchResultWithPostInfo {
            let node = ensure_signed(origin)?;
            ensure!(!workloads.is_empty(), Error::<T>::EmptyReport);
            let mut contract =
                Contracts::<T>::get(contract_id).ok_or(Error::<T>::ContractNotFound)?;
            ensure!(contract.node == node, Error::<T>::NotContractNode);
            ensure!(version <= contract.version, Error::<T>::UnknownVersion);
            for (i, w) in workloads.iter().enumerate() {
                ensure!(
                    !workloads[..i].iter().any(|o| o.name == w.name),
                    Error::<T>::DuplicateWorkloadReport
                );
            }
            let now = T::UnixTime::now().as_secs();
            if let Some(last) = WorkloadStates::<T>::get(contract_id) {
                ensure!(version >= last.version, Error::<T>::StaleReport);
                ensure!(
                    version != last.version || workloads != last.workloads,
                    Error::<T>::EmptyReport
                );
                let answers_update = version > last.version && version == contract.version;
                ensure!(
                    answers_update || now >= last.at.saturating_add(T::MinReportInterval::get()),
                    Error::<T>::ReportTooEarly
                );
            }
            if version == contract.version {
                let unsupported = Self::unsupported_capacity(contract_id, &workloads);
                if unsupported != contract.unsupported {
                    // What ran up to now is owed at the billable size of the time.
                    let info = T::Nodes::node(&contract.node);
                    contract.unpaid =
                        Self::due(contract_id, &mut contract, info.as_ref(), now).saturated_into();
                    contract.unsupported = unsupported;
                    Contracts::<T>::insert(contract_id, contract);
                }
            }
            WorkloadStates::<T>::insert(
                contract_id,
                StateReport {
                    version,
                    at: now,
                    workloads,
                },
            );
            Self::deposit_event(Event::WorkloadsReported {
                contract_id,
                node,
                version,
            });
            Ok(Pays::No.into())
        }

        /// A node reports what its contracts consumed since their last report, all in one call.
        /// Free when accepted. Each contract's report must stay within what it reserved (see
        /// [`UsageRecord`]).
        #[pallet::call_index(4)]
        #[pallet::weight(T::WeightInfo::report_consumption(reports.len() as u32))]
        pub fn report_consumption(
            origin: OriginFor<T>,
            reports: BoundedVec<(ContractId, Consumption), T::MaxReportContracts>,
        ) -> DispatchResultWithPostInfo {
            let node = ensure_signed(origin)?;
            ensure!(!reports.is_empty(), Error::<T>::EmptyReport);
            let now = T::UnixTime::now().as_secs();
            // Dispatch is transactional: a refused entry undoes the ones before it.
            for (i, (contract_id, consumption)) in reports.iter().enumerate() {
                ensure!(
                    !reports[..i].iter().any(|(o, _)| o == contract_id),
                    Error::<T>::DuplicateContractReport
                );
                let contract =
                    Contracts::<T>::get(contract_id).ok_or(Error::<T>::ContractNotFound)?;
                ensure!(contract.node == node, Error::<T>::NotContractNode);
                let mut usage = Usage::<T>::get(contract_id);
                ensure!(
                    usage
                        .last_report
                        .is_none_or(|l| now >= l.saturating_add(T::MinReportInterval::get())),
                    Error::<T>::ReportTooEarly
                );
                Self::grow_allowance(&mut usage, &contract.capacity, now);
                ensure!(
                    consumption.cpu_ms <= usage.cpu_allowance_ms,
                    Error::<T>::CpuOverReservation
                );
                ensure!(
                    consumption.memory_peak <= usage.memory_allowance.max(contract.capacity.mru),
                    Error::<T>::MemoryOverReservation
                );
                let traffic = consumption.net_rx.saturating_add(consumption.net_tx);
                ensure!(traffic <= usage.net_allowance, Error::<T>::NetworkOverBound);
                usage.cpu_allowance_ms -= consumption.cpu_ms;
                usage.net_allowance -= traffic;
                usage.memory_allowance = contract.capacity.mru;
                usage.unbilled = usage.unbilled.saturating_add(consumption);
                usage.total = usage.total.saturating_add(consumption);
                usage.last_report = Some(now);
                Usage::<T>::insert(contract_id, usage);
            }
            Self::deposit_event(Event::ConsumptionReported {
                node,
                contracts: reports.len() as u32,
            });
            Ok(Pays::No.into())
        }

        /// Sets prices. Admin origin.
        #[pallet::call_index(5)]
        #[pallet::weight(T::WeightInfo::set_pricing())]
        pub fn set_pricing(origin: OriginFor<T>, pricing: Pricing) -> DispatchResult {
            T::AdminOrigin::ensure_origin(origin)?;
            Prices::<T>::put(pricing);
            Self::deposit_event(Event::PricingSet { pricing });
            Ok(())
        }
    }

    impl<T: Config> Pallet<T> {
        /// Validates a deployment and returns its encoding.
        fn check(deployment: &Deployment) -> Result<EncodedDeployment, Error<T>> {
            zos_contracts::validate(deployment)
                .map_err(|e| Error::<T>::InvalidDeployment(InvalidReason(e.kind())))?;
            EncodedDeployment::try_from(deployment.encode()).map_err(|_| {
                Error::<T>::InvalidDeployment(InvalidReason(
                    zos_contracts::ValidationErrorKind::TooLarge,
                ))
            })
        }

        /// The deployment of a live contract. It was validated and encoded by this pallet.
        pub(crate) fn stored_deployment(contract_id: ContractId) -> Deployment {
            let encoded = ContractDeployment::<T>::get(contract_id)
                .expect("every live contract has its deployment; qed");
            Deployment::decode(&mut &encoded[..])
                .expect("the pallet stores only encodings of validated deployments; qed")
        }

        /// The deposit for the bytes a contract with `deployment` keeps in storage: the
        /// deployment itself, and the largest state report its workloads may have.
        pub fn deposit_for(deployment: &Deployment, encoded_len: usize) -> BalanceOf<T> {
            let bytes = encoded_len.saturating_add(
                deployment
                    .workloads
                    .len()
                    .saturating_mul(WorkloadReport::max_encoded_len()),
            );
            T::DepositPerByte::get()
                .saturating_mul(bytes.saturated_into())
                .saturating_add(T::DepositBase::get())
        }

        /// What is held towards a contract of `capacity`: its first billing period.
        pub fn reserve_for(capacity: &Capacity) -> BalanceOf<T> {
            billing::reservation_cost(&Prices::<T>::get(), capacity, T::BillingPeriod::get())
                .saturated_into()
        }

        fn hold(reason: HoldReason, who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
            if amount.is_zero() {
                return Ok(());
            }
            T::Currency::hold(&reason.into(), who, amount)
                .map_err(|_| Error::<T>::InsufficientBalance.into())
        }

        /// Moves what is held for one contract from `held` to `wanted`.
        fn rehold(
            reason: HoldReason,
            who: &T::AccountId,
            held: &mut BalanceOf<T>,
            wanted: BalanceOf<T>,
        ) -> DispatchResult {
            if wanted > *held {
                Self::hold(reason, who, wanted.saturating_sub(*held))?;
            } else if wanted < *held {
                T::Currency::release(
                    &reason.into(),
                    who,
                    held.saturating_sub(wanted),
                    Precision::BestEffort,
                )?;
            }
            *held = wanted;
            Ok(())
        }

        /// The capacity of the workloads `reports` says this node cannot run.
        fn unsupported_capacity(contract_id: ContractId, reports: &[WorkloadReport]) -> Capacity {
            if !reports
                .iter()
                .any(|r| r.status == WorkloadStatus::Unsupported)
            {
                return Capacity::default();
            }
            let deployment = Self::stored_deployment(contract_id);
            reports
                .iter()
                .filter(|r| r.status == WorkloadStatus::Unsupported)
                .filter_map(|r| deployment.workload(&r.name))
                .fold(Capacity::default(), |sum, w| {
                    sum.saturating_add(&w.capacity())
                })
        }

        /// Grows a contract's consumption allowances to `now` at `capacity`.
        fn grow_allowance(usage: &mut UsageRecord, capacity: &Capacity, now: u64) {
            let secs = now.saturating_sub(usage.allowance_at);
            usage.cpu_allowance_ms = usage
                .cpu_allowance_ms
                .saturating_add(capacity.cpu_millis.saturating_mul(secs));
            usage.net_allowance = usage
                .net_allowance
                .saturating_add(T::MaxNetworkBytesPerSecond::get().saturating_mul(secs));
            usage.allowance_at = usage.allowance_at.max(now);
        }

        /// Bills the contracts of the billing queue due by `now`, at most
        /// [`Config::MaxBillsPerBlock`] of them over at most
        /// [`Config::MaxBillingSecondsPerBlock`] seconds of the queue; returns how many it
        /// billed and how many seconds it walked.
        pub fn bill_due(now: u64) -> (u32, u32) {
            let mut cursor = match BillingCursor::<T>::get() {
                Some(cursor) => cursor,
                // Before the first timestamp there is nothing to bill.
                None if now == 0 => return (0, 0),
                None => now,
            };
            let max_bills = T::MaxBillsPerBlock::get();
            let max_seconds = T::MaxBillingSecondsPerBlock::get();
            let (mut bills, mut seconds) = (0u32, 0u32);
            while cursor <= now && seconds < max_seconds && bills < max_bills {
                seconds += 1;
                let room = (max_bills - bills) as usize;
                let ids: Vec<ContractId> = BillingQueue::<T>::iter_key_prefix(cursor)
                    .take(room + 1)
                    .collect();
                let walked = ids.len() <= room;
                for contract_id in ids.into_iter().take(room) {
                    BillingQueue::<T>::remove(cursor, contract_id);
                    bills += 1;
                    let Some(mut contract) = Contracts::<T>::get(contract_id) else {
                        continue;
                    };
                    if Self::bill(contract_id, &mut contract, now) {
                        Self::schedule(contract_id, &mut contract, now);
                        Contracts::<T>::insert(contract_id, contract);
                    }
                }
                if !walked {
                    break;
                }
                cursor += 1;
            }
            BillingCursor::<T>::put(cursor);
            (bills, seconds)
        }

        /// Puts a contract in the billing queue for its next bill: a billing period from now, or,
        /// in its grace period, sooner, so that a top-up resumes it and the end of the grace
        /// period deletes it on time.
        fn schedule(contract_id: ContractId, contract: &mut ContractOf<T>, now: u64) {
            let period = T::BillingPeriod::get().max(1);
            let wait = match contract.state {
                ContractState::Active => period,
                ContractState::GracePeriod { since } => since
                    .saturating_add(T::GracePeriod::get())
                    .saturating_sub(now)
                    .clamp(1, period),
            };
            contract.next_bill = now.saturating_add(wait);
            BillingQueue::<T>::insert(contract.next_bill, contract_id, ());
        }

        /// Charges what the contract ran up since its last bill plus what it still owes. Moves it
        /// into or out of its grace period, or deletes it when the grace period is over. Returns
        /// whether the contract still exists (the caller stores it).
        pub(crate) fn bill(
            contract_id: ContractId,
            contract: &mut ContractOf<T>,
            now: u64,
        ) -> bool {
            let info = T::Nodes::node(&contract.node);
            let due = Self::due(contract_id, contract, info.as_ref(), now);
            let owner = contract.owner.clone();
            let node = contract.node.clone();
            let farmer = info.map(|n| n.farmer);
            let amount: BalanceOf<T> = due.saturated_into();

            if due == 0 || Self::spendable(&owner) >= due {
                if let Some(farmer) = farmer.filter(|_| due > 0) {
                    if !Self::pay(contract_id, &owner, farmer, due) {
                        // Balances refused what reducible_balance allowed: keep it owed.
                        contract.unpaid = amount;
                        return true;
                    }
                }
                contract.unpaid = Zero::zero();
                if let ContractState::GracePeriod { .. } = contract.state {
                    contract.state = ContractState::Active;
                    Self::deposit_event(Event::GracePeriodEnded {
                        contract_id,
                        node,
                        owner,
                        paid: amount,
                    });
                }
                return true;
            }

            contract.unpaid = amount;
            match contract.state {
                ContractState::Active => {
                    contract.state = ContractState::GracePeriod { since: now };
                    Self::deposit_event(Event::GracePeriodStarted {
                        contract_id,
                        node,
                        owner,
                        unpaid: amount,
                    });
                    true
                }
                ContractState::GracePeriod { since }
                    if now >= since.saturating_add(T::GracePeriod::get()) =>
                {
                    Self::settle_final(contract_id, contract, now);
                    Self::remove(contract_id, contract);
                    Self::deposit_event(Event::ContractDeleted {
                        contract_id,
                        node,
                        owner,
                        cause: DeletionCause::OutOfFunds,
                    });
                    false
                }
                ContractState::GracePeriod { .. } => true,
            }
        }

        /// What the contract ran up since its last bill plus what it still owes: its billable
        /// reservation (what the node can run) over the time its node was up, and its unbilled
        /// consumption, which this takes. Moves the contract's billing marks to `now`.
        fn due(
            contract_id: ContractId,
            contract: &mut ContractOf<T>,
            node: Option<&NodeInfo<T::AccountId>>,
            now: u64,
        ) -> u128 {
            let prices = Prices::<T>::get();
            let elapsed = now.saturating_sub(contract.last_billed);
            let downtime = node.map_or(contract.downtime_mark, |n| n.downtime);
            let down = downtime.saturating_sub(contract.downtime_mark).min(elapsed);
            contract.last_billed = now;
            contract.downtime_mark = downtime;
            let billable = contract.capacity.saturating_sub(&contract.unsupported);
            let consumption = Usage::<T>::mutate(contract_id, |u| core::mem::take(&mut u.unbilled));
            billing::reservation_cost(&prices, &billable, elapsed - down)
                .saturating_add(billing::consumption_cost(&prices, &consumption))
                .saturating_add(contract.unpaid.saturated_into())
        }

        /// What `who` can pay without its account being reaped.
        fn spendable(who: &T::AccountId) -> u128 {
            T::Currency::reducible_balance(who, Preservation::Preserve, Fortitude::Polite)
                .saturated_into()
        }

        /// Pays `amount` from `owner` to `farmer` for a contract; whether it was paid.
        fn pay(
            contract_id: ContractId,
            owner: &T::AccountId,
            farmer: T::AccountId,
            amount: u128,
        ) -> bool {
            let amount: BalanceOf<T> = amount.saturated_into();
            if T::Currency::transfer(owner, &farmer, amount, Preservation::Preserve).is_err() {
                return false;
            }
            Self::deposit_event(Event::ContractBilled {
                contract_id,
                owner: owner.clone(),
                farmer,
                amount,
            });
            true
        }

        /// At a contract's end (cancel, or deletion after its grace period): returns its storage
        /// deposit, charges what is due from the owner's free balance and then from its reserve,
        /// returns what is left of the reserve, and forgives only what none of that covers.
        fn settle_final(contract_id: ContractId, contract: &mut ContractOf<T>, now: u64) {
            let info = T::Nodes::node(&contract.node);
            let mut due = Self::due(contract_id, contract, info.as_ref(), now);
            let owner = contract.owner.clone();
            let deposit = core::mem::take(&mut contract.deposit);
            let mut reserve = core::mem::take(&mut contract.reserve);
            // The deposit pays for storage that is freed now: it goes back before the bill, so
            // it can pay too.
            let _ = T::Currency::release(
                &HoldReason::StorageDeposit.into(),
                &owner,
                deposit,
                Precision::BestEffort,
            );
            let farmer = info.map(|n| n.farmer);
            if let Some(farmer) = farmer.filter(|_| due > 0) {
                let from_free = due.min(Self::spendable(&owner));
                if from_free > 0 && Self::pay(contract_id, &owner, farmer.clone(), from_free) {
                    due -= from_free;
                }
                let from_reserve: BalanceOf<T> = due.min(reserve.saturated_into()).saturated_into();
                if !from_reserve.is_zero() {
                    if let Ok(paid) = T::Currency::transfer_on_hold(
                        &HoldReason::BillingReserve.into(),
                        &owner,
                        &farmer,
                        from_reserve,
                        Precision::BestEffort,
                        Restriction::Free,
                        Fortitude::Polite,
                    ) {
                        reserve = reserve.saturating_sub(paid);
                        due = due.saturating_sub(paid.saturated_into());
                        Self::deposit_event(Event::ContractBilled {
                            contract_id,
                            owner: owner.clone(),
                            farmer,
                            amount: paid,
                        });
                    }
                }
            }
            let _ = T::Currency::release(
                &HoldReason::BillingReserve.into(),
                &owner,
                reserve,
                Precision::BestEffort,
            );
            contract.unpaid = Zero::zero();
            if due > 0 {
                Self::deposit_event(Event::DebtForgiven {
                    contract_id,
                    owner,
                    amount: due.saturated_into(),
                });
            }
        }

        /// Removes a contract and everything kept for it, and frees its capacity. Its holds were
        /// settled by [`Self::settle_final`].
        fn remove(contract_id: ContractId, contract: &ContractOf<T>) {
            let deployment = Self::stored_deployment(contract_id);
            Self::leave_networks(&contract.owner, &contract.node, contract_id, &deployment);
            Contracts::<T>::remove(contract_id);
            ContractDeployment::<T>::remove(contract_id);
            ContractsByNode::<T>::remove(&contract.node, contract_id);
            ContractsByOwner::<T>::remove(&contract.owner, contract_id);
            OwnerContractCount::<T>::mutate_exists(&contract.owner, |n| {
                *n = n.map(|n| n.saturating_sub(1)).filter(|n| *n > 0)
            });
            NodeContractCount::<T>::mutate_exists(&contract.node, |n| {
                *n = n.map(|n| n.saturating_sub(1)).filter(|n| *n > 0)
            });
            WorkloadStates::<T>::remove(contract_id);
            Usage::<T>::remove(contract_id);
            BillingQueue::<T>::remove(contract.next_bill, contract_id);
            Reserved::<T>::mutate_exists(&contract.node, |r| {
                let left = r.unwrap_or_default().saturating_sub(&contract.capacity);
                *r = (!left.is_zero()).then_some(left);
            });
        }

        /// The ids of the contracts naming `node`.
        pub fn contracts_of_node(node: &T::AccountId) -> Vec<ContractId> {
            ContractsByNode::<T>::iter_key_prefix(node).collect()
        }

        /// Checks what the pallet's storage must always hold: each node's reserved capacity is
        /// the sum of its contracts', the counts and indexes match the contracts, every contract
        /// is queued for billing exactly once, each contract's deposit is the price of its
        /// bytes, and what is held from each owner is what its contracts hold.
        #[cfg(any(test, feature = "try-runtime"))]
        pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
            use alloc::collections::btree_map::BTreeMap;
            use frame_support::traits::fungible::InspectHold;
            let mut reserved: BTreeMap<T::AccountId, Capacity> = BTreeMap::new();
            let mut per_owner: BTreeMap<T::AccountId, (u32, BalanceOf<T>, BalanceOf<T>)> =
                BTreeMap::new();
            let mut per_node: BTreeMap<T::AccountId, u32> = BTreeMap::new();
            let mut contracts = 0usize;
            for (id, c) in Contracts::<T>::iter() {
                contracts += 1;
                let sum = reserved.entry(c.node.clone()).or_default();
                *sum = sum.saturating_add(&c.capacity);
                let o = per_owner.entry(c.owner.clone()).or_default();
                o.0 += 1;
                o.1 = o.1.saturating_add(c.deposit);
                o.2 = o.2.saturating_add(c.reserve);
                *per_node.entry(c.node.clone()).or_default() += 1;
                let encoded =
                    ContractDeployment::<T>::get(id).ok_or("a contract has no deployment")?;
                let d = Self::stored_deployment(id);
                ensure!(
                    c.deposit == Self::deposit_for(&d, encoded.len()),
                    "a contract's deposit is not the price of its bytes"
                );
                ensure!(
                    BillingQueue::<T>::contains_key(c.next_bill, id)
                        && BillingCursor::<T>::get().is_some_and(|at| c.next_bill >= at),
                    "a contract is not queued at its next bill, ahead of the cursor"
                );
                ensure!(
                    ContractsByNode::<T>::contains_key(&c.node, id)
                        && ContractsByOwner::<T>::contains_key(&c.owner, id),
                    "a contract is missing from an index"
                );
            }
            ensure!(
                BillingQueue::<T>::iter().count() == contracts
                    && ContractDeployment::<T>::iter_keys().count() == contracts,
                "the billing queue or the deployments hold other than one entry per contract"
            );
            ensure!(
                Reserved::<T>::iter().collect::<BTreeMap<_, _>>() == reserved,
                "reserved capacity is not the sum of the contracts'"
            );
            ensure!(
                NodeContractCount::<T>::iter().collect::<BTreeMap<_, _>>() == per_node,
                "a node's contract count is wrong"
            );
            ensure!(
                OwnerContractCount::<T>::iter().count() == per_owner.len(),
                "an owner's contract count is left over"
            );
            for (owner, (count, deposit, reserve)) in per_owner {
                ensure!(
                    OwnerContractCount::<T>::get(&owner) == count,
                    "an owner's contract count is wrong"
                );
                let held = |r: HoldReason| {
                    T::Currency::balance_on_hold(&T::RuntimeHoldReason::from(r), &owner)
                };
                ensure!(
                    held(HoldReason::StorageDeposit) == deposit,
                    "an owner's held deposit is not its contracts' deposits"
                );
                ensure!(
                    held(HoldReason::BillingReserve) == reserve,
                    "an owner's held reserve is not its contracts' reserves"
                );
            }
            Self::networks_try_state()
        }
    }

    impl<T: Config> pallet_grid::NodeUsage<T::AccountId> for Pallet<T> {
        fn has_contracts(node: &T::AccountId) -> bool {
            NodeContractCount::<T>::contains_key(node)
        }
    }
}

/// A contract as this runtime stores it.
pub type ContractOf<T> = Contract<<T as frame_system::Config>::AccountId, BalanceOf<T>>;

/// The balance type of the currency contracts are paid in.
pub type BalanceOf<T> = <<T as Config>::Currency as frame_support::traits::fungible::Inspect<
    <T as frame_system::Config>::AccountId,
>>::Balance;
