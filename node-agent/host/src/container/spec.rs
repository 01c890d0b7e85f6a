//! The OCI runtime spec of a container, and its bundle on disk.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, MountBuilder, Process, RootBuilder, Spec,
};

use super::{ContainerError, ContainerSpec};

/// `PATH` for processes whose environment does not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The most processes (and threads) one container may have.
pub const PIDS_LIMIT: i64 = 4096;
/// The CFS period; the quota is `cpu_millis * 100` per period.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The cgroup of a container in every hierarchy, relative to the hierarchy's root.
pub fn cgroup_path(container_id: &str) -> PathBuf {
    PathBuf::from(format!("/zos/{container_id}"))
}

/// Checks what the chain cannot have checked (paths on this host) and what it should have.
pub(super) fn validate(spec: &ContainerSpec) -> Result<(), String> {
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return Err("args: the command is empty".into());
    }
    if !spec.rootfs.is_absolute() {
        return Err(format!("rootfs {:?} is not absolute", spec.rootfs));
    }
    if !spec.rootfs.is_dir() {
        return Err(format!("rootfs {:?} is not a directory", spec.rootfs));
    }
    for (k, _) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(format!("env: invalid variable name {k:?}"));
        }
    }
    if let Some(w) = &spec.workdir {
        if !w.starts_with('/') {
            return Err(format!("workdir {w:?} is not absolute"));
        }
    }
    for m in &spec.mounts {
        if !m.target.starts_with('/') || m.target == "/" {
            return Err(format!(
                "mount target {:?} is not an absolute path below /",
                m.target
            ));
        }
        if !m.source.is_absolute() || !m.source.exists() {
            return Err(format!("mount source {:?} does not exist", m.source));
        }
    }
    Ok(())
}

/// Docker's default capability set: what images that run as root expect (change owners, drop to
/// another user, bind low ports), without the administrative ones.
fn default_capabilities() -> Capabilities {
    [
        Capability::AuditWrite,
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fowner,
        Capability::Fsetid,
        Capability::Kill,
        Capability::Mknod,
        Capability::NetBindService,
        Capability::NetRaw,
        Capability::Setfcap,
        Capability::Setgid,
        Capability::Setpcap,
        Capability::Setuid,
        Capability::SysChroot,
    ]
    .into_iter()
    .collect()
}

/// The runtime spec of `spec`: oci-spec's defaults (namespaces pid, network, ipc, uts, mount,
/// cgroup; /proc, /dev, /sys mounts; masked and read-only paths) plus the workload's process,
/// limits and volumes.
pub fn oci_spec(spec: &ContainerSpec) -> Result<Spec, ContainerError> {
    let cid = spec.id.container_id();
    let invalid = |e: oci_spec::OciSpecError| ContainerError::InvalidSpec {
        container: cid.clone(),
        reason: e.to_string(),
    };

    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    let caps = default_capabilities();
    let mut process = Process::default();
    process
        .set_terminal(Some(false))
        .set_args(Some(spec.args.clone()))
        .set_env(Some(env))
        .set_cwd(PathBuf::from(spec.workdir.as_deref().unwrap_or("/")))
        .set_no_new_privileges(Some(true))
        .set_capabilities(Some(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()
                .map_err(invalid)?,
        ));

    let mut mounts = oci_spec::runtime::get_default_mounts();
    for m in &spec.mounts {
        let mut options = vec![
            "rbind".to_string(),
            "rprivate".into(),
            "nosuid".into(),
            "nodev".into(),
        ];
        if m.read_only {
            options.push("ro".into());
        }
        mounts.push(
            MountBuilder::default()
                .destination(PathBuf::from(&m.target))
                .typ("bind")
                .source(m.source.clone())
                .options(options)
                .build()
                .map_err(invalid)?,
        );
    }

    let mut resources = LinuxResourcesBuilder::default()
        // Deny every device, then libcgroups allows the standard ones (null, zero, tty, ...).
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(invalid)?])
        .pids(
            LinuxPidsBuilder::default()
                .limit(PIDS_LIMIT)
                .build()
                .map_err(invalid)?,
        );
    if spec.memory > 0 {
        let limit = i64::try_from(spec.memory).unwrap_or(i64::MAX);
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(invalid)?,
        );
    }
    if spec.cpu_millis > 0 {
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(i64::from(spec.cpu_millis) * 100)
                .period(CPU_PERIOD_US)
                .build()
                .map_err(invalid)?,
        );
    }
    let defaults = oci_spec::runtime::Linux::default();
    let mut linux = LinuxBuilder::default()
        .cgroups_path(cgroup_path(&cid))
        .resources(resources.build().map_err(invalid)?);
    if let Some(ns) = defaults.namespaces() {
        let mut ns = ns.clone();
        if let Some(path) = &spec.network_namespace {
            for n in ns
                .iter_mut()
                .filter(|n| n.typ() == LinuxNamespaceType::Network)
            {
                n.set_path(Some(path.clone()));
            }
        }
        linux = linux.namespaces(ns);
    }
    if let Some(p) = defaults.masked_paths() {
        linux = linux.masked_paths(p.clone());
    }
    if let Some(p) = defaults.readonly_paths() {
        linux = linux.readonly_paths(p.clone());
    }

    let mut oci = Spec::default();
    oci.set_hostname(Some(spec.id.name.clone()))
        .set_root(Some(
            RootBuilder::default()
                .path(spec.rootfs.clone())
                .readonly(false)
                .build()
                .map_err(invalid)?,
        ))
        .set_process(Some(process))
        .set_mounts(Some(mounts))
        .set_annotations(Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ))
        .set_linux(Some(linux.build().map_err(invalid)?));
    Ok(oci)
}

/// Writes `dir/config.json` for `spec` (the rootfs stays where it is: the spec names its absolute
/// path), the very bundle the shim runs. It holds the environment, secrets opened: `dir` is made
/// 0700 and the file 0600.
pub fn write_bundle(spec: &ContainerSpec, dir: &Path) -> Result<(), ContainerError> {
    spec.id.validate()?;
    validate(spec).map_err(|reason| ContainerError::InvalidSpec {
        container: spec.id.container_id(),
        reason,
    })?;
    let oci = oci_spec(spec)?;
    let io = |step| {
        let (container, path) = (spec.id.container_id(), dir.to_owned());
        move |source| ContainerError::Io {
            container,
            step,
            path,
            source,
        }
    };
    crate::sys::private_dir(dir).map_err(io("create bundle dir"))?;
    let json = serde_json::to_vec_pretty(&oci).map_err(|e| io("encode config.json")(e.into()))?;
    let path = dir.join("config.json");
    crate::sys::open_private(
        &path,
        std::fs::OpenOptions::new().write(true).truncate(true),
    )
    .and_then(|mut f| f.write_all(&json))
    .map_err(io("write config.json"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use oci_spec::runtime::LinuxNamespaceType;

    use super::*;
    use crate::container::BindMount;
    use crate::WorkloadId;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: WorkloadId::new(7, "web").unwrap(),
            rootfs: PathBuf::from("/var/lib/zos/rootfs/abc"),
            args: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: vec![("FOO".into(), "a=b".into())],
            workdir: Some("/srv".into()),
            cpu_millis: 1500,
            memory: 256 << 20,
            mounts: vec![BindMount {
                source: PathBuf::from("/vol/zos-7-data"),
                target: "/data".into(),
                read_only: true,
            }],
            labels: BTreeMap::from([("version".into(), "4".into())]),
            network_namespace: None,
        }
    }

    #[test]
    fn limits_cgroup_and_process() {
        let oci = oci_spec(&spec()).unwrap();
        let linux = oci.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/zos/zos-7-web"))
        );
        let r = linux.resources().as_ref().unwrap();
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
        assert_eq!(r.memory().unwrap().limit(), Some(256 << 20));
        assert_eq!(r.pids().unwrap().limit(), 4096);
        let devices = r.devices().as_ref().unwrap();
        assert!(!devices[0].allow() && devices[0].access().as_deref() == Some("rwm"));
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        for t in [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
        ] {
            assert!(ns.contains(&t), "{t:?}");
        }
        assert!(linux.masked_paths().as_ref().is_some_and(|p| !p.is_empty()));
        assert!(linux
            .readonly_paths()
            .as_ref()
            .is_some_and(|p| !p.is_empty()));

        let p = oci.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.user().uid(), 0);
        assert_eq!(p.cwd(), Path::new("/srv"));
        assert_eq!(
            p.env().as_ref().unwrap(),
            &vec![format!("PATH={DEFAULT_PATH}"), "FOO=a=b".to_string()]
        );
        let root = oci.root().as_ref().unwrap();
        assert_eq!(root.path(), Path::new("/var/lib/zos/rootfs/abc"));
        assert_eq!(root.readonly(), Some(false));
        assert_eq!(oci.annotations().as_ref().unwrap()["version"], "4");
    }

    #[test]
    fn volumes_are_bind_mounts() {
        let oci = oci_spec(&spec()).unwrap();
        let mounts = oci.mounts().as_ref().unwrap();
        let m = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/data"))
            .unwrap();
        assert_eq!(m.typ().as_deref(), Some("bind"));
        let o = m.options().as_ref().unwrap();
        assert!(o.contains(&"rbind".to_string()) && o.contains(&"ro".to_string()));
        assert!(mounts.iter().any(|m| m.destination() == Path::new("/proc")));
    }

    #[test]
    fn no_limits_when_zero_and_path_kept() {
        let mut s = spec();
        s.cpu_millis = 0;
        s.memory = 0;
        s.env = vec![("PATH".into(), "/bin".into())];
        let oci = oci_spec(&s).unwrap();
        let r = oci.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert!(r.cpu().is_none() && r.memory().is_none());
        assert_eq!(
            oci.process().as_ref().unwrap().env().as_ref().unwrap(),
            &vec!["PATH=/bin".to_string()]
        );
    }

    #[test]
    fn validation() {
        let mut s = spec();
        s.rootfs = PathBuf::from("/");
        s.mounts.clear();
        assert_eq!(validate(&s), Ok(()));
        s.args = vec![String::new()];
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.rootfs = PathBuf::from("relative");
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.rootfs = PathBuf::from("/");
        s.mounts.clear();
        s.env = vec![("A=B".into(), "x".into())];
        assert!(validate(&s).is_err());
        s.env.clear();
        s.workdir = Some("srv".into());
        assert!(validate(&s).is_err());
    }
}
