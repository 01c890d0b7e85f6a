//! Secrets sealed to a node's key, so that the chain only ever stores ciphertext.
//!
//! A node's identity is an ed25519 key. Its X25519 form (the Montgomery form of the public key;
//! the clamped scalar of the secret key) receives a libsodium-style sealed box (`crypto_box`:
//! an ephemeral X25519 key, XSalsa20-Poly1305). The sealed value is the ephemeral public key
//! followed by the ciphertext and its tag: [`crate::limits::SEAL_OVERHEAD`] bytes more than the
//! plain value. Anyone can seal; only the node can open.

use crypto_box::{PublicKey, SecretKey};

use crate::{limits, SealedValue};

/// Why a value could not be sealed or opened.
#[derive(Debug, PartialEq, Eq)]
pub enum SealError {
    /// The node key is not a valid ed25519 public key.
    InvalidNodeKey,
    /// The plain value is longer than [`limits::MAX_ENV_VALUE_LEN`].
    TooLong {
        /// Bytes given.
        len: usize,
    },
    /// The sealed value was not made for this key, or was changed.
    CannotOpen,
}

impl core::fmt::Display for SealError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SealError::InvalidNodeKey => f.write_str("node key is not a valid ed25519 public key"),
            SealError::TooLong { len } => write!(
                f,
                "secret is {len} bytes, more than the {} allowed",
                limits::MAX_ENV_VALUE_LEN
            ),
            SealError::CannotOpen => {
                f.write_str("sealed value was not made for this node's key, or was altered")
            }
        }
    }
}

impl std::error::Error for SealError {}

/// Seals `plain` to the node whose ed25519 public key is `node_key`.
pub fn seal(node_key: &[u8; 32], plain: &[u8]) -> Result<SealedValue, SealError> {
    if plain.len() > limits::MAX_ENV_VALUE_LEN as usize {
        return Err(SealError::TooLong { len: plain.len() });
    }
    let verifying =
        ed25519_dalek::VerifyingKey::from_bytes(node_key).map_err(|_| SealError::InvalidNodeKey)?;
    let recipient = PublicKey::from_bytes(verifying.to_montgomery().to_bytes());
    let sealed = recipient
        .seal(&mut rand_core::OsRng, plain)
        .expect("sealing into a Vec only fails on allocation; qed");
    Ok(SealedValue::try_from(sealed).expect("the plain length was checked above; qed"))
}

/// Opens a value sealed to the node whose ed25519 signing key is `node_secret`.
pub fn open(node_secret: &ed25519_dalek::SigningKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let secret = SecretKey::from_bytes(node_secret.to_scalar_bytes());
    secret.unseal(sealed).map_err(|_| SealError::CannotOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng)
    }

    #[test]
    fn only_the_node_opens_what_was_sealed_to_it() {
        let node = node();
        let sealed = seal(node.verifying_key().as_bytes(), b"hunter2").unwrap();
        assert_eq!(sealed.len(), 7 + limits::SEAL_OVERHEAD as usize);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(open(&node, &sealed).unwrap(), b"hunter2");
        assert_eq!(open(&self::node(), &sealed), Err(SealError::CannotOpen));
    }

    #[test]
    fn a_changed_byte_is_refused() {
        let node = node();
        let mut sealed = seal(node.verifying_key().as_bytes(), b"secret")
            .unwrap()
            .into_inner();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(open(&node, &sealed), Err(SealError::CannotOpen));
    }

    #[test]
    fn too_long_and_invalid_keys_are_refused() {
        let node = node();
        let long = vec![b'x'; limits::MAX_ENV_VALUE_LEN as usize + 1];
        assert_eq!(
            seal(node.verifying_key().as_bytes(), &long),
            Err(SealError::TooLong { len: long.len() })
        );
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
            .expect("some repeated byte is not a curve point");
        assert_eq!(seal(&not_a_point, b"x"), Err(SealError::InvalidNodeKey));
    }
}
