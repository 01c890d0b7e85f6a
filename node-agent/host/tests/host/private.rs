//! A container's state holds its environment with its secrets opened: only root may read it.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zos_host::container::{Containers, RunState};

use crate::support::*;

const SECRET: &str = "s3cr3t-opened-by-the-agent";

/// Every directory and file under `root` that is not private to root, with its mode and owner.
fn not_private(root: &Path) -> Vec<(PathBuf, u32, u32)> {
    let mut bad = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let meta = fs::symlink_metadata(&dir).expect("stat dir");
        if meta.mode() & 0o7777 != 0o700 || meta.uid() != 0 {
            bad.push((dir.clone(), meta.mode() & 0o7777, meta.uid()));
        }
        for entry in fs::read_dir(&dir).expect("read dir").flatten() {
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file() && (meta.mode() & 0o7777 != 0o600 || meta.uid() != 0) {
                bad.push((entry.path(), meta.mode() & 0o7777, meta.uid()));
            }
        }
    }
    bad
}

/// The regular files under `root` that hold `text`.
fn holding(root: &Path, text: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read dir").flatten() {
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file()
                && fs::read(entry.path())
                    .is_ok_and(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_containers_state_is_readable_by_root_only() {
    let host = Host::new();
    let mut running = host.spec("running", "echo token=$TOKEN; sleep 1000");
    running.env = vec![("TOKEN".into(), SECRET.into())];
    let mut exited = host.spec("exited", "echo token=$TOKEN; exit 3");
    exited.env = running.env.clone();
    host.containers.start(&running).expect("start");
    host.containers.start(&exited).expect("start");
    for id in [&running.id, &exited.id] {
        wait_until("the secret in the output", Duration::from_secs(10), || {
            host.containers
                .status(id)
                .unwrap()
                .is_some_and(|s| s.log_tail.contains(SECRET))
        });
    }
    wait_until("the exit", Duration::from_secs(10), || {
        matches!(
            host.containers.status(&exited.id).unwrap().map(|s| s.state),
            Some(RunState::Exited { code: Some(3), .. })
        )
    });

    // The bundle's config and the output hold the secret; nothing is readable but by root.
    let with_secret = holding(&host.state_root, SECRET);
    for id in [&running.id, &exited.id] {
        let dir = host.workload_dir(id);
        for file in ["config.json", "output.log"] {
            assert!(
                with_secret.contains(&dir.join(file)),
                "{file} of {id} holds the secret: {with_secret:?}"
            );
        }
        assert!(host
            .state_root
            .join("runtime")
            .join(id.container_id())
            .is_dir());
    }
    assert!(host.workload_dir(&exited.id).join("exit.json").is_file());
    assert_eq!(not_private(&host.state_root), Vec::new());
}

#[test]
fn a_permissive_state_root_is_made_private() {
    require_host();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("state");
    for d in ["runtime", "workloads"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).expect("chmod");
    Containers::new(root.clone(), shim()).expect("containers");
    assert_eq!(not_private(&root), Vec::new());
}
