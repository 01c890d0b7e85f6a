//! Billing in `on_initialize` at its bounds fits in the block, with the weights measured here.

use frame_support::traits::Get;
use pallet_deployments::WeightInfo as _;
use zos_runtime::Runtime;

type Bounds = <Runtime as pallet_deployments::Config>::WeightInfo;

#[test]
fn billing_at_its_bounds_takes_at_most_a_third_of_a_block() {
    let bills = <Runtime as pallet_deployments::Config>::MaxBillsPerBlock::get();
    let seconds = <Runtime as pallet_deployments::Config>::MaxBillingSecondsPerBlock::get();
    let worst = Bounds::bill_due(bills, seconds);
    let block = <Runtime as frame_system::Config>::BlockWeights::get().max_block;
    let share = worst.ref_time() as f64 / block.ref_time() as f64;
    println!(
        "billing {bills} contracts over {seconds} s of queue: {:.1} ms of the block's {:.0} ms ({:.1} %)",
        worst.ref_time() as f64 / 1e9,
        block.ref_time() as f64 / 1e9,
        share * 100.0
    );
    assert!(
        share <= 1.0 / 3.0,
        "billing takes {:.1} % of a block",
        share * 100.0
    );
}
