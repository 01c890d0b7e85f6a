//! The built-in chains: `dev` and `local`.

use polkadot_sdk::{sc_service::ChainType, sp_genesis_builder, *};
use zos_runtime::WASM_BINARY;

pub type ChainSpec = sc_service::GenericChainSpec;

fn wasm() -> Result<&'static [u8], String> {
    WASM_BINARY.ok_or_else(|| "the runtime's wasm was not built (SKIP_WASM_BUILD set?)".into())
}

fn properties() -> sc_service::Properties {
    let mut p = sc_service::Properties::new();
    p.insert("tokenSymbol".into(), "ZOS".into());
    p.insert("tokenDecimals".into(), 12.into());
    p.insert("ss58Format".into(), 42.into());
    p
}

/// One authority, Alice; blocks on demand.
pub fn development() -> Result<ChainSpec, String> {
    Ok(ChainSpec::builder(wasm()?, None)
        .with_name("Zero-OS Development")
        .with_id("zos_dev")
        .with_chain_type(ChainType::Development)
        .with_properties(properties())
        .with_genesis_config_preset_name(sp_genesis_builder::DEV_RUNTIME_PRESET)
        .build())
}

/// Alice, Bob and Charlie author with Aura and finalize with GRANDPA.
pub fn local_testnet() -> Result<ChainSpec, String> {
    Ok(ChainSpec::builder(wasm()?, None)
        .with_name("Zero-OS Local Testnet")
        .with_id("zos_local")
        .with_chain_type(ChainType::Local)
        .with_properties(properties())
        .with_genesis_config_preset_name(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET)
        .build())
}
