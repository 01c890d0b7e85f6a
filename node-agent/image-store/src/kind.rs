//! What kind of failure a pull was: a few words its owner can act on, and that are safe to
//! publish (the node reports them on chain). The error itself, with the registry's status, the
//! digests and the local paths, is for the node's log.

use std::fmt;

use crate::content::ContentError;
use crate::layer::UnpackError;
use crate::registry::RegistryError;
use crate::store::PullError;

/// See the module documentation; [`PullError::kind`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullErrorKind {
    /// The registry could not be reached (name resolution, connection, TLS).
    Unreachable,
    /// The registry has no such image, or no blob the image names.
    NotFound,
    /// The registry refuses anonymous pulls of the image.
    Unauthorized,
    /// Over one of the byte or entry caps of [`Limits`](crate::Limits).
    TooLarge,
    /// The pull took longer than [`Limits::deadline`](crate::Limits::deadline).
    DeadlineExceeded,
    /// The registry sent nothing for longer than [`Limits::stall`](crate::Limits::stall).
    Stalled,
    /// What the registry served does not match its digest or its size.
    DigestMismatch,
    /// Not an image this node can run: a malformed or unsupported manifest, config or layer, or
    /// no image for this platform.
    InvalidImage,
    /// The registry failed otherwise: an error status, a connection broken off.
    RegistryError,
    /// The node's own image store failed (disk, permissions).
    NodeError,
}

impl PullErrorKind {
    /// Its words: `unreachable`, `not found`, `unauthorized`, `too large`, `deadline exceeded`,
    /// `stalled`, `digest mismatch`, `invalid image`, `registry error`, `node error`.
    pub fn as_str(self) -> &'static str {
        match self {
            PullErrorKind::Unreachable => "unreachable",
            PullErrorKind::NotFound => "not found",
            PullErrorKind::Unauthorized => "unauthorized",
            PullErrorKind::TooLarge => "too large",
            PullErrorKind::DeadlineExceeded => "deadline exceeded",
            PullErrorKind::Stalled => "stalled",
            PullErrorKind::DigestMismatch => "digest mismatch",
            PullErrorKind::InvalidImage => "invalid image",
            PullErrorKind::RegistryError => "registry error",
            PullErrorKind::NodeError => "node error",
        }
    }
}

impl fmt::Display for PullErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure a registry error is.
pub(crate) fn registry_kind(e: &RegistryError) -> PullErrorKind {
    {
        use RegistryError as E;
        match e {
            E::Client { .. } | E::HttpClient { .. } | E::Write { .. } => PullErrorKind::NodeError,
            E::Unreachable { .. } => PullErrorKind::Unreachable,
            E::NotFound { .. } => PullErrorKind::NotFound,
            E::Unauthorized { .. } | E::Token { .. } => PullErrorKind::Unauthorized,
            E::Stalled { .. } => PullErrorKind::Stalled,
            E::Http { .. } | E::Status { .. } | E::Request { .. } => PullErrorKind::RegistryError,
            E::ManifestDigestMismatch { .. }
            | E::BlobDigestMismatch { .. }
            | E::BlobSizeMismatch { .. } => PullErrorKind::DigestMismatch,
            E::ManifestTooLarge { .. } => PullErrorKind::TooLarge,
            E::InvalidManifest { .. }
            | E::UnsupportedManifest { .. }
            | E::NoImageForPlatform { .. } => PullErrorKind::InvalidImage,
        }
    }
}

impl UnpackError {
    /// What kind of failure this is.
    pub fn kind(&self) -> PullErrorKind {
        use UnpackError as E;
        match self {
            E::UnpackedLayerTooLarge { .. }
            | E::UnpackedImageTooLarge { .. }
            | E::TooManyEntries { .. } => PullErrorKind::TooLarge,
            E::DeadlineExceeded => PullErrorKind::DeadlineExceeded,
            E::Open { .. }
            | E::Content {
                source: ContentError::Fs(_),
                ..
            } => PullErrorKind::NodeError,
            E::UnsupportedMediaType(_)
            | E::Read(_)
            | E::Header { .. }
            | E::Content { .. }
            | E::NonUtf8Path(_)
            | E::PathEscapes(_)
            | E::UnsupportedEntry { .. }
            | E::BadHardlink { .. }
            | E::EmptySymlink(_)
            | E::IdOutOfRange { .. }
            | E::InvalidWhiteout(_)
            | E::RootNotDirectory(_) => PullErrorKind::InvalidImage,
        }
    }
}

impl PullError {
    /// What kind of failure this is: the words to publish about it.
    pub fn kind(&self) -> PullErrorKind {
        use PullError as E;
        match self {
            E::Registry(e) => registry_kind(e),
            E::Unpack { source, .. } => source.kind(),
            E::Store(_) => PullErrorKind::NodeError,
            E::InvalidConfig { .. } | E::LayerCountMismatch { .. } => PullErrorKind::InvalidImage,
            E::DiffIdMismatch { .. } => PullErrorKind::DigestMismatch,
            E::ConfigTooLarge { .. } | E::LayerTooLarge { .. } | E::ImageTooLarge { .. } => {
                PullErrorKind::TooLarge
            }
            E::DeadlineExceeded { .. } => PullErrorKind::DeadlineExceeded,
        }
    }
}
