//! Image pulls in the background, one per image however many workloads wait for it, so that a
//! slow registry never holds a reconcile worker.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use zos_image_store::{Digest, ImageReference, PullErrorKind, Store};

use super::chain_of;
use crate::engine::backoff;

/// First and longest wait before an image whose pull failed is pulled again.
const PULL_RETRY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(120));

/// Called with a contract whose image pull ended (pulled, or failed).
pub type PullWaker = Arc<dyn Fn(u64) + Send + Sync>;

/// Image pulls, each in a task of its own on the agent's runtime, one per image however many
/// workloads wait for it. When a pull ends, the contracts that wait for it are woken (see
/// [`super::HostDrivers::on_pull_done`]). A failed pull is remembered, and its kind reported by every
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
