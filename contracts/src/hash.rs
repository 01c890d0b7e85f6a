//! The canonical hash of a deployment.

use blake2::{digest::consts::U32, Blake2b, Digest};
use codec::Encode;

use crate::model::Deployment;

/// Domain tag hashed before the encoding, so that a deployment hash can never collide with a hash
/// of anything else that is SCALE-encoded.
pub const DEPLOYMENT_HASH_DOMAIN: &[u8] = b"zos/deployment/v1";

/// BLAKE2b-256 over [`DEPLOYMENT_HASH_DOMAIN`] followed by `encoded`.
pub fn hash_encoded(encoded: &[u8]) -> [u8; 32] {
    let mut hasher = Blake2b::<U32>::new();
    hasher.update(DEPLOYMENT_HASH_DOMAIN);
    hasher.update(encoded);
    hasher.finalize().into()
}

impl Deployment {
    /// The canonical hash: BLAKE2b-256 over the domain tag and the SCALE encoding.
    pub fn hash(&self) -> [u8; 32] {
        self.using_encoded(hash_encoded)
    }
}
