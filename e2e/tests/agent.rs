//! The node agent for real: a dev chain, a loopback registry, `zos-agent` as root, containers
//! through libcontainer, volumes on loop devices. Each test has its own chain, registry and agent
//! directories, and removes what it made on the host even when it fails.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use zos_chain_client::keys::UserKey;
use zos_contracts::file::{DeploymentFile, EnvFile};
use zos_e2e::{
    container_main_pid, deployment, leftovers, process_env, read_in_container, wait_gone, Agent,
    Grid,
};
use zos_testkit::wait_until;

const DEPLOY: Duration = Duration::from_secs(120);

fn app(version: u32, app_version: u32, image: &str, greeting: &str) -> String {
    format!(
        "version: {version}
workloads:
  - name: data
    volume: {{ size: 64MiB }}
  - name: app
    version: {app_version}
    container:
      image: {image}
      entrypoint: [/bin/sh, -c]
      args: ['echo $GREETING > /data/greeting; echo run >> /data/runs; exec sleep 100000']
      env: {{ GREETING: {greeting}, TOKEN: {{ secret: s3cr3t }} }}
      cpu: 500m
      memory: 64MiB
      mounts: [{{ volume: data, path: /data }}]
"
    )
}

fn cgroup_value(controller: &str, contract: u64, name: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/{controller}/zos/{}/{file}",
        zos_e2e::container_id(contract, name)
    ))
    .ok()
    .map(|s| s.trim().to_string())
}

async fn running_pid(contract: u64, name: &str) -> Result<i32> {
    wait_until(
        &format!("container {name} of contract {contract} to run"),
        DEPLOY,
        || async move { container_main_pid(contract, name) },
    )
    .await
}

async fn file_in(pid: i32, path: &str, want: &str) -> Result<String> {
    let what = format!("{path} in the container to hold {want:?}");
    wait_until(&what, Duration::from_secs(30), || async move {
        read_in_container(pid, path).filter(|t| t.contains(want))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_runs_with_its_limits_updates_and_leaves_nothing_when_canceled() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let grid = Grid::start("e2e-lifecycle").await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    let (mut agent, node) = grid.start_node(home).await?;

    // Registered with this machine's capacity.
    let registered = grid.client.node(&node, None).await?.context("registered")?;
    let cpus = std::thread::available_parallelism()?.get() as u64;
    ensure!(
        registered.capacity.cpu_millis == cpus * 1000,
        "cpu_millis {} != {cpus} CPUs",
        registered.capacity.cpu_millis
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let total_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("MemTotal")?
        .parse()?;
    ensure!(
        registered.capacity.mru == total_kib * 1024 - (1 << 30),
        "mru {}",
        registered.capacity.mru
    );
    ensure!(registered.capacity.sru > 0);

    // Deployed: runs with its limits and env, writes to its volume, `ok` on chain, reserved.
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let d1 = deployment(
        &app(1, 1, &grid.image, "hello"),
        Some((bob.account(), &node)),
    )?;
    let id = grid.create(&bob, &node, &d1).await?;
    grid.wait_states(id, 1, &[("data", "ok"), ("app", "ok")], DEPLOY)
        .await?;
    let pid = running_pid(id, "app").await?;
    ensure!(process_env(pid, "GREETING").as_deref() == Some("hello"));
    ensure!(
        process_env(pid, "TOKEN").as_deref() == Some("s3cr3t"),
        "the sealed secret is opened"
    );
    file_in(pid, "/data/greeting", "hello").await?;
    ensure!(
        cgroup_value("memory", id, "app", "memory.limit_in_bytes").as_deref() == Some("67108864"),
        "memory limit"
    );
    ensure!(
        cgroup_value("cpu", id, "app", "cpu.cfs_quota_us").as_deref() == Some("50000"),
        "cpu quota"
    );
    let reserved = grid.client.reserved(&node, None).await?;
    ensure!(reserved == d1.capacity(), "reserved {reserved:?}");
    let status = Agent::status(home)?;
    ensure!(
        status["workloads"].as_array().is_some_and(|w| w.len() == 2),
        "zos-agent status lists both workloads: {status}"
    );

    // Charlie copies Bob's sealed TOKEN from chain storage into his own contract on this node:
    // the node refuses to open it, says which variable and why, and never starts the container.
    let stored = grid.client.contract(id, None).await?.context("on chain")?;
    let file = DeploymentFile::from_deployment(&stored.deployment)?;
    let Some(EnvFile::Sealed { sealed }) = file.workloads[1]
        .container
        .as_ref()
        .and_then(|c| c.env.get("TOKEN"))
    else {
        anyhow::bail!("TOKEN is sealed on chain: {file:?}");
    };
    let charlie = grid.client.submitter(UserKey::from_uri("//Charlie")?);
    let copy = format!(
        "workloads:\n  - name: app\n    container:\n      image: {}\n      entrypoint: [/bin/sh, -c, 'echo $TOKEN; exec sleep 100000']\n      env: {{ TOKEN: {{ sealed: {sealed} }} }}\n      cpu: 100m\n      memory: 16MiB\n",
        grid.image
    );
    let stolen = grid
        .create(&charlie, &node, &deployment(&copy, None)?)
        .await?;
    let lines = grid
        .wait_states(stolen, 1, &[("app", "error")], DEPLOY)
        .await?;
    ensure!(
        lines[0].2.contains("env TOKEN") && lines[0].2.contains("sealed for another owner"),
        "the error names the variable and the reason: {lines:?}"
    );
    ensure!(
        container_main_pid(stolen, "app").is_none()
            && !leftovers(stolen, home)
                .iter()
                .any(|l| l.starts_with("cgroup")),
        "the copy's container never started: {:?}",
        leftovers(stolen, home)
    );
    grid.cancel(&charlie, stolen).await?;
    wait_gone(stolen, home, DEPLOY).await?;

    // Updated env: restarted with it, the volume's data kept.
    let d2 = deployment(
        &app(2, 2, &grid.image, "bonjour"),
        Some((bob.account(), &node)),
    )?;
    grid.update(&bob, id, &d2).await?;
    grid.wait_states(id, 2, &[("data", "ok"), ("app", "ok")], DEPLOY)
        .await?;
    let pid2 = wait_until("the new container", DEPLOY, || async move {
        container_main_pid(id, "app").filter(|p| *p != pid)
    })
    .await?;
    ensure!(process_env(pid2, "GREETING").as_deref() == Some("bonjour"));
    file_in(pid2, "/data/greeting", "bonjour").await?;
    let runs = file_in(pid2, "/data/runs", "run\nrun").await?;
    ensure!(
        runs.lines().count() == 2,
        "the volume kept the first run's line: {runs:?}"
    );

    // Canceled: nothing of it is left on the host.
    grid.cancel(&bob, id).await?;
    wait_gone(id, home, DEPLOY).await?;
    agent.process.check_running()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_converges_after_a_crash_and_after_losing_its_state() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let grid = Grid::start("e2e-crash").await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    let (mut agent, node) = grid.start_node(home).await?;
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);

    // kill -9 in the middle of a deploy.
    let d = deployment(
        &app(1, 1, &grid.image, "hello"),
        Some((bob.account(), &node)),
    )?;
    let id = grid.create(&bob, &node, &d).await?;
    wait_until("the deploy to start on the host", DEPLOY, || {
        let left = leftovers(id, home);
        async move { (!left.is_empty()).then_some(()) }
    })
    .await?;
    agent.process.kill9();
    let mut agent = Agent::start(home)?;
    grid.wait_states(id, 1, &[("data", "ok"), ("app", "ok")], DEPLOY)
        .await?;
    let pid = running_pid(id, "app").await?;
    file_in(pid, "/data/greeting", "hello").await?;
    std::fs::write(format!("/proc/{pid}/root/data/marker"), "kept")?;

    // Its state dir deleted (the key kept): it finds everything again, the data survives.
    agent.process.kill9();
    for entry in std::fs::read_dir(&home.state_dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "key") {
            std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path))?;
        }
    }
    let mut agent2 = Agent::start(home)?;
    wait_until("the agent to report again", DEPLOY, || async {
        Agent::status(home)
            .ok()
            .filter(|s| s["workloads"].as_array().is_some_and(|w| w.len() == 2))
    })
    .await?;
    let pid_after = running_pid(id, "app").await?;
    ensure!(
        read_in_container(pid_after, "/data/marker").as_deref() == Some("kept"),
        "volume data survived"
    );
    grid.wait_states(id, 1, &[("data", "ok"), ("app", "ok")], DEPLOY)
        .await?;
    agent2.process.check_running()?;
    drop(agent);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_images_are_errors_on_chain_and_nothing_else_is_touched() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let grid = Grid::start("e2e-bad").await?;
    let dir = tempfile::tempdir()?;
    let home = &grid.test_home(dir.path())?;
    home.offer_cpus(16)?;
    let (mut agent, node) = grid.start_node(home).await?;
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let sleeper = |name: &str, image: &str| {
        format!(
            "  - name: {name}\n    container:\n      image: {image}\n      entrypoint: [/bin/sleep, '100000']\n      cpu: 100m\n      memory: 16MiB\n"
        )
    };

    // A healthy contract first.
    let other = grid
        .create(
            &bob,
            &node,
            &deployment(
                &format!("workloads:\n{}", sleeper("web", &grid.image)),
                None,
            )?,
        )
        .await?;
    grid.wait_states(other, 1, &[("web", "ok")], DEPLOY).await?;
    let other_pid = running_pid(other, "web").await?;

    // A digest the registry does not have: that workload is an error, its sibling runs.
    let repo = grid.image.split('@').next().context("image")?;
    let missing = format!("{repo}@sha256:{}", "ab".repeat(32));
    let id = grid
        .create(
            &bob,
            &node,
            &deployment(
                &format!(
                    "workloads:\n{}{}",
                    sleeper("good", &grid.image),
                    sleeper("ghost", &missing)
                ),
                None,
            )?,
        )
        .await?;
    let lines = grid
        .wait_states(id, 1, &[("good", "ok"), ("ghost", "error")], DEPLOY)
        .await?;
    let ghost = lines.iter().find(|l| l.0 == "ghost").context("ghost")?;
    ensure!(
        ghost.2 == format!("pulling {missing}: not found"),
        "the message names the image and the kind of failure, not the registry's words: {ghost:?}"
    );

    // A file of an image changed in the store: the launch stops and names the file.
    let image2 =
        zos_e2e::push_busybox_with(&grid.registry.addr, "zos/motd", &[("etc/motd", "welcome")])
            .await?;
    let first = grid
        .create(
            &bob,
            &node,
            &deployment(&format!("workloads:\n{}", sleeper("motd", &image2)), None)?,
        )
        .await?;
    grid.wait_states(first, 1, &[("motd", "ok")], DEPLOY)
        .await?;
    grid.cancel(&bob, first).await?;
    wait_gone(first, home, DEPLOY).await?;
    let tampered = zos_e2e::tamper_store_file(&home.storage_dir.join("images"), b"welcome")?;
    let second = grid
        .create(
            &bob,
            &node,
            &deployment(&format!("workloads:\n{}", sleeper("motd", &image2)), None)?,
        )
        .await?;
    let lines = grid
        .wait_states(second, 1, &[("motd", "error")], DEPLOY)
        .await?;
    ensure!(
        lines[0].2.contains("etc/motd"),
        "the message names the file: {lines:?} (tampered {tampered})"
    );
    ensure!(
        container_main_pid(second, "motd").is_none(),
        "a tampered image never launches"
    );

    // A container that keeps failing is restarted with backoff, then reported as a crash loop
    // with its exit status and last output; it is not hidden.
    let crashy = grid
        .create(
            &bob,
            &node,
            &deployment(
                &format!(
                    "workloads:\n  - name: crashy\n    container:\n      image: {}\n      entrypoint: [/bin/sh, -c, 'echo boom; exit 3']\n      cpu: 100m\n      memory: 16MiB\n",
                    grid.image
                ),
                None,
            )?,
        )
        .await?;
    let lines = grid
        .wait_states(crashy, 1, &[("crashy", "error")], DEPLOY)
        .await?;
    ensure!(
        lines[0].2.contains("crash loop")
            && lines[0].2.contains("exited with status 3")
            && !lines[0].2.contains("boom"),
        "the crash loop is reported with its exit status, and its output stays off the chain: {lines:?}"
    );
    let restarts = Agent::status(home)?["workloads"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["name"] == "crashy"))
        .and_then(|w| w["restarts"].as_u64())
        .context("crashy in zos-agent status")?;
    ensure!(restarts >= 3, "restarted {restarts} times");

    // Everything else carries on.
    ensure!(container_main_pid(other, "web") == Some(other_pid));
    ensure!(grid
        .states(other)
        .await?
        .is_some_and(|(_, l)| l.iter().all(|x| x.1 == "ok")));
    agent.process.check_running()?;
    Ok(())
}
