//! Files changed in the store after the pull stop the launch, with the file's name.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use zos_image_store::push::ManifestFormat;
use zos_image_store::{Compression, ImageRecord, Problem, RootfsError, VerifyError};

use crate::support::{error_chain, push, synthetic, Registry, TestStore, Tree};

struct Fixture {
    _registry: Registry,
    store: TestStore,
    record: ImageRecord,
    app: Vec<u8>,
}

async fn fixture() -> Fixture {
    let registry = Registry::start();
    let app = synthetic("app binary", 300_000, false);
    let tree = Tree::new();
    tree.busybox_base()
        .file("usr/bin/app", &app, 0o755)
        .file("etc/app.conf", b"listen = 8080\n", 0o644)
        .symlink("usr/bin/app-link", "app");
    let pushed = push(
        &registry,
        "app",
        &[tree.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;
    let store = TestStore::new();
    let record = store.pull(&pushed.reference).await.unwrap();
    Fixture {
        _registry: registry,
        store,
        record,
        app,
    }
}

impl Fixture {
    fn object(&self, content: &[u8], variant: &str) -> PathBuf {
        self.store
            .path()
            .join("content")
            .join(blake3::hash(content).to_hex().as_str())
            .join(variant)
    }

    fn refused(&self, workload: &str) -> RootfsError {
        let err = self
            .store
            .prepare_rootfs(&self.record.digest, workload)
            .unwrap_err();
        let rootfs = self.store.rootfs(workload).unwrap().unwrap();
        assert!(
            !is_mounted(&rootfs.path()),
            "a refused rootfs must not be mounted"
        );
        self.store.remove_rootfs(workload).unwrap();
        err
    }
}

fn is_mounted(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &std::path::Path| fs::metadata(p).map(|m| m.dev()).unwrap_or(0);
    path.exists() && dev(path) != dev(path.parent().unwrap())
}

/// The path, problem and number of other differences of a verification failure.
fn mismatch(err: &RootfsError) -> (&str, &Problem, usize) {
    match err.verify_error() {
        Some(VerifyError::Mismatch {
            path,
            problem,
            more,
        }) => (path, problem, *more),
        _ => panic!("not a verification mismatch: {}", error_chain(err)),
    }
}

#[tokio::test]
async fn changed_store_file_stops_the_launch_naming_it() {
    let fx = fixture().await;
    let object = fx.object(&fx.app, "0755-0-0");
    let mut tampered = fx.app.clone();
    tampered[1234] ^= 1;
    fs::write(&object, &tampered).unwrap();

    let err = fx.refused("w");
    let (path, problem, _) = mismatch(&err);
    assert_eq!(path, "usr/bin/app");
    assert!(matches!(problem, Problem::Content { .. }), "{problem}");
    assert!(matches!(&err, RootfsError::Verify { workload, .. } if workload == "w"));
    assert!(
        error_chain(&err).contains("/usr/bin/app: content blake3"),
        "{}",
        error_chain(&err)
    );

    // Restored, it launches.
    fs::write(&object, &fx.app).unwrap();
    fx.store.prepare_rootfs(&fx.record.digest, "w").unwrap();
    fx.store.remove_rootfs("w").unwrap();
}

#[tokio::test]
async fn truncated_chmodded_or_missing_store_files_stop_the_launch() {
    let fx = fixture().await;
    let conf = fx.object(b"listen = 8080\n", "0644-0-0");

    fs::set_permissions(&conf, fs::Permissions::from_mode(0o666)).unwrap();
    let err = fx.refused("w");
    assert_eq!(
        mismatch(&err),
        (
            "etc/app.conf",
            &Problem::Mode {
                expected: 0o644,
                found: 0o666
            },
            0
        )
    );
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();

    fs::write(&conf, b"listen = 80\n").unwrap();
    let err = fx.refused("w");
    assert_eq!(
        mismatch(&err),
        (
            "etc/app.conf",
            &Problem::Size {
                expected: 14,
                found: 12
            },
            0
        )
    );

    fs::remove_file(&conf).unwrap();
    let err = fx.store.prepare_rootfs(&fx.record.digest, "w").unwrap_err();
    match &err {
        RootfsError::Build { path, .. } => assert_eq!(path, "etc/app.conf"),
        other => panic!("unexpected error: {}", error_chain(other)),
    }
    assert!(error_chain(&err).contains("/etc/app.conf"));
    fx.store.remove_rootfs("w").unwrap();
}

#[tokio::test]
async fn changes_to_a_prepared_tree_are_found_again() {
    let fx = fixture().await;
    let rootfs = fx.store.prepare_rootfs(&fx.record.digest, "w").unwrap();
    let report = fx.store.verify_rootfs("w").unwrap();
    assert_eq!(report.files, fx.record.tree.files().count() as u64);
    assert_eq!(report.entries, fx.record.tree.len() as u64);

    let lower = rootfs.lower_dir();
    fs::remove_file(lower.join("usr/bin/app-link")).unwrap();
    std::os::unix::fs::symlink("/tmp/elsewhere", lower.join("usr/bin/app-link")).unwrap();
    fs::write(lower.join("etc/extra"), b"planted").unwrap();
    let err = fx.store.verify_rootfs("w").unwrap_err();
    assert_eq!(mismatch(&err), ("etc/extra", &Problem::Unexpected, 1));

    fs::remove_file(lower.join("etc/extra")).unwrap();
    let err = fx.store.verify_rootfs("w").unwrap_err();
    assert_eq!(
        mismatch(&err),
        (
            "usr/bin/app-link",
            &Problem::LinkTarget {
                expected: "app".into(),
                found: "/tmp/elsewhere".into()
            },
            0
        )
    );

    fs::remove_file(lower.join("usr/bin/app-link")).unwrap();
    let err = fx.store.verify_rootfs("w").unwrap_err();
    assert_eq!(mismatch(&err), ("usr/bin/app-link", &Problem::Missing, 0));
    fx.store.remove_rootfs("w").unwrap();
}
