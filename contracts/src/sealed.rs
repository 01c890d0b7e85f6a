//! Secrets sealed to a node's key, so that the chain only ever stores ciphertext, and bound to
//! the one place they were sealed for, so that a copy in another contract does not open.
//!
//! A node's identity is an ed25519 key. Its X25519 form (the Montgomery form of the public key;
//! the clamped scalar of the secret key) receives a libsodium-style sealed box (`crypto_box`:
//! an ephemeral X25519 key, XSalsa20-Poly1305). The sealed value is the ephemeral public key
//! followed by the ciphertext and its tag: [`crate::limits::SEAL_OVERHEAD`] bytes more than what
//! is sealed. Anyone can seal; only the node can open.
//!
//! What is sealed is the value's [`Context`] followed by the value: the domain tag
//! `zos/secret/v1`, the contract owner's account, the node's account, then the workload's name and
//! the variable's name, each after its SCALE compact length. All of it is known before the
//! contract exists, and the node checks it against the contract it runs: a value read from chain
//! storage and put into another account's contract, another workload or another variable is
//! refused ([`SealError::SealedForAnother`]).

use codec::{Decode, Encode};
use crypto_box::{PublicKey, SecretKey};

use crate::{limits, SealedValue};

/// The first bytes of every sealed plaintext.
const TAG: &[u8; 13] = b"zos/secret/v1";

/// Whom a deployment's secrets are sealed for: known before its contract exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealFor {
    /// The account that owns the contract (a group's multisig account for a group's contract).
    pub owner: [u8; 32],
    /// The node's account: its ed25519 public key, which the values are sealed to.
    pub node: [u8; 32],
}

impl SealFor {
    /// The context of variable `variable` of workload `workload`.
    pub fn context<'a>(&'a self, workload: &'a [u8], variable: &'a [u8]) -> Context<'a> {
        Context {
            owner: &self.owner,
            node: &self.node,
            workload,
            variable,
        }
    }
}

/// Where one sealed value may be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    /// The contract owner's account.
    pub owner: &'a [u8; 32],
    /// The node's account (its ed25519 public key).
    pub node: &'a [u8; 32],
    /// The workload's name.
    pub workload: &'a [u8],
    /// The environment variable's name.
    pub variable: &'a [u8],
}

impl Context<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut out = TAG.to_vec();
        (self.owner, self.node, self.workload, self.variable).encode_to(&mut out);
        out
    }
}

/// A part of a [`Context`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextPart {
    /// The contract's owner.
    Owner,
    /// The node.
    Node,
    /// The workload.
    Workload,
    /// The environment variable.
    Variable,
}

impl core::fmt::Display for ContextPart {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ContextPart::Owner => "owner",
            ContextPart::Node => "node",
            ContextPart::Workload => "workload",
            ContextPart::Variable => "variable",
        })
    }
}

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
    /// The workload's or the variable's name is longer than the model allows.
    NameTooLong {
        /// Which name.
        part: ContextPart,
        /// Bytes given.
        len: usize,
    },
    /// The sealed value was not made for this key, or was changed.
    CannotOpen,
    /// The value opened but does not start with a context: it was sealed in another format (before
    /// sealed values were bound to their contract).
    UnknownFormat,
    /// The value opened but was sealed for another owner, node, workload or variable.
    SealedForAnother(ContextPart),
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
            SealError::NameTooLong { part, len } => write!(
                f,
                "{part} name is {len} bytes, more than the {} allowed",
                match part {
                    ContextPart::Variable => limits::MAX_ENV_KEY_LEN,
                    _ => limits::MAX_NAME_LEN,
                }
            ),
            SealError::CannotOpen => {
                f.write_str("sealed value was not made for this node's key, or was altered")
            }
            SealError::UnknownFormat => f.write_str(
                "sealed value is not bound to a contract (an older format): seal it again",
            ),
            SealError::SealedForAnother(part) => write!(f, "sealed for another {part}"),
        }
    }
}

impl std::error::Error for SealError {}

/// Seals `plain` for `context`, to the node whose ed25519 public key is `context.node`.
pub fn seal(context: &Context, plain: &[u8]) -> Result<SealedValue, SealError> {
    if plain.len() > limits::MAX_ENV_VALUE_LEN as usize {
        return Err(SealError::TooLong { len: plain.len() });
    }
    for (part, name, max) in [
        (
            ContextPart::Workload,
            context.workload,
            limits::MAX_NAME_LEN,
        ),
        (
            ContextPart::Variable,
            context.variable,
            limits::MAX_ENV_KEY_LEN,
        ),
    ] {
        if name.len() > max as usize {
            return Err(SealError::NameTooLong {
                part,
                len: name.len(),
            });
        }
    }
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(context.node)
        .map_err(|_| SealError::InvalidNodeKey)?;
    let recipient = PublicKey::from_bytes(verifying.to_montgomery().to_bytes());
    let mut message = context.encode();
    message.extend_from_slice(plain);
    let sealed = recipient
        .seal(&mut rand_core::OsRng, &message)
        .expect("sealing into a Vec only fails on allocation; qed");
    Ok(SealedValue::try_from(sealed)
        .expect("the value and the names are within the bounds MAX_SEALED_VALUE_LEN sums; qed"))
}

/// Opens a value sealed to the node whose ed25519 signing key is `node_secret`, if it was sealed
/// for `expected`. The first part that differs is named in the error.
pub fn open(
    node_secret: &ed25519_dalek::SigningKey,
    expected: &Context,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let secret = SecretKey::from_bytes(node_secret.to_scalar_bytes());
    let message = secret.unseal(sealed).map_err(|_| SealError::CannotOpen)?;
    let mut rest = message
        .strip_prefix(TAG.as_slice())
        .ok_or(SealError::UnknownFormat)?;
    let (owner, node, workload, variable) =
        <([u8; 32], [u8; 32], Vec<u8>, Vec<u8>)>::decode(&mut rest)
            .map_err(|_| SealError::UnknownFormat)?;
    for (part, same) in [
        (ContextPart::Owner, owner == *expected.owner),
        (ContextPart::Node, node == *expected.node),
        (ContextPart::Workload, workload == expected.workload),
        (ContextPart::Variable, variable == expected.variable),
    ] {
        if !same {
            return Err(SealError::SealedForAnother(part));
        }
    }
    Ok(rest.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng)
    }

    fn sealed_for(node: &ed25519_dalek::SigningKey, owner: u8) -> SealFor {
        SealFor {
            owner: [owner; 32],
            node: node.verifying_key().to_bytes(),
        }
    }

    #[test]
    fn only_the_node_opens_what_was_sealed_to_it() {
        let node = node();
        let to = sealed_for(&node, 1);
        let context = to.context(b"app", b"TOKEN");
        let sealed = seal(&context, b"hunter2").unwrap();
        assert_eq!(
            sealed.len(),
            limits::SEAL_OVERHEAD as usize + TAG.len() + 64 + 4 + 6 + 7
        );
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(open(&node, &context, &sealed).unwrap(), b"hunter2");
        let other = self::node();
        let other_to = sealed_for(&other, 1);
        assert_eq!(
            open(&other, &other_to.context(b"app", b"TOKEN"), &sealed),
            Err(SealError::CannotOpen)
        );
    }

    #[test]
    fn a_value_opens_only_for_the_owner_workload_and_variable_it_was_sealed_for() {
        let node = node();
        let victim = sealed_for(&node, 1);
        let sealed = seal(&victim.context(b"app", b"TOKEN"), b"s3cr3t").unwrap();
        let attacker = sealed_for(&node, 2);
        assert_eq!(
            open(&node, &attacker.context(b"app", b"TOKEN"), &sealed),
            Err(SealError::SealedForAnother(ContextPart::Owner))
        );
        assert_eq!(
            open(&node, &victim.context(b"web", b"TOKEN"), &sealed),
            Err(SealError::SealedForAnother(ContextPart::Workload))
        );
        assert_eq!(
            open(&node, &victim.context(b"app", b"PASSWORD"), &sealed),
            Err(SealError::SealedForAnother(ContextPart::Variable))
        );
        assert_eq!(
            open(&node, &victim.context(b"app", b"TOKE"), &sealed),
            Err(SealError::SealedForAnother(ContextPart::Variable))
        );
        assert_eq!(
            SealError::SealedForAnother(ContextPart::Owner).to_string(),
            "sealed for another owner"
        );
    }

    #[test]
    fn a_value_naming_another_node_is_refused_even_when_it_opens() {
        // Only a sealer can make this (the node's key, another node's account inside).
        let node = node();
        let elsewhere = SealFor {
            owner: [1; 32],
            node: self::node().verifying_key().to_bytes(),
        };
        let mut message = elsewhere.context(b"app", b"TOKEN").encode();
        message.extend_from_slice(b"s3cr3t");
        let recipient = PublicKey::from_bytes(node.verifying_key().to_montgomery().to_bytes());
        let sealed = recipient.seal(&mut rand_core::OsRng, &message).unwrap();
        let here = sealed_for(&node, 1);
        assert_eq!(
            open(&node, &here.context(b"app", b"TOKEN"), &sealed),
            Err(SealError::SealedForAnother(ContextPart::Node))
        );
    }

    #[test]
    fn a_value_sealed_without_a_context_is_refused() {
        let node = node();
        let recipient = PublicKey::from_bytes(node.verifying_key().to_montgomery().to_bytes());
        let context = sealed_for(&node, 1);
        let context = context.context(b"app", b"TOKEN");
        for old in [&b"s3cr3t"[..], b"zos/secret/v1", b"zos/secret/v1\x01\x02"] {
            let sealed = recipient.seal(&mut rand_core::OsRng, old).unwrap();
            assert_eq!(
                open(&node, &context, &sealed),
                Err(SealError::UnknownFormat),
                "{old:?}"
            );
        }
    }

    #[test]
    fn a_changed_byte_is_refused() {
        let node = node();
        let to = sealed_for(&node, 1);
        let context = to.context(b"app", b"TOKEN");
        let mut sealed = seal(&context, b"secret").unwrap().into_inner();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(open(&node, &context, &sealed), Err(SealError::CannotOpen));
    }

    #[test]
    fn the_largest_value_with_the_longest_names_fits_the_bound() {
        let node = node();
        let to = sealed_for(&node, 1);
        let workload = vec![b'w'; limits::MAX_NAME_LEN as usize];
        let variable = vec![b'V'; limits::MAX_ENV_KEY_LEN as usize];
        let context = to.context(&workload, &variable);
        assert_eq!(
            context.encode().len(),
            limits::MAX_SEAL_CONTEXT_LEN as usize
        );
        let value = vec![b'x'; limits::MAX_ENV_VALUE_LEN as usize];
        let sealed = seal(&context, &value).unwrap();
        assert_eq!(sealed.len(), limits::MAX_SEALED_VALUE_LEN as usize);
        assert_eq!(open(&node, &context, &sealed).unwrap(), value);

        let shortest = to.context(b"a", b"A");
        assert_eq!(
            shortest.encode().len(),
            limits::MIN_SEAL_CONTEXT_LEN as usize
        );
        let sealed = seal(&shortest, b"").unwrap();
        assert_eq!(sealed.len(), limits::MIN_SEALED_VALUE_LEN as usize);
    }

    #[test]
    fn too_long_values_and_names_and_invalid_keys_are_refused() {
        let node = node();
        let to = sealed_for(&node, 1);
        let long = vec![b'x'; limits::MAX_ENV_VALUE_LEN as usize + 1];
        assert_eq!(
            seal(&to.context(b"app", b"TOKEN"), &long),
            Err(SealError::TooLong { len: long.len() })
        );
        let name = vec![b'w'; limits::MAX_NAME_LEN as usize + 1];
        assert_eq!(
            seal(&to.context(&name, b"TOKEN"), b"x"),
            Err(SealError::NameTooLong {
                part: ContextPart::Workload,
                len: name.len()
            })
        );
        let key = vec![b'K'; limits::MAX_ENV_KEY_LEN as usize + 1];
        assert_eq!(
            seal(&to.context(b"app", &key), b"x"),
            Err(SealError::NameTooLong {
                part: ContextPart::Variable,
                len: key.len()
            })
        );
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
            .expect("some repeated byte is not a curve point");
        let to = SealFor {
            owner: [1; 32],
            node: not_a_point,
        };
        assert_eq!(
            seal(&to.context(b"app", b"TOKEN"), b"x"),
            Err(SealError::InvalidNodeKey)
        );
    }
}
