//! VMs for real: QEMU microvm (TCG here) booting the node's default kernel (Debian's cloud kernel
//! as `scripts/setup.sh` unpacks it) with a busybox root shared over virtiofsd, and a disk.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use zos_host::{
    disk::Disks,
    vm::{self, boot, Accel, VmHost, VmSpec, VmState, Vms},
    WorkloadId,
};

const KERNEL_DIR: &str = "/opt/zos/kernel";
const VIRTIOFSD: &str = "/opt/zos/bin/virtiofsd";

/// The guest's /sbin/init: markers on the console, then it waits for the power button.
const GUEST_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
echo "ZOS-MARKER init reached"
echo "ZOS-ENV greeting=[$GREETING]"
echo "ZOS-HOST $($B hostname)"
echo "ZOS-DISK $($B blockdev --getsize64 /dev/vda) serial=$($B cat /sys/block/vda/serial)"
echo "ZOS-KEYS $($B cat /root/.ssh/authorized_keys)"
for e in /dev/input/event*; do
    ( $B head -c 1 "$e" > /dev/null; echo "ZOS-POWER button"; $B sync; $B poweroff -f ) &
done
echo "ZOS-READY"
while true; do echo "ZOS-TICK"; $B sleep 1; done
"#;

/// Everything one test uses; dropping it removes every VM it made.
struct VmTest {
    vms: Vms,
    disks: Disks,
    root: PathBuf,
    contract: u64,
    _dir: tempfile::TempDir,
}

impl VmTest {
    fn new() -> VmTest {
        assert!(
            nix::unistd::geteuid().is_root(),
            "VM tests need root (virtiofsd's namespace sandbox)"
        );
        for (what, path) in [("kernel", KERNEL_DIR), ("virtiofsd", VIRTIOFSD)] {
            assert!(
                Path::new(path).exists(),
                "no {what} at {path}: run scripts/setup.sh"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("zos-vm-test-")
            .tempdir()
            .expect("tempdir");
        let boot = boot::prepare(
            Path::new(KERNEL_DIR),
            Path::new("/bin/busybox"),
            &dir.path().join("boot"),
        )
        .expect("boot files");
        let host = VmHost {
            qemu: "qemu-system-x86_64".into(),
            virtiofsd: VIRTIOFSD.into(),
            accel: Accel::Tcg,
            tsc_khz: vm::host_tsc_khz(),
            boot,
            busybox: "/bin/busybox".into(),
            boot_cache: dir.path().join("boot"),
        };
        let root = dir.path().join("root");
        for d in ["bin", "sbin", "proc", "sys", "dev", "root", "etc", "tmp"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox");
        fs::write(root.join("sbin/init"), GUEST_INIT).unwrap();
        fs::set_permissions(root.join("sbin/init"), fs::Permissions::from_mode(0o755)).unwrap();
        let vms = Vms::new(dir.path().join("vms"), host).expect("vms");
        let disks = Disks::new(dir.path().join("disks")).expect("disks");
        VmTest {
            vms,
            disks,
            root,
            contract: u64::from(std::process::id()) * 1000,
            _dir: dir,
        }
    }

    fn spec(&self, name: &str) -> VmSpec {
        let id = WorkloadId::new(self.contract, name).unwrap();
        let disk = self.disks.ensure(&id, 64 << 20).expect("disk");
        VmSpec {
            id,
            vcpus: 1,
            memory: 256 << 20,
            root: self.root.clone(),
            disks: vec![("scratch".into(), disk)],
            hostname: name.into(),
            env: vec![("GREETING".into(), "it's a \"VM\" $HOME".into())],
            ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1 user@host".into()],
            boot: None,
            labels: BTreeMap::from([("zos.version".into(), "3".into())]),
            network: None,
        }
    }

    fn console(&self, id: &WorkloadId) -> String {
        fs::read_to_string(self.vms.console_log(id)).unwrap_or_default()
    }

    fn wait_console(&self, id: &WorkloadId, marker: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.console(id);
            if text.contains(marker) {
                return text;
            }
            assert!(
                start.elapsed() < timeout,
                "no {marker:?} on the console in {timeout:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for VmTest {
    fn drop(&mut self) {
        for id in self.vms.list().unwrap_or_default() {
            if let Err(e) = self.vms.remove(&id, Duration::ZERO) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn qemu_pid(vms: &Vms, id: &WorkloadId) -> i32 {
    fs::read_to_string(vms.dir(id).join("qemu.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z") && !s.contains(") X"))
        .unwrap_or(false)
}

/// Processes whose command line mentions `needle`.
fn processes_naming(needle: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .filter(|pid| alive(*pid))
        .collect()
}

#[test]
fn a_vm_boots_from_a_shared_root_with_its_disk_and_config_pauses_and_is_removed_cleanly() {
    let t = VmTest::new();
    let spec = t.spec("box");
    let id = spec.id.clone();
    let started = Instant::now();
    t.vms.start(&spec).expect("start");
    let console = t.wait_console(&id, "ZOS-READY", Duration::from_secs(120));
    eprintln!("guest init reached in {:?}", started.elapsed());
    assert!(console.contains("ZOS-MARKER init reached"), "{console}");
    assert!(
        console.contains(r#"ZOS-ENV greeting=[it's a "VM" $HOME]"#),
        "the environment reaches init as written: {console}"
    );
    assert!(console.contains("ZOS-HOST box"), "{console}");
    assert!(
        console.contains("ZOS-DISK 67108864 serial=scratch"),
        "the guest sees the disk at its size and name: {console}"
    );
    assert!(console.contains("ZOS-KEYS ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1 user@host"));
    let status = t.vms.status(&id).unwrap().expect("a VM");
    assert_eq!(status.state, VmState::Running);
    assert_eq!(status.labels["zos.version"], "3");
    let pid = qemu_pid(&t.vms, &id);
    // QEMU runs in the VM's own cgroup: the vCPU it reserved, its memory and QEMU's overhead.
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cid = id.container_id();
    assert!(
        cgroups.lines().any(|l| l.ends_with(&format!("/zos/{cid}"))),
        "{cgroups}"
    );
    let read = |c: &str, f: &str| {
        fs::read_to_string(format!("/sys/fs/cgroup/{c}/zos/{cid}/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "100000", "one vCPU");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        ((256u64 << 20) + vm::QEMU_OVERHEAD).to_string()
    );

    // An agent that restarts finds it by name, with nothing in memory.
    let again = Vms::new(
        t.vms.dir(&id).parent().unwrap().to_path_buf(),
        t.vms.host().clone(),
    )
    .unwrap();
    assert_eq!(again.list().unwrap(), std::slice::from_ref(&id));
    assert_eq!(again.status(&id).unwrap().unwrap().state, VmState::Running);
    assert!(again.stats(&id).unwrap().memory > 64 << 20);

    // Paused: the guest stops (its console stops ticking), then goes on.
    t.vms.pause(&id).unwrap();
    assert_eq!(t.vms.status(&id).unwrap().unwrap().state, VmState::Paused);
    let ticks = |t: &VmTest| t.console(&id).matches("ZOS-TICK").count();
    std::thread::sleep(Duration::from_millis(500));
    let before = ticks(&t);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ticks(&t), before, "a paused guest runs nothing");
    t.vms.resume(&id).unwrap();
    assert_eq!(t.vms.status(&id).unwrap().unwrap().state, VmState::Running);
    let start = Instant::now();
    while ticks(&t) == before {
        assert!(start.elapsed() < Duration::from_secs(20), "not resumed");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Removal: the guest hears the power button and powers off well within the grace period.
    let dir = t.vms.dir(&id);
    let start = Instant::now();
    t.vms.remove(&id, Duration::from_secs(30)).unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "powered down in {took:?}");
    assert!(!alive(pid), "QEMU is gone");
    assert!(
        processes_naming(&dir.to_string_lossy()).is_empty(),
        "no QEMU or virtiofsd of it is left"
    );
    assert!(!dir.exists(), "its directory is gone");
    for c in ["cpu", "memory", "pids"] {
        let d = format!("/sys/fs/cgroup/{c}/zos/{cid}");
        assert!(!Path::new(&d).exists(), "{d} is gone");
    }
    assert!(t.vms.list().unwrap().is_empty());
    // The disk is the disk driver's: it stays until its own workload goes.
    assert_eq!(t.disks.size(&id), Some(64 << 20));
}

#[test]
fn a_guest_that_powers_off_is_seen_exited_and_a_guest_that_ignores_the_button_is_killed() {
    let t = VmTest::new();
    // This guest's init powers off at once.
    fs::write(
        t.root.join("sbin/init"),
        "#!/bin/busybox sh\necho ZOS-BYE\n/bin/busybox poweroff -f\n",
    )
    .unwrap();
    let spec = t.spec("short");
    let id = spec.id.clone();
    t.vms.start(&spec).unwrap();
    t.wait_console(&id, "ZOS-BYE", Duration::from_secs(120));
    let start = Instant::now();
    while t.vms.status(&id).unwrap().unwrap().state != VmState::Exited {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "QEMU did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = t.vms.dir(&id);
    let start = Instant::now();
    while !processes_naming(&dir.to_string_lossy()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "virtiofsd stayed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Started again under the same name: a new boot.
    t.vms.start(&spec).unwrap();
    t.wait_console(&id, "ZOS-BYE", Duration::from_secs(120));
    t.vms.remove(&id, Duration::from_secs(5)).unwrap();

    // This one listens to nothing: removal kills it at the end of the grace period.
    fs::write(
        t.root.join("sbin/init"),
        "#!/bin/busybox sh\necho ZOS-DEAF\nwhile true; do /bin/busybox sleep 1; done\n",
    )
    .unwrap();
    let spec = t.spec("deaf");
    let id = spec.id.clone();
    t.vms.start(&spec).unwrap();
    t.wait_console(&id, "ZOS-DEAF", Duration::from_secs(120));
    let pid = qemu_pid(&t.vms, &id);
    let start = Instant::now();
    t.vms.remove(&id, Duration::from_secs(2)).unwrap();
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(!alive(pid));
    assert!(processes_naming(&t.vms.dir(&id).to_string_lossy()).is_empty());
}

#[test]
fn a_run_directory_too_long_for_a_socket_is_a_clear_error_not_a_silent_failure() {
    let t = VmTest::new();
    let long = t.root.parent().unwrap().join("r".repeat(90));
    let vms = Vms::new(long.clone(), t.vms.host().clone()).unwrap();
    let spec = t.spec("sock");
    let err = vms.start(&spec).unwrap_err();
    assert!(matches!(err, vm::VmError::SocketPathTooLong(_)), "{err}");
    assert!(err.to_string().contains("use a shorter run_dir"), "{err}");
    assert!(vms.list().unwrap().is_empty(), "nothing was made");
}

#[test]
fn a_vm_on_a_private_network_answers_on_its_address_from_the_bridge() {
    use zos_host::network::{Cidr, NetworkSpec, Networks};
    use zos_testkit::netlab::{pings, Lab};
    let t = VmTest::new();
    let lab = Lab::new();
    let networks = Networks::new(
        t._dir.path().join("networks"),
        Some(lab.host_ns("a")),
        "/usr/bin/wireguard-go".into(),
        {
            let mut key = [7u8; 32];
            key[..4].copy_from_slice(&std::process::id().to_le_bytes());
            key
        },
    );
    let net = WorkloadId::new(t.contract, "net").unwrap();
    let cidr = |s: &str| s.parse::<Cidr>().unwrap();
    networks
        .ensure(&NetworkSpec {
            workload: net.clone(),
            range: cidr("10.77.0.0/16"),
            subnet: cidr("10.77.1.0/24"),
            listen_port: 51890,
            peers: vec![],
            egress: false,
        })
        .expect("network");
    let mut spec = t.spec("netvm");
    let (tap, mac) = Networks::tap(&spec.id);
    spec.network = Some(vm::VmNetwork {
        namespace: networks.namespace(&net),
        tap: tap.clone(),
        mac,
        address: "10.77.1.7".parse().unwrap(),
        subnet: cidr("10.77.1.0/24"),
    });
    t.vms.start(&spec).expect("start");
    networks.plug(&net, &tap).expect("plug");
    let id = spec.id.clone();
    let console = t.wait_console(&id, "ZOS-READY", Duration::from_secs(60));
    assert!(
        !console.contains("cannot configure the private network"),
        "{console}"
    );
    let start = Instant::now();
    while !pings(&networks.namespace(&net), "10.77.1.7") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the VM does not answer on its address:\n{}",
            t.console(&id)
        );
    }
    t.vms.remove(&id, Duration::from_secs(5)).expect("remove");
    networks.remove(&net).expect("remove the network");
}
