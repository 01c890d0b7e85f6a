//! Transactions finalized per second on the dev chain, from one key and from eight keys.
//!
//! `cargo bench -p zos-chain-client --bench throughput` (builds in the dev profile like
//! everything else; the node must be built: `cargo build -p zos-chain`).

use std::time::Instant;

use anyhow::Result;
use zos_chain_client::{api, keys::UserKey, ChainClient};
use zos_testkit::ChainNode;

const PER_KEY_ONE: usize = 400;
const PER_KEY_EIGHT: usize = 100;

async fn run(client: &ChainClient, keys: &[&str], per_key: usize) -> Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for uri in keys {
        let submitter = client.submitter(UserKey::from_uri(uri)?);
        for i in 0..per_key {
            let s = submitter.clone();
            tasks.push(tokio::spawn(async move {
                s.submit(&api::tx().system().remark((i as u32).to_le_bytes().to_vec()))
                    .await
            }));
        }
    }
    let total = tasks.len();
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let chain = ChainNode::dev().await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    let one = run(&client, &["//Alice"], PER_KEY_ONE).await?;
    println!("one key:    {PER_KEY_ONE} transactions, {one:.1} finalized/s");
    let eight = [
        "//Bob",
        "//Charlie",
        "//Dave",
        "//Eve",
        "//Ferdie",
        "//Bob//stash",
        "//Alice//stash",
        "//Charlie//stash",
    ];
    let rate = run(&client, &eight, PER_KEY_EIGHT).await?;
    println!(
        "eight keys: {} transactions, {rate:.1} finalized/s",
        eight.len() * PER_KEY_EIGHT
    );
    Ok(())
}
