//! The real `zos-chain` binary: the dev chain finalizes a transaction, and three validators on
//! `--chain local` produce blocks that GRANDPA finalizes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use codec::Encode;
use polkadot_sdk::{
    frame_system, pallet_transaction_payment,
    sp_core::{sr25519, Pair, H256},
    sp_keyring::Sr25519Keyring,
    sp_runtime::generic::Era,
};
use zos_runtime::{Runtime, RuntimeCall, SignedPayload, TxExtension, UncheckedExtrinsic, VERSION};
use zos_testkit::{jsonrpsee::core::client::ClientT, jsonrpsee::rpc_params, wait_until, ChainNode};

/// A transaction signed by `signer`, immortal, with `nonce`.
fn signed(
    call: RuntimeCall,
    signer: &sr25519::Pair,
    nonce: u32,
    genesis: H256,
) -> UncheckedExtrinsic {
    let extension: TxExtension = (
        frame_system::CheckNonZeroSender::<Runtime>::new(),
        frame_system::CheckSpecVersion::<Runtime>::new(),
        frame_system::CheckTxVersion::<Runtime>::new(),
        frame_system::CheckGenesis::<Runtime>::new(),
        frame_system::CheckEra::<Runtime>::from(Era::Immortal),
        frame_system::CheckNonce::<Runtime>::from(nonce),
        frame_system::CheckWeight::<Runtime>::new(),
        pallet_transaction_payment::ChargeTransactionPayment::<Runtime>::from(0),
        frame_system::WeightReclaim::<Runtime>::new(),
    );
    let implicit = (
        (),
        VERSION.spec_version,
        VERSION.transaction_version,
        genesis,
        genesis,
        (),
        (),
        (),
        (),
    );
    let payload = SignedPayload::from_raw(call.clone(), extension.clone(), implicit);
    let signature = payload.using_encoded(|p| signer.sign(p));
    let who: zos_runtime::AccountId = signer.public().into();
    UncheckedExtrinsic::new_signed(call, who.into(), signature.into(), extension)
}

fn hex_of(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Whether the finalized chain holds the extrinsic `xt` (walks back from the finalized head).
async fn finalized_contains(node: &ChainNode, xt: &str) -> Result<Option<u64>> {
    let client = node.client()?;
    let mut hash: String = client
        .request("chain_getFinalizedHead", rpc_params![])
        .await?;
    for _ in 0..32 {
        let block: serde_json::Value = client
            .request("chain_getBlock", rpc_params![hash.clone()])
            .await?;
        let header = &block["block"]["header"];
        let number = zos_testkit::parse_number(header)?;
        let xts = block["block"]["extrinsics"]
            .as_array()
            .context("block without extrinsics")?;
        if xts.iter().any(|e| e.as_str() == Some(xt)) {
            return Ok(Some(number));
        }
        if number == 0 {
            break;
        }
        hash = header["parentHash"]
            .as_str()
            .context("header without parent")?
            .to_string();
    }
    Ok(None)
}

#[tokio::test]
async fn the_dev_chain_finalizes_a_transaction_at_once() -> Result<()> {
    let node = ChainNode::dev().await?;
    let client = node.client()?;
    let genesis: H256 = client.request("chain_getBlockHash", rpc_params![0]).await?;
    assert_eq!(
        node.finalized_number().await?,
        0,
        "nothing is sealed without a transaction"
    );

    let alice = Sr25519Keyring::Alice.pair();
    let call = RuntimeCall::Grid(pallet_grid::Call::create_farm {
        name: b"alice-farm".to_vec(),
    });
    let xt = hex_of(&signed(call, &alice, 0, genesis).encode());
    let submitted = Instant::now();
    let _hash: H256 = client
        .request("author_submitExtrinsic", rpc_params![xt.clone()])
        .await?;
    let block = wait_until(
        "the transaction in a finalized block",
        Duration::from_secs(30),
        || async { finalized_contains(&node, &xt).await.ok().flatten() },
    )
    .await?;
    eprintln!(
        "submitted to finalized: {:?} (block {block})",
        submitted.elapsed()
    );
    assert_eq!(block, 1);

    // The farm exists in the finalized state: Grid.Farms(0).
    let key = [
        polkadot_sdk::sp_io::hashing::twox_128(b"Grid").to_vec(),
        polkadot_sdk::sp_io::hashing::twox_128(b"Farms").to_vec(),
        polkadot_sdk::sp_io::hashing::blake2_128(&0u32.encode()).to_vec(),
        0u32.encode(),
    ]
    .concat();
    let head: H256 = client
        .request("chain_getFinalizedHead", rpc_params![])
        .await?;
    let stored: Option<String> = client
        .request("state_getStorage", rpc_params![hex_of(&key), head])
        .await?;
    let stored = hex::decode(
        stored
            .context("no farm 0 in the finalized state")?
            .trim_start_matches("0x"),
    )?;
    let farm =
        <pallet_grid::Farm<zos_runtime::AccountId> as codec::Decode>::decode(&mut &stored[..])?;
    assert_eq!(farm.owner, Sr25519Keyring::Alice.to_account_id());
    assert_eq!(&farm.name[..], b"alice-farm");
    Ok(())
}

/// A network key of the test's own (validators of a non-dev chain must be given one).
fn node_key(n: u8) -> String {
    hex::encode([n; 32])
}

#[tokio::test]
async fn three_validators_produce_blocks_that_grandpa_finalizes() -> Result<()> {
    let alice_port = zos_testkit::free_port()?.to_string();
    let mut alice = ChainNode::start(
        "alice",
        &[
            "--chain",
            "local",
            "--alice",
            "--tmp",
            "--port",
            &alice_port,
            "--no-mdns",
            "--node-key",
            &node_key(1),
        ],
        None,
    )
    .await?;
    let peer_id = zos_testkit::loop_until_line(&mut alice.process, Duration::from_secs(30), |l| {
        l.split("Local node identity is: ")
            .nth(1)
            .map(|s| s.trim().to_string())
    })
    .await?;
    let bootnode = format!("/ip4/127.0.0.1/tcp/{alice_port}/p2p/{peer_id}");
    let mut others = Vec::new();
    for (i, who) in ["--bob", "--charlie"].into_iter().enumerate() {
        let key = node_key(i as u8 + 2);
        let args = [
            "--chain",
            "local",
            who,
            "--tmp",
            "--no-mdns",
            "--node-key",
            &key,
            "--bootnodes",
            &bootnode,
        ];
        others.push(ChainNode::start(who, &args, None).await?);
    }
    // Aura slots are 6 s; GRANDPA needs all three of three votes.
    let finalized = wait_until("block 3 finalized", Duration::from_secs(120), || async {
        alice.finalized_number().await.ok().filter(|n| *n >= 3)
    })
    .await?;
    for node in &others {
        let n = wait_until("the others to follow", Duration::from_secs(30), || async {
            node.finalized_number()
                .await
                .ok()
                .filter(|n| *n >= finalized)
        })
        .await?;
        assert!(n >= 3);
    }
    Ok(())
}

#[tokio::test]
async fn the_dev_chain_can_seal_on_a_timer_instead() -> Result<()> {
    let node = ChainNode::start(
        "zos-chain --dev-block-time",
        &["--dev", "--tmp", "--dev-block-time", "300"],
        None,
    )
    .await?;
    // No transaction at all: blocks come from the timer, each finalized at once.
    let n = wait_until(
        "three timed blocks, finalized",
        Duration::from_secs(60),
        || async { node.finalized_number().await.ok().filter(|n| *n >= 3) },
    )
    .await?;
    assert!(n >= 3);
    Ok(())
}
