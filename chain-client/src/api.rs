//! Generated from `metadata/zos.scale`, the runtime's metadata (a test in `zos-runtime` fails when
//! it is stale). `Deployment` and `Capacity` are `zos-contracts`' own types, carried as
//! [`subxt::utils::Static`] (SCALE through their codec implementations).
#![allow(missing_docs, clippy::all)]

#[subxt::subxt(
    runtime_metadata_path = "metadata/zos.scale",
    substitute_type(
        path = "zos_contracts::model::Deployment",
        with = "::subxt::utils::Static<::zos_contracts::Deployment>"
    ),
    substitute_type(
        path = "zos_contracts::model::Capacity",
        with = "::subxt::utils::Static<::zos_contracts::Capacity>"
    ),
    derive_for_all_types = "Clone"
)]
pub mod zos {}

pub use zos::*;

/// Rebuilds this module when the metadata changes.
const _METADATA: &[u8] = include_bytes!("../metadata/zos.scale");
