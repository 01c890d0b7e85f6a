//! Assembles the node: the dev chain (sealed on demand, finalized at once) or a validator of a
//! local network (Aura + GRANDPA).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::{FutureExt, StreamExt};
use polkadot_sdk::{
    sc_client_api::{Backend, BlockBackend},
    sc_consensus_aura::{ImportQueueParams, SlotProportion, StartAuraParams},
    sc_consensus_grandpa::SharedVoterState,
    sc_consensus_manual_seal::{self as manual_seal, consensus::aura::AuraConsensusDataProvider},
    sc_service::{error::Error as ServiceError, Configuration, TaskManager, WarpSyncConfig},
    sc_transaction_pool_api::OffchainTransactionPoolFactory,
    sp_consensus_aura::sr25519::AuthorityPair as AuraPair,
    sp_runtime::traits::Block as BlockT,
    *,
};
use zos_runtime::{apis::RuntimeApi, opaque::Block};

/// The host functions the runtime may call; with benchmarks, also the benchmarking ones.
#[cfg(feature = "runtime-benchmarks")]
type HostFunctions = (
    sp_io::SubstrateHostFunctions,
    frame_benchmarking::benchmarking::HostFunctions,
);
#[cfg(not(feature = "runtime-benchmarks"))]
type HostFunctions = sp_io::SubstrateHostFunctions;

type FullClient =
    sc_service::TFullClient<Block, RuntimeApi, sc_executor::WasmExecutor<HostFunctions>>;
type FullBackend = sc_service::TFullBackend<Block>;
type FullSelectChain = sc_consensus::LongestChain<FullBackend, Block>;
type Pool = sc_transaction_pool::TransactionPoolHandle<Block, FullClient>;

const GRANDPA_JUSTIFICATION_PERIOD: u32 = 512;

/// What both kinds of node are built from.
struct Base {
    client: Arc<FullClient>,
    backend: Arc<FullBackend>,
    keystore_container: sc_service::KeystoreContainer,
    task_manager: TaskManager,
    select_chain: FullSelectChain,
    transaction_pool: Arc<Pool>,
}

fn new_base(config: &Configuration) -> Result<Base, ServiceError> {
    let executor = sc_service::new_wasm_executor::<HostFunctions>(&config.executor);
    let (client, backend, keystore_container, task_manager) =
        sc_service::new_full_parts::<Block, RuntimeApi, _>(config, None, executor, Vec::new())?;
    let client = Arc::new(client);
    let select_chain = sc_consensus::LongestChain::new(backend.clone());
    let transaction_pool = Arc::from(
        sc_transaction_pool::Builder::new(
            task_manager.spawn_essential_handle(),
            client.clone(),
            config.role.is_authority().into(),
        )
        .with_options(config.transaction_pool.clone())
        .with_prometheus(config.prometheus_registry())
        .build(),
    );
    Ok(Base {
        client,
        backend,
        keystore_container,
        task_manager,
        select_chain,
        transaction_pool,
    })
}

fn rpc_builder(
    client: Arc<FullClient>,
    pool: Arc<Pool>,
) -> Box<dyn Fn(sc_rpc::SubscriptionTaskExecutor) -> Result<jsonrpsee::RpcModule<()>, ServiceError>>
{
    Box::new(move |_| crate::rpc::create_full(client.clone(), pool.clone()).map_err(Into::into))
}

fn start_offchain_workers(
    config: &Configuration,
    base: &Base,
    network: Arc<dyn sc_network::service::traits::NetworkService>,
) -> Result<(), ServiceError> {
    if !config.offchain_worker.enabled {
        return Ok(());
    }
    let workers = sc_offchain::OffchainWorkers::new(sc_offchain::OffchainWorkerOptions {
        runtime_api_provider: base.client.clone(),
        is_validator: config.role.is_authority(),
        keystore: Some(base.keystore_container.keystore()),
        offchain_db: base.backend.offchain_storage(),
        transaction_pool: Some(OffchainTransactionPoolFactory::new(
            base.transaction_pool.clone(),
        )),
        network_provider: Arc::new(network),
        enable_http_requests: false,
        custom_extensions: |_| vec![],
    })?;
    base.task_manager.spawn_handle().spawn(
        "offchain-workers-runner",
        "offchain-worker",
        workers
            .run(base.client.clone(), base.task_manager.spawn_handle())
            .boxed(),
    );
    Ok(())
}

/// Timestamps for blocks sealed on demand: the wall clock, but always at least a millisecond
/// after the previous block's, so that several blocks may be sealed in one millisecond.
#[derive(Clone, Default)]
struct MonotonicClock(Arc<AtomicU64>);

impl MonotonicClock {
    fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut prev = self.0.load(Ordering::SeqCst);
        loop {
            let next = now.max(prev + 1);
            match self
                .0
                .compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }
}

/// The development chain: one node that seals a block as soon as a transaction arrives (or every
/// `block_time_ms`) and finalizes it at once.
pub fn new_dev<N: sc_network::NetworkBackend<Block, <Block as BlockT>::Hash>>(
    config: Configuration,
    block_time_ms: Option<u64>,
) -> Result<TaskManager, ServiceError> {
    let base = new_base(&config)?;
    let import_queue = manual_seal::import_queue(
        Box::new(base.client.clone()),
        &base.task_manager.spawn_essential_handle(),
        config.prometheus_registry(),
    );

    let net_config = sc_network::config::FullNetworkConfiguration::<
        Block,
        <Block as BlockT>::Hash,
        N,
    >::new(&config.network, config.prometheus_registry().cloned());
    let metrics = N::register_notification_metrics(config.prometheus_registry());
    let (network, system_rpc_tx, tx_handler_controller, sync_service, _bitswap) =
        sc_service::build_network(sc_service::BuildNetworkParams {
            config: &config,
            net_config,
            client: base.client.clone(),
            transaction_pool: base.transaction_pool.clone(),
            spawn_handle: base.task_manager.spawn_handle(),
            spawn_essential_handle: base.task_manager.spawn_essential_handle(),
            import_queue,
            block_announce_validator_builder: None,
            warp_sync_config: None,
            block_relay: None,
            metrics,
            gap_sync_body_policy: None,
        })?;
    start_offchain_workers(&config, &base, network.clone())?;

    let prometheus_registry = config.prometheus_registry().cloned();
    let Base {
        client,
        backend,
        keystore_container,
        mut task_manager,
        select_chain,
        transaction_pool,
    } = base;
    sc_service::spawn_tasks(sc_service::SpawnTasksParams {
        network,
        client: client.clone(),
        keystore: keystore_container.keystore(),
        task_manager: &mut task_manager,
        transaction_pool: transaction_pool.clone(),
        rpc_builder: rpc_builder(client.clone(), transaction_pool.clone()),
        backend,
        system_rpc_tx,
        tx_handler_controller,
        sync_service,
        config,
        telemetry: None,
        tracing_execute_block: None,
    })?;

    let env = sc_basic_authorship::ProposerFactory::new(
        task_manager.spawn_handle(),
        client.clone(),
        transaction_pool.clone(),
        prometheus_registry.as_ref(),
        None,
    );
    let clock = MonotonicClock::default();
    let create_inherent_data_providers = move |_, ()| {
        let clock = clock.clone();
        async move { Ok(sp_timestamp::InherentDataProvider::new(clock.next().into())) }
    };
    let consensus_data_provider: Option<Box<dyn manual_seal::ConsensusDataProvider<Block>>> =
        Some(Box::new(AuraConsensusDataProvider::new(client.clone())));

    let authorship = match block_time_ms {
        None => manual_seal::run_instant_seal_and_finalize(manual_seal::InstantSealParams {
            block_import: client.clone(),
            env,
            client,
            pool: transaction_pool,
            select_chain,
            consensus_data_provider,
            create_inherent_data_providers,
        })
        .boxed(),
        Some(ms) => {
            let commands = futures::stream::unfold((), move |()| async move {
                futures_timer::Delay::new(Duration::from_millis(ms)).await;
                Some((
                    manual_seal::EngineCommand::SealNewBlock {
                        create_empty: true,
                        finalize: true,
                        parent_hash: None,
                        sender: None,
                    },
                    (),
                ))
            })
            .boxed();
            manual_seal::run_manual_seal(manual_seal::ManualSealParams {
                block_import: client.clone(),
                env,
                client,
                pool: transaction_pool,
                commands_stream: commands,
                select_chain,
                consensus_data_provider,
                create_inherent_data_providers,
            })
            .boxed()
        }
    };
    task_manager
        .spawn_essential_handle()
        .spawn_blocking("manual-seal", None, authorship);
    Ok(task_manager)
}

/// A node of a multi-validator chain: Aura authors blocks in slots, GRANDPA finalizes them.
pub fn new_full<N: sc_network::NetworkBackend<Block, <Block as BlockT>::Hash>>(
    config: Configuration,
) -> Result<TaskManager, ServiceError> {
    let base = new_base(&config)?;
    let (grandpa_block_import, grandpa_link) = sc_consensus_grandpa::block_import(
        base.client.clone(),
        GRANDPA_JUSTIFICATION_PERIOD,
        &base.client,
        base.select_chain.clone(),
        None,
    )?;

    let slot_duration = sc_consensus_aura::slot_duration(&*base.client)?;
    let import_queue = sc_consensus_aura::import_queue::<AuraPair, _, _, _, _, _>(
        ImportQueueParams {
            block_import: grandpa_block_import.clone(),
            justification_import: Some(Box::new(grandpa_block_import.clone())),
            client: base.client.clone(),
            create_inherent_data_providers: move |_, ()| async move {
                let timestamp = sp_timestamp::InherentDataProvider::from_system_time();
                let slot = sp_consensus_aura::inherents::InherentDataProvider::from_timestamp_and_slot_duration(
                *timestamp,
                slot_duration,
            );
                Ok((slot, timestamp))
            },
            spawner: &base.task_manager.spawn_essential_handle(),
            registry: config.prometheus_registry(),
            check_for_equivocation: Default::default(),
            telemetry: None,
            compatibility_mode: Default::default(),
        },
    )?;

    let mut net_config = sc_network::config::FullNetworkConfiguration::<
        Block,
        <Block as BlockT>::Hash,
        N,
    >::new(&config.network, config.prometheus_registry().cloned());
    let metrics = N::register_notification_metrics(config.prometheus_registry());
    let peer_store_handle = net_config.peer_store_handle();
    let grandpa_protocol_name = sc_consensus_grandpa::protocol_standard_name(
        &base
            .client
            .block_hash(0)
            .ok()
            .flatten()
            .expect("the genesis block exists; qed"),
        &config.chain_spec,
    );
    let (grandpa_protocol_config, grandpa_notification_service) =
        sc_consensus_grandpa::grandpa_peers_set_config::<_, N>(
            grandpa_protocol_name.clone(),
            metrics.clone(),
            peer_store_handle,
        );
    net_config.add_notification_protocol(grandpa_protocol_config);
    let warp_sync = Arc::new(sc_consensus_grandpa::warp_proof::NetworkProvider::new(
        base.backend.clone(),
        grandpa_link.shared_authority_set().clone(),
        Vec::default(),
    ));
    let (network, system_rpc_tx, tx_handler_controller, sync_service, _bitswap) =
        sc_service::build_network(sc_service::BuildNetworkParams {
            config: &config,
            net_config,
            client: base.client.clone(),
            transaction_pool: base.transaction_pool.clone(),
            spawn_handle: base.task_manager.spawn_handle(),
            spawn_essential_handle: base.task_manager.spawn_essential_handle(),
            import_queue,
            block_announce_validator_builder: None,
            warp_sync_config: Some(WarpSyncConfig::WithProvider(warp_sync)),
            block_relay: None,
            metrics,
            gap_sync_body_policy: None,
        })?;
    start_offchain_workers(&config, &base, network.clone())?;

    let role = config.role;
    let force_authoring = config.force_authoring;
    let name = config.network.node_name.clone();
    let enable_grandpa = !config.disable_grandpa;
    let prometheus_registry = config.prometheus_registry().cloned();
    let Base {
        client,
        backend,
        keystore_container,
        mut task_manager,
        select_chain,
        transaction_pool,
    } = base;

    sc_service::spawn_tasks(sc_service::SpawnTasksParams {
        network: network.clone(),
        client: client.clone(),
        keystore: keystore_container.keystore(),
        task_manager: &mut task_manager,
        transaction_pool: transaction_pool.clone(),
        rpc_builder: rpc_builder(client.clone(), transaction_pool.clone()),
        backend,
        system_rpc_tx,
        tx_handler_controller,
        sync_service: sync_service.clone(),
        config,
        telemetry: None,
        tracing_execute_block: None,
    })?;

    if role.is_authority() {
        let proposer_factory = sc_basic_authorship::ProposerFactory::new(
            task_manager.spawn_handle(),
            client.clone(),
            transaction_pool.clone(),
            prometheus_registry.as_ref(),
            None,
        );
        let aura = sc_consensus_aura::start_aura::<AuraPair, _, _, _, _, _, _, _, _, _, _>(
            StartAuraParams {
                slot_duration,
                client,
                select_chain,
                block_import: grandpa_block_import,
                proposer_factory,
                create_inherent_data_providers: move |_, ()| async move {
                    let timestamp = sp_timestamp::InherentDataProvider::from_system_time();
                    let slot = sp_consensus_aura::inherents::InherentDataProvider::from_timestamp_and_slot_duration(
                    *timestamp,
                    slot_duration,
                );
                    Ok((slot, timestamp))
                },
                force_authoring,
                backoff_authoring_blocks: Option::<()>::None,
                keystore: keystore_container.keystore(),
                sync_oracle: sync_service.clone(),
                justification_sync_link: sync_service.clone(),
                block_proposal_slot_portion: SlotProportion::new(2f32 / 3f32),
                max_block_proposal_slot_portion: None,
                telemetry: None,
                compatibility_mode: Default::default(),
            },
        )?;
        task_manager
            .spawn_essential_handle()
            .spawn_blocking("aura", Some("block-authoring"), aura);
    }

    if enable_grandpa {
        let keystore = role.is_authority().then(|| keystore_container.keystore());
        let grandpa_config = sc_consensus_grandpa::GrandpaParams {
            config: sc_consensus_grandpa::Config {
                gossip_duration: Duration::from_millis(333),
                justification_generation_period: GRANDPA_JUSTIFICATION_PERIOD,
                name: Some(name),
                observer_enabled: false,
                keystore,
                local_role: role,
                telemetry: None,
                protocol_name: grandpa_protocol_name,
            },
            link: grandpa_link,
            network,
            sync: Arc::new(sync_service),
            notification_service: grandpa_notification_service,
            voting_rule: sc_consensus_grandpa::VotingRulesBuilder::default().build(),
            prometheus_registry,
            shared_voter_state: SharedVoterState::empty(),
            telemetry: None,
            offchain_tx_pool_factory: OffchainTransactionPoolFactory::new(transaction_pool),
        };
        task_manager.spawn_essential_handle().spawn_blocking(
            "grandpa-voter",
            None,
            sc_consensus_grandpa::run_grandpa_voter(grandpa_config)?,
        );
    }

    Ok(task_manager)
}

/// Runs a node with the network backend the configuration names.
pub fn start(
    config: Configuration,
    dev_block_time: Option<u64>,
) -> Result<TaskManager, ServiceError> {
    use sc_network::config::NetworkBackendType;
    let dev = config.chain_spec.chain_type() == sc_service::ChainType::Development;
    match (config.network.network_backend, dev) {
        (NetworkBackendType::Libp2p, true) => new_dev::<
            sc_network::NetworkWorker<Block, <Block as BlockT>::Hash>,
        >(config, dev_block_time),
        (NetworkBackendType::Litep2p, true) => {
            new_dev::<sc_network::Litep2pNetworkBackend>(config, dev_block_time)
        }
        (NetworkBackendType::Libp2p, false) => {
            new_full::<sc_network::NetworkWorker<Block, <Block as BlockT>::Hash>>(config)
        }
        (NetworkBackendType::Litep2p, false) => {
            new_full::<sc_network::Litep2pNetworkBackend>(config)
        }
    }
}
