//! Errors of the chain client.

use std::path::PathBuf;

/// A transaction that the chain executed and refused: the pallet's error by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchFailure {
    /// The pallet, e.g. `Deployments`; `System` for errors that are not a pallet's.
    pub pallet: String,
    /// The error's name, e.g. `InsufficientCapacity`.
    pub error: String,
    /// The error's documentation.
    pub docs: String,
}

impl std::fmt::Display for DispatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.pallet, self.error)?;
        if !self.docs.is_empty() {
            write!(f, " ({})", self.docs)?;
        }
        Ok(())
    }
}

/// Why a chain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// None of the endpoints answered.
    #[error("no RPC endpoint answered ({tried}): {last}")]
    NoEndpoint {
        /// The endpoints tried, comma separated.
        tried: String,
        /// The last endpoint's error.
        last: String,
    },
    /// An endpoint serves another chain than the one pinned.
    #[error("{url} serves another chain (genesis {served:?}, not {want:?})")]
    OtherChain {
        /// The endpoint.
        url: String,
        /// The genesis hash it serves.
        served: subxt::utils::H256,
        /// The genesis hash pinned.
        want: subxt::utils::H256,
    },
    /// The transaction was executed and failed.
    #[error("the chain refused the transaction: {0}")]
    Dispatch(DispatchFailure),
    /// The pool refused the transaction, or dropped it, after every retry.
    #[error("the transaction pool refused the transaction: {0}")]
    Rejected(String),
    /// What the chain holds could not be decoded as this client expects.
    #[error("unexpected data on chain: {0}")]
    Decode(String),
    /// A key file is missing, unreadable, readable by others, or malformed.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key or URI is malformed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// An RPC or subxt error (boxed: subxt's error is large).
    #[error(transparent)]
    Subxt(Box<subxt::Error>),
}

impl From<subxt::Error> for ChainError {
    fn from(e: subxt::Error) -> ChainError {
        ChainError::Subxt(Box::new(e))
    }
}

impl ChainError {
    /// The pallet error, if the chain refused the transaction with one.
    pub fn dispatch(&self) -> Option<&DispatchFailure> {
        match self {
            ChainError::Dispatch(d) => Some(d),
            _ => None,
        }
    }
}

/// Wraps any subxt error type.
pub(crate) fn subxt_err(e: impl Into<subxt::Error>) -> ChainError {
    ChainError::Subxt(Box::new(e.into()))
}
