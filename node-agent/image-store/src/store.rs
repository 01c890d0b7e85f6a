//! The store: pulls, image records, garbage collection, statistics.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::content::{ContentStore, Meta, PendingSync};
use crate::digest::{ContentHash, Digest};
use crate::fsutil::{
    create_private_dir, read_optional, remove_file_if_exists, remove_tree_if_exists, write_atomic,
    FsError, IoContext, StoreLock,
};
use crate::layer::{read_layer_file, Budget, Compression, UnpackError};
use crate::limits::Limits;
use crate::reference::ImageReference;
use crate::registry::{Descriptor, ImageManifest, RegistryClient, RegistryError};
use crate::tree::{EntryKind, ImageTree};

/// Image configs are small JSON documents; a larger one is refused.
const MAX_CONFIG_BYTES: u64 = 8 << 20;
/// Layers downloaded at once.
const PARALLEL_DOWNLOADS: usize = 3;

/// A pulled image: where it came from and the tree its layers produce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The pinned digest the image was pulled by (its name in the store).
    pub digest: Digest,
    /// The reference it was pulled from.
    pub source: String,
    /// Digest of the image manifest (differs from `digest` when that names an image index).
    pub manifest_digest: Digest,
    /// Media type of the image manifest (OCI or Docker schema 2).
    pub manifest_media_type: String,
    /// The image configuration (entrypoint, environment, …), as served.
    pub config: serde_json::Value,
    /// The layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The root filesystem.
    pub tree: ImageTree,
}

/// A layer of a pulled image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The layer blob (media type, digest, compressed size).
    pub blob: Descriptor,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of regular file content in the layer: what a layer-level store unpacks for it.
    pub file_bytes: u64,
}

impl ImageRecord {
    /// The store objects the image's files need (empty files need none).
    pub(crate) fn objects(&self) -> impl Iterator<Item = (ContentHash, Meta)> + '_ {
        self.tree.iter().filter_map(|(_, e)| match e.kind {
            EntryKind::File { size, blake3 } if size > 0 => Some((
                blake3,
                Meta {
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                },
            )),
            _ => None,
        })
    }
}

/// Errors of the store's own files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The store root cannot be used in overlayfs mount options.
    #[error("store root {} contains ',', ':' or '\\', which overlayfs options cannot carry", .0.display())]
    UnsupportedRoot(PathBuf),
    /// An image record that does not parse.
    #[error("image record {} is corrupt", path.display())]
    CorruptRecord {
        /// The record file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A workload lease that does not parse: what it protects is unknown.
    #[error("workload lease {} is corrupt", path.display())]
    CorruptLease {
        /// The lease file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("store task failed")]
    Task(#[source] tokio::task::JoinError),
    /// A stored file does not match its fingerprint.
    #[error("/{path} of image {image} failed verification")]
    FileChanged {
        /// The image.
        image: Digest,
        /// The file's path in the image.
        path: String,
    },
}

/// Errors pulling an image.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry failed, or served something that does not match its digest.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer could not be unpacked.
    #[error("cannot unpack layer {digest}")]
    Unpack {
        /// Layer digest.
        digest: Digest,
        /// The error.
        #[source]
        source: UnpackError,
    },
    /// The image config is not JSON or its `rootfs.diff_ids` are malformed.
    #[error("image config {digest} is invalid")]
    InvalidConfig {
        /// Config digest.
        digest: Digest,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The image config is larger than accepted.
    #[error("image config {digest} is {size} bytes, more than the {MAX_CONFIG_BYTES} accepted")]
    ConfigTooLarge {
        /// Config digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// The config's `rootfs.diff_ids` do not list one digest per layer.
    #[error("image config lists {config} layers, the manifest {manifest}")]
    LayerCountMismatch {
        /// Layers in the config.
        config: usize,
        /// Layers in the manifest.
        manifest: usize,
    },
    /// A layer's uncompressed content is not what the config says.
    #[error("layer {layer} unpacks to {actual}, the image config says {expected}")]
    DiffIdMismatch {
        /// Layer digest.
        layer: Digest,
        /// `diff_id` in the config.
        expected: Digest,
        /// Digest of the uncompressed tar.
        actual: Digest,
    },
    /// A layer's compressed size (as the manifest says) is over [`Limits::layer_bytes`].
    #[error("layer {digest} is {size} bytes, more than the {limit} accepted for a layer")]
    LayerTooLarge {
        /// Layer digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The layers' compressed sizes together are over [`Limits::image_bytes`].
    #[error("the image's layers are {size} bytes, more than the {limit} accepted for an image")]
    ImageTooLarge {
        /// The layers' sizes together.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The pull took longer than [`Limits::deadline`].
    #[error("pulling {reference} took longer than {after:?}")]
    DeadlineExceeded {
        /// The reference pulled.
        reference: String,
        /// The deadline.
        after: Duration,
    },
}

impl From<FsError> for PullError {
    fn from(e: FsError) -> Self {
        Self::Store(e.into())
    }
}

/// What the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Complete images.
    pub images: u64,
    /// Distinct file contents.
    pub contents: u64,
    /// Store files: contents times the metadata variants they are used with.
    pub objects: u64,
    /// Sum of the objects' lengths.
    pub bytes: u64,
    /// Blocks the objects occupy on disk.
    pub disk_bytes: u64,
}

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Image records removed (unused for long enough, or corrupt and unused).
    pub images_removed: Vec<Digest>,
    /// Distinct contents no longer stored.
    pub contents_removed: u64,
    /// Store files removed.
    pub objects_removed: u64,
    /// Their total length.
    pub bytes_freed: u64,
    /// Leftovers of interrupted pulls and writes.
    pub temporaries_removed: u64,
}

#[derive(Debug, Deserialize)]
struct ConfigRootfs {
    #[serde(default)]
    rootfs: Option<RootfsSection>,
}

#[derive(Debug, Deserialize)]
struct RootfsSection {
    #[serde(default)]
    diff_ids: Option<Vec<Digest>>,
}

/// The image store. Cheap to clone; all clones (and other processes) share the directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) root: PathBuf,
    pub(crate) content: ContentStore,
    registry: RegistryClient,
    limits: Limits,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn is_record_name(name: &str) -> Option<Digest> {
    let hex = name.strip_suffix(".json")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

impl Store {
    /// Opens (creating if needed) a store rooted at `root`, which must be on one filesystem with
    /// overlayfs support for [`Store::prepare_rootfs`].
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = root.as_ref();
        fs::create_dir_all(root).fs("create directory", root)?;
        let root = root.canonicalize().fs("resolve", root)?;
        if root.to_string_lossy().contains([',', ':', '\\']) {
            return Err(StoreError::UnsupportedRoot(root));
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).fs("chmod", &root)?;
        for dir in ["content", "images", "tmp", "workloads"] {
            create_private_dir(&root.join(dir))?;
        }
        Ok(Self::at(root))
    }

    fn at(root: PathBuf) -> Self {
        Self {
            content: ContentStore::new(root.join("content"), root.join("tmp")),
            root,
            registry: RegistryClient::new(),
            limits: Limits::default(),
        }
    }

    /// The store at `root` if there is one, for reading (statistics, records) without creating or
    /// changing anything.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Option<Self>, StoreError> {
        let root = root.as_ref();
        if !root.join("images").is_dir() {
            return Ok(None);
        }
        let root = root.canonicalize().fs("resolve", root)?;
        Ok(Some(Self::at(root)))
    }

    /// The same store, pulling within `limits` (instead of [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// What a pull may take.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn record_path(&self, digest: &Digest) -> PathBuf {
        self.images_dir().join(format!("{}.json", digest.hex()))
    }

    fn used_path(&self, digest: &Digest) -> PathBuf {
        self.images_dir().join(format!("{}.used", digest.hex()))
    }

    pub(crate) fn lock(&self, exclusive: bool) -> Result<StoreLock, FsError> {
        StoreLock::acquire(&self.root.join("lock"), exclusive)
    }

    /// The complete image pulled by `digest`, if any.
    pub fn image(&self, digest: &Digest) -> Result<Option<ImageRecord>, StoreError> {
        let path = self.record_path(digest);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let record: ImageRecord = serde_json::from_slice(&bytes)
            .map_err(|source| StoreError::CorruptRecord { path, source })?;
        Ok(Some(record))
    }

    /// The content of regular file `path` (no leading `/`) of the image `record` describes (from
    /// [`Store::image`]), checked against its fingerprint in the image's tree; `None` when the
    /// image has no such regular file.
    pub fn read_image_file(
        &self,
        record: &ImageRecord,
        path: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(entry) = record.tree.get(path) else {
            return Ok(None);
        };
        let crate::tree::EntryKind::File { blake3, .. } = entry.kind else {
            return Ok(None);
        };
        let meta = crate::content::Meta {
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
        };
        let object = self.content.object_path(blake3, meta);
        let bytes = fs::read(&object).fs("read", &object)?;
        if ContentHash::of(&bytes) != blake3 {
            return Err(StoreError::FileChanged {
                image: record.digest.clone(),
                path: path.to_string(),
            });
        }
        Ok(Some(bytes))
    }

    /// Digests of the complete images.
    pub fn images(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.images_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).fs("list", &dir)? {
            let entry = entry.fs("list", &dir)?;
            if let Some(d) = entry.file_name().to_str().and_then(is_record_name) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Records that the image was just used.
    pub(crate) fn touch(&self, digest: &Digest) -> Result<(), FsError> {
        let now = unix_secs(SystemTime::now());
        write_atomic(&self.used_path(digest), now.to_string().as_bytes())
    }

    /// When the image was last pulled or used by a workload.
    fn last_used(&self, digest: &Digest) -> Result<SystemTime, FsError> {
        if let Some(secs) = read_optional(&self.used_path(digest))?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            return Ok(UNIX_EPOCH + Duration::from_secs(secs));
        }
        // No (valid) usage file: fall back to when the record was written.
        let path = self.record_path(digest);
        fs::metadata(&path)
            .and_then(|m| m.modified())
            .fs("inspect", &path)
    }

    /// Pulls the image `reference` pins, unless the store has it. The manifest must have the
    /// pinned digest and every blob its own; layers are downloaded to temporary files, checked,
    /// then unpacked in order. The image record is written last, so an interrupted pull leaves
    /// only temporaries and unreferenced contents, which [`Store::gc`] removes.
    ///
    /// The pull stays within the store's [`Limits`]: sizes and entries, a stall timeout on every
    /// wait for the registry, and a deadline for the whole pull, each with its own error.
    pub async fn pull(&self, reference: &ImageReference) -> Result<ImageRecord, PullError> {
        let deadline = Instant::now() + self.limits.deadline;
        match tokio::time::timeout_at(deadline, self.pull_by(reference, deadline)).await {
            Ok(Err(PullError::Unpack {
                source: UnpackError::DeadlineExceeded,
                ..
            }))
            | Err(_) => Err(PullError::DeadlineExceeded {
                reference: reference.to_string(),
                after: self.limits.deadline,
            }),
            Ok(result) => result,
        }
    }

    async fn pull_by(
        &self,
        reference: &ImageReference,
        deadline: Instant,
    ) -> Result<ImageRecord, PullError> {
        let store = self.clone();
        let lock = tokio::task::spawn_blocking(move || store.lock(false))
            .await
            .map_err(StoreError::Task)??;
        if let Some(record) = self.image(reference.digest())? {
            self.touch(reference.digest())?;
            return Ok(record);
        }
        let tmp = self.tmp_dir();
        let work = tempfile::Builder::new()
            .prefix("pull-")
            .tempdir_in(&tmp)
            .fs("create temporary directory in", &tmp)?;

        let limits = self.limits;
        let manifest = self
            .registry
            .fetch_image_manifest(reference, &limits)
            .await?;
        let image = reference.with_digest(manifest.digest.clone());
        let mut total = 0u64;
        for layer in &manifest.layers {
            if Compression::of_media_type(&layer.media_type).is_none() {
                return Err(PullError::Unpack {
                    digest: layer.digest.clone(),
                    source: UnpackError::UnsupportedMediaType(layer.media_type.clone()),
                });
            }
            if layer.size > limits.layer_bytes {
                return Err(PullError::LayerTooLarge {
                    digest: layer.digest.clone(),
                    size: layer.size,
                    limit: limits.layer_bytes,
                });
            }
            total = total.saturating_add(layer.size);
        }
        if total > limits.image_bytes {
            return Err(PullError::ImageTooLarge {
                size: total,
                limit: limits.image_bytes,
            });
        }
        let (config, diff_ids) = self.fetch_config(&image, &manifest).await?;

        // Owned futures (no closure over borrowed descriptors), so that a pull is `Send` and can
        // run in a task of its own.
        let downloads = manifest
            .layers
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, layer)| {
                let path = work.path().join(format!("layer-{i}"));
                let (registry, image) = (self.registry.clone(), image.clone());
                async move {
                    let mut file = tokio::fs::File::create(&path).await.fs("create", &path)?;
                    registry
                        .fetch_blob(&image, &layer, &mut file, limits.stall)
                        .await?;
                    file.flush().await.fs("write", &path)?;
                    Ok::<_, PullError>(path)
                }
            });
        let blobs: Vec<PathBuf> = futures_util::stream::iter(downloads)
            .buffered(PARALLEL_DOWNLOADS)
            .try_collect()
            .await?;

        // The lock and the downloads stay with the unpacking, which goes on (until it notices
        // the deadline) if this future is dropped.
        let store = self.clone();
        let source = reference.to_string();
        let pinned = reference.digest().clone();
        let deadline = deadline.into_std();
        let record = tokio::task::spawn_blocking(move || {
            let record = store
                .unpack_and_commit(pinned, source, manifest, config, diff_ids, blobs, deadline);
            drop(work);
            drop(lock);
            record
        })
        .await
        .map_err(StoreError::Task)??;
        tracing::info!(image = %record.digest, files = record.tree.len(), "image pulled");
        Ok(record)
    }

    async fn fetch_config(
        &self,
        image: &ImageReference,
        manifest: &ImageManifest,
    ) -> Result<(serde_json::Value, Option<Vec<Digest>>), PullError> {
        let desc = &manifest.config;
        if desc.size > MAX_CONFIG_BYTES {
            return Err(PullError::ConfigTooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
            });
        }
        let mut bytes = Vec::with_capacity(desc.size as usize);
        self.registry
            .fetch_blob(image, desc, &mut bytes, self.limits.stall)
            .await?;
        let invalid = |source| PullError::InvalidConfig {
            digest: desc.digest.clone(),
            source,
        };
        let config: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        let rootfs: ConfigRootfs = serde_json::from_slice(&bytes).map_err(invalid)?;
        let diff_ids = rootfs.rootfs.and_then(|r| r.diff_ids);
        if let Some(ids) = &diff_ids {
            if ids.len() != manifest.layers.len() {
                return Err(PullError::LayerCountMismatch {
                    config: ids.len(),
                    manifest: manifest.layers.len(),
                });
            }
        }
        Ok((config, diff_ids))
    }

    #[allow(clippy::too_many_arguments)]
    fn unpack_and_commit(
        &self,
        pinned: Digest,
        source: String,
        manifest: ImageManifest,
        config: serde_json::Value,
        diff_ids: Option<Vec<Digest>>,
        blobs: Vec<PathBuf>,
        deadline: std::time::Instant,
    ) -> Result<ImageRecord, PullError> {
        let mut tree = ImageTree::default();
        let mut pending = PendingSync::default();
        let mut layers = Vec::with_capacity(blobs.len());
        let mut budget = Budget::new(&self.limits, Some(deadline));
        for (i, (blob, path)) in manifest.layers.iter().zip(&blobs).enumerate() {
            let read = read_layer_file(
                path,
                &blob.media_type,
                &tree,
                &self.content,
                &mut pending,
                &mut budget,
            )
            .map_err(|source| PullError::Unpack {
                digest: blob.digest.clone(),
                source,
            })?;
            if let Some(expected) = diff_ids.as_ref().map(|ids| &ids[i]) {
                if *expected != read.diff_id {
                    return Err(PullError::DiffIdMismatch {
                        layer: blob.digest.clone(),
                        expected: expected.clone(),
                        actual: read.diff_id,
                    });
                }
            }
            tree.apply(read.changes);
            layers.push(LayerRecord {
                blob: blob.clone(),
                diff_id: read.diff_id,
                file_bytes: read.file_bytes,
            });
            remove_file_if_exists(path)?;
        }
        // Every object the record names must be durable before the record is.
        pending.sync()?;
        if std::time::Instant::now() >= deadline {
            // Too late: whoever waited has given up on this pull.
            return Err(PullError::Unpack {
                digest: pinned,
                source: UnpackError::DeadlineExceeded,
            });
        }
        let record = ImageRecord {
            digest: pinned,
            source,
            manifest_digest: manifest.digest,
            manifest_media_type: manifest.media_type,
            config,
            layers,
            tree,
        };
        let bytes = serde_json::to_vec(&record)
            .expect("image records have string map keys only, so they serialize; qed");
        write_atomic(&self.record_path(&record.digest), &bytes)?;
        self.touch(&record.digest)?;
        Ok(record)
    }

    /// What the store holds.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let counts = self.content.counts()?;
        Ok(StoreStats {
            images: self.images()?.len() as u64,
            contents: counts.contents,
            objects: counts.objects,
            bytes: counts.bytes,
            disk_bytes: counts.disk_bytes,
        })
    }

    /// Removes images that no workload uses and that were not pulled or used for `max_unused`,
    /// then every content no remaining image needs, and leftovers of interrupted pulls. Waits
    /// for running pulls and rootfs changes, and blocks new ones while it runs.
    pub fn gc(&self, max_unused: Duration) -> Result<GcReport, StoreError> {
        let _lock = self.lock(true)?;
        let mut report = GcReport::default();

        // Nothing else runs, so every temporary is a leftover.
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).fs("list", &tmp)? {
            let path = entry.fs("list", &tmp)?.path();
            if path.is_dir() {
                remove_tree_if_exists(&path)?;
            } else {
                remove_file_if_exists(&path)?;
            }
            report.temporaries_removed += 1;
        }
        let images_dir = self.images_dir();
        for entry in fs::read_dir(&images_dir).fs("list", &images_dir)? {
            let entry = entry.fs("list", &images_dir)?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                remove_file_if_exists(&entry.path())?;
                report.temporaries_removed += 1;
            }
        }

        let in_use: HashSet<Digest> = self.leases()?.into_iter().map(|l| l.image).collect();
        let now = SystemTime::now();
        let mut keep = HashSet::new();
        for digest in self.images()? {
            let record = match self.image(&digest) {
                Ok(Some(record)) => Some(record),
                Ok(None) => continue,
                Err(StoreError::CorruptRecord { .. }) if !in_use.contains(&digest) => None,
                Err(e) => return Err(e),
            };
            let unused_for = now
                .duration_since(self.last_used(&digest)?)
                .unwrap_or(Duration::ZERO);
            let expired = !in_use.contains(&digest) && unused_for >= max_unused;
            match record {
                Some(record) if !expired => keep.extend(record.objects()),
                _ => {
                    remove_file_if_exists(&self.record_path(&digest))?;
                    remove_file_if_exists(&self.used_path(&digest))?;
                    tracing::info!(image = %digest, "image removed by gc");
                    report.images_removed.push(digest);
                }
            }
        }

        let swept = self.content.sweep(&keep)?;
        report.contents_removed = swept.contents;
        report.objects_removed = swept.objects;
        report.bytes_freed = swept.bytes;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pulls run in tasks of their own (the agent's pull manager spawns them).
    #[test]
    fn a_pull_is_send() {
        fn send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let reference = ImageReference::new("127.0.0.1:1", "x", Digest::of(b"x"));
        let pull = store.pull(&reference);
        send(&pull);
    }
}
