//! Following the chain when a block holds events this client cannot decode.

use anyhow::{Context, Result};
use zos_chain_client::{api, events, keys::UserKey, ChainClient, ChainEvent};
use zos_testkit::ChainNode;

#[tokio::test]
async fn an_undecodable_event_is_reported_not_skipped_and_the_rest_is_kept() -> Result<()> {
    let chain = ChainNode::dev().await?;
    let client = ChainClient::connect(&[chain.ws_url()]).await?;
    let alice = client.submitter(UserKey::from_uri("//Alice")?);
    let outcome = alice
        .submit(&api::tx().grid().create_farm(b"undecodable".to_vec()))
        .await?;
    let at = client.api().at_block(outcome.block_hash).await?;
    let events = at.events().fetch().await?;

    let (decoded, undecodable) = events::grid_events(&events);
    assert!(undecodable.is_empty(), "{undecodable:?}");
    assert!(
        decoded
            .iter()
            .any(|e| matches!(e, ChainEvent::FarmCreated { .. })),
        "{decoded:?}"
    );

    // The same block as a runtime this client does not know would write it: the farm's event
    // is a variant the client has never seen.
    let (index, record) = events
        .iter()
        .enumerate()
        .find_map(|(i, e)| {
            let e = e.ok()?;
            (e.event_name() == "FarmCreated").then(|| (i, e.bytes().to_vec()))
        })
        .context("a FarmCreated event")?;
    let mut bytes = events.bytes().to_vec();
    let at_record = bytes
        .windows(record.len())
        .rposition(|w| w == record.as_slice())
        .context("the record in the block's events")?;
    // The phase (`ApplyExtrinsic(u32)`: 5 bytes), the pallet's index, then the variant's.
    assert_eq!(record[0], 0, "applied in an extrinsic");
    bytes[at_record + 6] = 0xff;
    let altered = at.events().from_bytes(bytes);

    let (decoded, undecodable) = events::grid_events(&altered);
    assert!(
        !decoded
            .iter()
            .any(|e| matches!(e, ChainEvent::FarmCreated { .. })),
        "{decoded:?}"
    );
    assert_eq!(undecodable.len(), 1, "{undecodable:?}");
    assert!(
        undecodable[0].starts_with(&format!("event #{index} and after")),
        "{undecodable:?}"
    );
    Ok(())
}
