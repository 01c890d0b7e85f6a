//! Filesystem helpers: errors that name the path, durable atomic writes, the store lock.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A filesystem operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}", path.display())]
pub struct FsError {
    op: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl FsError {
    /// `op` on `path` failed with `source`.
    pub fn new(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The path the operation failed on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

/// Attaches the operation and path to an I/O error.
pub trait IoContext<T> {
    /// The error, if any, as `op` on `path`.
    fn fs(self, op: &'static str, path: &Path) -> Result<T, FsError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn fs(self, op: &'static str, path: &Path) -> Result<T, FsError> {
        self.map_err(|e| FsError::new(op, path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn fs(self, op: &'static str, path: &Path) -> Result<T, FsError> {
        self.map_err(|e| FsError::new(op, path, e.into()))
    }
}

/// Creates `path` (not its parents) readable by root only; an existing directory is fine.
pub fn create_private_dir(path: &Path) -> Result<(), FsError> {
    match DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other.fs("create directory", path),
    }
}

/// Makes the entries of a directory durable.
pub fn fsync_dir(path: &Path) -> Result<(), FsError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .fs("sync directory", path)
}

/// Replaces `path` with `bytes` so that a reader or a crash sees either the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .fs("create temporary file in", dir)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .fs("write", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| FsError::new("rename into place", path, e.error))?;
    fsync_dir(dir)
}

/// Reads a file, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("read", path, e)),
    }
}

/// Removes a file; a missing file is fine.
pub fn remove_file_if_exists(path: &Path) -> Result<(), FsError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FsError::new("remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes a directory tree (without following symlinks); a missing one is fine.
pub fn remove_tree_if_exists(path: &Path) -> Result<(), FsError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FsError::new("remove", path, e)),
        _ => Ok(()),
    }
}

/// An flock on the store's lock file, released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Blocks until the lock is held, shared or exclusive.
    pub fn acquire(path: &Path, exclusive: bool) -> Result<Self, FsError> {
        use rustix::fs::{flock, FlockOperation};
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .fs("open lock file", path)?;
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        flock(&file, op).fs("lock", path)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn fs_error_names_operation_and_path() {
        let err = fs::read("/nonexistent/x")
            .fs("read", Path::new("/nonexistent/x"))
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot read /nonexistent/x");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn exclusive_lock_waits_for_shared_holders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let shared = StoreLock::acquire(&path, false).unwrap();
        let _second_shared = StoreLock::acquire(&path, false).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let t = std::thread::spawn(move || {
            let _x = StoreLock::acquire(&p, true).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_err());
        drop(shared);
        drop(_second_shared);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        t.join().unwrap();
    }
}
