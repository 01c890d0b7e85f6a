//! What one pull may take: bytes, tar entries and time. A registry is not trusted to be small,
//! fast or honest, so every limit is checked while the bytes arrive (or before, from the sizes a
//! manifest declares), and each one breached is its own error.

use std::time::Duration;

/// Limits of one pull. [`Limits::default`] suits a node: room for large images, none for a
/// decompression bomb or a registry that never finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a manifest or image index, read as it arrives
    /// ([`RegistryError::ManifestTooLarge`](crate::RegistryError::ManifestTooLarge)). Default
    /// 4 MiB.
    pub manifest_bytes: u64,
    /// Compressed bytes of one layer, as its descriptor says (a blob longer than its descriptor
    /// is refused while it arrives) ([`PullError::LayerTooLarge`](crate::PullError::LayerTooLarge)).
    /// Default 4 GiB.
    pub layer_bytes: u64,
    /// Compressed bytes of all layers together
    /// ([`PullError::ImageTooLarge`](crate::PullError::ImageTooLarge)). Default 8 GiB.
    pub image_bytes: u64,
    /// Uncompressed bytes of one layer (its tar stream)
    /// ([`UnpackError::UnpackedLayerTooLarge`](crate::UnpackError::UnpackedLayerTooLarge)).
    /// Default 16 GiB.
    pub unpacked_layer_bytes: u64,
    /// Uncompressed bytes of all layers together
    /// ([`UnpackError::UnpackedImageTooLarge`](crate::UnpackError::UnpackedImageTooLarge)).
    /// Default 32 GiB.
    pub unpacked_image_bytes: u64,
    /// Tar entries of all layers together (files, directories, links, whiteouts)
    /// ([`UnpackError::TooManyEntries`](crate::UnpackError::TooManyEntries)). Default 1,000,000.
    pub entries: u64,
    /// The whole pull, from the first request to the image record
    /// ([`PullError::DeadlineExceeded`](crate::PullError::DeadlineExceeded)). Default 30 minutes.
    pub deadline: Duration,
    /// The longest wait for a registry's answer or for the next bytes of a body
    /// ([`RegistryError::Stalled`](crate::RegistryError::Stalled)). Default 60 seconds.
    pub stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            manifest_bytes: 4 << 20,
            layer_bytes: 4 << 30,
            image_bytes: 8 << 30,
            unpacked_layer_bytes: 16 << 30,
            unpacked_image_bytes: 32 << 30,
            entries: 1_000_000,
            deadline: Duration::from_secs(30 * 60),
            stall: Duration::from_secs(60),
        }
    }
}
