//! Sends the outbox to the chain, and uptime every period.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use zos_chain_client::{
    api::{
        self,
        runtime_types::{
            bounded_collections::bounded_vec::BoundedVec,
            pallet_deployments::types::{Consumption, WorkloadReport, WorkloadStatus},
        },
    },
    keys::NodeKey,
    ChainError, DeploymentsError, DispatchFailure, GridError, Submitter,
};

use super::outbox::{Entry, Outbox, StateLine, Usage};
use crate::{chain::ChainView, state::Status};

/// The chain accepts one report per contract in this many seconds (`MinReportInterval`).
const REPORT_INTERVAL: Duration = Duration::from_secs(30);
/// Wait after a failure that is not the chain's answer (connection, pool).
const RETRY: Duration = Duration::from_secs(5);
/// The chain's bound on a report message.
const MAX_MESSAGE: usize = 256;
/// State reports in flight at once.
const PARALLEL: usize = 16;

/// The outbox's sender.
pub struct Sender {
    outbox: Outbox,
    submitter: Submitter<NodeKey>,
    view: ChainView,
}

/// What became of an attempt.
enum Sent {
    /// Done (on chain, or no longer wanted there).
    Done,
    /// Try again after this long.
    Later(Duration),
}

impl Sender {
    /// A sender of `outbox` through `submitter`.
    pub fn new(outbox: Outbox, submitter: Submitter<NodeKey>, view: ChainView) -> Sender {
        Sender {
            outbox,
            submitter,
            view,
        }
    }

    /// Sends forever: whenever something is put in, and again after failures.
    pub async fn run(self) {
        loop {
            let wait = match self.pass().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "outbox");
                    Some(RETRY)
                }
            };
            let wake = self.outbox.woken();
            match wait {
                Some(wait) => {
                    tokio::select! {
                        _ = wake => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                None => wake.await,
            }
        }
    }

    /// One pass over the outbox: consumption in order, stopping at the first that must wait,
    /// then states, several at once. Returns how long until something should be tried again.
    pub async fn pass(&self) -> anyhow::Result<Option<Duration>> {
        let mut wait: Option<Duration> = None;
        let mut later = |d: Duration| wait = Some(wait.map_or(d, |w: Duration| w.min(d)));
        let split = self.outbox.split_oversized()?;
        if split > 0 {
            tracing::info!(
                entries = split,
                max = self.outbox.max_contracts(),
                "consumption entries over the chain's bound split"
            );
        }
        let entries = self.outbox.entries()?;
        let (consumption, states): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(_, e)| matches!(e, Entry::Consumption { .. }));
        for (key, entry) in consumption {
            if let Sent::Later(d) = self.consumption(&key, entry).await? {
                later(d);
                break;
            }
        }
        let results: Vec<_> = futures::stream::iter(states)
            .map(|(key, entry)| async move { self.states(&key, entry).await })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for r in results {
            if let Sent::Later(d) = r? {
                later(d);
            }
        }
        Ok(wait)
    }

    async fn states(&self, key: &[u8], entry: Entry) -> anyhow::Result<Sent> {
        let Entry::States {
            contract,
            version,
            ref workloads,
        } = entry
        else {
            return Ok(Sent::Done);
        };
        let reports = workloads.iter().map(report_line).collect();
        let call = api::tx()
            .deployments()
            .report_workloads(contract, version, BoundedVec(reports));
        let sent = match self.submitter.submit(&call).await {
            Ok(_) => {
                tracing::debug!(contract, version, "workload states reported");
                Sent::Done
            }
            Err(ChainError::Dispatch(f))
                if matches!(f.deployments(), Some(DeploymentsError::ReportTooEarly)) =>
            {
                Sent::Later(REPORT_INTERVAL)
            }
            Err(ChainError::Dispatch(f))
                if matches!(
                    f.deployments(),
                    Some(
                        DeploymentsError::ContractNotFound
                            | DeploymentsError::NotContractNode
                            | DeploymentsError::UnknownVersion
                            | DeploymentsError::StaleReport
                    )
                ) =>
            {
                tracing::info!(contract, reason = %f.error, "state report no longer wanted by the chain");
                Sent::Done
            }
            // The chain has these states already (a report resent after a restart).
            Err(ChainError::Dispatch(f))
                if matches!(f.deployments(), Some(DeploymentsError::EmptyReport)) =>
            {
                Sent::Done
            }
            Err(e) => {
                tracing::warn!(contract, error = %e, "state report not sent yet");
                Sent::Later(RETRY)
            }
        };
        if let Sent::Done = sent {
            self.outbox.sent(key, &entry)?;
        }
        Ok(sent)
    }

    async fn consumption(&self, key: &[u8], entry: Entry) -> anyhow::Result<Sent> {
        let Entry::Consumption {
            mut items,
            baseline,
        } = entry
        else {
            return Ok(Sent::Done);
        };
        let baseline = match baseline {
            None => {
                // First attempt: note where the chain stands before anything can land.
                let mut b = BTreeMap::new();
                for id in items.keys() {
                    b.insert(*id, self.last_report(*id).await?);
                }
                if !self.outbox.record_baseline(key, &items, b.clone())? {
                    // More consumption joined the entry meanwhile: read it again.
                    return Ok(Sent::Later(Duration::ZERO));
                }
                b
            }
            Some(b) => {
                // An earlier attempt may have landed: drop what the chain counted already.
                self.drop_counted(key, &mut items, &b).await?;
                b
            }
        };
        if items.is_empty() {
            self.outbox.state().delete_outbox(key)?;
            return Ok(Sent::Done);
        }
        let list: Vec<(u64, Consumption)> =
            items.iter().map(|(id, u)| (*id, consumption(u))).collect();
        let call = api::tx().deployments().report_consumption(BoundedVec(list));
        match self.submitter.submit(&call).await {
            Ok(_) => {
                tracing::debug!(contracts = items.len(), "consumption reported");
                self.outbox.state().delete_outbox(key)?;
                Ok(Sent::Done)
            }
            Err(ChainError::Dispatch(f))
                if matches!(f.deployments(), Some(DeploymentsError::ReportTooEarly)) =>
            {
                self.drop_counted(key, &mut items, &baseline).await?;
                Ok(Sent::Later(REPORT_INTERVAL))
            }
            Err(ChainError::Dispatch(f))
                if matches!(
                    f.deployments(),
                    Some(DeploymentsError::ContractNotFound | DeploymentsError::NotContractNode)
                ) =>
            {
                // Contracts that ended since: what they used is no longer billed to anyone.
                let node = *self.view.node();
                let mut gone = Vec::new();
                for id in items.keys() {
                    let id = *id;
                    let c = self
                        .view
                        .read(|c| async move { c.contract(id, None).await })
                        .await?;
                    if c.is_none_or(|c| c.node != node) {
                        gone.push(id);
                    }
                }
                for id in &gone {
                    items.remove(id);
                }
                tracing::info!(?gone, "consumption of ended contracts dropped");
                self.outbox.update(
                    key,
                    &Entry::Consumption {
                        items,
                        baseline: Some(baseline),
                    },
                )?;
                Ok(Sent::Later(Duration::ZERO))
            }
            Err(ChainError::Dispatch(f)) if is_over_reservation(&f) => {
                self.isolate(key, items, baseline).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "consumption not sent yet");
                Ok(Sent::Later(RETRY))
            }
        }
    }

    /// The chain refused a whole report because one contract's figures are beyond what it
    /// reserved: sends each contract alone and drops (loudly) those the chain refuses, so that
    /// one contract cannot hold back the others' reports.
    async fn isolate(
        &self,
        key: &[u8],
        items: BTreeMap<u64, Usage>,
        baseline: BTreeMap<u64, Option<u64>>,
    ) -> anyhow::Result<Sent> {
        let mut left = BTreeMap::new();
        for (id, usage) in items {
            let call = api::tx()
                .deployments()
                .report_consumption(BoundedVec(vec![(id, consumption(&usage))]));
            match self.submitter.submit(&call).await {
                Ok(_) => {}
                Err(ChainError::Dispatch(f)) if is_over_reservation(&f) => {
                    tracing::error!(
                        contract = id,
                        reason = %f.error,
                        ?usage,
                        "the chain refuses this consumption as beyond the contract's reservation: dropped"
                    );
                }
                Err(e) => {
                    tracing::warn!(contract = id, error = %e, "consumption not sent yet");
                    left.insert(id, usage);
                }
            }
        }
        if left.is_empty() {
            self.outbox.state().delete_outbox(key)?;
            return Ok(Sent::Done);
        }
        self.outbox.update(
            key,
            &Entry::Consumption {
                items: left,
                baseline: Some(baseline),
            },
        )?;
        Ok(Sent::Later(RETRY))
    }

    /// Removes from `items` (and from the stored entry) the contracts whose `last_report` moved
    /// past `baseline`: an earlier attempt of this entry landed for them.
    async fn drop_counted(
        &self,
        key: &[u8],
        items: &mut BTreeMap<u64, Usage>,
        baseline: &BTreeMap<u64, Option<u64>>,
    ) -> anyhow::Result<()> {
        let mut counted = Vec::new();
        for id in items.keys() {
            if self.last_report(*id).await? != baseline.get(id).copied().flatten() {
                counted.push(*id);
            }
        }
        if counted.is_empty() {
            return Ok(());
        }
        tracing::info!(?counted, "consumption already on chain, not sent again");
        for id in &counted {
            items.remove(id);
        }
        self.outbox.update(
            key,
            &Entry::Consumption {
                items: items.clone(),
                baseline: Some(baseline.clone()),
            },
        )?;
        Ok(())
    }

    async fn last_report(&self, id: u64) -> Result<Option<u64>, ChainError> {
        let usage = self
            .view
            .read(|c| async move { c.usage(id, None).await })
            .await?;
        Ok(usage.and_then(|u| u.last_report))
    }
}

fn report_line(l: &StateLine) -> WorkloadReport {
    let mut message = l.message.clone().into_bytes();
    if message.len() > MAX_MESSAGE {
        // Cut at a character boundary and mark the cut.
        let mut end = MAX_MESSAGE - 3;
        while end > 0 && !l.message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.extend_from_slice("...".as_bytes());
    }
    WorkloadReport {
        name: BoundedVec(l.name.clone().into_bytes()),
        version: l.version,
        status: match l.status {
            Status::Ok => WorkloadStatus::Ok,
            Status::Error => WorkloadStatus::Error,
            Status::Paused => WorkloadStatus::Paused,
            Status::Unsupported => WorkloadStatus::Unsupported,
        },
        message: BoundedVec(message),
    }
}

fn consumption(u: &Usage) -> Consumption {
    Consumption {
        cpu_ms: u.cpu_ms,
        memory_peak: u.memory_peak,
        net_rx: u.net_rx,
        net_tx: u.net_tx,
    }
}

/// Reports uptime every `period`, forever. A missed report is not retried: the next one, a
/// period later, carries the newer figure.
pub async fn uptime(submitter: Submitter<NodeKey>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(text) = std::fs::read_to_string("/proc/uptime") else {
            continue;
        };
        let up = text
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match submitter
            .submit(&api::tx().grid().report_uptime(up, now))
            .await
        {
            Ok(_) => tracing::debug!(uptime = up, "uptime reported"),
            // Too early: the next report, a period later, carries the newer figure.
            Err(ChainError::Dispatch(f)) if is_uptime_too_early(&f) => {}
            Err(e) => tracing::warn!(error = %e, "uptime not reported"),
        }
    }
}

/// The chain's refusal of an uptime report that came before `Grid`'s interval had passed.
fn is_uptime_too_early(f: &DispatchFailure) -> bool {
    matches!(f.grid(), Some(GridError::ReportTooEarly))
}

/// The chain's refusals of consumption beyond what a contract reserved.
fn is_over_reservation(f: &DispatchFailure) -> bool {
    matches!(
        f.deployments(),
        Some(
            DeploymentsError::CpuOverReservation
                | DeploymentsError::MemoryOverReservation
                | DeploymentsError::NetworkOverBound
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_to_the_chains_bound_on_a_character_boundary() {
        let l = StateLine {
            name: "web".into(),
            version: 1,
            status: Status::Error,
            message: "é".repeat(200),
        };
        let r = report_line(&l);
        assert!(r.message.0.len() <= MAX_MESSAGE);
        let text = String::from_utf8(r.message.0).unwrap();
        assert!(text.ends_with("..."));
    }
}
