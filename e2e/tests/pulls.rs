//! Image pulls for real: the agent pulls in the background, so a registry that drips bytes holds
//! none of its reconcile workers, and the pull ends at its deadline with an error that names the
//! image and the kind of failure only.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use zos_chain_client::keys::UserKey;
use zos_e2e::{container_main_pid, deployment, Agent, DrippingRegistry, Grid};

fn sleeper(image: &str) -> String {
    format!(
        "workloads:\n  - name: app\n    container:\n      image: {image}\n      entrypoint: [/bin/sleep, '100000']\n      cpu: 100m\n      memory: 16MiB\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_drips_bytes_delays_no_other_contract_and_its_pull_ends_at_the_deadline(
) -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let grid = Grid::start("e2e-pulls").await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    home.offer_cpus(16)?;
    let deadline = Duration::from_secs(30);
    let config = std::fs::read_to_string(&home.config)?;
    std::fs::write(
        &home.config,
        format!(
            "{config}\n[images]\npull_deadline = {}\nstall_timeout = 10\n",
            deadline.as_secs()
        ),
    )?;
    let (mut agent, node) = grid.start_node(home).await?;
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);

    // An image behind a proxy that passes on 64 bytes every 200 ms: it would take an hour.
    let slow =
        zos_e2e::push_busybox_with(&grid.registry.addr, "zos/slow", &[("etc/slow", "1")]).await?;
    let drip = DrippingRegistry::start(&grid.registry.addr, 64, Duration::from_millis(200)).await?;
    let slow = slow.replacen(&grid.registry.addr, &drip.addr, 1);

    // As many contracts wait for it as the agent has reconcile workers.
    let started = Instant::now();
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(
            grid.create(&bob, &node, &deployment(&sleeper(&slow), None)?)
                .await?,
        );
    }
    // Another contract, with an image from a registry that answers: it runs meanwhile.
    let other = grid
        .create(&bob, &node, &deployment(&sleeper(&grid.image), None)?)
        .await?;
    grid.wait_states(other, 1, &[("app", "ok")], Duration::from_secs(120))
        .await?;
    ensure!(container_main_pid(other, "app").is_some());
    let other_ran = started.elapsed();
    ensure!(drip.requests() > 0, "the slow pull was under way");
    for id in &waiting {
        ensure!(
            grid.states(*id).await?.is_none(),
            "contract {id} reported before its pull ended"
        );
    }

    // The deadline: each waiting workload is an error naming the image and the kind, nothing of
    // what the registry said.
    let expected = format!("pulling {slow}: deadline exceeded");
    for id in &waiting {
        let lines = grid
            .wait_states(
                *id,
                1,
                &[("app", "error")],
                deadline + Duration::from_secs(90),
            )
            .await?;
        ensure!(lines[0].2 == expected, "{lines:?}");
    }
    let failed = started.elapsed();
    ensure!(failed >= deadline, "the pull ended after {failed:?}");
    eprintln!("the other contract ran after {other_ran:?}; the pull gave up after {failed:?}");

    // `zos-agent status` counts the store: the busybox image is in it.
    let status = Agent::status(home)?;
    let store = &status["image_store"];
    ensure!(
        store["images"].as_u64() == Some(1) && store["bytes"].as_u64() > Some(500_000),
        "{status}"
    );
    agent.process.check_running()?;
    Ok(())
}
