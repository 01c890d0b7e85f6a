//! Every limit of a pull, each breached on its own: manifest size, compressed layer and image
//! size, uncompressed layer and image size, tar entries, the stall timeout and the deadline.
//! Each is its own error and of its own kind, and leaves no image behind.

use std::time::{Duration, Instant};

use zos_image_store::push::{ManifestFormat, PushedImage};
use zos_image_store::{
    Compression, ImageReference, Limits, PullError, PullErrorKind, RegistryError, Store,
    UnpackError,
};

use crate::slow;
use crate::support::{error_chain, push, synthetic, Registry, TestStore, Tree};

/// An image of two layers: `files` files of `size` bytes each, then one more file.
async fn two_layers(
    registry: &Registry,
    files: usize,
    size: usize,
    compression: Compression,
) -> PushedImage {
    let base = Tree::new();
    for i in 0..files {
        base.file(
            &format!("data/f{i}"),
            &synthetic(&format!("f{i}"), size, false),
            0o644,
        );
    }
    let top = Tree::new();
    top.file("etc/top", b"top layer\n", 0o644);
    push(
        registry,
        "limits",
        &[base.path(), top.path()],
        compression,
        ManifestFormat::Oci,
    )
    .await
}

fn limited(store: &TestStore, limits: Limits) -> Store {
    store.store.clone().with_limits(limits)
}

/// Nothing of a refused pull is an image.
fn assert_no_image(store: &TestStore) {
    assert!(store.images().unwrap().is_empty());
}

#[tokio::test]
async fn a_manifest_over_its_cap_is_refused() {
    let registry = Registry::start();
    let pushed = two_layers(&registry, 1, 10, Compression::Gzip).await;
    let store = TestStore::new();
    let limits = Limits {
        manifest_bytes: pushed.manifest_size,
        ..Limits::default()
    };
    limited(&store, limits)
        .pull(&pushed.reference)
        .await
        .unwrap();

    let store = TestStore::new();
    let limits = Limits {
        manifest_bytes: pushed.manifest_size - 1,
        ..Limits::default()
    };
    let err = limited(&store, limits)
        .pull(&pushed.reference)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Registry(RegistryError::ManifestTooLarge { limit, .. }) if *limit == pushed.manifest_size - 1),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::TooLarge);
    assert_no_image(&store);
}

#[tokio::test]
async fn a_manifest_that_never_ends_is_cut_off_at_the_cap() {
    let server = slow::endless_manifest().await;
    let store = TestStore::new();
    let reference = ImageReference::new(
        server.addr.clone(),
        "endless",
        zos_image_store::Digest::of(b"anything"),
    );
    let started = Instant::now();
    let err = store.pull(&reference).await.unwrap_err();
    assert!(
        matches!(&err, PullError::Registry(RegistryError::ManifestTooLarge { limit, .. }) if *limit == 4 << 20),
        "{}",
        error_chain(&err)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_no_image(&store);
}

#[tokio::test]
async fn compressed_layers_over_their_caps_are_refused_before_they_are_downloaded() {
    let registry = Registry::start();
    let pushed = two_layers(&registry, 3, 20_000, Compression::Gzip).await;
    let base = &pushed.layers[0].blob;
    let all: u64 = pushed.layers.iter().map(|l| l.blob.size).sum();

    let store = TestStore::new();
    let err = limited(
        &store,
        Limits {
            layer_bytes: base.size - 1,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PullError::LayerTooLarge { digest, size, limit } if *digest == base.digest && *size == base.size && *limit == base.size - 1),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::TooLarge);
    assert_no_image(&store);
    // Refused from the manifest: no layer was downloaded, nothing was unpacked.
    assert_eq!(store.stats().unwrap(), Default::default());

    let err = limited(
        &store,
        Limits {
            image_bytes: all - 1,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PullError::ImageTooLarge { size, .. } if *size == all),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::TooLarge);
    assert_eq!(store.stats().unwrap(), Default::default());

    limited(
        &store,
        Limits {
            layer_bytes: base.size,
            image_bytes: all,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap();
}

#[tokio::test]
async fn uncompressed_layers_and_images_over_their_caps_are_refused() {
    let registry = Registry::start();
    // Uncompressed layers: their blob sizes are their tar streams' lengths.
    let pushed = two_layers(&registry, 2, 30_000, Compression::None).await;
    let (base, top) = (pushed.layers[0].blob.size, pushed.layers[1].blob.size);

    let store = TestStore::new();
    let err = limited(
        &store,
        Limits {
            unpacked_layer_bytes: base - 1,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Unpack {
                source: UnpackError::UnpackedLayerTooLarge { .. },
                ..
            }
        ),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::TooLarge);
    assert_no_image(&store);

    let err = limited(
        &store,
        Limits {
            unpacked_image_bytes: base + top - 1,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Unpack {
                source: UnpackError::UnpackedImageTooLarge { .. },
                ..
            }
        ),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::TooLarge);
    assert_no_image(&store);

    limited(
        &store,
        Limits {
            unpacked_layer_bytes: base,
            unpacked_image_bytes: base + top,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_bomb_of_zeros_is_refused_at_the_uncompressed_cap() {
    let registry = Registry::start();
    let tree = Tree::new();
    tree.file("zeros", &vec![0u8; 16 << 20], 0o644);
    let pushed = push(
        &registry,
        "bomb",
        &[tree.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;
    assert!(pushed.layers[0].blob.size < 100 << 10);
    let store = TestStore::new();
    let err = limited(
        &store,
        Limits {
            unpacked_layer_bytes: 1 << 20,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), PullErrorKind::TooLarge, "{}", error_chain(&err));
    assert_no_image(&store);
}

#[tokio::test]
async fn an_image_with_more_entries_than_its_cap_is_refused() {
    let registry = Registry::start();
    // Entries of the base layer: `data`, 10 files; of the top one: `etc`, `etc/top`.
    let pushed = two_layers(&registry, 10, 10, Compression::Gzip).await;
    let store = TestStore::new();
    let err = limited(
        &store,
        Limits {
            entries: 12,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Unpack {
                source: UnpackError::TooManyEntries { limit: 12 },
                ..
            }
        ),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::TooLarge);
    assert_no_image(&store);
    limited(
        &store,
        Limits {
            entries: 13,
            ..Limits::default()
        },
    )
    .pull(&pushed.reference)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_registry_that_drips_bytes_is_given_up_at_the_deadline() {
    let registry = Registry::start();
    let pushed = two_layers(&registry, 1, 200_000, Compression::Gzip).await;
    // 64 bytes every 50 ms: never silent for long, but the layer would take minutes.
    let proxy = slow::dripping(&registry.addr, 64, Duration::from_millis(50)).await;
    let reference = ImageReference::new(proxy.addr.clone(), "limits", pushed.digest().clone());
    let store = TestStore::new();
    let limits = Limits {
        deadline: Duration::from_secs(3),
        stall: Duration::from_secs(10),
        ..Limits::default()
    };
    let started = Instant::now();
    let err = limited(&store, limits).pull(&reference).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, PullError::DeadlineExceeded { after, .. } if *after == limits.deadline),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::DeadlineExceeded);
    assert_eq!(err.kind().to_string(), "deadline exceeded");
    assert!(
        took >= limits.deadline && took < limits.deadline + Duration::from_secs(2),
        "gave up after {took:?}"
    );
    assert_no_image(&store);
    // The same image straight from the registry is fine.
    store.pull(&pushed.reference).await.unwrap();
}

#[tokio::test]
async fn a_registry_that_goes_silent_is_given_up_after_the_stall_timeout() {
    let registry = Registry::start();
    let pushed = two_layers(&registry, 1, 10, Compression::Gzip).await;
    // A first few bytes of the answer, then a long silence.
    let proxy = slow::dripping(&registry.addr, 16, Duration::from_secs(30)).await;
    let reference = ImageReference::new(proxy.addr.clone(), "limits", pushed.digest().clone());
    let store = TestStore::new();
    let limits = Limits {
        stall: Duration::from_millis(500),
        ..Limits::default()
    };
    let started = Instant::now();
    let err = limited(&store, limits).pull(&reference).await.unwrap_err();
    assert!(
        matches!(&err, PullError::Registry(RegistryError::Stalled { after, .. }) if *after == limits.stall),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::Stalled);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_no_image(&store);
}

#[tokio::test]
async fn an_unreachable_registry_is_said_so() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let reference = ImageReference::new(
        format!("127.0.0.1:{port}"),
        "gone",
        zos_image_store::Digest::of(b"x"),
    );
    let store = TestStore::new();
    let err = store.pull(&reference).await.unwrap_err();
    assert_eq!(
        err.kind(),
        PullErrorKind::Unreachable,
        "{}",
        error_chain(&err)
    );
}

#[tokio::test]
async fn a_registry_that_wants_a_token_gets_one_and_one_that_refuses_is_unauthorized() {
    let registry = Registry::start();
    let pushed = two_layers(&registry, 1, 1000, Compression::Gzip).await;
    let gate = slow::token_gate(&registry.addr, true).await;
    let reference = ImageReference::new(gate.addr.clone(), "limits", pushed.digest().clone());
    let store = TestStore::new();
    store.pull(&reference).await.unwrap();

    let closed = slow::token_gate(&registry.addr, false).await;
    let reference = ImageReference::new(closed.addr.clone(), "limits", pushed.digest().clone());
    let store = TestStore::new();
    let err = store.pull(&reference).await.unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Registry(RegistryError::Unauthorized { status: 401, .. })
        ),
        "{}",
        error_chain(&err)
    );
    assert_eq!(err.kind(), PullErrorKind::Unauthorized);
}
