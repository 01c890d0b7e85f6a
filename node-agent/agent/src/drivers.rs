//! The engine's [`Host`] on this machine: containers (youki's libcontainer, through `zos-host`),
//! volumes (loop-mounted ext4 files), and root filesystems from the image store, checked file by
//! file at every launch.
//!
//! Names are derived from the contract id and the workload name (`zos-<contract>-<name>`), so a
//! restarted agent, or one whose database was deleted, finds everything again.
//!
//! Images are pulled in the background ([`Pulls`]): applying a container whose image the store
//! does not have starts its pull, or joins the one under way, and returns at once
//! ([`Applied::Pending`]), so that a slow registry never holds a reconcile worker.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use zos_chain_client::keys::NodeKey;
use zos_contracts::{
    sealed::SealFor, Container, Deployment, EnvValue, Workload, WorkloadKind, WorkloadSpec,
};
use zos_host::{
    container::{BindMount, ContainerSpec, Containers, RunState as HostState},
    volume::Volumes,
    WorkloadId,
};
use zos_image_store::{Digest, ImageRecord, ImageReference, PullErrorKind, RootfsError, Store};

use crate::{
    engine::{backoff, Applied, ApplyError, Host, Observed, RunState},
    metering::Sample,
};

/// How long a container has to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The label holding the workload version a container was made from.
const VERSION_LABEL: &str = "zos.version";

/// A contract waiting for a pull is looked at again this soon even if nobody wakes it.
const PULL_RECHECK: Duration = Duration::from_secs(5);
/// First and longest wait before an image whose pull failed is pulled again.
const PULL_RETRY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(120));

/// See the module documentation.
pub struct HostDrivers {
    images: Store,
    containers: Containers,
    volumes: Volumes,
    key: NodeKey,
    allowed_registries: Vec<String>,
    pulls: Pulls,
}

/// Called with a contract whose image pull ended (pulled, or failed).
pub type PullWaker = Arc<dyn Fn(u64) + Send + Sync>;

/// Image pulls, each in a task of its own on the agent's runtime, one per image however many
/// workloads wait for it. When a pull ends, the contracts that wait for it are woken (see
/// [`HostDrivers::on_pull_done`]). A failed pull is remembered, and its kind reported by every
/// apply that needs the image, until its retry time (jittered exponential backoff, 2 s … 120 s
/// per image): a failing registry is not asked again at every pass.
pub struct Pulls {
    store: Store,
    runtime: tokio::runtime::Handle,
    state: Arc<Mutex<HashMap<Digest, PullState>>>,
    waker: Arc<Mutex<Option<PullWaker>>>,
}

enum PullState {
    /// Under way; the contracts that wait for it, and how many pulls failed before this one.
    Running {
        waiting: BTreeSet<u64>,
        failures: u32,
    },
    /// The last pull failed: its kind, and when to try again.
    Failed {
        kind: PullErrorKind,
        failures: u32,
        retry_at: Instant,
    },
}

/// Where an image a workload needs stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Being pulled.
    Pulling,
    /// The last pull failed, and the next one waits for its retry time.
    Failed(PullErrorKind),
}

impl Pulls {
    /// Pulls into `store`, on `runtime`.
    pub fn new(store: Store, runtime: tokio::runtime::Handle) -> Pulls {
        Pulls {
            store,
            runtime,
            state: Arc::default(),
            waker: Arc::default(),
        }
    }

    /// Has `waker` called with each waiting contract when a pull ends.
    pub fn on_done(&self, waker: PullWaker) {
        *self.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker);
    }

    /// Contract `contract` needs `reference`, which the store does not have: starts its pull
    /// unless one is under way or a failed one waits for its retry time. Never waits for the
    /// registry.
    pub fn request(&self, reference: &ImageReference, contract: u64) -> PullStatus {
        let digest = reference.digest().clone();
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Failures nobody asked about for an hour are forgotten.
        state.retain(|_, s| match s {
            PullState::Failed { retry_at, .. } => {
                now.saturating_duration_since(*retry_at) < Duration::from_secs(3600)
            }
            PullState::Running { .. } => true,
        });
        let failures = match state.get_mut(&digest) {
            Some(PullState::Running { waiting, .. }) => {
                waiting.insert(contract);
                return PullStatus::Pulling;
            }
            Some(PullState::Failed { kind, retry_at, .. }) if now < *retry_at => {
                return PullStatus::Failed(*kind);
            }
            Some(PullState::Failed { failures, .. }) => *failures,
            None => 0,
        };
        state.insert(
            digest.clone(),
            PullState::Running {
                waiting: BTreeSet::from([contract]),
                failures,
            },
        );
        drop(state);
        let (store, reference, state, waker) = (
            self.store.clone(),
            reference.clone(),
            self.state.clone(),
            self.waker.clone(),
        );
        tracing::info!(image = %reference, "pulling");
        self.runtime.spawn(async move {
            let started = Instant::now();
            // In a task of its own, so that even a panic ends the pull as a failure.
            let pulled = {
                let reference = reference.clone();
                tokio::spawn(async move { store.pull(&reference).await }).await
            };
            let failed = match pulled {
                Ok(Ok(_)) => {
                    tracing::info!(image = %reference, elapsed_ms = started.elapsed().as_millis() as u64, "pulled");
                    None
                }
                Ok(Err(e)) => {
                    // The whole story stays here; the chain gets the kind only.
                    tracing::warn!(image = %reference, kind = %e.kind(), error = chain_of(&e), "pull failed");
                    Some(e.kind())
                }
                Err(e) => {
                    tracing::error!(image = %reference, error = %e, "pull task failed");
                    Some(PullErrorKind::NodeError)
                }
            };
            let waiting = {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let (waiting, failures) = match state.remove(&digest) {
                    Some(PullState::Running { waiting, failures }) => (waiting, failures),
                    _ => (BTreeSet::new(), 0),
                };
                if let Some(kind) = failed {
                    state.insert(
                        digest,
                        PullState::Failed {
                            kind,
                            failures: failures + 1,
                            retry_at: Instant::now() + backoff(failures, PULL_RETRY),
                        },
                    );
                }
                waiting
            };
            let waker = waker.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(wake) = waker {
                for contract in waiting {
                    wake(contract);
                }
            }
        });
        PullStatus::Pulling
    }
}

impl HostDrivers {
    /// Drivers over `images`, `containers` and `volumes`; `key` opens sealed secrets.
    pub fn new(
        images: Store,
        containers: Containers,
        volumes: Volumes,
        key: NodeKey,
        allowed_registries: Vec<String>,
        runtime: tokio::runtime::Handle,
    ) -> HostDrivers {
        HostDrivers {
            pulls: Pulls::new(images.clone(), runtime),
            images,
            containers,
            volumes,
            key,
            allowed_registries,
        }
    }

    /// Has `waker` called with each contract that waited for an image pull when it ends, so
    /// that the engine looks at the contract again at once.
    pub fn on_pull_done(&self, waker: PullWaker) {
        self.pulls.on_done(waker);
    }

    /// The image store.
    pub fn images(&self) -> &Store {
        &self.images
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

    fn start_container(
        &self,
        id: &WorkloadId,
        owner: &[u8; 32],
        w: &Workload,
        c: &Container,
    ) -> Result<Applied, ApplyError> {
        let err = |what: &str, e: &dyn std::fmt::Display| ApplyError(format!("{what}: {e}"));
        let repository = String::from_utf8_lossy(&c.image.repository).into_owned();
        let registry = repository.split('/').next().unwrap_or_default().to_string();
        if !self.allowed_registries.is_empty() && !self.allowed_registries.contains(&registry) {
            return Err(ApplyError(format!(
                "registry {registry} is not one this node pulls from ({})",
                self.allowed_registries.join(", ")
            )));
        }
        let reference = format!("{repository}@sha256:{}", hex::encode(c.image.digest));
        let parsed = ImageReference::parse(&reference).map_err(|e| err("image", &e))?;
        let digest = Digest::parse(&format!("sha256:{}", hex::encode(c.image.digest)))
            .map_err(|e| err("image", &e))?;
        let record = match self
            .images
            .image(&digest)
            .map_err(|e| err("image store", &e))?
        {
            Some(r) => r,
            // The chain hears the kind of failure only, never the registry's words.
            None => {
                return match self.pulls.request(&parsed, id.contract) {
                    PullStatus::Pulling => Ok(Applied::Pending {
                        waiting_for: format!("pulling {reference}"),
                        recheck: PULL_RECHECK,
                    }),
                    PullStatus::Failed(kind) => {
                        Err(ApplyError(format!("pulling {reference}: {kind}")))
                    }
                }
            }
        };

        // What ran under this name before goes; a new version also gets a fresh root filesystem.
        let wid = id.container_id();
        if let Some(old) = self
            .containers
            .status(id)
            .map_err(|e| err("container", &e))?
        {
            let same_version = old.labels.get(VERSION_LABEL) == Some(&w.version.to_string());
            self.containers
                .remove(id, STOP_GRACE)
                .map_err(|e| err("removing the previous container", &e))?;
            if !same_version {
                self.images
                    .remove_rootfs(&wid)
                    .map_err(|e| err("removing the previous root filesystem", &e))?;
            }
        }
        // Its writes go to a filesystem of the contract's `rootfs_size`, and nowhere else.
        let rootfs = match self
            .images
            .prepare_rootfs_sized(&digest, &wid, c.rootfs_size)
        {
            Err(RootfsError::ImageMismatch { .. } | RootfsError::SizeMismatch { .. }) => {
                self.images
                    .remove_rootfs(&wid)
                    .map_err(|e| err("removing the previous root filesystem", &e))?;
                self.images
                    .prepare_rootfs_sized(&digest, &wid, c.rootfs_size)
            }
            other => other,
        }
        .map_err(|e| ApplyError(format!("image {reference}: {}", chain_of(&e))))?;

        let spec = ContainerSpec {
            id: id.clone(),
            rootfs: rootfs.path(),
            args: command(c, &record)?,
            env: env(&record, contract_env(&self.key, owner, w, c)?),
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
                    source: self.volumes.path(&WorkloadId {
                        contract: id.contract,
                        name: String::from_utf8_lossy(&m.volume).into_owned(),
                    }),
                    target: String::from_utf8_lossy(&m.path).into_owned(),
                    read_only: m.read_only,
                })
                .collect(),
            labels: BTreeMap::from([(VERSION_LABEL.to_string(), w.version.to_string())]),
        };
        self.containers
            .start(&spec)
            .map_err(|e| ApplyError(format!("starting: {}", chain_of(&e))))?;
        Ok(Applied::Done)
    }

    fn workload_ids(&self, contract: Option<u64>) -> anyhow::Result<BTreeSet<(u64, String)>> {
        let mut ids = BTreeSet::new();
        for id in self
            .containers
            .list()?
            .into_iter()
            .chain(self.volumes.list()?)
        {
            if contract.is_none_or(|c| c == id.contract) {
                ids.insert((id.contract, id.name));
            }
        }
        Ok(ids)
    }

    /// Root filesystems whose container is gone (a crash between the two).
    fn rootfs_leases(&self, contract: Option<u64>) -> anyhow::Result<Vec<WorkloadId>> {
        Ok(self
            .images
            .leases()?
            .into_iter()
            .filter_map(|l| WorkloadId::parse_container_id(&l.workload))
            .filter(|id| contract.is_none_or(|c| c == id.contract))
            .collect())
    }
}

/// The contract's environment for container workload `w`. A sealed value is opened with the node's
/// key only if it was sealed for this contract's owner, this node, this workload and this
/// variable: a value copied from another contract is refused, and its plaintext goes nowhere.
fn contract_env(
    key: &NodeKey,
    owner: &[u8; 32],
    w: &Workload,
    c: &Container,
) -> Result<Vec<(String, String)>, ApplyError> {
    let here = SealFor {
        owner: *owner,
        node: key.public(),
    };
    c.env
        .iter()
        .map(|var| {
            let name = String::from_utf8_lossy(&var.key).into_owned();
            let value = match &var.value {
                EnvValue::Plain(v) => String::from_utf8_lossy(v).into_owned(),
                EnvValue::Sealed(sealed) => {
                    let context = here.context(&w.name, &var.key);
                    let plain = zos_contracts::sealed::open(key.signing_key(), &context, sealed)
                        .map_err(|e| {
                            ApplyError(format!("env {name}: cannot open the sealed value: {e}"))
                        })?;
                    String::from_utf8(plain).map_err(|_| {
                        ApplyError(format!("env {name}: the sealed value is not UTF-8 text"))
                    })?
                }
            };
            Ok((name, value))
        })
        .collect()
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
fn command(c: &Container, record: &ImageRecord) -> Result<Vec<String>, ApplyError> {
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
        return Err(ApplyError(
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

/// An error and its causes, on one line.
fn chain_of(e: &(dyn std::error::Error + 'static)) -> String {
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

impl Host for HostDrivers {
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>> {
        let mut ids: BTreeSet<u64> = self
            .workload_ids(None)?
            .into_iter()
            .map(|(c, _)| c)
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
        for id in self.volumes.list()? {
            if id.contract == contract {
                out.push(Observed {
                    name: id.name,
                    kind: WorkloadKind::Volume,
                    version: None,
                    state: RunState::Present,
                });
            }
        }
        Ok(out)
    }

    fn apply(
        &self,
        contract: u64,
        owner: &[u8; 32],
        workload: &Workload,
        _deployment: &Deployment,
    ) -> Result<Applied, ApplyError> {
        let id = WorkloadId {
            contract,
            name: String::from_utf8_lossy(&workload.name).into_owned(),
        };
        match &workload.spec {
            WorkloadSpec::Volume(v) => self
                .volumes
                .ensure(&id, v.size)
                .map(|_| Applied::Done)
                .map_err(|e| ApplyError(format!("volume: {}", chain_of(&e)))),
            WorkloadSpec::Container(c) => self.start_container(&id, owner, workload, c),
            other => Err(ApplyError(format!(
                "{} workloads are not supported by this node yet",
                other.kind()
            ))),
        }
    }

    fn remove(&self, contract: u64, name: &str, kind: WorkloadKind) -> anyhow::Result<()> {
        let id = WorkloadId {
            contract,
            name: name.to_string(),
        };
        match kind {
            WorkloadKind::Container => {
                self.containers.remove(&id, STOP_GRACE)?;
                self.images.remove_rootfs(&id.container_id())?;
            }
            WorkloadKind::Volume => self.volumes.remove(&id)?,
            _ => {}
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
            self.images.remove_rootfs(&id.container_id())?;
        }
        for id in self.volumes.list()? {
            if id.contract == contract {
                self.volumes.remove(&id)?;
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

/// Where the agent keeps what: images and root filesystems, volumes, container state.
pub struct Layout {
    /// The image store.
    pub images: PathBuf,
    /// Volumes.
    pub volumes: PathBuf,
    /// Container runtime state.
    pub containers: PathBuf,
}

impl Layout {
    /// The layout under the configured directories.
    pub fn new(storage_dir: &std::path::Path, run_dir: &std::path::Path) -> Layout {
        Layout {
            images: storage_dir.join("images"),
            volumes: storage_dir.join("volumes"),
            containers: run_dir.join("containers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use zos_contracts::file::DeploymentFile;

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
    ) -> Result<Vec<(String, String)>, ApplyError> {
        let WorkloadSpec::Container(c) = &w.spec else {
            panic!("a container")
        };
        contract_env(key, owner, w, c)
    }

    /// A "registry" that answers 404 to everything, counting the requests.
    async fn not_found_registry() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"secret registry words"}]}"#;
                    let answer = format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        (addr, count)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_pull_per_image_wakes_its_waiters_and_a_failure_waits_for_its_retry() {
        let (addr, requests) = not_found_registry().await;
        let dir = tempfile::tempdir().unwrap();
        let pulls = Pulls::new(
            Store::open(dir.path()).unwrap(),
            tokio::runtime::Handle::current(),
        );
        let woken = Arc::new(Mutex::new(BTreeSet::new()));
        let w = woken.clone();
        pulls.on_done(Arc::new(move |c| {
            w.lock().unwrap().insert(c);
        }));
        let reference = ImageReference::new(addr, "app", Digest::of(b"app"));

        assert_eq!(pulls.request(&reference, 1), PullStatus::Pulling);
        assert_eq!(pulls.request(&reference, 2), PullStatus::Pulling);
        let deadline = Instant::now() + Duration::from_secs(10);
        while woken.lock().unwrap().len() < 2 {
            assert!(Instant::now() < deadline, "not woken");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*woken.lock().unwrap(), BTreeSet::from([1, 2]));
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Until its retry time (at least 1 s), the failure is the answer; the registry is not
        // asked again.
        assert_eq!(
            pulls.request(&reference, 3),
            PullStatus::Failed(PullErrorKind::NotFound)
        );
        assert_eq!(PullErrorKind::NotFound.to_string(), "not found");
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);

        // After it, the image is pulled again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pulls.request(&reference, 3) != PullStatus::Pulling {
            assert!(Instant::now() < deadline, "never retried");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while requests.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "not asked again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
            e.0,
            "env TOKEN: cannot open the sealed value: sealed for another owner"
        );
        assert!(!e.0.contains("s3cr3t"));

        // The owner's own other workload.
        let elsewhere = workload("web", &copied, &sealed_for_victim);
        assert_eq!(
            env_of(&node, &victim, &elsewhere).unwrap_err().0,
            "env TOKEN: cannot open the sealed value: sealed for another workload"
        );

        // Another node.
        let other = NodeKey::generate();
        assert_eq!(
            env_of(&other, &victim, &original).unwrap_err().0,
            "env TOKEN: cannot open the sealed value: sealed value was not made for this node's key, or was altered"
        );
    }
}
