//! Storage and verification figures for sets of related images, against a real registry.
//!
//! Two sets, every image a single layer of its own (so images share files but no layer):
//! - `busybox`: a busybox base tree (`/bin/busybox`, applet symlinks, `/etc`) with different
//!   extra files per image;
//! - `rootfs`: larger synthetic root filesystems (~40 MB each) built from one pool of package
//!   files, each image leaving out a different 5%, carrying updated versions of 2% and its own
//!   application files.
//!
//! For each set: bytes pushed to the registry (compressed blobs), bytes a layer-level store keeps
//! (every layer unpacked in full), bytes this store keeps, and the ratio; then the time to verify
//! an image at launch, per 100 MB. Run with `cargo bench --bench dedup` (as root).

#[path = "../tests/image_store/support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{push, synthetic, Registry, TestStore, Tree};
use zos_image_store::push::{ManifestFormat, PushedImage};
use zos_image_store::Compression;

const MB: f64 = 1e6;

struct SetFigures {
    name: &'static str,
    images: usize,
    pushed: u64,
    layer_level: u64,
    ours: u64,
    contents: u64,
    objects: u64,
    pull: Duration,
}

/// An extra file: path, length, text (compressible) or binary.
type Extra = (&'static str, usize, bool);

fn busybox_set() -> Vec<(String, Tree)> {
    let extras: [(&str, &[Extra]); 5] = [
        ("bb-plain", &[]),
        (
            "bb-web",
            &[
                ("srv/www/index.html", 40_000, true),
                ("srv/www/app.js", 300_000, true),
                ("usr/sbin/httpd", 600_000, false),
            ],
        ),
        (
            "bb-db",
            &[
                ("var/lib/db/base.dat", 1_500_000, false),
                ("usr/bin/dbd", 900_000, false),
                ("etc/db.conf", 3_000, true),
            ],
        ),
        (
            "bb-tools",
            &[
                ("usr/bin/jq", 400_000, false),
                ("usr/bin/curl", 450_000, false),
                ("usr/lib/libssl.so", 700_000, false),
            ],
        ),
        (
            "bb-app",
            &[
                ("app/server", 1_200_000, false),
                ("app/config.toml", 2_000, true),
                ("app/static/bundle.js", 500_000, true),
            ],
        ),
    ];
    extras
        .into_iter()
        .map(|(name, files)| {
            let tree = Tree::new();
            tree.busybox_base();
            for (path, len, text) in files {
                tree.file(
                    path,
                    &synthetic(&format!("{name}/{path}"), *len, *text),
                    if *text { 0o644 } else { 0o755 },
                );
            }
            (name.to_owned(), tree)
        })
        .collect()
}

fn rootfs_set() -> Vec<(String, Tree)> {
    const POOL: usize = 1000;
    (0..3)
        .map(|k| {
            let tree = Tree::new();
            tree.busybox_base();
            for i in 0..POOL {
                if (i + k) % 20 == 0 {
                    continue;
                }
                let h = blake3::hash(format!("size {i}").as_bytes());
                let mut len = 4096
                    + (u32::from_le_bytes(h.as_bytes()[..4].try_into().unwrap()) % 57_344) as usize;
                if i % 100 == 7 {
                    len += 1 << 20;
                }
                let text = i % 3 != 0;
                let updated = i % 50 == k;
                let seed = if updated {
                    format!("pool {i} v{k}")
                } else {
                    format!("pool {i}")
                };
                let path = format!(
                    "usr/lib/pkg{:02}/file{i:04}{}",
                    i % 40,
                    if text { ".py" } else { ".so" }
                );
                tree.file(
                    &path,
                    &synthetic(&seed, len, text),
                    if text { 0o644 } else { 0o755 },
                );
            }
            for j in 0..40 {
                tree.file(
                    &format!("opt/app{k}/part{j:02}"),
                    &synthetic(&format!("app {k} {j}"), 64_000, j % 2 == 0),
                    0o644,
                );
            }
            tree.file(
                "etc/os-release",
                format!("NAME=zos\nVERSION_ID=1.{k}\n").as_bytes(),
                0o644,
            );
            (format!("rootfs-{k}"), tree)
        })
        .collect()
}

async fn run_set(
    registry: &Registry,
    name: &'static str,
    images: Vec<(String, Tree)>,
) -> (SetFigures, TestStore, Vec<PushedImage>) {
    let mut pushed = Vec::new();
    for (repo, tree) in &images {
        pushed.push(
            push(
                registry,
                repo,
                &[tree.path()],
                Compression::Gzip,
                ManifestFormat::Oci,
            )
            .await,
        );
    }
    drop(images);
    let store = TestStore::new();
    let started = Instant::now();
    let mut layer_level = 0;
    for image in &pushed {
        let record = store.pull(&image.reference).await.expect("pull failed");
        layer_level += record.layers.iter().map(|l| l.file_bytes).sum::<u64>();
    }
    let pull = started.elapsed();
    let stats = store.stats().unwrap();
    let figures = SetFigures {
        name,
        images: pushed.len(),
        pushed: pushed.iter().map(|p| p.uploaded_bytes).sum(),
        layer_level,
        ours: stats.bytes,
        contents: stats.contents,
        objects: stats.objects,
        pull,
    };
    (figures, store, pushed)
}

/// Median time of a few verifications of a prepared rootfs.
fn verify_figures(store: &TestStore, image: &PushedImage, workload: &str) -> (u64, u64, Duration) {
    store
        .prepare_rootfs(image.digest(), workload)
        .expect("prepare_rootfs failed");
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..5 {
        let started = Instant::now();
        report = Some(store.verify_rootfs(workload).expect("verification failed"));
        times.push(started.elapsed());
    }
    store.remove_rootfs(workload).unwrap();
    times.sort();
    let report = report.unwrap();
    (report.files, report.bytes, times[times.len() / 2])
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let registry = Registry::start();
        let (bb, bb_store, bb_pushed) = run_set(&registry, "busybox", busybox_set()).await;
        let (rf, rf_store, rf_pushed) = run_set(&registry, "rootfs", rootfs_set()).await;

        println!("sizes in MB (10^6 bytes); every image is one layer of its own, gzip");
        println!(
            "{:<8} {:>6} {:>10} {:>12} {:>10} {:>7} {:>9} {:>8} {:>8}",
            "set",
            "images",
            "pushed",
            "layer-store",
            "our-store",
            "ratio",
            "contents",
            "objects",
            "pull s"
        );
        let mut total = SetFigures {
            name: "total",
            images: 0,
            pushed: 0,
            layer_level: 0,
            ours: 0,
            contents: 0,
            objects: 0,
            pull: Duration::ZERO,
        };
        for f in [&bb, &rf] {
            total.images += f.images;
            total.pushed += f.pushed;
            total.layer_level += f.layer_level;
            total.ours += f.ours;
            total.contents += f.contents;
            total.objects += f.objects;
            total.pull += f.pull;
        }
        for f in [&bb, &rf, &total] {
            println!(
                "{:<8} {:>6} {:>10.1} {:>12.1} {:>10.1} {:>6.2}x {:>9} {:>8} {:>8.2}",
                f.name,
                f.images,
                f.pushed as f64 / MB,
                f.layer_level as f64 / MB,
                f.ours as f64 / MB,
                f.layer_level as f64 / f.ours as f64,
                f.contents,
                f.objects,
                f.pull.as_secs_f64()
            );
        }

        println!(
            "verify at launch (median of 5, page cache warm, {} threads):",
            rayon::current_num_threads()
        );
        for (store, image, label) in [
            (&bb_store, &bb_pushed[4], "bb-app"),
            (&rf_store, &rf_pushed[0], "rootfs-0"),
        ] {
            let (files, bytes, time) = verify_figures(store, image, "bench");
            println!(
                "  {label:<9} {files:>5} files {:>6.1} MB in {:>7.1} ms = {:>6.1} ms per 100 MB",
                bytes as f64 / MB,
                time.as_secs_f64() * 1e3,
                time.as_secs_f64() * 1e3 * (100.0 * MB) / bytes as f64
            );
        }
    });
}
