//! Genesis presets: `development` (Alice alone authors and is sudo) and `local_testnet` (Alice,
//! Bob and Charlie author). The well-known dev accounts are funded in both.

use crate::{AccountId, BalancesConfig, DeploymentsConfig, RuntimeGenesisConfig, SudoConfig, UNIT};
use alloc::{vec, vec::Vec};
use frame_support::build_struct_json_patch;
use pallet_deployments::Pricing;
use polkadot_sdk::*;
use serde_json::Value;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_consensus_grandpa::AuthorityId as GrandpaId;
use sp_genesis_builder::{self, PresetId};
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};

/// Balance of each dev account at genesis.
pub const DEV_BALANCE: u128 = 1_000_000 * UNIT;

/// Prices at genesis, in the smallest unit (a token is 10^12).
pub fn default_pricing() -> Pricing {
    Pricing {
        cru_per_hour: UNIT / 100,
        mru_gib_per_hour: UNIT / 200,
        sru_gib_per_hour: UNIT / 10_000,
        hru_gib_per_hour: UNIT / 100_000,
        cpu_hour: UNIT / 100,
        network_gib: UNIT / 1_000,
    }
}

fn genesis(
    authorities: Vec<(AuraId, GrandpaId)>,
    endowed: Vec<AccountId>,
    root: AccountId,
) -> Value {
    build_struct_json_patch!(RuntimeGenesisConfig {
        balances: BalancesConfig {
            balances: endowed
                .into_iter()
                .map(|a| (a, DEV_BALANCE))
                .collect::<Vec<_>>(),
        },
        aura: pallet_aura::GenesisConfig {
            authorities: authorities.iter().map(|a| a.0.clone()).collect::<Vec<_>>(),
        },
        grandpa: pallet_grandpa::GenesisConfig {
            authorities: authorities
                .iter()
                .map(|a| (a.1.clone(), 1))
                .collect::<Vec<_>>(),
        },
        sudo: SudoConfig { key: Some(root) },
        deployments: DeploymentsConfig {
            pricing: default_pricing()
        },
    })
}

fn authority(sr: Sr25519Keyring, ed: Ed25519Keyring) -> (AuraId, GrandpaId) {
    (sr.public().into(), ed.public().into())
}

fn dev_accounts() -> Vec<AccountId> {
    Sr25519Keyring::iter()
        .filter(|k| !matches!(k, Sr25519Keyring::One | Sr25519Keyring::Two))
        .map(|k| k.to_account_id())
        .collect()
}

/// Alice authors alone and is sudo.
pub fn development() -> Value {
    genesis(
        vec![authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice)],
        dev_accounts(),
        Sr25519Keyring::Alice.to_account_id(),
    )
}

/// Alice, Bob and Charlie author; Alice is sudo.
pub fn local_testnet() -> Value {
    genesis(
        vec![
            authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
            authority(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
            authority(Sr25519Keyring::Charlie, Ed25519Keyring::Charlie),
        ],
        dev_accounts(),
        Sr25519Keyring::Alice.to_account_id(),
    )
}

/// The preset with this id, as JSON.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
    let patch = match id.as_ref() {
        sp_genesis_builder::DEV_RUNTIME_PRESET => development(),
        sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_testnet(),
        _ => return None,
    };
    Some(
        serde_json::to_string(&patch)
            .expect("a JSON value serializes; qed")
            .into_bytes(),
    )
}

/// The ids of the presets.
pub fn preset_names() -> Vec<PresetId> {
    vec![
        PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
        PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
    ]
}
