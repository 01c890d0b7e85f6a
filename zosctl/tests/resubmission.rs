//! `zosctl apply` whose connection is cut right after the node took its transaction, and whose
//! node then crashes: the binary, against a real `zos-chain --dev` killed with SIGKILL and
//! restarted on its base path. It reports the one contract it made, and makes no other.

use std::{process::Command, time::Duration};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use zos_chain_client::{api, keys::UserKey, ChainClient};
use zos_contracts::Capacity;
use zos_testkit::{
    proxy::{CuttingProxy, TRANSACTION_REPORT},
    wait_until, ChainNode,
};

const DEPLOYMENT: &str = "version: 1
workloads:
  - name: web
    container:
      image: 127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79
      cpu: 1
      memory: 256MiB
";

#[tokio::test]
async fn apply_makes_exactly_one_contract_when_its_connection_is_cut_and_the_node_crashes(
) -> Result<()> {
    let base = tempfile::tempdir()?;
    let bp = base.path().to_string_lossy().into_owned();
    let port = zos_testkit::free_port()?.to_string();
    let args = ["--dev", "--base-path", &bp, "--rpc-port", &port];
    let mut chain = ChainNode::start("zos-chain --dev", &args, Some(base.path())).await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    client
        .submitter(UserKey::from_uri("//Alice")?)
        .submit(&api::tx().grid().create_farm(b"farm-a".to_vec()))
        .await?;
    let capacity = Capacity {
        cpu_millis: 8000,
        mru: 16 << 30,
        sru: 100 << 30,
        hru: 0,
    };
    let node = zos_e2e::register_node(&client, "farm-a", capacity)
        .await?
        .account();
    let bob = UserKey::from_uri("//Bob")?.account();
    let nonce_before = client.next_nonce(&bob).await?;

    // zosctl talks to the node through a proxy that cuts its connection as soon as the node
    // reports that it took the transaction.
    let proxy = CuttingProxy::start(chain.rpc).await?;
    proxy.cut_on(&TRANSACTION_REPORT);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, DEPLOYMENT)?;
    let mut zosctl = Command::new(assert_cmd::cargo::cargo_bin("zosctl"));
    zosctl
        .env("ZOSCTL_HOME", dir.path().join("home"))
        .env("ZOSCTL_URL", proxy.ws_url())
        .env_remove("ZOSCTL_KEY")
        .args(["--key", "//Bob", "apply", "-f"])
        .arg(&file)
        .args(["--node", &node.to_string(), "--no-wait", "-o", "json"]);
    let apply = tokio::task::spawn_blocking(move || zosctl.output());
    wait_until(
        "the proxy to cut zosctl's connection",
        Duration::from_secs(60),
        || {
            let done = proxy.cuts() == 1 || apply.is_finished();
            async move { done.then_some(()) }
        },
    )
    .await?;
    ensure!(
        proxy.cuts() == 1,
        "zosctl ended before its connection was cut: {:?}",
        apply.await?
    );
    // The node sealed and finalized the contract meanwhile; then it crashes, and comes back.
    let client_ref = &client;
    wait_until(
        "the contract on chain",
        Duration::from_secs(60),
        || async move {
            let ids = client_ref.contracts_of_owner(&bob, None).await.ok()?;
            (!ids.is_empty()).then_some(())
        },
    )
    .await?;
    chain.process.kill9();
    drop(chain);
    let chain = ChainNode::start("zos-chain --dev (restarted)", &args, Some(base.path())).await?;

    let out = tokio::time::timeout(Duration::from_secs(180), apply)
        .await
        .context("zosctl apply ends")???;
    ensure!(
        out.status.success(),
        "zosctl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "zosctl printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let id = printed["contract"].as_u64().context("a contract id")?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    assert_eq!(
        client.contracts_of_owner(&bob, None).await?,
        vec![id],
        "exactly one contract, the one zosctl reported"
    );
    assert_eq!(
        client.next_nonce(&bob).await?,
        nonce_before + 1,
        "one transaction of Bob's executed"
    );
    Ok(())
}
