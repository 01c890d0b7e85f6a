//! The reconcile engine: level-triggered, one contract at a time per contract, several contracts
//! at once.
//!
//! A pass over a contract reads what the chain asks (cached between chain events) and what the
//! host has (from the [`Driver`] of each kind), and makes the host match: it removes what the
//! contract no longer names, brings workloads up in dependency order (`Workload::depends_on`)
//! creating or replacing what changed version, restarts what exited (with backoff, as the
//! workload's restart policy says), pauses everything that runs during a grace period and resumes
//! it after. It then records each workload's status and, when that changed, queues a state report.
//!
//! A failing workload is reported as `error` with its reason and the rest of the contract carries
//! on; what needs it waits, reported as "`<kind> <name>` is not ready". A transient failure (or a
//! dependency not ready) has the pass retried with jittered exponential backoff; a permanent one is
//! not tried again until its workload changes version.

pub mod host;
pub mod queue;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use zos_contracts::{Deployment, RestartPolicy, Workload, WorkloadKind};

pub use host::{
    Applied, Chain, ChainAnswer, DesiredContract, Driver, DriverError, Drivers, Observed, RunState,
};
pub use queue::{Queue, Reason};

use crate::{
    reports::outbox::{Outbox, StateLine},
    state::{Status, WorkloadRecord},
};

/// A workload waiting for a dependency that waits (for its image) is looked at again this soon.
const DEPENDENCY_RECHECK: Duration = Duration::from_secs(5);
/// A workload that ran at least this long before exiting is not crash looping.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// Exits in a row, each after less than [`HEALTHY_RUN`], that make a crash loop.
const CRASH_LOOP: u32 = 3;
/// How long the engine waits: first and longest wait before a restart, and before a failed pass
/// is retried.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Restarts of exited workloads.
    pub restart: (Duration, Duration),
    /// Retries of failed passes.
    pub retry: (Duration, Duration),
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            restart: (Duration::from_secs(1), Duration::from_secs(60)),
            retry: (Duration::from_secs(2), Duration::from_secs(120)),
        }
    }
}

/// The engine. Cheap to share; [`Engine::run`] drives it.
pub struct Engine<C> {
    drivers: Drivers,
    chain: C,
    outbox: Outbox,
    queue: Queue,
    desired: Mutex<HashMap<u64, Option<DesiredContract>>>,
    restarts: Mutex<HashMap<(u64, String), Restarts>>,
    /// Workloads whose last apply failed for good: their version and the message.
    permanent: Mutex<HashMap<(u64, String), (u32, String)>>,
    failures: Mutex<HashMap<u64, u32>>,
    timing: Timing,
}

/// Restart bookkeeping of a workload that runs.
#[derive(Debug, Clone, Default)]
struct Restarts {
    /// Exits in a row after short runs.
    short_runs: u32,
    /// Restarts in all.
    total: u32,
    /// Not restarted before this time.
    not_before: Option<tokio::time::Instant>,
    /// The last exit, in words.
    last_exit: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `base * 2^n`, capped, times a random factor in [0.5, 1.5).
pub fn backoff(n: u32, (base, max): (Duration, Duration)) -> Duration {
    let exp = base.saturating_mul(1u32 << n.min(16)).min(max);
    exp.mul_f64(0.5 + fastrand::f64())
}

/// The chain endpoint answered from a finalized block older than the last one this node
/// processed: the pass waits (with backoff) rather than act on stale desired state, so a lagging
/// or resyncing endpoint never removes a workload.
#[derive(Debug, thiserror::Error)]
#[error(
    "the chain endpoint is at finalized block #{endpoint}, behind block #{processed} this node \
     already processed: contract {contract} waits until it catches up"
)]
pub struct EndpointBehind {
    /// The contract.
    pub contract: u64,
    /// The endpoint's finalized block.
    pub endpoint: u64,
    /// The last block this node processed.
    pub processed: u64,
}

impl<C: Chain> Engine<C> {
    /// An engine over `drivers` and `chain`, reporting to `outbox`.
    pub fn new(drivers: Drivers, chain: C, outbox: Outbox) -> Arc<Self> {
        Engine::with_timing(drivers, chain, outbox, Timing::default())
    }

    /// An engine that waits as `timing` says.
    pub fn with_timing(drivers: Drivers, chain: C, outbox: Outbox, timing: Timing) -> Arc<Self> {
        Arc::new(Engine {
            timing,
            drivers,
            chain,
            outbox,
            queue: Queue::default(),
            desired: Mutex::default(),
            restarts: Mutex::default(),
            permanent: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    /// The drivers.
    pub fn drivers(&self) -> &Drivers {
        &self.drivers
    }

    /// Asks for a pass over `contract`; `refresh` reads it from the chain again.
    pub fn enqueue(&self, contract: u64, refresh: bool) {
        self.queue
            .enqueue(contract, Duration::ZERO, Reason { refresh });
    }

    /// Asks for a pass over every contract that has anything on the host (to notice exits).
    pub async fn enqueue_host(self: &Arc<Self>) -> anyhow::Result<BTreeSet<u64>> {
        let mut ids = BTreeSet::new();
        for (_, driver) in self.drivers.iter() {
            let driver = driver.clone();
            ids.extend(blocking(move || driver.contracts()).await??);
        }
        for id in &ids {
            self.enqueue(*id, false);
        }
        Ok(ids)
    }

    /// Contracts waiting for a pass.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Runs `workers` passes at a time, forever.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let engine = self.clone();
            tasks.spawn(async move {
                loop {
                    let (id, reason) = engine.queue.next().await;
                    match engine.reconcile(id, reason.refresh).await {
                        Ok(next) => {
                            engine.lock_failures().remove(&id);
                            engine.queue.done(id);
                            if let Some(delay) = next {
                                engine.queue.enqueue(id, delay, Reason::default());
                            }
                        }
                        Err(e) => {
                            let n = {
                                let mut f = engine.lock_failures();
                                let n = f.entry(id).or_insert(0);
                                *n += 1;
                                *n
                            };
                            let delay = backoff(n - 1, engine.timing.retry);
                            tracing::warn!(contract = id, error = format!("{e:#}"), retry_in = ?delay, "reconcile failed");
                            // Retried reading the chain again (the failure may have been a read);
                            // the host tick does not bring it sooner.
                            engine.queue.failed(id, delay);
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_restarts(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String), Restarts>> {
        self.restarts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_permanent(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String), (u32, String)>> {
        self.permanent.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn desired(&self, id: u64, refresh: bool) -> anyhow::Result<Option<DesiredContract>> {
        if !refresh {
            if let Some(d) = self
                .desired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
            {
                return Ok(d.clone());
            }
        }
        let answer = self.chain.contract(id).await?;
        let state = self.outbox.state();
        if let Some(processed) = state.last_block()? {
            if answer.block < processed {
                // A lagging or resyncing endpoint: what it says is older than what this node
                // already acted on. Only a cancel or deletion this node followed itself is final.
                if state.ended_in(id)?.is_none() {
                    return Err(EndpointBehind {
                        contract: id,
                        endpoint: answer.block,
                        processed,
                    }
                    .into());
                }
                tracing::info!(
                    contract = id,
                    endpoint = answer.block,
                    processed,
                    "the endpoint lags, but this node followed the contract's end itself"
                );
                return Ok(None);
            }
        }
        let d = answer.contract;
        self.desired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, d.clone());
        Ok(d)
    }

    /// What the host has of contract `id`, from every driver.
    async fn observe(&self, id: u64) -> anyhow::Result<Vec<Observed>> {
        let mut all = Vec::new();
        for (_, driver) in self.drivers.iter() {
            let driver = driver.clone();
            all.extend(blocking(move || driver.observe(id)).await??);
        }
        Ok(all)
    }

    /// Removes an observed workload with its kind's driver.
    async fn remove(&self, id: u64, o: &Observed) -> anyhow::Result<()> {
        let driver = self
            .drivers
            .get(o.kind)
            .ok_or_else(|| anyhow::anyhow!("no driver for {} {}", o.kind, o.name))?
            .clone();
        let name = o.name.clone();
        blocking(move || driver.remove(id, &name)).await??;
        let key = (id, o.name.clone());
        self.lock_restarts().remove(&key);
        self.lock_permanent().remove(&key);
        Ok(())
    }

    /// One pass over a contract. Returns when it wants to be looked at again (a pending
    /// restart), if sooner than the next host tick.
    pub async fn reconcile(&self, id: u64, refresh: bool) -> anyhow::Result<Option<Duration>> {
        let desired = self.desired(id, refresh).await?;
        let observed = self.observe(id).await?;

        let Some(desired) = desired else {
            return self.tear_down(id, observed).await;
        };
        let deployment = Arc::new(desired.deployment.clone());

        // What the contract no longer names (or names as another kind) goes, what depends on
        // others before what it depends on.
        let mut stale: Vec<&Observed> = observed
            .iter()
            .filter(|o| {
                deployment
                    .workload(o.name.as_bytes())
                    .map(|w| w.spec.kind())
                    != Some(o.kind)
            })
            .collect();
        stale.sort_by_key(|o| removal_rank(o.kind));
        for o in stale {
            self.remove(id, o).await?;
        }

        let previous: HashMap<String, WorkloadRecord> = self
            .outbox
            .state()
            .workloads_of(id)?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        // Workloads that are not ready, and how.
        let mut unready: HashMap<String, Unready> = HashMap::new();
        // Workloads to try again with backoff.
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut records = Vec::new();
        let mut next: Option<Duration> = None;
        let mut waiting = false;
        for w in deployment.in_dependency_order() {
            let name = String::from_utf8_lossy(&w.name).into_owned();
            let seen = observed
                .iter()
                .find(|o| o.name == name && o.kind == w.spec.kind());
            let kind = w.spec.kind();
            let outcome = if self.drivers.get(kind).is_none() {
                Outcome::new(
                    Status::Unsupported,
                    &format!("{kind} workloads are not supported by this node yet"),
                )
            } else if let Some(outcome) = not_ready(&deployment, w, &unready) {
                outcome
            } else {
                self.workload(
                    id,
                    &desired.owner,
                    &deployment,
                    w,
                    &name,
                    seen,
                    desired.paused,
                )
                .await?
            };
            let Outcome {
                status,
                message,
                wake,
                retry,
                pending,
            } = outcome;
            if retry {
                failed.insert(name.clone());
            }
            if pending {
                unready.insert(name.clone(), Unready::Waits);
            } else if retry {
                unready.insert(name.clone(), Unready::Retried);
            } else if status == Status::Unsupported {
                unready.insert(name.clone(), Unready::Unsupported);
            } else if status != Status::Ok {
                unready.insert(name.clone(), Unready::Stuck);
            }
            waiting |= pending;
            if let Some(wake) = wake {
                next = Some(next.map_or(wake, |n| n.min(wake)));
            }
            let restarts = self
                .lock_restarts()
                .get(&(id, name.clone()))
                .map_or(0, |r| r.total);
            let since = match previous.get(&name) {
                Some(p) if p.status == status && p.message == message => p.since,
                _ => now_secs(),
            };
            records.push(WorkloadRecord {
                contract: id,
                kind: w.spec.kind().to_string(),
                name,
                version: w.version,
                deployment_version: deployment.version,
                status,
                message,
                restarts,
                since,
            });
        }
        // Reported in the deployment's order, whatever order they were brought up in.
        records.sort_by_key(|r| {
            deployment
                .workloads
                .iter()
                .position(|w| w.name[..] == *r.name.as_bytes())
        });
        // While a workload waits (its image is being pulled), the last report stands: it still
        // says how things are (the previous version runs, or nothing does yet).
        if !waiting {
            self.record(id, deployment.version, &previous, records)?;
        }
        if !failed.is_empty() {
            // Failed workloads are retried with backoff: the caller's error path.
            anyhow::bail!(
                "workloads {} failed",
                failed.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(next)
    }

    /// Applies `w` with its kind's driver; a permanent failure of this version is answered from
    /// memory without asking the driver again.
    async fn apply(
        &self,
        driver: &Arc<dyn Driver>,
        id: u64,
        owner: &[u8; 32],
        deployment: &Arc<Deployment>,
        w: &Workload,
    ) -> anyhow::Result<Result<Applied, DriverError>> {
        let key = (id, String::from_utf8_lossy(&w.name).into_owned());
        if let Some((version, message)) = self.lock_permanent().get(&key) {
            if *version == w.version {
                return Ok(Err(DriverError::Permanent(message.clone())));
            }
        }
        let (driver, owner, deployment, workload) =
            (driver.clone(), *owner, deployment.clone(), w.clone());
        let applied = blocking(move || driver.apply(id, &owner, &workload, &deployment)).await?;
        match &applied {
            Err(DriverError::Permanent(message)) => {
                self.lock_permanent()
                    .insert(key, (w.version, message.clone()));
            }
            _ => {
                self.lock_permanent().remove(&key);
            }
        }
        Ok(applied)
    }

    /// Brings one workload where it should be; returns its status, message, and when to look
    /// again.
    #[allow(clippy::too_many_arguments)]
    async fn workload(
        &self,
        id: u64,
        owner: &[u8; 32],
        deployment: &Arc<Deployment>,
        w: &Workload,
        name: &str,
        seen: Option<&Observed>,
        paused: bool,
    ) -> anyhow::Result<Outcome> {
        let kind = w.spec.kind();
        let Some(driver) = self.drivers.get(kind).cloned() else {
            anyhow::bail!("no driver for {kind} workloads");
        };
        let applied = |r: Result<Applied, DriverError>| match r {
            Ok(Applied::Done) => Outcome::new(Status::Ok, ""),
            Ok(Applied::Pending {
                waiting_for,
                recheck,
            }) => {
                tracing::debug!(contract = id, workload = name, waiting_for, "waits");
                Outcome {
                    pending: true,
                    wake: Some(recheck),
                    ..Outcome::new(Status::Ok, &waiting_for)
                }
            }
            Err(e) => Outcome {
                retry: !matches!(e, DriverError::Permanent(_)),
                ..Outcome::new(Status::Error, &e.to_string())
            },
        };
        let Some(policy) = w.restart_policy() else {
            // A workload that exists rather than runs: made sure of at every pass, also in a
            // grace period (its data is kept).
            return Ok(applied(
                self.apply(&driver, id, owner, deployment, w).await?,
            ));
        };

        let current = seen.filter(|o| o.version == Some(w.version));
        let key = (id, name.to_string());
        if paused {
            if let Some(RunState::Running { .. }) = current.map(|o| &o.state) {
                let n = name.to_string();
                blocking(move || driver.pause(id, &n)).await??;
            }
            return Ok(Outcome::new(Status::Paused, "contract in grace period"));
        }
        match current.map(|o| &o.state) {
            None => {
                // Absent, or another version: (re)create.
                self.lock_restarts().remove(&key);
                Ok(applied(
                    self.apply(&driver, id, owner, deployment, w).await?,
                ))
            }
            Some(RunState::Paused) => {
                let n = name.to_string();
                blocking(move || driver.resume(id, &n)).await??;
                Ok(Outcome::new(Status::Ok, ""))
            }
            Some(RunState::Running { since }) => {
                let mut restarts = self.lock_restarts();
                let r = restarts.entry(key).or_default();
                if since.elapsed().map(|e| e >= HEALTHY_RUN).unwrap_or(false) {
                    r.short_runs = 0;
                }
                Ok(if r.short_runs >= CRASH_LOOP {
                    Outcome::new(Status::Error, &crash_loop(r))
                } else {
                    Outcome::new(Status::Ok, "")
                })
            }
            Some(RunState::Exited { code, signal }) => {
                let exit = match (code, signal) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    (None, None) => "exited".to_string(),
                };
                let success = *code == Some(0);
                let restart = match policy {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => !success,
                    RestartPolicy::Never => false,
                };
                if !restart {
                    let status = if success { Status::Ok } else { Status::Error };
                    return Ok(Outcome::new(status, &exit));
                }
                let wait = {
                    let mut restarts = self.lock_restarts();
                    let r = restarts.entry(key.clone()).or_default();
                    let now = tokio::time::Instant::now();
                    match r.not_before {
                        Some(t) if t > now => Some(t - now),
                        _ => {
                            r.short_runs += 1;
                            r.total += 1;
                            // The exit status only: the message goes to the chain, which is
                            // public forever, and output can hold secrets.
                            r.last_exit = exit.clone();
                            r.not_before =
                                Some(now + backoff(r.short_runs - 1, self.timing.restart));
                            None
                        }
                    }
                };
                let r = |engine: &Self| {
                    engine
                        .lock_restarts()
                        .get(&key)
                        .cloned()
                        .unwrap_or_default()
                };
                if let Some(wait) = wait {
                    let r = r(self);
                    let (status, message) = if r.short_runs >= CRASH_LOOP {
                        (Status::Error, crash_loop(&r))
                    } else {
                        (Status::Ok, format!("restarting: {}", r.last_exit))
                    };
                    return Ok(Outcome {
                        wake: Some(wait),
                        ..Outcome::new(status, &message)
                    });
                }
                let outcome = applied(self.apply(&driver, id, owner, deployment, w).await?);
                let r = r(self);
                Ok(
                    if outcome.status == Status::Ok
                        && !outcome.pending
                        && r.short_runs >= CRASH_LOOP
                    {
                        Outcome::new(Status::Error, &crash_loop(&r))
                    } else {
                        outcome
                    },
                )
            }
            Some(RunState::Present) => Ok(Outcome::new(Status::Ok, "")),
        }
    }

    /// Removes everything of a contract that is gone from the chain.
    async fn tear_down(
        &self,
        id: u64,
        mut observed: Vec<Observed>,
    ) -> anyhow::Result<Option<Duration>> {
        observed.sort_by_key(|o| removal_rank(o.kind));
        for o in &observed {
            self.remove(id, o).await?;
        }
        // Anything left that observe() does not list (a half-made workload) goes too, in the
        // same order.
        let mut drivers: Vec<_> = self.drivers.iter().collect();
        drivers.sort_by_key(|(kind, _)| removal_rank(*kind));
        for (_, driver) in drivers {
            let driver = driver.clone();
            blocking(move || driver.remove_all(id)).await??;
        }
        self.lock_restarts().retain(|(c, _), _| *c != id);
        self.lock_permanent().retain(|(c, _), _| *c != id);
        self.outbox.state().set_workloads(id, &[])?;
        self.outbox.forget_states(id)?;
        self.outbox.state().forget_ended(id)?;
        self.desired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        tracing::info!(contract = id, "contract removed from this node");
        Ok(None)
    }

    /// Stores the records and queues a state report if anything the chain shows changed.
    fn record(
        &self,
        id: u64,
        version: u32,
        previous: &HashMap<String, WorkloadRecord>,
        records: Vec<WorkloadRecord>,
    ) -> anyhow::Result<()> {
        let changed = records.len() != previous.len()
            || records.iter().any(|r| match previous.get(&r.name) {
                Some(p) => {
                    p.status != r.status
                        || p.message != r.message
                        || p.version != r.version
                        || p.deployment_version != r.deployment_version
                }
                None => true,
            });
        let same = records.len() == previous.len()
            && records.iter().all(|r| previous.get(&r.name) == Some(r));
        if !same {
            self.outbox.state().set_workloads(id, &records)?;
        }
        if changed {
            let lines = records
                .iter()
                .map(|r| StateLine {
                    name: r.name.clone(),
                    version: r.version,
                    status: r.status,
                    message: r.message.clone(),
                })
                .collect();
            self.outbox.report_states(id, version, lines)?;
        }
        Ok(())
    }
}

/// Where a pass left a workload.
struct Outcome {
    status: Status,
    message: String,
    /// Look again this soon (a restart waits for its backoff).
    wake: Option<Duration>,
    /// Applying it failed: the pass is retried with backoff.
    retry: bool,
    /// It waits for something under way in the background (an image pull).
    pending: bool,
}

impl Outcome {
    fn new(status: Status, message: &str) -> Outcome {
        Outcome {
            status,
            message: message.to_string(),
            wake: None,
            retry: false,
            pending: false,
        }
    }
}

/// How a workload that others depend on is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unready {
    /// It waits for something under way (its image): its dependents wait with it.
    Waits,
    /// It failed and is retried: so are its dependents.
    Retried,
    /// It failed for good: its dependents are errors, not retried.
    Stuck,
    /// This node cannot run it: neither can it run its dependents, which are reported
    /// unsupported too (and so not billed).
    Unsupported,
}

/// The outcome of a workload one of whose dependencies is not ready, the same for every kind.
fn not_ready(
    deployment: &Deployment,
    w: &Workload,
    unready: &HashMap<String, Unready>,
) -> Option<Outcome> {
    w.depends_on().into_iter().find_map(|dep| {
        let dep_name = String::from_utf8_lossy(dep);
        let how = *unready.get(&*dep_name)?;
        let what = match deployment.workload(dep) {
            Some(d) => format!("{} {dep_name}", d.spec.kind()),
            None => dep_name.into_owned(),
        };
        Some(match how {
            Unready::Waits => Outcome {
                pending: true,
                wake: Some(DEPENDENCY_RECHECK),
                ..Outcome::new(Status::Ok, &format!("waiting for {what}"))
            },
            Unready::Retried | Unready::Stuck => Outcome {
                retry: how == Unready::Retried,
                ..Outcome::new(Status::Error, &DriverError::NotReady(what).to_string())
            },
            Unready::Unsupported => Outcome::new(
                Status::Unsupported,
                &format!("needs {what}, which this node does not support yet"),
            ),
        })
    })
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

/// Workloads that depend on others go before the kinds they may depend on.
fn removal_rank(kind: WorkloadKind) -> bool {
    kind.depends_on_kinds().is_empty()
}

fn crash_loop(r: &Restarts) -> String {
    format!(
        "crash loop: restarted {} times after short runs; {}",
        r.short_runs, r.last_exit
    )
}

#[cfg(test)]
mod tests;
