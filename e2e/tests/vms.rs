//! VMs for real, from contract to guest: a dev chain, a loopback registry, `zos-agent` as root,
//! QEMU (TCG on these machines) booting the node's default kernel with the VM's root filesystem
//! shared from the image store over virtiofs, and a disk.

use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{ensure, Context, Result};
use zos_chain_client::keys::UserKey;
use zos_e2e::{deployment, leftovers, processes_naming, push_vm_image, wait_gone, Agent, Grid};
use zos_testkit::wait_until;

const DEPLOY: Duration = Duration::from_secs(240);

fn vm(image: &str, greeting: &str) -> String {
    format!(
        "workloads:
  - name: box
    vm:
      image: {image}
      vcpus: 1
      memory: 256MiB
      disks: [data]
      env: {{ GREETING: {greeting}, TOKEN: {{ secret: s3cr3t }} }}
      ssh_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2 tester@e2e]
  - name: data
    disk: {{ size: 64MiB }}
"
    )
}

fn vm_dir(home: &Path, contract: u64) -> PathBuf {
    home.join("run/vms")
        .join(zos_e2e::container_id(contract, "box"))
}

async fn console(home: &Path, contract: u64, want: &str) -> Result<String> {
    let log = vm_dir(home, contract).join("console.log");
    wait_until(
        &format!("{want:?} on the console of contract {contract}'s VM"),
        DEPLOY,
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move { text.contains(want).then_some(text) }
        },
    )
    .await
}

fn qemu_pid(home: &Path, contract: u64) -> Result<i32> {
    let path = vm_dir(home, contract).join("qemu.pid");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("{}", path.display()))?
        .trim()
        .parse()?)
}

/// Bytes the files under `dir` take on disk, each inode once (the store hardlinks), leaving out
/// each workload's writable layer (`layer.img`, mounted at `layer/`: the guest's own writes) and
/// the overlay mounted at `merged/` (a view of the rest).
fn disk_bytes(dir: &Path) -> u64 {
    const SKIP: [&str; 3] = ["layer.img", "layer", "merged"];
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if SKIP.contains(&&*e.file_name().to_string_lossy()) {
                continue;
            }
            if meta.is_dir() {
                stack.push(e.path());
            }
            if seen.insert((meta.dev(), meta.ino())) {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

/// An image of the node's default kernel package, cut to the kernel and the modules a VM needs.
async fn push_kernel_image(registry: &str) -> Result<String> {
    let package = Path::new("/opt/zos/kernel");
    let dir = tempfile::tempdir()?;
    let boot = package.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .with_context(|| format!("{}: run scripts/setup.sh", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("no vmlinuz")?;
    let release = vmlinuz.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    std::fs::create_dir_all(dir.path().join("boot"))?;
    std::fs::copy(
        &vmlinuz,
        dir.path().join("boot").join(vmlinuz.file_name().unwrap()),
    )?;
    let modules = package.join("lib/modules").join(&release);
    let mut stack = vec![modules.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let wanted = zos_host::vm::boot::MODULES
                .iter()
                .any(|m| name == format!("{m}.ko"))
                || name == "modules.builtin";
            if path.is_dir() {
                stack.push(path);
            } else if wanted {
                let to = dir.path().join(path.strip_prefix(package)?);
                std::fs::create_dir_all(to.parent().unwrap())?;
                std::fs::copy(&path, to)?;
            }
        }
    }
    zos_e2e::push_dir(registry, "zos/kernel", dir.path()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_contract_boots_survives_the_agent_refuses_a_tampered_file_and_leaves_nothing(
) -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let grid = Grid::start("e2e-vms").await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    let (mut agent, node) = grid.start_node(home).await?;
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);
    // An image with 8 MiB of data beside busybox, and a file of its own to tamper with later.
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let image = push_vm_image(
        &grid.registry.addr,
        "zos/vm-e2e",
        &[("data/blob", &data), ("etc/vm-marker", b"vm-marker-file")],
    )
    .await?;

    // A VM with a disk: `ok` on chain, its init reached, with its env (the sealed value opened),
    // hostname, SSH key and a disk of its size.
    let first = grid
        .create(
            &bob,
            &node,
            &deployment(&vm(&image, "hello"), Some((bob.account(), &node)))?,
        )
        .await?;
    grid.wait_states(first, 1, &[("box", "ok"), ("data", "ok")], DEPLOY)
        .await?;
    let text = console(&home.root, first, "zos-vm: ready").await?;
    ensure!(text.contains("zos-vm: box is up"), "{text}");
    ensure!(
        text.contains("zos-vm: env GREETING=[hello] TOKEN=[s3cr3t]"),
        "{text}"
    );
    ensure!(text.contains("zos-vm: disk data 67108864 bytes"), "{text}");
    ensure!(
        text.contains("zos-vm: ssh ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e2 tester@e2e"),
        "{text}"
    );
    let disk = home
        .storage_dir
        .join("disks")
        .join(format!("{}.raw", zos_e2e::container_id(first, "data")));
    ensure!(std::fs::metadata(&disk)?.len() == 64 << 20);
    let reserved = grid.client.reserved(&node, None).await?;
    ensure!(reserved.cpu_millis == 1000, "reserved {reserved:?}");
    // The node said on chain how it runs VMs (TCG on these machines: its KVM probe fails).
    let hypervisor = grid.client.node_hypervisor(&node, None).await?;
    eprintln!("the node runs VMs with {hypervisor:?}");
    ensure!(hypervisor.is_some(), "the node's hypervisor is on chain");

    // The agent killed with -9 and started again finds the same QEMU and leaves it be.
    let pid = qemu_pid(&home.root, first)?;
    agent.process.kill9();
    let mut agent = Agent::start(home)?;
    grid.wait_states(first, 1, &[("box", "ok")], DEPLOY).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        qemu_pid(&home.root, first)? == pid
            && processes_naming(&vm_dir(&home.root, first).to_string_lossy()).contains(&pid),
        "the same QEMU runs on"
    );

    // A second VM of the same image adds its directories and hardlinks, not a copy of the files.
    let images = home.storage_dir.join("images");
    let before = disk_bytes(&images);
    let second = grid
        .create(
            &bob,
            &node,
            &deployment(&vm(&image, "again"), Some((bob.account(), &node)))?,
        )
        .await?;
    grid.wait_states(second, 1, &[("box", "ok")], DEPLOY)
        .await?;
    console(&home.root, second, "zos-vm: ready").await?;
    let added = disk_bytes(&images).saturating_sub(before);
    let image_bytes = data.len() as u64;
    eprintln!(
        "a second VM of the image added {added} bytes to the store (the image: {image_bytes} bytes)"
    );
    ensure!(
        added * 100 < image_bytes,
        "a second VM added {added} bytes for an image of {image_bytes}"
    );

    // Canceled: QEMU, virtiofsd, the root filesystem, the disk and every file go.
    grid.cancel(&bob, second).await?;
    grid.cancel(&bob, first).await?;
    wait_gone(first, home, DEPLOY).await?;
    wait_gone(second, home, DEPLOY).await?;
    ensure!(!disk.exists(), "the disk is removed with its contract");
    ensure!(
        processes_naming(&home.run_dir.join("vms").to_string_lossy()).is_empty(),
        "no QEMU or virtiofsd is left"
    );

    // A VM with its own kernel image (a kernel package's files, here the modules it needs only):
    // booted from it. An image with no kernel is an error that names what is missing.
    let kernel = push_kernel_image(&grid.registry.addr).await?;
    let own = grid
        .create(
            &bob,
            &node,
            &deployment(
                &vm(&image, "own-kernel").replace(
                    "      vcpus: 1\n",
                    &format!("      kernel: {kernel}\n      vcpus: 1\n"),
                ),
                Some((bob.account(), &node)),
            )?,
        )
        .await?;
    grid.wait_states(own, 1, &[("box", "ok")], DEPLOY).await?;
    console(&home.root, own, "zos-vm: ready").await?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", qemu_pid(&home.root, own)?))?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let own_kernels: Vec<PathBuf> = std::fs::read_dir(home.storage_dir.join("vm-boot/images"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("vmlinux").is_file())
        .collect();
    ensure!(
        own_kernels.len() == 1
            && cmdline.contains(&*own_kernels[0].join("vmlinux").to_string_lossy()),
        "the VM boots the kernel made from its kernel image: {cmdline} ({own_kernels:?})"
    );
    let bad = grid
        .create(
            &bob,
            &node,
            &deployment(
                &vm(&image, "no-kernel").replace(
                    "      vcpus: 1\n",
                    &format!("      kernel: {}\n      vcpus: 1\n", grid.image),
                ),
                Some((bob.account(), &node)),
            )?,
        )
        .await?;
    let lines = grid
        .wait_states(bad, 1, &[("box", "error")], DEPLOY)
        .await?;
    ensure!(
        lines.iter().any(|l| l
            .2
            .contains("no boot/vmlinuz-<release> in the kernel image")),
        "{lines:?}"
    );
    grid.cancel(&bob, own).await?;
    grid.cancel(&bob, bad).await?;
    wait_gone(own, home, DEPLOY).await?;
    wait_gone(bad, home, DEPLOY).await?;

    // A file of the image changed in the store: the next VM of it does not launch, and the
    // chain hears which file.
    zos_e2e::tamper_store_file(&images, b"vm-marker-file")?;
    let third = grid
        .create(
            &bob,
            &node,
            &deployment(&vm(&image, "tampered"), Some((bob.account(), &node)))?,
        )
        .await?;
    let lines = grid
        .wait_states(third, 1, &[("box", "error")], DEPLOY)
        .await?;
    let message = &lines.iter().find(|l| l.0 == "box").context("box")?.2;
    ensure!(
        message.contains("etc/vm-marker"),
        "the message names the file: {lines:?}"
    );
    ensure!(
        !vm_dir(&home.root, third).join("qemu.pid").exists(),
        "a tampered image never boots"
    );
    grid.cancel(&bob, third).await?;
    wait_gone(third, home, DEPLOY).await?;
    ensure!(leftovers(third, home).is_empty());
    agent.show_log_on_drop = false;
    Ok(())
}
