//! The user-facing form of a deployment: YAML or JSON with human units.
//!
//! ```yaml
//! version: 1
//! description: a web app and its data
//! workloads:
//!   - name: data
//!     volume: { size: 1GiB }
//!   - name: web
//!     container:
//!       image: 127.0.0.1:5000/app@sha256:4f6b...
//!       cpu: 0.5
//!       memory: 256MiB
//!       rootfs: 1GiB           # writable root filesystem; 256MiB when not given
//!       env: { MODE: production, TOKEN: { secret: "s3cr3t" } }
//!       mounts: [{ volume: data, path: /data }]
//! ```
//!
//! Unknown fields are rejected, and every error names the field path (and the line, for YAML).
//! [`DeploymentFile::into_deployment`] gives the canonical form (sealing `secret:` values to the
//! node's key, for the contract's owner, the workload and the variable);
//! [`DeploymentFile::from_deployment`] gives it back, with sealed values as `sealed: <hex>`.

use std::net::Ipv4Addr;

use indexmap::IndexMap;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    limits,
    model::{self, Deployment, EnvValue, WorkloadSpec},
    sealed::{self, SealError, SealFor},
    units::{Cpu, Size},
    BoundedVec,
};

/// A deployment as users write it.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    /// Grows with every update; 1 for a new deployment.
    #[serde(default = "one")]
    pub version: u32,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The workloads.
    pub workloads: Vec<WorkloadFile>,
}

/// One workload: a name, a version and exactly one of `container`, `vm`, `volume`, `disk`,
/// `network`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct WorkloadFile {
    pub name: String,
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkFile>,
}

/// A container.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ContainerFile {
    pub image: ImageFile,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, EnvFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    pub cpu: Cpu,
    pub memory: Size,
    /// The writable root filesystem; [`limits::DEFAULT_CONTAINER_ROOTFS`] when not given. Always
    /// written out, so that whoever reads a deployment sees what it reserves.
    #[serde(default = "default_rootfs")]
    pub rootfs: Size,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<AttachmentFile>,
    #[serde(default, skip_serializing_if = "is_default_restart")]
    pub restart: RestartFile,
}

/// A virtual machine.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct VmFile {
    pub image: ImageFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<ImageFile>,
    pub vcpus: u16,
    pub memory: Size,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<AttachmentFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, EnvFile>,
}

/// A volume.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct VolumeFile {
    pub size: Size,
}

/// A disk.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DiskFile {
    pub size: Size,
}

/// A private network: its range and this node's subnet, both CIDRs. Without a subnet, the file
/// cannot become a deployment until one is chosen (`zosctl apply` picks a free one).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct NetworkFile {
    pub range: CidrFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<CidrFile>,
    /// Outbound internet through the node; off unless set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub egress: bool,
}

/// A mount of a volume.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MountFile {
    pub volume: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Membership of a network.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct AttachmentFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
}

/// `always`, `on-failure` or `never`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum RestartFile {
    #[default]
    Always,
    OnFailure,
    Never,
}

fn is_default_restart(r: &RestartFile) -> bool {
    *r == RestartFile::Always
}

/// An environment value: a plain string, `{ secret: "..." }` to be sealed to the node's key when
/// the deployment is applied, or `{ sealed: "<hex>" }` already sealed (it opens only for the
/// owner, node, workload and variable it was sealed for).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, { secret: \"...\" } or { sealed: \"<hex>\" }"
)]
pub enum EnvFile {
    /// Stored on chain as it is.
    Plain(String),
    /// Sealed to the node's key before it leaves this machine.
    Secret {
        /// The plain secret.
        secret: String,
    },
    /// Already sealed.
    Sealed {
        /// Hex of the sealed bytes.
        sealed: String,
    },
}

/// `host[:port]/path@sha256:<64 hex digits>`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ImageFile(pub model::ImageRef);

/// `a.b.c.d/prefix`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CidrFile(pub model::Ipv4Cidr);

fn one() -> u32 {
    1
}

fn default_rootfs() -> Size {
    Size(limits::DEFAULT_CONTAINER_ROOTFS)
}

/// Why a deployment file could not be read or converted.
#[derive(Debug)]
pub enum FileError {
    /// Not well-formed, an unknown field, a wrong type or an unreadable value.
    Parse {
        /// Field path, e.g. `workloads[1].container.memory`.
        path: String,
        /// Line (1-based), for YAML.
        line: Option<usize>,
        /// Column (1-based), for YAML.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A workload sets none, or more than one, of the kinds.
    Kind {
        /// Field path of the workload.
        path: String,
    },
    /// A value is longer, or a list has more items, than the canonical form allows.
    TooLong {
        /// Field path.
        path: String,
        /// The bound.
        max: u32,
    },
    /// A `secret:` value, but no owner and node to seal it for.
    SecretWithoutSealFor {
        /// Field path.
        path: String,
    },
    /// A `sealed:` value that is not hex.
    BadSealedValue {
        /// Field path.
        path: String,
    },
    /// Sealing failed.
    Seal {
        /// Field path.
        path: String,
        /// Why.
        source: SealError,
    },
    /// The canonical form holds bytes that are not UTF-8 where the file needs text.
    NotText {
        /// Field path.
        path: String,
    },
    /// A network without a subnet on this node.
    NoSubnet {
        /// Field path of the network.
        path: String,
    },
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileError::Parse {
                path,
                line,
                column,
                message,
            } => {
                if let (Some(line), Some(column)) = (line, column) {
                    write!(f, "line {line} column {column}: ")?;
                }
                if path.is_empty() || path == "." {
                    write!(f, "{message}")
                } else {
                    write!(f, "{path}: {message}")
                }
            }
            FileError::Kind { path } => write!(
                f,
                "{path}: set exactly one of container, vm, volume, disk or network"
            ),
            FileError::TooLong { path, max } => write!(f, "{path}: longer than {max}"),
            FileError::SecretWithoutSealFor { path } => write!(
                f,
                "{path}: a secret needs the contract's owner and node to be sealed for"
            ),
            FileError::BadSealedValue { path } => write!(f, "{path}: sealed value is not hex"),
            FileError::Seal { path, source } => write!(f, "{path}: {source}"),
            FileError::NotText { path } => write!(f, "{path}: not UTF-8"),
            FileError::NoSubnet { path } => write!(
                f,
                "{path}: no subnet for this node: give one, or let `zosctl apply` pick a free one"
            ),
        }
    }
}

impl std::error::Error for FileError {}

impl DeploymentFile {
    /// Reads YAML. Errors name the field path, the line and the column.
    pub fn from_yaml(text: &str) -> Result<DeploymentFile, FileError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let location = inner.location();
            let message = strip_location(&inner.to_string());
            FileError::Parse {
                path,
                line: location.as_ref().map(|l| l.line()),
                column: location.as_ref().map(|l| l.column()),
                message,
            }
        })
    }

    /// Reads JSON. Errors name the field path, the line and the column.
    pub fn from_json(text: &str) -> Result<DeploymentFile, FileError> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            FileError::Parse {
                path,
                line: Some(inner.line()),
                column: Some(inner.column()),
                message: strip_location(&inner.to_string()),
            }
        })
    }

    /// Reads YAML or JSON (JSON is YAML, but JSON's own parser gives better errors).
    pub fn from_str_any(text: &str) -> Result<DeploymentFile, FileError> {
        if text.trim_start().starts_with('{') {
            DeploymentFile::from_json(text)
        } else {
            DeploymentFile::from_yaml(text)
        }
    }

    /// Writes YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("the file types serialize to YAML; qed")
    }

    /// Writes JSON, pretty.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the file types serialize to JSON; qed")
    }

    /// The canonical form. `secret:` values are sealed for `seal_for` (to its node's key, bound
    /// to its owner and to the workload and variable they are set in); without it they are an
    /// error. The result is not yet validated: see [`crate::validate`].
    pub fn into_deployment(&self, seal_for: Option<&SealFor>) -> Result<Deployment, FileError> {
        let workloads = self
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| w.to_workload(&format!("workloads[{i}]"), seal_for))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Deployment {
            version: self.version,
            description: bounded(self.description.as_bytes().to_vec(), "description")?,
            workloads: bounded(workloads, "workloads")?,
        })
    }

    /// The user-facing form of a canonical deployment; sealed values stay sealed.
    pub fn from_deployment(d: &Deployment) -> Result<DeploymentFile, FileError> {
        Ok(DeploymentFile {
            version: d.version,
            description: text(&d.description, "description")?,
            workloads: d
                .workloads
                .iter()
                .enumerate()
                .map(|(i, w)| WorkloadFile::from_workload(w, &format!("workloads[{i}]")))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// serde_yaml and serde_json append "at line L column C"; the location is reported on its own.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn bounded<T, S: bounded_collections::Get<u32>>(
    v: Vec<T>,
    path: &str,
) -> Result<BoundedVec<T, S>, FileError> {
    BoundedVec::try_from(v).map_err(|_| FileError::TooLong {
        path: path.to_string(),
        max: S::get(),
    })
}

fn bounded_str<S: bounded_collections::Get<u32>>(
    s: &str,
    path: &str,
) -> Result<BoundedVec<u8, S>, FileError> {
    bounded(s.as_bytes().to_vec(), path)
}

fn bounded_strs<S: bounded_collections::Get<u32>, T: bounded_collections::Get<u32>>(
    items: &[String],
    path: &str,
) -> Result<BoundedVec<BoundedVec<u8, T>, S>, FileError> {
    let items = items
        .iter()
        .enumerate()
        .map(|(i, s)| bounded_str(s, &format!("{path}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    bounded(items, path)
}

fn text(bytes: &[u8], path: &str) -> Result<String, FileError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| FileError::NotText {
        path: path.to_string(),
    })
}

fn texts<B: AsRef<[u8]>>(items: &[B], path: &str) -> Result<Vec<String>, FileError> {
    items
        .iter()
        .enumerate()
        .map(|(i, b)| text(b.as_ref(), &format!("{path}[{i}]")))
        .collect()
}

fn to_env(
    env: &IndexMap<String, EnvFile>,
    path: &str,
    seal_for: Option<&SealFor>,
    workload: &str,
) -> Result<model::Env, FileError> {
    let vars = env
        .iter()
        .map(|(key, value)| {
            let path = format!("{path}.{key}");
            let value = match value {
                EnvFile::Plain(v) => EnvValue::Plain(bounded_str(v, &path)?),
                EnvFile::Secret { secret } => {
                    let to = seal_for
                        .ok_or_else(|| FileError::SecretWithoutSealFor { path: path.clone() })?;
                    let context = to.context(workload.as_bytes(), key.as_bytes());
                    EnvValue::Sealed(sealed::seal(&context, secret.as_bytes()).map_err(
                        |source| FileError::Seal {
                            path: path.clone(),
                            source,
                        },
                    )?)
                }
                EnvFile::Sealed { sealed } => {
                    let bytes = hex::decode(sealed)
                        .map_err(|_| FileError::BadSealedValue { path: path.clone() })?;
                    EnvValue::Sealed(bounded(bytes, &path)?)
                }
            };
            Ok(model::EnvVar {
                key: bounded_str(key, &path)?,
                value,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    bounded(vars, path)
}

fn from_env(env: &model::Env, path: &str) -> Result<IndexMap<String, EnvFile>, FileError> {
    env.iter()
        .map(|var| {
            let key = text(&var.key, path)?;
            let value = match &var.value {
                EnvValue::Plain(v) => EnvFile::Plain(text(v, &format!("{path}.{key}"))?),
                EnvValue::Sealed(s) => EnvFile::Sealed {
                    sealed: hex::encode(s),
                },
            };
            Ok((key, value))
        })
        .collect()
}

fn to_attachment(a: &AttachmentFile, path: &str) -> Result<model::NetworkAttachment, FileError> {
    Ok(model::NetworkAttachment {
        network: bounded_str(&a.name, &format!("{path}.name"))?,
        ip: a.ip.map(|ip| ip.octets()),
    })
}

fn from_attachment(a: &model::NetworkAttachment, path: &str) -> Result<AttachmentFile, FileError> {
    Ok(AttachmentFile {
        name: text(&a.network, &format!("{path}.name"))?,
        ip: a.ip.map(Ipv4Addr::from),
    })
}

impl WorkloadFile {
    fn to_workload(
        &self,
        path: &str,
        seal_for: Option<&SealFor>,
    ) -> Result<model::Workload, FileError> {
        let kinds = [
            self.container.is_some(),
            self.vm.is_some(),
            self.volume.is_some(),
            self.disk.is_some(),
            self.network.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(FileError::Kind {
                path: path.to_string(),
            });
        }
        let spec = if let Some(c) = &self.container {
            let p = format!("{path}.container");
            WorkloadSpec::Container(model::Container {
                image: c.image.0.clone(),
                entrypoint: bounded_strs(&c.entrypoint, &format!("{p}.entrypoint"))?,
                args: bounded_strs(&c.args, &format!("{p}.args"))?,
                env: to_env(&c.env, &format!("{p}.env"), seal_for, &self.name)?,
                workdir: c
                    .workdir
                    .as_deref()
                    .map(|w| bounded_str(w, &format!("{p}.workdir")))
                    .transpose()?,
                cpu_millis: c.cpu.0,
                memory: c.memory.0,
                rootfs_size: c.rootfs.0,
                mounts: bounded(
                    c.mounts
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            Ok(model::Mount {
                                volume: bounded_str(&m.volume, &format!("{p}.mounts[{i}].volume"))?,
                                path: bounded_str(&m.path, &format!("{p}.mounts[{i}].path"))?,
                                read_only: m.read_only,
                            })
                        })
                        .collect::<Result<Vec<_>, FileError>>()?,
                    &format!("{p}.mounts"),
                )?,
                network: c
                    .network
                    .as_ref()
                    .map(|a| to_attachment(a, &format!("{p}.network")))
                    .transpose()?,
                restart: match c.restart {
                    RestartFile::Always => model::RestartPolicy::Always,
                    RestartFile::OnFailure => model::RestartPolicy::OnFailure,
                    RestartFile::Never => model::RestartPolicy::Never,
                },
            })
        } else if let Some(vm) = &self.vm {
            let p = format!("{path}.vm");
            WorkloadSpec::VirtualMachine(model::VirtualMachine {
                image: vm.image.0.clone(),
                kernel: vm.kernel.as_ref().map(|k| k.0.clone()),
                vcpus: vm.vcpus,
                memory: vm.memory.0,
                disks: bounded_strs(&vm.disks, &format!("{p}.disks"))?,
                network: vm
                    .network
                    .as_ref()
                    .map(|a| to_attachment(a, &format!("{p}.network")))
                    .transpose()?,
                ssh_keys: bounded_strs(&vm.ssh_keys, &format!("{p}.ssh_keys"))?,
                env: to_env(&vm.env, &format!("{p}.env"), seal_for, &self.name)?,
            })
        } else if let Some(v) = &self.volume {
            WorkloadSpec::Volume(model::Volume { size: v.size.0 })
        } else if let Some(d) = &self.disk {
            WorkloadSpec::Disk(model::Disk { size: d.size.0 })
        } else {
            let n = self.network.as_ref().expect("exactly one kind is set; qed");
            let subnet = n.subnet.as_ref().ok_or_else(|| FileError::NoSubnet {
                path: format!("{path}.network.subnet"),
            })?;
            WorkloadSpec::Network(model::Network {
                range: n.range.0,
                subnet: subnet.0,
                egress: n.egress,
            })
        };
        Ok(model::Workload {
            name: bounded_str(&self.name, &format!("{path}.name"))?,
            version: self.version,
            spec,
        })
    }

    fn from_workload(w: &model::Workload, path: &str) -> Result<WorkloadFile, FileError> {
        let mut file = WorkloadFile {
            name: text(&w.name, &format!("{path}.name"))?,
            version: w.version,
            container: None,
            vm: None,
            volume: None,
            disk: None,
            network: None,
        };
        match &w.spec {
            WorkloadSpec::Container(c) => {
                let p = format!("{path}.container");
                file.container = Some(ContainerFile {
                    image: ImageFile(c.image.clone()),
                    entrypoint: texts(&c.entrypoint, &format!("{p}.entrypoint"))?,
                    args: texts(&c.args, &format!("{p}.args"))?,
                    env: from_env(&c.env, &format!("{p}.env"))?,
                    workdir: c
                        .workdir
                        .as_ref()
                        .map(|w| text(w, &format!("{p}.workdir")))
                        .transpose()?,
                    cpu: Cpu(c.cpu_millis),
                    memory: Size(c.memory),
                    rootfs: Size(c.rootfs_size),
                    mounts: c
                        .mounts
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            Ok(MountFile {
                                volume: text(&m.volume, &format!("{p}.mounts[{i}].volume"))?,
                                path: text(&m.path, &format!("{p}.mounts[{i}].path"))?,
                                read_only: m.read_only,
                            })
                        })
                        .collect::<Result<_, FileError>>()?,
                    network: c
                        .network
                        .as_ref()
                        .map(|a| from_attachment(a, &format!("{p}.network")))
                        .transpose()?,
                    restart: match c.restart {
                        model::RestartPolicy::Always => RestartFile::Always,
                        model::RestartPolicy::OnFailure => RestartFile::OnFailure,
                        model::RestartPolicy::Never => RestartFile::Never,
                    },
                })
            }
            WorkloadSpec::VirtualMachine(vm) => {
                let p = format!("{path}.vm");
                file.vm = Some(VmFile {
                    image: ImageFile(vm.image.clone()),
                    kernel: vm.kernel.clone().map(ImageFile),
                    vcpus: vm.vcpus,
                    memory: Size(vm.memory),
                    disks: texts(&vm.disks, &format!("{p}.disks"))?,
                    network: vm
                        .network
                        .as_ref()
                        .map(|a| from_attachment(a, &format!("{p}.network")))
                        .transpose()?,
                    ssh_keys: texts(&vm.ssh_keys, &format!("{p}.ssh_keys"))?,
                    env: from_env(&vm.env, &format!("{p}.env"))?,
                })
            }
            WorkloadSpec::Volume(v) => file.volume = Some(VolumeFile { size: Size(v.size) }),
            WorkloadSpec::Disk(d) => file.disk = Some(DiskFile { size: Size(d.size) }),
            WorkloadSpec::Network(n) => {
                file.network = Some(NetworkFile {
                    range: CidrFile(n.range),
                    subnet: Some(CidrFile(n.subnet)),
                    egress: n.egress,
                })
            }
        }
        Ok(file)
    }
}

impl ImageFile {
    /// Parses `host[:port]/path@sha256:<64 hex>`; a tag is refused.
    pub fn parse(s: &str) -> Result<ImageFile, String> {
        let Some((repository, digest)) = s.rsplit_once('@') else {
            return Err(format!(
                "{s:?} has no digest: pin the image as repository@sha256:<64 hex digits>"
            ));
        };
        let Some(hex_digest) = digest.strip_prefix("sha256:") else {
            return Err(format!("{s:?}: only sha256 digests are accepted"));
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut bytes)
            .map_err(|_| format!("{s:?}: the digest must be 64 hex digits"))?;
        let last = repository.rsplit('/').next().unwrap_or(repository);
        if repository.contains('/') && last.contains(':') {
            return Err(format!(
                "{s:?}: tags are not accepted, the digest alone pins the image"
            ));
        }
        if !crate::validate::is_repository(repository.as_bytes()) {
            return Err(format!(
                "{repository:?} is not a repository: host[:port]/path with lowercase path components"
            ));
        }
        let repository = BoundedVec::try_from(repository.as_bytes().to_vec())
            .map_err(|_| format!("{repository:?} is too long"))?;
        Ok(ImageFile(model::ImageRef {
            repository,
            digest: bytes,
        }))
    }
}

impl core::fmt::Display for ImageFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}@sha256:{}",
            String::from_utf8_lossy(&self.0.repository),
            hex::encode(self.0.digest)
        )
    }
}

impl CidrFile {
    /// Parses `a.b.c.d/prefix`.
    pub fn parse(s: &str) -> Result<CidrFile, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR like 10.1.0.0/16"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{prefix:?} is not a prefix length (0 to 32)"))?;
        Ok(CidrFile(model::Ipv4Cidr {
            addr: addr.octets(),
            prefix,
        }))
    }
}

macro_rules! string_serde {
    ($ty:ty, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        <$ty>::parse(v).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

string_serde!(
    ImageFile,
    "an image such as 127.0.0.1:5000/app@sha256:<64 hex digits>"
);
string_serde!(CidrFile, "a CIDR such as 10.1.0.0/16");

impl core::fmt::Display for CidrFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}
