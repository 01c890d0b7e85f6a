//! An image's file tree: what its root filesystem must contain, path by path.
//!
//! Paths are relative, `/`-separated, without `.` or `..` components; the root directory is the
//! empty path. The tree never has an entry below a non-directory. Layers are applied with
//! [`ImageTree::apply`], which implements the OCI image spec's changeset semantics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::ContentHash;

/// One path of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// What the path is, with what the kind needs (content hash, link target, device numbers).
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Permission bits, with setuid, setgid and sticky (`0o7777`). Not checked for symlinks.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The type of an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file. Paths hardlinked together in a layer are separate entries with the same
    /// content and metadata; in a workload's lower tree they end up on one inode.
    File {
        /// Length in bytes.
        size: u64,
        /// BLAKE3 of the content.
        blake3: ContentHash,
    },
    /// A symbolic link.
    Symlink {
        /// The link target, as stored in the layer (never followed by the store).
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

impl EntryKind {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::Directory => "directory",
            EntryKind::File { .. } => "regular file",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::CharDevice { .. } => "character device",
            EntryKind::BlockDevice { .. } => "block device",
            EntryKind::Fifo => "fifo",
        }
    }
}

impl Entry {
    fn implicit_dir() -> Self {
        Entry {
            kind: EntryKind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    /// Whether this entry is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Directory)
    }
}

/// The root filesystem an image describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTree {
    entries: BTreeMap<String, Entry>,
}

impl Default for ImageTree {
    fn default() -> Self {
        let mut entries = BTreeMap::new();
        entries.insert(String::new(), Entry::implicit_dir());
        Self { entries }
    }
}

/// The changes one layer makes, in the order the layer's tar lists them.
#[derive(Debug, Default)]
pub(crate) struct LayerChanges {
    /// Paths removed with everything below them (`.wh.<name>`).
    pub(crate) whiteouts: Vec<String>,
    /// Directories whose lower contents are hidden (`.wh..wh..opq`).
    pub(crate) opaque_dirs: Vec<String>,
    /// Entries the layer adds or replaces; a later one for the same path wins.
    pub(crate) entries: Vec<(String, Entry)>,
}

impl ImageTree {
    /// The entry at `path` (`""` for the root).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// All entries, parents before children.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// Number of entries, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree holds only its root.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 1
    }

    /// The root directory's entry.
    pub fn root(&self) -> &Entry {
        self.entries
            .get("")
            .expect("the root entry is inserted at creation and never removed; qed")
    }

    /// Regular files: path, size and content hash.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Entry, u64, ContentHash)> {
        self.iter().filter_map(|(p, e)| match e.kind {
            EntryKind::File { size, blake3 } => Some((p, e, size, blake3)),
            _ => None,
        })
    }

    /// Removes everything strictly below `dir`. Paths below `d` sort between `d/` and `d0`
    /// (`'0'` follows `'/'`), so that is one range of the map.
    fn remove_below(&mut self, dir: &str) {
        if dir.is_empty() {
            self.entries.retain(|p, _| p.is_empty());
            return;
        }
        let doomed: Vec<String> = self
            .entries
            .range(format!("{dir}/")..format!("{dir}0"))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.entries.remove(&p);
        }
    }

    fn remove_with_descendants(&mut self, path: &str) {
        if path.is_empty() {
            self.remove_below(path);
            return;
        }
        self.entries.remove(path);
        self.remove_below(path);
    }

    /// Applies a layer. Whiteouts and opaque markers hide only what lower layers put there
    /// (OCI image spec, "Whiteouts"), so they are applied before the layer's own entries.
    pub(crate) fn apply(&mut self, changes: LayerChanges) {
        for dir in &changes.opaque_dirs {
            self.remove_below(dir);
        }
        for path in &changes.whiteouts {
            self.remove_with_descendants(path);
        }
        for (path, entry) in changes.entries {
            self.insert(path, entry);
        }
    }

    /// Inserts an entry, creating missing parents as `0755 root:root` directories and replacing
    /// a non-directory parent by such a directory. A non-directory replacing a directory drops
    /// everything below it.
    fn insert(&mut self, path: String, entry: Entry) {
        if path.is_empty() {
            if entry.is_dir() {
                self.entries.insert(path, entry);
            }
            return;
        }
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            match self.entries.get(parent) {
                Some(e) if e.is_dir() => {}
                _ => {
                    self.entries
                        .insert(parent.to_owned(), Entry::implicit_dir());
                }
            }
            end += i + 1;
        }
        if !entry.is_dir() {
            self.remove_below(&path);
        }
        self.entries.insert(path, entry);
    }

    /// The entry a hardlink at this point of a layer would point to.
    pub(crate) fn lookup_in_layer<'a>(
        &'a self,
        changes: &'a LayerChanges,
        path: &str,
    ) -> Option<&'a Entry> {
        changes
            .entries
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, e)| e)
            .or_else(|| self.entries.get(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u8) -> Entry {
        Entry {
            kind: EntryKind::File {
                size: 1,
                blake3: ContentHash::of(&[n]),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn dir(mode: u32) -> Entry {
        Entry {
            kind: EntryKind::Directory,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    fn paths(t: &ImageTree) -> Vec<&str> {
        t.iter().map(|(p, _)| p).collect()
    }

    fn layer(entries: Vec<(&str, Entry)>) -> LayerChanges {
        LayerChanges {
            entries: entries
                .into_iter()
                .map(|(p, e)| (p.to_owned(), e))
                .collect(),
            ..Default::default()
        }
    }

    fn base() -> ImageTree {
        let mut t = ImageTree::default();
        t.apply(layer(vec![
            ("a", dir(0o755)),
            ("a/x", file(1)),
            ("a/y", file(2)),
            ("a/sub", dir(0o700)),
            ("a/sub/z", file(3)),
            ("a-b", file(4)),
            ("b", dir(0o755)),
            ("b/keep", file(5)),
        ]));
        t
    }

    #[test]
    fn missing_parents_are_created() {
        let mut t = ImageTree::default();
        t.apply(layer(vec![("usr/bin/sh", file(1))]));
        assert_eq!(paths(&t), ["", "usr", "usr/bin", "usr/bin/sh"]);
        assert_eq!(t.get("usr").unwrap(), &dir(0o755));
    }

    #[test]
    fn whiteout_removes_path_and_descendants_only() {
        let mut t = base();
        t.apply(LayerChanges {
            whiteouts: vec!["a/sub".into(), "a/x".into(), "nonexistent".into()],
            ..Default::default()
        });
        assert_eq!(paths(&t), ["", "a", "a-b", "a/y", "b", "b/keep"]);
    }

    #[test]
    fn opaque_dir_hides_lower_children_but_keeps_dir_and_new_children() {
        let mut t = base();
        t.apply(LayerChanges {
            opaque_dirs: vec!["a".into()],
            entries: vec![("a/new".into(), file(9))],
            ..Default::default()
        });
        assert_eq!(paths(&t), ["", "a", "a-b", "a/new", "b", "b/keep"]);
    }

    #[test]
    fn whiteout_does_not_hide_same_layer_entry() {
        let mut t = base();
        t.apply(LayerChanges {
            // A layer that lists the new a/x before the whiteout of the old one.
            entries: vec![("a/x".into(), file(7))],
            whiteouts: vec!["a/x".into()],
            ..Default::default()
        });
        assert_eq!(t.get("a/x"), Some(&file(7)));
    }

    #[test]
    fn file_replacing_dir_drops_its_children_and_dir_replacing_file_works() {
        let mut t = base();
        t.apply(layer(vec![("a", file(8)), ("b/keep/inner", file(6))]));
        assert_eq!(paths(&t), ["", "a", "a-b", "b", "b/keep", "b/keep/inner"]);
        assert_eq!(t.get("a"), Some(&file(8)));
        assert!(t.get("b/keep").unwrap().is_dir());
    }

    #[test]
    fn dir_over_dir_merges_and_takes_new_metadata() {
        let mut t = base();
        t.apply(layer(vec![("a", dir(0o711))]));
        assert_eq!(t.get("a"), Some(&dir(0o711)));
        assert!(t.get("a/sub/z").is_some());
    }

    #[test]
    fn root_whiteout_and_opaque_root_keep_root() {
        let mut t = base();
        t.apply(LayerChanges {
            opaque_dirs: vec![String::new()],
            ..Default::default()
        });
        assert_eq!(paths(&t), [""]);
        assert!(t.is_empty());
    }

    #[test]
    fn hardlink_lookup_prefers_latest_layer_entry() {
        let t = base();
        let changes = layer(vec![("a/x", file(7)), ("a/x", file(8))]);
        assert_eq!(t.lookup_in_layer(&changes, "a/x"), Some(&file(8)));
        assert_eq!(t.lookup_in_layer(&changes, "a/y"), Some(&file(2)));
        assert_eq!(t.lookup_in_layer(&changes, "nope"), None);
    }

    #[test]
    fn serde_round_trip() {
        let t = base();
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""type":"file""#));
        assert_eq!(serde_json::from_str::<ImageTree>(&json).unwrap(), t);
    }
}
