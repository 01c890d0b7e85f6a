//! Weights of the deployments pallet's calls and of billing.
//!
//! The runtime uses weights measured on the reference machine by `zos-chain benchmark pallet`
//! (`runtime-pallets/runtime/src/weights/`); the `()` implementation here serves the pallet's own
//! tests.

use polkadot_sdk::frame_support::weights::{constants::RocksDbWeight, Weight};

/// The weight of each call, and of billing one bucket.
pub trait WeightInfo {
    /// `create_contract`, for the largest deployment.
    fn create_contract() -> Weight;
    /// `update_contract`, for the largest deployment.
    fn update_contract() -> Weight;
    /// `cancel_contract`.
    fn cancel_contract() -> Weight;
    /// `report_workloads`, every workload reported.
    fn report_workloads() -> Weight;
    /// `report_consumption` for `n` contracts.
    fn report_consumption(n: u32) -> Weight;
    /// `set_pricing`.
    fn set_pricing() -> Weight;
    /// Billing in `on_initialize`: `b` contracts billed over `s` seconds of the billing queue.
    fn bill_due(b: u32, s: u32) -> Weight;
}

impl WeightInfo for () {
    fn create_contract() -> Weight {
        Weight::from_parts(400_000_000, 20_000)
            .saturating_add(RocksDbWeight::get().reads_writes(6, 7))
    }
    fn update_contract() -> Weight {
        Weight::from_parts(400_000_000, 20_000)
            .saturating_add(RocksDbWeight::get().reads_writes(5, 3))
    }
    fn cancel_contract() -> Weight {
        Weight::from_parts(100_000_000, 20_000)
            .saturating_add(RocksDbWeight::get().reads_writes(7, 9))
    }
    fn report_workloads() -> Weight {
        Weight::from_parts(50_000_000, 20_000)
            .saturating_add(RocksDbWeight::get().reads_writes(2, 1))
    }
    fn report_consumption(n: u32) -> Weight {
        Weight::from_parts(20_000_000, 0)
            .saturating_add(Weight::from_parts(30_000_000, 20_000).saturating_mul(n.into()))
            .saturating_add(
                RocksDbWeight::get()
                    .reads_writes(2, 1)
                    .saturating_mul(n.into()),
            )
    }
    fn set_pricing() -> Weight {
        Weight::from_parts(10_000_000, 0).saturating_add(RocksDbWeight::get().writes(1))
    }
    fn bill_due(b: u32, s: u32) -> Weight {
        Weight::from_parts(5_000_000, 2_000)
            .saturating_add(Weight::from_parts(80_000_000, 20_000).saturating_mul(b.into()))
            .saturating_add(Weight::from_parts(2_000_000, 0).saturating_mul(s.into()))
            .saturating_add(RocksDbWeight::get().reads_writes(1, 1))
            .saturating_add(RocksDbWeight::get().reads(1).saturating_mul(s.into()))
            .saturating_add(
                RocksDbWeight::get()
                    .reads_writes(4, 5)
                    .saturating_mul(b.into()),
            )
    }
}
