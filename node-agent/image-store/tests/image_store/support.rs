//! Test support: a real OCI registry (`zos_testkit::registry`), and builders for layer
//! directories. Shared with `benches/dedup.rs`.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use zos_image_store::push::{push_dirs, ManifestFormat, PushOptions, PushedImage};
use zos_image_store::{Compression, Digest, Store};

pub use zos_testkit::registry::Registry;

/// Polls `cond` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the image-store tests need of the registry beyond starting it.
pub trait RegistryExt {
    /// Where the registry keeps a blob (manifests are blobs too), for tampering tests.
    fn blob_path(&self, digest: &Digest) -> PathBuf;
    /// PUTs a manifest (for image indexes, which `push` does not build); returns its digest.
    fn put_manifest(&self, repository: &str, tag: &str, media_type: &str, body: &[u8]) -> Digest;
}

impl RegistryExt for Registry {
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_path_hex(digest.hex())
    }

    fn put_manifest(&self, repository: &str, tag: &str, media_type: &str, body: &[u8]) -> Digest {
        self.put_manifest_raw(repository, tag, media_type, body);
        Digest::of(body)
    }
}

/// Pushes `dirs` (one layer each) as `repository:latest`.
pub async fn push(
    registry: &Registry,
    repository: &str,
    dirs: &[&Path],
    compression: Compression,
    format: ManifestFormat,
) -> PushedImage {
    let options = PushOptions {
        compression,
        format,
        ..PushOptions::new(registry.addr.clone(), repository)
    };
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    push_dirs(&dirs, &options)
        .await
        .unwrap_or_else(|e| panic!("push of {repository} failed: {}", error_chain(&e)))
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// A directory tree to push as a layer.
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn parent_of(&self, rel: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    }

    pub fn file(&self, rel: &str, content: &[u8], mode: u32) -> &Self {
        self.file_owned(rel, content, mode, 0, 0)
    }

    pub fn file_owned(&self, rel: &str, content: &[u8], mode: u32, uid: u32, gid: u32) -> &Self {
        let path = self.parent_of(rel);
        fs::write(&path, content).unwrap();
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn dir(&self, rel: &str, mode: u32) -> &Self {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        std::os::unix::fs::symlink(target, self.parent_of(rel)).unwrap();
        self
    }

    pub fn hardlink(&self, rel: &str, existing: &str) -> &Self {
        fs::hard_link(self.dir.path().join(existing), self.parent_of(rel)).unwrap();
        self
    }

    pub fn fifo(&self, rel: &str, mode: u32) -> &Self {
        let path = self.parent_of(rel);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// A whiteout of `rel` (relative to the layer root).
    pub fn whiteout(&self, rel: &str) -> &Self {
        let path = Path::new(rel);
        let name = format!(".wh.{}", path.file_name().unwrap().to_str().unwrap());
        let marker = path.with_file_name(name);
        self.file(marker.to_str().unwrap(), b"", 0o600)
    }

    /// An opaque marker in directory `rel`.
    pub fn opaque(&self, rel: &str) -> &Self {
        self.file(&format!("{rel}/.wh..wh..opq"), b"", 0o600)
    }

    /// `/bin/busybox` with a symlink per applet, `/etc` basics: a busybox base image.
    pub fn busybox_base(&self) -> &Self {
        let busybox = fs::read("/bin/busybox").expect("/bin/busybox (busybox-static) is missing");
        self.dir("bin", 0o755);
        self.file("bin/busybox", &busybox, 0o755);
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines() {
            if applet != "busybox" {
                self.symlink(&format!("bin/{applet}"), "busybox");
            }
        }
        self.file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
        .file("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o640)
        .file("etc/hostname", b"zos\n", 0o644)
        .dir("tmp", 0o1777)
        .dir("root", 0o700)
    }
}

/// Deterministic pseudo-random bytes (BLAKE3 in XOF mode), `text` ones compressible like source
/// files, others like binaries.
pub fn synthetic(seed: &str, len: usize, text: bool) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    if text {
        const WORDS: &[&[u8]] = &[
            b"the ",
            b"image ",
            b"store ",
            b"file ",
            b"content ",
            b"node ",
            b"fn ",
            b"let ",
            b"return ",
            b"struct ",
            b"impl ",
            b"self ",
            b"match ",
            b"Ok(()) ",
            b";\n",
            b"{\n",
        ];
        let mut text = Vec::with_capacity(len);
        let mut i = 0;
        while text.len() < len {
            text.extend_from_slice(WORDS[(out[i % len] & 15) as usize]);
            i += 1;
        }
        text.truncate(len);
        out = text;
    }
    out
}

/// A store in a temporary directory; every rootfs still there is removed on drop, so a failing
/// test does not leave mounts behind.
pub struct TestStore {
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            store: Store::open(dir.path().join("store")).unwrap(),
            _dir: dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.store.root()
    }
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Ok(leases) = self.store.leases() {
            for lease in leases {
                let _ = self.store.remove_rootfs(&lease.workload);
            }
        }
    }
}

/// Every path under `root` with its content hash (files), target (symlinks), mode and owner.
pub fn snapshot(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = fs::symlink_metadata(&path).unwrap();
            let what = if md.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else if md.is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else {
                blake3::hash(&fs::read(&path).unwrap()).to_hex().to_string()
            };
            out.push((
                path.strip_prefix(root).unwrap().display().to_string(),
                format!("{what} {:o} {}:{}", md.mode(), md.uid(), md.gid()),
            ));
        }
    }
    out.sort();
    out
}
