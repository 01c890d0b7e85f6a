//! Volumes: one sparse file per volume holding an ext4 filesystem, loop-mounted on the host.
//!
//! Layout under the root directory, for a workload whose container id is `zos-7-data`:
//!
//! | path | what |
//! |---|---|
//! | `zos-7-data.img` | the filesystem image (sparse; its length is the volume's size) |
//! | `zos-7-data/` | the mount point; [`Volumes::path`] |
//! | `zos-7-data.img.new` | an image being made (`mkfs` runs here, then a rename) |
//! | `zos-7-data.img.grow` | a resize in progress (set before the file grows, cleared after `resize2fs`) |
//!
//! The size is a hard limit: the filesystem is made with no reserved blocks and cannot grow past
//! the file, so writes past it fail with `ENOSPC`. Because the file is sparse, the host's disk
//! is only used as data is written.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::id::{InvalidWorkloadId, WorkloadId};
use crate::sys;

/// The smallest volume: below this, ext4 has no room for a journal.
pub const MIN_SIZE: u64 = 4 << 20;

/// Why a volume operation failed. Each variant names the volume (its container id) and the step.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The workload id cannot name a volume.
    #[error(transparent)]
    InvalidId(#[from] InvalidWorkloadId),
    /// The root directory cannot be used.
    #[error("volume root {path:?}: {step}")]
    Root {
        /// The root directory.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file operation failed.
    #[error("volume {volume}: {step} {path:?}")]
    Io {
        /// The volume's container id.
        volume: String,
        /// What was being done.
        step: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A host tool (`mkfs.ext4`, `losetup`, `resize2fs`) or a mount call failed.
    #[error("volume {volume}: {step}: {reason}")]
    Host {
        /// The volume's container id.
        volume: String,
        /// What was being done.
        step: &'static str,
        /// The tool's error output or the system error.
        reason: String,
    },
    /// The requested size is smaller than the volume; volumes never shrink.
    #[error("volume {volume}: cannot shrink from {current} to {requested} bytes")]
    Shrink {
        /// The volume's container id.
        volume: String,
        /// Its size now.
        current: u64,
        /// The size asked for.
        requested: u64,
    },
    /// The requested size is below [`MIN_SIZE`].
    #[error("volume {volume}: {requested} bytes is too small (at least {MIN_SIZE})")]
    TooSmall {
        /// The volume's container id.
        volume: String,
        /// The size asked for.
        requested: u64,
    },
    /// The volume is still in use (files open on it, or mounted elsewhere, e.g. in a container).
    #[error("volume {volume}: in use: {reason}")]
    Busy {
        /// The volume's container id.
        volume: String,
        /// Who uses it.
        reason: String,
    },
    /// The volume is not mounted (it does not exist, or `ensure` has not run since boot).
    #[error("volume {volume}: not mounted at {path:?}")]
    NotMounted {
        /// The volume's container id.
        volume: String,
        /// Its mount point.
        path: PathBuf,
    },
    /// Something else is mounted at the volume's mount point.
    #[error("volume {volume}: {path:?} has {found} mounted, not the volume's image")]
    Conflict {
        /// The volume's container id.
        volume: String,
        /// The mount point.
        path: PathBuf,
        /// What is mounted there.
        found: String,
    },
}

/// The volumes under one root directory (e.g. `<storage>/volumes`).
#[derive(Debug, Clone)]
pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    /// Uses (and creates) `root`.
    pub fn new(root: PathBuf) -> Result<Volumes, VolumeError> {
        let err = |step| {
            let path = root.clone();
            move |source| VolumeError::Root { path, step, source }
        };
        fs::create_dir_all(&root).map_err(err("create"))?;
        // Canonical, so that paths compare equal to what /proc/self/mountinfo and the loop
        // devices' backing_file report.
        let root = fs::canonicalize(&root).map_err(err("resolve"))?;
        Ok(Volumes { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The volume's mount point (whether or not it exists).
    pub fn path(&self, id: &WorkloadId) -> PathBuf {
        self.root.join(id.container_id())
    }

    fn image(&self, id: &WorkloadId) -> PathBuf {
        self.root.join(format!("{}.img", id.container_id()))
    }

    fn sibling(&self, id: &WorkloadId, suffix: &str) -> PathBuf {
        self.root
            .join(format!("{}.img.{suffix}", id.container_id()))
    }

    /// Makes the volume exist with at least `size` bytes and be mounted; returns the mount point.
    ///
    /// Idempotent: a missing image is made (sparse file, `mkfs.ext4`), an unmounted one is
    /// mounted, a bigger `size` grows it online. A smaller `size` is refused
    /// ([`VolumeError::Shrink`]) and changes nothing.
    pub fn ensure(&self, id: &WorkloadId, size: u64) -> Result<PathBuf, VolumeError> {
        id.validate()?;
        let v = id.container_id();
        if size < MIN_SIZE {
            return Err(VolumeError::TooSmall {
                volume: v,
                requested: size,
            });
        }
        let image = self.image(id);
        let mnt = self.path(id);
        let io = |step, path: &Path| {
            let (volume, path) = (v.clone(), path.to_owned());
            move |source| VolumeError::Io {
                volume,
                step,
                path,
                source,
            }
        };

        let current = match fs::metadata(&image) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("inspect image", &image)(e)),
        };
        if let Some(current) = current {
            if size < current {
                return Err(VolumeError::Shrink {
                    volume: v,
                    current,
                    requested: size,
                });
            }
        } else {
            self.make_image(id, &image, size)?;
        }

        fs::create_dir_all(&mnt).map_err(io("create mount point", &mnt))?;
        let dev = match self.mounted_device(id, &image, &mnt)? {
            Some(dev) => dev,
            None => self.mount(id, &image, &mnt)?,
        };

        let grow_marker = self.sibling(id, "grow");
        if current.is_some_and(|c| size > c) || grow_marker.exists() {
            self.grow(id, &image, &mnt, &dev, size)?;
        }
        Ok(mnt)
    }

    /// Grows the image file to `size` and the filesystem to the file. Online (`resize2fs` on the
    /// mounted filesystem) where the kernel lets us (it needs `CAP_SYS_RESOURCE`); otherwise
    /// offline, which needs the volume unused for a moment.
    fn grow(
        &self,
        id: &WorkloadId,
        image: &Path,
        mnt: &Path,
        dev: &str,
        size: u64,
    ) -> Result<(), VolumeError> {
        let v = id.container_id();
        let io = |step, path: &Path| {
            let (volume, path) = (v.clone(), path.to_owned());
            move |source| VolumeError::Io {
                volume,
                step,
                path,
                source,
            }
        };
        let host = |step| {
            let volume = v.clone();
            move |reason| VolumeError::Host {
                volume,
                step,
                reason,
            }
        };
        let marker = self.sibling(id, "grow");
        fs::write(&marker, b"").map_err(io("mark resize", &marker))?;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(image)
            .map_err(io("open image", image))?;
        let len = f.metadata().map_err(io("inspect image", image))?.len();
        if size > len {
            f.set_len(size).map_err(io("grow image", image))?;
        }
        drop(f);
        sys::run("losetup", &["--set-capacity", dev]).map_err(host("refresh loop device size"))?;
        match sys::run("resize2fs", &[dev]) {
            Ok(_) => {}
            Err(reason) if reason.contains("Permission denied") => {
                tracing::debug!(volume = %v, "online resize not permitted, resizing offline");
                let dev_id = mount_at(mnt)
                    .map_err(io("read mounts", mnt))?
                    .map(|m| m.dev)
                    .unwrap_or_default();
                self.unmount(id, mnt, &dev_id).map_err(|e| match e {
                    VolumeError::Busy { volume, reason } => VolumeError::Busy {
                        volume,
                        reason: format!(
                            "{reason}; it can only grow while unused (online resize needs CAP_SYS_RESOURCE)"
                        ),
                    },
                    other => other,
                })?;
                for d in loops_backed_by(image) {
                    sys::run("losetup", &["--detach", &d]).map_err(host("detach loop device"))?;
                }
                let image_s = image.to_string_lossy();
                // e2fsck: 0 clean, 1 errors fixed; resize2fs wants a freshly checked filesystem.
                match std::process::Command::new("e2fsck")
                    .args(["-f", "-p", &image_s])
                    .output()
                {
                    Ok(o) if matches!(o.status.code(), Some(0 | 1)) => {}
                    Ok(o) => {
                        return Err(host("check filesystem")(format!(
                            "e2fsck -f -p {image_s} failed ({}): {}",
                            o.status,
                            String::from_utf8_lossy(&o.stdout).trim()
                        )));
                    }
                    Err(e) => {
                        return Err(host("check filesystem")(format!("cannot run e2fsck: {e}")))
                    }
                }
                sys::run("resize2fs", &[&image_s]).map_err(host("grow filesystem"))?;
                self.mount(id, image, mnt)?;
            }
            Err(reason) => return Err(host("grow filesystem")(reason)),
        }
        fs::remove_file(&marker).map_err(io("clear resize mark", &marker))?;
        tracing::info!(volume = %v, size, "volume grown");
        Ok(())
    }

    /// Unmounts the volume, never lazily: fails with [`VolumeError::Busy`] if it is in use.
    fn unmount(&self, id: &WorkloadId, mnt: &Path, dev_id: &str) -> Result<(), VolumeError> {
        let v = id.container_id();
        if let Some(user) = other_mount_of(dev_id, mnt) {
            return Err(VolumeError::Busy {
                volume: v,
                reason: user,
            });
        }
        match nix::mount::umount2(mnt, MntFlags::empty()) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EBUSY) => Err(VolumeError::Busy {
                volume: v,
                reason: format!("files are open under {}", mnt.display()),
            }),
            Err(e) => Err(VolumeError::Host {
                volume: v,
                step: "unmount",
                reason: format!("umount {}: {e}", mnt.display()),
            }),
        }
    }

    fn make_image(&self, id: &WorkloadId, image: &Path, size: u64) -> Result<(), VolumeError> {
        let v = id.container_id();
        let new = self.sibling(id, "new");
        let io = |step, path: &Path| {
            let (volume, path) = (v.clone(), path.to_owned());
            move |source| VolumeError::Io {
                volume,
                step,
                path,
                source,
            }
        };
        let f = fs::File::create(&new).map_err(io("create image", &new))?;
        f.set_len(size).map_err(io("size image", &new))?;
        drop(f);
        let new_s = new.to_string_lossy();
        sys::run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
                "-L",
                "zos-volume",
                &new_s,
            ],
        )
        .map_err(|reason| VolumeError::Host {
            volume: v.clone(),
            step: "make filesystem",
            reason,
        })?;
        fs::rename(&new, image).map_err(io("install image", image))?;
        tracing::info!(volume = %v, size, "volume created");
        Ok(())
    }

    /// The loop device mounted at `mnt` if it is this volume's; an error if something else is.
    fn mounted_device(
        &self,
        id: &WorkloadId,
        image: &Path,
        mnt: &Path,
    ) -> Result<Option<String>, VolumeError> {
        let Some(entry) = mount_at(mnt).map_err(|source| VolumeError::Io {
            volume: id.container_id(),
            step: "read mounts",
            path: PathBuf::from("/proc/self/mountinfo"),
            source,
        })?
        else {
            return Ok(None);
        };
        let backing = loop_backing_file(&entry.source);
        if backing.as_deref() == Some(image) {
            Ok(Some(entry.source))
        } else {
            Err(VolumeError::Conflict {
                volume: id.container_id(),
                path: mnt.to_owned(),
                found: entry.source,
            })
        }
    }

    fn mount(&self, id: &WorkloadId, image: &Path, mnt: &Path) -> Result<String, VolumeError> {
        let v = id.container_id();
        let image_s = image.to_string_lossy();
        // --nooverlap reuses a loop device already attached to this file (e.g. left attached by a
        // crash), so one image never sits behind two devices. Parallel `losetup --find` calls can
        // pick the same free device; the loser gets EBUSY and tries again.
        let mut attempt = 0;
        let dev = loop {
            match sys::run("losetup", &["--find", "--show", "--nooverlap", &image_s]) {
                Ok(out) => break out.trim().to_owned(),
                Err(reason) if attempt < 10 && reason.contains("busy") => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5 * attempt));
                }
                Err(reason) => {
                    return Err(VolumeError::Host {
                        volume: v,
                        step: "attach loop device",
                        reason,
                    });
                }
            }
        };
        if let Err(e) = nix::mount::mount(
            Some(dev.as_str()),
            mnt,
            Some("ext4"),
            MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
            None::<&str>,
        ) {
            let _ = sys::run("losetup", &["--detach", &dev]);
            return Err(VolumeError::Host {
                volume: v,
                step: "mount",
                reason: format!("mount {dev} on {}: {e}", mnt.display()),
            });
        }
        tracing::debug!(volume = %v, %dev, "volume mounted");
        Ok(dev)
    }

    /// The volumes found on disk (an image file or a mount point named after a workload).
    pub fn list(&self) -> Result<Vec<WorkloadId>, VolumeError> {
        let entries = fs::read_dir(&self.root).map_err(|source| VolumeError::Root {
            path: self.root.clone(),
            step: "list",
            source,
        })?;
        let mut ids = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stem = name.strip_suffix(".img").unwrap_or(name);
            if stem != name || entry.file_type().is_ok_and(|t| t.is_dir()) {
                if let Some(id) = WorkloadId::parse_container_id(stem) {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Bytes used in the volume's filesystem (as `df` counts them). The volume must be mounted.
    pub fn used_bytes(&self, id: &WorkloadId) -> Result<u64, VolumeError> {
        id.validate()?;
        let image = self.image(id);
        let mnt = self.path(id);
        if self.mounted_device(id, &image, &mnt)?.is_none() {
            return Err(VolumeError::NotMounted {
                volume: id.container_id(),
                path: mnt,
            });
        }
        let st = nix::sys::statvfs::statvfs(&mnt).map_err(|e| VolumeError::Io {
            volume: id.container_id(),
            step: "statvfs",
            path: mnt.clone(),
            source: e.into(),
        })?;
        Ok(st.blocks().saturating_sub(st.blocks_free()) * st.fragment_size())
    }

    /// Unmounts the volume, detaches its loop device and deletes its files. Idempotent.
    ///
    /// Never unmounts lazily: if files are open on the volume, or it is still mounted elsewhere
    /// (a container that uses it), this fails with [`VolumeError::Busy`] and leaves it mounted.
    pub fn remove(&self, id: &WorkloadId) -> Result<(), VolumeError> {
        id.validate()?;
        let v = id.container_id();
        let image = self.image(id);
        let mnt = self.path(id);
        let io = |step, path: &Path| {
            let (volume, path) = (v.clone(), path.to_owned());
            move |source| VolumeError::Io {
                volume,
                step,
                path,
                source,
            }
        };

        if let Some(entry) = mount_at(&mnt).map_err(io("read mounts", &mnt))? {
            self.unmount(id, &mnt, &entry.dev)?;
        }
        for dev in loops_backed_by(&image) {
            sys::run("losetup", &["--detach", &dev]).map_err(|reason| VolumeError::Host {
                volume: v.clone(),
                step: "detach loop device",
                reason,
            })?;
        }
        for path in [
            image.clone(),
            self.sibling(id, "new"),
            self.sibling(id, "grow"),
        ] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io("delete", &path)(e));
                }
                _ => {}
            }
        }
        match fs::remove_dir(&mnt) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io("delete mount point", &mnt)(e));
            }
            _ => {}
        }
        tracing::info!(volume = %v, "volume removed");
        Ok(())
    }
}

/// The topmost mount at `path` in this mount namespace.
fn mount_at(path: &Path) -> io::Result<Option<sys::MountEntry>> {
    Ok(sys::self_mountinfo()?
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path))
}

/// The file behind a loop device (`/dev/loopN`), if it is one.
fn loop_backing_file(dev: &str) -> Option<PathBuf> {
    let name = dev.strip_prefix("/dev/")?;
    if !name.starts_with("loop") {
        return None;
    }
    let s = fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    Some(PathBuf::from(s.trim_end_matches('\n')))
}

/// Every loop device attached to `image` (also after the file was deleted).
fn loops_backed_by(image: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let deleted = format!("{} (deleted)", image.display());
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let dev = format!("/dev/{name}");
            let backing = loop_backing_file(&dev)?;
            (backing == image || backing.as_os_str() == deleted.as_str()).then_some(dev)
        })
        .collect()
}

/// A mount of device `dev` (`major:minor`) at another path than `mnt`, in this or any other mount
/// namespace: who still uses the volume (e.g. a container that has it bind-mounted).
fn other_mount_of(dev: &str, mnt: &Path) -> Option<String> {
    let own_ns = fs::read_link("/proc/self/ns/mnt").ok();
    if let Ok(mounts) = sys::self_mountinfo() {
        if let Some(m) = mounts.iter().find(|m| m.dev == dev && m.mount_point != mnt) {
            return Some(format!("also mounted at {}", m.mount_point.display()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if Some(&ns) == own_ns.as_ref() || !seen.insert(ns) {
            continue;
        }
        let Ok(mounts) = sys::mountinfo(Path::new(&format!("/proc/{pid}/mountinfo"))) else {
            continue;
        };
        // A mount at the same path is a propagated copy of ours (e.g. a service's private
        // namespace made after the volume was mounted): it goes away with our unmount.
        if let Some(m) = mounts.iter().find(|m| m.dev == dev && m.mount_point != mnt) {
            return Some(format!(
                "mounted at {} in the mount namespace of pid {pid}",
                m.mount_point.display()
            ));
        }
    }
    None
}
