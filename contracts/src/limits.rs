//! Bounds of the deployment model. The collection bounds are part of the SCALE types; the value
//! ranges are checked by [`crate::validate`].

/// Largest SCALE encoding of a deployment the chain accepts, in bytes.
pub const MAX_ENCODED_LEN: u32 = 16 * 1024;
/// Deepest nesting accepted when decoding untrusted bytes.
pub const MAX_DECODE_DEPTH: u32 = 16;

/// Workloads in one deployment.
pub const MAX_WORKLOADS: u32 = 32;
/// Bytes of a workload name (a DNS label).
pub const MAX_NAME_LEN: u32 = 63;
/// Bytes of a path inside a workload.
pub const MAX_PATH_LEN: u32 = 1024;
/// Bytes of one argument.
pub const MAX_ARG_LEN: u32 = 1024;
/// Arguments of an entrypoint.
pub const MAX_ENTRYPOINT_ARGS: u32 = 16;
/// Arguments of a command.
pub const MAX_ARGS: u32 = 64;
/// Bytes of a deployment's description.
pub const MAX_DESCRIPTION_LEN: u32 = 256;
/// Bytes of an image repository.
pub const MAX_REPOSITORY_LEN: u32 = 255;
/// Environment variables of one workload.
pub const MAX_ENV_VARS: u32 = 64;
/// Bytes of an environment variable's name.
pub const MAX_ENV_KEY_LEN: u32 = 128;
/// Bytes of a plain environment value.
pub const MAX_ENV_VALUE_LEN: u32 = 4096;
/// Bytes of a sealed value: the plain bound, the longest context and the sealing overhead (see
/// `sealed`).
pub const MAX_SEALED_VALUE_LEN: u32 = MAX_ENV_VALUE_LEN + MAX_SEAL_CONTEXT_LEN + SEAL_OVERHEAD;
/// Bytes of the shortest sealed value: an empty value with the shortest context.
pub const MIN_SEALED_VALUE_LEN: u32 = MIN_SEAL_CONTEXT_LEN + SEAL_OVERHEAD;
/// Bytes the sealing adds to what it seals: an ephemeral X25519 public key and a Poly1305 tag.
pub const SEAL_OVERHEAD: u32 = 32 + 16;
/// Bytes of the context sealed with a value: the 13-byte tag `zos/secret/v1`, the owner's and the
/// node's accounts, then the workload's and the variable's names, each after its SCALE compact
/// length (one byte up to 63, two up to 16383).
pub const MAX_SEAL_CONTEXT_LEN: u32 = 13 + 32 + 32 + (1 + MAX_NAME_LEN) + (2 + MAX_ENV_KEY_LEN);
/// Bytes of the shortest context: both names one byte long.
pub const MIN_SEAL_CONTEXT_LEN: u32 = 13 + 32 + 32 + (1 + 1) + (1 + 1);
/// Volumes mounted into one container.
pub const MAX_MOUNTS: u32 = 16;
/// Disks attached to one VM.
pub const MAX_VM_DISKS: u32 = 8;
/// SSH keys of one VM.
pub const MAX_SSH_KEYS: u32 = 8;
/// Bytes of one SSH key.
pub const MAX_SSH_KEY_LEN: u32 = 1024;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// Container CPU limit, thousandths of a vCPU: from 0.01 to 256 vCPUs.
pub const CONTAINER_CPU_MILLIS: (u64, u64) = (10, 256_000);
/// Container memory, bytes: from 16 MiB to 1 TiB.
pub const CONTAINER_MEMORY: (u64, u64) = (16 * MIB, TIB);
/// Container writable root filesystem, bytes: from 64 MiB (below that, ext4's journal and
/// metadata take much of it) to 1 TiB.
pub const CONTAINER_ROOTFS: (u64, u64) = (64 * MIB, TIB);
/// The writable root filesystem of a container whose deployment file does not say.
pub const DEFAULT_CONTAINER_ROOTFS: u64 = 256 * MIB;
/// A VM's writable root filesystem layer (reserved and billed as SSD with the VM): what must
/// last, or is large, goes on its disks.
pub const VM_ROOTFS: u64 = 256 * MIB;
/// VM vCPUs.
pub const VM_VCPUS: (u64, u64) = (1, 256);
/// VM memory, bytes: from 128 MiB to 1 TiB.
pub const VM_MEMORY: (u64, u64) = (128 * MIB, TIB);
/// Volume size, bytes: from 1 MiB to 64 TiB.
pub const VOLUME_SIZE: (u64, u64) = (MIB, 64 * TIB);
/// Disk size, bytes: from 1 MiB to 64 TiB.
pub const DISK_SIZE: (u64, u64) = (MIB, 64 * TIB);
/// Prefix length of a network's range (a /8 at the widest) and of a node's subnet.
pub const NETWORK_PREFIX: (u64, u64) = (8, 30);
