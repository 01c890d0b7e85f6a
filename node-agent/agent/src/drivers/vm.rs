//! Virtual machines: QEMU's microvm machine through `zos_host::vm`, booting the node's default
//! kernel or the VM's own (a kernel image: a kernel package's `boot/vmlinuz-<release>` and
//! `lib/modules/<release>/`, read from the image store with every file checked), with the root filesystem the image store builds from the image's
//! files, checked file by file at every launch like a container's, and shared with the guest
//! over virtiofs: a second VM of an image adds no copy of its files.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, OnceLock},
    time::Duration,
};

use zos_chain_client::keys::NodeKey;
use zos_contracts::{Deployment, VirtualMachine, Workload, WorkloadKind, WorkloadSpec};
use zos_host::{
    vm::{
        boot::{self, BootError, KernelFiles},
        BootFiles, VmNetwork, VmSpec, VmState, Vms,
    },
    WorkloadId,
};
use zos_image_store::{Digest, ImageRecord, Store};

use super::{
    chain_of, drop_root_filesystem, open_env, root_filesystem, DiskDriver, Image, Images,
    NetworkDriver,
};
use crate::{
    engine::{Applied, Driver, DriverError, Observed, RunState},
    metering::Sample,
};

/// The label holding the workload version a VM was made from.
const VERSION_LABEL: &str = "zos.version";
/// A VM's writes to its root filesystem go to a layer of this size; what must last goes on its
/// disks. Reserved and billed with the VM (`zos_contracts::limits::VM_ROOTFS`).
const ROOTFS_SIZE: u64 = zos_contracts::limits::VM_ROOTFS;

/// Kernels of VMs' own kernel images kept unpacked (the node's default is kept apart, always).
const KERNEL_CACHE: usize = 4;

/// See the module documentation.
pub struct VmDriver {
    images: Images,
    vms: Vms,
    disks: Arc<DiskDriver>,
    networks: OnceLock<Arc<NetworkDriver>>,
    key: NodeKey,
    stop_grace: Duration,
}

impl VmDriver {
    /// Has VMs that name a network join it through `networks`.
    pub fn join_networks(&self, networks: Arc<NetworkDriver>) {
        let _ = self.networks.set(networks);
    }

    /// VMs run by `vms`, their roots from `images`, their disks from `disks`; `key` opens sealed
    /// values; a guest has `stop_grace` to power down before it is killed.
    pub fn new(
        images: Images,
        vms: Vms,
        disks: Arc<DiskDriver>,
        key: NodeKey,
        stop_grace: Duration,
    ) -> VmDriver {
        VmDriver {
            images,
            vms,
            disks,
            networks: OnceLock::new(),
            key,
            stop_grace,
        }
    }

    /// The host's VMs.
    pub fn vms(&self) -> &Vms {
        &self.vms
    }

    /// A reading of every VM whose QEMU runs, for metering.
    pub fn samples(&self) -> anyhow::Result<Vec<Sample>> {
        let mut out = Vec::new();
        for id in self.vms.list()? {
            // Read from the VM's cgroup and records only: no QMP round trip per sample.
            let Some(stats) = self.vms.stats(&id) else {
                continue;
            };
            out.push(Sample {
                contract: id.contract,
                container: id.container_id(),
                started: stats.started_at,
                cpu_ns: stats.cpu_ns,
                memory: stats.memory,
                // VMs have no network until private networks land; nothing crosses.
                net_rx: 0,
                net_tx: 0,
            });
        }
        Ok(out)
    }

    fn start(
        &self,
        id: &WorkloadId,
        owner: &[u8; 32],
        w: &Workload,
        vm: &VirtualMachine,
        deployment: &Deployment,
    ) -> Result<Applied, DriverError> {
        let boot = match &vm.kernel {
            None => None,
            Some(kernel) => match self.images.get(kernel, id.contract)? {
                Image::Ready {
                    digest, reference, ..
                } => Some(self.kernel_of(&digest, &reference)?),
                Image::Pending(pending) => return Ok(pending),
            },
        };
        let (digest, reference) = match self.images.get(&vm.image, id.contract)? {
            Image::Ready {
                digest, reference, ..
            } => (digest, reference),
            Image::Pending(pending) => return Ok(pending),
        };
        let transient = |what: &str, e: &(dyn std::error::Error + 'static)| {
            DriverError::Transient(format!("{what}: {}", chain_of(e)))
        };
        let disks = vm
            .disks
            .iter()
            .map(|d| {
                let name = String::from_utf8_lossy(d).into_owned();
                match self.disks.file(id.contract, &name) {
                    Some(file) => Ok((name, file)),
                    None => Err(DriverError::NotReady(format!("disk {name}"))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let env = open_env(&self.key, owner, &w.name, &vm.env)?;

        // What ran under this name before goes; a new version also gets a fresh root filesystem.
        let store = self.images.store();
        let wid = id.container_id();
        if let Some(old) = self.vms.status(id).map_err(|e| transient("VM", &e))? {
            let same_version = old.labels.get(VERSION_LABEL) == Some(&w.version.to_string());
            self.vms
                .remove(id, self.stop_grace)
                .map_err(|e| transient("removing the previous VM", &e))?;
            if !same_version {
                drop_root_filesystem(store, &wid)?;
            }
        }
        let rootfs = root_filesystem(store, &digest, &wid, ROOTFS_SIZE, &reference)?;
        let network = match &vm.network {
            Some(attachment) => {
                // The engine applies a VM only once the network it names is in place.
                let networks = self.networks.get().ok_or_else(|| {
                    DriverError::Permanent("this node takes part in no private network".into())
                })?;
                let place = networks.place(id, attachment, deployment)?;
                let (tap, mac) = zos_host::network::Networks::tap(id);
                Some((
                    place.network.clone(),
                    VmNetwork {
                        namespace: networks.networks().namespace(&place.network),
                        tap,
                        mac,
                        address: place.ip,
                        subnet: place.subnet,
                    },
                ))
            }
            None => None,
        };

        let spec = VmSpec {
            id: id.clone(),
            vcpus: vm.vcpus,
            memory: vm.memory,
            root: rootfs.path(),
            disks,
            hostname: id.name.clone(),
            env,
            ssh_keys: vm
                .ssh_keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect(),
            boot,
            labels: BTreeMap::from([(VERSION_LABEL.to_string(), w.version.to_string())]),
            network: network.as_ref().map(|(_, n)| n.clone()),
        };
        match self.vms.start(&spec) {
            Ok(()) => match (&network, self.networks.get()) {
                (Some((net, n)), Some(networks)) => match networks.networks().plug(net, &n.tap) {
                    Ok(()) => Ok(Applied::Done),
                    Err(e) => {
                        // A VM running cut off would never be looked at again: it goes, and the
                        // next pass starts it anew.
                        let _ = self.vms.remove(id, Duration::ZERO);
                        Err(DriverError::Transient(format!("network: {}", chain_of(&e))))
                    }
                },
                _ => Ok(Applied::Done),
            },
            Err(e @ zos_host::vm::VmError::BadEnvName(_)) => {
                Err(DriverError::Permanent(e.to_string()))
            }
            Err(e @ zos_host::vm::VmError::SocketPathTooLong(_)) => {
                // The node's configuration, not the owner's doing: loud here, short on chain.
                tracing::error!(vm = %wid, error = %e, "VM not started");
                Err(DriverError::Permanent(
                    "this node's run directory is too long for the VM's sockets".into(),
                ))
            }
            Err(e) => {
                // QEMU's and virtiofsd's own words name host paths: they stay in the log.
                tracing::warn!(vm = %wid, error = chain_of(&e), "VM did not start");
                Err(DriverError::Transient(match e {
                    zos_host::vm::VmError::Start { what: "cgroup", .. } => {
                        "the VM's cgroup could not be made".to_string()
                    }
                    zos_host::vm::VmError::Start { what, .. } => format!("{what} did not start"),
                    other => format!("starting: {other}"),
                }))
            }
        }
    }
}

impl VmDriver {
    /// The kernel and initramfs of kernel image `digest` (a kernel package's files:
    /// `boot/vmlinuz-<release>` and `lib/modules/<release>/`), made once per kernel.
    fn kernel_of(&self, digest: &Digest, reference: &str) -> Result<BootFiles, DriverError> {
        let host = self.vms.host();
        let store = self.images.store();
        let record = store
            .image(digest)
            .map_err(|e| DriverError::transient(&format!("kernel image {reference}"), e))?
            .ok_or_else(|| {
                DriverError::Transient(format!("kernel image {reference} is not in the store"))
            })?;
        let files = StoreKernel { store, record };
        let cache = host.boot_cache.join("images");
        let made = boot::prepare_from(&files, &host.busybox, &cache);
        if let Ok(made) = &made {
            // Every distinct kernel image costs the node its unpacked kernel: a few are kept.
            if let Some(dir) = made.kernel.parent() {
                boot::prune_cache(&cache, KERNEL_CACHE, dir);
            }
        }
        made.map_err(|e| match e {
            BootError::NoKernel(_) | BootError::BadKernel { .. } | BootError::NoModule(_) => {
                DriverError::Permanent(format!("kernel image {reference}: {e}"))
            }
            other => DriverError::Transient(format!("kernel image {reference}: {other}")),
        })
    }
}

/// A kernel image's files in the image store, each checked against its fingerprint as it is
/// read; the image's record is read once.
struct StoreKernel<'a> {
    store: &'a Store,
    record: ImageRecord,
}

impl KernelFiles for StoreKernel<'_> {
    fn paths(&self) -> Result<Vec<String>, BootError> {
        Ok(self
            .record
            .tree
            .files()
            .map(|(p, ..)| p.to_string())
            .collect())
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, BootError> {
        // A tenant's image: no file of it is read whole past the bound.
        let size = match self.record.tree.get(path).map(|e| &e.kind) {
            Some(zos_image_store::EntryKind::File { size, .. }) => *size,
            _ => 0,
        };
        if size > boot::MAX_KERNEL_FILE_BYTES {
            return Err(BootError::TooLarge(format!(
                "/{path} has {size} bytes, over this node's {} for a file of a kernel image",
                boot::MAX_KERNEL_FILE_BYTES
            )));
        }
        self.store
            .read_image_file(&self.record, path)
            .map_err(|e| BootError::Store(e.to_string()))?
            .ok_or_else(|| BootError::Store(format!("/{path} is not a file of the image")))
    }
}

impl Driver for VmDriver {
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>> {
        Ok(self.vms.list()?.into_iter().map(|id| id.contract).collect())
    }

    fn observe(&self, contract: u64) -> anyhow::Result<Vec<Observed>> {
        let mut out = Vec::new();
        for id in self.vms.list()? {
            if id.contract != contract {
                continue;
            }
            let Some(status) = self.vms.status(&id)? else {
                continue;
            };
            let state = match status.state {
                VmState::Running => RunState::Running {
                    since: status.started_at,
                },
                VmState::Paused => RunState::Paused,
                // QEMU's exit status is not the guest's: a power-off and a crash look alike.
                VmState::Exited => RunState::Exited {
                    code: None,
                    signal: None,
                },
            };
            out.push(Observed {
                name: id.name.clone(),
                kind: WorkloadKind::VirtualMachine,
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
        let WorkloadSpec::VirtualMachine(vm) = &workload.spec else {
            return Err(DriverError::Permanent(format!(
                "the VM driver cannot run a {}",
                workload.spec.kind()
            )));
        };
        let id = WorkloadId {
            contract,
            name: String::from_utf8_lossy(&workload.name).into_owned(),
        };
        self.start(&id, owner, workload, vm, deployment)
    }

    fn remove(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        let id = WorkloadId {
            contract,
            name: name.to_string(),
        };
        self.vms.remove(&id, self.stop_grace)?;
        self.images.store().remove_rootfs(&id.container_id())?;
        Ok(())
    }

    fn remove_all(&self, contract: u64) -> anyhow::Result<()> {
        for id in self.vms.list()? {
            if id.contract == contract {
                self.remove(contract, &id.name)?;
            }
        }
        Ok(())
    }

    fn pause(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.vms.pause(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }

    fn resume(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        Ok(self.vms.resume(&WorkloadId {
            contract,
            name: name.to_string(),
        })?)
    }
}
