//! The shim: a single-threaded helper process that creates one container with libcontainer and
//! then stays as its monitor.
//!
//! libcontainer's `build()` clones the calling process; the intermediate process clones the
//! container's init with `CLONE_PARENT` (libcontainer `process/fork.rs`,
//! `container_clone_sibling`), so the init is a child of the shim itself and the kernel gives it
//! the shim's `SIGCHLD` exit signal: the shim learns the exit status with `waitpid`.
//!
//! Steps: close inherited descriptors, reset signal dispositions (the init inherits them),
//! `daemon()` (fork: the agent's child
//! exits at once and is reaped by the agent; the grandchild runs in its own session, so signals
//! to the agent's process group do not reach it), build and start the container with its stdout
//! and stderr on a pipe, report `{"pid":N}` or `{"error":"..."}` as one JSON line on stdout, then
//! copy the container's output into `output.log` until the pipe closes (every process of the
//! container's pid namespace is gone), `waitpid` the init and write `exit.json`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::SystemTime;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::Serialize;

use super::files::{self, Exit, OutputLog, ShimRecord, Started};
use super::{RUNTIME_DIR, WORKLOADS_DIR};
use crate::sys;

/// The shim's answer on stdout, one JSON line.
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Report {
    /// The container runs; its init's pid (host namespace).
    Pid(i32),
    /// It could not be started.
    Error(String),
}

struct Args {
    state_root: PathBuf,
    id: String,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let (mut state_root, mut id) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--state-root" => state_root = Some(PathBuf::from(value()?)),
            "--id" => id = Some(value()?),
            other => return Err(format!("unknown shim argument {other:?}")),
        }
    }
    let id: String = id.ok_or("missing --id")?;
    if crate::WorkloadId::parse_container_id(&id).is_none() {
        return Err(format!("--id {id:?} is not a workload's container id"));
    }
    Ok(Args {
        state_root: state_root.ok_or("missing --state-root")?,
        id,
    })
}

fn report(r: &Report) {
    let mut line = serde_json::to_string(r).unwrap_or_else(|_| r#"{"error":"encode"}"#.into());
    line.push('\n');
    let mut out = std::io::stdout().lock();
    // The agent may be gone; the container runs on regardless.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// Signal dispositions and the mask survive fork and exec: the container's init must not inherit
/// what the agent set (Rust ignores `SIGPIPE`; an ignored `SIGCHLD` would even break `waitpid`).
#[allow(unsafe_code)]
fn set_signal(sig: Signal, handler: SigHandler) {
    // SAFETY: only SIG_DFL or SIG_IGN are installed, no handler function runs; the shim is
    // single-threaded (shim_main's contract).
    let _ = unsafe { nix::sys::signal::signal(sig, handler) };
}

/// Every signal back to its default action, the mask empty.
fn reset_signals() {
    // Through the raw system call: glibc's sigaction refuses 32 and 33 (its own), which the
    // environment may have set to ignored and which the init would inherit.
    for sig in 1..=64 {
        set_default_raw(sig);
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

#[allow(unsafe_code)]
fn set_default_raw(sig: i32) {
    // A zeroed kernel `struct sigaction` is SIG_DFL with no flags and an empty mask on every
    // layout (with or without sa_restorer); 32 bytes cover the largest.
    let act = [0u64; 4];
    // SAFETY: rt_sigaction reads `act` (valid, large enough), writes nothing (old action null);
    // SIGKILL, SIGSTOP and numbers past SIGRTMAX fail with EINVAL, which is ignored.
    let _ = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_rt_sigaction,
            sig,
            act.as_ptr(),
            std::ptr::null_mut::<nix::libc::c_void>(),
            8usize,
        )
    };
}

/// Closes every descriptor above stderr that the agent let the shim inherit (Rust opens files
/// close-on-exec, C libraries may not): a long-lived shim must not pin the agent's files.
fn close_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // The read_dir descriptor is among them and already closed: EBADF, ignored.
        let _ = nix::unistd::close(fd);
    }
}

pub(super) fn run(args: Vec<String>) -> i32 {
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            report(&Report::Error(e));
            return 2;
        }
    };
    close_inherited_fds();
    reset_signals();
    // Fork: the parent (the agent's child) exits 0 right here; the child calls setsid().
    if let Err(e) = nix::unistd::daemon(false, true) {
        report(&Report::Error(format!("daemonize the shim: {e}")));
        return 1;
    }
    let wdir = args.state_root.join(WORKLOADS_DIR).join(&args.id);
    let me = ShimRecord {
        pid: std::process::id() as i32,
        start_time: sys::proc_stat(std::process::id() as i32)
            .map(|s| s.start_time)
            .unwrap_or(0),
    };
    if let Err(e) = files::write(&wdir, files::SHIM, &me) {
        report(&Report::Error(format!(
            "record the shim in {}: {e}",
            wdir.display()
        )));
        return 1;
    }
    let (pid, output) = match create(&args, &wdir) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("zos shim {}: {e}", args.id);
            report(&Report::Error(e));
            return 1;
        }
    };
    report(&Report::Pid(pid));
    // Let go of the agent's pipe.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    monitor(&args.id, &wdir, pid, output);
    0
}

/// Builds and starts the container; returns its init pid and the read end of its output.
fn create(args: &Args, wdir: &std::path::Path) -> Result<(i32, File), String> {
    let chain = |what: &str, e: &dyn std::error::Error| format!("{what}: {}", sys::error_chain(e));
    let (out_r, out_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| chain("output pipe", &e))?;
    let err_w = out_w.try_clone().map_err(|e| chain("output pipe", &e))?;
    let stdin = File::open("/dev/null").map_err(|e| chain("open /dev/null", &e))?;

    let mut container = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(args.state_root.join(RUNTIME_DIR))
        .and_then(|b| b.validate_id())
        .map_err(|e| chain("container id or root", &e))?
        .with_stdin(stdin)
        .with_stdout(out_w)
        .with_stderr(err_w)
        .as_init(wdir)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| chain("create", &e))?;
    // libcontainer made its state directory with the default mode.
    if let Err(e) = sys::make_private(&args.state_root.join(RUNTIME_DIR).join(&args.id)) {
        let msg = chain("make the runtime state private", &e);
        let _ = container.delete(true);
        return Err(msg);
    }
    // From here on the shim itself ignores SIGPIPE (a vanished agent must not kill the monitor);
    // the init was cloned already, with default dispositions.
    set_signal(Signal::SIGPIPE, SigHandler::SigIgn);
    if let Err(e) = container.start() {
        let msg = chain("start", &e);
        let _ = container.delete(true);
        return Err(msg);
    }
    let pid = container
        .pid()
        .ok_or("libcontainer recorded no init pid")?
        .as_raw();
    let started = Started {
        pid,
        at_ms: sys::unix_millis(SystemTime::now()),
    };
    files::write(wdir, files::STARTED, &started).map_err(|e| chain("record start", &e))?;
    Ok((pid, File::from(out_r)))
}

/// Copies the container's output to its log until every writer is gone, then reaps the init.
fn monitor(id: &str, wdir: &std::path::Path, pid: i32, mut output: File) {
    let mut log = match OutputLog::open(wdir) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("zos shim {id}: open output log: {e}");
            None
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match output.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(l) = log.as_mut() {
                    if let Err(e) = l.write(&buf[..n]) {
                        eprintln!("zos shim {id}: write output log: {e}");
                        log = None;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("zos shim {id}: read output: {e}");
                break;
            }
        }
    }
    drop(output);
    let status = loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL)) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    let (code, signal) = match status {
        Ok(WaitStatus::Exited(_, code)) => (Some(code), None),
        Ok(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
        other => {
            eprintln!("zos shim {id}: waitpid {pid}: {other:?}");
            (None, None)
        }
    };
    let exit = Exit {
        code,
        signal,
        at_ms: sys::unix_millis(SystemTime::now()),
    };
    if let Err(e) = files::write(wdir, files::EXIT, &exit) {
        // The container is being removed: nothing left to tell.
        eprintln!("zos shim {id}: record exit: {e}");
    }
}
