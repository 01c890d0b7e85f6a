//! Placeholder until the first benchmark run: the pallet's own estimates.
use core::marker::PhantomData;
use polkadot_sdk::frame_support::weights::Weight;

/// Weights for pallet_deployments.
pub struct WeightInfo<T>(PhantomData<T>);
impl<T> pallet_deployments::WeightInfo for WeightInfo<T> {
    fn create_contract() -> Weight {
        <() as pallet_deployments::WeightInfo>::create_contract()
    }
    fn update_contract() -> Weight {
        <() as pallet_deployments::WeightInfo>::update_contract()
    }
    fn cancel_contract() -> Weight {
        <() as pallet_deployments::WeightInfo>::cancel_contract()
    }
    fn report_workloads() -> Weight {
        <() as pallet_deployments::WeightInfo>::report_workloads()
    }
    fn report_consumption(n: u32) -> Weight {
        <() as pallet_deployments::WeightInfo>::report_consumption(n)
    }
    fn set_pricing() -> Weight {
        <() as pallet_deployments::WeightInfo>::set_pricing()
    }
    fn bill_bucket(n: u32) -> Weight {
        <() as pallet_deployments::WeightInfo>::bill_bucket(n)
    }
}
