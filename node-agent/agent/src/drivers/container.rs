//! Containers: youki's libcontainer through `zos_host::container`, each on a root filesystem the
//! image store builds from the image's files and checks file by file at every launch, with a
//! writable layer of the workload's `rootfs_size`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, OnceLock},
    time::Duration,
};

use zos_chain_client::keys::NodeKey;
use zos_contracts::{Container, Deployment, Workload, WorkloadKind, WorkloadSpec};
use zos_host::{
    container::{BindMount, ContainerSpec, Containers, RunState as HostState},
    WorkloadId,
};
use zos_image_store::ImageRecord;

use super::{
    chain_of, drop_root_filesystem, open_env, root_filesystem, Image, Images, NetworkDriver,
    VolumeDriver,
};
use crate::{
    engine::{Applied, Driver, DriverError, Observed, RunState},
    metering::Sample,
};

/// How long a container has to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The label holding the workload version a container was made from.
const VERSION_LABEL: &str = "zos.version";

/// See the module documentation.
pub struct ContainerDriver {
    images: Images,
    containers: Containers,
    volumes: Arc<VolumeDriver>,
    networks: OnceLock<Arc<NetworkDriver>>,
    key: NodeKey,
}

impl ContainerDriver {
    /// Has containers that name a network join it through `networks`.
    pub fn join_networks(&self, networks: Arc<NetworkDriver>) {
        let _ = self.networks.set(networks);
    }

    /// Containers under `containers`, from `images`, mounting `volumes`; `key` opens sealed
    /// values.
    pub fn new(
        images: Images,
        containers: Containers,
        volumes: Arc<VolumeDriver>,
        key: NodeKey,
    ) -> ContainerDriver {
        ContainerDriver {
            images,
            containers,
            volumes,
            networks: OnceLock::new(),
            key,
        }
    }

    /// A reading of every container that has a process, for metering.
    pub fn samples(&self) -> anyhow::Result<Vec<Sample>> {
        let mut out = Vec::new();
        for id in self.containers.list()? {
            let Some(status) = self.containers.status(&id)? else {
                continue;
            };
            if !matches!(status.state, HostState::Running | HostState::Paused) {
                continue;
            }
            let stats = match self.containers.stats(&id) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(container = %id.container_id(), error = %e, "no stats");
                    continue;
                }
            };
            out.push(Sample {
                contract: id.contract,
                container: id.container_id(),
                started: status.started_at,
                cpu_ns: stats.cpu_ns,
                memory: stats.memory_current,
                net_rx: stats.net_rx,
                net_tx: stats.net_tx,
            });
        }
        Ok(out)
    }

    fn start(
        &self,
        id: &WorkloadId,
        owner: &[u8; 32],
        w: &Workload,
        c: &Container,
        deployment: &Deployment,
    ) -> Result<Applied, DriverError> {
        let (digest, record, reference) = match self.images.get(&c.image, id.contract)? {
            Image::Ready {
                digest,
                record,
                reference,
            } => (digest, record, reference),
            Image::Pending(pending) => return Ok(pending),
        };
        let store = self.images.store();
        let transient = |what: &str, e: &(dyn std::error::Error + 'static)| {
            DriverError::Transient(format!("{what}: {}", chain_of(e)))
        };

        // What ran under this name before goes; a new version also gets a fresh root filesystem.
        let wid = id.container_id();
        if let Some(old) = self
            .containers
            .status(id)
            .map_err(|e| transient("container", &e))?
        {
            let same_version = old.labels.get(VERSION_LABEL) == Some(&w.version.to_string());
            self.containers
                .remove(id, STOP_GRACE)
                .map_err(|e| transient("removing the previous container", &e))?;
            if !same_version {
                drop_root_filesystem(store, &wid)?;
            }
        }
        // Its writes go to a filesystem of the contract's `rootfs_size`, and nowhere else.
        let rootfs = root_filesystem(store, &digest, &wid, c.rootfs_size, &reference)?;
        let network_namespace = match &c.network {
            Some(attachment) => {
                // The engine applies a container only once the network it names is in place.
                let networks = self.networks.get().ok_or_else(|| {
                    DriverError::Permanent("this node takes part in no private network".into())
                })?;
                Some(networks.attach(id.contract, &id.name, attachment, deployment)?)
            }
            None => None,
        };

        let spec = ContainerSpec {
            id: id.clone(),
            rootfs: rootfs.path(),
            args: command(c, &record)?,
            env: env(&record, open_env(&self.key, owner, &w.name, &c.env)?),
            workdir: c
                .workdir
                .as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .or_else(|| image_config_str(&record, "WorkingDir")),
            cpu_millis: c.cpu_millis,
            memory: c.memory,
            mounts: c
                .mounts
                .iter()
                .map(|m| BindMount {
                    source: self
                        .volumes
                        .path(id.contract, &String::from_utf8_lossy(&m.volume)),
                    target: String::from_utf8_lossy(&m.path).into_owned(),
                    read_only: m.read_only,
                })
                .collect(),
            labels: BTreeMap::from([(VERSION_LABEL.to_string(), w.version.to_string())]),
            network_namespace,
        };
        self.containers
            .start(&spec)
            .map_err(|e| transient("starting", &e))?;
        Ok(Applied::Done)
    }

    /// Root filesystems whose container is gone (a crash between the two).
    fn rootfs_leases(&self, contract: Option<u64>) -> anyhow::Result<Vec<WorkloadId>> {
        Ok(self
            .images
            .store()
            .leases()?
            .into_iter()
            .filter_map(|l| WorkloadId::parse_container_id(&l.workload))
            .filter(|id| contract.is_none_or(|c| c == id.contract))
            .collect())
    }
}

/// The image's environment, then `contract`'s over it.
fn env(record: &ImageRecord, contract: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = image_config(record, "Env")
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    for (key, value) in contract {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    env
}

/// Entrypoint and arguments: the contract's, else the image's (as container engines do: a new
/// entrypoint drops the image's command).
fn command(c: &Container, record: &ImageRecord) -> Result<Vec<String>, DriverError> {
    let text = |v: &[zos_contracts::Arg]| -> Vec<String> {
        v.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let entrypoint = if c.entrypoint.is_empty() {
        image_config(record, "Entrypoint")
    } else {
        text(&c.entrypoint)
    };
    let args = if !c.args.is_empty() {
        text(&c.args)
    } else if c.entrypoint.is_empty() {
        image_config(record, "Cmd")
    } else {
        Vec::new()
    };
    let all: Vec<String> = entrypoint.into_iter().chain(args).collect();
    if all.is_empty() {
        return Err(DriverError::Permanent(
            "no command: the container names no entrypoint and its image has none".into(),
        ));
    }
    Ok(all)
}

fn image_config(record: &ImageRecord, key: &str) -> Vec<String> {
    record.config["config"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn image_config_str(record: &ImageRecord, key: &str) -> Option<String> {
    record.config["config"][key]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
}

impl Driver for ContainerDriver {
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>> {
        let mut ids: BTreeSet<u64> = self
            .containers
            .list()?
            .into_iter()
            .map(|id| id.contract)
            .collect();
        ids.extend(self.rootfs_leases(None)?.into_iter().map(|id| id.contract));
        Ok(ids)
    }

    fn observe(&self, contract: u64) -> anyhow::Result<Vec<Observed>> {
        let mut out = Vec::new();
        for id in self.containers.list()? {
            if id.contract != contract {
                continue;
            }
            let Some(status) = self.containers.status(&id)? else {
                continue;
            };
            let state = match status.state {
                HostState::Running => RunState::Running {
                    since: status.started_at,
                },
                HostState::Paused => RunState::Paused,
                HostState::Exited { code, signal, .. } => RunState::Exited { code, signal },
                // Half made (the shim died while creating it): replace it.
                _ => RunState::Exited {
                    code: None,
                    signal: None,
                },
            };
            out.push(Observed {
                name: id.name.clone(),
                kind: WorkloadKind::Container,
                version: status
                    .labels
                    .get(VERSION_LABEL)
                    .and_then(|v| v.parse().ok()),
                state,
            });
        }
        Ok(out)
    }

    fn apply(
        &self,
        contract: u64,
        owner: &[u8; 32],
        workload: &Workload,
        deployment: &Deployment,
    ) -> Result<Applied, DriverError> {
        let WorkloadSpec::Container(c) = &workload.spec else {
            return Err(DriverError::Permanent(format!(
                "the container driver cannot run a {}",
                workload.spec.kind()
            )));
        };
        let id = WorkloadId {
            contract,
            name: String::from_utf8_lossy(&workload.name).into_owned(),
        };
        self.start(&id, owner, workload, c, deployment)
    }

    fn remove(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        let id = WorkloadId {
            contract,
            name: name.to_string(),
        };
        self.containers.remove(&id, STOP_GRACE)?;
        self.images.store().remove_rootfs(&id.container_id())?;
        if let Some(networks) = self.networks.get() {
            networks.detach(contract, name)?;
        }
        Ok(())
    }

    fn remove_all(&self, contract: u64) -> anyhow::Result<()> {
        for id in self.containers.list()? {
            if id.contract == contract {
                self.containers.remove(&id, STOP_GRACE)?;
            }
        }
        for id in self.rootfs_leases(Some(contract))? {
            self.images.store().remove_rootfs(&id.container_id())?;
        }
        if let Some(networks) = self.networks.get() {
            for id in networks.networks().attached()? {
                if id.contract == contract {
                    networks.detach(contract, &id.name)?;
                }
            }
        }
        Ok(())
    }

    fn pause(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.containers.pause(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }

    fn resume(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.containers.resume(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }
}

#[cfg(test)]
mod tests {
    use zos_contracts::{file::DeploymentFile, sealed::SealFor, EnvValue};

    use super::*;

    const IMAGE: &str = "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

    /// Workload `name` with `TOKEN` set to `token` (a YAML value), sealed for `seal_for`.
    fn workload(name: &str, token: &str, seal_for: &SealFor) -> Workload {
        let yaml = format!(
            "workloads:
  - name: {name}
    container:
      image: {IMAGE}
      cpu: 1
      memory: 64MiB
      env: {{ MODE: prod, TOKEN: {token} }}
"
        );
        let d = DeploymentFile::from_yaml(&yaml)
            .unwrap()
            .into_deployment(Some(seal_for))
            .unwrap();
        zos_contracts::validate(&d).unwrap();
        d.workloads[0].clone()
    }

    fn env_of(
        key: &NodeKey,
        owner: &[u8; 32],
        w: &Workload,
    ) -> Result<Vec<(String, String)>, DriverError> {
        let WorkloadSpec::Container(c) = &w.spec else {
            panic!("a container")
        };
        open_env(key, owner, &w.name, &c.env)
    }

    #[test]
    fn a_sealed_value_opens_only_in_the_contract_it_was_sealed_for() {
        let node = NodeKey::generate();
        let (victim, attacker) = ([1u8; 32], [2u8; 32]);
        let sealed_for_victim = SealFor {
            owner: victim,
            node: node.public(),
        };
        let original = workload("app", "{ secret: s3cr3t }", &sealed_for_victim);
        assert_eq!(
            env_of(&node, &victim, &original).unwrap(),
            [
                ("MODE".into(), "prod".into()),
                ("TOKEN".into(), "s3cr3t".into())
            ]
        );

        // The bytes anyone reads from the chain, in the attacker's own contract on this node.
        let WorkloadSpec::Container(c) = &original.spec else {
            panic!("a container")
        };
        let EnvValue::Sealed(sealed) = &c.env[1].value else {
            panic!("sealed")
        };
        let copied = format!("{{ sealed: {} }}", hex::encode(sealed));
        let sealed_for_attacker = SealFor {
            owner: attacker,
            node: node.public(),
        };
        let copy = workload("app", &copied, &sealed_for_attacker);
        let e = env_of(&node, &attacker, &copy).unwrap_err();
        assert_eq!(
            e.to_string(),
            "env TOKEN: cannot open the sealed value: sealed for another owner"
        );
        assert!(!e.to_string().contains("s3cr3t"));

        // The owner's own other workload.
        let elsewhere = workload("web", &copied, &sealed_for_victim);
        assert_eq!(
            env_of(&node, &victim, &elsewhere).unwrap_err().to_string(),
            "env TOKEN: cannot open the sealed value: sealed for another workload"
        );

        // Another node.
        let other = NodeKey::generate();
        assert_eq!(
            env_of(&other, &victim, &original).unwrap_err().to_string(),
            "env TOKEN: cannot open the sealed value: sealed value was not made for this node's key, or was altered"
        );
    }
}
