//! The work queue of the engine: contracts due for a reconcile, each at most once at a time.
//!
//! A contract enqueued while it is being reconciled is remembered and comes back once that pass
//! ends, so an event is never lost and a contract never has two passes at once.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

/// Why a contract is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reason {
    /// Read the contract from the chain again (an event named it, or a resync).
    pub refresh: bool,
}

#[derive(Default)]
struct Inner {
    /// Waiting contracts: when they are due and why.
    due: BTreeMap<u64, (Instant, Reason)>,
    /// Contracts being reconciled, and whether they were enqueued meanwhile.
    running: HashMap<u64, Option<(Instant, Reason)>>,
}

/// See the module documentation.
#[derive(Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    wake: Notify,
}

fn merge(a: Option<(Instant, Reason)>, at: Instant, reason: Reason) -> (Instant, Reason) {
    match a {
        Some((t, r)) => (
            t.min(at),
            Reason {
                refresh: r.refresh || reason.refresh,
            },
        ),
        None => (at, reason),
    }
}

impl Queue {
    /// Makes `contract` due after `delay`, or sooner if it already is.
    pub fn enqueue(&self, contract: u64, delay: Duration, reason: Reason) {
        let at = Instant::now() + delay;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = inner.running.get_mut(&contract) {
            *pending = Some(merge(pending.take(), at, reason));
        } else {
            let old = inner.due.remove(&contract);
            inner.due.insert(contract, merge(old, at, reason));
        }
        drop(inner);
        self.wake.notify_waiters();
    }

    /// Waits for the next due contract, and marks it running.
    pub async fn next(&self) -> (u64, Reason) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let first = inner
                    .due
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(id, (at, r))| (*id, *at, *r));
                match first {
                    Some((id, at, reason)) if at <= now => {
                        inner.due.remove(&id);
                        inner.running.insert(id, None);
                        return (id, reason);
                    }
                    Some((_, at, _)) => Some(at),
                    None => None,
                }
            };
            match wait {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Ends a contract's pass; it comes back if it was enqueued meanwhile.
    pub fn done(&self, contract: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Some((at, reason))) = inner.running.remove(&contract) {
            let old = inner.due.remove(&contract);
            inner.due.insert(contract, merge(old, at, reason));
            drop(inner);
            self.wake.notify_waiters();
        }
    }

    /// Whether no contract waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many contracts wait.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .due
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn earliest_first_and_merged() {
        let q = Queue::default();
        q.enqueue(1, 500 * MS, Reason::default());
        q.enqueue(2, 100 * MS, Reason::default());
        q.enqueue(1, 300 * MS, Reason { refresh: true });
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, (2, Reason::default()));
        let started = Instant::now();
        assert_eq!(q.next().await, (1, Reason { refresh: true }));
        let waited = Instant::now() - started;
        assert!(waited >= 150 * MS && waited < 450 * MS, "{waited:?}");
    }

    #[tokio::test]
    async fn a_running_contract_is_not_handed_out_again_until_done() {
        let q = Queue::default();
        q.enqueue(1, Duration::ZERO, Reason::default());
        assert_eq!(q.next().await.0, 1);
        // Enqueued while it runs: remembered, not handed out.
        q.enqueue(1, Duration::ZERO, Reason { refresh: true });
        assert_eq!(q.len(), 0);
        let second = tokio::time::timeout(200 * MS, q.next()).await;
        assert!(second.is_err(), "handed out while running");
        q.done(1);
        assert_eq!(q.next().await, (1, Reason { refresh: true }));
        q.done(1);
        assert_eq!(q.len(), 0);
    }
}
