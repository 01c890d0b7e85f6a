//! Submitting transactions: one owner of each key's nonce, retries of what is transient, and a
//! typed error for what the chain refused.
//!
//! A [`Submitter`] holds its key's next nonce behind a lock. A submission takes the lock, signs
//! with the next nonce, hands the transaction to the pool, counts the nonce and lets go: many
//! tasks can submit through one submitter at once and their nonces never collide. Waiting for
//! finalization happens outside the lock. When the pool refuses a transaction for a reason that
//! passes (a stale or future nonce after another program used the key, a priority too low, a lost
//! connection), the submitter forgets its nonce, asks the chain again, and retries with backoff;
//! when the connection was lost it reconnects first, to the first of the client's endpoints that
//! answers.

use std::{sync::Arc, time::Duration};

use subxt::{
    config::DefaultExtrinsicParamsBuilder,
    error::{DispatchError, TransactionEventsError, TransactionFinalizedSuccessError},
    extrinsics::ExtrinsicEvents,
    transactions::{Payload, Signer},
    utils::{AccountId32, H256},
};
use tokio::sync::Mutex;

use crate::{
    error::{subxt_err, ChainError, DispatchFailure},
    ChainClient, ZosConfig,
};

/// Attempts before a transient refusal becomes an error.
const ATTEMPTS: u32 = 12;

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
}

impl<S> Clone for Submitter<S> {
    fn clone(&self) -> Self {
        Submitter {
            client: self.client.clone(),
            signer: self.signer.clone(),
            account: self.account,
            nonce: self.nonce.clone(),
        }
    }
}

impl<S: Signer<ZosConfig> + Send + Sync + 'static> Submitter<S> {
    pub(crate) fn new(client: ChainClient, signer: S) -> Submitter<S> {
        let account = signer.account_id();
        Submitter {
            client: Arc::new(tokio::sync::RwLock::new(client)),
            signer: Arc::new(signer),
            account,
            nonce: Arc::new(Mutex::new(None)),
        }
    }

    /// The signing account.
    pub fn account(&self) -> &AccountId32 {
        &self.account
    }

    /// Submits `call` and waits until it is in a finalized block. A call the chain refused is
    /// [`ChainError::Dispatch`] with the pallet's error by name.
    pub async fn submit<C: Payload + Send + Sync>(
        &self,
        call: &C,
    ) -> Result<TxOutcome, ChainError> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.try_once(call).await;
            match result {
                Err(Attempt::Transient(reason)) if attempt < ATTEMPTS => {
                    tracing::debug!(account = %self.account, attempt, %reason, "retrying transaction");
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

    async fn try_once<C: Payload + Send + Sync>(&self, call: &C) -> Result<TxOutcome, Attempt> {
        let client = self.client.read().await.clone();
        let progress = {
            let mut nonce = self.nonce.lock().await;
            let next = match *nonce {
                Some(n) => n,
                None => client
                    .next_nonce(&self.account)
                    .await
                    .map_err(Attempt::classify)?,
            };
            // The anchor block (for mortality) is taken under the lock: a transaction that waited
            // its turn behind many others would otherwise be born in an ancient block.
            let at = client.at(None).await.map_err(Attempt::classify)?;
            let params = DefaultExtrinsicParamsBuilder::<ZosConfig>::new()
                .nonce(next)
                .build();
            let mut tx = at.tx();
            match tx
                .sign_and_submit_then_watch(call, &*self.signer, params)
                .await
            {
                Ok(progress) => {
                    *nonce = Some(next + 1);
                    progress
                }
                Err(e) => {
                    // Whatever happened, ask the chain for the nonce next time.
                    *nonce = None;
                    return Err(Attempt::classify(subxt_err(e)));
                }
            }
        };
        let tx_hash = progress.extrinsic_hash();
        let in_block = match progress.wait_for_finalized().await {
            Ok(b) => b,
            Err(e) => {
                // Dropped or invalid after it entered the pool: the nonce may be wrong now.
                *self.nonce.lock().await = None;
                return Err(Attempt::classify(subxt_err(e)));
            }
        };
        let block_hash = in_block.block_hash();
        match in_block.wait_for_success().await {
            Ok(events) => Ok(TxOutcome {
                block_hash,
                tx_hash,
                events,
            }),
            Err(TransactionEventsError::ExtrinsicFailed(e)) => {
                Err(Attempt::Final(dispatch_error(e)))
            }
            Err(e) => Err(Attempt::classify(subxt_err(e))),
        }
    }
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

/// The pallet error behind a failed dispatch, by name.
pub(crate) fn dispatch_error(e: DispatchError) -> ChainError {
    let failure = match &e {
        DispatchError::Module(m) => match m.details() {
            Ok(d) => DispatchFailure {
                pallet: d.pallet.name().to_string(),
                error: d.variant.name.clone(),
                docs: d.variant.docs.join(" "),
            },
            Err(_) => DispatchFailure {
                pallet: "?".into(),
                error: m.details_string(),
                docs: String::new(),
            },
        },
        other => DispatchFailure {
            pallet: "System".into(),
            error: format!("{other:?}"),
            docs: String::new(),
        },
    };
    ChainError::Dispatch(failure)
}

enum Attempt {
    /// Worth another try: the pool or the connection, not the transaction.
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

impl From<TransactionFinalizedSuccessError> for ChainError {
    fn from(e: TransactionFinalizedSuccessError) -> ChainError {
        match e {
            TransactionFinalizedSuccessError::SuccessError(
                TransactionEventsError::ExtrinsicFailed(d),
            ) => dispatch_error(d),
            other => subxt_err(other),
        }
    }
}
