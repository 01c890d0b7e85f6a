//! Desired-state triggers: every finalized block's events that name this node, a full resync of
//! every contract naming it (at start and every period), and a tick over what runs on the host.

use std::{sync::Arc, time::Duration};

use zos_chain_client::{
    events::{self, FinalizedBlock},
    AccountId32, ChainEvent, H256,
};

use crate::{
    chain::ChainView,
    drivers::NetworkDriver,
    engine::{Chain, Engine},
    state::State,
};

/// Where to start following: after the last block processed, or, on a first start, after the
/// finalized head read before the first resync (so no block falls between the two).
pub async fn start_block(view: &ChainView, state: &State) -> anyhow::Result<u64> {
    Ok(match state.last_block()? {
        Some(n) => n + 1,
        None => {
            view.read(|c| async move { c.finalized_number().await })
                .await?
                + 1
        }
    })
}

/// Follows finalized blocks from `from`, handing each contract an event names to the engine, and
/// recording progress and the contracts that ended.
pub async fn follow<C: Chain>(
    urls: Vec<String>,
    genesis: H256,
    view: ChainView,
    state: Arc<State>,
    engine: Arc<Engine<C>>,
    networks: Option<Arc<NetworkDriver>>,
    from: u64,
) -> anyhow::Result<()> {
    tracing::info!(from, "following finalized blocks");
    let node = *view.node();
    let mut blocks = events::follow_finalized(urls, Some(genesis), from);
    while let Some(block) = blocks.recv().await {
        if let Some(networks) = &networks {
            peers_changed(&node, &block, &engine, networks).await;
        }
        let ended = handle(&node, &block, &engine);
        if !block.undecodable.is_empty() {
            // A runtime this agent does not know yet: the block may have changed any of this
            // node's contracts, so they are read again from state at that block.
            tracing::warn!(
                block = block.number,
                undecodable = ?block.undecodable,
                "events this agent cannot decode; re-reading this node's contracts at that block"
            );
            resync_at(&view, &engine, Some(block.number)).await?;
        }
        state.processed_block(block.number, &ended)?;
    }
    anyhow::bail!("the block stream ended")
}

/// Enqueues each contract of this node that `block` names; returns those whose cancel or deletion
/// it holds.
fn handle<C: Chain>(node: &AccountId32, block: &FinalizedBlock, engine: &Engine<C>) -> Vec<u64> {
    let mut ended = Vec::new();
    for event in &block.events {
        if event.node() != Some(node) {
            continue;
        }
        use ChainEvent as E;
        match event {
            E::ContractCanceled { contract_id, .. } | E::ContractDeleted { contract_id, .. } => {
                tracing::info!(block = block.number, ?event, "contract event");
                ended.push(*contract_id);
                engine.enqueue(*contract_id, true);
            }
            E::ContractCreated { contract_id, .. }
            | E::ContractUpdated { contract_id, .. }
            | E::GracePeriodStarted { contract_id, .. }
            | E::GracePeriodEnded { contract_id, .. } => {
                tracing::info!(block = block.number, ?event, "contract event");
                engine.enqueue(*contract_id, true);
            }
            E::NodeRemoved { .. } => {
                tracing::error!(block = block.number, "this node was removed from the chain")
            }
            _ => {}
        }
    }
    ended
}

/// Passes again the contracts whose networks `block` changed: another node joined, changed or left
/// a network of the same name, or a node changed its WireGuard key or endpoint. (The host does not
/// keep a network's owner; a network of the same name of another owner costs one idle pass.)
async fn peers_changed<C: Chain>(
    node: &AccountId32,
    block: &FinalizedBlock,
    engine: &Engine<C>,
    networks: &Arc<NetworkDriver>,
) {
    let mut names = Vec::new();
    let mut every = false;
    for event in &block.events {
        match event {
            ChainEvent::NetworkMemberChanged {
                node: n, network, ..
            } if n != node => names.push(network.clone()),
            ChainEvent::NodeUpdated { node: n } if n != node => every = true,
            _ => {}
        }
    }
    if names.is_empty() && !every {
        return;
    }
    let networks = networks.clone();
    let contracts = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u64>> {
        let mut out = std::collections::BTreeSet::new();
        if every {
            out.extend(
                networks
                    .networks()
                    .list()?
                    .into_iter()
                    .map(|id| id.contract),
            );
        }
        for name in names {
            out.extend(networks.contracts_with(&name)?);
        }
        Ok(out.into_iter().collect())
    })
    .await;
    match contracts {
        Ok(Ok(contracts)) => {
            for id in contracts {
                tracing::info!(block = block.number, contract = id, "network peers changed");
                engine.enqueue(id, true);
            }
        }
        Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "cannot list the host's networks"),
        Err(e) => tracing::warn!(error = %e, "cannot list the host's networks"),
    }
}

/// Reads every contract naming this node, and everything on the host, again.
pub async fn resync<C: Chain>(view: &ChainView, engine: &Arc<Engine<C>>) -> anyhow::Result<usize> {
    resync_at(view, engine, None).await
}

/// [`resync`], listing the contracts at block `at` (the finalized head when `None`).
async fn resync_at<C: Chain>(
    view: &ChainView,
    engine: &Arc<Engine<C>>,
    at: Option<u64>,
) -> anyhow::Result<usize> {
    let ids = view.contracts_at(at).await?;
    for id in &ids {
        engine.enqueue(*id, true);
    }
    // Contracts the host has but the chain no longer names are read too, and torn down.
    let host = engine.enqueue_host().await?;
    for id in host.difference(&ids.iter().copied().collect()) {
        engine.enqueue(*id, true);
    }
    Ok(ids.len())
}

/// Resyncs every `period`, forever.
pub async fn resync_every<C: Chain>(view: ChainView, engine: Arc<Engine<C>>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match resync(&view, &engine).await {
            Ok(n) => tracing::debug!(contracts = n, "resync"),
            Err(e) => tracing::warn!(error = %e, "resync failed; next period tries again"),
        }
    }
}

/// Looks at everything on the host every `period` (exits, restarts).
pub async fn host_tick<C: Chain>(engine: Arc<Engine<C>>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = engine.enqueue_host().await {
            tracing::warn!(error = %e, "cannot list the host's workloads");
        }
    }
}
