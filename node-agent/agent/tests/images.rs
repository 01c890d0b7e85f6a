//! Images on a real host: the engine over the real drivers (containers through the agent's own
//! shim, the image store, a loopback registry) and a chain in memory.
//!
//! - A registry that drips bytes holds no reconcile worker: while more contracts than there are
//!   workers wait for its image, another contract deploys and a grace-period pause happens on
//!   time; the pull's deadline fires and the chain hears `pulling <image>: deadline exceeded`.
//! - The agent's garbage collection removes an image no workload used for its grace time, keeps
//!   the ones in use or used recently, and `zos-agent status` counts the store's bytes.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use zos_agent::{
    drivers::{HostDrivers, Layout},
    engine::{Applied, Chain, ChainAnswer, DesiredContract, Driver, Engine},
    reports::outbox::{Entry, Outbox},
    state::{State, Status, WorkloadRecord},
    status::{ImageStore, Report},
};
use zos_chain_client::keys::NodeKey;
use zos_contracts::file::DeploymentFile;
use zos_e2e::{AgentHome, DrippingRegistry, TestHome};
use zos_host::{
    container::{Containers, ShimCommand},
    volume::Volumes,
};
use zos_image_store::{Digest, ImageReference, Limits, Store};
use zos_testkit::{registry::Registry, wait_until};

/// Contracts in memory; every answer is from block 0.
#[derive(Clone, Default)]
struct MemoryChain(Arc<Mutex<HashMap<u64, DesiredContract>>>);

impl MemoryChain {
    fn put(&self, id: u64, image: &str, paused: bool) -> Result<()> {
        let yaml = format!(
            "workloads:\n  - name: app\n    container:\n      image: {image}\n      entrypoint: [/bin/sleep, '100000']\n      cpu: 100m\n      memory: 16MiB\n"
        );
        let deployment = DeploymentFile::from_yaml(&yaml)?.into_deployment(None)?;
        self.0.lock().unwrap().insert(
            id,
            DesiredContract {
                id,
                owner: [7; 32],
                deployment,
                paused,
            },
        );
        Ok(())
    }
}

impl Chain for MemoryChain {
    async fn contract(&self, id: u64) -> anyhow::Result<ChainAnswer> {
        Ok(ChainAnswer {
            block: 0,
            contract: self.0.lock().unwrap().get(&id).cloned(),
        })
    }
}

fn record(outbox: &Outbox, contract: u64) -> Option<WorkloadRecord> {
    outbox
        .state()
        .workloads_of(contract)
        .ok()?
        .into_iter()
        .next()
}

/// The last state report queued for `contract`: (status, message) of its workload.
fn report(outbox: &Outbox, contract: u64) -> Option<(Status, String)> {
    outbox
        .entries()
        .ok()?
        .into_iter()
        .find_map(|(_, e)| match e {
            Entry::States {
                contract: c,
                workloads,
                ..
            } if c == contract => workloads.into_iter().next().map(|l| (l.status, l.message)),
            _ => None,
        })
}

fn freezer_state(contract: u64) -> String {
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer/zos/zos-{contract}-app/freezer.state"
    ))
    .unwrap_or_default()
    .trim()
    .to_string()
}

/// The drivers for real under `home`, pulling within `limits`.
fn drivers(home: &AgentHome, limits: Limits) -> Result<Arc<HostDrivers>> {
    let layout = Layout::new(&home.storage_dir, &home.run_dir);
    let shim = ShimCommand {
        program: env!("CARGO_BIN_EXE_zos-agent").into(),
        args: vec!["shim".into()],
    };
    Ok(Arc::new(HostDrivers::new(
        Store::open(&layout.images)?.with_limits(limits),
        Containers::new(layout.containers, shim)?,
        Volumes::new(layout.volumes)?,
        NodeKey::generate(),
        Vec::new(),
        tokio::runtime::Handle::current(),
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_drips_bytes_holds_no_worker_and_its_pull_ends_at_the_deadline(
) -> Result<()> {
    let registry = Registry::start();
    let image = zos_e2e::push_busybox(&registry.addr, "zos/busybox").await?;
    let slow_pushed =
        zos_e2e::push_busybox_with(&registry.addr, "zos/slow", &[("etc/slow", "slow")]).await?;
    // 64 bytes every 200 ms: never silent for long, but the image would take an hour.
    let drip = DrippingRegistry::start(&registry.addr, 64, Duration::from_millis(200)).await?;
    let slow = slow_pushed.replacen(&registry.addr, &drip.addr, 1);

    let dir = tempfile::tempdir()?;
    let home = TestHome(AgentHome::new(
        &dir.path().join("agent"),
        "ws://127.0.0.1:9",
        0,
    )?);
    let deadline = Duration::from_secs(15);
    let drivers = drivers(
        &home,
        Limits {
            deadline,
            stall: Duration::from_secs(10),
            ..Limits::default()
        },
    )?;
    let outbox = Outbox::new(Arc::new(State::open(&home.state_dir.join("db"))?));
    let chain = MemoryChain::default();
    let engine = Engine::new(drivers.drivers(), chain.clone(), outbox.clone());
    let weak = Arc::downgrade(&engine);
    drivers.on_pull_done(Arc::new(move |contract| {
        if let Some(engine) = weak.upgrade() {
            engine.enqueue(contract, false);
        }
    }));
    // As many workers as the agent runs.
    let runner = tokio::spawn(engine.clone().run(4));

    // A contract that runs.
    chain.put(9101, &image, false)?;
    engine.enqueue(9101, true);
    wait_until("contract 9101 to run", Duration::from_secs(60), || async {
        record(&outbox, 9101).filter(|r| r.status == Status::Ok)
    })
    .await?;

    // More contracts than workers wait for the dripping registry's image.
    let slow_ids = 9102..=9106;
    for id in slow_ids.clone() {
        chain.put(id, &slow, false)?;
        engine.enqueue(id, true);
    }
    let pulls_started = Instant::now();
    wait_until("the pull to start", Duration::from_secs(10), || async {
        (drip.requests() > 0).then_some(())
    })
    .await?;

    // Meanwhile: 9101 enters its grace period and is paused, a new contract runs.
    let asked = Instant::now();
    chain.put(9101, &image, true)?;
    engine.enqueue(9101, true);
    chain.put(9107, &image, false)?;
    engine.enqueue(9107, true);
    wait_until(
        "contract 9101 to be paused",
        Duration::from_secs(10),
        || async {
            record(&outbox, 9101)
                .filter(|r| r.status == Status::Paused && freezer_state(9101) == "FROZEN")
        },
    )
    .await?;
    let paused_after = asked.elapsed();
    wait_until("contract 9107 to run", Duration::from_secs(10), || async {
        record(&outbox, 9107).filter(|r| r.status == Status::Ok)
    })
    .await?;
    let deployed_after = asked.elapsed();
    assert!(
        pulls_started.elapsed() < deadline,
        "all this while the pull was under way"
    );
    assert!(
        slow_ids.clone().all(|id| report(&outbox, id).is_none()),
        "nothing reported while the image is being pulled"
    );

    // The pull's deadline fires: each waiting workload is an error naming the image and the kind.
    let expected = format!("pulling {slow}: deadline exceeded");
    for id in slow_ids.clone() {
        // The state is recorded, then its report queued: wait for both.
        let r = wait_until(
            &format!("contract {id} to report the deadline"),
            deadline + Duration::from_secs(15),
            || async {
                record(&outbox, id)
                    .filter(|r| r.status == Status::Error)
                    .filter(|_| report(&outbox, id).is_some_and(|(s, _)| s == Status::Error))
            },
        )
        .await?;
        assert_eq!(r.message, expected);
        assert_eq!(report(&outbox, id), Some((Status::Error, expected.clone())));
    }
    let failed_after = pulls_started.elapsed();
    assert!(
        failed_after >= deadline && failed_after < deadline + Duration::from_secs(5),
        "the pull ended after {failed_after:?}"
    );
    eprintln!(
        "paused after {paused_after:?}, deployed after {deployed_after:?}, pull gave up after {failed_after:?}"
    );
    runner.abort();
    Ok(())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_images_are_collected_after_their_grace_time_and_status_counts_the_store(
) -> Result<()> {
    let registry = Registry::start();
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("images");
    let store = Store::open(&root)?;
    // Three images sharing busybox, each with a file of its own of a different length.
    let mut pulled = Vec::new();
    for (name, len) in [("used", 1000), ("old", 2000), ("recent", 3000)] {
        let content = "x".repeat(len);
        let image = zos_e2e::push_busybox_with(
            &registry.addr,
            &format!("zos/{name}"),
            &[("etc/own", content.as_str())],
        )
        .await?;
        pulled.push(ImageReference::parse(&image)?);
    }
    let (used, old, recent) = (&pulled[0], &pulled[1], &pulled[2]);
    store.pull(used).await?;
    store.pull(old).await?;
    let pulled_old = unix_secs();
    let rootfs = store.prepare_rootfs(used.digest(), "zos-9201-app")?;
    let before = ImageStore::read(&root)?.context("a store")?;
    wait_until("three seconds", Duration::from_secs(10), || async {
        (unix_secs() >= pulled_old + 3).then_some(())
    })
    .await?;
    store.pull(recent).await?;
    let full = ImageStore::read(&root)?.context("a store")?;
    assert_eq!(full.images, 3);
    assert_eq!(full.bytes, before.bytes + 3000);

    // Grace of two seconds: `old` has not been used for three, `recent` just now, `used` is in
    // use (its last use, the rootfs made, was three seconds ago).
    let report = zos_agent::agent::collect_images_once(&store, Duration::from_secs(2)).await?;
    assert_eq!(report.images_removed, [old.digest().clone()]);
    assert_eq!(report.bytes_freed, 2000);
    let images: Vec<Digest> = store.images()?;
    assert!(images.contains(used.digest()) && images.contains(recent.digest()));
    let after = ImageStore::read(&root)?.context("a store")?;
    assert_eq!((after.images, after.bytes), (2, full.bytes - 2000));

    // Its workload gone, `used` was last used now: kept for its grace time.
    drop(rootfs);
    store.remove_rootfs("zos-9201-app")?;
    let report = zos_agent::agent::collect_images_once(&store, Duration::from_secs(2)).await?;
    assert!(report.images_removed.is_empty(), "{report:?}");

    // What `zos-agent status` shows.
    let state = State::open(&dir.path().join("db"))?;
    let status = Report::read(&state, "node".into())?.with_image_store(&root)?;
    assert_eq!(status.image_store, Some(after));
    let text = status.to_text();
    assert!(
        text.contains(&format!("images      2 image(s), {} file(s)", after.files)),
        "{text}"
    );
    let json = serde_json::to_value(&status)?;
    assert_eq!(json["image_store"]["bytes"], after.bytes);
    assert!(Report::read(&state, "node".into())?
        .with_image_store(Path::new("/nonexistent"))?
        .to_text()
        .contains("no image store yet"));
    Ok(())
}

/// A registry that answers 404, with words of its own, to everything.
async fn not_found_registry() -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"ask admin@registry.example"}]}"#;
                let answer = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_reaches_the_chain_as_the_image_and_its_kind_only() -> Result<()> {
    let addr = not_found_registry().await?;
    let dir = tempfile::tempdir()?;
    let home = TestHome(AgentHome::new(
        &dir.path().join("agent"),
        "ws://127.0.0.1:9",
        0,
    )?);
    let drivers = drivers(&home, Limits::default())?;
    let image = format!("{addr}/zos/ghost@{}", Digest::of(b"ghost"));
    let chain = MemoryChain::default();
    chain.put(9301, &image, false)?;
    let desired = chain.0.lock().unwrap()[&9301].clone();
    let workload = desired.deployment.workloads[0].clone();

    let apply = |d: Arc<HostDrivers>| {
        let (w, dep) = (workload.clone(), desired.deployment.clone());
        tokio::task::spawn_blocking(move || d.containers().apply(9301, &[7; 32], &w, &dep))
    };
    let first = apply(drivers.clone()).await?;
    assert!(
        matches!(&first, Ok(Applied::Pending { waiting_for, .. }) if *waiting_for == format!("pulling {image}")),
        "{first:?}"
    );
    let err = wait_until("the pull to fail", Duration::from_secs(10), || {
        let d = drivers.clone();
        let apply = &apply;
        async move { apply(d).await.ok()?.err() }
    })
    .await?;
    assert_eq!(err.to_string(), format!("pulling {image}: not found"));
    Ok(())
}
