//! The deployment model in its canonical (SCALE) form: what the chain stores, what the node
//! reconciles and what a group of people approves.
//!
//! Every collection is bounded, so decoding untrusted bytes never allocates more than the bounds
//! allow. Structural rules that the types cannot express (unique names, references between
//! workloads, ranges) are checked by [`crate::validate`].

use bounded_collections::{BoundedVec, ConstU32};
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use crate::limits;

/// A workload name: a DNS label, `[a-z0-9-]`, 1 to 63 bytes, neither starting nor ending in `-`.
pub type Name = BoundedVec<u8, ConstU32<{ limits::MAX_NAME_LEN }>>;
/// An absolute path inside a workload.
pub type Path = BoundedVec<u8, ConstU32<{ limits::MAX_PATH_LEN }>>;
/// One argument of an entrypoint or command line.
pub type Arg = BoundedVec<u8, ConstU32<{ limits::MAX_ARG_LEN }>>;
/// A free-text description, UTF-8.
pub type Description = BoundedVec<u8, ConstU32<{ limits::MAX_DESCRIPTION_LEN }>>;
/// The repository part of an image reference, e.g. `127.0.0.1:5000/library/busybox`.
pub type Repository = BoundedVec<u8, ConstU32<{ limits::MAX_REPOSITORY_LEN }>>;
/// An SSH public key line (`ssh-ed25519 AAAA... comment`).
pub type SshKey = BoundedVec<u8, ConstU32<{ limits::MAX_SSH_KEY_LEN }>>;
/// The environment of a container or VM, in the order given.
pub type Env = BoundedVec<EnvVar, ConstU32<{ limits::MAX_ENV_VARS }>>;

/// What must run on one node: a versioned set of named workloads.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct Deployment {
    /// Grows with every update of the contract.
    pub version: u32,
    /// A short free-text description, UTF-8.
    pub description: Description,
    /// The workloads, each with a name unique within the deployment.
    pub workloads: BoundedVec<Workload, ConstU32<{ limits::MAX_WORKLOADS }>>,
}

/// One named unit of a deployment.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct Workload {
    /// Unique within the deployment; the node derives host names from it.
    pub name: Name,
    /// The workload's own version: a node re-applies only the workloads whose version changed.
    pub version: u32,
    /// What the workload is.
    pub spec: WorkloadSpec,
}

/// The kinds of workload.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub enum WorkloadSpec {
    /// A container started from an OCI image.
    #[codec(index = 0)]
    Container(Container),
    /// A virtual machine booted from an image.
    #[codec(index = 1)]
    VirtualMachine(VirtualMachine),
    /// A filesystem of a fixed size that containers mount.
    #[codec(index = 2)]
    Volume(Volume),
    /// A block device of a fixed size that virtual machines attach.
    #[codec(index = 3)]
    Disk(Disk),
    /// A private IPv4 network spanning nodes.
    #[codec(index = 4)]
    Network(Network),
}

/// The kind of a workload, without its content; used in errors and references.
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
pub enum WorkloadKind {
    /// [`WorkloadSpec::Container`].
    Container,
    /// [`WorkloadSpec::VirtualMachine`].
    VirtualMachine,
    /// [`WorkloadSpec::Volume`].
    Volume,
    /// [`WorkloadSpec::Disk`].
    Disk,
    /// [`WorkloadSpec::Network`].
    Network,
}

impl WorkloadKind {
    /// The name users write in a deployment file.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Container => "container",
            WorkloadKind::VirtualMachine => "vm",
            WorkloadKind::Volume => "volume",
            WorkloadKind::Disk => "disk",
            WorkloadKind::Network => "network",
        }
    }
}

impl core::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WorkloadSpec {
    /// The kind of this spec.
    pub fn kind(&self) -> WorkloadKind {
        match self {
            WorkloadSpec::Container(_) => WorkloadKind::Container,
            WorkloadSpec::VirtualMachine(_) => WorkloadKind::VirtualMachine,
            WorkloadSpec::Volume(_) => WorkloadKind::Volume,
            WorkloadSpec::Disk(_) => WorkloadKind::Disk,
            WorkloadSpec::Network(_) => WorkloadKind::Network,
        }
    }
}

/// An OCI image pinned by content: a repository and the `sha256` digest of its manifest.
///
/// There is no tag: what a node runs is fixed by the contract.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct ImageRef {
    /// Registry host (with optional port) and path, e.g. `127.0.0.1:5000/app`.
    pub repository: Repository,
    /// The sha256 digest of the image manifest.
    pub digest: [u8; 32],
}

/// A container workload.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct Container {
    /// The image its root filesystem is made from.
    pub image: ImageRef,
    /// Replaces the image's entrypoint when not empty.
    pub entrypoint: BoundedVec<Arg, ConstU32<{ limits::MAX_ENTRYPOINT_ARGS }>>,
    /// Replaces the image's command when not empty.
    pub args: BoundedVec<Arg, ConstU32<{ limits::MAX_ARGS }>>,
    /// Environment variables.
    pub env: Env,
    /// The working directory; the image's when `None`.
    pub workdir: Option<Path>,
    /// CPU limit in thousandths of a vCPU.
    pub cpu_millis: u32,
    /// Memory limit in bytes.
    pub memory: u64,
    /// Size in bytes of the container's writable root filesystem: what it can add to or change in
    /// its image's tree (the image itself is shared and not counted). Writes past it fail with
    /// `ENOSPC`; the node reserves it as SSD. A new version of the workload starts from an empty
    /// one, so it may be set lower in an update.
    pub rootfs_size: u64,
    /// Volume workloads of the same deployment mounted into the container.
    pub mounts: BoundedVec<Mount, ConstU32<{ limits::MAX_MOUNTS }>>,
    /// The network workload the container joins, if any.
    pub network: Option<NetworkAttachment>,
    /// What the node does when the process exits.
    pub restart: RestartPolicy,
}

/// A volume mounted into a container.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct Mount {
    /// The name of a [`WorkloadSpec::Volume`] of the same deployment.
    pub volume: Name,
    /// Where it appears inside the container (absolute).
    pub path: Path,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Membership of a container or VM in a network workload.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct NetworkAttachment {
    /// The name of a [`WorkloadSpec::Network`] of the same deployment.
    pub network: Name,
    /// A fixed address inside this node's subnet; the node picks one when `None`.
    pub ip: Option<[u8; 4]>,
}

/// What happens when a container's process exits.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, Encode, Decode, DecodeWithMemTracking, TypeInfo,
)]
pub enum RestartPolicy {
    /// Restart whatever the exit status (with backoff).
    #[default]
    #[codec(index = 0)]
    Always,
    /// Restart only after a non-zero exit status.
    #[codec(index = 1)]
    OnFailure,
    /// Never restart; the workload is done when the process exits.
    #[codec(index = 2)]
    Never,
}

/// One environment variable.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct EnvVar {
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    pub key: BoundedVec<u8, ConstU32<{ limits::MAX_ENV_KEY_LEN }>>,
    /// The value, plain or sealed to the node's key.
    pub value: EnvValue,
}

/// The value of an environment variable.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub enum EnvValue {
    /// Stored on chain as it is: anyone can read it.
    #[codec(index = 0)]
    Plain(BoundedVec<u8, ConstU32<{ limits::MAX_ENV_VALUE_LEN }>>),
    /// Sealed to the node's key: only the node can open it.
    #[codec(index = 1)]
    Sealed(SealedValue),
}

/// Ciphertext of a secret sealed to a node's key (see `sealed` under `std`).
pub type SealedValue = BoundedVec<u8, ConstU32<{ limits::MAX_SEALED_VALUE_LEN }>>;

/// A virtual machine workload.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct VirtualMachine {
    /// The image its root filesystem is made from.
    pub image: ImageRef,
    /// An image carrying the kernel to boot directly; the node's default kernel when `None`.
    pub kernel: Option<ImageRef>,
    /// Virtual CPUs.
    pub vcpus: u16,
    /// Memory in bytes.
    pub memory: u64,
    /// Disk workloads of the same deployment attached as block devices, in this order.
    pub disks: BoundedVec<Name, ConstU32<{ limits::MAX_VM_DISKS }>>,
    /// The network workload the VM joins, if any.
    pub network: Option<NetworkAttachment>,
    /// SSH public keys authorised in the guest.
    pub ssh_keys: BoundedVec<SshKey, ConstU32<{ limits::MAX_SSH_KEYS }>>,
    /// Environment handed to the guest's init.
    pub env: Env,
}

/// A filesystem for containers, of a fixed size.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct Volume {
    /// Size in bytes.
    pub size: u64,
}

/// A block device for virtual machines, of a fixed size.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct Disk {
    /// Size in bytes.
    pub size: u64,
}

/// A private IPv4 network: its whole range, and the part of it that lives on this node.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct Network {
    /// The network's whole range, inside RFC 1918 space.
    pub range: Ipv4Cidr,
    /// This node's subnet, inside `range`.
    pub subnet: Ipv4Cidr,
    /// Whether the network's workloads on this node reach the internet through the node's own
    /// address (nothing reaches them from it). Off unless asked.
    pub egress: bool,
}

/// An IPv4 prefix, e.g. `10.20.0.0/16`.
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
pub struct Ipv4Cidr {
    /// The network address; host bits must be zero.
    pub addr: [u8; 4],
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The netmask as a host-order integer; `None` when the prefix is over 32.
    pub fn mask(&self) -> Option<u32> {
        match self.prefix {
            0 => Some(0),
            p @ 1..=32 => Some(u32::MAX << (32 - p)),
            _ => None,
        }
    }

    /// The network address as a host-order integer.
    pub fn base(&self) -> u32 {
        u32::from_be_bytes(self.addr)
    }

    /// Whether `ip` lies inside this prefix.
    pub fn contains(&self, ip: [u8; 4]) -> bool {
        match self.mask() {
            Some(mask) => u32::from_be_bytes(ip) & mask == self.base() & mask,
            None => false,
        }
    }

    /// Whether `other` lies wholly inside this prefix.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// Whether this prefix and `other` share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// The lowest subnet of this range that overlaps none of `taken`: a /24 in a range of /22 or
    /// wider, else a quarter of the range (at most /30). `None` when none is free.
    pub fn free_subnet(&self, taken: &[Ipv4Cidr]) -> Option<Ipv4Cidr> {
        let prefix = if self.prefix <= 22 {
            24
        } else {
            (self.prefix + 2).min(30)
        };
        if prefix < self.prefix || self.mask().is_none() {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let count = 1u64 << (prefix - self.prefix);
        let base = u64::from(self.base() & self.mask()?);
        (0..count)
            .map(|i| Ipv4Cidr {
                addr: ((base + i * step) as u32).to_be_bytes(),
                prefix,
            })
            .find(|c| !taken.iter().any(|t| t.overlaps(c)))
    }
}

impl core::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.addr;
        write!(f, "{a}.{b}.{c}.{d}/{}", self.prefix)
    }
}

/// Capacity of a node or reserved by a deployment.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct Capacity {
    /// CPU, in thousandths of a logical CPU (a 4-core node offers 4000).
    pub cpu_millis: u64,
    /// Memory, bytes.
    pub mru: u64,
    /// SSD storage, bytes.
    pub sru: u64,
    /// HDD storage, bytes.
    pub hru: u64,
}

impl Capacity {
    /// The sum, or `None` on overflow.
    pub fn checked_add(&self, other: &Capacity) -> Option<Capacity> {
        Some(Capacity {
            cpu_millis: self.cpu_millis.checked_add(other.cpu_millis)?,
            mru: self.mru.checked_add(other.mru)?,
            sru: self.sru.checked_add(other.sru)?,
            hru: self.hru.checked_add(other.hru)?,
        })
    }

    /// The difference, or `None` when `other` is larger in any unit.
    pub fn checked_sub(&self, other: &Capacity) -> Option<Capacity> {
        Some(Capacity {
            cpu_millis: self.cpu_millis.checked_sub(other.cpu_millis)?,
            mru: self.mru.checked_sub(other.mru)?,
            sru: self.sru.checked_sub(other.sru)?,
            hru: self.hru.checked_sub(other.hru)?,
        })
    }

    /// The sum, saturating at the largest value in each unit.
    pub fn saturating_add(&self, other: &Capacity) -> Capacity {
        Capacity {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            mru: self.mru.saturating_add(other.mru),
            sru: self.sru.saturating_add(other.sru),
            hru: self.hru.saturating_add(other.hru),
        }
    }

    /// The difference, zero where `other` is larger.
    pub fn saturating_sub(&self, other: &Capacity) -> Capacity {
        Capacity {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            mru: self.mru.saturating_sub(other.mru),
            sru: self.sru.saturating_sub(other.sru),
            hru: self.hru.saturating_sub(other.hru),
        }
    }

    /// Whether every unit of `other` fits in this capacity.
    pub fn fits(&self, other: &Capacity) -> bool {
        other.cpu_millis <= self.cpu_millis
            && other.mru <= self.mru
            && other.sru <= self.sru
            && other.hru <= self.hru
    }

    /// Whether every unit is zero.
    pub fn is_zero(&self) -> bool {
        *self == Capacity::default()
    }
}

impl Workload {
    /// The capacity this workload reserves on its node.
    ///
    /// CPU in thousandths of a vCPU, as containers state it (a VM's vCPUs count 1000 each);
    /// memory of containers and VMs; SSD for the writable root filesystem of a container (its
    /// `rootfs_size`) or a VM ([`limits::VM_ROOTFS`]), volumes and disks; networks reserve
    /// nothing.
    pub fn capacity(&self) -> Capacity {
        match &self.spec {
            WorkloadSpec::Container(c) => Capacity {
                cpu_millis: u64::from(c.cpu_millis),
                mru: c.memory,
                sru: c.rootfs_size,
                hru: 0,
            },
            WorkloadSpec::VirtualMachine(vm) => Capacity {
                cpu_millis: u64::from(vm.vcpus).saturating_mul(1000),
                mru: vm.memory,
                sru: limits::VM_ROOTFS,
                hru: 0,
            },
            WorkloadSpec::Volume(v) => Capacity {
                sru: v.size,
                ..Capacity::default()
            },
            WorkloadSpec::Disk(d) => Capacity {
                sru: d.size,
                ..Capacity::default()
            },
            WorkloadSpec::Network(_) => Capacity::default(),
        }
    }

    /// The size of a volume or disk, which an update may grow but never shrink. A container's
    /// root filesystem is not one: a new version of the container gets a new, empty one.
    pub fn storage_size(&self) -> Option<u64> {
        match &self.spec {
            WorkloadSpec::Volume(v) => Some(v.size),
            WorkloadSpec::Disk(d) => Some(d.size),
            _ => None,
        }
    }
}

impl Deployment {
    /// The capacity this deployment reserves on its node: the sum of its workloads'. Saturates
    /// instead of overflowing; validation keeps real deployments far from that.
    pub fn capacity(&self) -> Capacity {
        self.workloads.iter().fold(Capacity::default(), |sum, w| {
            sum.saturating_add(&w.capacity())
        })
    }

    /// The workload with this name.
    pub fn workload(&self, name: &[u8]) -> Option<&Workload> {
        self.workloads.iter().find(|w| &w.name[..] == name)
    }
}
