//! Virtual machines: QEMU's `microvm` machine booting a kernel directly (PVH), with the root
//! filesystem shared from the host over virtiofs (one `virtiofsd` per VM) and disks as virtio-blk.
//!
//! A VM is named after its workload ([`WorkloadId::container_id`]) and everything of it lives in
//! one directory: QEMU's pid file and QMP socket, the virtiofsd socket, the serial console's log
//! and the VM's own initramfs. QEMU runs detached (`-daemonize`), so VMs outlive the agent; an
//! agent that restarts finds them again by listing these directories, with no database.
//!
//! Calls block; call them from `spawn_blocking`.

pub mod boot;
pub mod qmp;

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read, Seek, SeekFrom},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde::{Deserialize, Serialize};

pub use boot::{BootError, BootFiles, Cpio};
use qmp::{Qmp, QmpError};

use crate::{
    cgroup::Hierarchies,
    sys::{self, is_live, private_dir, write_atomic},
    InvalidWorkloadId, WorkloadId,
};

/// How long a QMP exchange may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long virtiofsd has to make its socket.
const VIRTIOFSD_START: Duration = Duration::from_secs(10);
/// The console log is cut back to half this size when it grows past it.
pub const CONSOLE_CAP: u64 = 1024 * 1024;
const MIB: u64 = 1024 * 1024;
/// Memory a VM's cgroup allows beyond the guest's own: QEMU's (about 200 MiB measured for a
/// small TCG guest, translation cache included) and virtiofsd's, with room to spare.
pub const QEMU_OVERHEAD: u64 = 512 * MIB;
/// Tasks a VM's cgroup allows: QEMU's vCPU, I/O and worker threads and virtiofsd's.
const VM_PIDS: u64 = 512;

/// How QEMU runs guests on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's own translator: slower, works everywhere.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The host's VM tooling.
#[derive(Debug, Clone)]
pub struct VmHost {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// `virtiofsd`.
    pub virtiofsd: PathBuf,
    /// KVM or TCG ([`probe_accel`] tells which works).
    pub accel: Accel,
    /// The host's TSC frequency in kHz, given to TCG guests (`tsc_early_khz`): without it their
    /// boot hangs calibrating the TSC.
    pub tsc_khz: Option<u64>,
    /// The node's default kernel and initramfs.
    pub boot: BootFiles,
    /// A static busybox, for the initramfs of a VM's own kernel.
    pub busybox: PathBuf,
    /// Where kernels and their initramfs are made (once per kernel).
    pub boot_cache: PathBuf,
}

/// A VM to start.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Its workload.
    pub id: WorkloadId,
    /// Virtual CPUs.
    pub vcpus: u16,
    /// Memory in bytes (rounded up to whole MiB).
    pub memory: u64,
    /// The host directory the guest gets as its root filesystem (read and written through
    /// virtiofs).
    pub root: PathBuf,
    /// Disks, in the order the guest sees them (`vda`, `vdb`, …): name (the guest sees it as
    /// the disk's serial) and raw file.
    pub disks: Vec<(String, PathBuf)>,
    /// The guest's hostname.
    pub hostname: String,
    /// Environment of the guest's init.
    pub env: Vec<(String, String)>,
    /// SSH keys for root's `authorized_keys`.
    pub ssh_keys: Vec<String>,
    /// The kernel and initramfs, when not the node's default.
    pub boot: Option<BootFiles>,
    /// Labels kept with the VM (the workload version).
    pub labels: BTreeMap<String, String>,
    /// Its place on a private network, if it has one.
    pub network: Option<VmNetwork>,
}

/// A VM's place on a private network: QEMU runs in the network's namespace and makes its tap
/// there; the guest's init gives `eth0` its address and routes the range through the gateway.
#[derive(Debug, Clone)]
pub struct VmNetwork {
    /// The network's namespace.
    pub namespace: PathBuf,
    /// The tap's name, for [`crate::network::Networks::plug`].
    pub tap: String,
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// The guest's address.
    pub address: std::net::Ipv4Addr,
    /// The network's subnet on this node (its first host is the gateway).
    pub subnet: crate::network::Cidr,
}

/// How a VM is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    /// The guest runs.
    Running,
    /// Stopped by QMP `stop`.
    Paused,
    /// QEMU is gone (the guest powered off or crashed, or QEMU was killed), or never started.
    Exited,
}

/// A VM found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    /// Its state.
    pub state: VmState,
    /// When it was started.
    pub started_at: SystemTime,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What a VM's processes (QEMU and its virtiofsd) use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmStats {
    /// When the VM was started.
    pub started_at: SystemTime,
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
    /// Resident memory, in bytes (the guest's RAM as it touches it, and QEMU's own).
    pub memory: u64,
}

/// Why a VM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The workload id is not a valid name.
    #[error(transparent)]
    InvalidId(#[from] InvalidWorkloadId),
    /// A file of the VM could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// QEMU or virtiofsd did not start.
    #[error("{what} did not start: {why}")]
    Start {
        /// `qemu`, `virtiofsd` or `cgroup`.
        what: &'static str,
        /// Its own words (node-local: they may name host paths).
        why: String,
    },
    /// The VM already runs.
    #[error("VM {0} already runs")]
    AlreadyRunning(String),
    /// A QMP exchange failed.
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// The VM's sockets would have paths longer than a unix socket address holds.
    #[error("{0}: longer than the 107 bytes of a unix socket path; use a shorter run_dir")]
    SocketPathTooLong(PathBuf),
    /// The environment has a name a shell cannot export.
    #[error("env {0}: not a valid variable name for a VM")]
    BadEnvName(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VmError + '_ {
    move |source| VmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the VM's directory keeps besides the pid file and sockets.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    started_at_ms: u64,
    labels: BTreeMap<String, String>,
    virtiofsd_pid: i32,
}

/// The VMs of this host, each in a directory under `root` and a cgroup `/zos/<id>` of its own.
pub struct Vms {
    root: PathBuf,
    host: VmHost,
    cgroups: Hierarchies,
}

impl Vms {
    /// VMs under `root` (created if missing), run with `host`'s tools.
    pub fn new(root: PathBuf, host: VmHost) -> Result<Vms, VmError> {
        private_dir(&root).map_err(io_err(&root))?;
        let cgroups = Hierarchies::detect().map_err(io_err(Path::new("/proc/self/mountinfo")))?;
        Ok(Vms {
            root,
            host,
            cgroups,
        })
    }

    /// The host's VM tooling.
    pub fn host(&self) -> &VmHost {
        &self.host
    }

    /// The directory of a VM.
    pub fn dir(&self, id: &WorkloadId) -> PathBuf {
        self.root.join(id.container_id())
    }

    /// The serial console's log of a VM (the newest part; the part before is in `.1`).
    pub fn console_log(&self, id: &WorkloadId) -> PathBuf {
        self.dir(id).join("console.log")
    }

    /// The VMs found on the host, running or not.
    pub fn list(&self) -> Result<Vec<WorkloadId>, VmError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)
            .map_err(io_err(&self.root))?
            .flatten()
        {
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(WorkloadId::parse_container_id)
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Starts a VM. Fails if one runs under its name: remove it first.
    pub fn start(&self, spec: &VmSpec) -> Result<(), VmError> {
        spec.id.validate()?;
        let dir = self.dir(&spec.id);
        let longest = dir.join("qmp.sock");
        if longest.as_os_str().len() > 107 {
            return Err(VmError::SocketPathTooLong(longest));
        }
        if self.qemu_pid(&spec.id).is_some() {
            return Err(VmError::AlreadyRunning(spec.id.container_id()));
        }
        // What a VM that ended left (its sockets, its logs) goes: a new start is a new boot.
        self.stop_virtiofsd(&spec.id);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        private_dir(&dir).map_err(io_err(&dir))?;
        let boot = spec.boot.as_ref().unwrap_or(&self.host.boot);
        let initramfs = dir.join("initramfs.cpio");
        let mut bytes = fs::read(&boot.initramfs).map_err(io_err(&boot.initramfs))?;
        bytes.extend(guest_config(spec)?);
        write_atomic(&initramfs, &bytes).map_err(io_err(&initramfs))?;

        // The VM's QEMU and virtiofsd run in a cgroup of their own: the vCPUs it reserved, its
        // memory and QEMU's overhead, a bounded number of tasks.
        let cgroup = spec.id.container_id();
        let cgroup_err = |e: io::Error| VmError::Start {
            what: "cgroup",
            why: e.to_string(),
        };
        self.cgroups
            .create_limited(
                &cgroup,
                u64::from(spec.vcpus.max(1)) * 1000,
                spec.memory.div_ceil(MIB) * MIB + QEMU_OVERHEAD,
                VM_PIDS,
            )
            .map_err(cgroup_err)?;
        let virtiofsd_pid = self.start_virtiofsd(&dir, &spec.root, &cgroup)?;
        let record = Record {
            started_at_ms: sys::unix_millis(SystemTime::now()),
            labels: spec.labels.clone(),
            virtiofsd_pid,
        };
        let path = dir.join("vm.json");
        write_atomic(&path, &serde_json::to_vec(&record).unwrap_or_default())
            .map_err(io_err(&path))?;
        let qemu = || {
            Command::new(&self.host.qemu)
                .args(self.qemu_args(spec, &dir, boot, &initramfs))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| VmError::Start {
                    what: "qemu",
                    why: format!("cannot run {}: {e}", self.host.qemu.display()),
                })
        };
        let out = match &spec.network {
            // Its tap is made in the namespace QEMU starts in.
            Some(n) => {
                crate::network::in_namespace(&n.namespace, qemu).map_err(|e| VmError::Start {
                    what: "qemu",
                    why: format!("entering the network's namespace: {e}"),
                })?
            }
            None => qemu(),
        }?;
        if !out.status.success() {
            self.stop_virtiofsd(&spec.id);
            let _ = self.cgroups.remove(&cgroup);
            return Err(VmError::Start {
                what: "qemu",
                why: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        if let Some(pid) = self.qemu_pid(&spec.id) {
            if let Err(e) = self.cgroups.add(&cgroup, pid) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                self.stop_virtiofsd(&spec.id);
                let _ = self.cgroups.remove(&cgroup);
                return Err(cgroup_err(e));
            }
        }
        tracing::info!(vm = %spec.id.container_id(), accel = self.host.accel.as_str(), "VM started");
        Ok(())
    }

    fn qemu_args(
        &self,
        spec: &VmSpec,
        dir: &Path,
        boot: &BootFiles,
        initramfs: &Path,
    ) -> Vec<String> {
        let mib = spec.memory.div_ceil(MIB).max(1);
        let mut append = String::from("console=ttyS0 panic=-1 quiet");
        if let (Accel::Tcg, Some(khz)) = (self.host.accel, self.host.tsc_khz) {
            append.push_str(&format!(" tsc_early_khz={khz}"));
        }
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut args: Vec<String> = vec![
            "-name".into(),
            spec.id.container_id(),
            "-M".into(),
            "microvm,memory-backend=mem".into(),
            "-accel".into(),
            self.host.accel.as_str().into(),
        ];
        if self.host.accel == Accel::Kvm {
            args.extend(["-cpu".into(), "host".into()]);
        }
        args.extend([
            "-smp".into(),
            spec.vcpus.max(1).to_string(),
            "-m".into(),
            format!("{mib}M"),
            // virtiofs needs the guest's memory shared with virtiofsd.
            "-object".into(),
            format!("memory-backend-memfd,id=mem,size={mib}M,share=on"),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            // QEMU under seccomp: a guest that took QEMU over still cannot use obsolete system
            // calls or change scheduling on the host. `spawn=deny` and `elevateprivileges=deny`
            // would be better, but QEMU 7.2 forks and calls setsid to `-daemonize` after the filter
            // is in place (measured: SIGSYS, and exit status 1).
            "-sandbox".into(),
            "on,obsolete=deny,resourcecontrol=deny".into(),
            // A guest that reboots or panics ends QEMU: the agent restarts it with backoff.
            "-no-reboot".into(),
            "-kernel".into(),
            path(&boot.kernel),
            "-initrd".into(),
            path(initramfs),
            "-append".into(),
            append,
            "-chardev".into(),
            format!("socket,id=fs,path={}", path(&dir.join("fs.sock"))),
            "-device".into(),
            "vhost-user-fs-device,chardev=fs,tag=rootfs".into(),
            "-chardev".into(),
            format!(
                "file,id=console,path={},append=on",
                path(&dir.join("console.log"))
            ),
            "-serial".into(),
            "chardev:console".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path(&dir.join("qmp.sock"))),
            "-pidfile".into(),
            path(&dir.join("qemu.pid")),
            "-daemonize".into(),
        ]);
        for (i, (name, file)) in spec.disks.iter().enumerate() {
            args.extend([
                "-drive".into(),
                format!(
                    "file={},format=raw,if=none,id=disk{i},cache=none,aio=threads",
                    path(file)
                ),
                "-device".into(),
                format!("virtio-blk-device,drive=disk{i},serial={name}"),
            ]);
        }
        if let Some(n) = &spec.network {
            let mac: Vec<String> = n.mac.iter().map(|b| format!("{b:02x}")).collect();
            args.extend([
                "-netdev".into(),
                format!("tap,id=net0,ifname={},script=no,downscript=no", n.tap),
                "-device".into(),
                format!("virtio-net-device,netdev=net0,mac={}", mac.join(":")),
            ]);
        }
        args
    }

    fn start_virtiofsd(&self, dir: &Path, shared: &Path, cgroup: &str) -> Result<i32, VmError> {
        let socket = dir.join("fs.sock");
        let log_path = dir.join("virtiofsd.log");
        let log = fs::File::create(&log_path).map_err(io_err(&log_path))?;
        let err_log = log.try_clone().map_err(io_err(&log_path))?;
        let mut child = Command::new(&self.host.virtiofsd)
            .arg("--socket-path")
            .arg(&socket)
            .arg("--shared-dir")
            .arg(shared)
            // The VM has its root directory to itself: the guest may cache all of it.
            .args(["--cache", "always", "--sandbox", "namespace"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            // Its own process group: a signal to the agent's group does not reach it.
            .process_group(0)
            .spawn()
            .map_err(|e| VmError::Start {
                what: "virtiofsd",
                why: format!("cannot run {}: {e}", self.host.virtiofsd.display()),
            })?;
        let pid = child.id() as i32;
        // Before it forks its sandbox, which then starts in the cgroup too.
        if let Err(e) = self.cgroups.add(cgroup, pid) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(VmError::Start {
                what: "virtiofsd",
                why: format!("cgroup: {e}"),
            });
        }
        let up = sys::wait_until(VIRTIOFSD_START, || {
            socket.exists() || matches!(child.try_wait(), Ok(Some(_)))
        });
        if !up || !socket.exists() {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(VmError::Start {
                what: "virtiofsd",
                why: log.lines().last().unwrap_or("no socket").to_string(),
            });
        }
        // It ends when QEMU disconnects; reaped here while this agent runs, by init after.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(pid)
    }

    fn record(&self, id: &WorkloadId) -> Option<Record> {
        let bytes = fs::read(self.dir(id).join("vm.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The pid of the VM's QEMU, when it runs: read from its pid file, and checked to be a
    /// process whose command line names this VM's directory (pids are reused).
    fn qemu_pid(&self, id: &WorkloadId) -> Option<i32> {
        let dir = self.dir(id);
        let pid: i32 = fs::read_to_string(dir.join("qemu.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (is_live(pid) && cmdline_names(pid, &dir)).then_some(pid)
    }

    /// How the VM is; `None` when there is none under this name.
    pub fn status(&self, id: &WorkloadId) -> Result<Option<VmStatus>, VmError> {
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Ok(None);
        }
        self.trim_console(id);
        let record = self.record(id);
        let started_at = record.as_ref().map_or(SystemTime::UNIX_EPOCH, |r| {
            sys::from_unix_millis(r.started_at_ms)
        });
        let labels = record.map(|r| r.labels).unwrap_or_default();
        let state = match self.qemu_pid(id) {
            None => VmState::Exited,
            Some(_) => match self.qmp(id)?.status()?.as_str() {
                "running" => VmState::Running,
                "paused" | "suspended" => VmState::Paused,
                // shutdown, guest-panicked, internal-error, …: it is not coming back by itself.
                _ => VmState::Exited,
            },
        };
        Ok(Some(VmStatus {
            state,
            started_at,
            labels,
        }))
    }

    fn qmp(&self, id: &WorkloadId) -> Result<Qmp, VmError> {
        Ok(Qmp::connect(&self.dir(id).join("qmp.sock"), QMP_TIMEOUT)?)
    }

    /// Freezes the guest (QMP `stop`): it uses no CPU until resumed.
    pub fn pause(&self, id: &WorkloadId) -> Result<(), VmError> {
        self.qmp(id)?.execute("stop", None)?;
        Ok(())
    }

    /// Thaws a paused guest (QMP `cont`).
    pub fn resume(&self, id: &WorkloadId) -> Result<(), VmError> {
        self.qmp(id)?.execute("cont", None)?;
        Ok(())
    }

    /// Removes a VM: asks the guest to power down (ACPI power button), kills QEMU when it has
    /// not within `grace`, stops its virtiofsd and deletes its directory. Idempotent.
    pub fn remove(&self, id: &WorkloadId, grace: Duration) -> Result<(), VmError> {
        if let Some(pid) = self.qemu_pid(id) {
            if let Ok(mut qmp) = self.qmp(id) {
                // A paused guest cannot hear the button.
                let _ = qmp.execute("cont", None);
                let _ = qmp.execute("system_powerdown", None);
            }
            if !sys::wait_until(grace, || !is_live(pid)) {
                tracing::info!(vm = %id.container_id(), "no power-down within the grace period: killed");
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                sys::wait_until(Duration::from_secs(10), || !is_live(pid));
            }
        }
        self.stop_virtiofsd(id);
        // Whatever is left in its cgroup goes with it.
        if let Err(e) = self.cgroups.remove(&id.container_id()) {
            tracing::warn!(vm = %id.container_id(), error = %e, "cgroup not removed");
        }
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(VmError::Io {
                path: dir,
                source: e,
            }),
        }
    }

    fn stop_virtiofsd(&self, id: &WorkloadId) {
        let Some(record) = self.record(id) else {
            return;
        };
        let (pid, dir) = (record.virtiofsd_pid, self.dir(id));
        if !(is_live(pid) && cmdline_names(pid, &dir)) {
            return;
        }
        // Its sandbox is a child process in the same process group (started as its leader):
        // the group goes, not only the pid the agent knows.
        let group = Pid::from_raw(pid);
        let _ = nix::sys::signal::killpg(group, Signal::SIGTERM);
        if !sys::wait_until(Duration::from_secs(5), || !is_live(pid)) {
            let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
            sys::wait_until(Duration::from_secs(5), || !is_live(pid));
        }
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
    }

    /// What the VM's processes use; `None` when QEMU does not run.
    pub fn stats(&self, id: &WorkloadId) -> Option<VmStats> {
        let qemu = self.qemu_pid(id)?;
        let record = self.record(id)?;
        let started_at = sys::from_unix_millis(record.started_at_ms);
        if let Some(usage) = self.cgroups.usage(&id.container_id()) {
            return Some(VmStats {
                started_at,
                cpu_ns: usage.cpu_ns,
                memory: usage.memory_current,
            });
        }
        let (mut cpu_ns, mut memory) = proc_usage(qemu)?;
        if cmdline_names(record.virtiofsd_pid, &self.dir(id)) {
            if let Some((cpu, mem)) = proc_usage(record.virtiofsd_pid) {
                cpu_ns += cpu;
                memory += mem;
            }
        }
        Some(VmStats {
            started_at,
            cpu_ns,
            memory,
        })
    }

    /// Keeps the console log under [`CONSOLE_CAP`]: past it, its second half moves to
    /// `console.log.1` and the log starts again (QEMU appends, so it writes on at the start).
    fn trim_console(&self, id: &WorkloadId) {
        let log = self.console_log(id);
        let Ok(meta) = fs::metadata(&log) else {
            return;
        };
        if meta.len() <= CONSOLE_CAP {
            return;
        }
        let keep = CONSOLE_CAP / 2;
        let result = (|| -> io::Result<()> {
            let mut f = fs::OpenOptions::new().read(true).write(true).open(&log)?;
            f.seek(SeekFrom::Start(meta.len() - keep))?;
            let mut tail = Vec::with_capacity(keep as usize);
            f.by_ref().take(keep).read_to_end(&mut tail)?;
            write_atomic(&log.with_extension("log.1"), &tail)?;
            f.set_len(0)
        })();
        if let Err(e) = result {
            tracing::warn!(vm = %id.container_id(), error = %e, "console log not trimmed");
        }
    }
}

/// The VM's own part of its initramfs: `/zos/hostname`, `/zos/env` and `/zos/authorized_keys`,
/// which the initramfs's init hands to the guest. The node never writes into the guest's root
/// itself, so a symlink in an image cannot turn a write into one on the host.
fn guest_config(spec: &VmSpec) -> Result<Vec<u8>, VmError> {
    let mut cpio = Cpio::default();
    cpio.dir("zos");
    cpio.file(
        "zos/hostname",
        0o644,
        format!("{}\n", spec.hostname).as_bytes(),
    );
    let mut env = String::new();
    for (key, value) in &spec.env {
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(VmError::BadEnvName(key.clone()));
        }
        env.push_str(&format!(
            "export {key}='{}'\n",
            value.replace('\'', r"'\''")
        ));
    }
    cpio.file("zos/env", 0o600, env.as_bytes());
    if !spec.ssh_keys.is_empty() {
        let keys: String = spec
            .ssh_keys
            .iter()
            .map(|k| format!("{}\n", k.trim()))
            .collect();
        cpio.file("zos/authorized_keys", 0o600, keys.as_bytes());
    }
    if let Some(n) = &spec.network {
        let config = format!(
            "ZOS_NET_ADDRESS={}/{}\nZOS_NET_GATEWAY={}\n",
            n.address,
            n.subnet.prefix,
            n.subnet.gateway(),
        );
        cpio.file("zos/network", 0o644, config.as_bytes());
    }
    Ok(cpio.finish())
}

/// Whether process `pid`'s command line mentions `dir`.
fn cmdline_names(pid: i32, dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = dir.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|w| w == needle)
}

/// CPU time (ns) and resident memory (bytes) of process `pid`.
fn proc_usage(pid: i32) -> Option<(u64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the comm.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((ticks * 1_000_000_000 / hz.max(1), rss_kib * 1024))
}

/// Which accelerator boots a guest here: KVM when `/dev/kvm` exists and a probe guest (the
/// default kernel and initramfs, which power off at once on `zos.probe`) reaches its init
/// within `timeout`; TCG otherwise. Measured on the project's machines: KVM is there but Linux
/// guests fail under it, so this is not a formality.
pub fn probe_accel(host: &VmHost, scratch: &Path, timeout: Duration) -> Accel {
    if !Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    let console = scratch.join("kvm-probe.log");
    let _ = fs::remove_file(&console);
    let child = Command::new(&host.qemu)
        .args([
            "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "128M",
        ])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&host.boot.kernel)
        .arg("-initrd")
        .arg(&host.boot.initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet zos.probe"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Accel::Tcg;
    };
    let mut ended = false;
    sys::wait_until(timeout, || {
        ended = matches!(child.try_wait(), Ok(Some(_)));
        ended || fs::read_to_string(&console).is_ok_and(|c| c.contains("zos-init: probe"))
    });
    let booted = fs::read_to_string(&console).is_ok_and(|c| c.contains("zos-init: probe"));
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = fs::remove_file(&console);
    if booted {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

/// The host's TSC frequency in kHz, from `/proc/cpuinfo`'s `cpu MHz`.
pub fn host_tsc_khz() -> Option<u64> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cpu MHz"))
        .and_then(|v| v.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())?;
    Some((mhz * 1000.0).round() as u64)
}
