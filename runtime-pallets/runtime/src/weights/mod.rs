//! Weights measured on the reference machine (2 cores) by `zos-chain benchmark pallet`; see
//! docs/benchmarks.md for the command that regenerates them.

pub mod pallet_deployments;
pub mod pallet_grid;
