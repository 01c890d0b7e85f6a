//! A submission whose connection or node goes away between submission and inclusion executes
//! exactly once, and no wait for finalization outlives the transaction's mortality: against real
//! `zos-chain --dev` processes, killed with SIGKILL and restarted on their base path.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use subxt::utils::{MultiAddress, Static};
use zos_chain_client::{
    api,
    keys::{NodeKey, UserKey},
    AccountId32, ChainClient, ChainError, TxOutcome,
};
use zos_contracts::{file::DeploymentFile, Capacity, Deployment};
use zos_testkit::{
    proxy::{CuttingProxy, TRANSACTION_REPORT},
    wait_until, ChainNode,
};

const UNIT: u128 = 1_000_000_000_000;

fn deployment() -> Deployment {
    DeploymentFile::from_yaml(
        "version: 1
workloads:
  - name: web
    container:
      image: 127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79
      cpu: 1
      memory: 256MiB",
    )
    .unwrap()
    .into_deployment(None)
    .unwrap()
}

/// A node registered under a new farm of Alice's, funded by her.
async fn registered_node(client: &ChainClient) -> Result<AccountId32> {
    let alice = client.submitter(UserKey::from_uri("//Alice")?);
    alice
        .submit(&api::tx().grid().create_farm(b"farm".to_vec()))
        .await?;
    let farm = client
        .farm_by_name("farm", None)
        .await?
        .context("the farm exists")?;
    let node = NodeKey::generate();
    alice
        .submit(&api::tx().grid().approve_node(farm, node.account()))
        .await?;
    alice
        .submit(
            &api::tx()
                .balances()
                .transfer_keep_alive(MultiAddress::Id(node.account()), 10 * UNIT),
        )
        .await?;
    let capacity = Capacity {
        cpu_millis: 4000,
        mru: 8 << 30,
        sru: 100 << 30,
        hru: 0,
    };
    client
        .submitter(node.clone())
        .submit(&api::tx().grid().register_node(
            farm,
            Static(capacity),
            [9; 32],
            Some(b"127.0.0.1:51820".to_vec()),
        ))
        .await?;
    Ok(node.account())
}

/// A dev chain on a base path and a fixed RPC port, so that a restart is the same chain at the
/// same address.
struct Dev {
    base: tempfile::TempDir,
    port: String,
}

impl Dev {
    fn new() -> Result<Dev> {
        Ok(Dev {
            base: tempfile::tempdir()?,
            port: zos_testkit::free_port()?.to_string(),
        })
    }

    /// Starts it: sealing a block per transaction, or every `block_time_ms`.
    async fn start(&self, name: &str, block_time_ms: Option<&str>) -> Result<ChainNode> {
        let bp = self.base.path().to_string_lossy().into_owned();
        let mut args = vec!["--dev", "--base-path", &bp, "--rpc-port", &self.port];
        if let Some(ms) = block_time_ms {
            args.extend(["--dev-block-time", ms]);
        }
        ChainNode::start(name, &args, Some(self.base.path())).await
    }
}

/// Bob's contracts and his account's next nonce, read directly from `chain`.
async fn contracts_and_nonce(chain: &ChainNode) -> Result<(Vec<u64>, u64)> {
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    let bob = UserKey::from_uri("//Bob")?.account();
    Ok((
        client.contracts_of_owner(&bob, None).await?,
        client.next_nonce(&bob).await?,
    ))
}

fn created(outcome: &TxOutcome) -> Result<u64> {
    Ok(outcome
        .events
        .find_first::<api::deployments::events::ContractCreated>()
        .context("a ContractCreated event")??
        .contract_id)
}

#[tokio::test]
async fn a_transaction_included_after_its_connection_was_cut_is_not_signed_again() -> Result<()> {
    let dev = Dev::new()?;
    let mut chain = dev.start("zos-chain --dev", None).await?;
    let node = registered_node(&ChainClient::connect(&[chain.ws_url()]).await?).await?;
    let (none, nonce_before) = contracts_and_nonce(&chain).await?;
    ensure!(none.is_empty());

    // Bob talks to the node through a proxy that cuts his connection as soon as the node reports
    // that it took his transaction: Bob never hears of it again from that connection.
    let proxy = CuttingProxy::start(chain.rpc).await?;
    let bob = ChainClient::connect(&[proxy.ws_url()])
        .await?
        .submitter(UserKey::from_uri("//Bob")?);
    proxy.cut_on(&TRANSACTION_REPORT);
    let call = api::tx()
        .deployments()
        .create_contract(node, Static(deployment()));
    let mut pending = tokio::spawn(async move { bob.submit(&call).await });
    wait_until(
        "the proxy to cut Bob's connection",
        Duration::from_secs(60),
        || {
            let cut = proxy.cuts() == 1 || pending.is_finished();
            async move { cut.then_some(()) }
        },
    )
    .await?;
    if proxy.cuts() == 0 {
        anyhow::bail!(
            "the submission ended before the cut: {:?}",
            (&mut pending).await?.map(|o| o.tx_hash)
        );
    }
    // The node sealed and finalized it meanwhile; then it crashes, and comes back.
    let chain_ref = &chain;
    wait_until(
        "the contract on chain",
        Duration::from_secs(60),
        || async move {
            let (ids, _) = contracts_and_nonce(chain_ref).await.ok()?;
            (!ids.is_empty()).then_some(())
        },
    )
    .await?;
    chain.process.kill9();
    drop(chain);
    let chain = dev.start("zos-chain --dev (restarted)", None).await?;

    let outcome = tokio::time::timeout(Duration::from_secs(120), pending)
        .await
        .context("the submission ends")???;
    let id = created(&outcome)?;
    let (ids, nonce) = contracts_and_nonce(&chain).await?;
    assert_eq!(ids, vec![id], "exactly one contract, the one reported");
    assert_eq!(nonce, nonce_before + 1, "one transaction of Bob's executed");
    Ok(())
}

#[tokio::test]
async fn a_transaction_lost_with_its_node_is_submitted_again_and_executes_once() -> Result<()> {
    let dev = Dev::new()?;
    let mut chain = dev.start("zos-chain --dev", None).await?;
    let node = registered_node(&ChainClient::connect(&[chain.ws_url()]).await?).await?;
    let (_, nonce_before) = contracts_and_nonce(&chain).await?;
    chain.process.stop(Duration::from_secs(10));
    drop(chain);

    // A node that seals a block only every ten minutes takes Bob's transaction into its pool,
    // and is killed before any block: the transaction is gone with the pool.
    let mut chain = dev.start("zos-chain --dev (slow)", Some("600000")).await?;
    let bob = ChainClient::connect(&[chain.ws_url()])
        .await?
        .submitter(UserKey::from_uri("//Bob")?);
    let call = api::tx()
        .deployments()
        .create_contract(node, Static(deployment()));
    let pending = tokio::spawn(async move { bob.submit(&call).await });
    let chain_ref = &chain;
    wait_until(
        "the transaction in the pool",
        Duration::from_secs(60),
        || async move { (chain_ref.pending_transactions().await.ok()? == 1).then_some(()) },
    )
    .await?;
    chain.process.kill9();
    drop(chain);
    let chain = dev.start("zos-chain --dev (restarted)", None).await?;

    let outcome = tokio::time::timeout(Duration::from_secs(120), pending)
        .await
        .context("the submission ends")???;
    let id = created(&outcome)?;
    let (ids, nonce) = contracts_and_nonce(&chain).await?;
    assert_eq!(ids, vec![id], "exactly one contract, the one reported");
    assert_eq!(nonce, nonce_before + 1, "one transaction of Bob's executed");
    Ok(())
}

#[tokio::test]
async fn a_wait_for_finalization_ends_at_the_transactions_deadline() -> Result<()> {
    // No block for ten minutes: the transaction waits in the pool.
    let chain = ChainNode::start(
        "zos-chain --dev (slow)",
        &["--dev", "--tmp", "--dev-block-time", "600000"],
        None,
    )
    .await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    // Valid for 4 blocks of (supposedly) 100 ms: a deadline of 6 blocks and the slack.
    let dave = client
        .submitter(UserKey::from_uri("//Dave")?)
        .with_mortality(4)
        .with_block_time(Duration::from_millis(100));
    let started = Instant::now();
    let e = dave
        .submit(&api::tx().system().remark(b"never sealed".to_vec()))
        .await
        .err()
        .context("a transaction never sealed is not finalized")?;
    let waited = started.elapsed();
    assert!(
        matches!(e, ChainError::NotFinalized { expires_at: 4, .. }),
        "{e}"
    );
    let expected = Duration::from_millis(600) + zos_chain_client::DEADLINE_SLACK;
    assert!(
        waited >= expected && waited < expected + Duration::from_secs(20),
        "waited {waited:?}, the deadline is {expected:?}"
    );
    assert!(
        e.to_string().contains("not finalized before its deadline"),
        "{e}"
    );
    Ok(())
}
