//! The ports of the reconcile engine: what it asks of the chain (desired state) and of the host
//! (a [`Driver`] per workload kind: observed state and the changes). `crate::drivers` and
//! `crate::chain` implement them for real; the engine's tests implement them in memory.

use std::{
    collections::BTreeSet,
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};

use zos_contracts::{Deployment, Workload, WorkloadKind};

/// A contract as the node must run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredContract {
    /// Its id.
    pub id: u64,
    /// The account that owns it: its sealed values open only for this owner.
    pub owner: [u8; 32],
    /// What it asks for.
    pub deployment: Deployment,
    /// In its grace period: workloads paused, data kept.
    pub paused: bool,
}

/// What a chain endpoint says of a contract, and the finalized block it read it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAnswer {
    /// The finalized block the answer was read at.
    pub block: u64,
    /// The contract if it exists there and names this node; `None` when it was canceled,
    /// deleted, or never was, as far as that block knows.
    pub contract: Option<DesiredContract>,
}

/// Where desired state comes from.
pub trait Chain: Send + Sync + 'static {
    /// Contract `id` at the endpoint's finalized head.
    fn contract(&self, id: u64) -> impl Future<Output = anyhow::Result<ChainAnswer>> + Send;
}

/// How a workload is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// A process runs (since when).
    Running {
        /// When it started.
        since: SystemTime,
    },
    /// Frozen.
    Paused,
    /// Its process ended.
    Exited {
        /// Exit status, when it exited.
        code: Option<i32>,
        /// Signal, when it was killed.
        signal: Option<i32>,
    },
    /// Exists (a volume).
    Present,
}

/// A workload found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its name in the deployment.
    pub name: String,
    /// Its kind.
    pub kind: WorkloadKind,
    /// The workload version it was made from, when the host records one.
    pub version: Option<u32>,
    /// How it is.
    pub state: RunState,
}

/// What [`Driver::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The workload runs (or exists) as asked.
    Done,
    /// Not yet, and nothing of it changed on the host: what it needs is under way in the
    /// background (its image is being pulled). The pass goes on with the other workloads and
    /// contracts; the driver has the engine look again when that ends, and the engine looks again
    /// after `recheck` in any case.
    Pending {
        /// What it waits for, in words (for the log).
        waiting_for: String,
        /// Look again this soon at the latest.
        recheck: Duration,
    },
}

/// Why a driver could not bring a workload where it should be. The message is its owner's: it
/// is reported on chain, so it never holds a secret or a registry's or a guest's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// May work on a later try (the host is short of space, a process failed to start): the
    /// pass is retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// Fails the same way until the workload changes (a sealed value for another owner, an
    /// image with nothing to run): reported, and not tried again until the contract gives the
    /// workload a new version (or the agent restarts).
    #[error("{0}")]
    Permanent(String),
    /// Something it needs on this host is not ready (named in words, e.g. `disk data`): retried
    /// with backoff like a transient failure.
    #[error("{0} is not ready")]
    NotReady(String),
}

impl DriverError {
    /// A transient failure: `what` failed with `error`.
    pub fn transient(what: &str, error: impl std::fmt::Display) -> DriverError {
        DriverError::Transient(format!("{what}: {error}"))
    }

    /// A permanent failure: `what` failed with `error`.
    pub fn permanent(what: &str, error: impl std::fmt::Display) -> DriverError {
        DriverError::Permanent(format!("{what}: {error}"))
    }
}

/// How the host makes, finds, pauses and removes one kind of workload. Every method blocks (the
/// engine calls them on blocking threads) and is idempotent. A driver keeps nothing the host
/// does not show: a restarted agent finds everything again through [`Driver::observe`].
pub trait Driver: Send + Sync + 'static {
    /// The contracts that have a workload of this kind on the host.
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>>;
    /// The workloads of this kind contract `contract` has on the host.
    fn observe(&self, contract: u64) -> anyhow::Result<Vec<Observed>>;
    /// Makes `workload` of `deployment` (of contract `contract`, owned by `owner`) run (or exist)
    /// at its version: creates it, or replaces whatever runs under its name. Returns once it runs,
    /// or at once with [`Applied::Pending`] when what it needs takes long to get (an image pull):
    /// a slow registry must never hold a reconcile worker.
    fn apply(
        &self,
        contract: u64,
        owner: &[u8; 32],
        workload: &Workload,
        deployment: &Deployment,
    ) -> Result<Applied, DriverError>;
    /// Removes a workload of this kind and everything of it on the host.
    fn remove(&self, contract: u64, name: &str) -> anyhow::Result<()>;
    /// Removes whatever of this kind contract `contract` has left on the host, including what
    /// a crash left half made.
    fn remove_all(&self, contract: u64) -> anyhow::Result<()>;
    /// Freezes a running workload (kinds that run: [`WorkloadKind::runs`]).
    fn pause(&self, contract: u64, name: &str) -> anyhow::Result<()>;
    /// Thaws a paused workload.
    fn resume(&self, contract: u64, name: &str) -> anyhow::Result<()>;
}

/// The drivers of a node, one per kind it runs. A kind without a driver is reported
/// `unsupported` (and so not billed).
#[derive(Clone, Default)]
pub struct Drivers(Vec<(WorkloadKind, Arc<dyn Driver>)>);

impl Drivers {
    /// With `driver` for `kind` (in place of any before).
    pub fn with(mut self, kind: WorkloadKind, driver: Arc<dyn Driver>) -> Drivers {
        self.0.retain(|(k, _)| *k != kind);
        self.0.push((kind, driver));
        self
    }

    /// The driver of `kind`.
    pub fn get(&self, kind: WorkloadKind) -> Option<&Arc<dyn Driver>> {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, d)| d)
    }

    /// Every driver with its kind.
    pub fn iter(&self) -> impl Iterator<Item = (WorkloadKind, &Arc<dyn Driver>)> {
        self.0.iter().map(|(k, d)| (*k, d))
    }
}
