//! The home directory: `keys/NAME` (key files, `0600`) and `groups/NAME.toml` (group profiles).

use std::{
    fs,
    path::{Path, PathBuf},
    str::FromStr,
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use zos_chain_client::{
    keys::{self, UserKey},
    multisig::Group,
    AccountId32,
};

use crate::exit::{invalid, other};

/// The home directory.
pub struct Home {
    root: PathBuf,
}

/// A key in the home, or the reason it cannot be read.
pub struct StoredKey {
    /// Its name.
    pub name: String,
    /// The key.
    pub key: anyhow::Result<UserKey>,
}

/// A group profile, `groups/NAME.toml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    /// Members' addresses, sorted as pallet-multisig sorts them (by their bytes).
    members: Vec<String>,
    /// How many members must approve.
    threshold: u16,
    /// The group's account (derived from the two above; checked on load).
    account: String,
}

/// Whether `spec` is a secret URI or mnemonic rather than a name: `//Alice`, `0x…` seeds,
/// `word word …`.
pub fn is_uri(spec: &str) -> bool {
    spec.starts_with("//") || spec.starts_with("0x") || spec.contains(' ')
}

/// Whether `s` is a key or group name: letters, digits, `.`, `_`, `-`.
fn check_name(what: &str, s: &str) -> anyhow::Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{s:?} is not a valid {what} name: use letters, digits, '.', '_' and '-'"
        )))
    }
}

impl Home {
    /// The home at `root`.
    pub fn new(root: PathBuf) -> Home {
        Home { root }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    fn groups_dir(&self) -> PathBuf {
        self.root.join("groups")
    }

    /// The file of key `name`.
    pub fn key_path(&self, name: &str) -> anyhow::Result<PathBuf> {
        check_name("key", name)?;
        Ok(self.keys_dir().join(name))
    }

    /// Writes key `name` (`ed25519:<hex>` or `sr25519:<uri>`), `0600`; refuses to replace one.
    pub fn write_key(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let path = self.key_path(name)?;
        if path.exists() {
            return Err(invalid(format!(
                "a key named {name} exists already ({})",
                path.display()
            )));
        }
        keys::write_key_file(&path, contents)?;
        Ok(path)
    }

    /// The key `spec` names: a dev URI or mnemonic (`//Alice`), or a key in the home.
    pub fn key(&self, spec: &str) -> anyhow::Result<UserKey> {
        if is_uri(spec) {
            return UserKey::from_uri(spec)
                .map_err(|e| invalid(format!("the key URI is not valid: {e}")));
        }
        let path = self.key_path(spec)?;
        if !path.exists() {
            return Err(invalid(format!(
                "no key named {spec:?} in {} (see `zosctl key list`; dev keys are URIs like //Alice)",
                self.keys_dir().display()
            )));
        }
        Ok(keys::load(&path)?)
    }

    /// Every key in the home, by name.
    pub fn keys(&self) -> anyhow::Result<Vec<StoredKey>> {
        let dir = self.keys_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let key = keys::load(&entry.path()).map_err(anyhow::Error::from);
            keys.push(StoredKey { name, key });
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    /// The local name of `account`: a key's or a group's.
    pub fn name_of(&self, account: &AccountId32) -> Option<String> {
        if let Ok(keys) = self.keys() {
            for k in keys {
                if k.key.as_ref().is_ok_and(|key| key.account() == *account) {
                    return Some(k.name);
                }
            }
        }
        for name in self.group_names().unwrap_or_default() {
            if self.group(&name).is_ok_and(|g| g.account() == *account) {
                return Some(format!("group {name}"));
            }
        }
        for dev in ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"] {
            if UserKey::from_uri(&format!("//{dev}")).is_ok_and(|k| k.account() == *account) {
                return Some(format!("//{dev}"));
            }
        }
        None
    }

    /// The account `spec` names: an SS58 address, `0x` and 64 hex digits, a key name, a group
    /// name or a dev URI.
    pub fn account(&self, spec: &str) -> anyhow::Result<AccountId32> {
        if let Ok(a) = AccountId32::from_str(spec) {
            return Ok(a);
        }
        if let Some(h) = spec.strip_prefix("0x") {
            let mut bytes = [0u8; 32];
            if hex::decode_to_slice(h, &mut bytes).is_ok() {
                return Ok(AccountId32(bytes));
            }
        }
        if is_uri(spec) {
            return Ok(self.key(spec)?.account());
        }
        if check_name("key", spec).is_ok() {
            if self.key_path(spec)?.exists() {
                return Ok(self.key(spec)?.account());
            }
            if self.group_path(spec)?.exists() {
                return Ok(self.group(spec)?.account());
            }
        }
        Err(invalid(format!(
            "{spec:?} is neither an address, nor a key or group in {}, nor a dev URI like //Alice",
            self.root.display()
        )))
    }

    fn group_path(&self, name: &str) -> anyhow::Result<PathBuf> {
        check_name("group", name)?;
        Ok(self.groups_dir().join(format!("{name}.toml")))
    }

    /// Saves group `name`; refuses to replace another group of that name.
    pub fn save_group(&self, name: &str, group: &Group) -> anyhow::Result<PathBuf> {
        let path = self.group_path(name)?;
        if path.exists() {
            let existing = self.group(name)?;
            if existing == *group {
                return Ok(path);
            }
            return Err(invalid(format!(
                "a different group named {name} exists already ({})",
                path.display()
            )));
        }
        let file = GroupFile {
            members: group.members().iter().map(|m| m.to_string()).collect(),
            threshold: group.threshold(),
            account: group.account().to_string(),
        };
        fs::create_dir_all(self.groups_dir())?;
        let text = format!(
            "# A pallet-multisig group: its account acts when `threshold` of `members` approve.\n{}",
            toml::to_string(&file)?
        );
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Group `name`. The profile must hold sorted members and the account they derive.
    pub fn group(&self, name: &str) -> anyhow::Result<Group> {
        let path = self.group_path(name)?;
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(invalid(format!(
                    "no group named {name} in {} (create it with `zosctl group create`)",
                    self.groups_dir().display()
                )))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let bad = |why: String| invalid(format!("group profile {}: {why}", path.display()));
        let file: GroupFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let members = file
            .members
            .iter()
            .map(|m| AccountId32::from_str(m).map_err(|_| bad(format!("{m:?} is not an address"))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !members.windows(2).all(|w| w[0] < w[1]) {
            return Err(bad("members are not sorted".into()));
        }
        let group = Group::new(members, file.threshold).map_err(|e| bad(e.to_string()))?;
        if group.account().to_string() != file.account {
            return Err(bad(format!(
                "account {} is not the one its members and threshold give ({})",
                file.account,
                group.account()
            )));
        }
        Ok(group)
    }

    /// The names of the saved groups.
    pub fn group_names(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.groups_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(other(format!("reading {}: {e}", dir.display()))),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(".toml")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_saved_sorted_and_checked_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        let members: Vec<_> = ["//Charlie", "//Alice", "//Bob"]
            .iter()
            .map(|u| home.account(u).unwrap())
            .collect();
        let group = Group::new(members, 2).unwrap();
        home.save_group("team", &group).unwrap();
        assert_eq!(home.group("team").unwrap(), group);
        assert_eq!(home.account("team").unwrap(), group.account());
        // Saving the same group again is fine; another one under that name is not.
        home.save_group("team", &group).unwrap();
        let other = Group::new(group.members().to_vec(), 3).unwrap();
        assert!(home.save_group("team", &other).is_err());

        // A hand-edited profile whose account does not match is refused.
        let path = dir.path().join("groups/team.toml");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("threshold = 2", "threshold = 3")).unwrap();
        let e = home.group("team").unwrap_err();
        assert!(e.to_string().contains("is not the one"), "{e}");
    }

    #[test]
    fn accounts_come_from_addresses_hex_names_and_uris() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        let alice = UserKey::from_uri("//Alice").unwrap().account();
        assert_eq!(home.account(&alice.to_string()).unwrap(), alice);
        assert_eq!(
            home.account(&format!("0x{}", hex::encode(alice.0)))
                .unwrap(),
            alice
        );
        assert_eq!(home.account("//Alice").unwrap(), alice);
        home.write_key("me", "sr25519://Alice").unwrap();
        assert_eq!(home.account("me").unwrap(), alice);
        assert!(home.account("nobody").is_err());
        assert!(home.key("../etc/passwd").is_err());
    }
}
