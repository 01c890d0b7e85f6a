//! Every finalized block, in order, once: the node agent's view of the chain.
//!
//! [`follow_finalized`] starts at a given block number and delivers each finalized block after it,
//! the blocks it missed first, then new ones as the finalized-head subscription announces them. It remembers the next number
//! to deliver, and only moves past a block once that block was delivered: when the connection
//! drops or the node restarts it reconnects (trying every endpoint, with backoff) and carries on
//! from there, so that no block is skipped and none is delivered twice.

use std::time::Duration;

use subxt::utils::{AccountId32, H256};
use tokio::sync::mpsc;

use crate::{api, error::subxt_err, ChainClient, ChainError};

/// A finalized block and what it means for the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedBlock {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: H256,
    /// The grid's events in it, in order.
    pub events: Vec<ChainEvent>,
    /// Events this client could not decode, described; when there are any, what the block
    /// changed must be read from state instead.
    pub undecodable: Vec<String>,
}

/// What happened on chain that a node or a user cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ChainEvent {
    FarmCreated {
        farm: u32,
        owner: AccountId32,
    },
    NodeRegistered {
        node: AccountId32,
        farm: u32,
    },
    NodeUpdated {
        node: AccountId32,
    },
    NodeRemoved {
        node: AccountId32,
    },
    ContractCreated {
        contract_id: u64,
        node: AccountId32,
        owner: AccountId32,
        version: u32,
    },
    ContractUpdated {
        contract_id: u64,
        node: AccountId32,
        owner: AccountId32,
        version: u32,
    },
    ContractCanceled {
        contract_id: u64,
        node: AccountId32,
        owner: AccountId32,
    },
    ContractDeleted {
        contract_id: u64,
        node: AccountId32,
        owner: AccountId32,
    },
    GracePeriodStarted {
        contract_id: u64,
        node: AccountId32,
    },
    GracePeriodEnded {
        contract_id: u64,
        node: AccountId32,
    },
    WorkloadsReported {
        contract_id: u64,
        node: AccountId32,
        version: u32,
    },
    ContractBilled {
        contract_id: u64,
        amount: u128,
    },
    /// A node joined, changed its subnet in, or left `owner`'s private network `network`.
    NetworkMemberChanged {
        owner: AccountId32,
        network: Vec<u8>,
        node: AccountId32,
        contract_id: u64,
    },
}

impl ChainEvent {
    /// The node the event concerns, if it concerns one.
    pub fn node(&self) -> Option<&AccountId32> {
        use ChainEvent as E;
        match self {
            E::NodeRegistered { node, .. }
            | E::NodeUpdated { node }
            | E::NodeRemoved { node }
            | E::ContractCreated { node, .. }
            | E::ContractUpdated { node, .. }
            | E::ContractCanceled { node, .. }
            | E::ContractDeleted { node, .. }
            | E::GracePeriodStarted { node, .. }
            | E::GracePeriodEnded { node, .. }
            | E::WorkloadsReported { node, .. }
            | E::NetworkMemberChanged { node, .. } => Some(node),
            E::FarmCreated { .. } | E::ContractBilled { .. } => None,
        }
    }
}

/// Finalized blocks from `from` on, as they come; see the module documentation. The task stops
/// when the receiver is dropped.
/// With `genesis`, only endpoints serving that chain are followed.
pub fn follow_finalized(
    urls: Vec<String>,
    genesis: Option<H256>,
    from: u64,
) -> mpsc::Receiver<FinalizedBlock> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut next = from;
        let mut backoff = Duration::from_millis(100);
        loop {
            let client = match ChainClient::connect_pinned(&urls, genesis).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the chain; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            match deliver(&client, &mut next, &tx).await {
                Ok(()) => return, // the receiver is gone
                Err(e) => {
                    tracing::warn!(error = %e, next, "lost the chain; reconnecting");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    });
    rx
}

/// Delivers blocks until an error (returned) or until the receiver is dropped (`Ok`): first the
/// finalized blocks not delivered yet, then, on each finalized head the subscription announces,
/// every block up to it (finality can jump several blocks at once).
async fn deliver(
    client: &ChainClient,
    next: &mut u64,
    tx: &mpsc::Sender<FinalizedBlock>,
) -> Result<(), ChainError> {
    let mut heads = client.api().stream_blocks().await.map_err(subxt_err)?;
    let mut head = client.finalized_number().await?;
    loop {
        while *next <= head {
            let block = block(client, *next).await?;
            if tx.send(block).await.is_err() {
                return Ok(());
            }
            *next += 1;
        }
        head = tokio::select! {
            announced = heads.next() => match announced {
                Some(Ok(b)) => b.number(),
                Some(Err(e)) => return Err(subxt_err(e)),
                None => return Err(ChainError::Decode("the finalized-head subscription ended".into())),
            },
            () = tx.closed() => return Ok(()),
            () = tokio::time::sleep(QUIET) => {
                // A subscription that went quiet without an error is checked, not trusted.
                let finalized = client.finalized_number().await?;
                if finalized >= *next {
                    tracing::warn!(finalized, next = *next, "the finalized-head subscription missed blocks");
                }
                finalized
            }
        };
    }
}

/// How long the follower waits for a finalized head before asking for one.
const QUIET: Duration = Duration::from_secs(60);

/// Block `number` and its grid events.
pub async fn block(client: &ChainClient, number: u64) -> Result<FinalizedBlock, ChainError> {
    let at = client.at(Some(number)).await?;
    let hash = at.block_hash();
    let events = at.events().fetch().await.map_err(subxt_err)?;
    let (events, undecodable) = grid_events(&events);
    Ok(FinalizedBlock {
        number,
        hash,
        events,
        undecodable,
    })
}

/// The grid's events among `events`, and a description of each event this client cannot decode
/// (a runtime newer than its metadata): those are not skipped silently, the caller re-reads what
/// they might have changed.
pub fn grid_events(
    events: &subxt::events::Events<crate::ZosConfig>,
) -> (Vec<ChainEvent>, Vec<String>) {
    let mut out = Vec::new();
    let mut undecodable = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // The rest of the block cannot be told apart either.
                undecodable.push(format!("event #{index} and after: {e}"));
                break;
            }
        };
        match event.decode_as::<api::Event>() {
            Ok(decoded) => out.extend(domain_event(decoded)),
            Err(e) => undecodable.push(format!(
                "event #{index} ({}::{}): {e}",
                event.pallet_name(),
                event.event_name()
            )),
        }
    }
    (out, undecodable)
}

fn domain_event(event: api::Event) -> Option<ChainEvent> {
    use api::{deployments::Event as D, grid::Event as G, Event};
    Some(match event {
        Event::Grid(G::FarmCreated { farm, owner, .. }) => ChainEvent::FarmCreated { farm, owner },
        Event::Grid(G::NodeRegistered { node, farm, .. }) => {
            ChainEvent::NodeRegistered { node, farm }
        }
        Event::Grid(G::NodeUpdated { node, .. }) => ChainEvent::NodeUpdated { node },
        Event::Grid(G::NodeRemoved { node, .. }) => ChainEvent::NodeRemoved { node },
        Event::Deployments(D::ContractCreated {
            contract_id,
            node,
            owner,
            version,
            ..
        }) => ChainEvent::ContractCreated {
            contract_id,
            node,
            owner,
            version,
        },
        Event::Deployments(D::ContractUpdated {
            contract_id,
            node,
            owner,
            version,
            ..
        }) => ChainEvent::ContractUpdated {
            contract_id,
            node,
            owner,
            version,
        },
        Event::Deployments(D::ContractCanceled {
            contract_id,
            node,
            owner,
        }) => ChainEvent::ContractCanceled {
            contract_id,
            node,
            owner,
        },
        Event::Deployments(D::ContractDeleted {
            contract_id,
            node,
            owner,
            ..
        }) => ChainEvent::ContractDeleted {
            contract_id,
            node,
            owner,
        },
        Event::Deployments(D::GracePeriodStarted {
            contract_id, node, ..
        }) => ChainEvent::GracePeriodStarted { contract_id, node },
        Event::Deployments(D::GracePeriodEnded {
            contract_id, node, ..
        }) => ChainEvent::GracePeriodEnded { contract_id, node },
        Event::Deployments(D::WorkloadsReported {
            contract_id,
            node,
            version,
        }) => ChainEvent::WorkloadsReported {
            contract_id,
            node,
            version,
        },
        Event::Deployments(D::ContractBilled {
            contract_id,
            amount,
            ..
        }) => ChainEvent::ContractBilled {
            contract_id,
            amount,
        },
        Event::Deployments(
            D::NetworkMemberJoined {
                owner,
                network,
                node,
                contract_id,
                ..
            }
            | D::NetworkMemberChanged {
                owner,
                network,
                node,
                contract_id,
                ..
            }
            | D::NetworkMemberLeft {
                owner,
                network,
                node,
                contract_id,
            },
        ) => ChainEvent::NetworkMemberChanged {
            owner,
            network: network.0,
            node,
            contract_id,
        },
        _ => return None,
    })
}
