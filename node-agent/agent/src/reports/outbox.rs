//! The outbox: reports written to the local database before they are sent, and deleted only once
//! the chain has them. A restart or a chain outage delays reports; it neither loses nor doubles
//! them.
//!
//! - Workload states are kept per contract, newest only: a state report says how things are, so
//!   a newer one replaces an unsent older one.
//! - Consumption is a quantity: each entry is sent until the chain has it, and never twice (see
//!   [`Entry::Consumption`]). An entry holds at most as many contracts as one extrinsic may carry
//!   ([`MAX_REPORT_CONTRACTS`] unless configured otherwise): more make more entries.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::state::{State, StateError, Status};

/// Contracts in one consumption report: the chain's `MaxReportContracts`. The chain refuses a
/// longer list, so an entry with more could never be sent.
pub const MAX_REPORT_CONTRACTS: usize = 256;

/// A workload's line in a state report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateLine {
    /// The workload.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// Its status.
    pub status: Status,
    /// Why (at most 256 bytes reach the chain).
    pub message: String,
}

/// What a contract consumed over some period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time, milliseconds.
    pub cpu_ms: u64,
    /// Highest memory use seen, bytes.
    pub memory_peak: u64,
    /// Bytes received.
    pub net_rx: u64,
    /// Bytes sent.
    pub net_tx: u64,
}

impl Usage {
    /// Both periods together.
    pub fn merge(&self, other: &Usage) -> Usage {
        Usage {
            cpu_ms: self.cpu_ms.saturating_add(other.cpu_ms),
            memory_peak: self.memory_peak.max(other.memory_peak),
            net_rx: self.net_rx.saturating_add(other.net_rx),
            net_tx: self.net_tx.saturating_add(other.net_tx),
        }
    }
}

/// An outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The state of a contract's workloads for deployment `version`.
    States {
        /// The contract.
        contract: u64,
        /// The deployment version.
        version: u32,
        /// One line per workload.
        workloads: Vec<StateLine>,
    },
    /// Consumption of several contracts, sent in one extrinsic.
    ///
    /// Only this node can report a contract's consumption, so the chain's `last_report` of a
    /// contract changes only when one of our reports lands. Before the first attempt the sender
    /// records each contract's `last_report` in `baseline`; whenever it is unsure whether an
    /// attempt landed (after a restart, or when the chain says "too early"), a contract whose
    /// `last_report` moved past its baseline has been counted, and is dropped from the entry.
    Consumption {
        /// Per contract.
        items: BTreeMap<u64, Usage>,
        /// Each contract's `last_report` before the first attempt, once one was made.
        baseline: Option<BTreeMap<u64, Option<u64>>>,
    },
}

/// The outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    state: Arc<State>,
    wake: Arc<Notify>,
    max_contracts: usize,
    /// Held while consumption entries are read and rewritten, so two rewrites never interleave.
    consumption: Arc<Mutex<()>>,
}

const STATES: &str = "s/";
const CONSUMPTION: &str = "c/";

impl Outbox {
    /// The outbox in `state`, for a chain that takes [`MAX_REPORT_CONTRACTS`] contracts per
    /// consumption report.
    pub fn new(state: Arc<State>) -> Outbox {
        Outbox::with_max_contracts(state, MAX_REPORT_CONTRACTS)
    }

    /// The outbox in `state`, with at most `max_contracts` contracts (at least one) per
    /// consumption entry.
    pub fn with_max_contracts(state: Arc<State>, max_contracts: usize) -> Outbox {
        Outbox {
            state,
            wake: Arc::new(Notify::new()),
            max_contracts: max_contracts.max(1),
            consumption: Arc::new(Mutex::new(())),
        }
    }

    /// The most contracts a consumption entry holds.
    pub fn max_contracts(&self) -> usize {
        self.max_contracts
    }

    fn lock_consumption(&self) -> MutexGuard<'_, ()> {
        self.consumption.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_consumption_key(&self) -> Result<Vec<u8>, StateError> {
        Ok(format!("{CONSUMPTION}{:020}", self.state.next_seq()?).into_bytes())
    }

    /// The database under it.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Resolves when something was put in.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Queues the state of a contract's workloads, replacing an unsent one.
    pub fn report_states(
        &self,
        contract: u64,
        version: u32,
        workloads: Vec<StateLine>,
    ) -> Result<(), StateError> {
        let entry = Entry::States {
            contract,
            version,
            workloads,
        };
        self.state.put_outbox(&states_key(contract), &entry)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Drops an unsent state report (the contract is gone from the chain).
    pub fn forget_states(&self, contract: u64) -> Result<(), StateError> {
        self.state.delete_outbox(&states_key(contract))
    }

    /// Queues consumption, taking it out of the metering records `meter_keys` in the same write.
    /// A contract already in an entry that was never attempted adds to it; the others fill such
    /// entries up to the bound, then make new ones.
    pub fn report_consumption(
        &self,
        items: BTreeMap<u64, Usage>,
        meter_keys: &[String],
    ) -> Result<(), StateError> {
        if items.is_empty() {
            return self.state.write_meters::<Usage>(&[], meter_keys);
        }
        let _held = self.lock_consumption();
        let mut open: Vec<(Vec<u8>, BTreeMap<u64, Usage>)> = self
            .entries()?
            .into_iter()
            .filter_map(|(key, e)| match e {
                Entry::Consumption {
                    items,
                    baseline: None,
                } if key.starts_with(CONSUMPTION.as_bytes()) => Some((key, items)),
                _ => None,
            })
            .collect();
        let mut changed = BTreeSet::new();
        for (id, usage) in items {
            let slot = open
                .iter()
                .position(|(_, e)| e.contains_key(&id))
                .or_else(|| open.iter().position(|(_, e)| e.len() < self.max_contracts));
            let i = match slot {
                Some(i) => i,
                None => {
                    open.push((self.new_consumption_key()?, BTreeMap::new()));
                    open.len() - 1
                }
            };
            let m = open[i].1.entry(id).or_default();
            *m = m.merge(&usage);
            changed.insert(i);
        }
        let writes: Vec<(Vec<u8>, Entry)> = changed
            .into_iter()
            .map(|i| {
                let (key, items) = &open[i];
                (
                    key.clone(),
                    Entry::Consumption {
                        items: items.clone(),
                        baseline: None,
                    },
                )
            })
            .collect();
        self.state.meters_to_outbox(meter_keys, &writes)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Splits every consumption entry with more contracts than the bound (written by an agent
    /// that merged without one) into entries within it, each with its share of the baseline.
    /// Returns how many entries were split.
    pub fn split_oversized(&self) -> Result<usize, StateError> {
        let _held = self.lock_consumption();
        let mut split = 0;
        for (key, entry) in self.entries()? {
            let Entry::Consumption { items, baseline } = entry else {
                continue;
            };
            if items.len() <= self.max_contracts {
                continue;
            }
            let all: Vec<(u64, Usage)> = items.into_iter().collect();
            let mut writes = Vec::new();
            for (n, chunk) in all.chunks(self.max_contracts).enumerate() {
                let part_key = if n == 0 {
                    key.clone()
                } else {
                    self.new_consumption_key()?
                };
                let part_baseline = baseline.as_ref().map(|b| {
                    chunk
                        .iter()
                        .filter_map(|(id, _)| b.get(id).map(|v| (*id, *v)))
                        .collect()
                });
                writes.push((
                    part_key,
                    Entry::Consumption {
                        items: chunk.iter().copied().collect(),
                        baseline: part_baseline,
                    },
                ));
            }
            self.state.meters_to_outbox(&[], &writes)?;
            split += 1;
        }
        Ok(split)
    }

    /// Every entry, consumption (oldest first) before states.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Entry)>, StateError> {
        self.state.outbox()
    }

    /// Replaces an entry (the sender drops contracts).
    pub fn update(&self, key: &[u8], entry: &Entry) -> Result<(), StateError> {
        self.state.put_outbox(key, entry)
    }

    /// Records the baseline of a consumption entry before its first attempt, unless the entry
    /// changed since it held `items` (consumption joined it meanwhile): then returns `false`,
    /// and the sender reads it again.
    pub fn record_baseline(
        &self,
        key: &[u8],
        items: &BTreeMap<u64, Usage>,
        baseline: BTreeMap<u64, Option<u64>>,
    ) -> Result<bool, StateError> {
        let _held = self.lock_consumption();
        match self.state.outbox_entry::<Entry>(key)? {
            Some(Entry::Consumption {
                items: now,
                baseline: None,
            }) if now == *items => {
                let entry = Entry::Consumption {
                    items: now,
                    baseline: Some(baseline),
                };
                self.state.put_outbox(key, &entry)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes an entry that was sent, unless it was replaced meanwhile by a newer one.
    pub fn sent(&self, key: &[u8], entry: &Entry) -> Result<(), StateError> {
        match self.state.outbox_entry::<Entry>(key)? {
            Some(now) if now == *entry => self.state.delete_outbox(key),
            _ => Ok(()),
        }
    }
}

fn states_key(contract: u64) -> Vec<u8> {
    format!("{STATES}{contract:020}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(&dir.path().join("db")).unwrap());
        (dir, Outbox::new(state))
    }

    fn line(status: Status) -> StateLine {
        StateLine {
            name: "web".into(),
            version: 1,
            status,
            message: String::new(),
        }
    }

    #[test]
    fn a_newer_state_replaces_an_unsent_one_and_sent_spares_the_newer() {
        let (_d, o) = outbox();
        o.report_states(7, 1, vec![line(Status::Ok)]).unwrap();
        let (key, first) = o.entries().unwrap().remove(0);
        o.report_states(7, 1, vec![line(Status::Error)]).unwrap();
        assert_eq!(o.entries().unwrap().len(), 1);
        // The first one was "sent" while the second was queued: the second stays.
        o.sent(&key, &first).unwrap();
        let left = o.entries().unwrap();
        assert_eq!(left.len(), 1);
        assert!(
            matches!(&left[0].1, Entry::States { workloads, .. } if workloads[0].status == Status::Error)
        );
        o.sent(&key, &left[0].1).unwrap();
        assert!(o.entries().unwrap().is_empty());
    }

    #[test]
    fn consumption_joins_an_unattempted_entry_but_not_an_attempted_one() {
        let (_d, o) = outbox();
        let u = |cpu| Usage {
            cpu_ms: cpu,
            memory_peak: cpu,
            net_rx: 1,
            net_tx: 1,
        };
        o.report_consumption(BTreeMap::from([(1, u(10))]), &[])
            .unwrap();
        o.report_consumption(BTreeMap::from([(1, u(5)), (2, u(3))]), &[])
            .unwrap();
        let entries = o.entries().unwrap();
        assert_eq!(entries.len(), 1);
        let (key, Entry::Consumption { items, .. }) = &entries[0] else {
            panic!()
        };
        assert_eq!(
            items[&1],
            Usage {
                cpu_ms: 15,
                memory_peak: 10,
                net_rx: 2,
                net_tx: 2
            }
        );
        assert_eq!(items[&2].cpu_ms, 3);
        // Once an attempt was made, new consumption goes to a new entry.
        o.update(
            key,
            &Entry::Consumption {
                items: items.clone(),
                baseline: Some(BTreeMap::new()),
            },
        )
        .unwrap();
        o.report_consumption(BTreeMap::from([(1, u(1))]), &[])
            .unwrap();
        assert_eq!(o.entries().unwrap().len(), 2);
    }

    fn usage(cpu: u64) -> Usage {
        Usage {
            cpu_ms: cpu,
            memory_peak: cpu,
            net_rx: 1,
            net_tx: 1,
        }
    }

    /// The consumption entries: key → contracts and usage.
    fn consumption(o: &Outbox) -> Vec<(Vec<u8>, BTreeMap<u64, Usage>)> {
        o.entries()
            .unwrap()
            .into_iter()
            .filter_map(|(k, e)| match e {
                Entry::Consumption { items, .. } => Some((k, items)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn no_entry_holds_more_contracts_than_the_chain_takes() {
        let (_d, o) = outbox();
        assert_eq!(o.max_contracts(), MAX_REPORT_CONTRACTS);
        o.state()
            .write_meters(&[("p/x".to_string(), 1u64)], &[])
            .unwrap();
        let writes = o.state().synced_writes();
        let first: BTreeMap<u64, Usage> = (1..=600).map(|id| (id, usage(10))).collect();
        o.report_consumption(first, &["p/x".to_string()]).unwrap();
        assert_eq!(
            o.state().synced_writes(),
            writes + 1,
            "every entry and the metering records in one write"
        );
        assert!(o.state().meters::<u64>("p/").unwrap().is_empty());
        let sizes: Vec<usize> = consumption(&o).iter().map(|(_, i)| i.len()).collect();
        assert_eq!(sizes, [256, 256, 88]);

        // Known contracts add to their entry; new ones fill the room left, then a new entry.
        let more: BTreeMap<u64, Usage> = (1..=10)
            .chain(1000..1301)
            .map(|id| (id, usage(5)))
            .collect();
        o.report_consumption(more, &[]).unwrap();
        let entries = consumption(&o);
        let sizes: Vec<usize> = entries.iter().map(|(_, i)| i.len()).collect();
        assert_eq!(sizes, [256, 256, 256, 133]);
        let all: BTreeMap<u64, Usage> = entries.into_iter().flat_map(|(_, i)| i).collect();
        assert_eq!(all.len(), 600 + 301);
        assert_eq!(all[&1].cpu_ms, 15);
        assert_eq!(all[&11].cpu_ms, 10);
        assert_eq!(all[&1300].cpu_ms, 5);
    }

    #[test]
    fn the_bound_is_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(&dir.path().join("db")).unwrap());
        let o = Outbox::with_max_contracts(state, 2);
        o.report_consumption((1..=5).map(|id| (id, usage(1))).collect(), &[])
            .unwrap();
        let sizes: Vec<usize> = consumption(&o).iter().map(|(_, i)| i.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn an_oversized_entry_is_split_with_its_share_of_the_baseline() {
        let (_d, o) = outbox();
        // As an agent without the bound left it: 300 contracts, attempted once.
        let items: BTreeMap<u64, Usage> = (1..=300).map(|id| (id, usage(id))).collect();
        let baseline: BTreeMap<u64, Option<u64>> = (1..=300).map(|id| (id, Some(id))).collect();
        o.update(
            b"c/00000000000000000007",
            &Entry::Consumption {
                items: items.clone(),
                baseline: Some(baseline.clone()),
            },
        )
        .unwrap();
        assert_eq!(o.split_oversized().unwrap(), 1);
        assert_eq!(o.split_oversized().unwrap(), 0);
        let parts = o.entries().unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().any(|(k, _)| k == b"c/00000000000000000007"));
        let mut seen_items = BTreeMap::new();
        let mut seen_baseline = BTreeMap::new();
        for (_, e) in parts {
            let Entry::Consumption {
                items,
                baseline: Some(b),
            } = e
            else {
                panic!("baseline lost")
            };
            assert!(items.len() <= MAX_REPORT_CONTRACTS);
            assert_eq!(
                items.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>()
            );
            seen_items.extend(items);
            seen_baseline.extend(b);
        }
        assert_eq!(seen_items, items);
        assert_eq!(seen_baseline, baseline);
    }

    #[test]
    fn a_baseline_is_not_recorded_over_consumption_that_joined_meanwhile() {
        let (_d, o) = outbox();
        o.report_consumption(BTreeMap::from([(1, usage(10))]), &[])
            .unwrap();
        let (key, read) = consumption(&o).remove(0);
        // The sender reads the chain; meanwhile a period's consumption joins the entry.
        o.report_consumption(BTreeMap::from([(1, usage(5)), (2, usage(1))]), &[])
            .unwrap();
        let b = BTreeMap::from([(1, None)]);
        assert!(!o.record_baseline(&key, &read, b).unwrap());
        let (_, now) = consumption(&o).remove(0);
        let b = BTreeMap::from([(1, None), (2, None)]);
        assert!(o.record_baseline(&key, &now, b.clone()).unwrap());
        assert_eq!(
            o.entries().unwrap()[0].1,
            Entry::Consumption {
                items: now,
                baseline: Some(b)
            }
        );
    }

    #[test]
    fn the_outbox_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let o = Outbox::new(Arc::new(State::open(&path).unwrap()));
            o.report_states(3, 2, vec![line(Status::Ok)]).unwrap();
            o.report_consumption(BTreeMap::from([(3, Usage::default())]), &[])
                .unwrap();
        }
        let o = Outbox::new(Arc::new(State::open(&path).unwrap()));
        assert_eq!(o.entries().unwrap().len(), 2);
    }
}
