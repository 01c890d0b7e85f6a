//! Workload root filesystems.
//!
//! A workload's rootfs lives in `workloads/<name>/`:
//! - `lease.json`: the image it uses, written before anything else, so that [`Store::gc`] keeps the
//!   image and its contents from the moment the lower tree starts being linked;
//! - `lower/`: the image's tree, with every non-empty regular file a hardlink to its store object
//!   (no content is copied; see the `content` module for how mode and owner stay right), built in
//!   `lower.partial/` and renamed, so an existing `lower/` is complete;
//! - `layer.img`: for a rootfs of a fixed size ([`Store::prepare_rootfs_sized`]), a sparse file
//!   holding an ext4 filesystem of that size with no reserved blocks (made as `layer.img.new`,
//!   then renamed); its length is the size;
//! - `layer/`: the workload's writable layer, holding overlayfs's `upper/` (where all its writes
//!   go: overlayfs copies a file up before changing it, so the lower tree and the store are never
//!   written) and `work/`. For a rootfs of a fixed size it is `layer.img` loop-mounted (`nodev`,
//!   `nosuid`; the loop device is freed when it is unmounted), so a workload that writes past its
//!   size gets `ENOSPC` and the filesystem under the store keeps its room; otherwise a plain
//!   directory on the store's filesystem;
//! - `merged/`: the overlayfs mount, the workload's root.
//!
//! Before mounting, every file of `lower/` is checked against the image's tree ([`verify_tree`]).
//! Removal unmounts `merged/`, then `layer/`, detaches any loop device still backed by
//! `layer.img`, and deletes the rest; it works from any state a crash can leave, so the leases
//! ([`Store::leases`]) are enough to find and remove what a workload left.

use std::ffi::CString;
use std::fs::{self, DirBuilder, File, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{makedev, mknodat, FileType, Mode, CWD};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};
use serde::{Deserialize, Serialize};

use crate::content::Meta;
use crate::digest::Digest;
use crate::fsutil::{
    create_private_dir, read_optional, remove_file_if_exists, remove_tree_if_exists, write_atomic,
    FsError, IoContext,
};
use crate::store::{Store, StoreError};
use crate::tree::{Entry, EntryKind, ImageTree};
use crate::verify::{verify_tree, VerifyError, VerifyReport};

/// The record that a workload's rootfs uses an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// Workload name.
    pub workload: String,
    /// Image digest (as pinned).
    pub image: Digest,
    /// When the rootfs was first prepared (seconds since the Unix epoch).
    pub created: u64,
}

/// A workload's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    workload: String,
    image: Digest,
    dir: PathBuf,
}

impl Rootfs {
    /// Workload name.
    pub fn workload(&self) -> &str {
        &self.workload
    }

    /// Image digest.
    pub fn image(&self) -> &Digest {
        &self.image
    }

    /// The mounted root filesystem.
    pub fn path(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The lower tree (hardlinks into the store).
    pub fn lower_dir(&self) -> PathBuf {
        self.dir.join("lower")
    }

    /// Where the workload's writable layer lives: a filesystem of the rootfs's size, mounted
    /// here, for a rootfs made by [`Store::prepare_rootfs_sized`].
    pub fn layer_dir(&self) -> PathBuf {
        self.dir.join(LAYER)
    }

    /// The workload's writable layer (overlayfs's upper dir).
    pub fn upper_dir(&self) -> PathBuf {
        self.layer_dir().join("upper")
    }
}

/// The smallest writable layer of a fixed size: below this, ext4 has no room for its journal.
pub const MIN_LAYER_SIZE: u64 = 4 << 20;

const LAYER: &str = "layer";
const LAYER_IMAGE: &str = "layer.img";
const LAYER_IMAGE_NEW: &str = "layer.img.new";
/// How long removal waits for the kernel to free a layer's loop device.
const LOOP_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors preparing, checking or removing a workload's rootfs.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Reading the store's records failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The name cannot be a directory name in the store.
    #[error(
        "invalid workload name {0:?}: expected 1 to 128 of [A-Za-z0-9._-], not starting with '.'"
    )]
    InvalidName(String),
    /// The workload has no rootfs.
    #[error("workload {0} has no rootfs")]
    NoRootfs(String),
    /// The image has not been pulled.
    #[error("image {0} is not in the store")]
    ImageNotFound(Digest),
    /// The workload already has a rootfs, from another image.
    #[error("workload {workload} already has a rootfs from image {existing}, not {requested}")]
    ImageMismatch {
        /// Workload name.
        workload: String,
        /// Image of the existing rootfs.
        existing: Digest,
        /// Image asked for.
        requested: Digest,
    },
    /// A lower tree entry could not be created (for a file: its store object is missing).
    #[error("cannot create /{path} of workload {workload}")]
    Build {
        /// Workload name.
        workload: String,
        /// Path in the image.
        path: String,
        /// The error.
        #[source]
        source: FsError,
    },
    /// The lower tree does not match the image: the workload must not launch.
    #[error("image {image} of workload {workload} failed verification")]
    Verify {
        /// Workload name.
        workload: String,
        /// Image digest.
        image: Digest,
        /// What differs, naming the file.
        #[source]
        source: Box<VerifyError>,
    },
    /// The overlayfs mount failed.
    #[error("cannot mount overlayfs at {}", path.display())]
    Mount {
        /// Mount point.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The writable layer is asked for with another size than it has: remove the rootfs first.
    #[error(
        "workload {workload} already has a writable layer of {existing} bytes, not {requested}"
    )]
    SizeMismatch {
        /// Workload name.
        workload: String,
        /// Size of the existing layer.
        existing: u64,
        /// Size asked for.
        requested: u64,
    },
    /// The size asked for is below [`MIN_LAYER_SIZE`].
    #[error("a writable layer of {requested} bytes for workload {workload} is too small (at least {MIN_LAYER_SIZE})")]
    LayerTooSmall {
        /// Workload name.
        workload: String,
        /// Size asked for.
        requested: u64,
    },
    /// The writable layer's filesystem could not be made, mounted or released (`mkfs.ext4`,
    /// `mount`, `losetup`).
    #[error("writable layer of workload {workload}: {step}: {reason}")]
    Layer {
        /// Workload name.
        workload: String,
        /// What was being done.
        step: &'static str,
        /// The tool's error output.
        reason: String,
    },
    /// The overlayfs or the writable layer could not be unmounted (for example still in use).
    #[error("cannot unmount {}", path.display())]
    Unmount {
        /// Mount point.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl RootfsError {
    /// The verification failure, when the image did not match.
    pub fn verify_error(&self) -> Option<&VerifyError> {
        match self {
            RootfsError::Verify { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn validate_name(name: &str) -> Result<(), RootfsError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RootfsError::InvalidName(name.to_owned()))
    }
}

/// Whether `path` is the root of a mount other than its parent's (overlayfs has its own device).
fn is_mount_point(path: &Path) -> Result<bool, FsError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.dev() != fs::metadata(parent).fs("inspect", parent)?.dev()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::new("inspect", path, e)),
    }
}

fn set_owner_and_mode(path: &Path, entry: &Entry) -> Result<(), FsError> {
    // Owner first: chown clears the setuid and setgid bits.
    std::os::unix::fs::lchown(path, Some(entry.uid), Some(entry.gid)).fs("chown", path)?;
    fs::set_permissions(path, Permissions::from_mode(entry.mode)).fs("chmod", path)
}

impl Store {
    fn workload_dir(&self, workload: &str) -> PathBuf {
        self.root.join("workloads").join(workload)
    }

    fn read_lease(&self, workload: &str) -> Result<Option<Lease>, StoreError> {
        let path = self.workload_dir(workload).join("lease.json");
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::CorruptLease { path, source })
    }

    /// The leases of all workload rootfs.
    pub fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let dir = self.root.join("workloads");
        let mut leases = Vec::new();
        for entry in fs::read_dir(&dir).fs("list", &dir)? {
            let entry = entry.fs("list", &dir)?;
            if let Some(lease) = entry
                .file_name()
                .to_str()
                .map(|name| self.read_lease(name))
                .transpose()?
                .flatten()
            {
                leases.push(lease);
            }
        }
        leases.sort_by(|a, b| a.workload.cmp(&b.workload));
        Ok(leases)
    }

    /// The rootfs of `workload`, if it has one (to find it again after a restart).
    pub fn rootfs(&self, workload: &str) -> Result<Option<Rootfs>, RootfsError> {
        validate_name(workload)?;
        Ok(self.read_lease(workload)?.map(|lease| Rootfs {
            workload: lease.workload,
            image: lease.image,
            dir: self.workload_dir(workload),
        }))
    }

    /// Builds (or finds again) the rootfs of `workload` from `image`, checks every file of the
    /// image against its fingerprint, and mounts it; a file that was changed, removed or added
    /// fails with an error naming it, and nothing is mounted. Idempotent; calls for one workload
    /// must not run concurrently.
    ///
    /// The workload's writes go to the store's filesystem, without a limit (for tools and tests;
    /// the node agent uses [`Store::prepare_rootfs_sized`]). A rootfs made with a size keeps it.
    pub fn prepare_rootfs(&self, image: &Digest, workload: &str) -> Result<Rootfs, RootfsError> {
        self.prepare(image, workload, None)
    }

    /// [`Store::prepare_rootfs`] with a writable layer of `size` bytes: a filesystem of its own,
    /// so that writing past `size` fails with `ENOSPC` in the workload and nowhere else. The
    /// image's files are not counted (they stay in the shared lower tree), ext4's metadata and
    /// journal are. An existing rootfs of another size is refused
    /// ([`RootfsError::SizeMismatch`]): remove it first.
    pub fn prepare_rootfs_sized(
        &self,
        image: &Digest,
        workload: &str,
        size: u64,
    ) -> Result<Rootfs, RootfsError> {
        if size < MIN_LAYER_SIZE {
            return Err(RootfsError::LayerTooSmall {
                workload: workload.to_owned(),
                requested: size,
            });
        }
        self.prepare(image, workload, Some(size))
    }

    fn prepare(
        &self,
        image: &Digest,
        workload: &str,
        size: Option<u64>,
    ) -> Result<Rootfs, RootfsError> {
        validate_name(workload)?;
        let _lock = self.lock(false)?;
        let record = self
            .image(image)?
            .ok_or_else(|| RootfsError::ImageNotFound(image.clone()))?;
        let dir = self.workload_dir(workload);
        create_private_dir(&dir)?;
        match self.read_lease(workload)? {
            Some(lease) if lease.image != *image => {
                return Err(RootfsError::ImageMismatch {
                    workload: workload.to_owned(),
                    existing: lease.image,
                    requested: image.clone(),
                })
            }
            Some(_) => {}
            None => {
                let lease = Lease {
                    workload: workload.to_owned(),
                    image: image.clone(),
                    created: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                };
                let json =
                    serde_json::to_vec(&lease).expect("a lease has no maps, so it serializes; qed");
                write_atomic(&dir.join("lease.json"), &json)?;
            }
        }
        let rootfs = Rootfs {
            workload: workload.to_owned(),
            image: image.clone(),
            dir,
        };

        let lower = rootfs.lower_dir();
        if !lower.is_dir() {
            let partial = rootfs.dir.join("lower.partial");
            remove_tree_if_exists(&partial)?;
            self.build_lower(&record.tree, &partial, workload)?;
            fs::rename(&partial, &lower).fs("rename into place", &lower)?;
        }

        let started = Instant::now();
        let report = verify_tree(&lower, &record.tree).map_err(|source| RootfsError::Verify {
            workload: workload.to_owned(),
            image: image.clone(),
            source: Box::new(source),
        })?;
        tracing::info!(
            workload,
            image = %image,
            files = report.files,
            bytes = report.bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "image verified"
        );

        let layer = rootfs.layer_dir();
        create_private_dir(&layer)?;
        let existing = match fs::metadata(rootfs.dir.join(LAYER_IMAGE)) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(FsError::new("inspect", &rootfs.dir.join(LAYER_IMAGE), e).into()),
        };
        match (existing, size) {
            (Some(existing), Some(requested)) if existing != requested => {
                return Err(RootfsError::SizeMismatch {
                    workload: workload.to_owned(),
                    existing,
                    requested,
                })
            }
            (None, Some(size)) => make_layer(&rootfs.dir, workload, size)?,
            _ => {}
        }
        if (existing.is_some() || size.is_some()) && !is_mount_point(&layer)? {
            mount_layer(&rootfs.dir, workload)?;
        }

        let upper = rootfs.upper_dir();
        if !upper.is_dir() {
            // The root of the merged tree takes its mode and owner from the upper dir.
            let partial = layer.join("upper.partial");
            remove_tree_if_exists(&partial)?;
            create_private_dir(&partial)?;
            set_owner_and_mode(&partial, record.tree.root())?;
            fs::rename(&partial, &upper).fs("rename into place", &upper)?;
        }
        let work = layer.join("work");
        let merged = rootfs.path();
        create_private_dir(&work)?;
        create_private_dir(&merged)?;
        if !is_mount_point(&merged)? {
            mount_overlay(&lower, &upper, &work, &merged)?;
        }
        self.touch(image)?;
        Ok(rootfs)
    }

    /// Checks the lower tree of `workload`'s rootfs against its image again.
    pub fn verify_rootfs(&self, workload: &str) -> Result<VerifyReport, RootfsError> {
        validate_name(workload)?;
        let lease = self
            .read_lease(workload)?
            .ok_or_else(|| RootfsError::NoRootfs(workload.to_owned()))?;
        let record = self
            .image(&lease.image)?
            .ok_or_else(|| RootfsError::ImageNotFound(lease.image.clone()))?;
        verify_tree(&self.workload_dir(workload).join("lower"), &record.tree).map_err(|source| {
            RootfsError::Verify {
                workload: workload.to_owned(),
                image: lease.image,
                source: Box::new(source),
            }
        })
    }

    /// Unmounts and deletes the rootfs of `workload` (its writes included) and releases its
    /// image. Idempotent; fails, deleting nothing, while the mount is busy.
    pub fn remove_rootfs(&self, workload: &str) -> Result<(), RootfsError> {
        validate_name(workload)?;
        let _lock = self.lock(false)?;
        let dir = self.workload_dir(workload);
        if !dir.exists() {
            return Ok(());
        }
        // A corrupt lease does not stop the removal.
        let lease = self.read_lease(workload).ok().flatten();
        let merged = dir.join("merged");
        if is_mount_point(&merged)? {
            unmount(&merged, UnmountFlags::empty()).map_err(|e| RootfsError::Unmount {
                path: merged.clone(),
                source: e.into(),
            })?;
            if is_mount_point(&merged)? {
                return Err(RootfsError::Unmount {
                    path: merged,
                    source: std::io::Error::other("still mounted (stacked mounts?)"),
                });
            }
        }
        unmount_layer(&dir, workload)?;
        remove_file_if_exists(&dir.join("lease.json"))?;
        remove_tree_if_exists(&dir)?;
        if let Some(lease) = lease {
            if self.image(&lease.image)?.is_some() {
                self.touch(&lease.image)?;
            }
        }
        Ok(())
    }

    /// Creates the image's tree at `dest`: directories, symlinks, devices and empty files made
    /// fresh, other regular files hardlinked to their store objects. Directory modes are set
    /// last, so that read-only directories can be filled first.
    fn build_lower(
        &self,
        tree: &ImageTree,
        dest: &Path,
        workload: &str,
    ) -> Result<(), RootfsError> {
        let mut dirs = Vec::new();
        for (path, entry) in tree.iter() {
            let target = if path.is_empty() {
                dest.to_owned()
            } else {
                dest.join(path)
            };
            let built = match &entry.kind {
                EntryKind::Directory => {
                    dirs.push((target.clone(), entry));
                    DirBuilder::new()
                        .mode(0o700)
                        .create(&target)
                        .fs("create directory", &target)
                }
                EntryKind::File { size: 0, .. } => File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .fs("create", &target)
                    .and_then(|_| set_owner_and_mode(&target, entry)),
                EntryKind::File { blake3, .. } => {
                    let object = self.content.object_path(
                        *blake3,
                        Meta {
                            mode: entry.mode,
                            uid: entry.uid,
                            gid: entry.gid,
                        },
                    );
                    fs::hard_link(&object, &target).fs("hardlink store object", &object)
                }
                EntryKind::Symlink { target: link } => std::os::unix::fs::symlink(link, &target)
                    .fs("create symlink", &target)
                    .and_then(|()| {
                        std::os::unix::fs::lchown(&target, Some(entry.uid), Some(entry.gid))
                            .fs("chown", &target)
                    }),
                EntryKind::CharDevice { major, minor } => {
                    make_node(&target, FileType::CharacterDevice, *major, *minor, entry)
                }
                EntryKind::BlockDevice { major, minor } => {
                    make_node(&target, FileType::BlockDevice, *major, *minor, entry)
                }
                EntryKind::Fifo => make_node(&target, FileType::Fifo, 0, 0, entry),
            };
            built.map_err(|source| RootfsError::Build {
                workload: workload.to_owned(),
                path: path.to_owned(),
                source,
            })?;
        }
        for (dir, entry) in dirs.iter().rev() {
            set_owner_and_mode(dir, entry)?;
        }
        Ok(())
    }
}

fn make_node(
    path: &Path,
    kind: FileType,
    major: u32,
    minor: u32,
    entry: &Entry,
) -> Result<(), FsError> {
    mknodat(
        CWD,
        path,
        kind,
        Mode::from_raw_mode(0o600),
        makedev(major, minor),
    )
    .fs("create node", path)?;
    set_owner_and_mode(path, entry)
}

/// Makes `layer.img` in `dir`: a sparse file of `size` bytes holding an empty ext4 filesystem
/// with no blocks reserved for root (the workload's limit is the whole size), made as
/// `layer.img.new` and renamed, so an existing `layer.img` is complete.
fn make_layer(dir: &Path, workload: &str, size: u64) -> Result<(), RootfsError> {
    let new = dir.join(LAYER_IMAGE_NEW);
    remove_file_if_exists(&new)?;
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&new)
        .fs("create", &new)?;
    file.set_len(size).fs("size", &new)?;
    drop(file);
    let started = Instant::now();
    run_tool(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-L", "zos-rootfs", "-E"])
            .arg("nodiscard,lazy_itable_init=1,lazy_journal_init=1")
            .arg(&new),
    )
    .map_err(|reason| RootfsError::Layer {
        workload: workload.to_owned(),
        step: "make filesystem",
        reason,
    })?;
    let image = dir.join(LAYER_IMAGE);
    fs::rename(&new, &image).fs("rename into place", &image)?;
    tracing::info!(
        workload,
        size,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "writable layer made"
    );
    Ok(())
}

/// Mounts `layer.img` at `layer/` through a loop device that the kernel frees when it is
/// unmounted (`mount -o loop` sets autoclear). A device left attached by a crash is detached
/// first: nothing mounted it here, and calls for one workload do not run concurrently.
fn mount_layer(dir: &Path, workload: &str) -> Result<(), RootfsError> {
    let image = dir.join(LAYER_IMAGE);
    let layer = dir.join(LAYER);
    detach_loops(&image, workload)?;
    run_tool(
        Command::new("mount")
            .args(["-t", "ext4", "-o", "loop,nodev,nosuid"])
            .arg(&image)
            .arg(&layer),
    )
    .map_err(|reason| RootfsError::Layer {
        workload: workload.to_owned(),
        step: "mount",
        reason,
    })?;
    // The root of the layer's filesystem: root's only, like the workload directory.
    fs::set_permissions(&layer, Permissions::from_mode(0o700)).fs("chmod", &layer)?;
    Ok(())
}

/// Unmounts `layer/` if it is mounted (never lazily: a busy layer fails and stays) and makes sure
/// no loop device is left backed by `layer.img`.
fn unmount_layer(dir: &Path, workload: &str) -> Result<(), RootfsError> {
    let layer = dir.join(LAYER);
    if is_mount_point(&layer)? {
        unmount(&layer, UnmountFlags::empty()).map_err(|e| RootfsError::Unmount {
            path: layer.clone(),
            source: e.into(),
        })?;
    }
    detach_loops(&dir.join(LAYER_IMAGE), workload)
}

/// Detaches every loop device backed by `image` and waits until the kernel has let them go.
fn detach_loops(image: &Path, workload: &str) -> Result<(), RootfsError> {
    let mut devices = loops_backed_by(image);
    if devices.is_empty() {
        return Ok(());
    }
    for dev in &devices {
        // Already detaching (autoclear) is fine; a device that stays is reported below.
        let _ = run_tool(Command::new("losetup").arg("--detach").arg(dev));
    }
    let deadline = Instant::now() + LOOP_RELEASE_TIMEOUT;
    while !devices.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        devices = loops_backed_by(image);
    }
    match devices.first() {
        None => Ok(()),
        Some(dev) => Err(RootfsError::Layer {
            workload: workload.to_owned(),
            step: "detach loop device",
            reason: format!(
                "{} is still backed by {} after {LOOP_RELEASE_TIMEOUT:?}",
                dev.display(),
                image.display()
            ),
        }),
    }
}

/// The loop devices (`/dev/loopN`) whose backing file is `image` (also after it was deleted).
fn loops_backed_by(image: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let deleted = format!("{} (deleted)", image.display());
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with("loop") {
                return None;
            }
            let backing = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let backing = backing.trim_end_matches('\n');
            (Path::new(backing) == image || backing == deleted)
                .then(|| Path::new("/dev").join(name))
        })
        .collect()
}

/// Runs a host tool; on failure the error holds its stderr.
fn run_tool(command: &mut Command) -> Result<(), String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn mount_overlay(
    lower: &Path,
    upper: &Path,
    work: &Path,
    merged: &Path,
) -> Result<(), RootfsError> {
    // Store::open refuses roots with ',' ':' or '\', and workload names cannot contain them.
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let options = CString::new(options).map_err(|e| RootfsError::Mount {
        path: merged.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    mount(
        "overlay",
        merged,
        "overlay",
        MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .map_err(|e| RootfsError::Mount {
        path: merged.to_owned(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names() {
        for ok in ["a", "c42-web_1.v2", &"x".repeat(128)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "a,b",
            "a:b",
            &"x".repeat(129),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_point_detection() {
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()).unwrap());
        assert!(!is_mount_point(&dir.path().join("missing")).unwrap());
    }
}
