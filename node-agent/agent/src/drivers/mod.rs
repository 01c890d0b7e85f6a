//! The engine's drivers on this machine, one per workload kind, each over its mechanism in
//! `zos-host`:
//! - [`container`]: containers (youki's libcontainer), root filesystems from the image store,
//!   checked file by file at every launch;
//! - [`volume`]: volumes (loop-mounted ext4 files) that containers mount;
//! - [`vm`]: virtual machines (QEMU microvm), their root from the image store over virtiofs;
//! - [`disk`]: disks (sparse raw files) that VMs attach;
//! - [`network`]: private networks (a namespace per network, WireGuard to the other members)
//!   that containers join.
//!
//! Names are derived from the contract id and the workload name (`zos-<contract>-<name>`), so a
//! restarted agent, or one whose database was deleted, finds everything again.
//!
//! Images are pulled in the background ([`pulls::Pulls`]): applying a workload whose image the
//! store does not have starts its pull, or joins the one under way, and returns at once
//! ([`Applied::Pending`]), so that a slow registry never holds a reconcile worker.

pub mod container;
pub mod disk;
pub mod network;
pub mod pulls;
pub mod vm;
pub mod volume;

use std::{path::PathBuf, sync::Arc, time::Duration};

use zos_chain_client::keys::NodeKey;
use zos_contracts::{sealed::SealFor, EnvValue, EnvVar, ImageRef, WorkloadKind};
use zos_host::{container::Containers, disk::Disks, vm::Vms, volume::Volumes};
use zos_image_store::{Digest, ImageRecord, ImageReference, Store};

use crate::{
    engine::{Applied, DriverError, Drivers},
    metering::Sample,
};
pub use container::ContainerDriver;
pub use disk::DiskDriver;
pub use network::{NetworkDriver, NetworkIndex};
pub use pulls::{PullStatus, PullWaker, Pulls};
pub use vm::VmDriver;
pub use volume::VolumeDriver;

/// A contract waiting for a pull is looked at again this soon even if nobody wakes it.
const PULL_RECHECK: Duration = Duration::from_secs(5);

/// The drivers of this node, and what the rest of the agent asks of them (metering, the image
/// store).
pub struct HostDrivers {
    images: Images,
    containers: Arc<ContainerDriver>,
    volumes: Arc<VolumeDriver>,
    vms: Option<(Arc<VmDriver>, Arc<DiskDriver>)>,
    networks: Option<Arc<NetworkDriver>>,
    key: NodeKey,
}

impl HostDrivers {
    /// Drivers over `images`, `containers` and `volumes`; `key` opens sealed secrets; images
    /// come only from `allowed_registries` (any when empty) and are pulled on `runtime`.
    pub fn new(
        images: Store,
        containers: Containers,
        volumes: Volumes,
        key: NodeKey,
        allowed_registries: Vec<String>,
        runtime: tokio::runtime::Handle,
    ) -> HostDrivers {
        let images = Images {
            pulls: Arc::new(Pulls::new(images.clone(), runtime)),
            store: images,
            allowed_registries,
        };
        let volumes = Arc::new(VolumeDriver::new(volumes));
        HostDrivers {
            containers: Arc::new(ContainerDriver::new(
                images.clone(),
                containers,
                volumes.clone(),
                key.clone(),
            )),
            volumes,
            images,
            vms: None,
            networks: None,
            key,
        }
    }

    /// With private networks made by `networks`, which containers join.
    pub fn with_networks(mut self, networks: NetworkDriver) -> HostDrivers {
        let networks = Arc::new(networks);
        self.containers.join_networks(networks.clone());
        if let Some((vms, _)) = &self.vms {
            vms.join_networks(networks.clone());
        }
        self.networks = Some(networks);
        self
    }

    /// The network driver, when this node takes part in private networks.
    pub fn networks(&self) -> Option<&Arc<NetworkDriver>> {
        self.networks.as_ref()
    }

    /// With VMs run by `vms` and disks under `disks`; a guest has `stop_grace` to power down.
    pub fn with_vms(mut self, vms: Vms, disks: Disks, stop_grace: Duration) -> HostDrivers {
        let disks = Arc::new(DiskDriver::new(disks));
        let vms = Arc::new(VmDriver::new(
            self.images.clone(),
            vms,
            disks.clone(),
            self.key.clone(),
            stop_grace,
        ));
        self.vms = Some((vms, disks));
        self
    }

    /// The drivers by kind, for the engine. Without VMs, VMs and disks have no driver and are
    /// reported `unsupported`; without networks, networks (and what names one) are.
    pub fn drivers(&self) -> Drivers {
        let mut drivers = Drivers::default()
            .with(WorkloadKind::Volume, self.volumes.clone())
            .with(WorkloadKind::Container, self.containers.clone());
        if let Some(networks) = &self.networks {
            drivers = drivers.with(WorkloadKind::Network, networks.clone());
        }
        match &self.vms {
            Some((vms, disks)) => drivers
                .with(WorkloadKind::Disk, disks.clone())
                .with(WorkloadKind::VirtualMachine, vms.clone()),
            None => drivers,
        }
    }

    /// The VM driver, when this node runs VMs.
    pub fn vms(&self) -> Option<&Arc<VmDriver>> {
        self.vms.as_ref().map(|(vms, _)| vms)
    }

    /// The container driver.
    pub fn containers(&self) -> &Arc<ContainerDriver> {
        &self.containers
    }

    /// Has `waker` called with each contract that waited for an image pull when it ends, so
    /// that the engine looks at the contract again at once.
    pub fn on_pull_done(&self, waker: PullWaker) {
        self.images.pulls.on_done(waker);
    }

    /// The image store.
    pub fn images(&self) -> &Store {
        &self.images.store
    }

    /// A reading of every workload that has a process, for metering.
    pub fn samples(&self) -> anyhow::Result<Vec<Sample>> {
        let mut samples = self.containers.samples()?;
        if let Some((vms, _)) = &self.vms {
            samples.extend(vms.samples()?);
        }
        Ok(samples)
    }
}

/// The image store as the drivers use it: only allowed registries, pulls in the background.
#[derive(Clone)]
pub struct Images {
    store: Store,
    pulls: Arc<Pulls>,
    allowed_registries: Vec<String>,
}

/// An image a workload names, when the store has it.
pub enum Image {
    /// In the store.
    Ready {
        /// Its digest.
        digest: Digest,
        /// Its record (config).
        record: ImageRecord,
        /// Its reference, for messages.
        reference: String,
    },
    /// Being pulled, or waiting to be pulled again.
    Pending(Applied),
}

impl Images {
    /// `image` (needed by contract `contract`) from the store, or its pull started.
    pub fn get(&self, image: &ImageRef, contract: u64) -> Result<Image, DriverError> {
        let repository = String::from_utf8_lossy(&image.repository).into_owned();
        let registry = repository.split('/').next().unwrap_or_default().to_string();
        if !self.allowed_registries.is_empty() && !self.allowed_registries.contains(&registry) {
            return Err(DriverError::Permanent(format!(
                "registry {registry} is not one this node pulls from ({})",
                self.allowed_registries.join(", ")
            )));
        }
        let reference = format!("{repository}@sha256:{}", hex::encode(image.digest));
        let parsed =
            ImageReference::parse(&reference).map_err(|e| DriverError::permanent("image", e))?;
        let digest = parsed.digest().clone();
        match self
            .store
            .image(&digest)
            .map_err(|e| DriverError::transient("image store", e))?
        {
            Some(record) => Ok(Image::Ready {
                digest,
                record,
                reference,
            }),
            // The chain hears the kind of failure only, never the registry's words.
            None => match self.pulls.request(&parsed, contract) {
                PullStatus::Pulling => Ok(Image::Pending(Applied::Pending {
                    waiting_for: format!("pulling {reference}"),
                    recheck: PULL_RECHECK,
                })),
                PullStatus::Failed(kind) => Err(DriverError::Transient(format!(
                    "pulling {reference}: {kind}"
                ))),
            },
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The root filesystem of workload `wid` from image `digest` (named `reference` in messages),
/// with a writable layer of `size`: the one it has when that is of this image and size (a
/// restart keeps its writes), else a fresh one. Every file is checked against the image as it is
/// made or found again.
pub fn root_filesystem(
    store: &Store,
    digest: &Digest,
    wid: &str,
    size: u64,
    reference: &str,
) -> Result<zos_image_store::Rootfs, DriverError> {
    use zos_image_store::RootfsError;
    match store.prepare_rootfs_sized(digest, wid, size) {
        Err(RootfsError::ImageMismatch { .. } | RootfsError::SizeMismatch { .. }) => {
            drop_root_filesystem(store, wid)?;
            store.prepare_rootfs_sized(digest, wid, size)
        }
        other => other,
    }
    .map_err(|e| DriverError::Transient(format!("image {reference}: {}", chain_of(&e))))
}

/// Removes workload `wid`'s root filesystem (a new version starts from the image again).
pub fn drop_root_filesystem(store: &Store, wid: &str) -> Result<(), DriverError> {
    store.remove_rootfs(wid).map_err(|e| {
        DriverError::Transient(format!(
            "removing the previous root filesystem: {}",
            chain_of(&e)
        ))
    })
}

/// A workload's environment as its owner wrote it. A sealed value is opened with the node's key
/// only if it was sealed for this contract's owner, this node, this workload (`workload`) and
/// this variable: a value copied from another contract is refused, and its plaintext goes
/// nowhere.
pub fn open_env(
    key: &NodeKey,
    owner: &[u8; 32],
    workload: &[u8],
    env: &[EnvVar],
) -> Result<Vec<(String, String)>, DriverError> {
    let here = SealFor {
        owner: *owner,
        node: key.public(),
    };
    env.iter()
        .map(|var| {
            let name = String::from_utf8_lossy(&var.key).into_owned();
            let value = match &var.value {
                EnvValue::Plain(v) => String::from_utf8_lossy(v).into_owned(),
                EnvValue::Sealed(sealed) => {
                    let context = here.context(workload, &var.key);
                    let plain = zos_contracts::sealed::open(key.signing_key(), &context, sealed)
                        .map_err(|e| {
                            DriverError::permanent(
                                &format!("env {name}"),
                                format!("cannot open the sealed value: {e}"),
                            )
                        })?;
                    String::from_utf8(plain).map_err(|_| {
                        DriverError::Permanent(format!(
                            "env {name}: the sealed value is not UTF-8 text"
                        ))
                    })?
                }
            };
            Ok((name, value))
        })
        .collect()
}

/// An error and its causes, on one line.
pub fn chain_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Where the agent keeps what: images and root filesystems, volumes, disks, container and VM
/// state.
pub struct Layout {
    /// The image store.
    pub images: PathBuf,
    /// Volumes.
    pub volumes: PathBuf,
    /// Disks.
    pub disks: PathBuf,
    /// The VMs' kernels and initramfs, made once per kernel.
    pub vm_boot: PathBuf,
    /// Container runtime state.
    pub containers: PathBuf,
    /// VM runtime state (pid files, sockets, console logs).
    pub vms: PathBuf,
    /// The namespaces of private networks and of the containers on them.
    pub networks: PathBuf,
}

impl Layout {
    /// The layout under the configured directories.
    pub fn new(storage_dir: &std::path::Path, run_dir: &std::path::Path) -> Layout {
        Layout {
            images: storage_dir.join("images"),
            volumes: storage_dir.join("volumes"),
            disks: storage_dir.join("disks"),
            vm_boot: storage_dir.join("vm-boot"),
            containers: run_dir.join("containers"),
            vms: run_dir.join("vms"),
            networks: run_dir.join("networks"),
        }
    }
}
