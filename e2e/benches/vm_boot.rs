//! From contract finalized to the guest's init reached, through the whole grid (dev chain,
//! registry, `zos-agent`, the image store, QEMU and virtiofsd), interleaved with a bare boot of the
//! same kernel, initramfs and root files by hand (`zos_host::vm::Vms` straight, no chain, no
//! agent, no store), so that load hits both alike.
//!
//! `cargo bench --profile dev -p zos-e2e --bench vm_boot` (as root; `scripts/setup.sh` installs
//! QEMU, virtiofsd and the default kernel).

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use zos_chain_client::keys::UserKey;
use zos_e2e::{busybox_rootfs, clean_host, container_id, deployment, AgentHome, Grid, VM_INIT};
use zos_host::{
    vm::{self, boot, Accel, VmHost, VmSpec, Vms},
    WorkloadId,
};
use zos_testkit::wait_until;

const ROUNDS: usize = 10;
const READY: &str = "zos-vm: ready";

fn vm(image: &str) -> String {
    format!(
        "workloads:\n  - name: box\n    vm:\n      image: {image}\n      vcpus: 1\n      memory: 256MiB\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name:<46} n={:<3} p50 {:>6.2} s   p99 {:>6.2} s   min {:>6.2} s   max {:>6.2} s",
        times.len(),
        percentile(&times, 0.5).as_secs_f64(),
        percentile(&times, 0.99).as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
    );
}

fn wait_for(log: &Path, marker: &str, since: Instant) -> Result<Duration> {
    let deadline = since + Duration::from_secs(180);
    loop {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(marker)) {
            return Ok(since.elapsed());
        }
        ensure!(
            Instant::now() < deadline,
            "no {marker:?} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let grid = Grid::start("vm-bench").await?;
    let dir = tempfile::tempdir()?;
    let home = AgentHome::new(
        &dir.path().join("agent"),
        &grid.chain.ws_url(),
        grid.farm_id,
    )?;
    let result = run(&grid, &home, dir.path()).await;
    clean_host(&home);
    result
}

async fn run(grid: &Grid, home: &AgentHome, scratch: &Path) -> Result<()> {
    let (mut agent, node) = grid.start_node(home).await?;
    agent.show_log_on_drop = false;

    // The bare boot: the same kernel and initramfs (made the same way), the same init.
    let root = busybox_rootfs()?;
    std::fs::create_dir_all(root.path().join("sbin"))?;
    let init = root.path().join("sbin/init");
    std::fs::write(&init, VM_INIT)?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    let host = VmHost {
        qemu: "qemu-system-x86_64".into(),
        virtiofsd: "/opt/zos/bin/virtiofsd".into(),
        accel: Accel::Tcg,
        tsc_khz: vm::host_tsc_khz(),
        boot: boot::prepare(
            Path::new("/opt/zos/kernel"),
            Path::new("/bin/busybox"),
            &scratch.join("boot"),
        )?,
        busybox: "/bin/busybox".into(),
        boot_cache: scratch.join("boot"),
    };
    let bare = Vms::new(scratch.join("bare"), host)?;

    let owner = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let d = deployment(&vm(&grid.vm_image), None)?;
    // One deploy first, so that the image is in the store (cached) for the timed ones.
    let first = grid.create(&owner, &node, &d).await?;
    let log = |id: u64| {
        home.run_dir
            .join("vms")
            .join(container_id(id, "box"))
            .join("console.log")
    };
    wait_for(&log(first), READY, Instant::now())?;
    grid.cancel(&owner, first).await?;

    let (mut grid_times, mut bare_times) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let id = grid.create(&owner, &node, &d).await?;
        let finalized = Instant::now();
        grid_times.push(wait_for(&log(id), READY, finalized)?);
        grid.cancel(&owner, id).await?;
        wait_until("the VM to go", Duration::from_secs(60), || {
            let gone = !home
                .run_dir
                .join("vms")
                .join(container_id(id, "box"))
                .exists();
            async move { gone.then_some(()) }
        })
        .await?;

        let spec = VmSpec {
            id: WorkloadId::new(900_000 + round as u64, "bare").context("id")?,
            vcpus: 1,
            memory: 256 << 20,
            root: root.path().to_path_buf(),
            disks: vec![],
            hostname: "bare".into(),
            env: vec![],
            ssh_keys: vec![],
            boot: None,
            labels: BTreeMap::new(),
            network: None,
        };
        let started = Instant::now();
        bare.start(&spec)?;
        bare_times.push(wait_for(&bare.console_log(&spec.id), READY, started)?);
        bare.remove(&spec.id, Duration::from_secs(10))?;
    }
    agent.process.check_running()?;

    println!();
    report("contract finalized -> guest init reached", grid_times);
    report("bare QEMU + virtiofsd (same kernel, init)", bare_times);
    Ok(())
}
