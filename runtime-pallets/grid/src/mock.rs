//! A runtime with only what the grid pallet needs.

use crate as pallet_grid;
use core::cell::RefCell;
use polkadot_sdk::{
    frame_support::{self, derive_impl, traits::ConstU64},
    frame_system::{self, EnsureRoot},
    pallet_timestamp,
    sp_io::TestExternalities,
    sp_runtime::BuildStorage,
};

type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
    pub enum Test {
        System: frame_system,
        Timestamp: pallet_timestamp,
        Grid: pallet_grid,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
}

impl pallet_timestamp::Config for Test {
    type Moment = u64;
    type OnTimestampSet = ();
    type MinimumPeriod = ConstU64<1>;
    type WeightInfo = ();
}

thread_local! {
    static BUSY_NODES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Nodes marked busy carry contracts.
pub struct MockUsage;

impl MockUsage {
    pub fn set_busy(node: u64, busy: bool) {
        BUSY_NODES.with(|b| {
            let mut b = b.borrow_mut();
            b.retain(|n| *n != node);
            if busy {
                b.push(node);
            }
        });
    }
}

impl crate::NodeUsage<u64> for MockUsage {
    fn has_contracts(node: &u64) -> bool {
        BUSY_NODES.with(|b| b.borrow().contains(node))
    }
}

pub const TOLERANCE: u64 = 300;
pub const MIN_INTERVAL: u64 = 60;
pub const OFFLINE_AFTER: u64 = 600;

impl crate::Config for Test {
    type AdminOrigin = EnsureRoot<u64>;
    type UnixTime = Timestamp;
    type NodeUsage = MockUsage;
    type UptimeTolerance = ConstU64<TOLERANCE>;
    type MinUptimeInterval = ConstU64<MIN_INTERVAL>;
    type OfflineAfter = ConstU64<OFFLINE_AFTER>;
    type WeightInfo = ();
}

/// Chain time at the start of every test, unix seconds.
pub const GENESIS_TIME: u64 = 1_700_000_000;

pub fn set_time(secs: u64) {
    Timestamp::set_timestamp(secs * 1000);
}

pub fn new_test_ext() -> TestExternalities {
    let storage = frame_system::GenesisConfig::<Test>::default()
        .build_storage()
        .unwrap();
    let mut ext = TestExternalities::new(storage);
    ext.execute_with(|| {
        System::set_block_number(1);
        set_time(GENESIS_TIME);
    });
    ext
}
