//! The outbox against a real dev chain: consumption lands once, a report that landed before a
//! crash is not sent again, and a report queued while the chain is down lands once it is back.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use zos_agent::{
    chain::ChainView,
    reports::{
        outbox::{Entry, Outbox, Usage},
        sender::Sender,
    },
    state::State,
};
use zos_chain_client::{api, keys::UserKey, ChainClient, Static};
use zos_contracts::{file::DeploymentFile, Capacity};
use zos_testkit::{wait_until, ChainNode};

fn usage(cpu_ms: u64) -> Usage {
    Usage {
        cpu_ms,
        memory_peak: 1 << 20,
        net_rx: 0,
        net_tx: 0,
    }
}

async fn total_cpu(client: &ChainClient, id: u64) -> Result<u64> {
    Ok(client.usage(id, None).await?.map_or(0, |u| u.total.cpu_ms))
}

/// Sends until the outbox is empty.
async fn drain(sender: &Sender, outbox: &Outbox) -> Result<()> {
    wait_until("the outbox to drain", Duration::from_secs(120), || async {
        let _ = sender.pass().await;
        outbox.entries().ok().filter(|e| e.is_empty())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_lands_once_across_a_crash_and_a_chain_outage() -> Result<()> {
    let base = tempfile::tempdir()?;
    let chain = ChainNode::dev_at(base.path()).await?;
    let port = chain.rpc.port().to_string();
    let url = chain.ws_url();
    let client = ChainClient::connect(std::slice::from_ref(&url)).await?;

    // A farm, a funded node, and two contracts of Bob's on it.
    let alice = client.submitter(UserKey::from_uri("//Alice")?);
    alice
        .submit(&api::tx().grid().create_farm(b"outbox".to_vec()))
        .await?;
    let capacity = Capacity {
        cpu_millis: 4000,
        mru: 8 << 30,
        sru: 100 << 30,
        hru: 0,
    };
    let node = zos_e2e::register_node(&client, "outbox", capacity).await?;
    let deployment = DeploymentFile::from_yaml(
        "workloads:\n  - name: web\n    container:\n      image: 127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79\n      entrypoint: [/web]\n      cpu: 1\n      memory: 64MiB\n",
    )?
    .into_deployment(None)?;
    let bob = client.submitter(UserKey::from_uri("//Bob")?);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let outcome = bob
            .submit(
                &api::tx()
                    .deployments()
                    .create_contract(node.account(), Static(deployment.clone())),
            )
            .await?;
        ids.push(
            outcome
                .events
                .find_first::<api::deployments::events::ContractCreated>()
                .context("ContractCreated")??
                .contract_id,
        );
    }
    let (a, b) = (ids[0], ids[1]);

    let db = tempfile::tempdir()?;
    let outbox = Outbox::new(Arc::new(State::open(&db.path().join("db"))?));
    let view = ChainView::connect(std::slice::from_ref(&url), None, node.account()).await;
    let sender = Sender::new(outbox.clone(), client.submitter(node.clone()), view);

    // Lands once.
    outbox.report_consumption(BTreeMap::from([(a, usage(100))]), &[])?;
    drain(&sender, &outbox).await?;
    assert_eq!(total_cpu(&client, a).await?, 100);

    // The agent crashed after the report landed but before it deleted the entry: on restart
    // the entry is still there, with the baseline taken before its first attempt.
    outbox.update(
        b"c/00000000000000000099",
        &Entry::Consumption {
            items: BTreeMap::from([(a, usage(100))]),
            baseline: Some(BTreeMap::from([(a, None)])),
        },
    )?;
    drain(&sender, &outbox).await?;
    assert_eq!(total_cpu(&client, a).await?, 100, "not counted twice");

    // Queued while the chain is down: kept, and sent once it is back.
    let mut chain = chain;
    chain.process.stop(Duration::from_secs(10));
    outbox.report_consumption(BTreeMap::from([(b, usage(50))]), &[])?;
    assert!(sender.pass().await.is_err() || !outbox.entries()?.is_empty());
    assert_eq!(outbox.entries()?.len(), 1, "kept while the chain is down");
    let bp = base.path().to_string_lossy().into_owned();
    let _chain = ChainNode::start(
        "zos-chain --dev (restarted)",
        &["--dev", "--base-path", &bp, "--rpc-port", &port],
        Some(base.path()),
    )
    .await?;
    drain(&sender, &outbox).await?;
    let client = ChainClient::connect(std::slice::from_ref(&url)).await?;
    assert_eq!(total_cpu(&client, b).await?, 50);
    assert_eq!(total_cpu(&client, a).await?, 100);
    Ok(())
}
