//! Reports and billing for real: the agent's consumption and uptime reports land on chain, the
//! chain bills the owner and pays the farmer, and an owner who runs out of funds sees the
//! workloads paused, then removed after the grace period.
//!
//! The chain seals a block every 100 ms (billing visits one bucket per block), and root shortens
//! the billing and grace periods to 10 s and 20 s through their storage keys.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use zos_chain_client::{api, keys::UserKey};
use zos_e2e::{container_main_pid, deployment, wait_gone, Grid, UNIT};
use zos_testkit::{registry::Registry, wait_until, ChainNode};

/// `twox128(":<name>:")`: where a `parameter_types!` storage parameter lives.
fn parameter_key(name: &str) -> Vec<u8> {
    sp_crypto_hashing::twox_128(format!(":{name}:").as_bytes()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_pays_the_farmer_and_running_out_pauses_then_removes() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let chain = ChainNode::start(
        "zos-chain --dev --dev-block-time 100",
        &["--dev", "--tmp", "--dev-block-time", "100"],
        None,
    )
    .await?;
    let grid = Grid::assemble("e2e-billing", Registry::start(), chain).await?;
    let alice = &grid.alice;

    // Root: bill every 10 s, 20 s of grace, and a price that empties a small purse quickly.
    let set_storage = api::Call::System(api::system::Call::set_storage {
        items: vec![
            (parameter_key("BillingPeriod"), 10u64.to_le_bytes().to_vec()),
            (parameter_key("GracePeriod"), 20u64.to_le_bytes().to_vec()),
        ],
    });
    alice.submit(&api::tx().sudo().sudo(set_storage)).await?;
    let mut pricing = grid.client.pricing(None).await?;
    // 0.1 UNIT a second for one vCPU: 0.01 UNIT a second for the 100m container below.
    pricing.cru_per_hour = 360 * UNIT;
    alice
        .submit(&api::tx().sudo().sudo(api::Call::Deployments(
            api::deployments::Call::set_pricing { pricing },
        )))
        .await?;

    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    let (mut agent, node) = grid.start_node(home).await?;

    // An owner with about 70 s of funds once the deposit (about 0.15 UNIT) and the first
    // period (0.1 UNIT) are held: longer than the 30 s between two state reports, so the
    // node's `paused` report is not held back by its `ok` one.
    let owner_key = UserKey::from_uri("//BillingOwner")?;
    let owner_account = owner_key.account();
    grid.fund(&owner_account, UNIT).await?;
    let owner = grid.client.submitter(owner_key);
    let farmer_before = grid.client.balance(&alice.account().clone(), None).await?;
    let id = grid
        .create(
            &owner,
            &node,
            &deployment(
                &format!(
                    "workloads:\n  - name: busy\n    container:\n      image: {}\n      entrypoint: [/bin/sh, -c, 'while true; do :; done']\n      cpu: 100m\n      memory: 16MiB\n",
                    grid.image
                ),
                None,
            )?,
        )
        .await?;
    grid.wait_states(id, 1, &[("busy", "ok")], Duration::from_secs(120))
        .await?;
    let pid = container_main_pid(id, "busy").context("the container runs")?;
    let owner_after_create = grid.client.balance(&owner_account, None).await?;

    // Consumption and uptime reach the chain.
    let client = grid.client.clone();
    let usage = wait_until("a consumption report", Duration::from_secs(120), || {
        let client = client.clone();
        async move {
            client
                .usage(id, None)
                .await
                .ok()
                .flatten()
                .filter(|u| u.last_report.is_some() && u.total.cpu_ms > 0)
        }
    })
    .await?;
    ensure!(usage.total.memory_peak > 0, "memory reported: {usage:?}");
    let up = grid.client.node(&node, None).await?.context("node")?;
    ensure!(up.uptime > 0, "uptime reported: {up:?}");

    // Billing: the owner pays, the farmer (Alice, who submits nothing meanwhile) is paid.
    let client = grid.client.clone();
    wait_until("the owner to be billed", Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            let now = client.balance(&owner_account, None).await.ok()?;
            (now < owner_after_create).then_some(())
        }
    })
    .await?;
    let farmer_now = grid.client.balance(&alice.account().clone(), None).await?;
    ensure!(
        farmer_now > farmer_before,
        "the farmer was paid: {farmer_before} -> {farmer_now}"
    );

    // Out of funds: paused (frozen, `paused` on chain), then removed after the grace period.
    grid.wait_states(id, 1, &[("busy", "paused")], Duration::from_secs(120))
        .await?;
    let freezer = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer/zos/{}/freezer.state",
        zos_e2e::container_id(id, "busy")
    ))?;
    ensure!(freezer.trim() == "FROZEN", "freezer: {freezer}");
    ensure!(
        container_main_pid(id, "busy") == Some(pid),
        "paused, not restarted"
    );
    let client = grid.client.clone();
    wait_until(
        "the contract to be deleted",
        Duration::from_secs(120),
        || {
            let client = client.clone();
            async move {
                client
                    .contract(id, None)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await?;
    wait_gone(id, home, Duration::from_secs(60)).await?;
    agent.process.check_running()?;
    Ok(())
}
