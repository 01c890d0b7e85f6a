//! A workload's writes go to its upper dir, never to the store or another workload.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use zos_image_store::push::ManifestFormat;
use zos_image_store::Compression;

use crate::support::{push, snapshot, synthetic, Registry, TestStore, Tree};

#[tokio::test]
async fn workload_writes_never_reach_the_store() {
    let registry = Registry::start();
    let data = synthetic("data", 100_000, true);
    let tree = Tree::new();
    tree.busybox_base()
        .file("srv/data", &data, 0o644)
        .file("srv/log", b"line 1\n", 0o644)
        .file("srv/mode", b"chmod me", 0o644)
        .file("srv/gone", b"delete me", 0o644)
        .file("srv/moved", b"rename me", 0o644);
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
    let content_before = snapshot(&store.path().join("content"));

    let w1 = store.prepare_rootfs(&record.digest, "w1").unwrap();
    let root = w1.path();
    fs::write(root.join("srv/data"), b"overwritten").unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(root.join("srv/log"))
        .unwrap()
        .write_all(b"line 2\n")
        .unwrap();
    fs::set_permissions(root.join("srv/mode"), fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(root.join("srv/mode"), Some(1000), Some(1000)).unwrap();
    fs::remove_file(root.join("srv/gone")).unwrap();
    fs::rename(root.join("srv/moved"), root.join("srv/renamed")).unwrap();
    fs::write(root.join("srv/new"), b"new file").unwrap();
    // Through a shell inside the rootfs too.
    let status = std::process::Command::new("chroot")
        .arg(&root)
        .args([
            "/bin/sh",
            "-c",
            "echo hi >> /etc/passwd && rm /etc/hostname",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    fs::write(root.join("bin/busybox"), b"replaced binary").unwrap();

    assert_eq!(fs::read(root.join("srv/data")).unwrap(), b"overwritten");
    assert_eq!(
        fs::read(w1.upper_dir().join("srv/new")).unwrap(),
        b"new file"
    );

    // The store, and the lower tree that links into it, are untouched.
    assert_eq!(snapshot(&store.path().join("content")), content_before);
    store.verify_rootfs("w1").unwrap();

    // Another workload from the same image sees the image, not w1's writes.
    let w2 = store.prepare_rootfs(&record.digest, "w2").unwrap();
    assert_eq!(fs::read(w2.path().join("srv/data")).unwrap(), data);
    assert_eq!(fs::read(w2.path().join("srv/log")).unwrap(), b"line 1\n");
    assert!(w2.path().join("srv/gone").exists());
    assert!(!w2.path().join("srv/new").exists());
    assert_eq!(
        fs::read(w2.path().join("bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );

    store.remove_rootfs("w1").unwrap();
    store.remove_rootfs("w2").unwrap();
    assert_eq!(snapshot(&store.path().join("content")), content_before);
}
