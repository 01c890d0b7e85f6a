//! Keys and key files.
//!
//! A node signs with ed25519: its account is its public key, and secrets are sealed to it. Users
//! sign with sr25519 (or ed25519). A key file holds one line, `ed25519:<hex seed>` or
//! `sr25519:<secret URI or mnemonic>`, and is created `0600`; a key file that others may read is
//! refused.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
    str::FromStr,
};

use ed25519_dalek::{Signer as _, SigningKey};
use subxt::{
    transactions::Signer,
    utils::{AccountId32, MultiSignature},
};
use subxt_signer::{sr25519, SecretUri};

use crate::{error::ChainError, ZosConfig};

/// A node's ed25519 key.
#[derive(Clone)]
pub struct NodeKey {
    key: SigningKey,
}

impl NodeKey {
    /// A fresh random key.
    pub fn generate() -> NodeKey {
        NodeKey {
            key: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// The key with this 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> NodeKey {
        NodeKey {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The public key, which is also the account.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The node's account.
    pub fn account(&self) -> AccountId32 {
        AccountId32(self.public())
    }

    /// The signing key, to open secrets sealed to this node.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Loads the key file at `path`, or creates it with a fresh key.
    pub fn load_or_create(path: &Path) -> Result<NodeKey, ChainError> {
        if path.exists() {
            match load(path)? {
                UserKey::Ed25519(k) => Ok(k),
                UserKey::Sr25519(_) => Err(key_file(
                    path,
                    "holds an sr25519 key, a node key is ed25519",
                )),
            }
        } else {
            let key = NodeKey::generate();
            write_key_file(
                path,
                &format!("ed25519:{}", hex::encode(key.key.to_bytes())),
            )?;
            Ok(key)
        }
    }
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", self.account())
    }
}

impl Signer<ZosConfig> for NodeKey {
    fn account_id(&self) -> AccountId32 {
        self.account()
    }

    fn sign(&self, payload: &[u8]) -> MultiSignature {
        MultiSignature::Ed25519(self.key.sign(payload).to_bytes())
    }
}

/// A user's key: sr25519 (mnemonics, dev URIs such as `//Alice`) or ed25519.
#[derive(Clone)]
pub enum UserKey {
    /// sr25519.
    Sr25519(sr25519::Keypair),
    /// ed25519.
    Ed25519(NodeKey),
}

impl UserKey {
    /// An sr25519 key from a secret URI (`//Alice`, `<mnemonic>//path`, `0x<seed>`) or a
    /// mnemonic.
    pub fn from_uri(uri: &str) -> Result<UserKey, ChainError> {
        let uri = SecretUri::from_str(uri).map_err(|e| ChainError::InvalidKey(e.to_string()))?;
        sr25519::Keypair::from_uri(&uri)
            .map(UserKey::Sr25519)
            .map_err(|e| ChainError::InvalidKey(e.to_string()))
    }

    /// A fresh sr25519 key and its mnemonic (shown to the user once).
    pub fn generate_sr25519() -> Result<(UserKey, String), ChainError> {
        let mut entropy = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut entropy);
        let mnemonic = subxt_signer::bip39::Mnemonic::from_entropy(&entropy)
            .map_err(|e| ChainError::InvalidKey(e.to_string()))?;
        let phrase = mnemonic.to_string();
        Ok((UserKey::from_uri(&phrase)?, phrase))
    }

    /// The account.
    pub fn account(&self) -> AccountId32 {
        match self {
            UserKey::Sr25519(k) => k.public_key().to_account_id(),
            UserKey::Ed25519(k) => k.account(),
        }
    }
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserKey({})", self.account())
    }
}

impl Signer<ZosConfig> for UserKey {
    fn account_id(&self) -> AccountId32 {
        self.account()
    }

    fn sign(&self, payload: &[u8]) -> MultiSignature {
        match self {
            UserKey::Sr25519(k) => MultiSignature::Sr25519(k.sign(payload).0),
            UserKey::Ed25519(k) => <NodeKey as Signer<ZosConfig>>::sign(k, payload),
        }
    }
}

fn key_file(path: &Path, reason: impl Into<String>) -> ChainError {
    ChainError::KeyFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes a new key file, `0600`, refusing to replace an existing one.
pub fn write_key_file(path: &Path, contents: &str) -> Result<(), ChainError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| key_file(path, e.to_string()))?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| key_file(path, e.to_string()))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| key_file(path, e.to_string()))
}

/// Reads a key file; refuses one that group or others may read.
pub fn load(path: &Path) -> Result<UserKey, ChainError> {
    let meta = fs::metadata(path).map_err(|e| key_file(path, e.to_string()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_file(
            path,
            format!("mode {mode:o} lets others read it; chmod 600 it"),
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| key_file(path, e.to_string()))?;
    let text = text.trim();
    if let Some(seed) = text.strip_prefix("ed25519:") {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(seed.trim_start_matches("0x"), &mut bytes)
            .map_err(|_| key_file(path, "an ed25519 key is 64 hex digits"))?;
        Ok(UserKey::Ed25519(NodeKey::from_seed(bytes)))
    } else if let Some(uri) = text.strip_prefix("sr25519:") {
        UserKey::from_uri(uri).map_err(|e| key_file(path, e.to_string()))
    } else {
        Err(key_file(
            path,
            "expected `ed25519:<hex seed>` or `sr25519:<secret URI>`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_are_created_private_and_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        let key = NodeKey::load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            NodeKey::load_or_create(&path).unwrap().public(),
            key.public()
        );
        assert_eq!(key.account().0, key.public());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_key_file(&path, "sr25519://Alice").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn dev_uris_and_mnemonics_give_sr25519_accounts() {
        let alice = UserKey::from_uri("//Alice").unwrap();
        assert_eq!(
            alice.account().to_string(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        let (key, phrase) = UserKey::generate_sr25519().unwrap();
        assert_eq!(phrase.split(' ').count(), 12);
        assert_eq!(UserKey::from_uri(&phrase).unwrap().account(), key.account());
        assert!(UserKey::from_uri("not a uri //").is_err());
    }
}
