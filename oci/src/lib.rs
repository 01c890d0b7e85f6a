//! OCI images as both sides of Zero-OS use them: the node pulls, users build and push.
//!
//! - [`digest`]: sha256 digests (and the BLAKE3 content hashes the store names files by),
//!   checked while bytes stream.
//! - [`reference`]: image references pinned by digest (`registry/repository@sha256:…`).
//! - [`registry`]: the distribution API client: manifests and blobs fetched within [`Limits`],
//!   blobs and manifests pushed.
//! - [`push`]: an OCI image built from directories (one reproducible layer each) and pushed: what
//!   `zosctl image push` does.
//! - [`media`]: layer media types and compressions.
//! - [`fsutil`]: filesystem errors that name their path, atomic writes, the store's lock.
//!
//! The node's image store (`zos-image-store`) builds on this; `zosctl` uses it without linking
//! any of the node.

pub mod digest;
pub mod fsutil;
pub mod limits;
pub mod media;
pub mod push;
pub mod reference;
pub mod registry;

pub use digest::{ContentHash, Digest, InvalidDigest};
pub use fsutil::FsError;
pub use limits::Limits;
pub use media::Compression;
pub use reference::{ImageReference, ReferenceError};
pub use registry::{Descriptor, RegistryClient, RegistryError};
