//! A runtime with balances, timestamp, the grid and the deployments pallet.

use crate as pallet_deployments;
use polkadot_sdk::{
    frame_support::{self, derive_impl, traits::ConstU32, traits::ConstU64},
    frame_system::{self, EnsureRoot},
    pallet_balances, pallet_multisig, pallet_timestamp,
    sp_io::TestExternalities,
    sp_runtime::BuildStorage,
};
use zos_contracts::Capacity;

type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
    pub enum Test {
        System: frame_system,
        Timestamp: pallet_timestamp,
        Balances: pallet_balances,
        Grid: pallet_grid,
        Deployments: pallet_deployments,
        Multisig: pallet_multisig,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
    type AccountData = pallet_balances::AccountData<u64>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
    type AccountStore = System;
}

impl pallet_timestamp::Config for Test {
    type Moment = u64;
    type OnTimestampSet = ();
    type MinimumPeriod = ConstU64<1>;
    type WeightInfo = ();
}

impl pallet_multisig::Config for Test {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeCall = RuntimeCall;
    type Currency = Balances;
    type DepositBase = ConstU64<1>;
    type DepositFactor = ConstU64<1>;
    type MaxSignatories = ConstU32<3>;
    type WeightInfo = ();
    type BlockNumberProvider = System;
}

impl pallet_grid::Config for Test {
    type AdminOrigin = EnsureRoot<u64>;
    type UnixTime = Timestamp;
    type NodeUsage = Deployments;
    type UptimeTolerance = ConstU64<300>;
    type MinUptimeInterval = ConstU64<60>;
    type OfflineAfter = ConstU64<OFFLINE_AFTER>;
    type WeightInfo = ();
}

pub const HOUR: u64 = 3600;
pub const GRACE: u64 = 2 * HOUR;
pub const MAX_BILLS: u32 = 3;
pub const MAX_SECONDS: u32 = 600;
pub const PER_OWNER: u32 = 20;
pub const PER_NODE: u32 = 30;
pub const DEPOSIT_BASE: u64 = 100;
pub const DEPOSIT_PER_BYTE: u64 = 1;
pub const REPORT_INTERVAL: u64 = 60;
/// 1 MiB/s.
pub const NET_PER_SEC: u64 = 1 << 20;
pub const OFFLINE_AFTER: u64 = 10 * HOUR;

impl crate::Config for Test {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Nodes = Grid;
    type AdminOrigin = EnsureRoot<u64>;
    type UnixTime = Timestamp;
    type BillingPeriod = ConstU64<HOUR>;
    type GracePeriod = ConstU64<GRACE>;
    type MaxBillsPerBlock = ConstU32<MAX_BILLS>;
    type MaxBillingSecondsPerBlock = ConstU32<MAX_SECONDS>;
    type MaxContractsPerOwner = ConstU32<PER_OWNER>;
    type MaxContractsPerNode = ConstU32<PER_NODE>;
    type DepositBase = ConstU64<DEPOSIT_BASE>;
    type DepositPerByte = ConstU64<DEPOSIT_PER_BYTE>;
    type MinReportInterval = ConstU64<REPORT_INTERVAL>;
    type MaxReportContracts = ConstU32<8>;
    type MaxNetworkBytesPerSecond = ConstU64<NET_PER_SEC>;
    type WeightInfo = ();
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = MockHelper;
}

/// Benchmark hooks on the mock runtime.
#[cfg(feature = "runtime-benchmarks")]
pub struct MockHelper;

#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<u64> for MockHelper {
    fn set_time(secs: u64) {
        set_time(secs);
    }
    fn register_node(node: &u64, farmer: &u64, capacity: Capacity) {
        register(*node, *farmer, capacity);
    }
}

pub const GENESIS_TIME: u64 = 1_700_000_000;
pub const FARMER: u64 = 1;
pub const NODE: u64 = 10;
pub const ALICE: u64 = 100;
pub const BOB: u64 = 101;
pub const POOR: u64 = 102;
pub const START_BALANCE: u64 = 1_000_000;

pub fn prices() -> crate::Pricing {
    crate::Pricing {
        cru_per_hour: 1_000,
        mru_gib_per_hour: 2_000,
        sru_gib_per_hour: 10,
        hru_gib_per_hour: 1,
        cpu_hour: 600,
        network_gib: 100,
    }
}

pub fn node_capacity() -> Capacity {
    Capacity {
        cpu_millis: 4000,
        mru: 8 << 30,
        sru: 100 << 30,
        hru: 0,
    }
}

pub fn set_time(secs: u64) {
    Timestamp::set_timestamp(secs * 1000);
}

/// Registers `node` under a new farm of `farmer`.
pub fn register(node: u64, farmer: u64, capacity: Capacity) {
    let farm = pallet_grid::NextFarmId::<Test>::get();
    let name = format!("farm-{farm}").into_bytes();
    Grid::create_farm(RuntimeOrigin::signed(farmer), name).unwrap();
    Grid::approve_node(RuntimeOrigin::signed(farmer), farm, node).unwrap();
    Grid::register_node(
        RuntimeOrigin::signed(node),
        farm,
        capacity,
        [3; 32],
        Some(b"10.0.0.1:51820".to_vec()),
    )
    .unwrap();
}

pub fn new_test_ext() -> TestExternalities {
    let mut storage = frame_system::GenesisConfig::<Test>::default()
        .build_storage()
        .unwrap();
    pallet_balances::GenesisConfig::<Test> {
        balances: vec![
            (FARMER, 1),
            (ALICE, START_BALANCE),
            (BOB, START_BALANCE),
            (POOR, 1),
        ],
        ..Default::default()
    }
    .assimilate_storage(&mut storage)
    .unwrap();
    crate::GenesisConfig::<Test> {
        pricing: prices(),
        ..Default::default()
    }
    .assimilate_storage(&mut storage)
    .unwrap();
    let mut ext = TestExternalities::new(storage);
    ext.execute_with(|| {
        System::set_block_number(1);
        set_time(GENESIS_TIME);
        register(NODE, FARMER, node_capacity());
    });
    ext
}

/// Runs `test` on a fresh chain, then checks the pallet's invariants on what it left.
pub fn build_and_execute(test: impl FnOnce()) {
    new_test_ext().execute_with(|| {
        test();
        Deployments::do_try_state().expect("the pallet's invariants hold");
    });
}
