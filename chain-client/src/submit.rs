//! Submitting transactions: one owner of each key's nonce, a call signed once while it may still
//! execute, a deadline on every wait, and a typed error for what the chain refused.
//!
//! A [`Submitter`] holds its key's next nonce behind a lock. A submission takes the lock, signs
//! with the next nonce, hands the transaction to the pool, waits for the pool to take or refuse
//! it, counts the nonce if it was taken, and lets go: many tasks can submit through one
//! submitter at once, their nonces never collide, the pool sees them in nonce order, and a
//! refusal leaves no gap. Waiting for finalization happens outside the lock.
//!
//! Every transaction is mortal: signed at the finalized head, its *birth*, for
//! [`DEFAULT_MORTALITY`] blocks, it can only be in a block before `birth + mortality`, its
//! *expiry*. The submitter keeps the signed bytes until it knows what became of them, and never
//! signs the call again while they may still execute:
//!
//! - The pool refused the transaction outright (a stale or future nonce after another program
//!   used the key, a priority too low): it is nowhere, so the submitter forgets its nonce, asks
//!   the chain again and signs again, with backoff, up to 12 times. Before anything reached the
//!   pool, a lost connection is waited for (reconnecting, with backoff) for up to two minutes.
//! - The connection was lost, the watch ended, or the pool dropped the transaction after it took
//!   it: the submitter reconnects (to the first of the client's endpoints that answers) and asks
//!   the chain. When the account's nonce at the finalized head is past the transaction's, the
//!   block that used the nonce is found (a binary search on the nonce between birth and head)
//!   and, if the transaction is in it, its outcome is returned as if it had been watched; if
//!   another transaction used the nonce, this one can never execute, and the call is signed
//!   again. Otherwise the same bytes are submitted again (a pool that has them says so; a
//!   restarted node takes them again) and watched.
//! - When the chain has finalized the last block before the expiry without the transaction, it
//!   can never execute: [`ChainError::Expired`], and submitting the call again is safe.
//!
//! Every wait has a deadline: the blocks left until the expiry at the chain's block time (Aura's
//! slot duration, or [`Submitter::with_block_time`]), two more blocks for finality, and
//! [`DEADLINE_SLACK`]. A transaction still unaccounted for then is [`ChainError::NotFinalized`]:
//! it may still execute until its expiry.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use subxt::{
    client::{ClientAtBlock, OnlineClientAtBlockImpl},
    config::DefaultExtrinsicParamsBuilder,
    error::{TransactionProgressError, TransactionStatusError},
    extrinsics::ExtrinsicEvents,
    transactions::{
        Payload, Signer, SubmittableTransaction, TransactionProgress, TransactionStatus,
    },
    utils::{AccountId32, H256},
};
use tokio::sync::{Mutex, OnceCell};

use crate::{
    api,
    error::{subxt_err, ChainError, DispatchFailure},
    ChainClient, ZosConfig,
};

/// Attempts before a transient refusal by the pool becomes an error.
const ATTEMPTS: u32 = 12;
/// How long a submission that has not reached the pool yet waits for a lost connection to come
/// back (a node restarting) before it is an error.
const RECONNECTING: Duration = Duration::from_secs(120);
/// How many blocks a transaction stays valid for, unless [`Submitter::with_mortality`] says
/// otherwise.
pub const DEFAULT_MORTALITY: u64 = 64;
/// The longest mortality: within the runtime's `BlockHashCount` (2400), and short enough that
/// the era's phase is not quantized (the birth block is the block signed at).
const MAX_MORTALITY: u64 = 2048;
/// The block time assumed when the chain does not say.
const FALLBACK_BLOCK_TIME: Duration = Duration::from_secs(6);
/// Added to every deadline, beyond two more blocks: RPC round trips and a slow node.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(10);
/// The longest pause between two questions to the chain while a transaction's fate is unknown.
const POLL: Duration = Duration::from_secs(2);
/// How long the pool may take to say whether it takes a transaction (the key's other
/// submissions wait meanwhile).
const VERDICT: Duration = Duration::from_secs(30);

type AtBlock = ClientAtBlock<ZosConfig, OnlineClientAtBlockImpl<ZosConfig>>;
type Progress = TransactionProgress<ZosConfig, OnlineClientAtBlockImpl<ZosConfig>>;
type Submittable = SubmittableTransaction<ZosConfig, OnlineClientAtBlockImpl<ZosConfig>>;

/// A transaction in a finalized block, and the events it produced.
pub struct TxOutcome {
    /// The block that holds it.
    pub block_hash: H256,
    /// The transaction's hash.
    pub tx_hash: H256,
    /// Its events.
    pub events: ExtrinsicEvents<ZosConfig>,
}

/// Signs and submits with one key; see the module documentation.
pub struct Submitter<S> {
    client: Arc<tokio::sync::RwLock<ChainClient>>,
    signer: Arc<S>,
    account: AccountId32,
    nonce: Arc<Mutex<Option<u64>>>,
    mortality: u64,
    block_time: Arc<OnceCell<Duration>>,
}

impl<S> Clone for Submitter<S> {
    fn clone(&self) -> Self {
        Submitter {
            client: self.client.clone(),
            signer: self.signer.clone(),
            account: self.account,
            nonce: self.nonce.clone(),
            mortality: self.mortality,
            block_time: self.block_time.clone(),
        }
    }
}

/// A signed transaction, kept until its fate is known.
struct Signed {
    bytes: Vec<u8>,
    hash: H256,
    nonce: u64,
    /// The block it was signed at.
    birth: u64,
    /// The first block that cannot include it.
    expires_at: u64,
    /// When to stop waiting for it.
    deadline: Instant,
}

/// What the pool said first of a transaction handed to it.
enum Handed {
    /// It took it: its progress follows.
    Taken(Progress),
    /// It refused it: the transaction is nowhere (unless the refusal says the pool has it).
    Refused(ChainError),
    /// Unknown: the connection or the watch went before the pool said.
    Unknown(String),
}

/// What a watch of a transaction the pool took ended with.
enum Watched {
    /// In a finalized block.
    Finalized(AtBlock),
    /// Lost: the connection, the watch, a drop or a refusal after the pool took it.
    Lost(String),
    /// The deadline passed.
    TimedOut,
}

/// What became of a transaction whose watch was lost.
enum Fate {
    /// Executed, successfully or not.
    Included(Result<TxOutcome, DispatchFailure>),
    /// Another transaction used its nonce: it can never execute.
    NonceTaken,
    /// Its last valid block is finalized without it: it can never execute.
    Expired,
    /// It may still execute.
    Pending,
}

impl<S: Signer<ZosConfig> + Send + Sync + 'static> Submitter<S> {
    pub(crate) fn new(client: ChainClient, signer: S) -> Submitter<S> {
        let account = signer.account_id();
        Submitter {
            client: Arc::new(tokio::sync::RwLock::new(client)),
            signer: Arc::new(signer),
            account,
            nonce: Arc::new(Mutex::new(None)),
            mortality: DEFAULT_MORTALITY,
            block_time: Arc::new(OnceCell::new()),
        }
    }

    /// Signs transactions valid for `blocks` blocks (rounded up to a power of two, 4 to 2048)
    /// instead of [`DEFAULT_MORTALITY`].
    pub fn with_mortality(mut self, blocks: u64) -> Submitter<S> {
        self.mortality = era_period(blocks);
        self
    }

    /// Assumes this block time for deadlines instead of asking the chain for its slot duration.
    pub fn with_block_time(mut self, block_time: Duration) -> Submitter<S> {
        self.block_time = Arc::new(OnceCell::new_with(Some(block_time)));
        self
    }

    /// The signing account.
    pub fn account(&self) -> &AccountId32 {
        &self.account
    }

    /// Submits `call` and waits until it is in a finalized block. A call the chain refused is
    /// [`ChainError::Dispatch`] with the pallet's error; a transaction whose wait reached its
    /// deadline is [`ChainError::Expired`] or [`ChainError::NotFinalized`].
    pub async fn submit<C: Payload + Send + Sync>(
        &self,
        call: &C,
    ) -> Result<TxOutcome, ChainError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let result = self.try_once(call).await;
            match result {
                Err(Attempt::Transient(reason))
                    if is_connection_loss(&reason) && started.elapsed() < RECONNECTING =>
                {
                    tracing::debug!(account = %self.account, %reason, "reconnecting before signing");
                    tokio::time::sleep(backoff).await;
                    self.reconnect().await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(Attempt::Transient(reason)) if attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(account = %self.account, attempt, %reason, "signing again");
                    tokio::time::sleep(backoff).await;
                    if is_connection_loss(&reason) {
                        self.reconnect().await;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(Attempt::Transient(reason)) => return Err(ChainError::Rejected(reason)),
                Err(Attempt::Final(e)) => return Err(e),
                Ok(outcome) => return Ok(outcome),
            }
        }
    }

    /// Replaces a client whose connection was lost, once per loss whoever notices it.
    async fn reconnect(&self) {
        let mut client = self.client.write().await;
        if client.finalized_number().await.is_ok() {
            return; // another submission already reconnected
        }
        match client.reconnect().await {
            Ok(fresh) => *client = fresh,
            Err(e) => tracing::warn!(error = %e, "cannot reach the chain yet"),
        }
    }

    /// Signs `call` once, submits it, and follows it until its fate is known.
    async fn try_once<C: Payload + Send + Sync>(&self, call: &C) -> Result<TxOutcome, Attempt> {
        let client = self.client.read().await.clone();
        let block_time = self.block_time(&client).await;
        let (signed, handed) = {
            let mut nonce = self.nonce.lock().await;
            let next = match *nonce {
                Some(n) => n,
                None => client
                    .next_nonce(&self.account)
                    .await
                    .map_err(Attempt::classify)?,
            };
            // Signed under the lock, at the finalized head: a transaction that waited its turn
            // behind many others would otherwise be born in an ancient block.
            let (signed, tx) = self
                .sign(&client, call, next, block_time)
                .await
                .map_err(Attempt::classify)?;
            // Judged by the pool under the lock too: the next nonce is handed out once this one
            // is taken, so the pool sees a key's transactions in nonce order, and a refusal
            // leaves no gap behind it.
            let handed = hand_over(tx.submit_and_watch().await.map_err(subxt_err)).await;
            // Unless the pool took it, ask the chain for the nonce next time.
            *nonce = matches!(handed, Handed::Taken(_)).then_some(next + 1);
            (signed, handed)
        };
        match handed {
            Handed::Taken(progress) => {
                if let Watched::Finalized(at) = watch(progress, signed.deadline).await {
                    // When the block cannot be read, the chain is asked again below.
                    if let Ok(Some(result)) = outcome_in(&at, signed.hash).await {
                        return settle(result);
                    }
                }
            }
            Handed::Refused(e) if !may_exist(&e) => return Err(Attempt::classify(e)),
            // The pool has these bytes already, or may have taken them before the connection
            // went.
            Handed::Refused(_) | Handed::Unknown(_) => {}
        }
        self.follow(&signed).await
    }

    /// Signs `call` with `nonce`, born at the finalized head.
    async fn sign<C: Payload>(
        &self,
        client: &ChainClient,
        call: &C,
        nonce: u64,
        block_time: Duration,
    ) -> Result<(Signed, Submittable), ChainError> {
        let at = client.at(None).await?;
        let birth = at.block_number();
        let params = DefaultExtrinsicParamsBuilder::<ZosConfig>::new()
            .nonce(nonce)
            .mortal_from_unchecked(self.mortality, birth, at.block_hash())
            .build();
        let tx = at
            .tx()
            .create_signable_offline(call, params)
            .map_err(subxt_err)?
            .sign(&*self.signer)
            .map_err(subxt_err)?;
        let expires_at = birth + self.mortality;
        let signed = Signed {
            hash: tx.hash(),
            bytes: tx.encoded().to_vec(),
            nonce,
            birth,
            expires_at,
            deadline: deadline_after(finalization_deadline(expires_at, birth, block_time)),
        };
        Ok((signed, tx))
    }

    /// Finds out what became of `signed` after its watch was lost, submitting its bytes again
    /// while it may still execute, until its fate is known or its deadline passes.
    async fn follow(&self, signed: &Signed) -> Result<TxOutcome, Attempt> {
        let mut pause = Duration::from_millis(200);
        loop {
            let client = self.client.read().await.clone();
            match fate(&client, &self.account, signed).await {
                Ok(Fate::Included(result)) => return settle(result),
                Ok(Fate::NonceTaken) => {
                    *self.nonce.lock().await = None;
                    return Err(Attempt::Transient(format!(
                        "transaction {:?} lost its nonce {} to another transaction",
                        signed.hash, signed.nonce
                    )));
                }
                Ok(Fate::Expired) => {
                    *self.nonce.lock().await = None;
                    return Err(Attempt::Final(ChainError::Expired {
                        tx_hash: signed.hash,
                        expires_at: signed.expires_at,
                    }));
                }
                Ok(Fate::Pending) if Instant::now() < signed.deadline => {
                    // The same bytes again: a pool that has them says so, one that lost them
                    // (a restarted node) takes them again.
                    match hand_over(submit_bytes(&client, &signed.bytes).await).await {
                        Handed::Taken(progress) => match watch(progress, signed.deadline).await {
                            Watched::Finalized(at) => {
                                if let Ok(Some(result)) = outcome_in(&at, signed.hash).await {
                                    return settle(result);
                                }
                            }
                            Watched::Lost(e) => {
                                tracing::debug!(tx = ?signed.hash, error = %e, "watch lost again")
                            }
                            Watched::TimedOut => continue,
                        },
                        // "Already imported", "stale", "banned": the chain will tell.
                        Handed::Refused(e) => {
                            tracing::debug!(tx = ?signed.hash, error = %e, "submitted again: refused")
                        }
                        Handed::Unknown(e) => {
                            tracing::debug!(tx = ?signed.hash, error = %e, "submitted again: no answer")
                        }
                    }
                }
                Ok(Fate::Pending) => {}
                Err(e) => {
                    tracing::debug!(tx = ?signed.hash, error = %e, "cannot ask the chain about a transaction");
                    self.reconnect().await;
                }
            }
            let now = Instant::now();
            if now >= signed.deadline {
                *self.nonce.lock().await = None;
                return Err(Attempt::Final(ChainError::NotFinalized {
                    tx_hash: signed.hash,
                    expires_at: signed.expires_at,
                }));
            }
            tokio::time::sleep(pause.min(signed.deadline - now)).await;
            pause = (pause * 2).min(POLL);
        }
    }

    /// The chain's block time: as configured, else Aura's slot duration, else a fallback.
    async fn block_time(&self, client: &ChainClient) -> Duration {
        let asked = self
            .block_time
            .get_or_try_init(|| async {
                let at = client.at(None).await?;
                let slot = at
                    .runtime_apis()
                    .call(api::runtime_apis().aura_api().slot_duration())
                    .await
                    .map_err(subxt_err)?;
                Ok::<_, ChainError>(Duration::from_millis(slot.0))
            })
            .await;
        match asked {
            Ok(d) if !d.is_zero() => *d,
            _ => FALLBACK_BLOCK_TIME,
        }
    }
}

/// Hands `bytes` to the pool (again) and watches them.
async fn submit_bytes(client: &ChainClient, bytes: &[u8]) -> Result<Progress, ChainError> {
    let at = client.at(None).await?;
    at.tx()
        .from_bytes(bytes.to_vec())
        .submit_and_watch()
        .await
        .map_err(subxt_err)
}

/// The pool's first word on a transaction just handed to it (`submitted`), waited for at most
/// [`VERDICT`].
async fn hand_over(submitted: Result<Progress, ChainError>) -> Handed {
    let mut progress = match submitted {
        Ok(progress) => progress,
        // The node may have taken it before the connection went.
        Err(e) if is_connection_loss(&e.to_string()) => return Handed::Unknown(e.to_string()),
        Err(e) => return Handed::Refused(e),
    };
    let status = match tokio::time::timeout(VERDICT, progress.next()).await {
        Err(_) => return Handed::Unknown("no word from the pool".into()),
        Ok(None) => return Handed::Unknown("the watch ended".into()),
        Ok(Some(Err(e))) => return Handed::Unknown(e.to_string()),
        Ok(Some(Ok(status))) => status,
    };
    let refusal = match status {
        TransactionStatus::Validated
        | TransactionStatus::Broadcasted
        | TransactionStatus::InBestBlock(_)
        | TransactionStatus::NoLongerInBestBlock
        | TransactionStatus::InFinalizedBlock(_) => return Handed::Taken(progress),
        TransactionStatus::Invalid { message } => TransactionStatusError::Invalid(message),
        TransactionStatus::Error { message } => TransactionStatusError::Error(message),
        TransactionStatus::Dropped { message } => TransactionStatusError::Dropped(message),
    };
    Handed::Refused(subxt_err(TransactionProgressError::from(refusal)))
}

/// Follows the pool's reports on a transaction it took until it is finalized or lost, or until
/// `deadline`.
async fn watch(mut progress: Progress, deadline: Instant) -> Watched {
    loop {
        let status = match tokio::time::timeout_at(deadline.into(), progress.next()).await {
            Err(_) => return Watched::TimedOut,
            Ok(None) => return Watched::Lost("the watch ended".into()),
            Ok(Some(Err(e))) => return Watched::Lost(e.to_string()),
            Ok(Some(Ok(status))) => status,
        };
        match status {
            TransactionStatus::InFinalizedBlock(in_block) => {
                return match in_block.at().await {
                    Ok(at) => Watched::Finalized(at),
                    Err(e) => Watched::Lost(e.to_string()),
                }
            }
            TransactionStatus::Validated
            | TransactionStatus::Broadcasted
            | TransactionStatus::InBestBlock(_)
            | TransactionStatus::NoLongerInBestBlock => continue,
            TransactionStatus::Invalid { message }
            | TransactionStatus::Error { message }
            | TransactionStatus::Dropped { message } => return Watched::Lost(message),
        }
    }
}

/// A refusal that says the pool has, or had, these very bytes: they may still execute.
fn may_exist(e: &ChainError) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("already imported") || text.contains("banned")
}

/// The chain's word on `signed`, at its finalized head.
async fn fate(
    client: &ChainClient,
    account: &AccountId32,
    signed: &Signed,
) -> Result<Fate, ChainError> {
    let head = client.at(None).await?;
    let head_number = head.block_number();
    let executed = account_nonce(&head, account).await?;
    Ok(
        match verdict(signed.nonce, signed.expires_at, executed, head_number) {
            Verdict::NonceUsed => return find(client, account, signed, head_number).await,
            Verdict::Expired => Fate::Expired,
            Verdict::Pending => Fate::Pending,
        },
    )
}

/// What a finalized head says of a transaction with `nonce` that expires at block
/// `expires_at`, when the account's nonce there is `executed`.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// A transaction with its nonce executed: it, or another.
    NonceUsed,
    /// The last block that could include it is finalized without it.
    Expired,
    /// It may still execute.
    Pending,
}

fn verdict(nonce: u64, expires_at: u64, executed: u64, head: u64) -> Verdict {
    if executed > nonce {
        Verdict::NonceUsed
    } else if head.saturating_add(1) >= expires_at {
        Verdict::Expired
    } else {
        Verdict::Pending
    }
}

/// The nonce of `signed` is used at finalized block `head`: finds the block that used it, and
/// `signed` in it.
async fn find(
    client: &ChainClient,
    account: &AccountId32,
    signed: &Signed,
    head: u64,
) -> Result<Fate, ChainError> {
    let used_at = |n: u64| async move {
        let at = client.at(Some(n)).await?;
        Ok::<_, ChainError>(account_nonce(&at, account).await? > signed.nonce)
    };
    // It can only be in a block after its birth and before its expiry.
    let (mut before, mut after) = (signed.birth, head.min(signed.expires_at - 1));
    if after <= before || used_at(before).await? || !used_at(after).await? {
        return Ok(Fate::NonceTaken);
    }
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if used_at(mid).await? {
            after = mid;
        } else {
            before = mid;
        }
    }
    let at = client.at(Some(after)).await?;
    Ok(match outcome_in(&at, signed.hash).await? {
        Some(result) => Fate::Included(result),
        None => Fate::NonceTaken,
    })
}

/// The account's nonce at a block: how many of its transactions the chain executed up to it.
async fn account_nonce(at: &AtBlock, account: &AccountId32) -> Result<u64, ChainError> {
    let info = at
        .storage()
        .fetch(api::storage().system().account(), (*account,))
        .await
        .map_err(subxt_err)?
        .decode()
        .map_err(subxt_err)?;
    Ok(info.nonce.into())
}

/// The outcome of transaction `tx_hash` in block `at`; `None` when the block does not hold it.
async fn outcome_in(
    at: &AtBlock,
    tx_hash: H256,
) -> Result<Option<Result<TxOutcome, DispatchFailure>>, ChainError> {
    let extrinsics = at.extrinsics().fetch().await.map_err(subxt_err)?;
    let Some(extrinsic) = extrinsics
        .iter()
        .filter_map(Result::ok)
        .find(|e| e.hash() == tx_hash)
    else {
        return Ok(None);
    };
    let events = extrinsic.events().await.map_err(subxt_err)?;
    if let Some(failed) = events.find_first::<api::system::events::ExtrinsicFailed>() {
        let failed = failed.map_err(subxt_err)?;
        let metadata = at.metadata();
        return Ok(Some(Err(DispatchFailure::from_runtime(
            &failed.dispatch_error,
            &metadata,
        ))));
    }
    Ok(Some(Ok(TxOutcome {
        block_hash: at.block_hash(),
        tx_hash,
        events,
    })))
}

fn settle(result: Result<TxOutcome, DispatchFailure>) -> Result<TxOutcome, Attempt> {
    result.map_err(|f| Attempt::Final(ChainError::Dispatch(f)))
}

/// The era period the runtime uses for a mortality of `blocks`: a power of two, 4 to
/// [`MAX_MORTALITY`].
fn era_period(blocks: u64) -> u64 {
    blocks
        .checked_next_power_of_two()
        .unwrap_or(MAX_MORTALITY)
        .clamp(4, MAX_MORTALITY)
}

/// How long to wait for a transaction that expires at block `expires_at` when the finalized head
/// is `head`: the blocks it has left at `block_time` each, two more (finality follows
/// authorship), and [`DEADLINE_SLACK`].
pub(crate) fn finalization_deadline(expires_at: u64, head: u64, block_time: Duration) -> Duration {
    let blocks = expires_at.saturating_sub(head).saturating_add(2);
    block_time
        .saturating_mul(u32::try_from(blocks).unwrap_or(u32::MAX))
        .saturating_add(DEADLINE_SLACK)
}

/// `wait` from now, or a year when that is past what the clock can hold.
fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or(now + Duration::from_secs(365 * 86_400))
}

/// Whether a transient refusal was the connection going away rather than the pool.
fn is_connection_loss(reason: &str) -> bool {
    let r = reason.to_lowercase();
    [
        "connection",
        "disconnected",
        "restart",
        "closed",
        "background task",
    ]
    .iter()
    .any(|t| r.contains(t))
}

enum Attempt {
    /// Worth signing again: the pool or the connection, not the transaction.
    Transient(String),
    /// Not worth another try.
    Final(ChainError),
}

impl Attempt {
    fn classify(e: ChainError) -> Attempt {
        let text = e.to_string();
        let lower = text.to_lowercase();
        const TRANSIENT: [&str; 15] = [
            "closed",
            "background task",
            "ancient birth block",
            "priority is too low",
            "outdated",
            "stale",
            "future",
            "temporarily banned",
            "immediately dropped",
            "pool is full",
            "connection",
            "disconnected",
            "restart",
            "dropped",
            "usurped",
        ];
        if TRANSIENT.iter().any(|t| lower.contains(t)) {
            Attempt::Transient(text)
        } else {
            Attempt::Final(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_covers_the_blocks_left_two_more_and_the_slack() {
        let six = Duration::from_secs(6);
        // Born at the head: the whole mortality is left.
        assert_eq!(
            finalization_deadline(164, 100, six),
            Duration::from_secs(66 * 6) + DEADLINE_SLACK
        );
        // Half-way.
        assert_eq!(
            finalization_deadline(164, 132, six),
            Duration::from_secs(34 * 6) + DEADLINE_SLACK
        );
        // Past the expiry (a chain that raced ahead): two blocks and the slack.
        assert_eq!(
            finalization_deadline(164, 500, six),
            Duration::from_secs(12) + DEADLINE_SLACK
        );
        // A fast chain.
        assert_eq!(
            finalization_deadline(68, 64, Duration::from_millis(100)),
            Duration::from_millis(600) + DEADLINE_SLACK
        );
        // Absurd figures saturate instead of overflowing.
        assert_eq!(
            finalization_deadline(u64::MAX, 0, Duration::from_secs(u64::MAX / 2)),
            Duration::MAX
        );
        assert!(deadline_after(Duration::MAX) > Instant::now());
    }

    #[test]
    fn a_transaction_is_expired_once_its_last_valid_block_is_final_without_it() {
        // Nonce 5, signed at block 100 for 64 blocks: blocks 101 to 163 may include it.
        assert_eq!(verdict(5, 164, 5, 100), Verdict::Pending);
        assert_eq!(verdict(5, 164, 5, 162), Verdict::Pending);
        assert_eq!(verdict(5, 164, 5, 163), Verdict::Expired);
        assert_eq!(verdict(5, 164, 5, 900), Verdict::Expired);
        // Its nonce used: found (or found taken by another) whatever the head.
        assert_eq!(verdict(5, 164, 6, 120), Verdict::NonceUsed);
        assert_eq!(verdict(5, 164, 9, 900), Verdict::NonceUsed);
        // A nonce ahead of the chain's (an earlier transaction not yet in): still pending.
        assert_eq!(verdict(5, 164, 4, 120), Verdict::Pending);
    }

    #[test]
    fn the_mortality_is_the_runtimes_era_period() {
        assert_eq!(era_period(64), 64);
        assert_eq!(era_period(50), 64);
        assert_eq!(era_period(1), 4);
        assert_eq!(era_period(0), 4);
        assert_eq!(era_period(100_000), MAX_MORTALITY);
        assert_eq!(era_period(4096), MAX_MORTALITY);
        assert_eq!(era_period(u64::MAX), MAX_MORTALITY);
        assert_eq!(DEFAULT_MORTALITY, era_period(DEFAULT_MORTALITY));
    }

    #[test]
    fn a_refusal_of_the_same_bytes_means_they_may_still_execute() {
        let refused = |m: &str| {
            subxt_err(TransactionProgressError::from(
                TransactionStatusError::Invalid(m.into()),
            ))
        };
        assert!(may_exist(&refused("Transaction Already Imported")));
        assert!(may_exist(&refused("Transaction is temporarily banned")));
        assert!(!may_exist(&refused(
            "Invalid Transaction: Inability to pay some fees"
        )));
    }
}
