//! Consumption: what each contract's containers used, sampled from their cgroups and kept in the
//! local database until a period's report takes it into the outbox.
//!
//! Counters of a container start at zero when it is (re)created. Each sample adds what grew
//! since the container's baseline and moves the baseline. A container the agent finds with no
//! baseline (its database was deleted) and that started before the agent counts from the first
//! sample on: a period may go unbilled, none is billed twice.
//!
//! A sample moves the baselines and adds to the pending usage in one synced write, and a report
//! takes the pending usage into the outbox in one synced write: a crash or a power loss never
//! leaves a baseline moved without its usage counted, nor usage both pending and queued.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use crate::{
    reports::outbox::{Outbox, Usage},
    state::{State, StateError},
};

/// A reading of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its contract.
    pub contract: u64,
    /// Its container id.
    pub container: String,
    /// When its process started.
    pub started: SystemTime,
    /// CPU time since it started, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use now, bytes.
    pub memory: u64,
    /// Bytes received since it started.
    pub net_rx: u64,
    /// Bytes sent since it started.
    pub net_tx: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Baseline {
    started: u64,
    cpu_ns: u64,
    net_rx: u64,
    net_tx: u64,
}

/// A metering record: a container's baseline (`b/<container>`) or a contract's pending usage
/// (`p/<contract>`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Meter {
    Baseline(Baseline),
    Pending(Usage),
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Adds what grew since the last samples to each contract's pending usage.
pub fn account(
    state: &State,
    samples: &[Sample],
    agent_start: SystemTime,
) -> Result<(), StateError> {
    let baselines: BTreeMap<String, Baseline> = state.meters("b/")?;
    let mut pending: BTreeMap<String, Usage> = state.meters("p/")?;
    let mut put = Vec::new();
    for s in samples {
        let key = format!("b/{}", s.container);
        let started = secs(s.started);
        let base = match baselines.get(&key) {
            Some(b) if b.started == started => *b,
            // Recreated since the last sample, or started by this agent: counters began at zero.
            Some(_) => Baseline {
                started,
                ..Baseline::default()
            },
            None if s.started >= agent_start => Baseline {
                started,
                ..Baseline::default()
            },
            None => Baseline {
                started,
                cpu_ns: s.cpu_ns,
                net_rx: s.net_rx,
                net_tx: s.net_tx,
            },
        };
        let cpu_ms = s.cpu_ns.saturating_sub(base.cpu_ns) / 1_000_000;
        let used = Usage {
            cpu_ms,
            memory_peak: s.memory,
            net_rx: s.net_rx.saturating_sub(base.net_rx),
            net_tx: s.net_tx.saturating_sub(base.net_tx),
        };
        let p = pending.entry(format!("p/{:020}", s.contract)).or_default();
        *p = p.merge(&used);
        put.push((
            key,
            Meter::Baseline(Baseline {
                started,
                // Whole milliseconds only: the rest counts with the next sample.
                cpu_ns: base.cpu_ns + cpu_ms * 1_000_000,
                net_rx: s.net_rx.max(base.net_rx),
                net_tx: s.net_tx.max(base.net_tx),
            }),
        ));
    }
    let live: std::collections::BTreeSet<String> = samples
        .iter()
        .map(|s| format!("b/{}", s.container))
        .collect();
    let gone: Vec<String> = baselines
        .into_keys()
        .filter(|k| !live.contains(k))
        .collect();
    put.extend(pending.into_iter().map(|(k, u)| (k, Meter::Pending(u))));
    state.write_meters(&put, &gone)
}

/// Moves every contract's pending usage into the outbox, in one write (the outbox makes as many
/// entries as the chain's bound on a report needs). Returns how many contracts it took.
pub fn flush(outbox: &Outbox) -> Result<usize, StateError> {
    let pending: BTreeMap<String, Usage> = outbox.state().meters("p/")?;
    let mut items = BTreeMap::new();
    for (key, usage) in &pending {
        if let Ok(id) = key.trim_start_matches("p/").parse::<u64>() {
            items.insert(id, *usage);
        }
    }
    let keys: Vec<String> = pending.into_keys().collect();
    let contracts = items.len();
    outbox.report_consumption(items, &keys)?;
    Ok(contracts)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;
    use crate::reports::outbox::Entry;

    fn sample(contract: u64, started: SystemTime, cpu_ms: u64, memory: u64, rx: u64) -> Sample {
        Sample {
            contract,
            container: format!("zos-{contract}-web"),
            started,
            cpu_ns: cpu_ms * 1_000_000 + 123,
            memory,
            net_rx: rx,
            net_tx: 0,
        }
    }

    fn pending(outbox: &Outbox) -> BTreeMap<u64, Usage> {
        outbox
            .entries()
            .unwrap()
            .into_iter()
            .find_map(|(_, e)| match e {
                Entry::Consumption { items, .. } => Some(items),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn deltas_add_up_across_samples_restarts_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(Arc::new(State::open(&dir.path().join("db")).unwrap()));
        let state = outbox.state().clone();
        let agent = SystemTime::now() - Duration::from_secs(100);
        let t1 = agent + Duration::from_secs(10);
        account(&state, &[sample(1, t1, 100, 10, 5)], agent).unwrap();
        account(&state, &[sample(1, t1, 250, 30, 9)], agent).unwrap();
        // Recreated: its counters start again.
        let t2 = t1 + Duration::from_secs(30);
        account(&state, &[sample(1, t2, 40, 20, 1)], agent).unwrap();
        assert_eq!(flush(&outbox).unwrap(), 1);
        assert_eq!(
            pending(&outbox)[&1],
            Usage {
                cpu_ms: 290,
                memory_peak: 30,
                net_rx: 10,
                net_tx: 0
            }
        );
        // Flushed usage is gone from the meters: the next period counts from the baseline.
        account(&state, &[sample(1, t2, 45, 5, 1)], agent).unwrap();
        assert_eq!(
            state.meters::<Usage>("p/").unwrap()["p/00000000000000000001"].cpu_ms,
            5
        );
    }

    #[test]
    fn a_container_found_without_a_baseline_counts_from_now() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(Arc::new(State::open(&dir.path().join("db")).unwrap()));
        let state = outbox.state().clone();
        let agent = SystemTime::now();
        let before = agent - Duration::from_secs(600);
        account(&state, &[sample(2, before, 5000, 10, 100)], agent).unwrap();
        account(&state, &[sample(2, before, 5007, 10, 150)], agent).unwrap();
        flush(&outbox).unwrap();
        let u = pending(&outbox)[&2];
        assert_eq!((u.cpu_ms, u.net_rx), (7, 50));
    }

    #[test]
    fn a_sample_moves_baseline_and_pending_usage_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("db")).unwrap();
        let agent = SystemTime::now() - Duration::from_secs(100);
        let t1 = agent + Duration::from_secs(10);
        account(&state, &[sample(1, t1, 100, 10, 5)], agent).unwrap();
        let writes = state.synced_writes();
        account(&state, &[sample(1, t1, 250, 30, 9)], agent).unwrap();
        // One batch: a crash keeps both the moved baseline and the added usage, or neither.
        assert_eq!(state.synced_writes(), writes + 1);
        let base: BTreeMap<String, Baseline> = state.meters("b/").unwrap();
        assert_eq!(base["b/zos-1-web"].cpu_ns, 250 * 1_000_000);
        let pending: BTreeMap<String, Usage> = state.meters("p/").unwrap();
        assert_eq!(pending["p/00000000000000000001"].cpu_ms, 250);
    }

    #[test]
    fn a_flush_of_many_contracts_makes_entries_the_chain_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(Arc::new(State::open(&dir.path().join("db")).unwrap()));
        let state = outbox.state().clone();
        let agent = SystemTime::now() - Duration::from_secs(100);
        let t1 = agent + Duration::from_secs(10);
        let samples: Vec<Sample> = (1..=600).map(|c| sample(c, t1, 100, 10, 5)).collect();
        account(&state, &samples, agent).unwrap();
        let writes = state.synced_writes();
        assert_eq!(flush(&outbox).unwrap(), 600);
        assert_eq!(state.synced_writes(), writes + 1);
        assert!(state.meters::<Usage>("p/").unwrap().is_empty());
        let sizes: Vec<usize> = outbox
            .entries()
            .unwrap()
            .into_iter()
            .map(|(_, e)| match e {
                Entry::Consumption { items, .. } => items.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes, [256, 256, 88]);
    }

    #[test]
    fn a_gone_container_loses_its_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(&dir.path().join("db")).unwrap());
        let agent = SystemTime::now() - Duration::from_secs(10);
        account(&state, &[sample(3, SystemTime::now(), 1, 1, 1)], agent).unwrap();
        assert_eq!(state.meters::<Baseline>("b/").unwrap().len(), 1);
        account(&state, &[], agent).unwrap();
        assert!(state.meters::<Baseline>("b/").unwrap().is_empty());
    }
}
