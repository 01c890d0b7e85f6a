//! What a contract costs, and when it is billed. Pure arithmetic in `u128`; the pallet converts
//! to its balance type.
//!
//! A contract pays for what it reserves, per hour and pro rata to the second, plus what it
//! consumed. Amounts round down: a contract is never charged for a fraction of the smallest unit.
//! Not billed: the seconds its node was down (said so, or silent past the grid's `OfflineAfter`;
//! see `pallet_grid::Node::downtime`), and the capacity of workloads the node reported it cannot
//! run (`WorkloadStatus::Unsupported`).
//!
//! When: every contract has a place in the billing queue, the chain second of its next bill
//! (`Contract::next_bill`). Each block walks the queue from where the last one stopped up to the
//! block's time, billing at most `MaxBillsPerBlock` contracts over at most
//! `MaxBillingSecondsPerBlock` seconds, and puts each billed contract back a billing period later
//! (sooner in its grace period). The work of a block is bounded whatever the number of live
//! contracts, and no bucket or count is stored that a runtime upgrade could leave stale. When
//! more contracts fall due than the blocks bill, bills come later than their period, and each
//! covers the longer time: nothing is lost, only delayed.

use crate::types::{Consumption, Pricing};
use zos_contracts::Capacity;

const GIB: u128 = 1 << 30;
const HOUR: u128 = 3600;

/// Seconds of a contract's reservation it may be reported for at its creation, so that the edges
/// of a node's sampling (a process started in the contract's first second) are not refused.
pub const ALLOWANCE_HEADROOM_SECS: u64 = 5;

/// The cost of reserving `capacity` for `seconds` (the formula is `zos-contracts`', shared with
/// the tools that show prices).
pub fn reservation_cost(prices: &Pricing, capacity: &Capacity, seconds: u64) -> u128 {
    zos_contracts::pricing::reservation_cost(&prices.hourly(), capacity, seconds)
}

/// The cost of what was consumed.
pub fn consumption_cost(prices: &Pricing, consumption: &Consumption) -> u128 {
    let cpu = u128::from(consumption.cpu_ms).saturating_mul(prices.cpu_hour) / (HOUR * 1000);
    let bytes = u128::from(consumption.net_rx).saturating_add(u128::from(consumption.net_tx));
    cpu.saturating_add(bytes.saturating_mul(prices.network_gib) / GIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Pricing {
        Pricing {
            cru_per_hour: 1_000,
            mru_gib_per_hour: 500,
            sru_gib_per_hour: 10,
            hru_gib_per_hour: 1,
            cpu_hour: 2_000,
            network_gib: 100,
        }
    }

    #[test]
    fn reservation_is_pro_rata_to_the_second() {
        let cap = Capacity {
            cpu_millis: 2000,
            mru: 4 << 30,
            sru: 100 << 30,
            hru: 0,
        };
        // 2 * 1000 + 4 * 500 + 100 * 10 = 5000 per hour.
        assert_eq!(reservation_cost(&prices(), &cap, 3600), 5_000);
        assert_eq!(reservation_cost(&prices(), &cap, 36), 50);
        assert_eq!(reservation_cost(&prices(), &cap, 0), 0);
        // Half a GiB of memory for an hour.
        let half = Capacity {
            mru: 1 << 29,
            ..Capacity::default()
        };
        assert_eq!(reservation_cost(&prices(), &half, 3600), 250);
        // A tenth of a vCPU pays a tenth of the vCPU price.
        let tenth = Capacity {
            cpu_millis: 100,
            ..Capacity::default()
        };
        assert_eq!(reservation_cost(&prices(), &tenth, 3600), 100);
    }

    #[test]
    fn consumption_counts_cpu_time_and_traffic() {
        let c = Consumption {
            cpu_ms: 1_800_000,
            memory_peak: 1 << 30,
            net_rx: 1 << 30,
            net_tx: 1 << 29,
        };
        // Half a CPU hour: 1000; 1.5 GiB: 150.
        assert_eq!(consumption_cost(&prices(), &c), 1_150);
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let cap = Capacity {
            cpu_millis: u64::MAX,
            mru: u64::MAX,
            sru: u64::MAX,
            hru: u64::MAX,
        };
        let max = Pricing {
            cru_per_hour: u128::MAX,
            ..prices()
        };
        assert!(reservation_cost(&max, &cap, u64::MAX) > 0);
    }
}
