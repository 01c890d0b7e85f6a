//! The work queue of the engine: contracts due for a reconcile, each at most once at a time.
//!
//! A contract enqueued while it is being reconciled is remembered and comes back once that pass
//! ends, so an event is never lost and a contract never has two passes at once.
//!
//! A contract whose pass failed is held back until its retry time: enqueueing it without a
//! refresh (the host tick) does not bring it sooner; a refresh (the chain named it, or a resync)
//! does, since what the chain asks may have changed, and that may be the fix.

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
    /// Contracts backing off after a failed pass, until when.
    held: HashMap<u64, Instant>,
}

impl Inner {
    /// When a contract enqueued for `at` may run: not before its retry time unless refreshed.
    fn not_before(&self, contract: u64, at: Instant, reason: Reason) -> Instant {
        match self.held.get(&contract) {
            Some(until) if !reason.refresh => at.max(*until),
            _ => at,
        }
    }

    fn make_due(&mut self, contract: u64, at: Instant, reason: Reason) {
        let at = self.not_before(contract, at, reason);
        let old = self.due.remove(&contract);
        self.due.insert(contract, merge(old, at, reason));
    }
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
    /// Makes `contract` due after `delay`, or sooner if it already is; a contract backing off
    /// is not due before its retry time unless `reason` is a refresh.
    pub fn enqueue(&self, contract: u64, delay: Duration, reason: Reason) {
        let at = Instant::now() + delay;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = inner.running.get_mut(&contract) {
            *pending = Some(merge(pending.take(), at, reason));
        } else {
            inner.make_due(contract, at, reason);
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

    /// Ends a contract's pass that succeeded; it comes back if it was enqueued meanwhile.
    pub fn done(&self, contract: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.held.remove(&contract);
        if let Some(Some((at, reason))) = inner.running.remove(&contract) {
            inner.make_due(contract, at, reason);
            drop(inner);
            self.wake.notify_waiters();
        }
    }

    /// Ends a contract's pass that failed: it is retried (reading the chain again) after
    /// `retry`, and nothing but a refresh brings it back sooner, not even what was enqueued
    /// during the pass.
    pub fn failed(&self, contract: u64, retry: Duration) {
        let until = Instant::now() + retry;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.held.insert(contract, until);
        if let Some(Some((at, reason))) = inner.running.remove(&contract) {
            inner.make_due(contract, at, reason);
        }
        inner.make_due(contract, until, Reason { refresh: true });
        drop(inner);
        self.wake.notify_waiters();
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
    async fn a_failed_contract_waits_for_its_retry_unless_refreshed() {
        let q = Queue::default();
        q.enqueue(1, Duration::ZERO, Reason::default());
        assert_eq!(q.next().await.0, 1);
        // The host tick comes during the failed pass and after it.
        q.enqueue(1, Duration::ZERO, Reason::default());
        let started = Instant::now();
        q.failed(1, 300 * MS);
        q.enqueue(1, Duration::ZERO, Reason::default());
        assert_eq!(q.next().await, (1, Reason { refresh: true }));
        let waited = Instant::now() - started;
        assert!(waited >= 300 * MS, "retried after {waited:?}");

        // Failed again: a refresh (the chain named it) brings it back at once.
        q.failed(1, 300 * MS);
        q.enqueue(1, Duration::ZERO, Reason::default());
        q.enqueue(1, Duration::ZERO, Reason { refresh: true });
        let started = Instant::now();
        assert_eq!(q.next().await, (1, Reason { refresh: true }));
        assert!(Instant::now() - started < 200 * MS);

        // A pass that succeeds ends the backoff.
        q.done(1);
        q.enqueue(1, Duration::ZERO, Reason::default());
        let started = Instant::now();
        assert_eq!(q.next().await.0, 1);
        assert!(Instant::now() - started < 200 * MS);
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
