//! Fixtures: a state root per test, a busybox root filesystem, unique workload ids, polling.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zos_host::container::{BindMount, ContainerSpec, Containers, ShimCommand};
use zos_host::volume::Volumes;
use zos_host::WorkloadId;

/// Everything one test uses; dropping it removes every container and volume it made.
pub struct Host {
    pub containers: Containers,
    pub volumes: Volumes,
    pub rootfs: PathBuf,
    pub state_root: PathBuf,
    pub volume_root: PathBuf,
    contract: u64,
    _dir: tempfile::TempDir,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Host {
    pub fn new() -> Host {
        require_host();
        let dir = tempfile::Builder::new()
            .prefix("zos-host-test-")
            .tempdir()
            .expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let state_root = dir.path().join("state");
        let volume_root = dir.path().join("volumes");
        let containers = Containers::new(state_root.clone(), shim()).expect("containers");
        let volumes = Volumes::new(volume_root.clone()).expect("volumes");
        // Unique across parallel tests and across runs (cgroups and loop devices are global).
        let contract = u64::from(std::process::id()) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed);
        Host {
            containers,
            volumes,
            rootfs,
            state_root: fs::canonicalize(&state_root).expect("state root"),
            volume_root: fs::canonicalize(&volume_root).expect("volume root"),
            contract,
            _dir: dir,
        }
    }

    pub fn id(&self, name: &str) -> WorkloadId {
        WorkloadId::new(self.contract, name).expect("valid id")
    }

    pub fn spec(&self, name: &str, script: &str) -> ContainerSpec {
        ContainerSpec {
            id: self.id(name),
            rootfs: self.rootfs.clone(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            workdir: None,
            cpu_millis: 0,
            memory: 0,
            mounts: Vec::<BindMount>::new(),
            labels: BTreeMap::new(),
            network_namespace: None,
        }
    }

    pub fn workload_dir(&self, id: &WorkloadId) -> PathBuf {
        self.state_root.join("workloads").join(id.container_id())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for id in self.containers.list().unwrap_or_default() {
            if let Err(e) = self.containers.remove(&id, Duration::ZERO) {
                eprintln!("cleanup: {e}");
            }
        }
        for id in self.volumes.list().unwrap_or_default() {
            if let Err(e) = self.volumes.remove(&id) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

pub fn shim() -> ShimCommand {
    ShimCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_zos-host-shim")),
        args: Vec::new(),
    }
}

/// Fails (never skips) when this host cannot run the tests.
pub fn require_host() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (containers, cgroups, loop devices)"
    );
    assert!(
        Path::new("/bin/busybox").is_file(),
        "these tests need a static /bin/busybox (Debian: busybox-static)"
    );
    for tool in ["mkfs.ext4", "losetup", "resize2fs", "e2fsck"] {
        assert!(
            std::process::Command::new(tool).arg("-V").output().is_ok(),
            "these tests need {tool} (e2fsprogs, util-linux)"
        );
    }
}

/// A root filesystem with busybox and the applets the tests use.
pub fn busybox_rootfs(root: &Path) {
    for d in ["bin", "proc", "dev", "sys", "tmp", "data", "etc"] {
        fs::create_dir_all(root.join(d)).expect("rootfs dir");
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "sleep", "cat", "echo", "dd", "ls", "true", "kill", "head", "mkdir", "ps", "yes",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
}

/// Polls `cond` until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The process exists and is not a zombie.
pub fn is_live(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        !matches!(state, Some(Some('Z' | 'X')))
    })
}

/// Every cgroup directory of the container left under any hierarchy.
pub fn cgroup_dirs(container_id: &str) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for h in fs::read_dir("/sys/fs/cgroup")
        .expect("cgroup root")
        .flatten()
    {
        for p in [
            h.path().join("zos").join(container_id),
            h.path().join(container_id),
        ] {
            if p.exists() {
                left.push(p);
            }
        }
    }
    let v2 = Path::new("/sys/fs/cgroup/zos").join(container_id);
    if v2.exists() {
        left.push(v2);
    }
    left
}

/// The container's cgroup directory of a v1 controller.
pub fn v1_cgroup(controller: &str, container_id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("zos")
        .join(container_id)
}

pub fn read_trim(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Asserts nothing of the container is left on the host.
pub fn assert_gone(host: &Host, id: &WorkloadId, pid: Option<i32>) {
    let cid = id.container_id();
    if let Some(pid) = pid {
        assert!(!is_live(pid), "process {pid} of {cid} still runs");
    }
    assert_eq!(
        cgroup_dirs(&cid),
        Vec::<PathBuf>::new(),
        "cgroup dirs of {cid} left"
    );
    assert!(
        !host.workload_dir(id).exists(),
        "workload dir of {cid} left"
    );
    assert!(
        !host.state_root.join("runtime").join(&cid).exists(),
        "libcontainer state of {cid} left"
    );
    assert!(!host.containers.list().expect("list").contains(id));
    assert_eq!(host.containers.status(id).expect("status"), None);
}
