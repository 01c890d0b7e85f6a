//! The engine on an in-memory host and chain.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use zos_contracts::{file::DeploymentFile, Deployment, Workload, WorkloadKind};

use super::*;
use crate::{reports::outbox::Entry, state::State};

#[derive(Default)]
struct FakeHost {
    /// (contract, name) → what is there.
    things: Mutex<BTreeMap<(u64, String), Observed>>,
    /// Every call, in order: "apply 1/web v2", "remove 1/web", …
    calls: Mutex<Vec<String>>,
    /// When each apply was attempted: "1/web" → times.
    attempts: Mutex<HashMap<String, Vec<std::time::Instant>>>,
    /// Workloads whose apply fails (transiently), with the message.
    failing: Mutex<HashMap<String, String>>,
    /// Workloads whose apply fails for good, with the message.
    broken: Mutex<HashMap<String, String>>,
    /// Workloads whose apply is pending (their image is being pulled), with what they wait for.
    pending: Mutex<HashMap<String, String>>,
    /// Contracts with an apply under way (to catch two passes at once).
    busy: Mutex<BTreeSet<u64>>,
    overlap: AtomicBool,
    apply_delay: Option<Duration>,
}

impl FakeHost {
    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn set_state(&self, contract: u64, name: &str, state: RunState) {
        self.things
            .lock()
            .unwrap()
            .get_mut(&(contract, name.to_string()))
            .expect("exists")
            .state = state;
    }
    fn observed(&self, contract: u64) -> Vec<Observed> {
        self.things
            .lock()
            .unwrap()
            .iter()
            .filter(|((c, _), _)| *c == contract)
            .map(|(_, o)| o.clone())
            .collect()
    }
    fn names(&self) -> Vec<String> {
        self.things
            .lock()
            .unwrap()
            .keys()
            .map(|(c, n)| format!("{c}/{n}"))
            .collect()
    }
}

/// The fake host's driver of one kind: it sees and changes only workloads of its kind.
struct FakeDriver {
    host: Arc<FakeHost>,
    kind: WorkloadKind,
}

impl Driver for FakeDriver {
    fn contracts(&self) -> anyhow::Result<BTreeSet<u64>> {
        Ok(self
            .host
            .things
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o)| o.kind == self.kind)
            .map(|((c, _), _)| *c)
            .collect())
    }

    fn observe(&self, contract: u64) -> anyhow::Result<Vec<Observed>> {
        Ok(self
            .host
            .things
            .lock()
            .unwrap()
            .iter()
            .filter(|((c, _), o)| *c == contract && o.kind == self.kind)
            .map(|(_, o)| o.clone())
            .collect())
    }

    fn apply(
        &self,
        contract: u64,
        _owner: &[u8; 32],
        w: &Workload,
        _d: &Deployment,
    ) -> Result<Applied, DriverError> {
        let host = &self.host;
        assert_eq!(w.spec.kind(), self.kind, "asked the wrong driver");
        if !host.busy.lock().unwrap().insert(contract) {
            host.overlap.store(true, Ordering::SeqCst);
        }
        if let Some(d) = host.apply_delay {
            std::thread::sleep(d);
        }
        host.busy.lock().unwrap().remove(&contract);
        let name = String::from_utf8_lossy(&w.name).into_owned();
        host.calls
            .lock()
            .unwrap()
            .push(format!("apply {contract}/{name} v{}", w.version));
        host.attempts
            .lock()
            .unwrap()
            .entry(format!("{contract}/{name}"))
            .or_default()
            .push(std::time::Instant::now());
        let key = format!("{contract}/{name}");
        if let Some(m) = host.failing.lock().unwrap().get(&key) {
            return Err(DriverError::Transient(m.clone()));
        }
        if let Some(m) = host.broken.lock().unwrap().get(&key) {
            return Err(DriverError::Permanent(m.clone()));
        }
        if let Some(m) = host.pending.lock().unwrap().get(&key) {
            return Ok(Applied::Pending {
                waiting_for: m.clone(),
                recheck: Duration::from_millis(100),
            });
        }
        let kind = w.spec.kind();
        let state = if kind.runs() {
            RunState::Running {
                since: SystemTime::now(),
            }
        } else {
            RunState::Present
        };
        host.things.lock().unwrap().insert(
            (contract, name.clone()),
            Observed {
                name,
                kind,
                version: kind.runs().then_some(w.version),
                state,
            },
        );
        Ok(Applied::Done)
    }

    fn remove(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        self.host
            .calls
            .lock()
            .unwrap()
            .push(format!("remove {contract}/{name}"));
        let removed = self
            .host
            .things
            .lock()
            .unwrap()
            .remove(&(contract, name.to_string()));
        assert!(
            removed.is_none_or(|o| o.kind == self.kind),
            "the {} driver removed another kind",
            self.kind
        );
        Ok(())
    }

    fn remove_all(&self, contract: u64) -> anyhow::Result<()> {
        self.host
            .things
            .lock()
            .unwrap()
            .retain(|(c, _), o| *c != contract || o.kind != self.kind);
        Ok(())
    }

    fn pause(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        self.host
            .calls
            .lock()
            .unwrap()
            .push(format!("pause {contract}/{name}"));
        self.host.set_state(contract, name, RunState::Paused);
        Ok(())
    }

    fn resume(&self, contract: u64, name: &str) -> anyhow::Result<()> {
        self.host
            .calls
            .lock()
            .unwrap()
            .push(format!("resume {contract}/{name}"));
        self.host.set_state(
            contract,
            name,
            RunState::Running {
                since: SystemTime::now(),
            },
        );
        Ok(())
    }
}

/// A driver for each of `kinds` over `host`.
fn drivers(host: &Arc<FakeHost>, kinds: &[WorkloadKind]) -> Drivers {
    kinds.iter().fold(Drivers::default(), |d, kind| {
        d.with(
            *kind,
            Arc::new(FakeDriver {
                host: host.clone(),
                kind: *kind,
            }),
        )
    })
}

/// Contracts, and the finalized block the endpoint answers from.
#[derive(Default, Clone)]
struct FakeChain(
    Arc<Mutex<HashMap<u64, DesiredContract>>>,
    Arc<std::sync::atomic::AtomicU64>,
);

impl FakeChain {
    fn at_block(&self, n: u64) {
        self.1.store(n, Ordering::SeqCst);
    }

    fn put(&self, id: u64, yaml: &str, paused: bool) {
        let deployment = DeploymentFile::from_yaml(yaml)
            .unwrap()
            .into_deployment(None)
            .unwrap();
        zos_contracts::validate(&deployment).unwrap();
        self.0.lock().unwrap().insert(
            id,
            DesiredContract {
                id,
                owner: [1; 32],
                deployment,
                paused,
            },
        );
    }
}

impl Chain for FakeChain {
    async fn contract(&self, id: u64) -> anyhow::Result<ChainAnswer> {
        Ok(ChainAnswer {
            block: self.1.load(Ordering::SeqCst),
            contract: self.0.lock().unwrap().get(&id).cloned(),
        })
    }
}

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

fn web(version: u32, web_version: u32, restart: &str) -> String {
    format!(
        "version: {version}
workloads:
  - name: data
    volume: {{ size: 1GiB }}
  - name: web
    version: {web_version}
    container:
      image: {IMAGE}
      entrypoint: [/bin/web]
      cpu: 1
      memory: 64MiB
      restart: {restart}
      mounts: [{{ volume: data, path: /data }}]
  - name: worker
    container:
      image: {IMAGE}
      entrypoint: [/bin/worker]
      cpu: 1
      memory: 64MiB
"
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    host: Arc<FakeHost>,
    chain: FakeChain,
    outbox: Outbox,
    engine: Arc<Engine<FakeChain>>,
}

/// The kinds the fake node has drivers for: all but networks.
const KINDS: &[WorkloadKind] = &[
    WorkloadKind::Container,
    WorkloadKind::VirtualMachine,
    WorkloadKind::Volume,
    WorkloadKind::Disk,
];

fn setup(host: FakeHost) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(&dir.path().join("db")).unwrap());
    let outbox = Outbox::new(state);
    let host = Arc::new(host);
    let chain = FakeChain::default();
    let timing = Timing {
        restart: (Duration::from_millis(50), Duration::from_millis(400)),
        retry: (Duration::from_millis(50), Duration::from_millis(400)),
    };
    let engine = Engine::with_timing(drivers(&host, KINDS), chain.clone(), outbox.clone(), timing);
    Setup {
        _dir: dir,
        host,
        chain,
        outbox,
        engine,
    }
}

/// Workload name → (status, message).
type States = BTreeMap<String, (Status, String)>;

/// The last queued state report of `contract`, with its deployment version.
fn reported(outbox: &Outbox, contract: u64) -> Option<(u32, States)> {
    outbox
        .entries()
        .unwrap()
        .into_iter()
        .find_map(|(_, e)| match e {
            Entry::States {
                contract: c,
                version,
                workloads,
            } if c == contract => Some((
                version,
                workloads
                    .into_iter()
                    .map(|l| (l.name, (l.status, l.message)))
                    .collect(),
            )),
            _ => None,
        })
}

#[tokio::test]
async fn creates_volumes_before_containers_and_reports_ok() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &web(1, 1, "always"), false);
    assert_eq!(s.engine.reconcile(1, true).await.unwrap(), None);
    assert_eq!(
        s.host.calls(),
        ["apply 1/data v1", "apply 1/web v1", "apply 1/worker v1"]
    );
    let (version, states) = reported(&s.outbox, 1).unwrap();
    assert_eq!(version, 1);
    assert!(
        states.values().all(|(st, _)| *st == Status::Ok),
        "{states:?}"
    );

    // Nothing changed: a second pass re-checks the volume only and reports nothing new.
    s.outbox
        .entries()
        .unwrap()
        .iter()
        .for_each(|(k, e)| s.outbox.sent(k, e).unwrap());
    s.engine.reconcile(1, false).await.unwrap();
    assert_eq!(s.host.calls(), ["apply 1/data v1"]);
    assert!(reported(&s.outbox, 1).is_none());
}

#[tokio::test]
async fn an_update_replaces_only_the_workloads_whose_version_changed() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &web(1, 1, "always"), false);
    s.engine.reconcile(1, true).await.unwrap();
    s.host.calls();
    s.chain.put(1, &web(2, 2, "always"), false);
    // Without a refresh the engine keeps its cached copy of the contract.
    s.engine.reconcile(1, false).await.unwrap();
    assert_eq!(s.host.calls(), ["apply 1/data v1"]);
    s.engine.reconcile(1, true).await.unwrap();
    assert_eq!(s.host.calls(), ["apply 1/data v1", "apply 1/web v2"]);
    assert_eq!(reported(&s.outbox, 1).unwrap().0, 2);
}

#[tokio::test]
async fn a_workload_dropped_from_the_contract_is_removed_and_a_gone_contract_entirely() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &web(1, 1, "always"), false);
    s.chain.put(2, &web(1, 1, "always"), false);
    s.engine.reconcile(1, true).await.unwrap();
    s.engine.reconcile(2, true).await.unwrap();
    s.host.calls();
    let mut fewer = web(2, 1, "always");
    fewer.truncate(fewer.find("  - name: worker").unwrap());
    s.chain.put(1, &fewer, false);
    s.engine.reconcile(1, true).await.unwrap();
    assert_eq!(s.host.calls(), ["remove 1/worker", "apply 1/data v1"]);

    s.chain.0.lock().unwrap().remove(&1);
    s.engine.reconcile(1, true).await.unwrap();
    // Containers go before the volume they mount.
    assert_eq!(s.host.calls(), ["remove 1/web", "remove 1/data"]);
    assert_eq!(s.host.names(), ["2/data", "2/web", "2/worker"]);
    assert!(
        reported(&s.outbox, 1).is_none(),
        "no report for a contract that is gone"
    );
    assert!(s.outbox.state().workloads_of(1).unwrap().is_empty());
}

#[tokio::test]
async fn a_lagging_endpoint_removes_nothing_until_it_catches_up_or_the_node_followed_the_end() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &web(1, 1, "always"), false);
    s.chain.put(2, &web(1, 1, "always"), false);
    s.chain.put(3, &web(2, 2, "always"), false);
    s.chain.at_block(10);
    for id in [1, 2, 3] {
        s.engine.reconcile(id, true).await.unwrap();
    }
    s.outbox.state().set_last_block(10).unwrap();
    s.host.calls();

    // The node fails over to an endpoint that is resyncing: at block 3 it knows no contract 1
    // or 2, and an older version of contract 3.
    s.chain.at_block(3);
    s.chain.0.lock().unwrap().clear();
    s.chain.put(3, &web(1, 1, "always"), false);
    for id in [1, 2, 3] {
        let err = s.engine.reconcile(id, true).await.unwrap_err();
        let behind = err
            .downcast_ref::<EndpointBehind>()
            .expect("endpoint behind");
        assert_eq!((behind.endpoint, behind.processed), (3, 10), "{err}");
    }
    assert_eq!(s.host.calls(), Vec::<String>::new());
    assert_eq!(s.host.names().len(), 9);

    // Contract 1's cancel is in block 11, which the node followed: final, whatever the endpoint.
    s.outbox.state().processed_block(11, &[1]).unwrap();
    s.engine.reconcile(1, true).await.unwrap();
    assert!(s.host.names().iter().all(|n| !n.starts_with("1/")));
    assert_eq!(
        s.outbox.state().ended_in(1).unwrap(),
        None,
        "forgotten once torn down"
    );

    // Contract 2 ended while the node was away: the endpoint's word counts once it is at or past
    // the last block the node processed.
    assert!(s.engine.reconcile(2, true).await.is_err());
    assert!(s.host.names().iter().any(|n| n.starts_with("2/")));
    s.chain.at_block(11);
    s.chain.put(3, &web(2, 2, "always"), false);
    s.engine.reconcile(2, true).await.unwrap();
    assert!(s.host.names().iter().all(|n| !n.starts_with("2/")));
    s.engine.reconcile(3, true).await.unwrap();
    assert_eq!(
        s.host.names().len(),
        3,
        "contract 3 untouched at its version"
    );
    let calls = s.host.calls();
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("apply 3/web") && !c.starts_with("apply 3/worker")),
        "contract 3 was never taken back to the endpoint's older version: {calls:?}"
    );
}

#[tokio::test]
async fn a_failing_workload_is_an_error_on_chain_and_the_others_run() {
    let host = FakeHost::default();
    host.failing.lock().unwrap().insert(
        "1/web".into(),
        "image 127.0.0.1:5000/app: manifest unknown".into(),
    );
    let s = setup(host);
    s.chain.put(1, &web(1, 1, "always"), false);
    s.chain.put(2, &web(1, 1, "always"), false);
    let err = s.engine.reconcile(1, true).await.unwrap_err();
    assert!(err.to_string().contains("web"), "{err}");
    let (_, states) = reported(&s.outbox, 1).unwrap();
    assert_eq!(states["web"].0, Status::Error);
    assert!(states["web"].1.contains("manifest unknown"));
    assert_eq!(states["worker"].0, Status::Ok);
    assert_eq!(states["data"].0, Status::Ok);
    // The other contract is unaffected.
    s.engine.reconcile(2, true).await.unwrap();
    assert_eq!(reported(&s.outbox, 2).unwrap().1["web"].0, Status::Ok);

    // Fixed: the next pass applies it.
    s.host.failing.lock().unwrap().clear();
    s.engine.reconcile(1, false).await.unwrap();
    assert_eq!(reported(&s.outbox, 1).unwrap().1["web"].0, Status::Ok);
}

#[tokio::test]
async fn a_container_whose_volume_failed_says_so() {
    let host = FakeHost::default();
    host.failing
        .lock()
        .unwrap()
        .insert("1/data".into(), "no space for a 1 GiB volume".into());
    let s = setup(host);
    s.chain.put(1, &web(1, 1, "always"), false);
    assert!(s.engine.reconcile(1, true).await.is_err());
    let (_, states) = reported(&s.outbox, 1).unwrap();
    assert_eq!(
        states["data"],
        (Status::Error, "no space for a 1 GiB volume".into())
    );
    assert_eq!(
        states["web"],
        (Status::Error, "volume data is not ready".into())
    );
    assert_eq!(states["worker"].0, Status::Ok);
}

#[tokio::test]
async fn exits_are_restarted_with_backoff_and_a_crash_loop_is_an_error() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &web(1, 1, "always"), false);
    s.engine.reconcile(1, true).await.unwrap();
    s.host.calls();
    for round in 1..=CRASH_LOOP {
        s.host.set_state(
            1,
            "web",
            RunState::Exited {
                code: Some(2),
                signal: None,
            },
        );
        // Restarted at once the first time; later only after the backoff.
        let mut waited = Duration::ZERO;
        while let Some(wait) = s.engine.reconcile(1, false).await.unwrap() {
            waited += wait;
            tokio::time::sleep(wait).await;
        }
        assert!(
            s.host.calls().contains(&"apply 1/web v1".to_string()),
            "round {round}"
        );
        if round == 1 {
            assert_eq!(waited, Duration::ZERO);
        } else {
            assert!(
                waited > Duration::ZERO,
                "round {round} restarted without backoff"
            );
        }
    }
    let (_, states) = reported(&s.outbox, 1).unwrap();
    let (status, message) = &states["web"];
    assert_eq!(*status, Status::Error);
    assert!(message.starts_with("crash loop"), "{message}");
    assert!(message.contains("exited with status 2"), "{message}");
    assert!(
        !message.contains("boom"),
        "the container's output stays off the chain: {message}"
    );
    assert_eq!(
        s.outbox.state().workloads_of(1).unwrap()[1].restarts,
        CRASH_LOOP
    );
}

#[tokio::test]
async fn restart_policies_never_and_on_failure() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &web(1, 1, "never"), false);
    s.chain.put(2, &web(1, 1, "on-failure"), false);
    s.engine.reconcile(1, true).await.unwrap();
    s.engine.reconcile(2, true).await.unwrap();
    s.host.calls();
    s.host.set_state(
        1,
        "web",
        RunState::Exited {
            code: Some(0),
            signal: None,
        },
    );
    s.engine.reconcile(1, false).await.unwrap();
    assert_eq!(s.host.calls(), ["apply 1/data v1"]);
    assert_eq!(
        reported(&s.outbox, 1).unwrap().1["web"],
        (Status::Ok, "exited with status 0".into())
    );
    s.host.set_state(
        1,
        "web",
        RunState::Exited {
            code: None,
            signal: Some(9),
        },
    );
    s.engine.reconcile(1, false).await.unwrap();
    assert_eq!(
        reported(&s.outbox, 1).unwrap().1["web"],
        (Status::Error, "killed by signal 9".into())
    );
    // on-failure: a clean exit stays down, a failure is restarted.
    s.host.set_state(
        2,
        "web",
        RunState::Exited {
            code: Some(0),
            signal: None,
        },
    );
    s.engine.reconcile(2, false).await.unwrap();
    assert!(!s.host.calls().contains(&"apply 2/web v1".to_string()));
    s.host.set_state(
        2,
        "web",
        RunState::Exited {
            code: Some(1),
            signal: None,
        },
    );
    s.engine.reconcile(2, false).await.unwrap();
    assert!(s.host.calls().contains(&"apply 2/web v1".to_string()));
}

#[tokio::test]
async fn a_grace_period_pauses_and_its_end_resumes() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &web(1, 1, "always"), false);
    s.engine.reconcile(1, true).await.unwrap();
    s.host.calls();
    s.chain.put(1, &web(1, 1, "always"), true);
    s.engine.reconcile(1, true).await.unwrap();
    assert_eq!(
        s.host.calls(),
        ["apply 1/data v1", "pause 1/web", "pause 1/worker"]
    );
    assert_eq!(reported(&s.outbox, 1).unwrap().1["web"].0, Status::Paused);
    // Paused stays paused, data kept (nothing removed).
    s.engine.reconcile(1, false).await.unwrap();
    assert_eq!(s.host.calls(), ["apply 1/data v1"]);
    s.chain.put(1, &web(1, 1, "always"), false);
    s.engine.reconcile(1, true).await.unwrap();
    assert_eq!(
        s.host.calls(),
        ["apply 1/data v1", "resume 1/web", "resume 1/worker"]
    );
    assert_eq!(reported(&s.outbox, 1).unwrap().1["web"].0, Status::Ok);
}

#[tokio::test]
async fn a_workload_waiting_for_its_image_reports_nothing_until_it_runs() {
    let host = FakeHost::default();
    host.pending
        .lock()
        .unwrap()
        .insert("1/web".into(), "image being pulled".into());
    let s = setup(host);
    s.chain.put(1, &web(1, 1, "always"), false);
    // The pass goes on with the others and asks to be looked at again soon.
    assert_eq!(
        s.engine.reconcile(1, true).await.unwrap(),
        Some(Duration::from_millis(100))
    );
    assert_eq!(
        s.host.calls(),
        ["apply 1/data v1", "apply 1/web v1", "apply 1/worker v1"]
    );
    assert!(reported(&s.outbox, 1).is_none(), "nothing reported yet");
    assert!(s.outbox.state().workloads_of(1).unwrap().is_empty());

    // The image is there: everything is reported at once.
    s.host.pending.lock().unwrap().clear();
    assert_eq!(s.engine.reconcile(1, false).await.unwrap(), None);
    let (_, states) = reported(&s.outbox, 1).unwrap();
    assert!(
        states
            .values()
            .all(|(st, m)| *st == Status::Ok && m.is_empty()),
        "{states:?}"
    );

    // An update whose new image is being pulled: the running version stays, and so does its
    // report, until the new one runs.
    s.outbox
        .entries()
        .unwrap()
        .iter()
        .for_each(|(k, e)| s.outbox.sent(k, e).unwrap());
    s.host
        .pending
        .lock()
        .unwrap()
        .insert("1/web".into(), "image being pulled".into());
    s.chain.put(1, &web(2, 2, "always"), false);
    s.host.calls();
    assert!(s.engine.reconcile(1, true).await.unwrap().is_some());
    assert_eq!(s.host.calls(), ["apply 1/data v1", "apply 1/web v2"]);
    assert!(reported(&s.outbox, 1).is_none());
    assert_eq!(s.outbox.state().workloads_of(1).unwrap()[1].version, 1);
    let web = s.host.observed(1);
    assert!(web.iter().any(|o| o.name == "web" && o.version == Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pulls_under_way_hold_no_worker_so_a_grace_pause_and_a_deploy_are_on_time() {
    let host = FakeHost::default();
    // More contracts waiting for a slow image than the engine has workers.
    for id in 1..=6 {
        host.pending
            .lock()
            .unwrap()
            .insert(format!("{id}/web"), "image being pulled".into());
    }
    let s = setup(host);
    s.chain.put(7, &web(1, 1, "always"), false);
    s.engine.reconcile(7, true).await.unwrap();
    for id in 1..=6 {
        s.chain.put(id, &web(1, 1, "always"), false);
    }
    let runner = tokio::spawn(s.engine.clone().run(4));
    for id in 1..=6 {
        s.engine.enqueue(id, true);
    }
    zos_testkit_wait(|| {
        s.host
            .attempts
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.ends_with("/web"))
            .count()
            >= 6
    })
    .await;

    // Contract 7 enters its grace period, contract 8 is created: both at once.
    let started = std::time::Instant::now();
    s.chain.put(7, &web(1, 1, "always"), true);
    s.engine.enqueue(7, true);
    s.chain.put(8, &web(1, 1, "always"), false);
    s.engine.enqueue(8, true);
    zos_testkit_wait(|| {
        let calls = s.host.calls.lock().unwrap();
        calls.contains(&"pause 7/web".to_string())
            && calls.contains(&"apply 8/worker v1".to_string())
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "took {took:?}");
    zos_testkit_wait(|| reported(&s.outbox, 8).is_some()).await;

    // The pulls end: the waiting contracts deploy.
    s.host.pending.lock().unwrap().clear();
    zos_testkit_wait(|| (1..=6).all(|id| reported(&s.outbox, id).is_some())).await;
    runner.abort();
}

#[tokio::test]
async fn unsupported_kinds_are_reported_as_such_not_silence() {
    let s = setup(FakeHost::default());
    s.chain.put(
        1,
        "workloads:\n  - name: net\n    network: { range: 10.1.0.0/16, subnet: 10.1.1.0/24 }\n",
        false,
    );
    // Not retried: nothing would change until the node learns networks.
    s.engine.reconcile(1, true).await.unwrap();
    let (_, states) = reported(&s.outbox, 1).unwrap();
    // `Unsupported`, so that the chain does not bill what this node cannot run.
    assert_eq!(
        states["net"],
        (
            Status::Unsupported,
            "network workloads are not supported by this node yet".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_contract_is_never_reconciled_twice_at_once() {
    let s = setup(FakeHost {
        apply_delay: Some(Duration::from_millis(20)),
        ..FakeHost::default()
    });
    for id in 1..=3 {
        s.chain.put(id, &web(1, 1, "always"), false);
    }
    let engine = s.engine.clone();
    let runner = tokio::spawn(engine.run(4));
    for _ in 0..20 {
        for id in 1..=3 {
            s.engine.enqueue(id, true);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    zos_testkit_wait(|| s.engine.pending() == 0 && s.host.names().len() == 9).await;
    runner.abort();
    assert!(
        !s.host.overlap.load(Ordering::SeqCst),
        "two passes of one contract overlapped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_contract_backs_off_while_the_host_ticks() {
    let host = FakeHost::default();
    host.failing.lock().unwrap().insert(
        "1/web".into(),
        "image 127.0.0.1:5000/app: manifest unknown".into(),
    );
    let s = setup(host);
    s.chain.put(1, &web(1, 1, "always"), false);
    let runner = tokio::spawn(s.engine.clone().run(2));
    s.engine.enqueue(1, true);
    // The host tick, much faster than the retries (50 ms doubling to 400 ms, jittered).
    let end = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < end {
        s.engine.enqueue_host().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    runner.abort();
    let at = s.host.attempts.lock().unwrap()["1/web"].clone();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // Each wait is at least half of 50 ms * 2^n, capped at 400 ms.
    for (n, gap) in gaps.iter().enumerate() {
        let least =
            (Duration::from_millis(50) * (1 << n.min(8))).min(Duration::from_millis(400)) / 2;
        assert!(
            *gap >= least,
            "attempt {} came {gap:?} after the one before: {gaps:?}",
            n + 1
        );
    }
    assert!(
        (4..=10).contains(&at.len()),
        "{} attempts in 1.5 s: {gaps:?}",
        at.len()
    );
    assert!(gaps.last() > gaps.first(), "{gaps:?}");
}

/// A VM named before the disks it boots with, and a container beside it.
fn vm(version: u32, vm_version: u32) -> String {
    format!(
        "version: {version}
workloads:
  - name: box
    version: {vm_version}
    vm:
      image: {IMAGE}
      vcpus: 1
      memory: 256MiB
      disks: [root, scratch]
  - name: root
    disk: {{ size: 1GiB }}
  - name: scratch
    disk: {{ size: 1GiB }}
  - name: web
    container:
      image: {IMAGE}
      entrypoint: [/bin/web]
      cpu: 1
      memory: 64MiB
"
    )
}

#[tokio::test]
async fn any_kind_comes_up_after_what_it_depends_on_and_goes_before_it() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &vm(1, 1), false);
    s.engine.reconcile(1, true).await.unwrap();
    assert_eq!(
        s.host.calls(),
        [
            "apply 1/root v1",
            "apply 1/scratch v1",
            "apply 1/web v1",
            "apply 1/box v1"
        ]
    );
    // Reported in the deployment's order.
    let (_, states) = reported(&s.outbox, 1).unwrap();
    assert!(
        states.values().all(|(st, _)| *st == Status::Ok),
        "{states:?}"
    );
    let names: Vec<String> = s
        .outbox
        .state()
        .workloads_of(1)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["box", "root", "scratch", "web"]);

    // Gone: what runs goes before what it ran on, each by its own kind's driver.
    s.chain.0.lock().unwrap().remove(&1);
    s.engine.reconcile(1, true).await.unwrap();
    let calls = s.host.calls();
    let at = |c: &str| calls.iter().position(|x| x == c).expect(c);
    assert!(at("remove 1/box") < at("remove 1/root"), "{calls:?}");
    assert!(at("remove 1/box") < at("remove 1/scratch"), "{calls:?}");
    assert!(s.host.names().is_empty());
}

#[tokio::test]
async fn a_dependency_that_fails_or_waits_is_named_the_same_way_for_every_kind() {
    let host = FakeHost::default();
    host.failing
        .lock()
        .unwrap()
        .insert("1/scratch".into(), "no space for a 1 GiB disk".into());
    let s = setup(host);
    s.chain.put(1, &vm(1, 1), false);
    assert!(s.engine.reconcile(1, true).await.is_err(), "retried");
    assert!(
        !s.host.calls().contains(&"apply 1/box v1".to_string()),
        "the VM is not started without its disk"
    );
    let (_, states) = reported(&s.outbox, 1).unwrap();
    assert_eq!(
        states["box"],
        (Status::Error, "disk scratch is not ready".into())
    );
    assert_eq!(states["web"].0, Status::Ok, "what does not need it runs");

    // A dependency that waits (its image is being pulled) makes its dependents wait, silently.
    let s = setup(FakeHost::default());
    s.host
        .pending
        .lock()
        .unwrap()
        .insert("1/root".into(), "pulling".into());
    s.chain.put(1, &vm(1, 1), false);
    assert!(s.engine.reconcile(1, true).await.unwrap().is_some());
    assert!(!s.host.calls().contains(&"apply 1/box v1".to_string()));
    assert!(reported(&s.outbox, 1).is_none());
    s.host.pending.lock().unwrap().clear();
    assert_eq!(s.engine.reconcile(1, false).await.unwrap(), None);
    assert!(s.host.calls().contains(&"apply 1/box v1".to_string()));
}

#[tokio::test]
async fn a_permanent_failure_is_reported_once_and_not_tried_again_until_a_new_version() {
    let host = FakeHost::default();
    host.broken.lock().unwrap().insert(
        "1/web".into(),
        "env TOKEN: cannot open the sealed value: sealed for another owner".into(),
    );
    let s = setup(host);
    s.chain.put(1, &web(1, 1, "always"), false);
    // Not the error path: nothing would change by trying again.
    s.engine.reconcile(1, true).await.unwrap();
    let (_, states) = reported(&s.outbox, 1).unwrap();
    assert_eq!(states["web"].0, Status::Error);
    assert!(states["web"].1.contains("sealed for another owner"));
    for _ in 0..3 {
        s.engine.reconcile(1, false).await.unwrap();
    }
    let web_applies = |calls: Vec<String>| calls.iter().filter(|c| c.contains("1/web")).count();
    assert_eq!(
        web_applies(s.host.calls()),
        1,
        "asked once, not at every pass"
    );

    // The owner fixes it with a new version: tried again.
    s.host.broken.lock().unwrap().clear();
    s.chain.put(1, &web(2, 2, "always"), false);
    s.engine.reconcile(1, true).await.unwrap();
    assert_eq!(web_applies(s.host.calls()), 1);
    assert_eq!(reported(&s.outbox, 1).unwrap().1["web"].0, Status::Ok);
}

#[tokio::test]
async fn a_vm_is_restarted_paused_and_resumed_like_a_container() {
    let s = setup(FakeHost::default());
    s.chain.put(1, &vm(1, 1), false);
    s.engine.reconcile(1, true).await.unwrap();
    s.host.calls();
    // The guest powers off, again and again: restarted with backoff, then a crash loop.
    for _ in 1..=CRASH_LOOP {
        s.host.set_state(
            1,
            "box",
            RunState::Exited {
                code: Some(0),
                signal: None,
            },
        );
        while let Some(wait) = s.engine.reconcile(1, false).await.unwrap() {
            tokio::time::sleep(wait).await;
        }
        assert!(s.host.calls().contains(&"apply 1/box v1".to_string()));
    }
    let (_, states) = reported(&s.outbox, 1).unwrap();
    assert_eq!(states["box"].0, Status::Error);
    assert!(states["box"].1.starts_with("crash loop"), "{states:?}");

    // The grace period pauses it (its disks stay), and its end resumes it.
    s.chain.put(1, &vm(1, 1), true);
    s.engine.reconcile(1, true).await.unwrap();
    let calls = s.host.calls();
    assert!(calls.contains(&"pause 1/box".to_string()), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("remove")), "{calls:?}");
    assert_eq!(reported(&s.outbox, 1).unwrap().1["box"].0, Status::Paused);
    s.chain.put(1, &vm(1, 1), false);
    s.engine.reconcile(1, true).await.unwrap();
    assert!(s.host.calls().contains(&"resume 1/box".to_string()));
}

#[tokio::test]
async fn a_kind_without_a_driver_is_unsupported_and_what_needs_it_says_so() {
    let host = Arc::new(FakeHost::default());
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::new(Arc::new(State::open(&dir.path().join("db")).unwrap()));
    let chain = FakeChain::default();
    // A node with VMs but no disks.
    let engine = Engine::new(
        drivers(
            &host,
            &[WorkloadKind::Container, WorkloadKind::VirtualMachine],
        ),
        chain.clone(),
        outbox.clone(),
    );
    chain.put(1, &vm(1, 1), false);
    // Not retried: nothing changes until the node learns disks.
    engine.reconcile(1, true).await.unwrap();
    let (_, states) = reported(&outbox, 1).unwrap();
    assert_eq!(
        states["root"],
        (
            Status::Unsupported,
            "disk workloads are not supported by this node yet".into()
        )
    );
    // What cannot run without it cannot run here either: unsupported too, so not billed.
    assert_eq!(
        states["box"],
        (
            Status::Unsupported,
            "needs disk root, which this node does not support yet".into()
        )
    );
    assert_eq!(states["web"].0, Status::Ok);
    assert!(
        !host.calls().iter().any(|c| c.contains("1/box")),
        "the VM is not started without its disks"
    );
}

async fn zos_testkit_wait(mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn backoff_grows_jitters_and_caps() {
    let b = (Duration::from_secs(1), Duration::from_secs(60));
    for _ in 0..100 {
        let first = backoff(0, b);
        assert!(first >= Duration::from_millis(500) && first < Duration::from_millis(1500));
        let late = backoff(30, b);
        assert!(late >= Duration::from_secs(30) && late < Duration::from_secs(90));
    }
}
