//! The outbox: reports written to the local database before they are sent, and deleted only once
//! the chain has them. A restart or a chain outage delays reports; it neither loses nor doubles
//! them.
//!
//! - Workload states are kept per contract, newest only: a state report says how things are, so
//!   a newer one replaces an unsent older one.
//! - Consumption is a quantity: each entry is sent until the chain has it, and never twice (see
//!   [`Entry::Consumption`]).

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::state::{State, StateError, Status};

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
}

const STATES: &str = "s/";
const CONSUMPTION: &str = "c/";

impl Outbox {
    /// The outbox in `state`.
    pub fn new(state: Arc<State>) -> Outbox {
        Outbox {
            state,
            wake: Arc::new(Notify::new()),
        }
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
    /// Joins an entry that was never attempted rather than making another.
    pub fn report_consumption(
        &self,
        items: BTreeMap<u64, Usage>,
        meter_keys: &[String],
    ) -> Result<(), StateError> {
        if items.is_empty() {
            return self.state.write_meters::<Usage>(&[], meter_keys);
        }
        let unsent = self.entries()?.into_iter().find(|(k, e)| {
            k.starts_with(CONSUMPTION.as_bytes())
                && matches!(e, Entry::Consumption { baseline: None, .. })
        });
        let (key, entry) = match unsent {
            Some((key, Entry::Consumption { items: old, .. })) => {
                let mut merged = old;
                for (id, u) in items {
                    let m = merged.entry(id).or_default();
                    *m = m.merge(&u);
                }
                (
                    key,
                    Entry::Consumption {
                        items: merged,
                        baseline: None,
                    },
                )
            }
            _ => (
                format!("{CONSUMPTION}{:020}", self.state.next_seq()?).into_bytes(),
                Entry::Consumption {
                    items,
                    baseline: None,
                },
            ),
        };
        self.state.meters_to_outbox(meter_keys, &key, &entry)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Every entry, consumption (oldest first) before states.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Entry)>, StateError> {
        self.state.outbox()
    }

    /// Replaces an entry (the sender records a baseline or drops contracts).
    pub fn update(&self, key: &[u8], entry: &Entry) -> Result<(), StateError> {
        self.state.put_outbox(key, entry)
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
