//! Placeholder until the first benchmark run: the pallet's own estimates.
use core::marker::PhantomData;
use polkadot_sdk::frame_support::weights::Weight;

/// Weights for pallet_grid.
pub struct WeightInfo<T>(PhantomData<T>);
impl<T> pallet_grid::WeightInfo for WeightInfo<T> {
    fn create_farm() -> Weight {
        <() as pallet_grid::WeightInfo>::create_farm()
    }
    fn register_node() -> Weight {
        <() as pallet_grid::WeightInfo>::register_node()
    }
    fn update_node() -> Weight {
        <() as pallet_grid::WeightInfo>::update_node()
    }
    fn report_uptime() -> Weight {
        <() as pallet_grid::WeightInfo>::report_uptime()
    }
    fn remove_node() -> Weight {
        <() as pallet_grid::WeightInfo>::remove_node()
    }
    fn remove_farm() -> Weight {
        <() as pallet_grid::WeightInfo>::remove_farm()
    }
}
