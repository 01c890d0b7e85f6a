//! What an update may change: the rules a node relies on to apply a new version of a deployment.
//!
//! A node re-applies only the workloads whose own version changed, and it cannot shrink a
//! filesystem. So an update that changes a workload without raising its version, lowers a
//! workload's version, or shrinks a volume or disk describes a shape the node would not run; the
//! chain refuses it with [`check_update`] rather than bill for it.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use alloc::vec::Vec;

use crate::model::{Deployment, Name};

/// Which rule an update breaks.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum UpdateRule {
    /// The workload's spec changed but its version did not grow.
    SpecChangedWithoutVersion,
    /// The workload's version is lower than before.
    VersionLowered,
    /// A volume or disk would be smaller than before.
    Shrink,
}

impl UpdateRule {
    /// What the rule says, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateRule::SpecChangedWithoutVersion => {
                "a changed workload must raise its own version"
            }
            UpdateRule::VersionLowered => "a workload's version may not go down",
            UpdateRule::Shrink => "a volume or disk cannot shrink",
        }
    }
}

/// An update refused: the rule it breaks and the workload that breaks it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpdateError {
    /// The rule.
    pub rule: UpdateRule,
    /// The workload's name.
    pub workload: Name,
    /// Its position in the new deployment.
    pub index: u8,
}

impl core::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = core::str::from_utf8(&self.workload).unwrap_or("<not utf-8>");
        write!(f, "workload {name}: {}", self.rule.as_str())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UpdateError {}

/// Checks that `new` may replace `old`: every workload kept by name that changed raised its
/// version, none lowered it, and no volume or disk shrank. Workloads may be added and removed.
/// The deployment-level version rule (it must grow) is the caller's.
pub fn check_update(old: &Deployment, new: &Deployment) -> Result<(), UpdateError> {
    for (index, w) in new.workloads.iter().enumerate() {
        let Some(before) = old.workload(&w.name) else {
            continue;
        };
        let refuse = |rule| UpdateError {
            rule,
            workload: w.name.clone(),
            index: index as u8,
        };
        if w.version < before.version {
            return Err(refuse(UpdateRule::VersionLowered));
        }
        if w.version == before.version && w.spec != before.spec {
            return Err(refuse(UpdateRule::SpecChangedWithoutVersion));
        }
        // A workload whose kind changed is a new workload under an old name: nothing to shrink.
        if let (Some(old_size), Some(new_size)) = (before.storage_size(), w.storage_size()) {
            if before.spec.kind() == w.spec.kind() && new_size < old_size {
                return Err(refuse(UpdateRule::Shrink));
            }
        }
    }
    Ok(())
}

/// A workload version [`follow_versions`] set.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VersionChange {
    /// The workload's name.
    pub workload: Name,
    /// Its version in the file.
    pub from: u32,
    /// The version the update carries.
    pub to: u32,
}

/// Gives each workload of `new` the version an update of `old` needs, so that users need not
/// keep workload versions by hand: a workload whose spec is unchanged keeps its version on chain,
/// a changed one gets one more, and a version the file sets higher stands. Returns what it set.
/// A value sealed again is new ciphertext, so its workload counts as changed (and restarts).
pub fn follow_versions(old: &Deployment, new: &mut Deployment) -> Vec<VersionChange> {
    let mut changes = Vec::new();
    for w in new.workloads.iter_mut() {
        let Some(before) = old.workload(&w.name) else {
            continue;
        };
        let needed = if w.spec == before.spec {
            before.version
        } else {
            before.version.saturating_add(1)
        };
        if w.version < needed {
            changes.push(VersionChange {
                workload: w.name.clone(),
                from: w.version,
                to: needed,
            });
            w.version = needed;
        }
    }
    changes
}
