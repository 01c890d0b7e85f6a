//! A container's writable root filesystem is bounded by its workload's `rootfs_size`, on this
//! host for real: the image store makes the rootfs as the agent does
//! (`Store::prepare_rootfs_sized`), `zos-host` runs the containers through the agent's shim.
//! Needs root, loop devices, overlayfs, `mkfs.ext4`, a static `/bin/busybox` and the test
//! registry (`docker-registry`); a test that cannot run fails with the reason.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use zos_host::{
    container::{ContainerSpec, Containers, RunState, ShimCommand},
    WorkloadId,
};
use zos_image_store::{push, Digest, RootfsError, Store};
use zos_testkit::registry::Registry;

const MIB: u64 = 1 << 20;
/// The smallest root filesystem a deployment may ask for (`limits::CONTAINER_ROOTFS`).
const ROOTFS: u64 = 64 * MIB;

/// A store, containers and a stand-in for the agent's database under one directory; dropping
/// it removes the containers and the root filesystems it made.
struct Node {
    store: Store,
    containers: Containers,
    /// Where the agent keeps its database (`state_dir`), on the same filesystem as the store.
    state_dir: PathBuf,
    root: PathBuf,
    contract: u64,
    _dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        assert!(
            nix_is_root(),
            "these tests need root (containers, loop devices, mounts)"
        );
        assert!(
            Path::new("/bin/busybox").is_file(),
            "these tests need a static /bin/busybox (Debian: busybox-static)"
        );
        let dir = tempfile::Builder::new()
            .prefix("zos-rootfs-test-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let root = fs::canonicalize(dir.path()).expect("resolve");
        let state_dir = root.join("state");
        fs::create_dir_all(&state_dir).expect("state dir");
        let shim = ShimCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_zos-agent")),
            args: vec!["shim".into()],
        };
        Node {
            store: Store::open(root.join("storage/images")).expect("store"),
            containers: Containers::new(root.join("run/containers"), shim).expect("containers"),
            state_dir,
            root,
            // Unique across runs and parallel tests: cgroups and loop devices are global.
            contract: u64::from(std::process::id()),
            _dir: dir,
        }
    }

    fn id(&self, name: &str) -> WorkloadId {
        WorkloadId::new(self.contract, name).expect("valid id")
    }

    /// Starts `sh -c script` on a rootfs of `image` with a writable layer of `size`.
    fn start(&self, name: &str, image: &Digest, size: u64, script: &str) -> WorkloadId {
        let id = self.id(name);
        let rootfs = self
            .store
            .prepare_rootfs_sized(image, &id.container_id(), size)
            .expect("rootfs");
        let spec = ContainerSpec {
            id: id.clone(),
            rootfs: rootfs.path(),
            args: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            workdir: None,
            cpu_millis: 0,
            memory: 0,
            mounts: Vec::new(),
            labels: BTreeMap::new(),
            network_namespace: None,
        };
        let status = self.containers.start(&spec).expect("start");
        assert_eq!(status.state, RunState::Running);
        id
    }

    /// The container's output so far.
    fn output(&self, id: &WorkloadId) -> String {
        self.containers
            .status(id)
            .expect("status")
            .map(|s| s.log_tail)
            .unwrap_or_default()
    }

    fn remove(&self, id: &WorkloadId) {
        self.containers
            .remove(id, Duration::ZERO)
            .expect("remove container");
        self.store
            .remove_rootfs(&id.container_id())
            .expect("remove rootfs");
    }

    /// Mounts under this node's directory.
    fn mounts(&self) -> Vec<String> {
        let root = self.root.to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&root))
            .collect()
    }

    /// Loop devices backed by a file under this node's directory.
    fn loop_devices(&self) -> Vec<String> {
        let root = self.root.to_string_lossy().into_owned();
        fs::read_dir("/sys/block")
            .expect("/sys/block")
            .flatten()
            .filter(|d| {
                fs::read_to_string(d.path().join("loop/backing_file"))
                    .is_ok_and(|b| b.starts_with(&root))
            })
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for id in self.containers.list().unwrap_or_default() {
            let _ = self.containers.remove(&id, Duration::ZERO);
        }
        for lease in self.store.leases().unwrap_or_default() {
            if let Err(e) = self.store.remove_rootfs(&lease.workload) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn nix_is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Polls `cond` until it holds; panics with `what` after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A busybox image in the test registry, pulled into `store`.
fn busybox_image(store: &Store) -> Digest {
    let tree = tempfile::tempdir().expect("tempdir");
    let root = tree.path();
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        fs::create_dir_all(root.join(d)).expect("rootfs dir");
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "dd", "echo", "sleep", "cat", "head", "ls"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    let registry = Registry::start();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let options = push::PushOptions::new(registry.addr.clone(), "zos/busybox");
            let pushed = push::push_dirs(&[root.to_path_buf()], &options)
                .await
                .expect("push");
            store.pull(&pushed.reference).await.expect("pull").digest
        })
}

#[test]
fn a_container_that_fills_its_root_filesystem_gets_enospc_and_hurts_no_one_else() {
    let node = Node::new();
    let image = busybox_image(&node.store);

    // It writes twice its root filesystem's size (so that, unbounded, the test ends too), then
    // says how that went and stays up.
    let filler = node.start(
        "filler",
        &image,
        ROOTFS,
        "out=$(dd if=/dev/zero of=/big bs=1M count=128 2>&1); echo \"dd exit $?\"; \
         echo \"$out\" | head -n 1; sleep 1000",
    );
    wait_until("the filler's dd to end", Duration::from_secs(60), || {
        node.output(&filler).contains("dd exit")
    });
    let output = node.output(&filler);
    assert!(output.contains("dd exit 1"), "dd failed:\n{output}");
    assert!(
        output.contains("No space left on device"),
        "with ENOSPC:\n{output}"
    );
    assert_eq!(
        node.containers.status(&filler).unwrap().unwrap().state,
        RunState::Running,
        "the filler itself runs on"
    );

    // What it wrote is bounded by its rootfs size, and so is what it takes of the host's disk.
    let rootfs = node
        .store
        .rootfs(&filler.container_id())
        .unwrap()
        .expect("the filler's rootfs");
    let written = fs::metadata(rootfs.upper_dir().join("big")).unwrap().len();
    assert!(
        (ROOTFS / 2..ROOTFS).contains(&written),
        "wrote {written} bytes on a {ROOTFS}-byte root filesystem"
    );
    let image_file = fs::metadata(rootfs.layer_dir().with_file_name("layer.img")).unwrap();
    let on_disk = image_file.blocks() * 512;
    assert!(
        image_file.len() == ROOTFS && on_disk <= ROOTFS,
        "the layer takes {on_disk} bytes of the host's disk for a {ROOTFS}-byte root filesystem"
    );

    // Another tenant on the same store starts and writes to its own root filesystem.
    let neighbour = node.start(
        "neighbour",
        &image,
        ROOTFS,
        "dd if=/dev/zero of=/data bs=1M count=8 2>/dev/null && echo neighbour wrote; sleep 1000",
    );
    wait_until("the neighbour's write", Duration::from_secs(30), || {
        node.output(&neighbour).contains("neighbour wrote")
    });
    assert_eq!(
        node.containers.status(&neighbour).unwrap().unwrap().state,
        RunState::Running
    );
    // And the agent's own database directory can still be written.
    let db = node.state_dir.join("db-standin");
    fs::write(&db, vec![7u8; MIB as usize]).expect("the agent's state dir takes writes");
    assert_eq!(fs::metadata(&db).unwrap().len(), MIB);

    // Removed, they leave no mount and no loop device behind.
    node.remove(&filler);
    node.remove(&neighbour);
    assert_eq!(node.mounts(), Vec::<String>::new(), "mounts left");
    assert_eq!(
        node.loop_devices(),
        Vec::<String>::new(),
        "loop devices left"
    );
}

#[test]
fn a_writable_layer_survives_a_restart_and_leaves_nothing_after_lost_state() {
    let node = Node::new();
    let image = busybox_image(&node.store);
    let id = node.id("keeper");
    let name = id.container_id();
    let rootfs = node
        .store
        .prepare_rootfs_sized(&image, &name, ROOTFS)
        .expect("rootfs");
    fs::write(
        rootfs.path().join("etc/kept"),
        b"written before the restart",
    )
    .unwrap();
    assert_eq!(
        fs::read(rootfs.upper_dir().join("etc/kept")).unwrap(),
        b"written before the restart",
        "writes go to the layer"
    );
    let layer = rootfs_size_of(&rootfs.layer_dir());
    assert!(
        layer <= ROOTFS && layer > ROOTFS / 2,
        "a layer of {layer} bytes"
    );

    // Asked again (a restart of the same version): the same rootfs, its writes kept.
    let again = node
        .store
        .prepare_rootfs_sized(&image, &name, ROOTFS)
        .expect("again");
    assert_eq!(
        fs::read(again.path().join("etc/kept")).unwrap(),
        b"written before the restart"
    );
    // Another size is another rootfs: refused until the old one is removed.
    assert!(matches!(
        node.store.prepare_rootfs_sized(&image, &name, 2 * ROOTFS),
        Err(RootfsError::SizeMismatch {
            existing: ROOTFS,
            requested,
            ..
        }) if requested == 2 * ROOTFS
    ));

    // A reboot loses the mounts and the loop devices, not the layer: mounted again, it holds
    // the workload's writes.
    umount(&again.path());
    umount(&again.layer_dir());
    wait_until("the loop device to go", Duration::from_secs(5), || {
        node.loop_devices().is_empty()
    });
    let rebooted = node
        .store
        .prepare_rootfs_sized(&image, &name, ROOTFS)
        .expect("after a reboot");
    assert_eq!(
        fs::read(rebooted.path().join("etc/kept")).unwrap(),
        b"written before the restart"
    );

    // The agent lost its state: a store opened afresh finds the rootfs by its lease and removes
    // it whole, even half torn down (the overlay gone, the layer still mounted).
    umount(&rebooted.path());
    let store = Store::open(node.root.join("storage/images")).expect("store");
    let leases: Vec<String> = store
        .leases()
        .unwrap()
        .into_iter()
        .map(|l| l.workload)
        .collect();
    assert_eq!(leases, std::slice::from_ref(&name));
    store.remove_rootfs(&name).expect("remove");
    assert_eq!(node.mounts(), Vec::<String>::new(), "mounts left");
    assert_eq!(
        node.loop_devices(),
        Vec::<String>::new(),
        "loop devices left"
    );
    assert!(store.leases().unwrap().is_empty());
}

fn umount(path: &Path) {
    let status = std::process::Command::new("umount")
        .arg(path)
        .status()
        .expect("run umount");
    assert!(status.success(), "umount {}", path.display());
}

/// Total bytes of the filesystem mounted at `path`.
fn rootfs_size_of(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).expect("statvfs");
    st.f_blocks * st.f_frsize
}
