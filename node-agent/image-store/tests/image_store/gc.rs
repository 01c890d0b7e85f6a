//! Garbage collection keeps what is in use and removes the rest.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use zos_image_store::push::ManifestFormat;
use zos_image_store::{Compression, ContentHash, ImageRecord};

use crate::support::{push, synthetic, Registry, TestStore, Tree};

const HOUR: Duration = Duration::from_secs(3600);

fn contents(record: &ImageRecord) -> HashSet<ContentHash> {
    record
        .tree
        .files()
        .filter(|(_, _, size, _)| *size > 0)
        .map(|(_, _, _, hash)| hash)
        .collect()
}

#[tokio::test]
async fn gc_keeps_images_in_use_and_removes_the_rest() {
    let registry = Registry::start();
    let common = synthetic("common", 100_000, false);
    let a = Tree::new();
    a.file("lib/common", &common, 0o644)
        .file("bin/a", &synthetic("a", 50_000, false), 0o755);
    let b = Tree::new();
    b.file("lib/common", &common, 0o644)
        .file("bin/b", &synthetic("b", 70_000, false), 0o755);
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

    let store = TestStore::new();
    let record_a = store.pull(&pushed_a.reference).await.unwrap();
    let record_b = store.pull(&pushed_b.reference).await.unwrap();
    assert_eq!(store.stats().unwrap().contents, 3);

    // Recently used images stay.
    let report = store.gc(HOUR).unwrap();
    assert!(report.images_removed.is_empty());
    assert_eq!(report.objects_removed, 0);

    let rootfs = store.prepare_rootfs(&record_a.digest, "uses-a").unwrap();
    assert_eq!(store.leases().unwrap()[0].image, record_a.digest);

    // Even with no grace period, what a workload uses stays: b goes, and only b's own file.
    let report = store.gc(Duration::ZERO).unwrap();
    assert_eq!(
        report.images_removed,
        std::slice::from_ref(&record_b.digest)
    );
    assert_eq!((report.contents_removed, report.objects_removed), (1, 1));
    assert_eq!(report.bytes_freed, 70_000);
    assert_eq!(
        store.images().unwrap(),
        std::slice::from_ref(&record_a.digest)
    );
    let stats = store.stats().unwrap();
    assert_eq!((stats.contents, stats.bytes), (2, 150_000));
    assert_eq!(contents(&record_a).len(), 2);
    store.verify_rootfs("uses-a").unwrap();
    assert_eq!(fs::read(rootfs.path().join("lib/common")).unwrap(), common);

    // b can be pulled again; once a's workload is gone, a is collected after its grace period.
    store.pull(&pushed_b.reference).await.unwrap();
    store.remove_rootfs("uses-a").unwrap();
    let report = store.gc(HOUR).unwrap();
    assert!(report.images_removed.is_empty(), "{report:?}");
    let report = store.gc(Duration::ZERO).unwrap();
    let removed: HashSet<_> = report.images_removed.into_iter().collect();
    assert_eq!(removed, HashSet::from([record_a.digest, record_b.digest]));
    assert_eq!(store.stats().unwrap(), Default::default());
}
