//! Connecting, reading, and handing out submitters.

use std::sync::Arc;

use subxt::{
    client::{ClientAtBlock, OnlineClient, OnlineClientAtBlockImpl},
    config::RpcConfigFor,
    rpcs::{LegacyRpcMethods, RpcClient},
    transactions::Signer,
    utils::{AccountId32, H256},
};
use zos_contracts::{Capacity, Deployment};

use crate::{
    api,
    error::{subxt_err, ChainError},
    submit::Submitter,
    ZosConfig,
};

type AtBlock = ClientAtBlock<ZosConfig, OnlineClientAtBlockImpl<ZosConfig>>;

/// A connection to the chain through one of its RPC endpoints.
#[derive(Clone)]
pub struct ChainClient {
    api: OnlineClient<ZosConfig>,
    legacy: LegacyRpcMethods<RpcConfigFor<ZosConfig>>,
    url: Arc<str>,
    /// Every endpoint given to [`ChainClient::connect`], for [`ChainClient::reconnect`].
    urls: Arc<[String]>,
    /// The chain every endpoint must serve, when pinned.
    genesis: Option<H256>,
}

/// A farm as the chain has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Farm {
    /// Its id.
    pub id: u32,
    /// Who is paid for its nodes' work.
    pub owner: AccountId32,
    /// Its unique name.
    pub name: String,
}

/// A node as the chain has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its account: its ed25519 public key.
    pub account: AccountId32,
    /// Its farm.
    pub farm: u32,
    /// What it offers.
    pub capacity: Capacity,
    /// Its WireGuard public key.
    pub wg_public_key: [u8; 32],
    /// Its WireGuard endpoint, `host:port`; `None` for a node behind NAT (no one can dial it).
    pub endpoint: Option<String>,
    /// Chain time of its registration or last uptime report, unix seconds.
    pub last_seen: u64,
    /// Seconds up, as it last reported.
    pub uptime: u64,
}

/// A private network of one owner, as the chain indexes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    /// The whole range: address and prefix length.
    pub range: ([u8; 4], u8),
    /// Its members, one per node, in the order they joined.
    pub members: Vec<NetworkMember>,
}

/// One node's part of a private network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkMember {
    /// The node.
    pub node: AccountId32,
    /// The contract whose network workload makes it a member.
    pub contract_id: u64,
    /// Its subnet: address and prefix length.
    pub subnet: ([u8; 4], u8),
    /// Its WireGuard port for this network is its endpoint's port plus this.
    pub port_offset: u16,
}

/// A contract's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractState {
    /// Paid up.
    Active,
    /// Unpaid since this chain time (unix seconds); the node pauses it.
    GracePeriod {
        /// Since when.
        since: u64,
    },
}

/// A contract as the chain has it, with its deployment decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    /// Its id.
    pub id: u64,
    /// Who pays for it.
    pub owner: AccountId32,
    /// The node that runs it.
    pub node: AccountId32,
    /// What must run.
    pub deployment: Deployment,
    /// The deployment's canonical hash.
    pub hash: [u8; 32],
    /// What it reserves.
    pub capacity: Capacity,
    /// Active or in grace.
    pub state: ContractState,
    /// Owed and unpaid.
    pub unpaid: u128,
}

impl ChainClient {
    /// Connects to the first of `urls` that answers.
    pub async fn connect(urls: &[String]) -> Result<ChainClient, ChainError> {
        ChainClient::connect_pinned(urls, None).await
    }

    /// Connects to the first of `urls` that answers and, when `genesis` is given, serves the
    /// chain of that genesis block: an endpoint of another chain (a misconfiguration, or someone
    /// else's chain) is passed over, and so are they all on every reconnect.
    pub async fn connect_pinned(
        urls: &[String],
        genesis: Option<H256>,
    ) -> Result<ChainClient, ChainError> {
        let mut last = String::from("no endpoint given");
        for url in urls {
            match ChainClient::connect_one(url, urls, genesis).await {
                Ok(client) => return Ok(client),
                Err(e) => {
                    tracing::warn!(%url, error = %e, "chain endpoint refused");
                    last = e.to_string();
                }
            }
        }
        Err(ChainError::NoEndpoint {
            tried: urls.join(", "),
            last,
        })
    }

    /// Connects again, to the first of the original endpoints that answers (and serves the
    /// pinned chain).
    pub async fn reconnect(&self) -> Result<ChainClient, ChainError> {
        ChainClient::connect_pinned(&self.urls, self.genesis).await
    }

    /// The hash of the genesis block of the chain this endpoint serves.
    pub fn genesis_hash(&self) -> H256 {
        self.api.genesis_hash()
    }

    async fn connect_one(
        url: &str,
        urls: &[String],
        genesis: Option<H256>,
    ) -> Result<ChainClient, ChainError> {
        let rpc = RpcClient::from_insecure_url(url).await.map_err(subxt_err)?;
        let api = OnlineClient::<ZosConfig>::from_rpc_client_with_config(
            ZosConfig::default(),
            rpc.clone(),
        )
        .await
        .map_err(subxt_err)?;
        if let Some(want) = genesis {
            let served = api.genesis_hash();
            if served != want {
                return Err(ChainError::OtherChain {
                    url: url.into(),
                    served,
                    want,
                });
            }
        }
        let legacy = LegacyRpcMethods::new(rpc);
        Ok(ChainClient {
            api,
            legacy,
            url: url.into(),
            urls: urls.into(),
            genesis,
        })
    }

    /// The endpoint this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The subxt client, for what this crate does not wrap.
    pub fn api(&self) -> &OnlineClient<ZosConfig> {
        &self.api
    }

    /// The legacy RPC methods (nonces, block hashes).
    pub fn legacy(&self) -> &LegacyRpcMethods<RpcConfigFor<ZosConfig>> {
        &self.legacy
    }

    /// A submitter that owns `signer`'s nonce. Share it (it is cheap to clone) rather than
    /// making two for one key.
    pub fn submitter<S: Signer<ZosConfig> + Send + Sync + 'static>(
        &self,
        signer: S,
    ) -> Submitter<S> {
        Submitter::new(self.clone(), signer)
    }

    /// The client at the finalized head, or at block `at`.
    pub async fn at(&self, at: Option<u64>) -> Result<AtBlock, ChainError> {
        match at {
            None => self.api.at_current_block().await.map_err(subxt_err),
            Some(n) => self.api.at_block(n).await.map_err(subxt_err),
        }
    }

    /// The number of the finalized head.
    pub async fn finalized_number(&self) -> Result<u64, ChainError> {
        Ok(self.at(None).await?.block_number())
    }

    /// The hash of block `number`, if the chain has it.
    pub async fn block_hash(&self, number: u64) -> Result<Option<H256>, ChainError> {
        self.legacy
            .chain_get_block_hash(Some(subxt::rpcs::methods::legacy::NumberOrHex::Number(
                number,
            )))
            .await
            .map_err(subxt_err)
    }

    /// A farm.
    pub async fn farm(&self, id: u32, at: Option<u64>) -> Result<Option<Farm>, ChainError> {
        let at = self.at(at).await?;
        let farm = at
            .storage()
            .try_fetch(api::storage().grid().farms(), (id,))
            .await
            .map_err(subxt_err)?;
        let Some(farm) = farm else { return Ok(None) };
        let farm = farm.decode().map_err(subxt_err)?;
        Ok(Some(Farm {
            id,
            owner: farm.owner,
            name: String::from_utf8_lossy(&farm.name.0).into_owned(),
        }))
    }

    /// The id of the farm with this name.
    pub async fn farm_by_name(
        &self,
        name: &str,
        at: Option<u64>,
    ) -> Result<Option<u32>, ChainError> {
        let at = self.at(at).await?;
        let key = api::runtime_types::bounded_collections::bounded_vec::BoundedVec(
            name.as_bytes().to_vec(),
        );
        let id = at
            .storage()
            .try_fetch(api::storage().grid().farm_id_by_name(), (key,))
            .await
            .map_err(subxt_err)?;
        id.map(|v| v.decode().map_err(subxt_err)).transpose()
    }

    /// Whether `farm`'s owner approved `node` to register under it (and it has not yet).
    pub async fn node_approved(
        &self,
        farm: u32,
        node: &AccountId32,
        at: Option<u64>,
    ) -> Result<bool, ChainError> {
        let at = self.at(at).await?;
        let approval = at
            .storage()
            .try_fetch(api::storage().grid().node_approvals(), (farm, *node))
            .await
            .map_err(subxt_err)?;
        Ok(approval.is_some())
    }

    /// A node.
    pub async fn node(
        &self,
        account: &AccountId32,
        at: Option<u64>,
    ) -> Result<Option<Node>, ChainError> {
        let at = self.at(at).await?;
        let node = at
            .storage()
            .try_fetch(api::storage().grid().nodes(), (*account,))
            .await
            .map_err(subxt_err)?;
        let Some(node) = node else { return Ok(None) };
        let n = node.decode().map_err(subxt_err)?;
        Ok(Some(Node {
            account: *account,
            farm: n.farm,
            capacity: n.capacity.0,
            wg_public_key: n.wg_public_key,
            endpoint: n
                .endpoint
                .map(|e| String::from_utf8_lossy(&e.0).into_owned()),
            last_seen: n.last_seen,
            uptime: n.uptime,
        }))
    }

    /// `owner`'s private network `name`: its range and members; `None` when it has none.
    pub async fn network(
        &self,
        owner: &AccountId32,
        name: &[u8],
        at: Option<u64>,
    ) -> Result<Option<NetworkRecord>, ChainError> {
        let at = self.at(at).await?;
        let key = api::runtime_types::bounded_collections::bounded_vec::BoundedVec(name.to_vec());
        let value = at
            .storage()
            .try_fetch(api::storage().deployments().networks(), (*owner, key))
            .await
            .map_err(subxt_err)?;
        let Some(value) = value else { return Ok(None) };
        let r = value.decode().map_err(subxt_err)?;
        Ok(Some(NetworkRecord {
            range: (r.range.addr, r.range.prefix),
            members: r
                .members
                .0
                .into_iter()
                .map(|m| NetworkMember {
                    node: m.node,
                    contract_id: m.contract_id,
                    subnet: (m.subnet.addr, m.subnet.prefix),
                    port_offset: m.port_offset,
                })
                .collect(),
        }))
    }

    /// How `node` runs VMs, as it said on chain; `None` when it runs none (or never said).
    pub async fn node_hypervisor(
        &self,
        node: &AccountId32,
        at: Option<u64>,
    ) -> Result<Option<crate::Hypervisor>, ChainError> {
        let at = self.at(at).await?;
        let value = at
            .storage()
            .try_fetch(api::storage().grid().node_hypervisors(), (*node,))
            .await
            .map_err(subxt_err)?;
        match value {
            None => Ok(None),
            Some(v) => Ok(Some(v.decode().map_err(subxt_err)?)),
        }
    }

    /// A contract, with its deployment decoded.
    pub async fn contract(&self, id: u64, at: Option<u64>) -> Result<Option<Contract>, ChainError> {
        contract_in(&self.at(at).await?, id).await
    }

    /// A contract at the finalized head, with that head's number: how fresh the answer is.
    pub async fn contract_at_head(&self, id: u64) -> Result<(u64, Option<Contract>), ChainError> {
        let at = self.at(None).await?;
        Ok((at.block_number(), contract_in(&at, id).await?))
    }

    /// The ids of the contracts naming `node`.
    pub async fn contracts_of_node(
        &self,
        node: &AccountId32,
        at: Option<u64>,
    ) -> Result<Vec<u64>, ChainError> {
        let at = self.at(at).await?;
        let mut entries = at
            .storage()
            .iter(api::storage().deployments().contracts_by_node(), (*node,))
            .await
            .map_err(subxt_err)?;
        let mut ids = Vec::new();
        while let Some(kv) = entries.next().await {
            let kv = kv.map_err(subxt_err)?;
            let (_node, id) = kv.key().map_err(subxt_err)?.decode().map_err(subxt_err)?;
            ids.push(id);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Prices.
    pub async fn pricing(
        &self,
        at: Option<u64>,
    ) -> Result<api::runtime_types::pallet_deployments::types::Pricing, ChainError> {
        let at = self.at(at).await?;
        at.storage()
            .fetch(api::storage().deployments().prices(), ())
            .await
            .map_err(subxt_err)?
            .decode()
            .map_err(subxt_err)
    }

    /// An account's free balance.
    pub async fn balance(
        &self,
        account: &AccountId32,
        at: Option<u64>,
    ) -> Result<u128, ChainError> {
        let at = self.at(at).await?;
        let info = at
            .storage()
            .fetch(api::storage().system().account(), (*account,))
            .await
            .map_err(subxt_err)?
            .decode()
            .map_err(subxt_err)?;
        Ok(info.data.free)
    }

    /// The capacity the contracts on `node` reserve.
    pub async fn reserved(
        &self,
        node: &AccountId32,
        at: Option<u64>,
    ) -> Result<Capacity, ChainError> {
        let at = self.at(at).await?;
        Ok(at
            .storage()
            .fetch(api::storage().deployments().reserved(), (*node,))
            .await
            .map_err(subxt_err)?
            .decode()
            .map_err(subxt_err)?
            .0)
    }

    /// What a contract's node reported it consumed (`None` until its first report).
    pub async fn usage(
        &self,
        id: u64,
        at: Option<u64>,
    ) -> Result<Option<api::runtime_types::pallet_deployments::types::UsageRecord>, ChainError>
    {
        let at = self.at(at).await?;
        at.storage()
            .try_fetch(api::storage().deployments().usage(), (id,))
            .await
            .map_err(subxt_err)?
            .map(|v| v.decode().map_err(subxt_err))
            .transpose()
    }

    /// The last state report of a contract's workloads.
    pub async fn workload_states(
        &self,
        id: u64,
        at: Option<u64>,
    ) -> Result<Option<api::runtime_types::pallet_deployments::types::StateReport>, ChainError>
    {
        let at = self.at(at).await?;
        at.storage()
            .try_fetch(api::storage().deployments().workload_states(), (id,))
            .await
            .map_err(subxt_err)?
            .map(|v| v.decode().map_err(subxt_err))
            .transpose()
    }

    /// Chain time at the finalized head (or at block `at`), in seconds since the Unix epoch.
    pub async fn now(&self, at: Option<u64>) -> Result<u64, ChainError> {
        let at = self.at(at).await?;
        let ms = at
            .storage()
            .fetch(api::storage().timestamp().now(), ())
            .await
            .map_err(subxt_err)?
            .decode()
            .map_err(subxt_err)?;
        Ok(ms / 1000)
    }

    /// The next nonce of `account`, counting its transactions in the pool.
    pub async fn next_nonce(&self, account: &AccountId32) -> Result<u64, ChainError> {
        self.legacy
            .system_account_next_index(account)
            .await
            .map_err(subxt_err)
    }
}

/// Reads for listings (`zosctl`).
impl ChainClient {
    /// The ids of the contracts `owner` pays for.
    pub async fn contracts_of_owner(
        &self,
        owner: &AccountId32,
        at: Option<u64>,
    ) -> Result<Vec<u64>, ChainError> {
        let at = self.at(at).await?;
        let mut entries = at
            .storage()
            .iter(api::storage().deployments().contracts_by_owner(), (*owner,))
            .await
            .map_err(subxt_err)?;
        let mut ids = Vec::new();
        while let Some(kv) = entries.next().await {
            let kv = kv.map_err(subxt_err)?;
            let (_owner, id) = kv.key().map_err(subxt_err)?.decode().map_err(subxt_err)?;
            ids.push(id);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The accounts of the registered nodes, of one farm or of all.
    pub async fn node_accounts(
        &self,
        farm: Option<u32>,
        at: Option<u64>,
    ) -> Result<Vec<AccountId32>, ChainError> {
        let at = self.at(at).await?;
        let mut accounts = Vec::new();
        match farm {
            Some(farm) => {
                let mut entries = at
                    .storage()
                    .iter(api::storage().grid().farm_nodes(), (farm,))
                    .await
                    .map_err(subxt_err)?;
                while let Some(kv) = entries.next().await {
                    let kv = kv.map_err(subxt_err)?;
                    let (_farm, node) = kv.key().map_err(subxt_err)?.decode().map_err(subxt_err)?;
                    accounts.push(node);
                }
            }
            None => {
                let mut entries = at
                    .storage()
                    .iter(api::storage().grid().nodes(), ())
                    .await
                    .map_err(subxt_err)?;
                while let Some(kv) = entries.next().await {
                    let kv = kv.map_err(subxt_err)?;
                    let (node,) = kv.key().map_err(subxt_err)?.decode().map_err(subxt_err)?;
                    accounts.push(node);
                }
            }
        }
        accounts.sort();
        Ok(accounts)
    }

    /// Chain time (unix seconds) of a node's last accepted uptime report; `None` before its first
    /// one or for an unknown node.
    pub async fn node_last_report(
        &self,
        account: &AccountId32,
        at: Option<u64>,
    ) -> Result<Option<u64>, ChainError> {
        let at = self.at(at).await?;
        Ok(at
            .storage()
            .try_fetch(api::storage().grid().nodes(), (*account,))
            .await
            .map_err(subxt_err)?
            .map(|v| v.decode().map_err(subxt_err))
            .transpose()?
            .and_then(|n| n.last_report))
    }

    /// Seconds of silence after which the chain counts a node as down (`Grid::OfflineAfter`).
    pub async fn offline_after(&self) -> Result<u64, ChainError> {
        let at = self.at(None).await?;
        at.constants()
            .entry(api::constants().grid().offline_after())
            .map_err(subxt_err)
    }
}

/// Contract `id` in block `at`, with its deployment decoded.
async fn contract_in(at: &AtBlock, id: u64) -> Result<Option<Contract>, ChainError> {
    let c = at
        .storage()
        .try_fetch(api::storage().deployments().contracts(), (id,))
        .await
        .map_err(subxt_err)?;
    let Some(c) = c else { return Ok(None) };
    let c = c.decode().map_err(subxt_err)?;
    let encoded = at
        .storage()
        .try_fetch(api::storage().deployments().contract_deployment(), (id,))
        .await
        .map_err(subxt_err)?
        .ok_or_else(|| ChainError::Decode(format!("contract {id} has no deployment")))?
        .decode()
        .map_err(subxt_err)?;
    let deployment = Deployment::decode_bounded(&encoded.0)
        .map_err(|e| ChainError::Decode(format!("contract {id}: {e}")))?;
    use api::runtime_types::pallet_deployments::types::ContractState as S;
    let state = match c.state {
        S::Active => ContractState::Active,
        S::GracePeriod { since } => ContractState::GracePeriod { since },
    };
    Ok(Some(Contract {
        id,
        owner: c.owner,
        node: c.node,
        deployment,
        hash: c.hash,
        capacity: c.capacity.0,
        state,
        unpaid: c.unpaid,
    }))
}
