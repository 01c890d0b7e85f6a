//! The client of the Zero-OS chain, used by the node agent and by `zosctl`.
//!
//! - [`api`]: calls, storage and events generated from the runtime's checked-in metadata
//!   (`metadata/zos.scale`), with `zos_contracts::Deployment` in place of a generated copy.
//! - [`keys`]: ed25519 signers for nodes (the account is the public key), sr25519 for users
//!   (mnemonics and dev URIs such as `//Alice`), and key files that refuse to be read by others.
//! - [`ChainClient`]: connects to the first RPC endpoint that answers, reads at the finalized head,
//!   and submits transactions through a [`Submitter`] per key that owns the key's nonce, signs a
//!   call once while it may still execute (a lost connection resubmits the same bytes or finds
//!   them on chain), and waits for finalization no longer than the transaction's mortality.
//! - [`DispatchFailure`]: what the chain refused, by name for people and as the generated error
//!   enum for code ([`DispatchFailure::deployments`], [`DispatchFailure::grid`], ...).
//! - [`events`]: every finalized block from a given number on, decoded into [`ChainEvent`]s, once
//!   each and in order, across disconnects and node restarts.
//! - [`multisig`]: groups with `pallet-multisig`: the group account, open proposals with their
//!   calls decoded, and proposing, approving and withdrawing.

pub mod api;
mod client;
mod config;
mod error;
pub mod events;
pub mod keys;
pub mod multisig;
mod submit;

pub use api::runtime_types::pallet_grid::Hypervisor;
pub use client::{ChainClient, Contract, ContractState, Farm, NetworkMember, NetworkRecord, Node};
pub use config::ZosConfig;
pub use error::{ChainError, DeploymentsError, DispatchFailure, GridError, PalletError};
pub use events::{ChainEvent, FinalizedBlock};
pub use submit::{Submitter, TxOutcome, DEADLINE_SLACK, DEFAULT_MORTALITY};
pub use subxt::utils::{AccountId32, MultiAddress, Static, H256};
