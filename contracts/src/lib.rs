//! The Zero-OS deployment model, shared by the chain, the node agent and the CLI.
//!
//! A [`Deployment`] is what must run on one node. It has one canonical SCALE encoding and one
//! hash ([`Deployment::hash`]); [`validate`] checks everything the types cannot say and returns a
//! typed [`ValidationError`] naming the workload and the field. Untrusted bytes are decoded with
//! [`Deployment::decode_bounded`].
//!
//! Under `std`: the user-facing YAML/JSON form with human units ([`file`]) and secrets sealed to a
//! node's key ([`sealed`]).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod decode;
mod dependencies;
mod hash;
pub mod limits;
mod model;
pub mod pricing;
mod update;
mod validate;

#[cfg(feature = "std")]
pub mod file;
#[cfg(feature = "std")]
pub mod sealed;
#[cfg(feature = "std")]
mod units;

pub use bounded_collections::{BoundedVec, ConstU32};
pub use decode::DecodeError;
pub use hash::{hash_encoded, DEPLOYMENT_HASH_DOMAIN};
pub use model::*;
pub use update::{check_update, follow_versions, UpdateError, UpdateRule, VersionChange};
pub use validate::{validate, Field, ValidationError, ValidationErrorKind};
