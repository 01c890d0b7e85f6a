//! The real binaries together, for the end-to-end tests, the deploy bench and `zos-localgrid`:
//! a dev chain, a loopback OCI registry holding a busybox image, a farm, and node agents.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use zos_chain_client::{
    api,
    keys::{NodeKey, UserKey},
    AccountId32, ChainClient, MultiAddress, Static, Submitter,
};
use zos_contracts::{file::DeploymentFile, sealed::SealFor, Deployment};
use zos_image_store::push::{push_dirs, PushOptions};
use zos_testkit::{binary, registry::Registry, wait_until, ChainNode, Process};

/// One token.
pub const UNIT: u128 = 1_000_000_000_000;

/// Commands of busybox linked into the test image.
const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "sleep", "cat", "echo", "env", "dd", "ls", "date", "true", "false", "wc", "head",
    "mkdir", "rm", "touch", "grep", "yes",
];

/// A dev chain, a registry with a busybox image, and a farm of Alice's.
pub struct Grid {
    /// The chain node.
    pub chain: ChainNode,
    /// The registry.
    pub registry: Registry,
    /// A client of the chain.
    pub client: ChainClient,
    /// Alice: the farmer, and the funder of nodes.
    pub alice: Submitter<UserKey>,
    /// The farm's name.
    pub farm: String,
    /// The farm's id.
    pub farm_id: u32,
    /// The busybox image, `127.0.0.1:PORT/zos/busybox@sha256:…`.
    pub image: String,
    /// A busybox image VMs boot ([`push_vm_image`]), `127.0.0.1:PORT/zos/vm@sha256:…`.
    pub vm_image: String,
}

impl Grid {
    /// Starts a chain and a registry on free ports, pushes the image and creates the farm.
    pub async fn start(farm: &str) -> Result<Grid> {
        Grid::assemble(farm, Registry::start(), ChainNode::dev().await?).await
    }

    /// Pushes the image to `registry` and creates the farm on `chain`.
    pub async fn assemble(farm: &str, registry: Registry, chain: ChainNode) -> Result<Grid> {
        let client = ChainClient::connect(&[chain.ws_url()]).await?;
        let alice = client.submitter(UserKey::from_uri("//Alice")?);
        let farm_id = alice
            .submit(&api::tx().grid().create_farm(farm.as_bytes().to_vec()))
            .await?
            .events
            .find_first::<api::grid::events::FarmCreated>()
            .context("a FarmCreated event")??
            .farm;
        let image = push_busybox(&registry.addr, "zos/busybox").await?;
        let vm_image = push_vm_image(&registry.addr, "zos/vm", &[]).await?;
        Ok(Grid {
            vm_image,
            chain,
            registry,
            client,
            alice,
            farm: farm.to_string(),
            farm_id,
            image,
        })
    }

    /// Alice, the farm's owner, lets `node` register under the farm.
    pub async fn approve(&self, node: &AccountId32) -> Result<()> {
        self.alice
            .submit(&api::tx().grid().approve_node(self.farm_id, *node))
            .await?;
        Ok(())
    }

    /// Sends `amount` from Alice to `account`.
    pub async fn fund(&self, account: &AccountId32, amount: u128) -> Result<()> {
        self.alice
            .submit(
                &api::tx()
                    .balances()
                    .transfer_keep_alive(MultiAddress::Id(*account), amount),
            )
            .await?;
        Ok(())
    }

    /// An agent home under `dir` for this grid's chain and farm, removed from the host (containers,
    /// mounts, loop devices, files) when the test ends, passed or failed.
    pub fn test_home(&self, dir: &Path) -> Result<TestHome> {
        Ok(TestHome(AgentHome::new(
            &dir.join("agent"),
            &self.chain.ws_url(),
            self.farm_id,
        )?))
    }

    /// Approves `home`'s node for the farm (as its owner, Alice), funds its account (1,000 UNIT
    /// from Alice), starts an agent on it and waits until the node is registered; returns the
    /// agent and the node's account.
    pub async fn start_node(&self, home: &AgentHome) -> Result<(Agent, AccountId32)> {
        let node = home.account()?;
        self.approve(&node).await?;
        self.fund(&node, 1_000 * UNIT).await?;
        let agent = Agent::start(home)?;
        let client = self.client.clone();
        wait_until("the node to register", Duration::from_secs(120), || {
            let client = client.clone();
            async move { client.node(&node, None).await.ok().flatten() }
        })
        .await?;
        Ok((agent, node))
    }

    /// Creates a contract for `deployment` on `node`, signed by `owner`; returns its id.
    pub async fn create(
        &self,
        owner: &Submitter<UserKey>,
        node: &AccountId32,
        deployment: &Deployment,
    ) -> Result<u64> {
        let outcome = owner
            .submit(
                &api::tx()
                    .deployments()
                    .create_contract(*node, Static(deployment.clone())),
            )
            .await?;
        Ok(outcome
            .events
            .find_first::<api::deployments::events::ContractCreated>()
            .context("a ContractCreated event")??
            .contract_id)
    }

    /// Replaces a contract's deployment.
    pub async fn update(
        &self,
        owner: &Submitter<UserKey>,
        id: u64,
        deployment: &Deployment,
    ) -> Result<()> {
        owner
            .submit(
                &api::tx()
                    .deployments()
                    .update_contract(id, Static(deployment.clone())),
            )
            .await?;
        Ok(())
    }

    /// Cancels a contract.
    pub async fn cancel(&self, owner: &Submitter<UserKey>, id: u64) -> Result<()> {
        owner
            .submit(&api::tx().deployments().cancel_contract(id))
            .await?;
        Ok(())
    }

    /// The last states the node reported for contract `id`: name → (status, message), with the
    /// deployment version they are for.
    pub async fn states(&self, id: u64) -> Result<Option<(u32, Vec<(String, String, String)>)>> {
        let Some(report) = self.client.workload_states(id, None).await? else {
            return Ok(None);
        };
        let lines = report
            .workloads
            .0
            .into_iter()
            .map(|w| {
                (
                    String::from_utf8_lossy(&w.name.0).into_owned(),
                    format!("{:?}", w.status).to_lowercase(),
                    String::from_utf8_lossy(&w.message.0).into_owned(),
                )
            })
            .collect();
        Ok(Some((report.version, lines)))
    }

    /// Waits until the node reported, for deployment `version` of contract `id`, every workload
    /// in `expected` (name, status) and returns all lines.
    pub async fn wait_states(
        &self,
        id: u64,
        version: u32,
        expected: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Vec<(String, String, String)>> {
        let what = format!("contract {id} v{version} to report {expected:?}");
        let last = std::sync::Mutex::new(None);
        let result = wait_until(&what, timeout, || {
            let fut = self.states(id);
            let last = &last;
            async move {
                let got = fut.await.ok().flatten();
                *last.lock().unwrap_or_else(|p| p.into_inner()) = got.clone();
                let (v, lines) = got?;
                let all = v == version
                    && expected
                        .iter()
                        .all(|(n, s)| lines.iter().any(|(ln, ls, _)| ln == n && ls == s));
                all.then_some(lines)
            }
        })
        .await;
        result.with_context(|| format!("last report on chain: {:?}", last.lock().ok()))
    }
}

/// A node registered on chain by its own (fresh) key under the existing farm `farm_name` of
/// Alice's, approved and funded with 10 UNIT by her: for tests that need a node but no agent.
pub async fn register_node(
    client: &ChainClient,
    farm_name: &str,
    capacity: zos_contracts::Capacity,
) -> Result<NodeKey> {
    let alice = client.submitter(UserKey::from_uri("//Alice")?);
    let farm = client
        .farm_by_name(farm_name, None)
        .await?
        .with_context(|| format!("farm {farm_name:?} exists"))?;
    let node = NodeKey::generate();
    alice
        .submit(&api::tx().grid().approve_node(farm, node.account()))
        .await?;
    alice
        .submit(
            &api::tx()
                .balances()
                .transfer_keep_alive(MultiAddress::Id(node.account()), 10 * UNIT),
        )
        .await?;
    client
        .submitter(node.clone())
        .submit(&api::tx().grid().register_node(
            farm,
            Static(capacity),
            [9; 32],
            Some(b"127.0.0.1:51820".to_vec()),
        ))
        .await?;
    Ok(node)
}

/// Builds a one-layer busybox image and pushes it; returns its pinned reference.
pub async fn push_busybox(registry: &str, repository: &str) -> Result<String> {
    push_busybox_with(registry, repository, &[]).await
}

/// Like [`push_busybox`], with extra files (path in the image, content).
pub async fn push_busybox_with(
    registry: &str,
    repository: &str,
    files: &[(&str, &str)],
) -> Result<String> {
    let dir = busybox_rootfs()?;
    for (path, content) in files {
        let p = dir.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content)?;
    }
    push_dir(registry, repository, dir.path()).await
}

/// The `/sbin/init` of [`push_vm_image`]'s guests: it says on the console that it runs (with
/// its hostname, environment, disks and SSH keys, for tests), powers off when the node presses
/// the power button, and otherwise idles.
pub const VM_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
echo "zos-vm: $($B hostname) is up"
echo "zos-vm: env GREETING=[$GREETING] TOKEN=[$TOKEN]"
for d in /sys/block/vd*; do
    [ -e "$d" ] && echo "zos-vm: disk $($B cat $d/serial) $($B blockdev --getsize64 /dev/${d##*/}) bytes"
done
[ -f /root/.ssh/authorized_keys ] && echo "zos-vm: ssh $($B cat /root/.ssh/authorized_keys)"
for e in /dev/input/event*; do
    ( $B head -c 1 "$e" > /dev/null; echo "zos-vm: power button"; $B sync; $B poweroff -f ) &
done
echo "zos-vm: ready"
while true; do $B sleep 60; done
"#;

/// Builds a busybox image whose `/sbin/init` is [`VM_INIT`], with extra files (path in the
/// image, content), and pushes it; returns its pinned reference.
pub async fn push_vm_image(
    registry: &str,
    repository: &str,
    files: &[(&str, &[u8])],
) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = busybox_rootfs()?;
    for d in ["sbin", "root"] {
        std::fs::create_dir_all(dir.path().join(d))?;
    }
    let init = dir.path().join("sbin/init");
    std::fs::write(&init, VM_INIT)?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    for (path, content) in files {
        let p = dir.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content)?;
    }
    push_dir(registry, repository, dir.path()).await
}

/// Pushes the directory `dir` as a one-layer image; returns its pinned reference.
pub async fn push_dir(registry: &str, repository: &str, dir: &Path) -> Result<String> {
    let pushed = push_dirs(
        &[dir.to_path_buf()],
        &PushOptions::new(registry.to_string(), repository),
    )
    .await
    .map_err(|e| anyhow::anyhow!("push to {registry}: {e}"))?;
    Ok(format!("{registry}/{repository}@{}", pushed.digest()))
}

/// Changes, in an image store at `store`, the stored file whose content is `content`; returns its
/// path.
pub fn tamper_store_file(store: &Path, content: &[u8]) -> Result<String> {
    let mut stack = vec![store.join("content")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let path = e.path();
            if e.file_type()?.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)? == content {
                std::fs::write(&path, b"tampered")?;
                return Ok(path.display().to_string());
            }
        }
    }
    bail!(
        "no stored file holds {:?}",
        String::from_utf8_lossy(content)
    )
}

/// A root filesystem with Debian's static busybox and its applets.
pub fn busybox_rootfs() -> Result<tempfile::TempDir> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: install Debian's busybox-static (scripts/setup.sh does)");
    }
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(busybox, bin.join("busybox"))?;
    for applet in BUSYBOX_APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    for d in ["proc", "dev", "sys", "tmp", "data", "etc"] {
        std::fs::create_dir_all(dir.path().join(d))?;
    }
    Ok(dir)
}

/// A deployment from its YAML form, secrets sealed for `(owner, node)` when given.
pub fn deployment(
    yaml: &str,
    seal_for: Option<(&AccountId32, &AccountId32)>,
) -> Result<Deployment> {
    let seal_for = seal_for.map(|(owner, node)| SealFor {
        owner: owner.0,
        node: node.0,
    });
    Ok(DeploymentFile::from_yaml(yaml)?.into_deployment(seal_for.as_ref())?)
}

/// Serialises the tests of one binary that run agents: container names come from contract ids,
/// and every test's chain starts its ids at 0.
pub async fn one_agent_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Where one agent keeps everything; removed (with its mounts) by the test's cleanup.
pub struct AgentHome {
    /// The root of it all.
    pub root: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// `state_dir`.
    pub state_dir: PathBuf,
    /// `storage_dir`.
    pub storage_dir: PathBuf,
    /// `run_dir`.
    pub run_dir: PathBuf,
}

impl AgentHome {
    /// A configuration under `root` for an agent of `farm` on the chain at `chain_url`, with
    /// the shortest periods the dev chain accepts, and the node's key made already (so that the
    /// farmer can approve the node before it starts).
    pub fn new(root: &Path, chain_url: &str, farm: u32) -> Result<AgentHome> {
        let home = AgentHome {
            root: root.to_path_buf(),
            config: root.join("agent.toml"),
            state_dir: root.join("state"),
            storage_dir: root.join("storage"),
            run_dir: root.join("run"),
        };
        std::fs::create_dir_all(root)?;
        std::fs::write(
            &home.config,
            format!(
                "chain = [\"{chain_url}\"]\nfarm = {farm}\nstate_dir = \"{}\"\nstorage_dir = \"{}\"\nrun_dir = \"{}\"\n\n[periods]\nuptime = 60\nconsumption = 30\nresync = 30\nwatch = 1\n",
                home.state_dir.display(),
                home.storage_dir.display(),
                home.run_dir.display()
            ),
        )?;
        std::fs::create_dir_all(&home.state_dir)?;
        NodeKey::load_or_create(&home.state_dir.join("node.key"))?;
        Ok(home)
    }

    /// Makes the agent offer `cpus` vCPUs whatever the machine has (room for more one-vCPU
    /// contracts than this 2-core machine has cores).
    pub fn offer_cpus(&self, cpus: u64) -> Result<()> {
        let text = std::fs::read_to_string(&self.config)?;
        let millis = cpus * 1000;
        std::fs::write(
            &self.config,
            format!("{text}\n[capacity]\ncpu_millis = {millis}\n"),
        )?;
        Ok(())
    }

    /// Puts the node on `host` of `lab`: its WireGuard endpoint is that host's address (port
    /// 51820, and up for its networks' slots; not published when the host is behind NAT), and
    /// WireGuard's UDP sockets live in that host's namespace.
    pub fn on_lab_host(&self, lab: &zos_testkit::netlab::Lab, host: &str) -> Result<()> {
        let addr = lab
            .address(host)
            .with_context(|| format!("no host {host} in the lab"))?;
        let text = std::fs::read_to_string(&self.config)?;
        std::fs::write(
            &self.config,
            format!(
                "endpoint = \"{addr}:51820\"\nbehind_nat = {}\n{text}\n[networks]\nhost_namespace = \"{}\"\n",
                lab.is_behind_nat(host),
                lab.host_ns(host).display()
            ),
        )?;
        Ok(())
    }

    /// The network namespace of workload `name` of `contract` on its private network.
    pub fn container_namespace(&self, contract: u64, name: &str) -> PathBuf {
        self.run_dir
            .join("networks/containers")
            .join(container_id(contract, name))
    }

    /// The node's account (its key is made with the home).
    pub fn account(&self) -> Result<AccountId32> {
        Ok(NodeKey::load_or_create(&self.state_dir.join("node.key"))?.account())
    }
}

/// An [`AgentHome`] that [`clean_host`]s when dropped.
pub struct TestHome(pub AgentHome);

impl std::ops::Deref for TestHome {
    type Target = AgentHome;

    fn deref(&self) -> &AgentHome {
        &self.0
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        clean_host(&self.0);
    }
}

/// Waits until nothing of contract `contract` is left on the host (see [`leftovers`]).
pub async fn wait_gone(contract: u64, home: &AgentHome, timeout: Duration) -> Result<()> {
    wait_until(
        &format!("everything of contract {contract} to leave the host"),
        timeout,
        || {
            let left = leftovers(contract, home);
            async move { left.is_empty().then_some(()) }
        },
    )
    .await
    .with_context(|| format!("left: {:?}", leftovers(contract, home)))
}

/// A running `zos-agent`.
pub struct Agent {
    /// The process (killed with its group when dropped; containers live on in their own).
    pub process: Process,
    /// Print its last lines when dropped (the test harness shows them only for a failing test).
    pub show_log_on_drop: bool,
}

impl Agent {
    /// Starts `zos-agent run` with `home`'s configuration.
    pub fn start(home: &AgentHome) -> Result<Agent> {
        let mut cmd = Command::new(binary("zos-agent", "ZOS_AGENT_BIN")?);
        cmd.arg("run").arg("--config").arg(&home.config).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,zos_agent=debug".into()),
        );
        Ok(Agent {
            process: Process::spawn("zos-agent", cmd)?,
            show_log_on_drop: true,
        })
    }

    /// `zos-agent status` on `home`, as JSON.
    pub fn status(home: &AgentHome) -> Result<serde_json::Value> {
        let out = Command::new(binary("zos-agent", "ZOS_AGENT_BIN")?)
            .args(["status", "--json", "--config"])
            .arg(&home.config)
            .output()?;
        if !out.status.success() {
            bail!("zos-agent status: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if !self.show_log_on_drop {
            return;
        }
        // The test harness shows this only for a failing test.
        eprintln!(
            "---- zos-agent's last lines ----\n{}\n----",
            self.process.tail()
        );
    }
}

/// The host as a container sees it: `zos-<contract>-<name>`.
pub fn container_id(contract: u64, name: &str) -> String {
    format!("zos-{contract}-{name}")
}

/// The processes in a container's cgroup (empty when it does not run).
pub fn container_pids(contract: u64, name: &str) -> Vec<i32> {
    let path = format!(
        "/sys/fs/cgroup/pids/zos/{}/cgroup.procs",
        container_id(contract, name)
    );
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A container's main process: the one whose parent is outside the container.
pub fn container_main_pid(contract: u64, name: &str) -> Option<i32> {
    let pids = container_pids(contract, name);
    pids.iter().copied().find(|pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid: i32 = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        !pids.contains(&ppid)
    })
}

/// An environment variable of a process.
pub fn process_env(pid: i32, key: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// A file as a container's process sees it.
pub fn read_in_container(pid: i32, path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/root{path}")).ok()
}

/// What is left on the host of contract `contract`: processes, cgroups, mounts, files under
/// the agent's directories. Empty when it was all removed.
pub fn leftovers(contract: u64, home: &AgentHome) -> Vec<String> {
    let tag = format!("zos-{contract}-");
    let mut found = Vec::new();
    if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
        for c in controllers.flatten() {
            if let Ok(entries) = std::fs::read_dir(c.path().join("zos")) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&tag) {
                        found.push(format!("cgroup {}", e.path().display()));
                    }
                }
            }
        }
    }
    for pid in processes_naming(&home.run_dir.join("vms").join(&tag).to_string_lossy()) {
        found.push(format!("process {pid}"));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        if line.contains(&tag) {
            found.push(format!("mount {line}"));
        }
    }
    for dir in [&home.storage_dir, &home.run_dir] {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                if name.contains(&tag) {
                    found.push(format!("file {}", path.display()));
                } else if e.file_type().map(|t| t.is_dir()).unwrap_or(false)
                    && !path.starts_with(home.storage_dir.join("images/content"))
                {
                    stack.push(path);
                }
            }
        }
    }
    found
}

/// Live processes whose command line holds `needle` (not this process).
pub fn processes_naming(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            })
        })
        .collect()
}

/// Removes an agent's containers, mounts and files after a test, whatever state it left.
pub fn clean_host(home: &AgentHome) {
    // The containers this agent made: every `zos-…` name under its run directory.
    let mut ids = std::collections::BTreeSet::new();
    let mut stack = vec![home.run_dir.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("zos-") {
                ids.insert(name);
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    for id in &ids {
        let freezer = format!("/sys/fs/cgroup/freezer/zos/{id}/freezer.state");
        let _ = std::fs::write(freezer, "THAWED");
        let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/zos/{id}/cgroup.procs"))
            .unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for id in &ids {
        for _ in 0..50 {
            let mut left = false;
            if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
                for c in controllers.flatten() {
                    let dir = c.path().join("zos").join(id);
                    if dir.exists() && std::fs::remove_dir(&dir).is_err() {
                        left = true;
                    }
                }
            }
            if !left {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // VMs (QEMU, virtiofsd) run detached from the agent: every process naming the home goes.
    for pid in processes_naming(&home.root.to_string_lossy()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Mounts under the home, deepest first.
    let root = home.root.to_string_lossy().into_owned();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&root))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    // Loop devices of its volumes.
    if let Ok(devices) = std::fs::read_dir("/sys/block") {
        for d in devices.flatten() {
            let backing =
                std::fs::read_to_string(d.path().join("loop/backing_file")).unwrap_or_default();
            if backing.starts_with(&root) {
                let _ = Command::new("losetup")
                    .arg("-d")
                    .arg(Path::new("/dev").join(d.file_name()))
                    .status();
            }
        }
    }
    let _ = std::fs::remove_dir_all(&home.root);
}

/// A registry that drips: a proxy on a free loopback port in front of a real registry, passing
/// its answers on a few bytes at a time, for tests of pulls that take forever. Stops when dropped.
pub struct DrippingRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DrippingRegistry {
    /// A proxy to the registry at `upstream` that passes its answers on `chunk` bytes at a time,
    /// `every` apart (headers included), one request per connection.
    pub async fn start(upstream: &str, chunk: usize, every: Duration) -> Result<DrippingRegistry> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (upstream, counter) = (upstream.to_string(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (upstream, counter) = (upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = vec![0u8; 4096];
                    let end = loop {
                        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end;
                        }
                        let n = client.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        head.extend_from_slice(&buf[..n]);
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    head.truncate(end);
                    head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
                    let mut up = tokio::net::TcpStream::connect(&upstream).await?;
                    up.write_all(&head).await?;
                    let mut buf = vec![0u8; chunk];
                    loop {
                        let n = up.read(&mut buf).await?;
                        if n == 0 {
                            return Ok(());
                        }
                        client.write_all(&buf[..n]).await?;
                        tokio::time::sleep(every).await;
                    }
                });
            }
        });
        Ok(DrippingRegistry {
            addr,
            requests,
            task,
        })
    }

    /// Requests it has received.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for DrippingRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}
