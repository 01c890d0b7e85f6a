//! Volumes: loop-mounted ext4 files of a fixed size that containers mount (`zos_host::volume`).

use std::collections::BTreeSet;

use zos_contracts::{Deployment, Workload, WorkloadKind, WorkloadSpec};
use zos_host::{volume::Volumes, WorkloadId};

use super::chain_of;
use crate::engine::{Applied, Driver, DriverError, Observed, RunState};

/// See the module documentation.
pub struct VolumeDriver {
    volumes: Volumes,
}

impl VolumeDriver {
    /// Volumes under `volumes`.
    pub fn new(volumes: Volumes) -> VolumeDriver {
        VolumeDriver { volumes }
    }

    /// Where volume `name` of `contract` is mounted on the host.
    pub fn path(&self, contract: u64, name: &str) -> std::path::PathBuf {
        self.volumes.path(&WorkloadId {
            contract,
            name: name.to_string(),
        })
    }
}

impl Driver for VolumeDriver {
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>> {
        Ok(self
            .volumes
            .list()?
            .into_iter()
            .map(|id| id.contract)
            .collect())
    }

    fn observe(&self, contract: u64) -> anyhow::Result<Vec<Observed>> {
        Ok(self
            .volumes
            .list()?
            .into_iter()
            .filter(|id| id.contract == contract)
            .map(|id| Observed {
                name: id.name,
                kind: WorkloadKind::Volume,
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
        let WorkloadSpec::Volume(v) = &workload.spec else {
            return Err(DriverError::Permanent(format!(
                "the volume driver cannot make a {}",
                workload.spec.kind()
            )));
        };
        let id = WorkloadId {
            contract,
            name: String::from_utf8_lossy(&workload.name).into_owned(),
        };
        self.volumes
            .ensure(&id, v.size)
            .map(|_| Applied::Done)
            .map_err(|e| DriverError::Transient(format!("volume: {}", chain_of(&e))))
    }

    fn remove(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.volumes.remove(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }

    fn remove_all(&self, contract: u64) -> anyhow::Result<()> {
        for id in self.volumes.list()? {
            if id.contract == contract {
                self.volumes.remove(&id)?;
            }
        }
        Ok(())
    }

    fn pause(&self, _contract: u64, _name: &str) -> anyhow::Result<()> {
        // Nothing of a volume runs: its containers are paused.
        Ok(())
    }

    fn resume(&self, _contract: u64, _name: &str) -> anyhow::Result<()> {
        Ok(())
    }
}
