//! Errors of the chain client.

use std::path::PathBuf;

use subxt::{ext::scale_decode::DecodeAsType, utils::H256, Metadata};

use crate::api;

/// `pallet-deployments`' error, as generated from the metadata.
pub type DeploymentsError = api::runtime_types::pallet_deployments::pallet::Error;
/// `pallet-grid`'s error, as generated from the metadata.
pub type GridError = api::runtime_types::pallet_grid::pallet::Error;

/// A transaction that the chain executed and refused: the error by name and documentation for
/// people, and as the generated enum for code (see [`DispatchFailure::module`]), so that code
/// matching a renamed error fails to compile instead of silently never matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchFailure {
    /// The pallet, e.g. `Deployments`; `System` for errors that are not a pallet's.
    pub pallet: String,
    /// The error, e.g. `InsufficientCapacity`.
    pub error: PalletError,
    /// The error's documentation.
    pub docs: String,
}

/// An error's name as the chain's metadata gives it and, when this client's generated types know
/// it, its value in them.
#[derive(Debug, Clone)]
pub struct PalletError {
    name: String,
    value: Option<Typed>,
}

#[derive(Debug, Clone)]
enum Typed {
    /// A pallet's error.
    Module(api::Error),
    /// A dispatch error that is not a pallet's (never its `Module` variant).
    Runtime(api::DispatchError),
}

impl PalletError {
    /// The name, e.g. `InsufficientCapacity`, or `Token(FundsUnavailable)` for an error that is
    /// not a pallet's.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Only a name, e.g. for a failure built by hand: it has no typed value.
impl From<&str> for PalletError {
    fn from(name: &str) -> PalletError {
        PalletError {
            name: name.to_string(),
            value: None,
        }
    }
}

/// Only a name, e.g. for a failure built by hand: it has no typed value.
impl From<String> for PalletError {
    fn from(name: String) -> PalletError {
        PalletError { name, value: None }
    }
}

/// Errors are the same when their names are (names are unique within a pallet, and a
/// [`DispatchFailure`] compares its pallet too).
impl PartialEq for PalletError {
    fn eq(&self, other: &PalletError) -> bool {
        self.name == other.name
    }
}

impl Eq for PalletError {}

impl std::fmt::Display for PalletError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl DispatchFailure {
    /// A pallet's error as the generated root error enum, e.g.
    /// `api::Error::Deployments(DeploymentsError::ReportTooEarly)`. `None` for a dispatch error
    /// that is not a pallet's, and for an error this client's metadata does not know (a newer
    /// runtime's).
    pub fn module(&self) -> Option<&api::Error> {
        match &self.error.value {
            Some(Typed::Module(e)) => Some(e),
            _ => None,
        }
    }

    /// `pallet-deployments`' error, if it is one.
    pub fn deployments(&self) -> Option<&DeploymentsError> {
        match self.module() {
            Some(api::Error::Deployments(e)) => Some(e),
            _ => None,
        }
    }

    /// `pallet-grid`'s error, if it is one.
    pub fn grid(&self) -> Option<&GridError> {
        match self.module() {
            Some(api::Error::Grid(e)) => Some(e),
            _ => None,
        }
    }

    /// A dispatch error that is not a pallet's (`BadOrigin`, `Token(FundsUnavailable)`, ...) as
    /// the generated enum.
    pub fn runtime(&self) -> Option<&api::DispatchError> {
        match &self.error.value {
            Some(Typed::Runtime(e)) => Some(e),
            _ => None,
        }
    }

    /// The failure behind a runtime dispatch error, named and decoded with `metadata`, the
    /// chain's metadata where it happened.
    pub(crate) fn from_runtime(e: &api::DispatchError, metadata: &Metadata) -> DispatchFailure {
        let api::DispatchError::Module(m) = e else {
            return DispatchFailure {
                pallet: "System".into(),
                error: PalletError {
                    name: format!("{e:?}"),
                    value: Some(Typed::Runtime(e.clone())),
                },
                docs: String::new(),
            };
        };
        let pallet = metadata.pallet_by_error_index(m.index);
        let variant = pallet
            .as_ref()
            .and_then(|p| p.error_variant_by_index(m.error[0]));
        // What `subxt`'s `ModuleError::as_root_error` does: the pallet's index and the error's
        // bytes, decoded as the runtime's outer error enum into the generated one.
        let bytes = [m.index, m.error[0], m.error[1], m.error[2], m.error[3]];
        let typed = api::Error::decode_as_type(
            &mut &bytes[..],
            metadata.outer_enums().error_enum_ty(),
            metadata.types(),
        )
        .ok();
        DispatchFailure {
            pallet: pallet.map_or_else(|| format!("pallet #{}", m.index), |p| p.name().into()),
            error: PalletError {
                name: variant.map_or_else(|| format!("error #{}", m.error[0]), |v| v.name.clone()),
                value: typed.map(Typed::Module),
            },
            docs: variant.map(|v| v.docs.join(" ")).unwrap_or_default(),
        }
    }
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
    /// The chain finalized the transaction's last valid block without it: it can never execute,
    /// and submitting the call again is safe.
    #[error("transaction {tx_hash:?} was not finalized before it expired at block {expires_at}")]
    Expired {
        /// The transaction.
        tx_hash: H256,
        /// The first block that cannot include it.
        expires_at: u64,
    },
    /// The wait for the transaction reached its deadline (the time its mortality should take,
    /// and a margin) before the chain finalized it or its expiry: it may still execute until
    /// block `expires_at`.
    #[error(
        "transaction {tx_hash:?} was not finalized before its deadline; it can still be included \
         until it expires at block {expires_at}, which the chain has not finalized yet"
    )]
    NotFinalized {
        /// The transaction.
        tx_hash: H256,
        /// The first block that cannot include it.
        expires_at: u64,
    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use api::runtime_types::{
        pallet_deployments::types::InvalidReason,
        sp_runtime::{ModuleError, TokenError},
        zos_contracts::validate::ValidationErrorKind,
    };

    fn metadata() -> Metadata {
        Metadata::decode_from(&include_bytes!("../metadata/zos.scale")[..])
            .expect("the checked-in metadata decodes")
    }

    /// The module error `pallet::error` as the runtime reports it, from the metadata's indices.
    fn module_error(
        metadata: &Metadata,
        pallet: &str,
        error: &str,
        rest: [u8; 3],
    ) -> api::DispatchError {
        let p = metadata.pallet_by_name(pallet).expect("the pallet exists");
        let index = (0..=u8::MAX)
            .find(|i| {
                p.error_variant_by_index(*i)
                    .is_some_and(|v| v.name == error)
            })
            .expect("the error exists");
        api::DispatchError::Module(ModuleError {
            index: p.error_index(),
            error: [index, rest[0], rest[1], rest[2]],
        })
    }

    #[test]
    fn a_pallet_error_decodes_into_the_generated_enum() {
        let metadata = metadata();
        let e = module_error(&metadata, "Deployments", "ReportTooEarly", [0; 3]);
        let f = DispatchFailure::from_runtime(&e, &metadata);
        assert_eq!(
            (f.pallet.as_str(), f.error.name()),
            ("Deployments", "ReportTooEarly")
        );
        assert!(!f.docs.is_empty());
        assert!(matches!(
            f.deployments(),
            Some(DeploymentsError::ReportTooEarly)
        ));
        assert!(f.grid().is_none() && f.runtime().is_none());

        let e = module_error(&metadata, "Grid", "ReportTooEarly", [0; 3]);
        let f = DispatchFailure::from_runtime(&e, &metadata);
        assert!(matches!(f.grid(), Some(GridError::ReportTooEarly)));
        assert!(f.deployments().is_none());

        let e = module_error(&metadata, "Balances", "InsufficientBalance", [0; 3]);
        let f = DispatchFailure::from_runtime(&e, &metadata);
        assert!(matches!(f.module(), Some(api::Error::Balances(_))));
    }

    #[test]
    fn an_error_with_fields_decodes_them() {
        use subxt::ext::scale_encode::EncodeAsType;
        let metadata = metadata();
        // Encoded by name against the metadata's outer error enum, as the runtime would.
        let invalid = api::Error::Deployments(DeploymentsError::InvalidDeployment(InvalidReason(
            ValidationErrorKind::DuplicateName,
        )))
        .encode_as_type(metadata.outer_enums().error_enum_ty(), metadata.types())
        .expect("the error encodes");
        let mut error = [0; 4];
        error[..invalid.len() - 1].copy_from_slice(&invalid[1..]);
        let e = api::DispatchError::Module(ModuleError {
            index: invalid[0],
            error,
        });
        let f = DispatchFailure::from_runtime(&e, &metadata);
        assert_eq!(f.error.name(), "InvalidDeployment");
        assert!(
            matches!(
                f.deployments(),
                Some(DeploymentsError::InvalidDeployment(InvalidReason(
                    ValidationErrorKind::DuplicateName
                )))
            ),
            "{f:?}"
        );
    }

    #[test]
    fn an_error_not_a_pallets_is_typed_too() {
        let metadata = metadata();
        let e = api::DispatchError::Token(TokenError::FundsUnavailable);
        let f = DispatchFailure::from_runtime(&e, &metadata);
        assert_eq!(f.pallet, "System");
        assert_eq!(f.error.name(), "Token(FundsUnavailable)");
        assert!(matches!(
            f.runtime(),
            Some(api::DispatchError::Token(TokenError::FundsUnavailable))
        ));
        assert!(f.module().is_none());
    }

    #[test]
    fn an_unknown_error_has_a_name_and_no_value() {
        let metadata = metadata();
        let e = api::DispatchError::Module(ModuleError {
            index: 250,
            error: [7, 0, 0, 0],
        });
        let f = DispatchFailure::from_runtime(&e, &metadata);
        assert_eq!(f.to_string(), "pallet #250::error #7");
        assert!(f.module().is_none());
    }
}
