//! Checking a tree on disk against an image's tree: every path present and nothing else, each
//! with its type, mode, owner, symlink target or device, and every regular file re-hashed (in
//! parallel) against its BLAKE3 fingerprint.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::ContentHash;
use crate::tree::{EntryKind, ImageTree};

/// How a path on disk differs from the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// In the image, not on disk.
    Missing,
    /// On disk, not in the image.
    Unexpected,
    /// Another type of file.
    Type {
        /// Type in the image.
        expected: &'static str,
        /// Type on disk.
        found: &'static str,
    },
    /// Other permission bits.
    Mode {
        /// Mode in the image.
        expected: u32,
        /// Mode on disk.
        found: u32,
    },
    /// Another owner or group.
    Owner {
        /// `(uid, gid)` in the image.
        expected: (u32, u32),
        /// `(uid, gid)` on disk.
        found: (u32, u32),
    },
    /// Another length.
    Size {
        /// Length in the image.
        expected: u64,
        /// Length on disk.
        found: u64,
    },
    /// Other content.
    Content {
        /// Hash in the image.
        expected: ContentHash,
        /// Hash on disk.
        found: ContentHash,
    },
    /// A symlink pointing elsewhere.
    LinkTarget {
        /// Target in the image.
        expected: String,
        /// Target on disk.
        found: String,
    },
    /// Other device numbers.
    Device {
        /// `(major, minor)` in the image.
        expected: (u32, u32),
        /// `(major, minor)` on disk.
        found: (u32, u32),
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => write!(f, "missing"),
            Problem::Unexpected => write!(f, "not in the image"),
            Problem::Type { expected, found } => write!(f, "is a {found}, expected a {expected}"),
            Problem::Mode { expected, found } => {
                write!(f, "mode {found:04o}, expected {expected:04o}")
            }
            Problem::Owner { expected, found } => write!(
                f,
                "owner {}:{}, expected {}:{}",
                found.0, found.1, expected.0, expected.1
            ),
            Problem::Size { expected, found } => write!(f, "{found} bytes, expected {expected}"),
            Problem::Content { expected, found } => {
                write!(f, "content blake3 {found}, expected {expected}")
            }
            Problem::LinkTarget { expected, found } => {
                write!(f, "points to {found:?}, expected {expected:?}")
            }
            Problem::Device { expected, found } => write!(
                f,
                "device {}:{}, expected {}:{}",
                found.0, found.1, expected.0, expected.1
            ),
        }
    }
}

fn more_suffix(more: usize) -> String {
    match more {
        0 => String::new(),
        n => format!(" (and {n} more differences)"),
    }
}

/// A tree that does not match its image.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The first differing path, in path order.
    #[error("/{path}: {problem}{}", more_suffix(*more))]
    Mismatch {
        /// Path in the image.
        path: String,
        /// How it differs.
        problem: Problem,
        /// How many other paths differ.
        more: usize,
    },
    /// A path could not be read.
    #[error("cannot read /{path}")]
    Read {
        /// Path in the image.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl VerifyError {
    /// The path (relative to the root, without leading `/`) the error names.
    pub fn path(&self) -> &str {
        match self {
            VerifyError::Mismatch { path, .. } | VerifyError::Read { path, .. } => path,
        }
    }
}

/// What a successful check covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Paths checked.
    pub entries: u64,
    /// Regular files re-hashed.
    pub files: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
}

fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_file() {
        "regular file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

struct FileToHash {
    path: String,
    abs: PathBuf,
    size: u64,
    expected: ContentHash,
}

/// Checks the tree at `root` against `tree`; the error names the first differing path.
pub fn verify_tree(root: &Path, tree: &ImageTree) -> Result<VerifyReport, VerifyError> {
    let read_err = |path: &str| {
        let path = path.to_owned();
        move |source| VerifyError::Read { path, source }
    };
    let mut problems: Vec<(String, Problem)> = Vec::new();
    let mut to_hash = Vec::new();
    let mut seen = 0usize;
    let mut report = VerifyReport::default();

    let root_md = fs::symlink_metadata(root).map_err(read_err(""))?;
    let mut stack = vec![(String::new(), root.to_owned(), root_md)];
    while let Some((path, abs, md)) = stack.pop() {
        report.entries += 1;
        let Some(entry) = tree.get(&path) else {
            problems.push((path, Problem::Unexpected));
            continue;
        };
        seen += 1;
        let found_kind = kind_name(md.file_type());
        if found_kind != entry.kind.name() {
            problems.push((
                path,
                Problem::Type {
                    expected: entry.kind.name(),
                    found: found_kind,
                },
            ));
            continue;
        }
        let mode = md.mode() & 0o7777;
        if !matches!(entry.kind, EntryKind::Symlink { .. }) && mode != entry.mode {
            problems.push((
                path.clone(),
                Problem::Mode {
                    expected: entry.mode,
                    found: mode,
                },
            ));
        }
        if (md.uid(), md.gid()) != (entry.uid, entry.gid) {
            problems.push((
                path.clone(),
                Problem::Owner {
                    expected: (entry.uid, entry.gid),
                    found: (md.uid(), md.gid()),
                },
            ));
        }
        match &entry.kind {
            EntryKind::Directory => {
                for child in fs::read_dir(&abs).map_err(read_err(&path))? {
                    let child = child.map_err(read_err(&path))?;
                    let name = child.file_name();
                    let Some(name) = name.to_str() else {
                        problems.push((join(&path, &name.to_string_lossy()), Problem::Unexpected));
                        continue;
                    };
                    let child_path = join(&path, name);
                    let child_md = child.metadata().map_err(read_err(&child_path))?;
                    stack.push((child_path, child.path(), child_md));
                }
            }
            EntryKind::File { size, blake3 } => {
                if md.len() != *size {
                    problems.push((
                        path,
                        Problem::Size {
                            expected: *size,
                            found: md.len(),
                        },
                    ));
                } else {
                    to_hash.push(FileToHash {
                        path,
                        abs,
                        size: *size,
                        expected: *blake3,
                    });
                }
            }
            EntryKind::Symlink { target } => {
                let found = fs::read_link(&abs).map_err(read_err(&path))?;
                let found = found.to_string_lossy();
                if found != target.as_str() {
                    problems.push((
                        path,
                        Problem::LinkTarget {
                            expected: target.clone(),
                            found: found.into_owned(),
                        },
                    ));
                }
            }
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                let found = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
                if found != (*major, *minor) {
                    problems.push((
                        path,
                        Problem::Device {
                            expected: (*major, *minor),
                            found,
                        },
                    ));
                }
            }
            EntryKind::Fifo => {}
        }
    }

    if seen < tree.len() {
        // Some image paths were never reached: find which.
        let mut on_disk = std::collections::HashSet::new();
        collect_paths(root, "", &mut on_disk);
        for (path, _) in tree.iter() {
            if !on_disk.contains(path) {
                problems.push((path.to_owned(), Problem::Missing));
            }
        }
    }

    let hashed: Vec<Result<Option<(String, Problem)>, VerifyError>> = to_hash
        .par_iter()
        .map(|f| {
            let found = hash_file(&f.abs, f.size).map_err(read_err(&f.path))?;
            Ok((found != f.expected).then(|| {
                (
                    f.path.clone(),
                    Problem::Content {
                        expected: f.expected,
                        found,
                    },
                )
            }))
        })
        .collect();
    for r in hashed {
        if let Some(p) = r? {
            problems.push(p);
        }
    }
    report.files = to_hash.len() as u64;
    report.bytes = to_hash.iter().map(|f| f.size).sum();

    if problems.is_empty() {
        return Ok(report);
    }
    problems.sort_by(|a, b| a.0.cmp(&b.0));
    problems.dedup_by(|a, b| a.0 == b.0);
    let more = problems.len() - 1;
    let (path, problem) = problems.swap_remove(0);
    Err(VerifyError::Mismatch {
        path,
        problem,
        more,
    })
}

/// Paths below `dir` that exist on disk (directories entered only if real directories).
fn collect_paths(dir: &Path, rel: &str, out: &mut std::collections::HashSet<String>) {
    out.insert(rel.to_owned());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child = join(rel, &name);
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_paths(&entry.path(), &child, out);
        } else {
            out.insert(child);
        }
    }
}

/// BLAKE3 of a regular file, without following a symlink swapped in since the walk.
fn hash_file(path: &Path, expected_size: u64) -> io::Result<ContentHash> {
    let file = File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let md = file.metadata()?;
    if !md.is_file() || md.len() != expected_size {
        return Err(io::Error::other("file changed during verification"));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Entry, LayerChanges};
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn entry(kind: EntryKind, mode: u32) -> Entry {
        Entry {
            kind,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A tree and a matching directory: `bin/app` (file), `bin/sh` -> app, `etc/` (0750).
    fn fixture() -> (tempfile::TempDir, ImageTree) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(root.join("bin")).unwrap();
        fs::set_permissions(root.join("bin"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(root.join("etc")).unwrap();
        fs::set_permissions(root.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(root.join("bin/app"), b"binary").unwrap();
        fs::set_permissions(root.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("app", root.join("bin/sh")).unwrap();
        let mut tree = ImageTree::default();
        tree.apply(LayerChanges {
            entries: vec![
                ("bin".into(), entry(EntryKind::Directory, 0o755)),
                (
                    "bin/app".into(),
                    entry(
                        EntryKind::File {
                            size: 6,
                            blake3: ContentHash::of(b"binary"),
                        },
                        0o755,
                    ),
                ),
                (
                    "bin/sh".into(),
                    entry(
                        EntryKind::Symlink {
                            target: "app".into(),
                        },
                        0o777,
                    ),
                ),
                ("etc".into(), entry(EntryKind::Directory, 0o750)),
            ],
            ..Default::default()
        });
        (dir, tree)
    }

    fn mismatch(root: &Path, tree: &ImageTree) -> (String, Problem) {
        match verify_tree(root, tree).unwrap_err() {
            VerifyError::Mismatch { path, problem, .. } => (path, problem),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn matching_tree_passes() {
        let (dir, tree) = fixture();
        let report = verify_tree(dir.path(), &tree).unwrap();
        assert_eq!(
            report,
            VerifyReport {
                entries: 5,
                files: 1,
                bytes: 6
            }
        );
    }

    #[test]
    fn same_size_content_change_is_named() {
        let (dir, tree) = fixture();
        fs::write(dir.path().join("bin/app"), b"BINARY").unwrap();
        let (path, problem) = mismatch(dir.path(), &tree);
        assert_eq!(path, "bin/app");
        assert!(matches!(problem, Problem::Content { .. }));
        let msg = verify_tree(dir.path(), &tree).unwrap_err().to_string();
        assert!(msg.starts_with("/bin/app: content blake3 "), "{msg}");
    }

    #[test]
    fn missing_extra_replaced_and_chmodded_paths_are_named() {
        let (dir, tree) = fixture();
        let root = dir.path();
        fs::remove_file(root.join("bin/app")).unwrap();
        assert_eq!(mismatch(root, &tree), ("bin/app".into(), Problem::Missing));

        let (dir, tree) = fixture();
        let root = dir.path();
        fs::write(root.join("etc/extra"), b"").unwrap();
        assert_eq!(
            mismatch(root, &tree),
            ("etc/extra".into(), Problem::Unexpected)
        );

        let (dir, tree) = fixture();
        let root = dir.path();
        fs::remove_file(root.join("bin/sh")).unwrap();
        symlink("/tmp/evil", root.join("bin/sh")).unwrap();
        assert!(matches!(
            mismatch(root, &tree),
            (p, Problem::LinkTarget { .. }) if p == "bin/sh"
        ));

        let (dir, tree) = fixture();
        let root = dir.path();
        fs::remove_file(root.join("bin/app")).unwrap();
        symlink("sh", root.join("bin/app")).unwrap();
        assert!(matches!(
            mismatch(root, &tree),
            (p, Problem::Type { found: "symlink", .. }) if p == "bin/app"
        ));

        let (dir, tree) = fixture();
        let root = dir.path();
        fs::set_permissions(root.join("bin/app"), fs::Permissions::from_mode(0o4755)).unwrap();
        assert_eq!(
            mismatch(root, &tree),
            (
                "bin/app".into(),
                Problem::Mode {
                    expected: 0o755,
                    found: 0o4755
                }
            )
        );
    }

    #[test]
    fn missing_directory_reports_its_contents_and_counts_the_rest() {
        let (dir, tree) = fixture();
        fs::remove_dir_all(dir.path().join("bin")).unwrap();
        let err = verify_tree(dir.path(), &tree).unwrap_err();
        assert_eq!(err.path(), "bin");
        assert!(
            err.to_string().ends_with("(and 2 more differences)"),
            "{err}"
        );
    }
}
