//! Structural validation of a deployment: everything the types cannot say.
//!
//! The chain runs [`validate`] before it accepts a contract, and the CLI runs it before it submits
//! one, so a user sees the same error in both places.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use crate::{
    limits,
    model::{
        Deployment, Env, EnvValue, ImageRef, Ipv4Cidr, Name, NetworkAttachment, WorkloadKind,
        WorkloadSpec,
    },
};

/// Where in a workload a problem is: a field, optionally an element of a list, optionally a part
/// of that element. Displays as `mounts[1].path`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Field {
    /// The field's name in the deployment file.
    pub name: &'static str,
    /// The element of a list field.
    pub index: Option<u32>,
    /// The part of that element.
    pub part: Option<&'static str>,
}

impl Field {
    /// A plain field.
    pub const fn new(name: &'static str) -> Field {
        Field {
            name,
            index: None,
            part: None,
        }
    }

    /// An element of a list field.
    pub const fn at(name: &'static str, index: usize) -> Field {
        Field {
            name,
            index: Some(index as u32),
            part: None,
        }
    }

    /// A part of this field.
    pub const fn part(self, part: &'static str) -> Field {
        Field {
            part: Some(part),
            ..self
        }
    }
}

impl core::fmt::Display for Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        if let Some(part) = self.part {
            write!(f, ".{part}")?;
        }
        Ok(())
    }
}

/// Why a deployment is not valid. Variants about a workload name it and the field.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ValidationError {
    /// The deployment has no workload.
    NoWorkloads,
    /// The SCALE encoding is larger than [`limits::MAX_ENCODED_LEN`].
    TooLarge {
        /// Encoded length in bytes.
        len: u32,
    },
    /// The description is not UTF-8.
    InvalidDescription,
    /// A workload's name is not a DNS label (`[a-z0-9-]`, 1 to 63, no `-` at either end).
    InvalidName {
        /// Position of the workload in the deployment.
        index: u32,
    },
    /// Two workloads share a name.
    DuplicateName {
        /// The name.
        workload: Name,
    },
    /// A field names a workload that the deployment does not have.
    MissingReference {
        /// The referring workload.
        workload: Name,
        /// The referring field.
        field: Field,
        /// The missing name.
        target: Name,
    },
    /// A field names a workload of the wrong kind (a mount of a disk, a VM disk that is a volume,
    /// an attachment to something that is not a network).
    WrongKind {
        /// The referring workload.
        workload: Name,
        /// The referring field.
        field: Field,
        /// The named workload.
        target: Name,
        /// The kind the field needs.
        expected: WorkloadKind,
        /// The kind the named workload is.
        found: WorkloadKind,
    },
    /// A number is outside its allowed range.
    OutOfRange {
        /// The workload.
        workload: Name,
        /// The field.
        field: Field,
        /// The value given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// An image repository is not `host[:port]/path` with lowercase path components.
    InvalidImage {
        /// The workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// A path is not absolute, not UTF-8, has a NUL or a `..` component.
    InvalidPath {
        /// The workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// Two mounts of one container use the same path.
    DuplicateMountPath {
        /// The workload.
        workload: Name,
        /// The later mount.
        field: Field,
    },
    /// An argument is not UTF-8 or has a NUL byte.
    InvalidArg {
        /// The workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// An environment variable's name is not `[A-Za-z_][A-Za-z0-9_]*`.
    InvalidEnvKey {
        /// The workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// Two environment variables share a name.
    DuplicateEnvKey {
        /// The workload.
        workload: Name,
        /// The later variable.
        field: Field,
    },
    /// A plain value is not UTF-8 or has a NUL byte, or a sealed value is shorter than the shortest
    /// sealed value ([`limits::MIN_SEALED_VALUE_LEN`]).
    InvalidEnvValue {
        /// The workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// An SSH key is not one UTF-8 line starting with a key type.
    InvalidSshKey {
        /// The workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// A disk is attached twice, to one VM or to two.
    DiskAttachedTwice {
        /// The second VM to attach it.
        workload: Name,
        /// The field.
        field: Field,
        /// The disk.
        target: Name,
    },
    /// A CIDR has a prefix over 32 or host bits set.
    InvalidCidr {
        /// The network workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// A network range is not inside RFC 1918 private space.
    PublicRange {
        /// The network workload.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// A network's subnet for this node is not inside its range.
    SubnetOutsideRange {
        /// The network workload.
        workload: Name,
    },
    /// A fixed IP is not inside the node's subnet of the network.
    IpOutsideSubnet {
        /// The workload with the IP.
        workload: Name,
        /// The field.
        field: Field,
        /// The network.
        network: Name,
    },
    /// A fixed IP is the subnet's network, gateway (first host) or broadcast address.
    IpReserved {
        /// The workload with the IP.
        workload: Name,
        /// The field.
        field: Field,
    },
    /// Two workloads have the same fixed IP on one network.
    DuplicateIp {
        /// The later workload.
        workload: Name,
        /// The field.
        field: Field,
    },
}

/// The variant of a [`ValidationError`] without its data: small enough for a chain error.
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
#[allow(missing_docs)]
pub enum ValidationErrorKind {
    NoWorkloads,
    TooLarge,
    InvalidDescription,
    InvalidName,
    DuplicateName,
    MissingReference,
    WrongKind,
    OutOfRange,
    InvalidImage,
    InvalidPath,
    DuplicateMountPath,
    InvalidArg,
    InvalidEnvKey,
    DuplicateEnvKey,
    InvalidEnvValue,
    InvalidSshKey,
    DiskAttachedTwice,
    InvalidCidr,
    PublicRange,
    SubnetOutsideRange,
    IpOutsideSubnet,
    IpReserved,
    DuplicateIp,
}

impl ValidationError {
    /// The variant without its data.
    pub fn kind(&self) -> ValidationErrorKind {
        use ValidationError as E;
        use ValidationErrorKind as K;
        match self {
            E::NoWorkloads => K::NoWorkloads,
            E::TooLarge { .. } => K::TooLarge,
            E::InvalidDescription => K::InvalidDescription,
            E::InvalidName { .. } => K::InvalidName,
            E::DuplicateName { .. } => K::DuplicateName,
            E::MissingReference { .. } => K::MissingReference,
            E::WrongKind { .. } => K::WrongKind,
            E::OutOfRange { .. } => K::OutOfRange,
            E::InvalidImage { .. } => K::InvalidImage,
            E::InvalidPath { .. } => K::InvalidPath,
            E::DuplicateMountPath { .. } => K::DuplicateMountPath,
            E::InvalidArg { .. } => K::InvalidArg,
            E::InvalidEnvKey { .. } => K::InvalidEnvKey,
            E::DuplicateEnvKey { .. } => K::DuplicateEnvKey,
            E::InvalidEnvValue { .. } => K::InvalidEnvValue,
            E::InvalidSshKey { .. } => K::InvalidSshKey,
            E::DiskAttachedTwice { .. } => K::DiskAttachedTwice,
            E::InvalidCidr { .. } => K::InvalidCidr,
            E::PublicRange { .. } => K::PublicRange,
            E::SubnetOutsideRange { .. } => K::SubnetOutsideRange,
            E::IpOutsideSubnet { .. } => K::IpOutsideSubnet,
            E::IpReserved { .. } => K::IpReserved,
            E::DuplicateIp { .. } => K::DuplicateIp,
        }
    }

    /// The workload the error is about, if it is about one.
    pub fn workload(&self) -> Option<&Name> {
        use ValidationError as E;
        match self {
            E::NoWorkloads | E::TooLarge { .. } | E::InvalidDescription | E::InvalidName { .. } => {
                None
            }
            E::DuplicateName { workload }
            | E::MissingReference { workload, .. }
            | E::WrongKind { workload, .. }
            | E::OutOfRange { workload, .. }
            | E::InvalidImage { workload, .. }
            | E::InvalidPath { workload, .. }
            | E::DuplicateMountPath { workload, .. }
            | E::InvalidArg { workload, .. }
            | E::InvalidEnvKey { workload, .. }
            | E::DuplicateEnvKey { workload, .. }
            | E::InvalidEnvValue { workload, .. }
            | E::InvalidSshKey { workload, .. }
            | E::DiskAttachedTwice { workload, .. }
            | E::InvalidCidr { workload, .. }
            | E::PublicRange { workload, .. }
            | E::SubnetOutsideRange { workload }
            | E::IpOutsideSubnet { workload, .. }
            | E::IpReserved { workload, .. }
            | E::DuplicateIp { workload, .. } => Some(workload),
        }
    }
}

fn lossy(bytes: &[u8]) -> alloc::string::String {
    alloc::string::String::from_utf8_lossy(bytes).into_owned()
}

impl core::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use ValidationError as E;
        if let Some(w) = self.workload() {
            write!(f, "workload {:?}: ", lossy(w))?;
        }
        match self {
            E::NoWorkloads => f.write_str("deployment has no workloads"),
            E::TooLarge { len } => write!(
                f,
                "deployment encodes to {len} bytes, more than the {} allowed",
                limits::MAX_ENCODED_LEN
            ),
            E::InvalidDescription => f.write_str("description is not UTF-8"),
            E::InvalidName { index } => write!(
                f,
                "workloads[{index}].name: not a DNS label ([a-z0-9-], 1 to 63 characters, no '-' at either end)"
            ),
            E::DuplicateName { .. } => f.write_str("name: used by another workload"),
            E::MissingReference { field, target, .. } => {
                write!(f, "{field}: no workload named {:?}", lossy(target))
            }
            E::WrongKind { field, target, expected, found, .. } => write!(
                f,
                "{field}: {:?} is a {found}, expected a {expected}",
                lossy(target)
            ),
            E::OutOfRange { field, value, min, max, .. } => {
                write!(f, "{field}: {value} is outside {min}..={max}")
            }
            E::InvalidImage { field, .. } => write!(
                f,
                "{field}: repository must be host[:port]/path with lowercase path components"
            ),
            E::InvalidPath { field, .. } => write!(
                f,
                "{field}: must be an absolute UTF-8 path without NUL bytes or '..' components"
            ),
            E::DuplicateMountPath { field, .. } => {
                write!(f, "{field}: another mount uses the same path")
            }
            E::InvalidArg { field, .. } => {
                write!(f, "{field}: must be UTF-8 without NUL bytes")
            }
            E::InvalidEnvKey { field, .. } => {
                write!(f, "{field}: variable names are [A-Za-z_][A-Za-z0-9_]*")
            }
            E::DuplicateEnvKey { field, .. } => write!(f, "{field}: variable set twice"),
            E::InvalidEnvValue { field, .. } => write!(
                f,
                "{field}: a plain value must be UTF-8 without NUL bytes; a sealed one at least {} bytes",
                limits::MIN_SEALED_VALUE_LEN
            ),
            E::InvalidSshKey { field, .. } => write!(
                f,
                "{field}: must be one UTF-8 line starting with its type (ssh-ed25519, ecdsa-..., ...)"
            ),
            E::DiskAttachedTwice { field, target, .. } => write!(
                f,
                "{field}: disk {:?} is already attached",
                lossy(target)
            ),
            E::InvalidCidr { field, .. } => {
                write!(f, "{field}: prefix over 32 or host bits set")
            }
            E::PublicRange { field, .. } => write!(
                f,
                "{field}: must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            ),
            E::SubnetOutsideRange { .. } => f.write_str("subnet: not inside range"),
            E::IpOutsideSubnet { field, network, .. } => write!(
                f,
                "{field}: not inside the subnet of network {:?}",
                lossy(network)
            ),
            E::IpReserved { field, .. } => write!(
                f,
                "{field}: the subnet's network, gateway (first) and broadcast addresses are reserved"
            ),
            E::DuplicateIp { field, .. } => {
                write!(f, "{field}: another workload has the same IP on this network")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ValidationError {}

/// Checks a deployment: names, references, ranges, networks, encodings. Returns the first error
/// found, in workload order.
pub fn validate(deployment: &Deployment) -> Result<(), ValidationError> {
    let len = deployment.encoded_size();
    if len > limits::MAX_ENCODED_LEN as usize {
        return Err(ValidationError::TooLarge { len: len as u32 });
    }
    if deployment.workloads.is_empty() {
        return Err(ValidationError::NoWorkloads);
    }
    if core::str::from_utf8(&deployment.description).is_err() {
        return Err(ValidationError::InvalidDescription);
    }
    for (index, w) in deployment.workloads.iter().enumerate() {
        if !is_dns_label(&w.name) {
            return Err(ValidationError::InvalidName {
                index: index as u32,
            });
        }
        if deployment.workloads[..index]
            .iter()
            .any(|o| o.name == w.name)
        {
            return Err(ValidationError::DuplicateName {
                workload: w.name.clone(),
            });
        }
    }

    let mut v = Validator {
        deployment,
        attached_disks: Vec::new(),
        fixed_ips: Vec::new(),
    };
    for w in deployment.workloads.iter() {
        v.workload(&w.name, &w.spec)?;
    }
    Ok(())
}

struct Validator<'a> {
    deployment: &'a Deployment,
    attached_disks: Vec<&'a [u8]>,
    fixed_ips: Vec<(&'a [u8], [u8; 4])>,
}

impl<'a> Validator<'a> {
    fn workload(&mut self, name: &'a Name, spec: &'a WorkloadSpec) -> Result<(), ValidationError> {
        let range = |field, value: u64, (min, max): (u64, u64)| {
            if value < min || value > max {
                Err(ValidationError::OutOfRange {
                    workload: name.clone(),
                    field,
                    value,
                    min,
                    max,
                })
            } else {
                Ok(())
            }
        };
        match spec {
            WorkloadSpec::Container(c) => {
                image(name, Field::new("image"), &c.image)?;
                for (i, arg) in c.entrypoint.iter().enumerate() {
                    text_arg(name, Field::at("entrypoint", i), arg)?;
                }
                for (i, arg) in c.args.iter().enumerate() {
                    text_arg(name, Field::at("args", i), arg)?;
                }
                env(name, &c.env)?;
                if let Some(workdir) = &c.workdir {
                    path(name, Field::new("workdir"), workdir)?;
                }
                range(
                    Field::new("cpu"),
                    u64::from(c.cpu_millis),
                    limits::CONTAINER_CPU_MILLIS,
                )?;
                range(Field::new("memory"), c.memory, limits::CONTAINER_MEMORY)?;
                range(
                    Field::new("rootfs"),
                    c.rootfs_size,
                    limits::CONTAINER_ROOTFS,
                )?;
                for (i, m) in c.mounts.iter().enumerate() {
                    self.reference(
                        name,
                        Field::at("mounts", i).part("volume"),
                        &m.volume,
                        WorkloadKind::Volume,
                    )?;
                    path(name, Field::at("mounts", i).part("path"), &m.path)?;
                    if c.mounts[..i].iter().any(|o| o.path == m.path) {
                        return Err(ValidationError::DuplicateMountPath {
                            workload: name.clone(),
                            field: Field::at("mounts", i).part("path"),
                        });
                    }
                }
                if let Some(att) = &c.network {
                    self.attachment(name, att)?;
                }
            }
            WorkloadSpec::VirtualMachine(vm) => {
                image(name, Field::new("image"), &vm.image)?;
                if let Some(kernel) = &vm.kernel {
                    image(name, Field::new("kernel"), kernel)?;
                }
                range(Field::new("vcpus"), u64::from(vm.vcpus), limits::VM_VCPUS)?;
                range(Field::new("memory"), vm.memory, limits::VM_MEMORY)?;
                for (i, disk) in vm.disks.iter().enumerate() {
                    let field = Field::at("disks", i);
                    self.reference(name, field, disk, WorkloadKind::Disk)?;
                    if self.attached_disks.contains(&&disk[..]) {
                        return Err(ValidationError::DiskAttachedTwice {
                            workload: name.clone(),
                            field,
                            target: disk.clone(),
                        });
                    }
                    self.attached_disks.push(disk);
                }
                if let Some(att) = &vm.network {
                    self.attachment(name, att)?;
                }
                for (i, key) in vm.ssh_keys.iter().enumerate() {
                    if !is_ssh_key(key) {
                        return Err(ValidationError::InvalidSshKey {
                            workload: name.clone(),
                            field: Field::at("ssh_keys", i),
                        });
                    }
                }
                env(name, &vm.env)?;
            }
            WorkloadSpec::Volume(v) => range(Field::new("size"), v.size, limits::VOLUME_SIZE)?,
            WorkloadSpec::Disk(d) => range(Field::new("size"), d.size, limits::DISK_SIZE)?,
            WorkloadSpec::Network(n) => {
                cidr(name, Field::new("range"), &n.range)?;
                if !is_private(&n.range) {
                    return Err(ValidationError::PublicRange {
                        workload: name.clone(),
                        field: Field::new("range"),
                    });
                }
                range(
                    Field::new("range"),
                    u64::from(n.range.prefix),
                    limits::NETWORK_PREFIX,
                )?;
                cidr(name, Field::new("subnet"), &n.subnet)?;
                range(
                    Field::new("subnet"),
                    u64::from(n.subnet.prefix),
                    limits::NETWORK_PREFIX,
                )?;
                if !n.range.covers(&n.subnet) {
                    return Err(ValidationError::SubnetOutsideRange {
                        workload: name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The kind of the workload named `target`, or the error for a missing or wrong one.
    fn reference(
        &self,
        workload: &Name,
        field: Field,
        target: &Name,
        expected: WorkloadKind,
    ) -> Result<&'a WorkloadSpec, ValidationError> {
        let Some(found) = self.deployment.workload(target) else {
            return Err(ValidationError::MissingReference {
                workload: workload.clone(),
                field,
                target: target.clone(),
            });
        };
        if found.spec.kind() != expected {
            return Err(ValidationError::WrongKind {
                workload: workload.clone(),
                field,
                target: target.clone(),
                expected,
                found: found.spec.kind(),
            });
        }
        Ok(&found.spec)
    }

    fn attachment(
        &mut self,
        workload: &Name,
        att: &'a NetworkAttachment,
    ) -> Result<(), ValidationError> {
        let field = Field::new("network").part("name");
        let WorkloadSpec::Network(net) =
            self.reference(workload, field, &att.network, WorkloadKind::Network)?
        else {
            unreachable!("reference() checked the kind; qed");
        };
        let Some(ip) = att.ip else { return Ok(()) };
        let field = Field::new("network").part("ip");
        // An invalid subnet is reported on the network workload itself.
        let Some(mask) = net.subnet.mask() else {
            return Ok(());
        };
        if !net.subnet.contains(ip) {
            return Err(ValidationError::IpOutsideSubnet {
                workload: workload.clone(),
                field,
                network: att.network.clone(),
            });
        }
        let host = u32::from_be_bytes(ip) & !mask;
        if host == 0 || host == 1 || host == !mask {
            return Err(ValidationError::IpReserved {
                workload: workload.clone(),
                field,
            });
        }
        if self
            .fixed_ips
            .iter()
            .any(|(n, other)| *n == &att.network[..] && *other == ip)
        {
            return Err(ValidationError::DuplicateIp {
                workload: workload.clone(),
                field,
            });
        }
        self.fixed_ips.push((&att.network, ip));
        Ok(())
    }
}

fn image(workload: &Name, field: Field, image: &ImageRef) -> Result<(), ValidationError> {
    if is_repository(&image.repository) {
        Ok(())
    } else {
        Err(ValidationError::InvalidImage {
            workload: workload.clone(),
            field,
        })
    }
}

fn text_arg(workload: &Name, field: Field, arg: &[u8]) -> Result<(), ValidationError> {
    if arg.contains(&0) || core::str::from_utf8(arg).is_err() {
        return Err(ValidationError::InvalidArg {
            workload: workload.clone(),
            field,
        });
    }
    Ok(())
}

fn path(workload: &Name, field: Field, path: &[u8]) -> Result<(), ValidationError> {
    let ok = path.first() == Some(&b'/')
        && !path.contains(&0)
        && core::str::from_utf8(path).is_ok()
        && !path.split(|b| *b == b'/').any(|c| c == b"..");
    if ok {
        Ok(())
    } else {
        Err(ValidationError::InvalidPath {
            workload: workload.clone(),
            field,
        })
    }
}

fn env(workload: &Name, env: &Env) -> Result<(), ValidationError> {
    for (i, var) in env.iter().enumerate() {
        let field = Field::at("env", i);
        if !is_env_key(&var.key) {
            return Err(ValidationError::InvalidEnvKey {
                workload: workload.clone(),
                field,
            });
        }
        if env[..i].iter().any(|o| o.key == var.key) {
            return Err(ValidationError::DuplicateEnvKey {
                workload: workload.clone(),
                field,
            });
        }
        let value_ok = match &var.value {
            EnvValue::Plain(v) => !v.contains(&0) && core::str::from_utf8(v).is_ok(),
            EnvValue::Sealed(s) => s.len() >= limits::MIN_SEALED_VALUE_LEN as usize,
        };
        if !value_ok {
            return Err(ValidationError::InvalidEnvValue {
                workload: workload.clone(),
                field: field.part("value"),
            });
        }
    }
    Ok(())
}

fn cidr(workload: &Name, field: Field, cidr: &Ipv4Cidr) -> Result<(), ValidationError> {
    match cidr.mask() {
        Some(mask) if cidr.base() & !mask == 0 => Ok(()),
        _ => Err(ValidationError::InvalidCidr {
            workload: workload.clone(),
            field,
        }),
    }
}

const PRIVATE_RANGES: [Ipv4Cidr; 3] = [
    Ipv4Cidr {
        addr: [10, 0, 0, 0],
        prefix: 8,
    },
    Ipv4Cidr {
        addr: [172, 16, 0, 0],
        prefix: 12,
    },
    Ipv4Cidr {
        addr: [192, 168, 0, 0],
        prefix: 16,
    },
];

fn is_private(range: &Ipv4Cidr) -> bool {
    PRIVATE_RANGES.iter().any(|p| p.covers(range))
}

/// `[a-z0-9-]`, 1 to 63 bytes, no `-` at either end.
pub(crate) fn is_dns_label(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= limits::MAX_NAME_LEN as usize
        && name
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && name.first() != Some(&b'-')
        && name.last() != Some(&b'-')
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_key(key: &[u8]) -> bool {
    match key.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

fn is_ssh_key(key: &[u8]) -> bool {
    let Ok(key) = core::str::from_utf8(key) else {
        return false;
    };
    let known_type = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| key.starts_with(p));
    known_type && !key.contains(['\n', '\r', '\0']) && key.split(' ').count() >= 2
}

/// `host[:port]/path`: the host has a dot or a port or is `localhost`, so that no registry is
/// implied; each path component is `[a-z0-9]+` joined by `.`, `_`, `__` or `-`.
pub(crate) fn is_repository(repo: &[u8]) -> bool {
    let Ok(repo) = core::str::from_utf8(repo) else {
        return false;
    };
    let Some((host, path)) = repo.split_once('/') else {
        return false;
    };
    let (hostname, port) = match host.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    };
    let host_ok = !hostname.is_empty()
        && hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && (hostname.contains('.') || hostname == "localhost" || port.is_some())
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && !path.is_empty() && path.split('/').all(is_path_component)
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    // Separators: '.', '_', '__' or a run of '-', always between alphanumerics.
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}
