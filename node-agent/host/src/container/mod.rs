//! Containers run by youki's libcontainer, each created and watched by its own shim process.
//!
//! State root layout (`Containers::new(state_root, ..)`):
//!
//! | path | what |
//! |---|---|
//! | `runtime/<id>/` | libcontainer's state (`state.json`, its copy of the config, notify socket) |
//! | `workloads/<id>/` | the bundle and this crate's records (see `files.rs`) and the output log |
//!
//! and the cgroup `/zos/<id>` in every hierarchy. `<id>` is [`WorkloadId::container_id`].
//!
//! A container's environment holds its opened secrets: every directory here is 0700 and every
//! file 0600, owned by the agent (root).

mod files;
mod shim;
mod spec;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use libcontainer::container::{Container, ContainerStatus as RuntimeStatus};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use spec::{cgroup_path, oci_spec, write_bundle, CPU_PERIOD_US, DEFAULT_PATH, PIDS_LIMIT};

use crate::cgroup;
use crate::id::{InvalidWorkloadId, WorkloadId};
use crate::sys;

const RUNTIME_DIR: &str = "runtime";
const WORKLOADS_DIR: &str = "workloads";

/// How long `start` waits for the shim's report.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of output [`ContainerStatus::log_tail`] holds.
pub const LOG_TAIL_LINES: usize = 3;

/// A volume (or any host directory) bind-mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host path (absolute, must exist).
    pub source: PathBuf,
    /// The path in the container (absolute).
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The workload.
    pub id: WorkloadId,
    /// An already-mounted root filesystem (absolute path); used in place, not copied.
    pub rootfs: PathBuf,
    /// Entrypoint and arguments; not empty. A command without `/` is looked up in `PATH`.
    pub args: Vec<String>,
    /// Environment; `PATH` defaults to [`DEFAULT_PATH`].
    pub env: Vec<(String, String)>,
    /// Working directory (absolute); `/` if `None`.
    pub workdir: Option<String>,
    /// CPU limit in thousandths of a CPU (cgroup quota `cpu_millis * 100` µs per 100 ms);
    /// 0 means no limit.
    pub cpu_millis: u32,
    /// Memory limit in bytes; 0 means no limit.
    pub memory: u64,
    /// Bind mounts (volumes).
    pub mounts: Vec<BindMount>,
    /// Free-form labels kept with the container and returned by [`Containers::status`].
    pub labels: BTreeMap<String, String>,
    /// A network namespace to join (a private network's, made by
    /// [`crate::network::Networks::attach`]); a new one with loopback only when `None`.
    pub network_namespace: Option<PathBuf>,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Being created by its shim (or the agent stopped while it was).
    Creating,
    /// Its process runs.
    Running,
    /// Frozen by [`Containers::pause`].
    Paused,
    /// Its process is gone. `code` and `signal` are both `None` when the exit status was not
    /// recorded (the shim died, or the container never got to run).
    Exited {
        /// The exit code, if it exited.
        code: Option<i32>,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// When the exit was seen.
        at: SystemTime,
    },
}

/// A container as found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// The init process (host pid namespace) while it runs.
    pub pid: Option<i32>,
    /// The state.
    pub state: RunState,
    /// When its process started (when it was created, if it never did).
    pub started_at: SystemTime,
    /// The labels given at start.
    pub labels: BTreeMap<String, String>,
    /// The last [`LOG_TAIL_LINES`] lines of its stdout and stderr.
    pub log_tail: String,
}

/// Resource use of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time, all processes, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use (cgroup accounting, page cache included), bytes.
    pub memory_current: u64,
    /// Highest memory use seen, bytes.
    pub memory_peak: u64,
    /// Bytes received on its network interfaces (loopback excluded).
    pub net_rx: u64,
    /// Bytes sent on its network interfaces (loopback excluded).
    pub net_tx: u64,
}

/// How to start the shim: `program args... --state-root <dir> --id <container id>`; the program
/// must hand the arguments after `args` to [`shim_main`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimCommand {
    /// The executable (e.g. the agent's own binary).
    pub program: PathBuf,
    /// Arguments before the shim's own (e.g. `["shim"]`).
    pub args: Vec<String>,
}

/// Why a container operation failed. Each variant names the container (its container id).
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The workload id cannot name a container.
    #[error(transparent)]
    InvalidId(#[from] InvalidWorkloadId),
    /// The spec cannot be run.
    #[error("container {container}: invalid spec: {reason}")]
    InvalidSpec {
        /// The container id.
        container: String,
        /// What is wrong.
        reason: String,
    },
    /// `start` of a container that exists (running or not): remove it first.
    #[error("container {container}: already exists")]
    Exists {
        /// The container id.
        container: String,
    },
    /// There is no such container.
    #[error("container {container}: not found")]
    NotFound {
        /// The container id.
        container: String,
    },
    /// The state root cannot be used.
    #[error("container state root {path:?}: {step}")]
    Root {
        /// The state root.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file operation failed.
    #[error("container {container}: {step} {path:?}")]
    Io {
        /// The container id.
        container: String,
        /// What was being done.
        step: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The shim could not be run.
    #[error("container {container}: cannot run the shim {program:?}")]
    ShimSpawn {
        /// The container id.
        container: String,
        /// The shim program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The container could not be created or started (libcontainer's error, e.g. the executable
    /// is not found in the rootfs).
    #[error("container {container}: start failed: {reason}")]
    Start {
        /// The container id.
        container: String,
        /// The shim's report.
        reason: String,
    },
    /// A step did not finish in time.
    #[error("container {container}: {step} did not finish within {after:?}")]
    Timeout {
        /// The container id.
        container: String,
        /// What was being waited for.
        step: &'static str,
        /// How long.
        after: Duration,
    },
    /// The runtime (libcontainer, cgroups, signals) refused a step.
    #[error("container {container}: {step}: {reason}")]
    Runtime {
        /// The container id.
        container: String,
        /// What was being done.
        step: &'static str,
        /// The runtime's error.
        reason: String,
    },
}

/// The containers under one state root (e.g. `/run/zos/containers`).
#[derive(Debug, Clone)]
pub struct Containers {
    root: PathBuf,
    shim: ShimCommand,
    cgroups: cgroup::Hierarchies,
}

impl Containers {
    /// Uses (and creates) `state_root`. A tmpfs such as `/run` is the right place: after a reboot
    /// no container runs, and none should be found.
    pub fn new(state_root: PathBuf, shim: ShimCommand) -> Result<Containers, ContainerError> {
        let err = |step| {
            let path = state_root.clone();
            move |source| ContainerError::Root { path, step, source }
        };
        for d in [
            Path::new(""),
            Path::new(RUNTIME_DIR),
            Path::new(WORKLOADS_DIR),
        ] {
            sys::private_dir(&state_root.join(d)).map_err(err("create"))?;
        }
        let root = fs::canonicalize(&state_root).map_err(err("resolve"))?;
        let cgroups = cgroup::Hierarchies::detect().map_err(err("read cgroup mounts"))?;
        Ok(Containers {
            root,
            shim,
            cgroups,
        })
    }

    fn workload_dir(&self, cid: &str) -> PathBuf {
        self.root.join(WORKLOADS_DIR).join(cid)
    }

    fn runtime_dir(&self, cid: &str) -> PathBuf {
        self.root.join(RUNTIME_DIR).join(cid)
    }

    /// Creates and starts the container; returns once its process runs, or with the reason it
    /// could not (then nothing of it is left). Fails with [`ContainerError::Exists`] if a
    /// container with this id exists in any state.
    pub fn start(&self, spec: &ContainerSpec) -> Result<ContainerStatus, ContainerError> {
        spec.id.validate()?;
        let cid = spec.id.container_id();
        spec::validate(spec).map_err(|reason| ContainerError::InvalidSpec {
            container: cid.clone(),
            reason,
        })?;
        let wdir = self.workload_dir(&cid);
        if self.runtime_dir(&cid).exists() {
            return Err(ContainerError::Exists { container: cid });
        }
        match fs::DirBuilder::new().mode(sys::PRIVATE_DIR).create(&wdir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ContainerError::Exists { container: cid });
            }
            Err(source) => {
                return Err(ContainerError::Io {
                    container: cid,
                    step: "create state dir",
                    path: wdir,
                    source,
                });
            }
        }
        let started = Instant::now();
        match self.start_in(spec, &cid, &wdir) {
            Ok(status) => {
                tracing::info!(container = %cid, pid = ?status.pid, elapsed = ?started.elapsed(), "container started");
                Ok(status)
            }
            Err(e) => {
                if let Err(cleanup) = self.remove(&spec.id, Duration::ZERO) {
                    tracing::warn!(container = %cid, error = %cleanup, "cleanup after a failed start");
                }
                Err(e)
            }
        }
    }

    fn start_in(
        &self,
        spec: &ContainerSpec,
        cid: &str,
        wdir: &Path,
    ) -> Result<ContainerStatus, ContainerError> {
        let io = |step, path: &Path| {
            let (container, path) = (cid.to_owned(), path.to_owned());
            move |source| ContainerError::Io {
                container,
                step,
                path,
                source,
            }
        };
        write_bundle(spec, wdir)?;
        let meta = files::Meta {
            labels: spec.labels.clone(),
            created_ms: sys::unix_millis(SystemTime::now()),
        };
        files::write(wdir, files::META, &meta).map_err(io("write", &wdir.join(files::META)))?;
        let shim_log = wdir.join(files::SHIM_LOG);
        let log = sys::open_private(&shim_log, fs::OpenOptions::new().write(true).truncate(true))
            .map_err(io("create", &shim_log))?;

        let mut child = Command::new(&self.shim.program)
            .args(&self.shim.args)
            .arg("--state-root")
            .arg(&self.root)
            .arg("--id")
            .arg(cid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|source| ContainerError::ShimSpawn {
                container: cid.to_owned(),
                program: self.shim.program.clone(),
                source,
            })?;
        let Some(mut stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ContainerError::Runtime {
                container: cid.to_owned(),
                step: "talk to the shim",
                reason: "no stdout pipe".into(),
            });
        };
        let line = read_line(&mut stdout, START_TIMEOUT);
        drop(stdout);
        // The shim's first process exits as soon as it has forked (daemon); reap it.
        if line.is_err() {
            let _ = child.kill();
        }
        let _ = child.wait();
        let line = line.map_err(|e| match e {
            None => ContainerError::Timeout {
                container: cid.to_owned(),
                step: "start",
                after: START_TIMEOUT,
            },
            Some(e) => ContainerError::Runtime {
                container: cid.to_owned(),
                step: "read the shim's report",
                reason: e.to_string(),
            },
        })?;
        match serde_json::from_str::<shim::Report>(line.trim()) {
            Ok(shim::Report::Pid(_)) => {}
            Ok(shim::Report::Error(reason)) => {
                return Err(ContainerError::Start {
                    container: cid.to_owned(),
                    reason,
                });
            }
            Err(_) => {
                let tail = files::file_tail(&shim_log, 5);
                return Err(ContainerError::Start {
                    container: cid.to_owned(),
                    reason: if line.is_empty() {
                        format!("the shim exited without a report; its log: {tail}")
                    } else {
                        format!("unexpected shim report {line:?}; its log: {tail}")
                    },
                });
            }
        }
        self.status(&spec.id)?
            .ok_or_else(|| ContainerError::NotFound {
                container: cid.to_owned(),
            })
    }

    /// The container's state, or `None` if there is no such container.
    pub fn status(&self, id: &WorkloadId) -> Result<Option<ContainerStatus>, ContainerError> {
        id.validate()?;
        let cid = id.container_id();
        let wdir = self.workload_dir(&cid);
        let rdir = self.runtime_dir(&cid);
        if !wdir.exists() && !rdir.exists() {
            return Ok(None);
        }
        let read_err = |name: &'static str| {
            let (container, path) = (cid.clone(), wdir.join(name));
            move |source| ContainerError::Io {
                container,
                step: "read",
                path,
                source,
            }
        };
        let meta: Option<files::Meta> =
            files::read(&wdir, files::META).map_err(read_err(files::META))?;
        let started: Option<files::Started> =
            files::read(&wdir, files::STARTED).map_err(read_err(files::STARTED))?;
        let shim: Option<files::ShimRecord> =
            files::read(&wdir, files::SHIM).map_err(read_err(files::SHIM))?;
        let shim_live = shim.is_some_and(|s| s.is_live());
        let created = meta
            .as_ref()
            .map(|m| sys::from_unix_millis(m.created_ms))
            .unwrap_or_else(SystemTime::now);
        let started_at = started
            .map(|s| sys::from_unix_millis(s.at_ms))
            .unwrap_or(created);

        let mut exit: Option<files::Exit> =
            files::read(&wdir, files::EXIT).map_err(read_err(files::EXIT))?;
        let runtime = Container::load(rdir.clone()).ok();
        let mut pid = None;
        let state = if exit.is_some() {
            None
        } else if let Some(c) = &runtime {
            let init = c.pid().map(|p| p.as_raw());
            let live = init.is_some_and(|p| sys::is_live(p) && cgroup::in_cgroup(p, &cid));
            if live {
                pid = init;
                Some(match c.status() {
                    RuntimeStatus::Paused => RunState::Paused,
                    RuntimeStatus::Creating | RuntimeStatus::Created => RunState::Creating,
                    RuntimeStatus::Running | RuntimeStatus::Stopped => {
                        if self.cgroups.is_frozen(&cid) {
                            RunState::Paused
                        } else {
                            RunState::Running
                        }
                    }
                })
            } else if shim_live && c.status() == RuntimeStatus::Creating {
                Some(RunState::Creating)
            } else {
                None
            }
        } else if shim_live {
            Some(RunState::Creating)
        } else {
            None
        };
        let state = match state {
            Some(s) => s,
            None => {
                if exit.is_none() && shim_live {
                    // The process is gone and its shim is writing down how.
                    sys::wait_until(Duration::from_secs(1), || wdir.join(files::EXIT).exists());
                    exit = files::read(&wdir, files::EXIT).map_err(read_err(files::EXIT))?;
                }
                match exit {
                    Some(e) => RunState::Exited {
                        code: e.code,
                        signal: e.signal,
                        at: sys::from_unix_millis(e.at_ms),
                    },
                    None => RunState::Exited {
                        code: None,
                        signal: None,
                        at: SystemTime::now(),
                    },
                }
            }
        };
        Ok(Some(ContainerStatus {
            pid,
            state,
            started_at,
            labels: meta.map(|m| m.labels).unwrap_or_default(),
            log_tail: files::output_tail(&wdir, LOG_TAIL_LINES),
        }))
    }

    /// The containers found on the host (in any state).
    pub fn list(&self) -> Result<Vec<WorkloadId>, ContainerError> {
        let mut ids = Vec::new();
        for d in [RUNTIME_DIR, WORKLOADS_DIR] {
            let dir = self.root.join(d);
            let entries = fs::read_dir(&dir).map_err(|source| ContainerError::Root {
                path: dir.clone(),
                step: "list",
                source,
            })?;
            ids.extend(entries.flatten().filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(WorkloadId::parse_container_id)
            }));
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// CPU, memory and network use. The container must have a cgroup (it may have exited).
    pub fn stats(&self, id: &WorkloadId) -> Result<ContainerStats, ContainerError> {
        id.validate()?;
        let cid = id.container_id();
        let usage = self
            .cgroups
            .usage(&cid)
            .ok_or_else(|| ContainerError::NotFound {
                container: cid.clone(),
            })?;
        let (net_rx, net_tx) = Container::load(self.runtime_dir(&cid))
            .ok()
            .and_then(|c| c.pid())
            .map(|p| p.as_raw())
            .filter(|p| sys::is_live(*p) && cgroup::in_cgroup(*p, &cid))
            .map(cgroup::net_bytes)
            .unwrap_or((0, 0));
        Ok(ContainerStats {
            cpu_ns: usage.cpu_ns,
            memory_current: usage.memory_current,
            memory_peak: usage.memory_peak,
            net_rx,
            net_tx,
        })
    }

    fn load(&self, id: &WorkloadId) -> Result<(String, Container), ContainerError> {
        id.validate()?;
        let cid = id.container_id();
        match Container::load(self.runtime_dir(&cid)) {
            Ok(c) => Ok((cid, c)),
            Err(_) => Err(ContainerError::NotFound { container: cid }),
        }
    }

    /// Freezes every process of the container (cgroup freezer).
    pub fn pause(&self, id: &WorkloadId) -> Result<(), ContainerError> {
        let (cid, mut c) = self.load(id)?;
        c.pause().map_err(|e| ContainerError::Runtime {
            container: cid,
            step: "pause",
            reason: sys::error_chain(&e),
        })
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &WorkloadId) -> Result<(), ContainerError> {
        let (cid, mut c) = self.load(id)?;
        c.resume().map_err(|e| ContainerError::Runtime {
            container: cid,
            step: "resume",
            reason: sys::error_chain(&e),
        })
    }

    /// Stops and deletes the container: `SIGTERM` to its init, up to `grace` to exit, then
    /// `SIGKILL` to every process in its cgroup; then its shim, cgroups, libcontainer state and
    /// files are removed. Idempotent, and works in any state (running, paused, exited,
    /// half-created by a shim that died, already gone).
    pub fn remove(&self, id: &WorkloadId, grace: Duration) -> Result<(), ContainerError> {
        id.validate()?;
        let cid = id.container_id();
        let wdir = self.workload_dir(&cid);
        let rdir = self.runtime_dir(&cid);
        let runtime_err = |step, reason: String| ContainerError::Runtime {
            container: cid.clone(),
            step,
            reason,
        };

        let init = Container::load(rdir.clone())
            .ok()
            .and_then(|c| c.pid())
            .map(|p| p.as_raw())
            .filter(|p| sys::is_live(*p) && cgroup::in_cgroup(*p, &cid));
        let shim: Option<files::ShimRecord> = files::read(&wdir, files::SHIM).ok().flatten();

        // A frozen process acts on no signal, SIGKILL included.
        self.cgroups
            .thaw(&cid)
            .map_err(|e| runtime_err("thaw", e.to_string()))?;
        if let Some(pid) = init {
            if !grace.is_zero() {
                match kill(Pid::from_raw(pid), Signal::SIGTERM) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => return Err(runtime_err("SIGTERM", format!("pid {pid}: {e}"))),
                }
                sys::wait_until(grace, || !sys::is_live(pid));
            }
        }
        let kill_wait = Duration::from_secs(5);
        let all_dead = sys::wait_until(kill_wait, || {
            self.cgroups.signal_all(&cid, Signal::SIGKILL);
            if let Some(pid) = init.filter(|p| sys::is_live(*p)) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            self.cgroups.procs(&cid).is_empty() && !init.is_some_and(sys::is_live)
        });
        if !all_dead {
            return Err(ContainerError::Timeout {
                container: cid,
                step: "kill the container's processes",
                after: kill_wait,
            });
        }
        // The shim sees its container's output close, reaps the init and exits.
        if let Some(shim) = shim.filter(|s| s.is_live()) {
            if !sys::wait_until(Duration::from_secs(2), || !shim.is_live()) {
                let _ = kill(Pid::from_raw(shim.pid), Signal::SIGKILL);
                if !sys::wait_until(Duration::from_secs(2), || !shim.is_live()) {
                    return Err(runtime_err(
                        "stop the shim",
                        format!("pid {} lives on", shim.pid),
                    ));
                }
            }
        }
        self.cgroups
            .remove(&cid)
            .map_err(|reason| runtime_err("remove cgroups", reason))?;
        for dir in [&rdir, &wdir] {
            match fs::remove_dir_all(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(ContainerError::Io {
                        container: cid,
                        step: "delete state",
                        path: dir.to_path_buf(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        tracing::info!(container = %cid, "container removed");
        Ok(())
    }
}

/// Reads one line within `timeout`. `Err(None)` on timeout; an empty line on EOF.
fn read_line(
    r: &mut std::process::ChildStdout,
    timeout: Duration,
) -> Result<String, Option<io::Error>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(None);
        }
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let ready = {
            let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Some(e.into())),
            }
        };
        if ready == 0 {
            continue;
        }
        match r.read(&mut chunk) {
            Ok(0) => return Ok(String::from_utf8_lossy(&buf).into_owned()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    return Ok(String::from_utf8_lossy(&buf[..end]).into_owned());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(e)),
        }
    }
}

/// Entry point of the shim process. Never returns.
///
/// `args` are the arguments that follow [`ShimCommand::args`] on the shim's command line
/// (`--state-root <dir> --id <container id>`). Call it first thing in `main`, before any thread
/// or async runtime exists: it forks.
pub fn shim_main(args: Vec<String>) -> ! {
    std::process::exit(shim::run(args))
}
