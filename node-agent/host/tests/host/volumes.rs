//! Volumes: creation, size limit, growth, refusal to shrink, removal, rediscovery.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zos_host::volume::{VolumeError, Volumes};

use crate::support::*;

const MIB: u64 = 1 << 20;

fn mounted_at(path: &Path) -> Option<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    text.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (Path::new(f[4]) == path).then(|| {
            let (_, right) = l.split_once(" - ").expect("separator");
            right.split(' ').nth(1).expect("source").to_string()
        })
    })
}

fn loops_of(image: &Path) -> Vec<String> {
    fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .filter_map(|e| {
            let f = e.path().join("loop/backing_file");
            let b = fs::read_to_string(f).ok()?;
            b.trim()
                .starts_with(&*image.to_string_lossy())
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

fn fs_size(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).expect("statvfs");
    st.blocks() * st.fragment_size()
}

/// Writes `bytes` of zeros to `path`; the error if the filesystem is full.
fn fill(path: &Path, bytes: u64) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    let chunk = vec![0u8; MIB as usize];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB);
        f.write_all(&chunk[..n as usize])?;
        left -= n;
    }
    f.sync_all()
}

#[test]
fn ensure_is_idempotent_and_the_size_is_a_limit() {
    let host = Host::new();
    let id = host.id("vol");
    let image = host.volume_root.join(format!("{}.img", id.container_id()));
    let p1 = host.volumes.ensure(&id, 16 * MIB).expect("ensure");
    let p2 = host.volumes.ensure(&id, 16 * MIB).expect("ensure again");
    assert_eq!(p1, p2);
    assert_eq!(p1, host.volumes.path(&id));
    let dev = mounted_at(&p1).expect("mounted");
    assert_eq!(
        loops_of(&image),
        vec![dev.trim_start_matches("/dev/").to_string()]
    );
    assert_eq!(fs::metadata(&image).unwrap().len(), 16 * MIB);

    fill(&p1.join("small"), MIB).expect("1 MiB fits");
    let used = host.volumes.used_bytes(&id).expect("used");
    assert!(used >= MIB, "{used}");
    let err = fill(&p1.join("big"), 20 * MIB).expect_err("more than the size");
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC), "{err}");

    // Found again from the files alone.
    let again = Volumes::new(host.volume_root.clone()).expect("volumes");
    assert_eq!(again.list().unwrap(), vec![id.clone()]);
    assert!(again.used_bytes(&id).unwrap() >= MIB);
}

#[test]
fn grows_online_and_refuses_to_shrink() {
    let host = Host::new();
    let id = host.id("grow");
    let p = host.volumes.ensure(&id, 16 * MIB).expect("ensure");
    fs::write(p.join("keep"), b"kept").unwrap();
    let before = fs_size(&p);

    host.volumes.ensure(&id, 48 * MIB).expect("grow");
    let after = fs_size(&p);
    assert!(after > before + 24 * MIB, "{before} -> {after}");
    assert_eq!(fs::read(p.join("keep")).unwrap(), b"kept");
    fill(&p.join("fits-now"), 30 * MIB).expect("30 MiB fit after growing");

    let err = host.volumes.ensure(&id, 32 * MIB).expect_err("shrink");
    assert!(
        matches!(err, VolumeError::Shrink { current, requested, .. } if current == 48 * MIB && requested == 32 * MIB),
        "{err:?}"
    );
    assert!(err.to_string().contains(&id.container_id()), "{err}");
    assert!(mounted_at(&p).is_some());
    assert_eq!(fs::read(p.join("keep")).unwrap(), b"kept");
}

#[test]
fn remove_leaves_nothing_and_refuses_while_busy() {
    let host = Host::new();
    let id = host.id("gone");
    let image = host.volume_root.join(format!("{}.img", id.container_id()));
    let p = host.volumes.ensure(&id, 8 * MIB).expect("ensure");

    let open = fs::File::create(p.join("open")).unwrap();
    let err = host.volumes.remove(&id).expect_err("busy");
    assert!(matches!(err, VolumeError::Busy { .. }), "{err:?}");
    assert!(
        mounted_at(&p).is_some(),
        "still mounted after a refused remove"
    );
    drop(open);

    host.volumes.remove(&id).expect("remove");
    assert_eq!(mounted_at(&p), None);
    assert_eq!(loops_of(&image), Vec::<String>::new());
    assert!(!image.exists() && !p.exists());
    let left: Vec<PathBuf> = fs::read_dir(&host.volume_root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new());
    assert_eq!(host.volumes.list().unwrap(), Vec::new());
    host.volumes.remove(&id).expect("remove again");
    assert!(matches!(
        host.volumes.used_bytes(&id),
        Err(VolumeError::NotMounted { .. })
    ));
}

#[test]
fn remounts_after_an_unmount() {
    let host = Host::new();
    let id = host.id("remount");
    let p = host.volumes.ensure(&id, 8 * MIB).expect("ensure");
    fs::write(p.join("f"), b"x").unwrap();
    // As after a reboot or a crash: the image is there, nothing mounted.
    nix::mount::umount(&p).expect("umount");
    let image = host.volume_root.join(format!("{}.img", id.container_id()));
    for dev in loops_of(&image) {
        std::process::Command::new("losetup")
            .args(["-d", &format!("/dev/{dev}")])
            .status()
            .unwrap();
    }
    let p2 = host.volumes.ensure(&id, 8 * MIB).expect("ensure remounts");
    assert_eq!(fs::read(p2.join("f")).unwrap(), b"x");
    assert!(matches!(
        host.volumes.ensure(&id, 1024),
        Err(VolumeError::TooSmall { .. })
    ));
}
