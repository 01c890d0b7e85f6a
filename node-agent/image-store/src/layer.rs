//! Reading one layer: decompression, tar entries, whiteouts, hardlinks; file contents go to the
//! content store as they stream by.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use crate::content::{ContentError, ContentStore, Meta, PendingSync};
use crate::digest::{Digest, DigestReader};
use crate::tree::{Entry, EntryKind, ImageTree, LayerChanges};
pub use zos_oci::media::Compression;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Errors reading a layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer's media type is not a (gzip, zstd or uncompressed) tar.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    /// The layer blob could not be opened.
    #[error("cannot open layer blob {}", path.display())]
    Open {
        /// The blob's temporary file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The layer stream is not a valid compressed tar.
    #[error("cannot read layer")]
    Read(#[source] io::Error),
    /// A tar header field could not be read.
    #[error("invalid tar header for {path:?}")]
    Header {
        /// Entry path.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A file's content could not be stored.
    #[error("cannot store {path:?}")]
    Content {
        /// Entry path.
        path: String,
        /// The error.
        #[source]
        source: ContentError,
    },
    /// A path (or link target) is not UTF-8, which image records cannot represent.
    #[error("layer path {0:?} is not UTF-8")]
    NonUtf8Path(String),
    /// A path has a `..` component.
    #[error("layer path {0:?} has a '..' component")]
    PathEscapes(String),
    /// The entry type is not supported (sparse files, sockets, unknown types).
    #[error("layer entry {path:?} has unsupported type {kind}")]
    UnsupportedEntry {
        /// Entry path.
        path: String,
        /// Tar entry type.
        kind: String,
    },
    /// A hardlink to something that is neither in this layer nor below it, or to a directory.
    #[error("hardlink {path:?} points to {target:?}, which is not a non-directory of this or a lower layer")]
    BadHardlink {
        /// Link path.
        path: String,
        /// Link target.
        target: String,
    },
    /// A symlink without a target.
    #[error("symlink {0:?} has no target")]
    EmptySymlink(String),
    /// A uid or gid above `u32::MAX`.
    #[error("layer entry {path:?} has owner id {id} out of range")]
    IdOutOfRange {
        /// Entry path.
        path: String,
        /// The id.
        id: u64,
    },
    /// A whiteout that names nothing (`.wh.`, `.wh..`).
    #[error("invalid whiteout {0:?}")]
    InvalidWhiteout(String),
    /// A non-directory entry for the root.
    #[error("layer entry {0:?} names the root but is not a directory")]
    RootNotDirectory(String),
    /// The layer's tar stream is longer than [`Limits::unpacked_layer_bytes`](crate::Limits).
    #[error("the layer unpacks to more than the {limit} bytes accepted for a layer")]
    UnpackedLayerTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The image's tar streams together are longer than
    /// [`Limits::unpacked_image_bytes`](crate::Limits).
    #[error("the image unpacks to more than the {limit} bytes accepted for an image")]
    UnpackedImageTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The image's layers together have more than [`Limits::entries`](crate::Limits) entries.
    #[error("the image has more than the {limit} tar entries accepted")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// The pull's deadline passed while the layer was being unpacked.
    #[error("the pull's deadline passed while unpacking")]
    DeadlineExceeded,
}

/// What the layers of one image may still unpack to, and until when. Shared by the image's layers,
/// read one after the other.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    /// Uncompressed bytes of one layer.
    pub(crate) layer_bytes: u64,
    /// Uncompressed bytes of all layers.
    pub(crate) image_bytes: u64,
    /// Tar entries of all layers.
    pub(crate) entries: u64,
    /// When unpacking must stop.
    pub(crate) deadline: Option<Instant>,
    /// Uncompressed bytes of the layers read so far.
    used_bytes: u64,
    /// Entries of the layers read so far.
    used_entries: u64,
}

impl Budget {
    pub(crate) fn new(limits: &crate::Limits, deadline: Option<Instant>) -> Self {
        Budget {
            layer_bytes: limits.unpacked_layer_bytes,
            image_bytes: limits.unpacked_image_bytes,
            entries: limits.entries,
            deadline,
            used_bytes: 0,
            used_entries: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn unlimited() -> Self {
        Budget::new(
            &crate::Limits {
                unpacked_layer_bytes: u64::MAX,
                unpacked_image_bytes: u64::MAX,
                entries: u64::MAX,
                ..crate::Limits::default()
            },
            None,
        )
    }
}

/// A limit reached while reading, remembered by [`Metered`]: the error it returns may reach the
/// caller wrapped (by the tar reader, the content store), or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breach {
    Layer,
    Image,
    Deadline,
}

/// The uncompressed tar stream, counted against the budget and cut off at the deadline.
struct Metered<R> {
    inner: R,
    read: u64,
    layer_limit: u64,
    image_left: u64,
    deadline: Option<Instant>,
    breach: Rc<Cell<Option<Breach>>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let breach = if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Breach::Deadline)
        } else {
            None
        };
        let breach = match breach {
            Some(b) => Some(b),
            None => {
                let n = self.inner.read(buf)?;
                self.read += n as u64;
                if self.read > self.layer_limit {
                    Some(Breach::Layer)
                } else if self.read > self.image_left {
                    Some(Breach::Image)
                } else {
                    return Ok(n);
                }
            }
        };
        self.breach.set(breach);
        Err(io::Error::other("pull limit reached"))
    }
}

/// A layer, read.
#[derive(Debug)]
pub(crate) struct ReadLayer {
    pub(crate) changes: LayerChanges,
    /// Digest of the uncompressed tar (the image config's `diff_id`).
    pub(crate) diff_id: Digest,
    /// Bytes of regular file content the layer carries.
    pub(crate) file_bytes: u64,
}

/// A relative path without `.` components, `None` for the root; `..` is refused.
fn normalize(raw: &[u8]) -> Result<Option<String>, UnpackError> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| UnpackError::NonUtf8Path(String::from_utf8_lossy(raw).into_owned()))?;
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(UnpackError::PathEscapes(s.to_owned())),
            c => parts.push(c),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// Reads a layer blob of the given media type.
pub(crate) fn read_layer_file(
    blob: &Path,
    media_type: &str,
    lower: &ImageTree,
    store: &ContentStore,
    pending: &mut PendingSync,
    budget: &mut Budget,
) -> Result<ReadLayer, UnpackError> {
    let compression = Compression::of_media_type(media_type)
        .ok_or_else(|| UnpackError::UnsupportedMediaType(media_type.to_owned()))?;
    let file = File::open(blob).map_err(|source| UnpackError::Open {
        path: blob.to_owned(),
        source,
    })?;
    read_layer(
        BufReader::with_capacity(256 * 1024, file),
        compression,
        lower,
        store,
        pending,
        budget,
    )
}

/// Reads a layer stream: the changes it makes on top of `lower`, with file contents stored,
/// within `budget` (which it uses up).
pub(crate) fn read_layer(
    blob: impl Read,
    compression: Compression,
    lower: &ImageTree,
    store: &ContentStore,
    pending: &mut PendingSync,
    budget: &mut Budget,
) -> Result<ReadLayer, UnpackError> {
    let decoded: Box<dyn Read> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(blob).map_err(UnpackError::Read)?)
        }
    };
    let breach = Rc::new(Cell::new(None));
    let metered = Metered {
        inner: decoded,
        read: 0,
        layer_limit: budget.layer_bytes,
        image_left: budget.image_bytes.saturating_sub(budget.used_bytes),
        deadline: budget.deadline,
        breach: breach.clone(),
    };
    let mut tar_stream = DigestReader::new(metered);
    let mut changes = LayerChanges::default();
    let mut file_bytes = 0u64;
    let read = (|| {
        {
            let mut archive = tar::Archive::new(&mut tar_stream);
            for entry in archive.entries().map_err(UnpackError::Read)? {
                let mut entry = entry.map_err(UnpackError::Read)?;
                budget.used_entries += 1;
                if budget.used_entries > budget.entries {
                    return Err(UnpackError::TooManyEntries {
                        limit: budget.entries,
                    });
                }
                if let Some(size) = read_entry(&mut entry, lower, &mut changes, store, pending)? {
                    file_bytes += size;
                }
            }
        }
        // The tar's end blocks and padding are part of the diff_id, and reaching the end of the
        // compressed stream checks its own checksum.
        tar_stream.finish().map_err(UnpackError::Read)
    })();
    // A limit reached shows as whatever error the reader's failure became, or as none (a
    // wrapper that swallowed it): the breach is what happened.
    let (diff_id, len) = match (breach.get(), read) {
        (Some(Breach::Layer), _) => {
            return Err(UnpackError::UnpackedLayerTooLarge {
                limit: budget.layer_bytes,
            })
        }
        (Some(Breach::Image), _) => {
            return Err(UnpackError::UnpackedImageTooLarge {
                limit: budget.image_bytes,
            })
        }
        (Some(Breach::Deadline), _) => return Err(UnpackError::DeadlineExceeded),
        (None, read) => read?,
    };
    budget.used_bytes += len;
    Ok(ReadLayer {
        changes,
        diff_id,
        file_bytes,
    })
}

/// Records one tar entry in `changes`; returns the size of a regular file it stored.
fn read_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    lower: &ImageTree,
    changes: &mut LayerChanges,
    store: &ContentStore,
    pending: &mut PendingSync,
) -> Result<Option<u64>, UnpackError> {
    let raw_path = entry.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw_path).into_owned();
    let header_err = |source| UnpackError::Header {
        path: shown.clone(),
        source,
    };
    let etype = entry.header().entry_type();
    if etype.is_pax_global_extensions() {
        return Ok(None);
    }
    let path = normalize(&raw_path)?;

    if let Some(path) = &path {
        let (parent, name) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        if name == OPAQUE_MARKER {
            changes.opaque_dirs.push(parent.to_owned());
            return Ok(None);
        }
        if name.starts_with(".wh..wh.") {
            // Reserved for other whiteout metadata (aufs); carries nothing for the tree.
            return Ok(None);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(UnpackError::InvalidWhiteout(shown));
            }
            changes.whiteouts.push(join(parent, hidden));
            return Ok(None);
        }
    }

    let header = entry.header();
    let mode = header.mode().map_err(header_err)? & 0o7777;
    let id = |v: u64| {
        u32::try_from(v).map_err(|_| UnpackError::IdOutOfRange {
            path: shown.clone(),
            id: v,
        })
    };
    let uid = id(header.uid().map_err(header_err)?)?;
    let gid = id(header.gid().map_err(header_err)?)?;
    let device = |h: &tar::Header| -> Result<(u32, u32), UnpackError> {
        Ok((
            h.device_major().map_err(header_err)?.unwrap_or(0),
            h.device_minor().map_err(header_err)?.unwrap_or(0),
        ))
    };

    let mut stored = None;
    let entry_value = match etype {
        tar::EntryType::Directory => Entry {
            kind: EntryKind::Directory,
            mode,
            uid,
            gid,
        },
        // Old tars mark directories with a trailing slash on a regular entry.
        tar::EntryType::Regular | tar::EntryType::Continuous if raw_path.ends_with(b"/") => Entry {
            kind: EntryKind::Directory,
            mode,
            uid,
            gid,
        },
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = entry.size();
            let blake3 = store
                .put(entry, size, Meta { mode, uid, gid }, pending)
                .map_err(|source| UnpackError::Content {
                    path: shown.clone(),
                    source,
                })?;
            stored = Some(size);
            Entry {
                kind: EntryKind::File { size, blake3 },
                mode,
                uid,
                gid,
            }
        }
        tar::EntryType::Symlink => {
            let target = entry.link_name_bytes().unwrap_or_default();
            if target.is_empty() {
                return Err(UnpackError::EmptySymlink(shown));
            }
            let target = String::from_utf8(target.into_owned()).map_err(|e| {
                UnpackError::NonUtf8Path(String::from_utf8_lossy(e.as_bytes()).into_owned())
            })?;
            Entry {
                kind: EntryKind::Symlink { target },
                mode,
                uid,
                gid,
            }
        }
        tar::EntryType::Link => {
            let raw_target = entry.link_name_bytes().unwrap_or_default().into_owned();
            let target = normalize(&raw_target)?.unwrap_or_default();
            match lower.lookup_in_layer(changes, &target) {
                Some(e) if !e.is_dir() => e.clone(),
                _ => {
                    return Err(UnpackError::BadHardlink {
                        path: shown,
                        target: String::from_utf8_lossy(&raw_target).into_owned(),
                    })
                }
            }
        }
        tar::EntryType::Char => {
            let (major, minor) = device(header)?;
            Entry {
                kind: EntryKind::CharDevice { major, minor },
                mode,
                uid,
                gid,
            }
        }
        tar::EntryType::Block => {
            let (major, minor) = device(header)?;
            Entry {
                kind: EntryKind::BlockDevice { major, minor },
                mode,
                uid,
                gid,
            }
        }
        tar::EntryType::Fifo => Entry {
            kind: EntryKind::Fifo,
            mode,
            uid,
            gid,
        },
        other => {
            return Err(UnpackError::UnsupportedEntry {
                path: shown,
                kind: format!("{other:?}"),
            })
        }
    };

    match path {
        Some(path) => changes.entries.push((path, entry_value)),
        None if entry_value.is_dir() => changes.entries.push((String::new(), entry_value)),
        None => return Err(UnpackError::RootNotDirectory(shown)),
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use zos_oci::media::{DOCKER_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};

    struct Fixture {
        _root: tempfile::TempDir,
        store: ContentStore,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let content = root.path().join("content");
        let tmp = root.path().join("tmp");
        fs::create_dir(&content).unwrap();
        fs::create_dir(&tmp).unwrap();
        Fixture {
            store: ContentStore::new(content, tmp),
            _root: root,
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h
    }

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn read(fx: &Fixture, lower: &ImageTree, tar: &[u8]) -> Result<ReadLayer, UnpackError> {
        let mut pending = PendingSync::default();
        read_layer(
            tar,
            Compression::None,
            lower,
            &fx.store,
            &mut pending,
            &mut Budget::unlimited(),
        )
    }

    #[test]
    fn entries_whiteouts_and_opaque_markers_are_classified() {
        let fx = fixture();
        let tar = tar_of(|b| {
            let mut d = header(tar::EntryType::Directory, 0o750, 0);
            b.append_data(&mut d, "./etc/", &[][..]).unwrap();
            add_file(b, "./etc/passwd", b"root:x:0:0", 0o644);
            add_file(b, "etc/.wh.shadow", b"", 0o600);
            add_file(b, "var/.wh..wh..opq", b"", 0o600);
            add_file(b, "var/.wh..wh.plnk", b"", 0o600);
            let mut s = header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(&mut s, "bin/sh", "/bin/busybox").unwrap();
            let mut l = header(tar::EntryType::Link, 0o644, 0);
            b.append_link(&mut l, "etc/passwd-", "./etc/passwd")
                .unwrap();
        });
        let layer = read(&fx, &ImageTree::default(), &tar).unwrap();
        assert_eq!(layer.changes.whiteouts, ["etc/shadow"]);
        assert_eq!(layer.changes.opaque_dirs, ["var"]);
        let paths: Vec<_> = layer
            .changes
            .entries
            .iter()
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(paths, ["etc", "etc/passwd", "bin/sh", "etc/passwd-"]);
        assert_eq!(layer.changes.entries[1].1, layer.changes.entries[3].1);
        assert_eq!(
            layer.changes.entries[2].1.kind,
            EntryKind::Symlink {
                target: "/bin/busybox".into()
            }
        );
        assert_eq!(layer.file_bytes, 10);
        assert_eq!(layer.diff_id, Digest::of(&tar));
    }

    #[test]
    fn hardlink_can_point_into_lower_layer_but_not_to_nothing() {
        let fx = fixture();
        let base = tar_of(|b| add_file(b, "a", b"data", 0o755));
        let mut tree = ImageTree::default();
        tree.apply(read(&fx, &tree, &base).unwrap().changes);

        let linked = tar_of(|b| {
            let mut l = header(tar::EntryType::Link, 0, 0);
            b.append_link(&mut l, "b", "a").unwrap();
        });
        let layer = read(&fx, &tree, &linked).unwrap();
        assert_eq!(&layer.changes.entries[0].1, tree.get("a").unwrap());

        let dangling = tar_of(|b| {
            let mut l = header(tar::EntryType::Link, 0, 0);
            b.append_link(&mut l, "b", "missing").unwrap();
        });
        assert!(matches!(
            read(&fx, &tree, &dangling),
            Err(UnpackError::BadHardlink { .. })
        ));
    }

    #[test]
    fn dotdot_paths_are_refused() {
        let fx = fixture();
        let mut tar = tar_of(|b| add_file(b, "a/b", b"x", 0o644));
        // tar::Builder refuses to write "..", so patch the name in the header (and its checksum).
        tar[0..6].copy_from_slice(b"../../");
        tar[6] = 0;
        let h = tar::Header::from_byte_slice(&tar[..512]).clone();
        let mut h = h;
        h.set_cksum();
        tar[..512].copy_from_slice(h.as_bytes());
        assert!(matches!(
            read(&fx, &ImageTree::default(), &tar),
            Err(UnpackError::PathEscapes(_))
        ));
    }

    #[test]
    fn truncated_layer_is_an_error() {
        let fx = fixture();
        let tar = tar_of(|b| add_file(b, "big", &vec![1u8; 4096], 0o644));
        let err = read(&fx, &ImageTree::default(), &tar[..2048]).unwrap_err();
        assert!(
            matches!(err, UnpackError::Content { .. } | UnpackError::Read(_)),
            "{err:?}"
        );
    }

    #[test]
    fn compressed_layers_decode_to_the_same_changes() {
        use std::io::Write;
        let fx = fixture();
        let tar = tar_of(|b| add_file(b, "f", b"same bytes", 0o640));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let mut pending = PendingSync::default();
        let lower = ImageTree::default();
        for (blob, c) in [
            (&tar, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let layer = read_layer(
                &blob[..],
                c,
                &lower,
                &fx.store,
                &mut pending,
                &mut Budget::unlimited(),
            )
            .unwrap();
            assert_eq!(layer.diff_id, Digest::of(&tar));
            assert_eq!(
                layer.changes.entries[0].1.kind,
                EntryKind::File {
                    size: 10,
                    blake3: crate::ContentHash::of(b"same bytes")
                }
            );
        }
    }

    fn budget(layer: u64, image: u64, entries: u64) -> Budget {
        Budget::new(
            &crate::Limits {
                unpacked_layer_bytes: layer,
                unpacked_image_bytes: image,
                entries,
                ..crate::Limits::default()
            },
            None,
        )
    }

    fn read_with(
        fx: &Fixture,
        tar: &[u8],
        c: Compression,
        b: &mut Budget,
    ) -> Result<ReadLayer, UnpackError> {
        read_layer(
            tar,
            c,
            &ImageTree::default(),
            &fx.store,
            &mut PendingSync::default(),
            b,
        )
    }

    #[test]
    fn a_layer_unpacks_to_at_most_its_limit_whatever_it_compresses_to() {
        use std::io::Write;
        let fx = fixture();
        let tar = tar_of(|b| add_file(b, "zeros", &vec![0u8; 1 << 20], 0o644));
        let len = tar.len() as u64;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 8 << 10, "a small blob: {}", gz.len());

        read_with(&fx, &gz, Compression::Gzip, &mut budget(len, u64::MAX, 10)).unwrap();
        let err = read_with(
            &fx,
            &gz,
            Compression::Gzip,
            &mut budget(len - 1, u64::MAX, 10),
        )
        .unwrap_err();
        assert!(
            matches!(err, UnpackError::UnpackedLayerTooLarge { limit } if limit == len - 1),
            "{err:?}"
        );
    }

    #[test]
    fn the_image_limit_counts_every_layer_and_the_entry_limit_every_entry() {
        let fx = fixture();
        let tar = tar_of(|b| {
            for i in 0..5 {
                add_file(b, &format!("f{i}"), &[i; 600], 0o644);
            }
        });
        let len = tar.len() as u64;

        // Two layers fit in an image budget of twice their length, not in one byte less.
        let mut b = budget(u64::MAX, 2 * len, u64::MAX);
        read_with(&fx, &tar, Compression::None, &mut b).unwrap();
        read_with(&fx, &tar, Compression::None, &mut b).unwrap();
        let mut b = budget(u64::MAX, 2 * len - 1, u64::MAX);
        read_with(&fx, &tar, Compression::None, &mut b).unwrap();
        let err = read_with(&fx, &tar, Compression::None, &mut b).unwrap_err();
        assert!(
            matches!(err, UnpackError::UnpackedImageTooLarge { .. }),
            "{err:?}"
        );

        // Ten entries in two layers: a limit of 10 takes both, 9 refuses the second.
        let mut b = budget(u64::MAX, u64::MAX, 10);
        read_with(&fx, &tar, Compression::None, &mut b).unwrap();
        read_with(&fx, &tar, Compression::None, &mut b).unwrap();
        let mut b = budget(u64::MAX, u64::MAX, 9);
        read_with(&fx, &tar, Compression::None, &mut b).unwrap();
        let err = read_with(&fx, &tar, Compression::None, &mut b).unwrap_err();
        assert!(
            matches!(err, UnpackError::TooManyEntries { limit: 9 }),
            "{err:?}"
        );
    }

    #[test]
    fn unpacking_stops_at_the_deadline() {
        let fx = fixture();
        let tar = tar_of(|b| add_file(b, "f", b"data", 0o644));
        let mut b = Budget::unlimited();
        b.deadline = Some(Instant::now());
        let err = read_with(&fx, &tar, Compression::None, &mut b).unwrap_err();
        assert!(matches!(err, UnpackError::DeadlineExceeded), "{err:?}");
    }

    #[test]
    fn media_types_map_to_compression() {
        assert_eq!(
            Compression::of_media_type(OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::of_media_type(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_media_type(OCI_LAYER_TAR),
            Some(Compression::None)
        );
        assert_eq!(Compression::of_media_type("application/json"), None);
    }
}

#[cfg(test)]
mod push_tests {
    //! Layers `zos_oci::push` builds read back to the tree they were built from.

    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    use zos_oci::media::OCI_LAYER_ZSTD;
    use zos_oci::push::build_layer;

    use super::*;
    use crate::content::{ContentStore, PendingSync};
    use crate::tree::{EntryKind, ImageTree};

    fn source_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(
            root.join("usr/bin/tool"),
            fs::Permissions::from_mode(0o4711),
        )
        .unwrap();
        fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).unwrap();
        symlink("tool", root.join("usr/bin/alias")).unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        std::os::unix::fs::chown(root.join("empty"), Some(1234), Some(4321)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        dir
    }

    #[test]
    fn built_layer_is_reproducible_and_reads_back_to_the_same_tree() {
        let src = source_dir();
        let out = tempfile::tempdir().unwrap();
        let a = build_layer(
            src.path(),
            Compression::Zstd,
            OCI_LAYER_ZSTD,
            &out.path().join("a"),
        )
        .unwrap();
        let b = build_layer(
            src.path(),
            Compression::Zstd,
            OCI_LAYER_ZSTD,
            &out.path().join("b"),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.file_bytes, 18);
        assert_eq!(
            a.blob.size,
            fs::metadata(out.path().join("a")).unwrap().len()
        );
        assert_eq!(
            a.blob.digest,
            Digest::of(&fs::read(out.path().join("a")).unwrap())
        );

        let store_dir = tempfile::tempdir().unwrap();
        fs::create_dir(store_dir.path().join("c")).unwrap();
        fs::create_dir(store_dir.path().join("t")).unwrap();
        let store = ContentStore::new(store_dir.path().join("c"), store_dir.path().join("t"));
        let mut tree = ImageTree::default();
        let read = read_layer_file(
            &out.path().join("a"),
            OCI_LAYER_ZSTD,
            &tree,
            &store,
            &mut PendingSync::default(),
            &mut Budget::unlimited(),
        )
        .unwrap();
        assert_eq!(read.diff_id, a.diff_id);
        tree.apply(read.changes);
        let tool = tree.get("usr/bin/tool").unwrap();
        assert_eq!(tool.mode, 0o4711);
        assert_eq!(tree.get("usr/bin/tool2"), Some(tool));
        assert_eq!(
            tree.get("usr/bin/alias").unwrap().kind,
            EntryKind::Symlink {
                target: "tool".into()
            }
        );
        let empty = tree.get("empty").unwrap();
        assert_eq!((empty.uid, empty.gid), (1234, 4321));
        assert_eq!(tree.get("fifo").unwrap().kind, EntryKind::Fifo);
    }
}
