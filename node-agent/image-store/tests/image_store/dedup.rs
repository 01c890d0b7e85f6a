//! Two images that share most files but no layer: the shared files are stored once.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zos_image_store::push::ManifestFormat;
use zos_image_store::Compression;

use crate::support::{push, synthetic, Registry, TestStore, Tree};

/// Non-empty regular files under `root`: (blake3, mode, uid, gid) -> size.
fn objects_of(root: &Path, out: &mut HashMap<(String, u32, u32, u32), u64>) {
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let md = fs::symlink_metadata(&path).unwrap();
        if md.is_dir() {
            objects_of(&path, out);
        } else if md.is_file() && md.len() > 0 {
            let hash = blake3::hash(&fs::read(&path).unwrap()).to_hex().to_string();
            out.insert((hash, md.mode() & 0o7777, md.uid(), md.gid()), md.len());
        }
    }
}

fn image_tree(shared: &[(String, Vec<u8>)], extras: &[(&str, Vec<u8>)]) -> Tree {
    let tree = Tree::new();
    tree.busybox_base();
    for (path, content) in shared {
        tree.file(path, content, 0o644);
    }
    for (path, content) in extras {
        tree.file(path, content, 0o755);
    }
    tree
}

#[tokio::test]
async fn images_sharing_files_but_no_layer_store_shared_files_once() {
    let registry = Registry::start();
    let shared: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("usr/lib/lib{i}.so"),
                synthetic(&format!("lib{i}"), 40_000 + i * 1000, i % 2 == 0),
            )
        })
        .collect();
    let a = image_tree(
        &shared,
        &[
            ("opt/a/run", synthetic("a-run", 30_000, false)),
            ("opt/a/data", synthetic("a-data", 10_000, true)),
        ],
    );
    let b = image_tree(
        &shared,
        &[
            ("opt/b/run", synthetic("b-run", 25_000, false)),
            ("opt/b/data", synthetic("b-data", 12_000, true)),
            ("opt/b/more", synthetic("b-more", 5_000, true)),
            // Same bytes as a shared file, shipped with another mode.
            ("usr/lib/lib0.so", shared[0].1.clone()),
        ],
    );
    let pushed_a = push(
        &registry,
        "a",
        &[a.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;
    let pushed_b = push(
        &registry,
        "b",
        &[b.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;
    let layers_a: HashSet<_> = pushed_a.layers.iter().map(|l| &l.blob.digest).collect();
    assert!(pushed_b
        .layers
        .iter()
        .all(|l| !layers_a.contains(&l.blob.digest)));

    let store = TestStore::new();
    let record_a = store.pull(&pushed_a.reference).await.unwrap();
    let record_b = store.pull(&pushed_b.reference).await.unwrap();

    let mut expected = HashMap::new();
    objects_of(a.path(), &mut expected);
    objects_of(b.path(), &mut expected);
    let contents: HashSet<_> = expected.keys().map(|k| &k.0).collect();
    let stats = store.stats().unwrap();
    assert_eq!(stats.images, 2);
    assert_eq!(stats.contents, contents.len() as u64);
    assert_eq!(stats.objects, expected.len() as u64);
    assert_eq!(
        stats.objects,
        stats.contents + 1,
        "lib0.so has two metadata variants"
    );
    assert_eq!(stats.bytes, expected.values().sum::<u64>());

    // A layer-level store keeps both layers' files in full.
    let layer_level: u64 = [&record_a, &record_b]
        .iter()
        .flat_map(|r| &r.layers)
        .map(|l| l.file_bytes)
        .sum();
    let shared_bytes: u64 = fs::metadata("/bin/busybox").unwrap().len()
        + ["etc/passwd", "etc/group", "etc/shadow", "etc/hostname"]
            .iter()
            .map(|p| fs::metadata(a.path().join(p)).unwrap().len())
            .sum::<u64>()
        + shared[1..].iter().map(|(_, c)| c.len() as u64).sum::<u64>();
    assert_eq!(layer_level - stats.bytes, shared_bytes);

    // Both rootfs link the same inodes for shared files, and each sees its own lib0.so mode.
    let rootfs_a = store.prepare_rootfs(&record_a.digest, "a").unwrap();
    let rootfs_b = store.prepare_rootfs(&record_b.digest, "b").unwrap();
    let ino = |root: &Path, p: &str| fs::metadata(root.join(p)).unwrap().ino();
    let mode = |root: &Path, p: &str| fs::metadata(root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(
        ino(&rootfs_a.lower_dir(), "usr/lib/lib1.so"),
        ino(&rootfs_b.lower_dir(), "usr/lib/lib1.so")
    );
    assert_eq!(
        ino(&rootfs_a.lower_dir(), "bin/busybox"),
        ino(&rootfs_b.lower_dir(), "bin/busybox")
    );
    assert_ne!(
        ino(&rootfs_a.lower_dir(), "usr/lib/lib0.so"),
        ino(&rootfs_b.lower_dir(), "usr/lib/lib0.so")
    );
    assert_eq!(mode(&rootfs_a.path(), "usr/lib/lib0.so"), 0o644);
    assert_eq!(mode(&rootfs_b.path(), "usr/lib/lib0.so"), 0o755);
    assert_eq!(
        fs::read(rootfs_b.path().join("usr/lib/lib0.so")).unwrap(),
        shared[0].1
    );
    store.remove_rootfs("a").unwrap();
    store.remove_rootfs("b").unwrap();
}
