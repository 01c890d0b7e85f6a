//! What reserving capacity costs: one formula for the chain that bills and the tools that show a
//! price. Pure arithmetic in `u128`; amounts round down, so nobody is charged for a fraction of
//! the smallest unit.

use crate::model::Capacity;

const GIB: u128 = 1 << 30;
const HOUR: u128 = 3600;
const MILLI: u128 = 1000;

/// Prices of reserved capacity per hour, in the smallest unit of the currency.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HourlyPrices {
    /// Per vCPU (reserved in thousandths: a 0.1-vCPU container pays a tenth).
    pub vcpu: u128,
    /// Per GiB of memory.
    pub memory_gib: u128,
    /// Per GiB of SSD.
    pub ssd_gib: u128,
    /// Per GiB of HDD.
    pub hdd_gib: u128,
}

/// The cost of reserving `capacity` for `seconds`, pro rata to the second.
pub fn reservation_cost(prices: &HourlyPrices, capacity: &Capacity, seconds: u64) -> u128 {
    // Per hour, in units of 1/(1000 GiB) of the smallest unit, to keep precision.
    let bytes = u128::from(capacity.mru)
        .saturating_mul(prices.memory_gib)
        .saturating_add(u128::from(capacity.sru).saturating_mul(prices.ssd_gib))
        .saturating_add(u128::from(capacity.hru).saturating_mul(prices.hdd_gib));
    let per_hour_scaled = u128::from(capacity.cpu_millis)
        .saturating_mul(prices.vcpu)
        .saturating_mul(GIB)
        .saturating_add(bytes.saturating_mul(MILLI));
    per_hour_scaled.saturating_mul(u128::from(seconds)) / (HOUR * GIB * MILLI)
}
