//! `zos-agent run`: everything together.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use zos_chain_client::keys::NodeKey;
use zos_host::{
    container::{Containers, ShimCommand},
    disk::Disks,
    network::Networks,
    vm::{self, Accel, VmHost, Vms},
    volume::Volumes,
};
use zos_image_store::Store;

use crate::{
    capacity,
    chain::{self, ChainView},
    config::{self, Config, Periods},
    drivers::{HostDrivers, Layout, NetworkDriver},
    engine::Engine,
    metering,
    reports::{outbox::Outbox, sender},
    state::State,
    watch,
};

/// Reconcile passes at once.
const WORKERS: usize = 4;

/// Runs the agent until SIGINT or SIGTERM. Workloads keep running when it stops.
pub async fn run(config: Config, shim: ShimCommand) -> anyhow::Result<()> {
    let started = SystemTime::now();
    for dir in [&config.state_dir, &config.storage_dir, &config.run_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let key = NodeKey::load_or_create(&config.key_path())?;
    let wg_secret = chain::wireguard_key(&config.state_dir.join("wireguard.key"))?;
    let wg_public = zos_host::network::wireguard::public_key(&wg_secret);
    let account = key.account();
    tracing::info!(node = %account, "node identity");
    let state = Arc::new(State::open(&config.db_path())?);
    let outbox = Outbox::new(state.clone());

    let layout = Layout::new(&config.storage_dir, &config.run_dir);
    let images = Store::open(&layout.images)?.with_limits(config.images.limits());
    let drivers = HostDrivers::new(
        images.clone(),
        Containers::new(layout.containers.clone(), shim)?,
        Volumes::new(layout.volumes.clone())?,
        key.clone(),
        config.registries.allow.clone(),
        tokio::runtime::Handle::current(),
    );
    let drivers = match vm_host(&config.vms, &layout).await {
        Ok(Some(host)) => {
            tracing::info!(
                accel = host.accel.as_str(),
                tsc_khz = host.tsc_khz,
                kernel = %host.boot.kernel.display(),
                "this node runs VMs"
            );
            drivers.with_vms(
                Vms::new(layout.vms.clone(), host)?,
                Disks::new(layout.disks.clone())?,
                Duration::from_secs(config.vms.stop_grace),
            )
        }
        Ok(None) => drivers,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "this node cannot run VMs: VM and disk workloads are reported unsupported"
            );
            drivers
        }
    };
    let capacity = capacity::offered(&config.storage_dir, &config.reserve, &config.capacity)?;

    // The chain is pinned by its genesis on first contact: no endpoint of another chain is
    // followed or believed afterwards.
    let genesis = state.genesis()?;
    let view = ChainView::connect(&config.chain, genesis, account).await;
    let genesis = match genesis {
        Some(g) => g,
        None => {
            let g = view.client().await.genesis_hash();
            state.set_genesis(g)?;
            tracing::info!(genesis = ?g, "this node follows the chain of this genesis from now on");
            g
        }
    };
    let drivers = Arc::new(match networks(&config, &layout, wg_secret, &view) {
        Ok(Some(networks)) => drivers.with_networks(networks),
        Ok(None) => drivers,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "this node cannot take part in private networks: networks are reported unsupported"
            );
            drivers
        }
    });
    let submitter = view.client().await.submitter(key.clone());
    chain::register(
        &view,
        &submitter,
        config.farm,
        capacity,
        wg_public,
        (!config.behind_nat).then_some(config.endpoint.as_str()),
    )
    .await?;

    // Users read how this node runs VMs (or that it runs none) before they deploy one here.
    let hypervisor = drivers.vms().map(|vms| match vms.vms().host().accel {
        Accel::Kvm => zos_chain_client::Hypervisor::Kvm,
        Accel::Tcg => zos_chain_client::Hypervisor::Tcg,
    });
    if let Err(e) = chain::set_hypervisor(&view, &submitter, hypervisor).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "the hypervisor was not stated on chain"
        );
    }

    let engine = Engine::new(drivers.drivers(), view.clone(), outbox.clone());
    {
        // A pull that ends brings the contracts waiting for it back at once.
        let engine = Arc::downgrade(&engine);
        drivers.on_pull_done(Arc::new(move |contract| {
            if let Some(engine) = engine.upgrade() {
                engine.enqueue(contract, false);
            }
        }));
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(engine.clone().run(WORKERS));
    tasks.spawn(sender::Sender::new(outbox.clone(), submitter.clone(), view.clone()).run());
    tasks.spawn(sender::uptime(
        submitter.clone(),
        Periods::of(config.periods.uptime),
    ));
    // The first resync before following blocks: whatever happened while the agent was down.
    let from = watch::start_block(&view, &state).await?;
    if let Err(e) = watch::resync(&view, &engine).await {
        tracing::warn!(error = %e, "first resync failed; the periodic one retries");
    }
    {
        let (urls, view, state, engine, networks) = (
            config.chain.clone(),
            view.clone(),
            state.clone(),
            engine.clone(),
            drivers.networks().cloned(),
        );
        tasks.spawn(async move {
            if let Err(e) = watch::follow(urls, genesis, view, state, engine, networks, from).await
            {
                tracing::error!(error = %e, "following the chain stopped");
            }
        });
    }
    tasks.spawn(watch::resync_every(
        view.clone(),
        engine.clone(),
        Periods::of(config.periods.resync),
    ));
    tasks.spawn(watch::host_tick(
        engine.clone(),
        Periods::of(config.periods.watch),
    ));
    tasks.spawn(collect_images(
        images,
        Periods::of(config.images.gc_grace),
        Periods::of(config.images.gc_period),
    ));
    tasks.spawn(meter(
        drivers,
        outbox,
        started,
        Periods::of(config.periods.watch.max(5)),
        Periods::of(config.periods.consumption),
    ));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; workloads keep running"),
        _ = term.recv() => tracing::info!("terminated; workloads keep running"),
        Some(done) = tasks.join_next() => {
            anyhow::bail!("an agent task ended: {done:?}");
        }
    }
    Ok(())
}

/// Every `period`, removes the images no workload has used for `grace` (and the files only they
/// needed).
async fn collect_images(store: Store, grace: Duration, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Not at start: the first collection waits a period.
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = collect_images_once(&store, grace).await {
            tracing::warn!(error = format!("{e:#}"), "image store not collected");
        }
    }
}

/// Removes the images no workload has used for `grace`, and what only they needed. Waits for
/// pulls under way (the store's lock), on a blocking thread.
pub async fn collect_images_once(
    store: &Store,
    grace: Duration,
) -> anyhow::Result<zos_image_store::GcReport> {
    let store = store.clone();
    let report = tokio::task::spawn_blocking(move || store.gc(grace)).await??;
    if !report.images_removed.is_empty() || report.temporaries_removed > 0 {
        tracing::info!(
            images = report.images_removed.len(),
            files = report.objects_removed,
            bytes = report.bytes_freed,
            leftovers = report.temporaries_removed,
            "image store collected"
        );
    }
    Ok(report)
}

/// Private networks as `config` says, checked: wireguard-go runs. `None` when they are off.
fn networks(
    config: &Config,
    layout: &Layout,
    wg_secret: [u8; 32],
    view: &ChainView,
) -> anyhow::Result<Option<NetworkDriver>> {
    if !config.networks.enabled {
        return Ok(None);
    }
    let program = &config.networks.wireguard_go;
    let ran = std::process::Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| anyhow::anyhow!("wireguard-go ({}): {e}", program.display()))?;
    anyhow::ensure!(
        ran.status.success(),
        "wireguard-go ({}) does not run",
        program.display()
    );
    let networks = Networks::new(
        layout.networks.clone(),
        config.networks.host_namespace.clone(),
        program.clone(),
        wg_secret,
    );
    let index = Arc::new(chain::ChainNetworkIndex::new(
        view.clone(),
        tokio::runtime::Handle::current(),
    ));
    Ok(Some(NetworkDriver::new(
        networks,
        index,
        *view.node(),
        config.endpoint.clone(),
    )))
}

/// The host's VM tooling as `config` says, checked: the default kernel unpacked and its
/// initramfs made, QEMU and virtiofsd present, the accelerator chosen. `None` when VMs are off.
async fn vm_host(config: &config::Vms, layout: &Layout) -> anyhow::Result<Option<VmHost>> {
    if !config.enabled {
        return Ok(None);
    }
    let (config, cache, run) = (config.clone(), layout.vm_boot.clone(), layout.vms.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<Option<VmHost>> {
        for (what, program) in [("QEMU", &config.qemu), ("virtiofsd", &config.virtiofsd)] {
            let ran = std::process::Command::new(program)
                .arg("--version")
                .output()
                .map_err(|e| anyhow::anyhow!("{what} ({}): {e}", program.display()))?;
            anyhow::ensure!(
                ran.status.success(),
                "{what} ({}) does not run",
                program.display()
            );
        }
        let boot = vm::boot::prepare(&config.kernel_dir, &config.busybox, &cache)?;
        let mut host = VmHost {
            qemu: config.qemu.clone(),
            virtiofsd: config.virtiofsd.clone(),
            accel: Accel::Tcg,
            tsc_khz: vm::host_tsc_khz(),
            boot,
            busybox: config.busybox.clone(),
            boot_cache: cache,
        };
        host.accel = match config.accel.as_str() {
            "kvm" => Accel::Kvm,
            "tcg" => Accel::Tcg,
            _ => {
                std::fs::create_dir_all(&run)?;
                vm::probe_accel(&host, &run, Duration::from_secs(20))
            }
        };
        Ok(Some(host))
    })
    .await?
}

/// Samples containers every `sample` and moves what they used to the outbox every `report`.
async fn meter(
    drivers: Arc<HostDrivers>,
    outbox: Outbox,
    started: SystemTime,
    sample: std::time::Duration,
    report: std::time::Duration,
) {
    let mut sample_tick = tokio::time::interval(sample);
    let mut report_tick = tokio::time::interval(report);
    report_tick.tick().await;
    loop {
        tokio::select! {
            _ = sample_tick.tick() => {
                let (d, o) = (drivers.clone(), outbox.clone());
                let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                    let samples = d.samples()?;
                    Ok(metering::account(o.state(), &samples, started)?)
                }).await;
                if let Ok(Err(e)) | Err(e) = result.map_err(anyhow::Error::from) {
                    tracing::warn!(error = %e, "metering");
                }
            }
            _ = report_tick.tick() => {
                match metering::flush(&outbox) {
                    Ok(n) => tracing::debug!(contracts = n, "consumption queued"),
                    Err(e) => tracing::warn!(error = %e, "consumption not queued"),
                }
            }
        }
    }
}
