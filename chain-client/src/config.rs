//! The chain's types, as subxt needs them.

use subxt::config::{
    substrate::{BlakeTwo256, SubstrateHeader, H256},
    Config, DefaultTransactionExtensions, HashFor, SubstrateConfig,
};
use subxt::utils::{AccountId32, MultiAddress, MultiSignature};

/// The Zero-OS runtime's configuration: 32-byte accounts, `MultiAddress<AccountId, ()>`,
/// `MultiSignature`, BLAKE2 hashing. Wraps [`SubstrateConfig`] for its metadata cache.
#[derive(Debug, Clone, Default)]
pub struct ZosConfig(SubstrateConfig);

impl Config for ZosConfig {
    type AccountId = AccountId32;
    type Address = MultiAddress<AccountId32, ()>;
    type Signature = MultiSignature;
    type Hasher = BlakeTwo256;
    type Header = SubstrateHeader<H256>;
    type TransactionExtensions = DefaultTransactionExtensions<Self>;
    type AssetId = u32;

    fn genesis_hash(&self) -> Option<HashFor<Self>> {
        self.0.genesis_hash()
    }

    fn metadata_for_spec_version(&self, version: u32) -> Option<subxt::ArcMetadata> {
        self.0.metadata_for_spec_version(version)
    }

    fn set_metadata_for_spec_version(&self, version: u32, metadata: subxt::ArcMetadata) {
        self.0.set_metadata_for_spec_version(version, metadata)
    }
}
