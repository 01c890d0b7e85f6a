//! The node acts only on the chain's word it can check: an endpoint that lags or knows nothing
//! removes nothing.

use std::time::Duration;

use anyhow::{ensure, Result};
use zos_chain_client::keys::UserKey;
use zos_e2e::{container_main_pid, deployment, leftovers, Agent, Grid};
use zos_testkit::{wait_until, ChainNode};

const DEPLOY: Duration = Duration::from_secs(120);

fn sleeper(version: u32, image: &str) -> String {
    format!(
        "version: {version}
workloads:
  - name: app
    version: {version}
    container:
      image: {image}
      entrypoint: [/bin/sleep, '100000']
      cpu: 100m
      memory: 32MiB
"
    )
}

/// Makes `home`'s agent try `urls` in this order instead of the grid's endpoint alone.
fn set_endpoints(home: &zos_e2e::AgentHome, grid: &Grid, urls: &[String]) -> Result<()> {
    let config = std::fs::read_to_string(&home.config)?;
    let one = format!("chain = [\"{}\"]", grid.chain.ws_url());
    ensure!(config.contains(&one), "the test home names one endpoint");
    let list = format!("chain = {urls:?}");
    std::fs::write(&home.config, config.replace(&one, &list))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_knows_nothing_removes_nothing() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let mut grid = Grid::start("e2e-lagging").await?;
    // A second dev chain: the same genesis, and not one of the grid's blocks.
    let empty = ChainNode::dev().await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    // The grid's endpoint first; the empty chain when it is gone.
    set_endpoints(home, &grid, &[grid.chain.ws_url(), empty.ws_url()])?;

    let (agent, node) = grid.start_node(home).await?;
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let d = deployment(&sleeper(1, &grid.image), None)?;
    let id = grid.create(&bob, &node, &d).await?;
    grid.wait_states(id, 1, &[("app", "ok")], DEPLOY).await?;
    let pid = wait_until("the container to run", DEPLOY, || async move {
        container_main_pid(id, "app")
    })
    .await?;
    let processed = grid.chain.finalized_number().await?;
    let lagging = empty.finalized_number().await?;
    ensure!(
        lagging < processed,
        "the empty chain (#{lagging}) is behind the grid (#{processed})"
    );

    // The grid's endpoint goes: the agent fails over to the empty chain, which has no contract.
    grid.chain.process.kill9();
    wait_until(
        "the agent to refuse the lagging endpoint's word",
        Duration::from_secs(150),
        || {
            let seen = agent.process.find_line(|l| {
                l.contains(&format!("contract {id} waits until it catches up"))
                    .then_some(())
            });
            async move { seen }
        },
    )
    .await?;
    // A resync later, nothing was removed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        container_main_pid(id, "app") == Some(pid),
        "the container runs on, the same process"
    );
    ensure!(
        !leftovers(id, home).is_empty(),
        "the contract's files are all there"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_of_another_chain_is_passed_over() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let grid = Grid::start("e2e-other-chain").await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    let (agent, node) = grid.start_node(home).await?;
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let id = grid
        .create(&bob, &node, &deployment(&sleeper(1, &grid.image), None)?)
        .await?;
    grid.wait_states(id, 1, &[("app", "ok")], DEPLOY).await?;
    drop(agent);

    // Another chain (its own genesis) answers first: the agent, pinned to the grid's chain on
    // first contact, passes it over.
    let other = ChainNode::start(
        "zos-chain --chain local",
        &["--chain", "local", "--tmp"],
        None,
    )
    .await?;
    set_endpoints(home, &grid, &[other.ws_url(), grid.chain.ws_url()])?;
    let agent = Agent::start(home)?;
    wait_until(
        "the agent to pass over the other chain",
        Duration::from_secs(60),
        || {
            let seen = agent
                .process
                .find_line(|l| l.contains("serves another chain").then_some(()));
            async move { seen }
        },
    )
    .await?;
    grid.update(&bob, id, &deployment(&sleeper(2, &grid.image), None)?)
        .await?;
    grid.wait_states(id, 2, &[("app", "ok")], DEPLOY).await?;
    Ok(())
}
