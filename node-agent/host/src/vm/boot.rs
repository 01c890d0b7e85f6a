//! What a VM boots: an uncompressed kernel (PVH entry, for QEMU's microvm machine) and an
//! initramfs with the drivers to mount the root filesystem the node shares over virtiofs.
//!
//! Both are made once from a distribution kernel package unpacked under a directory
//! (`boot/vmlinuz-<release>` and `lib/modules/<release>/`), and cached under the VMs' directory
//! by the kernel's digest. The default, Debian's cloud kernel, has every virtio driver and
//! virtiofs as modules, so the initramfs carries them (with what they depend on, from each
//! module's own `depends=`: the package ships no `modules.dep`), a static busybox and `init`.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

/// Modules the initramfs loads, in this order after what each depends on: virtio over MMIO
/// (microvm), virtiofs (the root), virtio-blk (disks), and the ACPI power button (so that a
/// guest that listens can power down when the node asks).
pub const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "fuse",
    "virtiofs",
    "virtio_blk",
    "button",
    "evdev",
    "failover",
    "net_failover",
    "virtio_net",
];

/// The largest kernel this node unpacks (Debian's cloud kernel is 53 MB unpacked).
pub const MAX_KERNEL_BYTES: usize = 256 << 20;
/// The largest file of a kernel image this node reads (the kernel file, a module).
pub const MAX_KERNEL_FILE_BYTES: u64 = 128 << 20;

/// The initramfs's `/init`.
const INIT: &str = include_str!("init.sh");

/// Why the boot files could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel package has no kernel (the path is empty for a kernel image).
    #[error("no boot/vmlinuz-<release> in {}", if .0.as_os_str().is_empty() { "the kernel image".to_string() } else { .0.display().to_string() })]
    NoKernel(PathBuf),
    /// A file of a kernel image could not be read from the image store.
    #[error("kernel image: {0}")]
    Store(String),
    /// A file of a kernel image is over what this node reads.
    #[error("{0}")]
    TooLarge(String),
    /// The kernel file is neither an ELF image nor a bzImage this node can unpack.
    #[error("{path}: {why}")]
    BadKernel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A module the initramfs needs is not in the package (nor built in).
    #[error("kernel module {0} is neither in lib/modules nor built into the kernel")]
    NoModule(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BootError + '_ {
    move |source| BootError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A kernel and the initramfs that goes with it, ready for QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The uncompressed kernel (ELF with a PVH entry).
    pub kernel: PathBuf,
    /// The initramfs (an uncompressed cpio archive).
    pub initramfs: PathBuf,
}

/// Where a kernel package's files are read from: a directory it was unpacked into
/// ([`PackageDir`]), or an image in the node's image store (its files checked as they are read).
pub trait KernelFiles {
    /// Every regular file's path, relative to the package's root (`boot/vmlinuz-6.1.0-…`).
    fn paths(&self) -> Result<Vec<String>, BootError>;
    /// A file's content.
    fn read(&self, path: &str) -> Result<Vec<u8>, BootError>;
}

/// A kernel package unpacked under a directory.
pub struct PackageDir(pub PathBuf);

impl KernelFiles for PackageDir {
    fn paths(&self) -> Result<Vec<String>, BootError> {
        let mut out = Vec::new();
        let mut stack = vec![self.0.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir)(e)),
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    if let Ok(rel) = path.strip_prefix(&self.0) {
                        out.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
        }
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, BootError> {
        let full = self.0.join(path);
        fs::read(&full).map_err(io_err(&full))
    }
}

/// Makes (or finds, when made before) the boot files of the kernel package unpacked under
/// `package`, in `cache`. `busybox` is a static busybox for the initramfs.
pub fn prepare(package: &Path, busybox: &Path, cache: &Path) -> Result<BootFiles, BootError> {
    prepare_from(&PackageDir(package.to_path_buf()), busybox, cache).map_err(|e| match e {
        BootError::NoKernel(_) => BootError::NoKernel(package.to_path_buf()),
        other => other,
    })
}

/// [`prepare`] from any [`KernelFiles`]: the newest `boot/vmlinuz-<release>` and the modules
/// under `lib/modules/<release>/` (or `usr/lib/modules/<release>/`).
pub fn prepare_from(
    package: &dyn KernelFiles,
    busybox: &Path,
    cache: &Path,
) -> Result<BootFiles, BootError> {
    let paths = package.paths()?;
    let vmlinuz = paths
        .iter()
        .filter(|p| {
            p.strip_prefix("boot/vmlinuz-")
                .is_some_and(|r| !r.is_empty() && !r.contains('/'))
        })
        .max()
        .ok_or_else(|| BootError::NoKernel(PathBuf::new()))?
        .clone();
    let release = vmlinuz["boot/vmlinuz-".len()..].to_string();
    let compressed = package.read(&vmlinuz)?;
    let busybox_bytes = fs::read(busybox).map_err(io_err(busybox))?;
    let module_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| format!("{d}/{release}/"))
        .find(|d| paths.iter().any(|p| p.starts_with(d.as_str())))
        .unwrap_or_else(|| format!("lib/modules/{release}/"));
    let mut modules: Vec<&String> = paths
        .iter()
        .filter(|p| p.starts_with(module_dir.as_str()))
        .collect();
    modules.sort();
    // Named by what went in, so that a new kernel, busybox or init makes new files.
    let mut hasher = blake3::Hasher::new();
    hasher.update(&compressed);
    hasher.update(&busybox_bytes);
    hasher.update(INIT.as_bytes());
    for m in &modules {
        hasher.update(m.as_bytes());
    }
    let key = hasher.finalize().to_hex()[..16].to_string();
    let dir = cache.join(format!("{release}-{key}"));
    let files = BootFiles {
        kernel: dir.join("vmlinux"),
        initramfs: dir.join("initramfs.cpio"),
    };
    if files.kernel.is_file() && files.initramfs.is_file() {
        // Used again: the newest in the cache's eyes ([`prune_cache`]).
        let _ = fs::File::open(&dir).and_then(|d| d.set_modified(std::time::SystemTime::now()));
        return Ok(files);
    }
    let tmp = cache.join(format!(".{release}-{key}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let vmlinux = unpack_kernel(&compressed).map_err(|why| BootError::BadKernel {
        path: PathBuf::from(&vmlinuz),
        why,
    })?;
    fs::write(tmp.join("vmlinux"), vmlinux).map_err(io_err(&tmp))?;
    let order = resolve_modules(package, &module_dir, &modules, MODULES)?;
    let cpio = initramfs(package, &busybox_bytes, &order)?;
    fs::write(tmp.join("initramfs.cpio"), cpio).map_err(io_err(&tmp))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    Ok(files)
}

/// Keeps at most `keep` kernels in `cache` (the most recently made or used, by modification
/// time), and always `current`. A VM that runs has its kernel in memory already; one that starts
/// again after its kernel was evicted has it made again.
pub fn prune_cache(cache: &Path, keep: usize, current: &Path) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| p != current)
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep.saturating_sub(1));
    for (_, dir) in dirs.into_iter().take(excess) {
        if let Err(e) = fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "kernel cache not pruned");
        }
    }
}

/// The uncompressed kernel inside `image`: `image` itself when it is already an ELF file, else
/// the payload of a bzImage (LZ4 legacy frames or gzip).
pub fn unpack_kernel(image: &[u8]) -> Result<Vec<u8>, String> {
    if image.starts_with(b"\x7fELF") {
        return Ok(image.to_vec());
    }
    // The bzImage header (Documentation/arch/x86/boot.rst): "HdrS" at 0x202, setup_sects at
    // 0x1f1, payload_offset and payload_length at 0x248 and 0x24c, from the start of the
    // protected-mode code at (setup_sects + 1) * 512.
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err("not an ELF kernel nor a bzImage".into());
    }
    let u32_at = |at: usize| -> Result<usize, String> {
        image
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "truncated bzImage header".to_string())
    };
    let setup_sects = match image.get(0x1f1) {
        Some(0) => 4,
        Some(n) => usize::from(*n),
        None => return Err("truncated bzImage header".into()),
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    let length = u32_at(0x24c)?;
    let payload = image
        .get(start..start + length)
        .ok_or("the bzImage payload is out of the file")?;
    // The build appends the uncompressed size (u32 LE): the decoders must not read it as data.
    let (data, size) = payload
        .split_at_checked(payload.len().saturating_sub(4))
        .ok_or("empty payload")?;
    let size = u32::from_le_bytes(size.try_into().map_err(|_| "empty payload")?) as usize;
    // A kernel image can come from a tenant: what it announces, and what it unpacks to, are
    // bounded before anything is allocated.
    if size > MAX_KERNEL_BYTES {
        return Err(format!(
            "the kernel announces {size} bytes unpacked, over this node's {MAX_KERNEL_BYTES}"
        ));
    }
    let mut out = Vec::with_capacity(size);
    let limit = size as u64 + 1;
    if data.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        lz4_flex::frame::FrameDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| format!("LZ4 payload: {e}"))?;
    } else if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip payload: {e}"))?;
    } else {
        return Err(format!(
            "the payload is compressed with a method this node does not unpack (magic {:02x?}); \
             use an LZ4 or gzip kernel, or an uncompressed vmlinux",
            &data[..data.len().min(4)]
        ));
    }
    if out.len() != size || !out.starts_with(b"\x7fELF") {
        return Err(format!(
            "the unpacked kernel is not the ELF image of {size} bytes its header announces"
        ));
    }
    Ok(out)
}

/// The module files (paths in `package`) for `wanted` and what they depend on, each after its
/// dependencies. A module built into the kernel (`modules.builtin`) needs no file.
fn resolve_modules(
    package: &dyn KernelFiles,
    module_dir: &str,
    modules: &[&String],
    wanted: &[&str],
) -> Result<Vec<(String, String)>, BootError> {
    let mut files = BTreeMap::new();
    for path in modules {
        if let Some(stem) = path.rsplit('/').next().and_then(|n| n.strip_suffix(".ko")) {
            files.insert(stem.replace('-', "_"), (*path).clone());
        }
    }
    let builtin_path = format!("{module_dir}modules.builtin");
    let builtin: Vec<String> = if modules.iter().any(|p| **p == builtin_path) {
        String::from_utf8_lossy(&package.read(&builtin_path)?)
            .lines()
            .filter_map(|l| l.rsplit('/').next())
            .map(|f| f.trim_end_matches(".ko").replace('-', "_"))
            .collect()
    } else {
        Vec::new()
    };
    let mut order = Vec::new();
    for name in wanted {
        add_module(package, name, &files, &builtin, &mut order, 0)?;
    }
    Ok(order)
}

fn add_module(
    package: &dyn KernelFiles,
    name: &str,
    files: &BTreeMap<String, String>,
    builtin: &[String],
    order: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), BootError> {
    if order.iter().any(|(n, _)| n == name) || builtin.iter().any(|b| b == name) {
        return Ok(());
    }
    let path = files
        .get(name)
        .ok_or_else(|| BootError::NoModule(name.to_string()))?;
    if depth > 32 {
        return Err(BootError::NoModule(format!("{name} (dependency cycle)")));
    }
    for dep in module_depends(&package.read(path)?) {
        add_module(package, &dep, files, builtin, order, depth + 1)?;
    }
    order.push((name.to_string(), path.clone()));
    Ok(())
}

/// The `depends=` of a module's `.modinfo`.
fn module_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &ko[at + KEY.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
}

/// The initramfs: busybox, the modules and the order to load them in, and `/init`.
fn initramfs(
    package: &dyn KernelFiles,
    busybox: &[u8],
    modules: &[(String, String)],
) -> Result<Vec<u8>, BootError> {
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "proc", "sys", "newroot", "modules"] {
        cpio.dir(dir);
    }
    cpio.file("bin/busybox", 0o755, busybox);
    cpio.symlink("bin/sh", "busybox");
    let mut order = String::new();
    for (name, path) in modules {
        cpio.file(&format!("modules/{name}.ko"), 0o644, &package.read(path)?);
        order.push_str(name);
        order.push('\n');
    }
    cpio.file("modules/order", 0o644, order.as_bytes());
    cpio.file("init", 0o755, INIT.as_bytes());
    Ok(cpio.finish())
}

/// A `newc` cpio archive, as the kernel unpacks into its initial root (several archives one
/// after the other are unpacked in turn: a VM's own configuration is appended this way).
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// A directory (mode 0755).
    pub fn dir(&mut self, path: &str) {
        self.entry(path, 0o040755, b"");
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, 0o100000 | (mode & 0o7777), data);
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, 0o120777, target.as_bytes());
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            path.len() + 1,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(path.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_are_read_from_modinfo() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0";
        assert_eq!(module_depends(ko), ["virtio", "virtio_ring"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
        assert!(module_depends(b"nothing").is_empty());
    }

    #[test]
    fn a_cpio_entry_is_aligned_and_ends_with_the_trailer() {
        let mut c = Cpio::default();
        c.file("a", 0o644, b"xyz");
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
        // header (110) + "a\0" padded to 112, then "xyz" padded to 116.
        assert_eq!(&out[112..115], b"xyz");
    }

    #[test]
    fn a_kernel_that_announces_too_much_is_refused_before_anything_is_allocated() {
        let mut image = vec![0u8; 0x300];
        image[0x1f1] = 1; // setup_sects: the payload starts at 1024 + payload_offset
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
        let payload: Vec<u8> = [0x02u8, 0x21, 0x4c, 0x18]
            .into_iter()
            .chain((u32::MAX).to_le_bytes())
            .collect();
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.resize(1024, 0);
        image.extend(&payload);
        let err = unpack_kernel(&image).unwrap_err();
        assert!(err.contains("over this node's"), "{err}");
    }

    #[test]
    fn the_kernel_cache_keeps_the_newest_and_the_current_one() {
        let cache = tempfile::tempdir().unwrap();
        let base = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
        let mut dirs = Vec::new();
        for i in 0..6u64 {
            let d = cache.path().join(format!("k{i}"));
            fs::create_dir(&d).unwrap();
            fs::write(d.join("vmlinux"), b"x").unwrap();
            fs::File::open(&d)
                .unwrap()
                .set_modified(base + std::time::Duration::from_secs(i * 10))
                .unwrap();
            dirs.push(d);
        }
        // The oldest is the one in use right now.
        prune_cache(cache.path(), 4, &dirs[0]);
        let mut left: Vec<String> = fs::read_dir(cache.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["k0", "k3", "k4", "k5"]);
    }

    #[test]
    fn an_elf_kernel_is_taken_as_it_is_and_garbage_is_refused() {
        assert_eq!(unpack_kernel(b"\x7fELFabc").unwrap(), b"\x7fELFabc");
        assert!(unpack_kernel(&[0u8; 1024])
            .unwrap_err()
            .contains("not an ELF kernel nor a bzImage"));
    }
}
