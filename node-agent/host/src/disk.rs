//! Disks: sparse raw files of exactly their size, which VMs attach as virtio-blk devices. A
//! disk outlives the VMs that use it (restarts, updates, an agent restart) and is removed with
//! its workload.

use std::{
    fs, io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use crate::{sys::private_dir, InvalidWorkloadId, WorkloadId};

/// Why a disk operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The workload id is not a valid name.
    #[error(transparent)]
    InvalidId(#[from] InvalidWorkloadId),
    /// The file could not be made, read or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The size is not whole 512-byte sectors: a guest would see it rounded.
    #[error("disk size {0} is not a multiple of 512 bytes")]
    Unaligned(u64),
    /// The disk exists with more bytes than asked: shrinking would cut the guest's filesystem.
    #[error("disk {id} has {current} bytes: it cannot shrink to {requested}")]
    Shrink {
        /// The disk.
        id: String,
        /// Its size.
        current: u64,
        /// The size asked for.
        requested: u64,
    },
}

/// The disks of this host, as files under one directory.
pub struct Disks {
    root: PathBuf,
}

impl Disks {
    /// Disks under `root` (created if missing).
    pub fn new(root: PathBuf) -> Result<Disks, DiskError> {
        private_dir(&root).map_err(|source| DiskError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Disks { root })
    }

    /// The disk's file (whether or not it exists).
    pub fn path(&self, id: &WorkloadId) -> PathBuf {
        self.root.join(format!("{}.raw", id.container_id()))
    }

    /// Makes the disk exist with `size` bytes: a missing one is made sparse (it takes no space
    /// until written), a smaller one grows (the guest sees it at its next boot). A bigger one is
    /// refused ([`DiskError::Shrink`]) and left as it is.
    pub fn ensure(&self, id: &WorkloadId, size: u64) -> Result<PathBuf, DiskError> {
        id.validate()?;
        if !size.is_multiple_of(512) {
            return Err(DiskError::Unaligned(size));
        }
        let path = self.path(id);
        let io_err = |source| DiskError::Io {
            path: path.clone(),
            source,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        let current = file.metadata().map_err(io_err)?.len();
        if current > size {
            return Err(DiskError::Shrink {
                id: id.container_id(),
                current,
                requested: size,
            });
        }
        if current < size {
            file.set_len(size).map_err(io_err)?;
        }
        Ok(path)
    }

    /// The size of a disk, when it exists.
    pub fn size(&self, id: &WorkloadId) -> Option<u64> {
        fs::metadata(self.path(id)).ok().map(|m| m.len())
    }

    /// The disks found on the host.
    pub fn list(&self) -> Result<Vec<WorkloadId>, DiskError> {
        let entries = fs::read_dir(&self.root).map_err(|source| DiskError::Io {
            path: self.root.clone(),
            source,
        })?;
        let mut ids: Vec<WorkloadId> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                WorkloadId::parse_container_id(name.to_str()?.strip_suffix(".raw")?)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes a disk and its data. Idempotent.
    pub fn remove(&self, id: &WorkloadId) -> Result<(), DiskError> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(DiskError::Io { path, source }),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_disk_is_sparse_of_its_exact_size_grows_and_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let disks = Disks::new(dir.path().join("disks")).unwrap();
        let id = WorkloadId::new(7, "data").unwrap();
        let path = disks.ensure(&id, 1 << 30).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        assert_eq!(meta.blocks(), 0, "sparse");
        assert_eq!(meta.mode() & 0o777, 0o600);
        // Growing keeps what is there.
        let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"kept").unwrap();
        disks.ensure(&id, 2 << 30).unwrap();
        assert_eq!(disks.size(&id), Some(2 << 30));
        assert_eq!(&fs::read(&path).unwrap()[..4], b"kept");
        assert!(matches!(
            disks.ensure(&id, 1 << 30),
            Err(DiskError::Shrink { .. })
        ));
        assert_eq!(disks.size(&id), Some(2 << 30), "left as it was");
        assert!(matches!(
            disks.ensure(&id, (1 << 30) + 1),
            Err(DiskError::Unaligned(_))
        ));
        assert_eq!(disks.list().unwrap(), std::slice::from_ref(&id));
        disks.remove(&id).unwrap();
        disks.remove(&id).unwrap();
        assert!(disks.list().unwrap().is_empty());
    }
}
