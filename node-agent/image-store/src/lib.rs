//! The node's image store: OCI images pulled by digest, every file stored once, every file checked
//! again when a workload launches.
//!
//! - [`Store::pull`] fetches an image pinned by digest over the OCI distribution API, checks the
//!   manifest against the pinned digest and every blob against its own digest while streaming, and
//!   unpacks the layers (whiteouts and opaque directories as the OCI image spec says) into a
//!   content-addressed store shared by all images. The image becomes an [`ImageRecord`]: its
//!   [`ImageTree`] maps each path to type, mode, owner, size, BLAKE3 content hash or link target.
//! - [`Store::prepare_rootfs`] builds a workload's root filesystem without copying content (a lower
//!   tree of hardlinks into the store under an overlayfs with a per-workload upper dir), after
//!   re-hashing every file of the lower tree against the image's tree ([`verify_tree`]).
//! - [`Limits`] bound what one pull may take (manifest, compressed and uncompressed bytes, tar
//!   entries, a stall timeout, an overall deadline); [`PullError::kind`] says what kind of
//!   failure a pull was, in words safe to publish ([`PullErrorKind`]).
//! - [`Store::gc`] removes images no workload used for a given time and contents no image needs.
//! - [`push`] (from `zos-oci`) builds an OCI image from directories and pushes it, for tests and
//!   `zos-image push`; `zosctl image push` uses `zos-oci` directly.
//!
//! On-disk layout under the store root (one filesystem, since the lower trees are hardlinks):
//!
//! ```text
//! lock                                   flock: shared by pulls and rootfs changes, exclusive for gc
//! content/<blake3 hex>/<mode>-<uid>-<gid> a file content, one inode per metadata variant (see content)
//! images/<sha256 hex>.json               image record, written last: its presence means complete
//! images/<sha256 hex>.used               last time the image was pulled or used by a workload
//! tmp/                                   in-progress pulls; anything here is incomplete
//! workloads/<name>/lease.json            the image a workload's rootfs uses (keeps it from gc)
//! workloads/<name>/{lower,upper,work,merged}
//! ```
//!
//! Filesystem work is blocking: call the synchronous methods from a blocking context
//! (`tokio::task::spawn_blocking`) when inside a runtime.

mod content;
mod kind;
mod layer;
mod rootfs;
mod store;
mod tree;
mod verify;

// Digests, references, the registry client and image building live in `zos-oci`, which the
// user's tool shares without linking the node.
pub use zos_oci::{digest, fsutil, limits, push, reference, registry};

pub use content::ContentError;
pub use kind::PullErrorKind;
pub use layer::UnpackError;
pub use rootfs::{Lease, Rootfs, RootfsError};
pub use store::{GcReport, ImageRecord, LayerRecord, PullError, Store, StoreError, StoreStats};
pub use tree::{Entry, EntryKind, ImageTree};
pub use verify::{verify_tree, Problem, VerifyError, VerifyReport};
pub use zos_oci::{
    Compression, ContentHash, Descriptor, Digest, FsError, ImageReference, InvalidDigest, Limits,
    ReferenceError, RegistryClient, RegistryError,
};
