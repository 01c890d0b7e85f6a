//! The agent's side of the chain: a connection that repairs itself, the desired state of the
//! engine (contracts naming this node), and the node's registration.

use std::{path::Path, sync::Arc, time::Duration};

use tokio::sync::RwLock;
use zos_chain_client::{
    api, keys::NodeKey, AccountId32, ChainClient, ChainError, ContractState, Static, Submitter,
    H256,
};
use zos_contracts::Capacity;

use crate::engine::{backoff, Chain, ChainAnswer, DesiredContract};

/// A chain connection shared by the agent's tasks; reads reconnect when it was lost.
#[derive(Clone)]
pub struct ChainView {
    client: Arc<RwLock<ChainClient>>,
    node: AccountId32,
}

impl ChainView {
    /// Connects to the first of `urls` that answers (and serves the chain of `genesis`, when
    /// given), retrying with backoff until one does.
    pub async fn connect(urls: &[String], genesis: Option<H256>, node: AccountId32) -> ChainView {
        let mut attempt = 0;
        loop {
            match ChainClient::connect_pinned(urls, genesis).await {
                Ok(client) => {
                    tracing::info!(url = client.url(), "connected to the chain");
                    return ChainView {
                        client: Arc::new(RwLock::new(client)),
                        node,
                    };
                }
                Err(e) => {
                    let wait = backoff(
                        attempt,
                        (Duration::from_millis(500), Duration::from_secs(30)),
                    );
                    tracing::warn!(error = %e, retry_in = ?wait, "the chain does not answer yet");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// The client as it is now.
    pub async fn client(&self) -> ChainClient {
        self.client.read().await.clone()
    }

    /// This node's account.
    pub fn node(&self) -> &AccountId32 {
        &self.node
    }

    /// Runs a read; when it fails because the connection went, reconnects and tries once more.
    pub async fn read<T, F, Fut>(&self, f: F) -> Result<T, ChainError>
    where
        F: Fn(ChainClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, ChainError>>,
    {
        match f(self.client().await).await {
            Ok(v) => Ok(v),
            Err(first) => {
                let mut client = self.client.write().await;
                if client.finalized_number().await.is_ok() {
                    return Err(first);
                }
                *client = client.reconnect().await?;
                let fresh = client.clone();
                drop(client);
                f(fresh).await
            }
        }
    }

    /// The contracts naming this node at block `at` (the finalized head when `None`).
    pub async fn contracts_at(&self, at: Option<u64>) -> Result<Vec<u64>, ChainError> {
        let node = self.node;
        self.read(|c| async move { c.contracts_of_node(&node, at).await })
            .await
    }
}

impl Chain for ChainView {
    async fn contract(&self, id: u64) -> anyhow::Result<ChainAnswer> {
        let (block, contract) = self
            .read(|c| async move { c.contract_at_head(id).await })
            .await?;
        Ok(ChainAnswer {
            block,
            contract: contract
                .filter(|c| c.node == self.node)
                .map(|c| DesiredContract {
                    id,
                    owner: c.owner.0,
                    paused: matches!(c.state, ContractState::GracePeriod { .. }),
                    deployment: c.deployment,
                }),
        })
    }
}

/// Registers this node under `farm` with `capacity`, or updates its record when it changed;
/// retries (with backoff, saying why: no funds yet, the farmer has not approved the node yet)
/// until the chain has it. Fails only when the chain refuses what the configuration says (an
/// endpoint or a capacity it does not accept). `endpoint` is `None` for a node behind NAT.
pub async fn register(
    view: &ChainView,
    submitter: &Submitter<NodeKey>,
    farm: u32,
    capacity: Capacity,
    wg_public_key: [u8; 32],
    endpoint: Option<&str>,
) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match register_once(view, submitter, farm, capacity, wg_public_key, endpoint).await {
            Ok(done) => {
                tracing::info!(node = %view.node, farm, ?capacity, "{done}");
                return Ok(());
            }
            Err(e) if is_permanent(&e) => {
                return Err(e.context("the chain refuses this node's registration"));
            }
            Err(e) => {
                let wait = backoff(attempt, (Duration::from_secs(1), Duration::from_secs(60)));
                tracing::warn!(node = %view.node, error = %e, retry_in = ?wait, "not registered yet");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Says on chain how this node runs VMs (`None`: it runs none), unless the chain says so already.
pub async fn set_hypervisor(
    view: &ChainView,
    submitter: &Submitter<NodeKey>,
    hypervisor: Option<zos_chain_client::Hypervisor>,
) -> anyhow::Result<()> {
    let node = view.node;
    let on_chain = view
        .read(|c| async move { c.node_hypervisor(&node, None).await })
        .await?;
    use zos_chain_client::Hypervisor::{Kvm, Tcg};
    // The generated type has no `PartialEq`.
    let same = matches!(
        (&on_chain, &hypervisor),
        (None, None) | (Some(Kvm), Some(Kvm)) | (Some(Tcg), Some(Tcg))
    );
    if same {
        return Ok(());
    }
    let said = format!("{hypervisor:?}");
    submitter
        .submit(&api::tx().grid().set_hypervisor(hypervisor))
        .await?;
    tracing::info!(node = %node, hypervisor = said, "hypervisor stated on chain");
    Ok(())
}

/// A refusal that retrying cannot change: the configuration must.
fn is_permanent(e: &anyhow::Error) -> bool {
    use zos_chain_client::GridError;
    matches!(
        e.downcast_ref::<ChainError>()
            .and_then(ChainError::dispatch)
            .and_then(|f| f.grid()),
        Some(GridError::InvalidEndpoint | GridError::NoCapacity)
    )
}

async fn register_once(
    view: &ChainView,
    submitter: &Submitter<NodeKey>,
    farm_id: u32,
    capacity: Capacity,
    wg_public_key: [u8; 32],
    endpoint: Option<&str>,
) -> anyhow::Result<&'static str> {
    let node = view.node;
    view.read(|c| async move { c.farm(farm_id, None).await })
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("farm {farm_id} does not exist on the chain (its farmer creates it)")
        })?;
    let existing = view
        .read(|c| async move { c.node(&node, None).await })
        .await?;
    let funds = view
        .read(|c| async move { c.balance(&node, None).await })
        .await?;
    let needs_tx = match &existing {
        None => true,
        Some(n) => {
            n.capacity != capacity
                || n.endpoint.as_deref() != endpoint
                || n.wg_public_key != wg_public_key
        }
    };
    if needs_tx && funds == 0 {
        anyhow::bail!(
            "the node account {node} has no funds to pay for its registration: the farmer sends it some"
        );
    }
    match existing {
        None => {
            let approved = view
                .read(|c| async move { c.node_approved(farm_id, &node, None).await })
                .await?;
            if !approved {
                anyhow::bail!(
                    "farm {farm_id}'s owner has not approved this node yet: \
                     zosctl farm approve {farm_id} {node}"
                );
            }
            submitter
                .submit(&api::tx().grid().register_node(
                    farm_id,
                    Static(capacity),
                    wg_public_key,
                    endpoint.map(|e| e.as_bytes().to_vec()),
                ))
                .await?;
            Ok("registered")
        }
        Some(n) if n.farm != farm_id => anyhow::bail!(
            "this node is registered under farm {} on the chain, not {farm_id}; remove it there first",
            n.farm
        ),
        Some(_) if needs_tx => {
            submitter
                .submit(&api::tx().grid().update_node(
                    Static(capacity),
                    wg_public_key,
                    endpoint.map(|e| e.as_bytes().to_vec()),
                ))
                .await?;
            Ok("updated its registration")
        }
        Some(_) => Ok("already registered"),
    }
}

/// The node's WireGuard key for private networks: an X25519 secret made on first start and kept
/// 0600 next to the node key; it never leaves the node (the chain has its public key).
pub fn wireguard_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secret: [u8; 32] = match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("{} does not hold a 32-byte hex key", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom(&mut secret)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(hex::encode(secret).as_bytes())?;
            f.sync_all()?;
            secret
        }
        Err(e) => return Err(e.into()),
    };
    Ok(secret)
}

/// The chain's index of private networks, read for the network driver (which runs on blocking
/// threads) through `view` on `runtime`, at the finalized head.
pub struct ChainNetworkIndex {
    view: ChainView,
    runtime: tokio::runtime::Handle,
}

impl ChainNetworkIndex {
    /// Reads through `view` on `runtime`.
    pub fn new(view: ChainView, runtime: tokio::runtime::Handle) -> ChainNetworkIndex {
        ChainNetworkIndex { view, runtime }
    }
}

impl crate::drivers::NetworkIndex for ChainNetworkIndex {
    fn network(
        &self,
        owner: &AccountId32,
        name: &[u8],
    ) -> anyhow::Result<Option<zos_chain_client::NetworkRecord>> {
        let owner = *owner;
        Ok(self.runtime.block_on(self.view.read(|c| {
            let name = name.to_vec();
            async move { c.network(&owner, &name, None).await }
        }))?)
    }

    fn node(&self, node: &AccountId32) -> anyhow::Result<Option<zos_chain_client::Node>> {
        let node = *node;
        Ok(self
            .runtime
            .block_on(self.view.read(|c| async move { c.node(&node, None).await }))?)
    }
}

fn getrandom(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)?;
    Ok(())
}
