//! From contract finalized to container process running, through the whole grid (dev chain,
//! registry, `zos-agent`, libcontainer), beside a bare `runc run -d` of the same busybox bundle;
//! and the agent's resident memory idle and with 100 contracts.
//!
//! `cargo bench --profile dev -p zos-e2e --bench deploy` (as root; needs Debian's runc).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use zos_chain_client::keys::UserKey;
use zos_e2e::{busybox_rootfs, clean_host, container_pids, deployment, AgentHome, Grid};
use zos_host::{
    container::{write_bundle, ContainerSpec},
    WorkloadId,
};
use zos_testkit::wait_until;

const DEPLOYS: usize = 20;
const CONTRACTS: usize = 100;

fn sleeper(image: &str) -> String {
    format!(
        "workloads:\n  - name: app\n    container:\n      image: {image}\n      entrypoint: [/bin/sleep, '100000']\n      cpu: 10m\n      memory: 16MiB\n"
    )
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name:<44} n={:<3} p50 {:>7.1} ms   p99 {:>7.1} ms   min {:>7.1} ms   max {:>7.1} ms",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
}

/// `runc run -d` of a bundle made by the agent's own spec writer, until the process runs.
fn runc(rounds: usize) -> Result<Vec<Duration>> {
    let rootfs = busybox_rootfs()?;
    let bundle = tempfile::tempdir()?;
    let spec = ContainerSpec {
        id: WorkloadId::new(999_999, "bench").map_err(|e| anyhow::anyhow!("{e}"))?,
        rootfs: rootfs.path().to_path_buf(),
        args: vec!["/bin/sleep".into(), "100000".into()],
        env: vec![],
        workdir: None,
        cpu_millis: 10,
        memory: 16 << 20,
        mounts: vec![],
        labels: Default::default(),
        network_namespace: None,
    };
    write_bundle(&spec, bundle.path()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let log = tempfile::NamedTempFile::new()?;
    let mut times = Vec::new();
    for i in 0..rounds {
        let id = format!("zos-bench-runc-{i}");
        let started = Instant::now();
        let out = Command::new("runc")
            .args(["run", "--detach", "--bundle"])
            .arg(bundle.path())
            .arg(&id)
            // Not pipes: the detached container keeps its stdio open.
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen()?)
            .status()
            .context("runc (Debian package runc)")?;
        let took = started.elapsed();
        if !out.success() {
            bail!("runc run: {}", std::fs::read_to_string(log.path())?);
        }
        times.push(took);
        let _ = Command::new("runc")
            .args(["delete", "--force", &id])
            .output();
    }
    Ok(times)
}

#[tokio::main]
async fn main() -> Result<()> {
    let grid = Grid::start("bench").await?;
    let dir = tempfile::tempdir()?;
    let home = AgentHome::new(
        &dir.path().join("agent"),
        &grid.chain.ws_url(),
        grid.farm_id,
    )?;
    // Room for 100 one-vCPU contracts on this 2-core machine: the farmer offers more than it has.
    home.offer_cpus(256)?;
    let result = run(&grid, &home).await;
    clean_host(&home);
    result
}

async fn run(grid: &Grid, home: &AgentHome) -> Result<()> {
    let (mut agent, node) = grid.start_node(home).await?;
    agent.show_log_on_drop = false;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_kib(agent.process.pid())?;
    // The baseline while everything else is idle.
    let runc_times = runc(DEPLOYS)?;

    let owner = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let d = deployment(&sleeper(&grid.image), None)?;
    // One deploy first, so that the image is in the store (cached) for the timed ones.
    let mut ids = vec![grid.create(&owner, &node, &d).await?];
    wait_until("the first container", Duration::from_secs(120), || {
        let id = ids[0];
        async move { (!container_pids(id, "app").is_empty()).then_some(()) }
    })
    .await?;

    let mut times = Vec::new();
    for _ in 0..DEPLOYS {
        let id = grid.create(&owner, &node, &d).await?;
        let finalized = Instant::now();
        let deadline = finalized + Duration::from_secs(60);
        while container_pids(id, "app").is_empty() {
            ensure!(
                Instant::now() < deadline,
                "contract {id} did not run in 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        times.push(finalized.elapsed());
        ids.push(id);
    }

    while ids.len() < CONTRACTS {
        ids.push(grid.create(&owner, &node, &d).await?);
    }
    let all = ids.clone();
    wait_until("100 containers", Duration::from_secs(600), || {
        let all = all.clone();
        async move {
            all.iter()
                .all(|id| !container_pids(*id, "app").is_empty())
                .then_some(())
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let loaded = rss_kib(agent.process.pid())?;
    agent.process.check_running()?;

    println!();
    report("contract finalized -> container running", times);
    report("runc run -d (same busybox bundle)", runc_times);
    println!(
        "zos-agent RSS: idle {:.1} MiB, with {CONTRACTS} contracts {:.1} MiB",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0
    );
    drop(agent);
    Ok(())
}
