//! Pulling: records, formats, image indexes, and the rootfs built from a pull.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use zos_image_store::push::ManifestFormat;
use zos_image_store::{Compression, ContentHash, EntryKind, ImageReference};

use crate::support::{push, Registry, RegistryExt, TestStore, Tree};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sample_tree(busybox: &[u8]) -> Tree {
    let tree = Tree::new();
    tree.dir("bin", 0o755)
        .file("bin/busybox", busybox, 0o755)
        .hardlink("bin/ash", "bin/busybox")
        .symlink("bin/sh", "busybox")
        .file_owned("etc/shadow", b"root:*:1::::::\n", 0o640, 0, 42)
        .file("usr/bin/su", b"setuid tool", 0o4755)
        .file_owned(
            "home/user/.profile",
            b"export PS1='$ '\n",
            0o600,
            1000,
            1000,
        )
        .dir("home/user", 0o700)
        .file("var/log/empty", b"", 0o644)
        .fifo("run/ctl", 0o620);
    tree
}

#[tokio::test]
async fn pull_records_every_file_and_the_rootfs_shows_it() {
    let registry = Registry::start();
    let busybox = fs::read("/bin/busybox").unwrap();
    let tree = sample_tree(&busybox);
    let pushed = push(
        &registry,
        "base",
        &[tree.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;
    let store = TestStore::new();

    let record = store.pull(&pushed.reference).await.unwrap();
    assert_eq!(record.digest, *pushed.digest());
    assert_eq!(record.manifest_digest, *pushed.digest());
    assert_eq!(record.manifest_media_type, OCI_MANIFEST);
    assert_eq!(record.layers.len(), 1);
    assert_eq!(record.layers[0].blob, pushed.layers[0].blob);
    assert_eq!(record.layers[0].diff_id, pushed.layers[0].diff_id);
    assert_eq!(
        record.config["rootfs"]["diff_ids"][0],
        pushed.layers[0].diff_id.as_str()
    );

    let t = &record.tree;
    let su = t.get("usr/bin/su").unwrap();
    assert_eq!((su.mode, su.uid, su.gid), (0o4755, 0, 0));
    assert_eq!(
        su.kind,
        EntryKind::File {
            size: 11,
            blake3: ContentHash::of(b"setuid tool")
        }
    );
    assert_eq!(t.get("bin/ash"), t.get("bin/busybox"));
    assert_eq!(
        t.get("bin/sh").unwrap().kind,
        EntryKind::Symlink {
            target: "busybox".into()
        }
    );
    let profile = t.get("home/user/.profile").unwrap();
    assert_eq!(
        (profile.mode, profile.uid, profile.gid),
        (0o600, 1000, 1000)
    );
    assert_eq!(t.get("home/user").unwrap().mode, 0o700);
    assert_eq!(t.get("run/ctl").unwrap().kind, EntryKind::Fifo);

    // Each non-empty content once: busybox (ash is a hardlink of it), shadow, su, .profile.
    let stats = store.stats().unwrap();
    assert_eq!((stats.images, stats.contents, stats.objects), (1, 4, 4));
    assert_eq!(stats.bytes, busybox.len() as u64 + 15 + 11 + 16);

    // Pulling again changes nothing.
    assert_eq!(store.pull(&pushed.reference).await.unwrap(), record);
    assert_eq!(store.stats().unwrap(), stats);

    let rootfs = store.prepare_rootfs(&record.digest, "w1").unwrap();
    let merged = rootfs.path();
    assert_eq!(fs::read(merged.join("bin/busybox")).unwrap(), busybox);
    let md = fs::metadata(merged.join("usr/bin/su")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o4755, 0, 0));
    let md = fs::metadata(merged.join("home/user/.profile")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid()),
        (0o600, 1000, 1000)
    );
    let md = fs::metadata(merged.join("etc/shadow")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.gid()), (0o640, 42));
    assert_eq!(
        fs::read_link(merged.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert!(fs::metadata(merged.join("run/ctl"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::metadata(merged.join("var/log/empty")).unwrap().len(), 0);

    // The lower tree is hardlinks into the store: no content copied, hardlinked paths on one inode.
    let lower = rootfs.lower_dir();
    let a = fs::metadata(lower.join("bin/busybox")).unwrap();
    let b = fs::metadata(lower.join("bin/ash")).unwrap();
    let object = store
        .path()
        .join("content")
        .join(blake3::hash(&busybox).to_hex().as_str())
        .join("0755-0-0");
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.ino(), fs::metadata(&object).unwrap().ino());

    // And it runs.
    let out = Command::new("chroot")
        .arg(&merged)
        .args([
            "/bin/sh",
            "-c",
            "echo hello from $(/bin/busybox cut -d: -f1 /etc/shadow)",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from root\n",
        "{out:?}"
    );

    store.remove_rootfs("w1").unwrap();
    assert!(!merged.exists());
    assert!(store.leases().unwrap().is_empty());
    store.remove_rootfs("w1").unwrap();
    assert!(object.exists());
}

#[tokio::test]
async fn oci_and_docker_manifests_with_gzip_zstd_and_plain_layers_give_one_tree() {
    let registry = Registry::start();
    let busybox = fs::read("/bin/busybox").unwrap();
    let tree = sample_tree(&busybox);
    let store = TestStore::new();
    let variants = [
        (
            "oci-gzip",
            Compression::Gzip,
            ManifestFormat::Oci,
            OCI_MANIFEST,
        ),
        (
            "oci-zstd",
            Compression::Zstd,
            ManifestFormat::Oci,
            OCI_MANIFEST,
        ),
        (
            "oci-tar",
            Compression::None,
            ManifestFormat::Oci,
            OCI_MANIFEST,
        ),
        (
            "docker-gzip",
            Compression::Gzip,
            ManifestFormat::Docker,
            DOCKER_MANIFEST,
        ),
        (
            "docker-tar",
            Compression::None,
            ManifestFormat::Docker,
            DOCKER_MANIFEST,
        ),
    ];
    let mut trees = Vec::new();
    for (repo, compression, format, media_type) in variants {
        let pushed = push(&registry, repo, &[tree.path()], compression, format).await;
        let record = store.pull(&pushed.reference).await.unwrap();
        assert_eq!(record.manifest_media_type, media_type, "{repo}");
        trees.push(record.tree);
    }
    assert!(trees.windows(2).all(|w| w[0] == w[1]));
    // Five images, five different layer blobs, the same four contents.
    let stats = store.stats().unwrap();
    assert_eq!((stats.images, stats.contents, stats.objects), (5, 4, 4));
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[tokio::test]
async fn image_index_resolves_to_this_platform() {
    let registry = Registry::start();
    let native = Tree::new();
    native.file("which", b"native", 0o644);
    let foreign = Tree::new();
    foreign.file("which", b"foreign", 0o644);
    let native = push(
        &registry,
        "multi",
        &[native.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;
    let foreign = push(
        &registry,
        "multi",
        &[foreign.path()],
        Compression::Gzip,
        ManifestFormat::Oci,
    )
    .await;
    let other_arch = if host_arch() == "s390x" {
        "arm64"
    } else {
        "s390x"
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": foreign.digest().as_str(), "size": foreign.manifest_size,
             "platform": {"architecture": other_arch, "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": native.digest().as_str(), "size": native.manifest_size,
             "platform": {"architecture": host_arch(), "os": "linux"}},
        ],
    });
    let index_digest = registry.put_manifest(
        "multi",
        "index",
        OCI_INDEX,
        &serde_json::to_vec(&index).unwrap(),
    );

    let store = TestStore::new();
    let reference = ImageReference::new(registry.addr.clone(), "multi", index_digest.clone());
    let record = store.pull(&reference).await.unwrap();
    assert_eq!(record.digest, index_digest);
    assert_eq!(record.manifest_digest, *native.digest());
    assert_eq!(
        record.tree.get("which").unwrap().kind,
        EntryKind::File {
            size: 6,
            blake3: ContentHash::of(b"native")
        }
    );
    assert_eq!(store.images().unwrap(), [index_digest]);
}
