//! Whiteouts and opaque directories, as the OCI image spec says.

use std::fs;

use zos_image_store::push::ManifestFormat;
use zos_image_store::Compression;

use crate::support::{push, snapshot, Registry, TestStore, Tree};

#[tokio::test]
async fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
    let registry = Registry::start();
    let base = Tree::new();
    base.file("etc/a", b"a1", 0o644)
        .file("etc/b", b"b1", 0o644)
        .file("etc/keep", b"k", 0o644)
        .file("var/lib/x/1", b"1", 0o644)
        .file("var/lib/x/2", b"2", 0o644)
        .file("var/lib/y", b"y", 0o644)
        .file("opt/keep", b"old", 0o644)
        .file("tmp/dir/file", b"f", 0o644)
        .file("srv/d/file", b"in d", 0o644);
    let second = Tree::new();
    second
        .whiteout("etc/a")
        .opaque("var/lib")
        .file("var/lib/new", b"new", 0o600)
        .whiteout("tmp")
        .file("opt/keep", b"new content", 0o640)
        .file("srv/d", b"now a file", 0o644);
    let third = Tree::new();
    // A whiteout hides lower layers only, not an entry of its own layer.
    third
        .file("etc/a", b"a3", 0o644)
        .whiteout("etc/a")
        .whiteout("etc/b");
    let pushed = push(
        &registry,
        "layered",
        &[base.path(), second.path(), third.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;

    let store = TestStore::new();
    let record = store.pull(&pushed.reference).await.unwrap();
    assert_eq!(record.layers.len(), 3);
    let paths: Vec<&str> = record.tree.iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "",
            "etc",
            "etc/a",
            "etc/keep",
            "opt",
            "opt/keep",
            "srv",
            "srv/d",
            "var",
            "var/lib",
            "var/lib/new"
        ]
    );

    let rootfs = store.prepare_rootfs(&record.digest, "w").unwrap();
    let merged = rootfs.path();
    let read = |p: &str| fs::read(merged.join(p)).unwrap();
    assert_eq!(read("etc/a"), b"a3");
    assert_eq!(read("opt/keep"), b"new content");
    assert_eq!(read("srv/d"), b"now a file");
    assert_eq!(read("var/lib/new"), b"new");
    let listed: Vec<String> = snapshot(&merged).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        listed,
        [
            "etc",
            "etc/a",
            "etc/keep",
            "opt",
            "opt/keep",
            "srv",
            "srv/d",
            "var",
            "var/lib",
            "var/lib/new"
        ]
    );
    // Only the surviving contents are needed: gc drops the hidden ones.
    let before = store.stats().unwrap().contents;
    let report = store.gc(std::time::Duration::from_secs(3600)).unwrap();
    assert_eq!(before - report.contents_removed, 5);
    store.remove_rootfs("w").unwrap();
}
