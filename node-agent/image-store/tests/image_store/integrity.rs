//! Digests are checked, and interrupted pulls are never taken as complete.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use zos_image_store::push::{ManifestFormat, PushedImage};
use zos_image_store::{
    Compression, Digest, ImageReference, PullError, PullErrorKind, RegistryError, RootfsError,
    UnpackError,
};

use crate::support::{error_chain, push, Registry, RegistryExt, TestStore, Tree};

async fn pushed_app(registry: &Registry) -> PushedImage {
    let tree = Tree::new();
    tree.file(
        "bin/app",
        &crate::support::synthetic("app", 200_000, false),
        0o755,
    )
    .file("etc/app.conf", b"level = 3\n", 0o644);
    push(
        registry,
        "app",
        &[tree.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await
}

fn assert_store_empty(store: &TestStore) {
    assert!(store.images().unwrap().is_empty());
    assert_eq!(store.stats().unwrap(), Default::default());
    assert_eq!(fs::read_dir(store.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn unknown_digest_is_refused() {
    let registry = Registry::start();
    let pushed = pushed_app(&registry).await;
    let store = TestStore::new();
    let wrong = ImageReference::new(registry.addr.clone(), "app", Digest::of(b"another image"));
    let err = store.pull(&wrong).await.unwrap_err();
    assert!(
        matches!(err, PullError::Registry(RegistryError::NotFound { .. })),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::NotFound);
    assert_eq!(err.kind().to_string(), "not found");
    assert_store_empty(&store);
    store.pull(&pushed.reference).await.unwrap();
}

#[tokio::test]
async fn manifest_not_matching_the_pinned_digest_is_refused() {
    let registry = Registry::start();
    let pushed = pushed_app(&registry).await;
    // Change one hex digit of the config digest inside the stored manifest: still a valid
    // manifest, but not the one pinned.
    let path = registry.blob_path(pushed.digest());
    let mut manifest = fs::read(&path).unwrap();
    let needle = pushed.config.digest.hex().as_bytes()[..16].to_vec();
    let at = manifest
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    manifest[at] = if manifest[at] == b'0' { b'1' } else { b'0' };
    fs::write(&path, &manifest).unwrap();

    let store = TestStore::new();
    let err = store.pull(&pushed.reference).await.unwrap_err();
    match &err {
        PullError::Registry(RegistryError::ManifestDigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, pushed.digest());
            assert_eq!(actual, Digest::of(&manifest).as_str());
        }
        other => panic!("unexpected error: {}", error_chain(other)),
    }
    assert_eq!(err.kind(), PullErrorKind::DigestMismatch);
    assert_store_empty(&store);
}

#[tokio::test]
async fn layer_not_matching_its_digest_is_refused_and_nothing_is_stored() {
    let registry = Registry::start();
    let pushed = pushed_app(&registry).await;
    let layer = &pushed.layers[0].blob.digest;
    let path = registry.blob_path(layer);
    let mut blob = fs::read(&path).unwrap();
    let middle = blob.len() / 2;
    blob[middle] ^= 0xff;
    fs::write(&path, &blob).unwrap();

    let store = TestStore::new();
    let err = store.pull(&pushed.reference).await.unwrap_err();
    match &err {
        PullError::Registry(RegistryError::BlobDigestMismatch { expected, .. }) => {
            assert_eq!(expected, layer)
        }
        other => panic!("unexpected error: {}", error_chain(other)),
    }
    assert_eq!(err.kind(), PullErrorKind::DigestMismatch);
    assert!(error_chain(&err).contains(layer.as_str()));
    assert_store_empty(&store);
}

#[tokio::test]
async fn interrupted_transfer_is_never_taken_as_complete() {
    let registry = Registry::start();
    let pushed = pushed_app(&registry).await;
    let path = registry.blob_path(&pushed.layers[0].blob.digest);
    let original = fs::read(&path).unwrap();
    // The registry now serves a blob that breaks off half way.
    fs::write(&path, &original[..original.len() / 2]).unwrap();

    let store = TestStore::new();
    let err = store.pull(&pushed.reference).await.unwrap_err();
    assert!(
        matches!(
            err,
            PullError::Registry(RegistryError::BlobSizeMismatch { .. })
        ),
        "{}",
        error_chain(&err)
    );
    assert_store_empty(&store);
    assert!(matches!(
        store.prepare_rootfs(pushed.digest(), "w"),
        Err(RootfsError::ImageNotFound(_))
    ));

    fs::write(&path, &original).unwrap();
    let record = store.pull(&pushed.reference).await.unwrap();
    assert_eq!(store.images().unwrap(), [record.digest]);
}

#[tokio::test]
async fn interrupted_unpack_leaves_only_garbage_that_gc_removes() {
    let registry = Registry::start();
    // Entries are archived in name order: aaa/* are stored before the unpack fails on an
    // invalid whiteout in zzz/.
    let tree = Tree::new();
    tree.file("aaa/one", b"first file", 0o644)
        .file("aaa/two", b"second file", 0o644)
        .file("zzz/.wh.", b"", 0o644);
    let pushed = push(
        &registry,
        "broken",
        &[tree.path()],
        Compression::Zstd,
        ManifestFormat::Oci,
    )
    .await;

    let store = TestStore::new();
    let err = store.pull(&pushed.reference).await.unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Unpack { source: UnpackError::InvalidWhiteout(_), digest }
                if digest == &pushed.layers[0].blob.digest
        ),
        "{}",
        error_chain(&err)
    );
    assert!(store.images().unwrap().is_empty());
    assert_eq!(fs::read_dir(store.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(store.stats().unwrap().contents, 2);

    let report = store.gc(Duration::from_secs(3600)).unwrap();
    assert_eq!((report.contents_removed, report.objects_removed), (2, 2));
    assert_store_empty(&store);
}

#[tokio::test]
async fn leftovers_of_a_crash_are_ignored_and_collected() {
    let registry = Registry::start();
    let pushed = pushed_app(&registry).await;
    let donor = TestStore::new();
    let record = donor.pull(&pushed.reference).await.unwrap();

    // A pull killed before its record was renamed into place: a partial download in tmp/, an
    // object nothing refers to, and a complete record under its temporary name.
    let store = TestStore::new();
    let root = store.path();
    fs::create_dir(root.join("tmp/pull-crashed")).unwrap();
    fs::write(root.join("tmp/pull-crashed/layer-0"), b"partial").unwrap();
    fs::write(
        root.join("images/.tmp-crashed"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    let orphan_dir = root
        .join("content")
        .join(blake3::hash(b"orphan").to_hex().as_str());
    fs::create_dir(&orphan_dir).unwrap();
    fs::write(orphan_dir.join("0644-0-0"), b"orphan").unwrap();
    fs::set_permissions(
        orphan_dir.join("0644-0-0"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    assert!(store.image(pushed.digest()).unwrap().is_none());
    assert!(store.images().unwrap().is_empty());
    assert_eq!(store.stats().unwrap().images, 0);
    assert!(matches!(
        store.prepare_rootfs(pushed.digest(), "w"),
        Err(RootfsError::ImageNotFound(_))
    ));

    store.pull(&pushed.reference).await.unwrap();
    let report = store.gc(Duration::from_secs(3600)).unwrap();
    assert_eq!(report.temporaries_removed, 2);
    assert_eq!((report.contents_removed, report.objects_removed), (1, 1));
    assert!(report.images_removed.is_empty());
    assert!(!orphan_dir.exists());
    assert_eq!(store.stats().unwrap(), donor.stats().unwrap());
    store.prepare_rootfs(pushed.digest(), "w").unwrap();
}
