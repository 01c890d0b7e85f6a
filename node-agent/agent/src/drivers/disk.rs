//! Disks: sparse raw files of exactly their size that VMs attach (`zos_host::disk`).

use std::{collections::BTreeSet, path::PathBuf};

use zos_contracts::{Deployment, Workload, WorkloadKind, WorkloadSpec};
use zos_host::{
    disk::{DiskError, Disks},
    WorkloadId,
};

use super::chain_of;
use crate::engine::{Applied, Driver, DriverError, Observed, RunState};

/// See the module documentation.
pub struct DiskDriver {
    disks: Disks,
}

impl DiskDriver {
    /// Disks under `disks`.
    pub fn new(disks: Disks) -> DiskDriver {
        DiskDriver { disks }
    }

    /// The file of disk `name` of `contract`, when it exists.
    pub fn file(&self, contract: u64, name: &str) -> Option<PathBuf> {
        let path = self.disks.path(&WorkloadId {
            contract,
            name: name.to_string(),
        });
        path.is_file().then_some(path)
    }
}

impl Driver for DiskDriver {
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>> {
        Ok(self
            .disks
            .list()?
            .into_iter()
            .map(|id| id.contract)
            .collect())
    }

    fn observe(&self, contract: u64) -> anyhow::Result<Vec<Observed>> {
        Ok(self
            .disks
            .list()?
            .into_iter()
            .filter(|id| id.contract == contract)
            .map(|id| Observed {
                name: id.name,
                kind: WorkloadKind::Disk,
                version: None,
                state: RunState::Present,
            })
            .collect())
    }

    fn apply(
        &self,
        contract: u64,
        _owner: &[u8; 32],
        workload: &Workload,
        _deployment: &Deployment,
    ) -> Result<Applied, DriverError> {
        let WorkloadSpec::Disk(d) = &workload.spec else {
            return Err(DriverError::Permanent(format!(
                "the disk driver cannot make a {}",
                workload.spec.kind()
            )));
        };
        let id = WorkloadId {
            contract,
            name: String::from_utf8_lossy(&workload.name).into_owned(),
        };
        match self.disks.ensure(&id, d.size) {
            Ok(_) => Ok(Applied::Done),
            Err(e @ (DiskError::Unaligned(_) | DiskError::Shrink { .. })) => {
                Err(DriverError::Permanent(format!("disk: {e}")))
            }
            Err(e) => Err(DriverError::Transient(format!("disk: {}", chain_of(&e)))),
        }
    }

    fn remove(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.disks.remove(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }

    fn remove_all(&self, contract: u64) -> anyhow::Result<()> {
        for id in self.disks.list()? {
            if id.contract == contract {
                self.disks.remove(&id)?;
            }
        }
        Ok(())
    }

    fn pause(&self, _contract: u64, _name: &str) -> anyhow::Result<()> {
        // Nothing of a disk runs: its VM is paused.
        Ok(())
    }

    fn resume(&self, _contract: u64, _name: &str) -> anyhow::Result<()> {
        Ok(())
    }
}
