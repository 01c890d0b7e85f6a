//! The client against a real `zos-chain --dev`.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context, Result};
use subxt::utils::{MultiAddress, Static};
use zos_chain_client::{
    api, events, keys::NodeKey, keys::UserKey, ChainClient, ChainEvent, DeploymentsError,
};
use zos_contracts::{file::DeploymentFile, Capacity, Deployment};
use zos_testkit::{wait_until, ChainNode};

const UNIT: u128 = 1_000_000_000_000;

fn deployment(version: u32) -> Deployment {
    DeploymentFile::from_yaml(&format!(
        "version: {version}
workloads:
  - name: web
    container:
      image: 127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79
      cpu: 1
      memory: 256MiB"
    ))
    .unwrap()
    .into_deployment(None)
    .unwrap()
}

fn capacity() -> Capacity {
    Capacity {
        cpu_millis: 4000,
        mru: 8 << 30,
        sru: 100 << 30,
        hru: 0,
    }
}

/// A registered node, funded by Alice, under a new farm of Alice's.
async fn farm_and_node(client: &ChainClient, farm_name: &str) -> Result<NodeKey> {
    let alice = client.submitter(UserKey::from_uri("//Alice")?);
    alice
        .submit(&api::tx().grid().create_farm(farm_name.as_bytes().to_vec()))
        .await?;
    let farm = client
        .farm_by_name(farm_name, None)
        .await?
        .context("the farm exists")?;
    let node = NodeKey::generate();
    assert!(!client.node_approved(farm, &node.account(), None).await?);
    alice
        .submit(&api::tx().grid().approve_node(farm, node.account()))
        .await?;
    assert!(client.node_approved(farm, &node.account(), None).await?);
    alice
        .submit(
            &api::tx()
                .balances()
                .transfer_keep_alive(MultiAddress::Id(node.account()), 10 * UNIT),
        )
        .await?;
    client
        .submitter(node.clone())
        .submit(&api::tx().grid().register_node(
            farm,
            Static(capacity()),
            [9; 32],
            Some(b"127.0.0.1:51820".to_vec()),
        ))
        .await?;
    Ok(node)
}

#[tokio::test]
async fn every_call_and_read() -> Result<()> {
    let chain = ChainNode::dev().await?;
    // The first endpoint is down: the client goes on to the next.
    let dead = format!("ws://127.0.0.1:{}", zos_testkit::free_port()?);
    let client = ChainClient::connect(&[dead, chain.ws_url()]).await?;
    assert_eq!(client.url(), chain.ws_url());
    let node = farm_and_node(&client, "farm-a").await?;

    let farm_id = client.farm_by_name("farm-a", None).await?.unwrap();
    let farm = client.farm(farm_id, None).await?.unwrap();
    assert_eq!(farm.owner, UserKey::from_uri("//Alice")?.account());
    let n = client
        .node(&node.account(), None)
        .await?
        .context("the node is registered")?;
    assert_eq!(
        (n.farm, n.capacity, n.wg_public_key),
        (farm_id, capacity(), [9; 32])
    );

    let node_tx = client.submitter(node.clone());
    let bigger = Capacity {
        cpu_millis: 8000,
        ..capacity()
    };
    node_tx
        .submit(&api::tx().grid().update_node(
            Static(bigger),
            [8; 32],
            Some(b"127.0.0.1:51821".to_vec()),
        ))
        .await?;
    assert_eq!(
        client.node(&node.account(), None).await?.unwrap().capacity,
        bigger
    );

    let bob = client.submitter(UserKey::from_uri("//Bob")?);
    let outcome = bob
        .submit(
            &api::tx()
                .deployments()
                .create_contract(node.account(), Static(deployment(1))),
        )
        .await?;
    let created = outcome
        .events
        .find_first::<api::deployments::events::ContractCreated>()
        .context("a ContractCreated event")??;
    let id = created.contract_id;
    let contract = client.contract(id, None).await?.unwrap();
    assert_eq!(contract.deployment, deployment(1));
    assert_eq!(contract.hash, deployment(1).hash());
    assert_eq!(
        client.contracts_of_node(&node.account(), None).await?,
        vec![id]
    );

    bob.submit(
        &api::tx()
            .deployments()
            .update_contract(id, Static(deployment(2))),
    )
    .await?;
    assert_eq!(
        client.contract(id, None).await?.unwrap().deployment.version,
        2
    );

    let report = api::runtime_types::pallet_deployments::types::WorkloadReport {
        name: api::runtime_types::bounded_collections::bounded_vec::BoundedVec(b"web".to_vec()),
        version: 1,
        status: api::runtime_types::pallet_deployments::types::WorkloadStatus::Ok,
        message: api::runtime_types::bounded_collections::bounded_vec::BoundedVec(Vec::new()),
    };
    node_tx
        .submit(&api::tx().deployments().report_workloads(
            id,
            2,
            api::runtime_types::bounded_collections::bounded_vec::BoundedVec(vec![report]),
        ))
        .await?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    node_tx
        .submit(&api::tx().grid().report_uptime(120, now))
        .await?;
    assert_eq!(
        client.node(&node.account(), None).await?.unwrap().uptime,
        120
    );
    let used = api::runtime_types::pallet_deployments::types::Consumption {
        cpu_ms: 1_000,
        memory_peak: 1 << 20,
        net_rx: 4096,
        net_tx: 4096,
    };
    node_tx
        .submit(&api::tx().deployments().report_consumption(
            api::runtime_types::bounded_collections::bounded_vec::BoundedVec(vec![(id, used)]),
        ))
        .await?;

    // The admin (sudo) sets prices.
    let mut pricing = client.pricing(None).await?;
    pricing.network_gib += 1;
    let set = api::Call::Deployments(api::deployments::Call::set_pricing {
        pricing: pricing.clone(),
    });
    client
        .submitter(UserKey::from_uri("//Alice")?)
        .submit(&api::tx().sudo().sudo(set))
        .await?;
    assert_eq!(client.pricing(None).await?.network_gib, pricing.network_gib);

    let before = client
        .balance(&UserKey::from_uri("//Bob")?.account(), None)
        .await?;
    assert!(before > 0);
    let pricing = client.pricing(None).await?;
    assert!(pricing.cru_per_hour > 0);
    bob.submit(&api::tx().deployments().cancel_contract(id))
        .await?;
    assert!(client.contract(id, None).await?.is_none());
    assert!(client
        .contracts_of_node(&node.account(), None)
        .await?
        .is_empty());

    // Without contracts the node may leave, and then its farm.
    node_tx
        .submit(&api::tx().grid().remove_node(node.account()))
        .await?;
    assert!(client.node(&node.account(), None).await?.is_none());
    client
        .submitter(UserKey::from_uri("//Alice")?)
        .submit(&api::tx().grid().remove_farm(farm_id))
        .await?;
    assert!(client.farm(farm_id, None).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_refused_call_comes_back_as_the_named_pallet_error() -> Result<()> {
    let chain = ChainNode::dev().await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    let bob = client.submitter(UserKey::from_uri("//Bob")?);
    let nobody = NodeKey::generate().account();
    let e = bob
        .submit(
            &api::tx()
                .deployments()
                .create_contract(nobody, Static(deployment(1))),
        )
        .await
        .err()
        .context("a contract on an unknown node is refused")?;
    let failure = e
        .dispatch()
        .with_context(|| format!("a dispatch error, not: {e}"))?;
    assert_eq!(
        (failure.pallet.as_str(), failure.error.name()),
        ("Deployments", "UnknownNode")
    );
    assert!(
        matches!(failure.deployments(), Some(DeploymentsError::UnknownNode)),
        "decoded into the generated enum: {failure:?}"
    );
    // The nonce is still right after a refusal.
    bob.submit(&api::tx().system().remark(b"still fine".to_vec()))
        .await?;
    Ok(())
}

#[tokio::test]
async fn two_hundred_concurrent_transactions_from_one_key() -> Result<()> {
    let chain = ChainNode::dev().await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    let charlie = UserKey::from_uri("//Charlie")?;
    let submitter = client.submitter(charlie.clone());
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let s = submitter.clone();
            tokio::spawn(async move {
                s.submit(&api::tx().system().remark(i.to_le_bytes().to_vec()))
                    .await
            })
        })
        .collect();
    let mut hashes = BTreeSet::new();
    let mut failures = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await? {
            Ok(outcome) => {
                hashes.insert(outcome.tx_hash);
            }
            Err(e) => failures.push(format!("remark {i}: {e}")),
        }
    }
    assert!(failures.is_empty(), "failed submissions: {failures:#?}");
    assert_eq!(hashes.len(), 200, "every transaction finalized once");
    assert_eq!(
        client.next_nonce(&charlie.account()).await?,
        200,
        "no nonce lost or doubled"
    );
    Ok(())
}

#[tokio::test]
async fn the_event_stream_survives_a_node_restart_without_gap_or_duplicate() -> Result<()> {
    let base = tempfile::tempdir()?;
    let port = zos_testkit::free_port()?.to_string();
    let bp = base.path().to_string_lossy().into_owned();
    let args = ["--dev", "--base-path", &bp, "--rpc-port", &port];
    let mut chain = ChainNode::start("zos-chain --dev", &args, Some(base.path())).await?;
    let url = chain.ws_url();
    let mut blocks = events::follow_finalized(vec![url.clone()], None, 1);

    let alice = UserKey::from_uri("//Alice")?;
    let farms_before = ["before-1", "before-2", "before-3"];
    {
        let client = ChainClient::connect(std::slice::from_ref(&url)).await?;
        let s = client.submitter(alice.clone());
        for name in farms_before {
            s.submit(&api::tx().grid().create_farm(name.as_bytes().to_vec()))
                .await?;
        }
    }
    chain.process.stop(Duration::from_secs(10));
    drop(chain);
    let _chain = ChainNode::start("zos-chain --dev (restarted)", &args, Some(base.path())).await?;
    {
        let client = ChainClient::connect(std::slice::from_ref(&url)).await?;
        let s = client.submitter(alice.clone());
        s.submit(&api::tx().grid().create_farm(b"after".to_vec()))
            .await?;
    }

    let mut numbers = Vec::new();
    let mut farms = 0;
    let got_all = wait_until("the four farms' blocks", Duration::from_secs(60), || {
        while let Ok(b) = blocks.try_recv() {
            farms += b
                .events
                .iter()
                .filter(|e| matches!(e, ChainEvent::FarmCreated { .. }))
                .count();
            numbers.push(b.number);
        }
        let done = farms >= 4;
        async move { done.then_some(()) }
    })
    .await;
    got_all?;
    let expected: Vec<u64> = (1..=*numbers.last().unwrap()).collect();
    assert_eq!(numbers, expected, "every block once, in order");
    assert_eq!(farms, 4);
    Ok(())
}

#[tokio::test]
async fn a_submission_outlives_a_node_restart() -> Result<()> {
    let base = tempfile::tempdir()?;
    let port = zos_testkit::free_port()?.to_string();
    let bp = base.path().to_string_lossy().into_owned();
    let args = ["--dev", "--base-path", &bp, "--rpc-port", &port];
    let mut chain = ChainNode::start("zos-chain --dev", &args, Some(base.path())).await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    let dave = UserKey::from_uri("//Dave")?;
    let submitter = client.submitter(dave.clone());
    submitter
        .submit(&api::tx().system().remark(b"before".to_vec()))
        .await?;

    chain.process.stop(Duration::from_secs(10));
    drop(chain);
    // Submitted while the node is down: retried, on a new connection, until it is back.
    let pending = tokio::spawn({
        let s = submitter.clone();
        async move {
            s.submit(&api::tx().system().remark(b"during".to_vec()))
                .await
        }
    });
    let chain = ChainNode::start("zos-chain --dev (restarted)", &args, Some(base.path())).await?;
    pending.await??;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    assert_eq!(client.next_nonce(&dave.account()).await?, 2);
    Ok(())
}

/// The account of a `pallet-multisig` group.
fn group_account(
    members: &[subxt::utils::AccountId32],
    threshold: u16,
) -> subxt::utils::AccountId32 {
    use blake2::{digest::consts::U32, Blake2b, Digest};
    use codec::Encode;
    let mut sorted = members.to_vec();
    sorted.sort();
    let entropy = (b"modlpy/utilisuba", sorted, threshold).encode();
    subxt::utils::AccountId32(Blake2b::<U32>::digest(&entropy).into())
}

#[tokio::test]
async fn a_group_call_executes_when_the_threshold_approves_it() -> Result<()> {
    let chain = ChainNode::dev().await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    let (alice, bob, charlie) = (
        UserKey::from_uri("//Alice")?,
        UserKey::from_uri("//Bob")?,
        UserKey::from_uri("//Charlie")?,
    );
    let members = [alice.account(), bob.account(), charlie.account()];
    let group = group_account(&members, 2);
    let others = |me: &UserKey| {
        let mut o: Vec<_> = members
            .iter()
            .filter(|a| **a != me.account())
            .copied()
            .collect();
        o.sort();
        o
    };
    client
        .submitter(alice.clone())
        .submit(
            &api::tx()
                .balances()
                .transfer_keep_alive(MultiAddress::Id(group), 10 * UNIT),
        )
        .await?;

    let call = api::Call::Grid(api::grid::Call::create_farm {
        name: b"group-farm".to_vec(),
    });
    let max_weight = api::runtime_types::sp_weights::weight_v2::Weight {
        ref_time: 10_000_000_000,
        proof_size: 1_000_000,
    };
    // A's approval: nothing runs.
    client
        .submitter(alice.clone())
        .submit(&api::tx().multisig().as_multi(
            2,
            others(&alice),
            None,
            call.clone(),
            max_weight.clone(),
        ))
        .await?;
    assert!(client.farm_by_name("group-farm", None).await?.is_none());
    // B's approval reaches the threshold: the call runs as the group.
    let at = client.at(None).await?;
    let pending = at
        .storage()
        .iter(api::storage().multisig().multisigs(), (group,))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .next()
        .await
        .context("a pending multisig operation")?
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .value()
        .decode()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let outcome = client
        .submitter(bob.clone())
        .submit(&api::tx().multisig().as_multi(
            2,
            others(&bob),
            Some(pending.when),
            call,
            max_weight,
        ))
        .await?;
    assert!(outcome
        .events
        .has::<api::multisig::events::MultisigExecuted>());
    let farm_id = client
        .farm_by_name("group-farm", None)
        .await?
        .context("the group's farm exists")?;
    assert_eq!(client.farm(farm_id, None).await?.unwrap().owner, group);
    Ok(())
}
