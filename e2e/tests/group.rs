//! A group deploys and deletes with `zosctl`, by pallet-multisig consensus, and the node agent
//! follows: three members (//Alice, //Bob, //Charlie), two must approve. The workload is named
//! `team-app`, so that its container (`zos-<id>-team-app`) cannot be another test's.

use std::{path::Path, process::Output, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use zos_chain_client::AccountId32;
use zos_e2e::{container_main_pid, process_env, wait_gone, Grid, UNIT};
use zos_testkit::{binary, wait_until};

const DEPLOY: Duration = Duration::from_secs(120);

/// `zosctl ARGS` with its own home, against the grid's chain.
async fn zosctl(home: &Path, grid: &Grid, args: &[&str]) -> Result<Output> {
    let out = tokio::process::Command::new(binary("zosctl", "ZOSCTL_BIN")?)
        .args(args)
        .env("ZOSCTL_HOME", home)
        .env("ZOSCTL_URL", grid.chain.ws_url())
        .env_remove("ZOSCTL_KEY")
        .output()
        .await?;
    Ok(out)
}

/// `zosctl ARGS -o json`, which must succeed.
async fn zosctl_json(home: &Path, grid: &Grid, args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = zosctl(home, grid, &all).await?;
    if !out.status.success() {
        bail!(
            "zosctl {args:?} exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "zosctl {args:?} printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deploys_and_deletes_only_when_two_of_three_approve() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let grid = Grid::start("e2e-group").await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    let (mut agent, node) = grid.start_node(home).await?;
    let ctl = dir.path().join("zosctl");

    // The group, and its funds.
    let team = zosctl_json(
        &ctl,
        &grid,
        &[
            "group",
            "create",
            "team",
            "--members",
            "//Alice,//Bob,//Charlie",
            "--threshold",
            "2",
        ],
    )
    .await?;
    let group: AccountId32 = team["account"]
        .as_str()
        .context("the group's account")?
        .parse()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    zosctl_json(&ctl, &grid, &["--key", "//Alice", "transfer", "team", "10"]).await?;
    ensure!(grid.client.balance(&group, None).await? == 10 * UNIT);

    // Alice proposes a deployment: nothing is deployed.
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1
description: the team's app
workloads:
  - name: team-app
    container:
      image: {}
      entrypoint: [/bin/sleep, '100000']
      env: {{ TOKEN: {{ secret: s3cr3t }} }}
      cpu: 100m
      memory: 32MiB
",
            grid.image
        ),
    )?;
    let file = file.to_string_lossy().into_owned();
    let node_arg = node.to_string();
    let proposed = zosctl_json(
        &ctl,
        &grid,
        &[
            "--key",
            "//Alice",
            "apply",
            "-f",
            &file,
            "--node",
            &node_arg,
            "--as-group",
            "team",
        ],
    )
    .await?;
    let hash = proposed["call_hash"]
        .as_str()
        .context("a call hash")?
        .to_string();
    ensure!(grid.client.contracts_of_node(&node, None).await?.is_empty());
    ensure!(grid
        .client
        .contracts_of_owner(&group, None)
        .await?
        .is_empty());

    // Every member sees what they would approve.
    let pending = zosctl_json(&ctl, &grid, &["group", "pending", "team"]).await?;
    let call = &pending[0]["call"];
    ensure!(
        pending[0]["call_hash"] == hash.as_str()
            && call["call"] == "create_contract"
            && call["node"] == node_arg.as_str()
            && call["workloads"][0]["name"] == "team-app"
            && call["workloads"][0]["image"] == grid.image.as_str(),
        "the pending proposal with its call decoded: {pending}"
    );

    // Someone outside the group cannot approve.
    let out = zosctl(
        &ctl,
        &grid,
        &["--key", "//Dave", "group", "approve", "team", &hash],
    )
    .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(3) && stderr.contains("is not a member of the group"),
        "a non-member's approval is refused before it is sent: {:?} {stderr}",
        out.status.code()
    );

    // Bob's approval reaches the threshold: the contract is the group's and the node runs it.
    let approved = zosctl_json(
        &ctl,
        &grid,
        &["--key", "//Bob", "group", "approve", "team", &hash],
    )
    .await?;
    ensure!(approved["executed"] == true, "{approved}");
    ensure!(
        approved["workloads"][0]["status"] == "ok",
        "zosctl waited for the node: {approved}"
    );
    let id = approved["contract"].as_u64().context("the contract id")?;
    let contract = grid.client.contract(id, None).await?.context("on chain")?;
    ensure!(contract.owner == group, "owned by the group");
    grid.wait_states(id, 1, &[("team-app", "ok")], DEPLOY)
        .await?;
    let pid = wait_until("the container to run", DEPLOY, || async move {
        container_main_pid(id, "team-app")
    })
    .await?;
    ensure!(
        process_env(pid, "TOKEN").as_deref() == Some("s3cr3t"),
        "the secret was sealed to the node and opened there"
    );
    let described = zosctl_json(&ctl, &grid, &["describe", &id.to_string()]).await?;
    ensure!(described["workloads"][0]["status"] == "ok", "{described}");

    // Charlie alone cannot delete it: not directly, and a proposal alone does nothing.
    let out = zosctl(
        &ctl,
        &grid,
        &["--key", "//Charlie", "delete", &id.to_string()],
    )
    .await?;
    ensure!(
        out.status.code() == Some(4)
            && String::from_utf8_lossy(&out.stderr).contains("Deployments::NotOwner"),
        "only the group owns it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deletion = zosctl_json(
        &ctl,
        &grid,
        &[
            "--key",
            "//Charlie",
            "delete",
            &id.to_string(),
            "--as-group",
            "team",
        ],
    )
    .await?;
    let delete_hash = deletion["call_hash"].as_str().context("a call hash")?;
    ensure!(grid.client.contract(id, None).await?.is_some());
    ensure!(
        container_main_pid(id, "team-app") == Some(pid),
        "still running"
    );

    // With Alice's approval the group deletes it, and the node tears it down.
    let deleted = zosctl_json(
        &ctl,
        &grid,
        &["--key", "//Alice", "group", "approve", "team", delete_hash],
    )
    .await?;
    ensure!(
        deleted["executed"] == true && deleted["call"] == "cancel_contract",
        "{deleted}"
    );
    ensure!(grid.client.contract(id, None).await?.is_none());
    wait_gone(id, home, DEPLOY).await?;
    ensure!(zosctl_json(&ctl, &grid, &["group", "pending", "team"]).await? == Value::Array(vec![]));
    agent.process.check_running()?;
    Ok(())
}
