//! The ports of the reconcile engine: what it asks of the chain (desired state) and of the host
//! (observed state and the drivers). `crate::drivers` and `crate::chain` implement them for real;
//! the engine's tests implement them in memory.

use std::{
    collections::BTreeSet,
    future::Future,
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

/// What [`Host::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The workload runs (or exists) as asked.
    Done,
    /// Not yet, and nothing of it changed on the host: what it needs is under way in the
    /// background (its image is being pulled). The pass goes on with the other workloads and
    /// contracts; the host has the engine look again when that ends, and the engine looks again
    /// after `recheck` in any case.
    Pending {
        /// What it waits for, in words (for the log).
        waiting_for: String,
        /// Look again this soon at the latest.
        recheck: Duration,
    },
}

/// Why a workload could not be applied, in words for its owner (reported on chain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// The host: observed state and the drivers that change it. Every method blocks (the engine calls
/// them on blocking threads) and is idempotent.
pub trait Host: Send + Sync + 'static {
    /// The contracts that have anything on this host.
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>>;
    /// What the host has of contract `contract`.
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
    ) -> Result<Applied, ApplyError>;
    /// Removes a workload and everything of it on the host.
    fn remove(&self, contract: u64, name: &str, kind: WorkloadKind) -> anyhow::Result<()>;
    /// Removes whatever of contract `contract` is left on the host, including what a crash left
    /// half made.
    fn remove_all(&self, contract: u64) -> anyhow::Result<()>;
    /// Freezes a running workload.
    fn pause(&self, contract: u64, name: &str) -> anyhow::Result<()>;
    /// Thaws a paused workload.
    fn resume(&self, contract: u64, name: &str) -> anyhow::Result<()>;
}
