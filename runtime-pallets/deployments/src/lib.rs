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
#[cfg(test)]
mod tests;
mod types;
pub mod weights;

use polkadot_sdk::{frame_support, frame_system, sp_runtime};
use zos_contracts::{Capacity, Deployment};

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
            fungible::{Inspect, Mutate},
            tokens::{Fortitude, Preservation},
            UnixTime,
        },
    };
    use frame_system::pallet_prelude::*;
    use pallet_grid::{NodeRegistry, NodeStatus};
    use sp_runtime::SaturatedConversion;

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    #[pallet::config]
    pub trait Config: polkadot_sdk::frame_system::Config<RuntimeEvent: From<Event<Self>>> {
        /// The currency contracts are paid in.
        type Currency: Mutate<Self::AccountId>;
        /// The registered nodes.
        type Nodes: NodeRegistry<Self::AccountId>;
        /// Sets prices.
        type AdminOrigin: EnsureOrigin<Self::RuntimeOrigin>;
        /// Chain time.
        type UnixTime: UnixTime;
        /// Seconds between two bills of one contract.
        #[pallet::constant]
        type BillingPeriod: Get<u64>;
        /// Seconds a contract stays in its grace period before it is deleted.
        #[pallet::constant]
        type GracePeriod: Get<u64>;
        /// Billing buckets: block `n` bills bucket `n % BillingBuckets`.
        #[pallet::constant]
        type BillingBuckets: Get<u32>;
        /// Contracts in one bucket; the chain holds at most `BillingBuckets` times this.
        #[pallet::constant]
        type MaxContractsPerBucket: Get<u32>;
        /// Fewest seconds between two accepted reports of one kind for one contract.
        #[pallet::constant]
        type MinReportInterval: Get<u64>;
        /// Contracts in one consumption report.
        #[pallet::constant]
        type MaxReportContracts: Get<u32>;
        /// Weights of this pallet's calls and of billing.
        type WeightInfo: WeightInfo;
        /// Hooks for benchmarks.
        #[cfg(feature = "runtime-benchmarks")]
        type BenchmarkHelper: BenchmarkHelper<Self::AccountId>;
    }

    /// The next contract id.
    #[pallet::storage]
    pub type NextContractId<T> = StorageValue<_, ContractId, ValueQuery>;

    /// Contracts by id.
    #[pallet::storage]
    pub type Contracts<T: Config> =
        StorageMap<_, Twox64Concat, ContractId, Contract<T::AccountId, BalanceOf<T>>>;

    /// The contracts naming each node.
    #[pallet::storage]
    pub type ContractsByNode<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, ContractId, ()>;

    /// The contracts of each owner.
    #[pallet::storage]
    pub type ContractsByOwner<T: Config> =
        StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, ContractId, ()>;

    /// Capacity reserved on each node by its contracts.
    #[pallet::storage]
    pub type Reserved<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, Capacity, ValueQuery>;

    /// The latest workload states the node reported for each contract.
    #[pallet::storage]
    pub type WorkloadStates<T: Config> = StorageMap<_, Twox64Concat, ContractId, StateReport>;

    /// Consumption of each contract: reported but not yet billed, and in total.
    #[pallet::storage]
    pub type Usage<T: Config> = StorageMap<_, Twox64Concat, ContractId, UsageRecord, ValueQuery>;

    /// The contracts billed in each bucket.
    #[pallet::storage]
    pub type BillingBucket<T: Config> = StorageMap<
        _,
        Twox64Concat,
        u32,
        BoundedVec<ContractId, T::MaxContractsPerBucket>,
        ValueQuery,
    >;

    /// Prices, set by the admin origin.
    #[pallet::storage]
    pub type Prices<T> = StorageValue<_, Pricing, ValueQuery>;

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
        /// Prices changed.
        PricingSet { pricing: Pricing },
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
        /// The owner cannot pay for one billing period of this deployment.
        InsufficientBalance,
        /// No contract has this id.
        ContractNotFound,
        /// Only the contract's owner may do this.
        NotOwner,
        /// An update must carry a higher deployment version.
        VersionNotGrowing,
        /// Only the node the contract names may report on it.
        NotContractNode,
        /// This contract was reported on too recently.
        ReportTooEarly,
        /// The report is about a deployment version the contract never had.
        UnknownVersion,
        /// The report names a workload twice.
        DuplicateWorkloadReport,
        /// The consumption report names a contract twice.
        DuplicateContractReport,
        /// The chain holds as many contracts as its billing buckets allow.
        TooManyContracts,
        /// No more contract ids.
        ContractIdOverflow,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn on_initialize(n: BlockNumberFor<T>) -> Weight {
            let buckets = T::BillingBuckets::get().max(1);
            let bucket = (n.saturated_into::<u64>() % u64::from(buckets)) as u32;
            let billed = Self::bill_bucket(bucket, T::UnixTime::now().as_secs());
            T::WeightInfo::bill_bucket(billed)
        }
    }

    #[pallet::call]
    impl<T: Config> Pallet<T> {
        /// Creates a contract for `deployment` on `node`, owned by the caller.
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
            let first_period =
                billing::reservation_cost(&Prices::<T>::get(), &capacity, T::BillingPeriod::get());
            let spendable =
                T::Currency::reducible_balance(&owner, Preservation::Preserve, Fortitude::Polite);
            ensure!(
                spendable.saturated_into::<u128>() >= first_period,
                Error::<T>::InsufficientBalance
            );

            let contract_id = NextContractId::<T>::get();
            NextContractId::<T>::put(
                contract_id
                    .checked_add(1)
                    .ok_or(Error::<T>::ContractIdOverflow)?,
            );
            let bucket = Self::bucket_of(contract_id);
            BillingBucket::<T>::try_mutate(bucket, |b| b.try_push(contract_id))
                .map_err(|_| Error::<T>::TooManyContracts)?;

            let now = T::UnixTime::now().as_secs();
            let hash = zos_contracts::hash_encoded(&encoded);
            Contracts::<T>::insert(
                contract_id,
                Contract {
                    owner: owner.clone(),
                    node: node.clone(),
                    version: deployment.version,
                    deployment: encoded,
                    hash,
                    capacity,
                    state: ContractState::Active,
                    created_at: now,
                    last_billed: now,
                    unpaid: Default::default(),
                },
            );
            Reserved::<T>::insert(&node, reserved);
            ContractsByNode::<T>::insert(&node, contract_id, ());
            ContractsByOwner::<T>::insert(&owner, contract_id, ());
            Self::deposit_event(Event::ContractCreated {
                contract_id,
                node,
                owner,
                version: deployment.version,
                hash,
            });
            Ok(())
        }

        /// Replaces a contract's deployment with a higher version. Owner only.
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
            // What the old deployment ran up to now is owed at its own size, and paid at the
            // next bill.
            contract.unpaid = Self::due(contract_id, &mut contract, T::UnixTime::now().as_secs())
                .saturated_into();

            let hash = zos_contracts::hash_encoded(&encoded);
            contract.deployment = encoded;
            contract.version = deployment.version;
            contract.hash = hash;
            contract.capacity = capacity;
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

        /// Cancels a contract: it is billed up to now, its capacity is freed, and its node tears
        /// it down. Owner only.
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
        /// `version`. Free when accepted.
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
            let contract = Contracts::<T>::get(contract_id).ok_or(Error::<T>::ContractNotFound)?;
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
                // A report on a newer version is always welcome: it answers an update.
                let too_early = last.version == version
                    && now < last.at.saturating_add(T::MinReportInterval::get());
                ensure!(!too_early, Error::<T>::ReportTooEarly);
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
        /// Free when accepted.
        #[pallet::call_index(4)]
        #[pallet::weight(T::WeightInfo::report_consumption(reports.len() as u32))]
        pub fn report_consumption(
            origin: OriginFor<T>,
            reports: BoundedVec<(ContractId, Consumption), T::MaxReportContracts>,
        ) -> DispatchResultWithPostInfo {
            let node = ensure_signed(origin)?;
            let now = T::UnixTime::now().as_secs();
            for (i, (contract_id, _)) in reports.iter().enumerate() {
                ensure!(
                    !reports[..i].iter().any(|(o, _)| o == contract_id),
                    Error::<T>::DuplicateContractReport
                );
                let contract =
                    Contracts::<T>::get(contract_id).ok_or(Error::<T>::ContractNotFound)?;
                ensure!(contract.node == node, Error::<T>::NotContractNode);
                let last = Usage::<T>::get(contract_id).last_report;
                ensure!(
                    last.is_none_or(|l| now >= l.saturating_add(T::MinReportInterval::get())),
                    Error::<T>::ReportTooEarly
                );
            }
            for (contract_id, consumption) in reports.iter() {
                Usage::<T>::mutate(contract_id, |u| {
                    u.unbilled = u.unbilled.saturating_add(consumption);
                    u.total = u.total.saturating_add(consumption);
                    u.last_report = Some(now);
                });
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

        /// The billing bucket of a contract.
        pub fn bucket_of(contract_id: ContractId) -> u32 {
            (contract_id % u64::from(T::BillingBuckets::get().max(1))) as u32
        }

        /// Bills every contract of `bucket` whose period has passed, and every one in its grace
        /// period; returns how many it looked at.
        pub fn bill_bucket(bucket: u32, now: u64) -> u32 {
            let ids = BillingBucket::<T>::get(bucket);
            for contract_id in ids.iter() {
                let Some(mut contract) = Contracts::<T>::get(contract_id) else {
                    continue;
                };
                // A contract in its grace period is looked at on every visit, so that a top-up
                // resumes it and the end of the grace period deletes it without waiting a period.
                let due = now >= contract.last_billed.saturating_add(T::BillingPeriod::get());
                let in_grace = matches!(contract.state, ContractState::GracePeriod { .. });
                if !due && !in_grace {
                    continue;
                }
                if Self::bill(*contract_id, &mut contract, now) {
                    Contracts::<T>::insert(contract_id, contract);
                }
            }
            ids.len() as u32
        }

        /// Charges what the contract ran up since its last bill plus what it still owes. Moves it
        /// into or out of its grace period, or deletes it when the grace period is over. Returns
        /// whether the contract still exists (the caller stores it).
        pub(crate) fn bill(
            contract_id: ContractId,
            contract: &mut ContractOf<T>,
            now: u64,
        ) -> bool {
            let due = Self::due(contract_id, contract, now);
            let owner = contract.owner.clone();
            let node = contract.node.clone();
            let farmer = T::Nodes::node(&node).map(|n| n.farmer);
            let amount: BalanceOf<T> = due.saturated_into();

            if due == 0 || Self::spendable(&owner) >= due {
                if let Some(farmer) = farmer.filter(|_| due > 0) {
                    if !Self::pay(contract_id, &owner, farmer, due) {
                        // Balances refused what reducible_balance allowed: keep it owed.
                        contract.unpaid = amount;
                        return true;
                    }
                }
                contract.unpaid = Default::default();
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

        /// What the contract ran up since its last bill (its reservation over the elapsed time
        /// and its unbilled consumption, which this takes) plus what it still owes.
        fn due(contract_id: ContractId, contract: &mut ContractOf<T>, now: u64) -> u128 {
            let prices = Prices::<T>::get();
            let elapsed = now.saturating_sub(contract.last_billed);
            contract.last_billed = now;
            let consumption = Usage::<T>::mutate(contract_id, |u| core::mem::take(&mut u.unbilled));
            billing::reservation_cost(&prices, &contract.capacity, elapsed)
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

        /// On cancellation: charges what it can of what is due; the rest is forgiven.
        fn settle_final(contract_id: ContractId, contract: &mut ContractOf<T>, now: u64) {
            let due = Self::due(contract_id, contract, now);
            let Some(farmer) = T::Nodes::node(&contract.node).map(|n| n.farmer) else {
                return;
            };
            let amount = due.min(Self::spendable(&contract.owner));
            if amount > 0 {
                Self::pay(contract_id, &contract.owner, farmer, amount);
            }
        }

        /// Removes a contract and everything kept for it, and frees its capacity.
        fn remove(contract_id: ContractId, contract: &ContractOf<T>) {
            Contracts::<T>::remove(contract_id);
            ContractsByNode::<T>::remove(&contract.node, contract_id);
            ContractsByOwner::<T>::remove(&contract.owner, contract_id);
            WorkloadStates::<T>::remove(contract_id);
            Usage::<T>::remove(contract_id);
            Reserved::<T>::mutate_exists(&contract.node, |r| {
                let left = r.unwrap_or_default().saturating_sub(&contract.capacity);
                *r = (!left.is_zero()).then_some(left);
            });
            BillingBucket::<T>::mutate(Self::bucket_of(contract_id), |b| {
                b.retain(|id| *id != contract_id)
            });
        }

        /// The ids of the contracts naming `node`.
        pub fn contracts_of_node(node: &T::AccountId) -> Vec<ContractId> {
            ContractsByNode::<T>::iter_key_prefix(node).collect()
        }
    }

    impl<T: Config> pallet_grid::NodeUsage<T::AccountId> for Pallet<T> {
        fn has_contracts(node: &T::AccountId) -> bool {
            ContractsByNode::<T>::iter_key_prefix(node).next().is_some()
        }
    }
}

/// A contract as this runtime stores it.
pub type ContractOf<T> = Contract<<T as frame_system::Config>::AccountId, BalanceOf<T>>;

/// The balance type of the currency contracts are paid in.
pub type BalanceOf<T> = <<T as Config>::Currency as frame_support::traits::fungible::Inspect<
    <T as frame_system::Config>::AccountId,
>>::Balance;
