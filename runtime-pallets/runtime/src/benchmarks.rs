//! The pallets whose weights `zos-chain benchmark pallet` measures.

polkadot_sdk::frame_benchmarking::define_benchmarks!(
    [frame_system, SystemBench::<Runtime>]
    [pallet_balances, Balances]
    [pallet_timestamp, Timestamp]
    [pallet_multisig, Multisig]
    [pallet_grid, Grid]
    [pallet_deployments, Deployments]
);
