//! The content store: every distinct file content once, under `content/<blake3 hex>/`.
//!
//! # Metadata variants
//!
//! A workload's lower tree is made of hardlinks to store files, and a hardlink shares its inode's
//! mode and owner. So what a lower tree links to is a content *presented with* a mode and owner:
//! `content/<blake3>/<mode>-<uid>-<gid>`, one inode per such variant, carrying exactly that mode
//! and owner. Almost every content has a single variant, so it is stored once whichever images
//! and workloads use it; the same bytes shipped `0644` by one image and `0755` by another are a
//! second inode (a second copy, counted as such by [`crate::Store::stats`]). Paths hardlinked
//! together in a layer have one content and one metadata, hence land on one inode again.
//!
//! Empty files are not stored: there is nothing to share, and a lower tree creates them directly.
//!
//! Objects keep the image's mode bits because that is what the container sees through overlayfs,
//! so they cannot be made read-only by mode. Instead the store is root-only (`0700`), a committed
//! object is never opened for writing again, and every file a workload will see is re-hashed
//! before it launches. A re-pull replaces an object whose size or metadata no longer match.
//!
//! # Crash safety
//!
//! An object is written to a temporary file under `tmp/`, given its metadata, fsynced and renamed
//! to its final name, so a name under `content/` always holds complete content. The directories
//! touched are collected in a [`PendingSync`] and fsynced before the image record that refers to
//! them is written.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::digest::ContentHash;
use crate::fsutil::{create_private_dir, fsync_dir, FsError, IoContext};

/// Contents up to this size are hashed in memory, so an already stored one is never written.
const INLINE_MAX: u64 = 1 << 20;

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The store's filesystem failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The content could not be read from its source (the layer stream).
    #[error("cannot read file content")]
    Read(#[source] io::Error),
    /// The source ended early.
    #[error("content ended after {actual} of {expected} bytes")]
    ShortRead {
        /// Bytes announced.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
}

/// Mode and owner an object is presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Meta {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl Meta {
    fn variant_name(&self) -> String {
        format!("{:04o}-{}-{}", self.mode & 0o7777, self.uid, self.gid)
    }

    fn parse_variant_name(name: &str) -> Option<Meta> {
        let mut parts = name.split('-');
        let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
        let uid = parts.next()?.parse().ok()?;
        let gid = parts.next()?.parse().ok()?;
        let meta = Meta { mode, uid, gid };
        (parts.next().is_none() && mode <= 0o7777 && meta.variant_name() == name).then_some(meta)
    }
}

/// Directories whose entries changed and must be fsynced before anything refers to them.
#[derive(Debug, Default)]
pub(crate) struct PendingSync(BTreeSet<PathBuf>);

impl PendingSync {
    pub(crate) fn add(&mut self, dir: &Path) {
        self.0.insert(dir.to_owned());
    }

    pub(crate) fn sync(self) -> Result<(), FsError> {
        // Children first, so that a directory is durable before the entry naming it.
        for dir in self.0.iter().rev() {
            fsync_dir(dir)?;
        }
        Ok(())
    }
}

/// What [`ContentStore::sweep`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    pub(crate) contents: u64,
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
}

/// Counts of what the store holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) contents: u64,
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
    pub(crate) disk_bytes: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ContentStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl ContentStore {
    pub(crate) fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        Self { dir, tmp }
    }

    pub(crate) fn object_path(&self, hash: ContentHash, meta: Meta) -> PathBuf {
        self.dir.join(hash.to_hex()).join(meta.variant_name())
    }

    /// Whether a committed object exists with this size and metadata.
    fn has_object(&self, path: &Path, size: u64, meta: Meta) -> Result<bool, FsError> {
        match fs::symlink_metadata(path) {
            Ok(m) => {
                let intact = m.is_file()
                    && m.len() == size
                    && m.mode() & 0o7777 == meta.mode
                    && m.uid() == meta.uid
                    && m.gid() == meta.gid;
                if !intact {
                    tracing::warn!(path = %path.display(), "store object damaged, replacing it");
                }
                Ok(intact)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(FsError::new("inspect", path, e)),
        }
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, FsError> {
        tempfile::Builder::new()
            .prefix("object-")
            .tempfile_in(&self.tmp)
            .fs("create temporary file in", &self.tmp)
    }

    /// Stores `size` bytes read from `reader` as a file with `meta`, unless already present, and
    /// returns the content's hash.
    pub(crate) fn put(
        &self,
        reader: &mut dyn Read,
        size: u64,
        meta: Meta,
        pending: &mut PendingSync,
    ) -> Result<ContentHash, ContentError> {
        if size == 0 {
            return Ok(ContentHash::of(&[]));
        }
        if size <= INLINE_MAX {
            let mut buf = Vec::with_capacity(size as usize);
            reader
                .take(size)
                .read_to_end(&mut buf)
                .map_err(ContentError::Read)?;
            if buf.len() as u64 != size {
                return Err(ContentError::ShortRead {
                    expected: size,
                    actual: buf.len() as u64,
                });
            }
            let hash = ContentHash::of(&buf);
            let path = self.object_path(hash, meta);
            if !self.has_object(&path, size, meta)? {
                let tmp = self.temp_file()?;
                tmp.as_file().write_all(&buf).fs("write", tmp.path())?;
                self.commit(tmp, hash, meta, pending)?;
            }
            return Ok(hash);
        }

        let mut tmp = self.temp_file()?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut written = 0u64;
        let mut reader = reader.take(size);
        {
            let mut out = io::BufWriter::with_capacity(256 * 1024, tmp.as_file_mut());
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ContentError::Read(e)),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).fs("write", &self.tmp)?;
                written += n as u64;
            }
            out.flush().fs("write", &self.tmp)?;
        }
        if written != size {
            return Err(ContentError::ShortRead {
                expected: size,
                actual: written,
            });
        }
        let hash = ContentHash::from(hasher.finalize());
        let path = self.object_path(hash, meta);
        if !self.has_object(&path, size, meta)? {
            self.commit(tmp, hash, meta, pending)?;
        }
        Ok(hash)
    }

    fn commit(
        &self,
        tmp: tempfile::NamedTempFile,
        hash: ContentHash,
        meta: Meta,
        pending: &mut PendingSync,
    ) -> Result<(), FsError> {
        let file: &File = tmp.as_file();
        // Owner first: chown clears the setuid and setgid bits.
        std::os::unix::fs::fchown(file, Some(meta.uid), Some(meta.gid)).fs("chown", tmp.path())?;
        file.set_permissions(Permissions::from_mode(meta.mode))
            .fs("chmod", tmp.path())?;
        file.sync_all().fs("sync", tmp.path())?;

        let dir = self.dir.join(hash.to_hex());
        if !dir.is_dir() {
            create_private_dir(&dir)?;
            pending.add(&self.dir);
        }
        let path = dir.join(meta.variant_name());
        tmp.persist(&path)
            .map_err(|e| FsError::new("rename into place", &path, e.error))?;
        pending.add(&dir);
        Ok(())
    }

    /// Calls `f` with each object (content, metadata, path, metadata), then `content_dir_done`
    /// with each content directory and the number of objects found in it. Names the store does
    /// not write are skipped with a warning.
    fn for_each_object(
        &self,
        mut f: impl FnMut(ContentHash, Meta, &Path, &fs::Metadata) -> Result<(), FsError>,
        mut content_dir_done: impl FnMut(&Path, usize) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let entries = fs::read_dir(&self.dir).fs("list", &self.dir)?;
        for entry in entries {
            let entry = entry.fs("list", &self.dir)?;
            let dir = entry.path();
            let Some(hash) = entry.file_name().to_str().and_then(ContentHash::from_hex) else {
                tracing::warn!(path = %dir.display(), "unexpected entry in content store");
                continue;
            };
            let mut objects = 0;
            for obj in fs::read_dir(&dir).fs("list", &dir)? {
                let obj = obj.fs("list", &dir)?;
                let path = obj.path();
                let Some(meta) = obj.file_name().to_str().and_then(Meta::parse_variant_name) else {
                    tracing::warn!(path = %path.display(), "unexpected entry in content store");
                    continue;
                };
                let md = fs::symlink_metadata(&path).fs("inspect", &path)?;
                f(hash, meta, &path, &md)?;
                objects += 1;
            }
            content_dir_done(&dir, objects)?;
        }
        Ok(())
    }

    pub(crate) fn counts(&self) -> Result<Counts, FsError> {
        let mut counts = Counts::default();
        self.for_each_object(
            |_, _, _, md| {
                counts.objects += 1;
                counts.bytes += md.len();
                counts.disk_bytes += md.blocks() * 512;
                Ok(())
            },
            |_, objects| {
                if objects > 0 {
                    counts.contents += 1;
                }
                Ok(())
            },
        )?;
        Ok(counts)
    }

    /// Removes every object not in `keep`, and content directories left empty.
    pub(crate) fn sweep(&self, keep: &HashSet<(ContentHash, Meta)>) -> Result<Swept, FsError> {
        let mut swept = Swept::default();
        self.for_each_object(
            |hash, meta, path, md| {
                if !keep.contains(&(hash, meta)) {
                    fs::remove_file(path).fs("remove", path)?;
                    swept.objects += 1;
                    swept.bytes += md.len();
                }
                Ok(())
            },
            |dir, _| {
                // Empty now (or was: left by an interrupted commit).
                if fs::read_dir(dir).fs("list", dir)?.next().is_none() {
                    fs::remove_dir(dir).fs("remove", dir)?;
                    swept.contents += 1;
                }
                Ok(())
            },
        )?;
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let root = tempfile::tempdir().unwrap();
        let content = root.path().join("content");
        let tmp = root.path().join("tmp");
        fs::create_dir(&content).unwrap();
        fs::create_dir(&tmp).unwrap();
        (root, ContentStore::new(content, tmp))
    }

    const META: Meta = Meta {
        mode: 0o4755,
        uid: 1000,
        gid: 1001,
    };

    #[test]
    fn variant_names_round_trip_and_reject_others() {
        assert_eq!(META.variant_name(), "4755-1000-1001");
        assert_eq!(Meta::parse_variant_name("4755-1000-1001"), Some(META));
        for bad in [
            "755-0-0",
            "0755-0",
            "0755-0-0-1",
            "0799-0-0",
            "0755-00-0",
            "x",
        ] {
            assert_eq!(Meta::parse_variant_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn put_stores_each_content_once_per_variant_with_its_metadata() {
        let (_root, store) = store();
        let mut pending = PendingSync::default();
        let small = b"hello".to_vec();
        let big = vec![3u8; INLINE_MAX as usize + 10];
        for data in [&small, &big, &small, &big] {
            let h = store
                .put(&mut &data[..], data.len() as u64, META, &mut pending)
                .unwrap();
            assert_eq!(h, ContentHash::of(data));
            let md = fs::metadata(store.object_path(h, META)).unwrap();
            assert_eq!(
                (md.mode() & 0o7777, md.uid(), md.gid(), md.len()),
                (0o4755, 1000, 1001, data.len() as u64)
            );
        }
        let other = Meta {
            mode: 0o644,
            ..META
        };
        store.put(&mut &small[..], 5, other, &mut pending).unwrap();
        pending.sync().unwrap();
        let counts = store.counts().unwrap();
        assert_eq!((counts.contents, counts.objects), (2, 3));
        assert_eq!(counts.bytes, 5 + 5 + big.len() as u64);
        assert_eq!(fs::read_dir(&store.tmp).unwrap().count(), 0);
    }

    #[test]
    fn empty_files_are_not_stored() {
        let (_root, store) = store();
        let mut pending = PendingSync::default();
        let h = store.put(&mut &b""[..], 0, META, &mut pending).unwrap();
        assert_eq!(h, ContentHash::of(b""));
        assert_eq!(store.counts().unwrap().objects, 0);
    }

    #[test]
    fn short_source_is_an_error_and_leaves_nothing() {
        let (_root, store) = store();
        let mut pending = PendingSync::default();
        for size in [10, INLINE_MAX + 10] {
            let err = store
                .put(&mut &b"12345"[..], size, META, &mut pending)
                .unwrap_err();
            assert!(
                matches!(err, ContentError::ShortRead { actual: 5, .. }),
                "{err}"
            );
        }
        assert_eq!(store.counts().unwrap().objects, 0);
        assert_eq!(fs::read_dir(&store.tmp).unwrap().count(), 0);
    }

    #[test]
    fn damaged_object_is_replaced_on_next_put() {
        let (_root, store) = store();
        let mut pending = PendingSync::default();
        let h = store.put(&mut &b"abc"[..], 3, META, &mut pending).unwrap();
        let path = store.object_path(h, META);
        fs::write(&path, b"ab").unwrap();
        store.put(&mut &b"abc"[..], 3, META, &mut pending).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abc");
    }

    #[test]
    fn sweep_removes_unkept_objects_and_empty_dirs() {
        let (_root, store) = store();
        let mut pending = PendingSync::default();
        let a = store.put(&mut &b"aaa"[..], 3, META, &mut pending).unwrap();
        let b = store.put(&mut &b"bbbb"[..], 4, META, &mut pending).unwrap();
        let other = Meta {
            mode: 0o600,
            ..META
        };
        store.put(&mut &b"aaa"[..], 3, other, &mut pending).unwrap();
        let keep = HashSet::from([(a, META)]);
        let swept = store.sweep(&keep).unwrap();
        assert_eq!(
            swept,
            Swept {
                contents: 1,
                objects: 2,
                bytes: 7
            }
        );
        assert!(store.object_path(a, META).exists());
        assert!(!store.dir.join(b.to_hex()).exists());
    }
}
