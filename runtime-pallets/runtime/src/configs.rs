//! The configuration of every pallet of the runtime.

use crate::*;
use frame_support::{
    derive_impl,
    dispatch::DispatchClass,
    parameter_types,
    traits::{ConstBool, ConstU128, ConstU32, ConstU64, ConstU8, VariantCountOf},
    weights::{
        constants::{RocksDbWeight, WEIGHT_REF_TIME_PER_SECOND},
        ConstantMultiplier, IdentityFee, Weight,
    },
};
use frame_system::{
    limits::{BlockLength, BlockWeights},
    EnsureRoot,
};
use pallet_transaction_payment::{ConstFeeMultiplier, FungibleAdapter, Multiplier};
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_runtime::{traits::One, Perbill};

const NORMAL_DISPATCH_RATIO: Perbill = Perbill::from_percent(75);

parameter_types! {
    pub const Version: RuntimeVersion = VERSION;
    /// Two seconds of compute per block.
    pub RuntimeBlockWeights: BlockWeights = BlockWeights::with_sensible_defaults(
        Weight::from_parts(2u64 * WEIGHT_REF_TIME_PER_SECOND, u64::MAX),
        NORMAL_DISPATCH_RATIO,
    );
    /// 5 MiB per block, three quarters of it for normal transactions.
    pub RuntimeBlockLength: BlockLength = BlockLength::builder()
        .max_length(5 * 1024 * 1024)
        .modify_max_length_for_class(DispatchClass::Normal, |max| *max = NORMAL_DISPATCH_RATIO * *max)
        .build();
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
    type Block = Block;
    type BlockWeights = RuntimeBlockWeights;
    type BlockLength = RuntimeBlockLength;
    type AccountId = AccountId;
    type Nonce = Nonce;
    type Hash = Hash;
    type BlockHashCount = ConstU32<2400>;
    type DbWeight = RocksDbWeight;
    type Version = Version;
    type AccountData = pallet_balances::AccountData<Balance>;
    type SS58Prefix = ConstU16<42>;
    type MaxConsumers = ConstU32<16>;
}

use frame_support::traits::ConstU16;

impl pallet_aura::Config for Runtime {
    type AuthorityId = AuraId;
    type DisabledValidators = ();
    type MaxAuthorities = ConstU32<32>;
    // The dev chain seals a block per transaction, several in one slot.
    type AllowMultipleBlocksPerSlot = ConstBool<true>;
    type SlotDuration = ConstU64<SLOT_DURATION>;
}

impl pallet_grandpa::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type WeightInfo = ();
    type MaxAuthorities = ConstU32<32>;
    type MaxNominators = ConstU32<0>;
    type MaxSetIdSessionEntries = ConstU64<0>;
    type KeyOwnerProof = sp_core::Void;
    type EquivocationReportSystem = ();
}

impl pallet_timestamp::Config for Runtime {
    type Moment = u64;
    type OnTimestampSet = Aura;
    // The dev chain seals blocks back to back; Aura spaces them by its slot on `--chain local`.
    type MinimumPeriod = ConstU64<1>;
    type WeightInfo = ();
}

impl pallet_balances::Config for Runtime {
    type MaxLocks = ConstU32<50>;
    type MaxReserves = ();
    type ReserveIdentifier = [u8; 8];
    type Balance = Balance;
    type RuntimeEvent = RuntimeEvent;
    type DustRemoval = ();
    type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
    type AccountStore = System;
    type WeightInfo = pallet_balances::weights::SubstrateWeight<Runtime>;
    type FreezeIdentifier = RuntimeFreezeReason;
    type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
    type RuntimeHoldReason = RuntimeHoldReason;
    type RuntimeFreezeReason = RuntimeFreezeReason;
    type DoneSlashHandler = ();
}

parameter_types! {
    pub FeeMultiplier: Multiplier = Multiplier::one();
    /// What each byte of a transaction costs on top of its weight: a 16 KiB deployment pays
    /// about 0.16 ZOS to be submitted, a 150-byte call 0.0015 ZOS (docs/billing.md).
    pub const TransactionByteFee: Balance = 10 * MICRO_UNIT;
}

impl pallet_transaction_payment::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type OnChargeTransaction = FungibleAdapter<Balances, ()>;
    type OperationalFeeMultiplier = ConstU8<5>;
    type WeightToFee = IdentityFee<Balance>;
    type LengthToFee = ConstantMultiplier<Balance, TransactionByteFee>;
    type FeeMultiplierUpdate = ConstFeeMultiplier<FeeMultiplier>;
    type WeightInfo = pallet_transaction_payment::weights::SubstrateWeight<Runtime>;
}

impl pallet_sudo::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeCall = RuntimeCall;
    type WeightInfo = pallet_sudo::weights::SubstrateWeight<Runtime>;
}

impl pallet_utility::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeCall = RuntimeCall;
    type PalletsOrigin = OriginCaller;
    type WeightInfo = pallet_utility::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
    // One storage item: key 32 + value 88 bytes.
    pub const MultisigDepositBase: Balance = 120 * MILLI_UNIT;
    // Each approval adds 32 bytes.
    pub const MultisigDepositFactor: Balance = 32 * MILLI_UNIT;
}

impl pallet_multisig::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeCall = RuntimeCall;
    type Currency = Balances;
    type DepositBase = MultisigDepositBase;
    type DepositFactor = MultisigDepositFactor;
    type MaxSignatories = ConstU32<100>;
    type WeightInfo = pallet_multisig::weights::SubstrateWeight<Runtime>;
    type BlockNumberProvider = System;
}

/// Seconds an uptime report's timestamp may differ from chain time.
pub const UPTIME_TOLERANCE: u64 = 300;
/// Fewest seconds between two uptime reports of a node.
pub const MIN_UPTIME_INTERVAL: u64 = 60;
/// Seconds of silence after which a node is down.
pub const OFFLINE_AFTER: u64 = 900;

impl pallet_grid::Config for Runtime {
    type AdminOrigin = EnsureRoot<AccountId>;
    type UnixTime = Timestamp;
    type NodeUsage = Deployments;
    type UptimeTolerance = ConstU64<UPTIME_TOLERANCE>;
    type MinUptimeInterval = ConstU64<MIN_UPTIME_INTERVAL>;
    type OfflineAfter = ConstU64<OFFLINE_AFTER>;
    type WeightInfo = weights::pallet_grid::WeightInfo<Runtime>;
}

/// Seconds between two bills of a contract.
pub const BILLING_PERIOD: u64 = 600;
/// Seconds a contract may stay unpaid before it is deleted.
pub const GRACE_PERIOD: u64 = 3600;
/// Fewest seconds between two reports of one kind on one contract.
pub const MIN_REPORT_INTERVAL: u64 = 30;

parameter_types! {
    /// [`BILLING_PERIOD`] unless root set another value at the storage key
    /// `twox128(":BillingPeriod:")` (`system.set_storage`): dev chains and tests bill faster.
    pub storage BillingPeriod: u64 = BILLING_PERIOD;
    /// [`GRACE_PERIOD`] unless root set another value at `twox128(":GracePeriod:")`.
    pub storage GracePeriod: u64 = GRACE_PERIOD;
}

/// The most contracts one block bills: with the most seconds of queue walked, under a fifth of the
/// block's weight at the weights measured here (docs/benchmarks.md).
pub const MAX_BILLS_PER_BLOCK: u32 = 256;

parameter_types! {
    /// Held per contract for the records every contract keeps (contract, indexes, usage, queue).
    pub const ContractDepositBase: Balance = 100 * MILLI_UNIT;
    /// Held per byte of deployment and of the workload states its node may report.
    pub const ContractDepositPerByte: Balance = 100 * MICRO_UNIT;
}

impl pallet_deployments::Config for Runtime {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Nodes = Grid;
    type AdminOrigin = EnsureRoot<AccountId>;
    type UnixTime = Timestamp;
    type BillingPeriod = BillingPeriod;
    type GracePeriod = GracePeriod;
    type MaxBillsPerBlock = ConstU32<MAX_BILLS_PER_BLOCK>;
    // Ten minutes of chain time per block: a chain that stood still a day catches up in 144
    // blocks.
    type MaxBillingSecondsPerBlock = ConstU32<600>;
    type MaxContractsPerOwner = ConstU32<10_000>;
    type MaxContractsPerNode = ConstU32<2_000>;
    type DepositBase = ContractDepositBase;
    type DepositPerByte = ContractDepositPerByte;
    type MinReportInterval = ConstU64<MIN_REPORT_INTERVAL>;
    type MaxReportContracts = ConstU32<256>;
    // 10 Gbit/s.
    type MaxNetworkBytesPerSecond = ConstU64<1_250_000_000>;
    type WeightInfo = weights::pallet_deployments::WeightInfo<Runtime>;
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = BenchmarkHelper;
}

/// Benchmark hooks for the deployments pallet.
#[cfg(feature = "runtime-benchmarks")]
pub struct BenchmarkHelper;

#[cfg(feature = "runtime-benchmarks")]
impl pallet_deployments::BenchmarkHelper<AccountId> for BenchmarkHelper {
    fn set_time(secs: u64) {
        pallet_timestamp::Now::<Runtime>::put(secs * 1000);
    }

    fn register_node(node: &AccountId, farmer: &AccountId, capacity: zos_contracts::Capacity) {
        let farm = pallet_grid::NextFarmId::<Runtime>::get();
        let name = alloc::format!("bench-{farm}").into_bytes();
        Grid::create_farm(RuntimeOrigin::signed(farmer.clone()), name)
            .expect("fresh farm name; qed");
        Grid::approve_node(RuntimeOrigin::signed(farmer.clone()), farm, node.clone())
            .expect("the farm's owner approves; qed");
        Grid::register_node(
            RuntimeOrigin::signed(node.clone()),
            farm,
            capacity,
            [1; 32],
            Some(b"127.0.0.1:51820".to_vec()),
        )
        .expect("fresh node; qed");
    }
}
