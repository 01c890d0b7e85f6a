//! Container start latency on this host: `Containers::start` (shim + libcontainer) against
//! Debian's `runc run --detach` of the very same bundle (`write_bundle`). Each start is followed
//! by a removal, outside the measured time.
//!
//! `cargo bench --profile dev -p zos-host --bench start` (as root).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zos_host::container::{write_bundle, ContainerSpec, Containers, ShimCommand};
use zos_host::WorkloadId;

const RUNS: usize = 20;
const WARMUP: usize = 2;

fn main() {
    assert!(nix::unistd::geteuid().is_root(), "the bench needs root");
    assert!(
        Path::new("/bin/busybox").is_file(),
        "the bench needs /bin/busybox"
    );
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("the bench needs runc (Debian package runc)");

    let dir = tempfile::Builder::new()
        .prefix("zos-host-bench-")
        .tempdir()
        .expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).expect("rootfs");
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox");
    for a in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).expect("symlink");
    }
    let containers = Containers::new(
        dir.path().join("state"),
        ShimCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_zos-host-shim")),
            args: Vec::new(),
        },
    )
    .expect("containers");
    let contract = u64::from(std::process::id());
    let spec = |name: &str| ContainerSpec {
        id: WorkloadId::new(contract, name).expect("id"),
        rootfs: rootfs.clone(),
        args: vec!["sleep".into(), "1000".into()],
        env: Vec::new(),
        workdir: None,
        cpu_millis: 1000,
        memory: 64 << 20,
        mounts: Vec::new(),
        labels: BTreeMap::new(),
        network_namespace: None,
    };

    // (a) Containers::start: shim spawn, libcontainer create + start, report.
    let s = spec("bench");
    let mut ours = Vec::new();
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        let st = containers.start(&s).expect("start");
        let took = t.elapsed();
        assert!(st.pid.is_some());
        containers.remove(&s.id, Duration::ZERO).expect("remove");
        if i >= WARMUP {
            ours.push(took);
        }
    }

    // (b) runc run --detach of the same bundle.
    let s = spec("bench-runc");
    let bundle = dir.path().join("bundle");
    write_bundle(&s, &bundle).expect("bundle");
    let runc_root = dir.path().join("runc");
    let cid = s.id.container_id();
    // runc's stdio becomes the container's: a file, not a pipe that would stay open.
    let runc_log = dir.path().join("runc.log");
    let runc_run = |args: &[&str]| -> Result<(), String> {
        let log = fs::File::create(&runc_log).map_err(|e| e.to_string())?;
        let status = Command::new(runc)
            .arg("--root")
            .arg(&runc_root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(fs::read_to_string(&runc_log).unwrap_or_default())
        }
    };
    let mut theirs = Vec::new();
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        runc_run(&[
            "run",
            "--detach",
            "--bundle",
            &bundle.to_string_lossy(),
            &cid,
        ])
        .unwrap_or_else(|e| panic!("runc run: {e}"));
        let took = t.elapsed();
        runc_run(&["delete", "-f", &cid]).unwrap_or_else(|e| panic!("runc delete: {e}"));
        if i >= WARMUP {
            theirs.push(took);
        }
    }

    println!("container start until the process runs, {RUNS} runs (after {WARMUP} warm-up):");
    report("zos-host Containers::start", &mut ours);
    report("runc run --detach", &mut theirs);
}

fn report(what: &str, d: &mut [Duration]) {
    d.sort();
    let pct = |p: f64| d[((p * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1];
    println!(
        "  {what:<28} p50 {:>6.1} ms   p99 {:>6.1} ms   min {:>6.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        d[0].as_secs_f64() * 1e3
    );
}
