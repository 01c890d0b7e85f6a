//! Weights of the grid pallet's calls.
//!
//! The runtime uses weights measured on the reference machine by `zos-chain benchmark pallet`
//! (`runtime-pallets/runtime/src/weights/`); the `()` implementation here serves the pallet's own
//! tests.

use polkadot_sdk::frame_support::weights::{constants::RocksDbWeight, Weight};

/// The weight of each call.
pub trait WeightInfo {
    /// `create_farm`.
    fn create_farm() -> Weight;
    /// `register_node`.
    fn register_node() -> Weight;
    /// `update_node`.
    fn update_node() -> Weight;
    /// `report_uptime`.
    fn report_uptime() -> Weight;
    /// `remove_node` and `force_remove_node`.
    fn remove_node() -> Weight;
    /// `remove_farm` and `force_remove_farm`.
    fn remove_farm() -> Weight;
    /// `approve_node`.
    fn approve_node() -> Weight;
    /// `report_down`.
    fn report_down() -> Weight;
    /// `set_hypervisor`.
    fn set_hypervisor() -> Weight;
}

impl WeightInfo for () {
    fn create_farm() -> Weight {
        Weight::from_parts(20_000_000, 1_600)
            .saturating_add(RocksDbWeight::get().reads_writes(2, 3))
    }
    fn register_node() -> Weight {
        Weight::from_parts(20_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(2, 2))
    }
    fn update_node() -> Weight {
        Weight::from_parts(15_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(1, 1))
    }
    fn report_uptime() -> Weight {
        Weight::from_parts(15_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(2, 1))
    }
    fn remove_node() -> Weight {
        Weight::from_parts(25_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(3, 2))
    }
    fn remove_farm() -> Weight {
        Weight::from_parts(20_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(2, 2))
    }
    fn approve_node() -> Weight {
        Weight::from_parts(15_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(2, 1))
    }
    fn report_down() -> Weight {
        Weight::from_parts(15_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(1, 1))
    }
    fn set_hypervisor() -> Weight {
        Weight::from_parts(15_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads_writes(2, 1))
    }
}
