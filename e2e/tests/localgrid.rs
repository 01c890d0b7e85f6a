//! `zos-localgrid`, the README's run command, as a user runs it: it comes up, and whichever way
//! it is stopped (Ctrl-C, or SIGTERM from a service manager) nothing it started is left running.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use zos_testkit::{free_port, netlab::process_with_arg};

/// The launcher, stopped (SIGTERM, then SIGKILL) when the test fails before it stops it.
struct Launched(std::process::Child);

impl Drop for Launched {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && self.0.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn binary(name: &str) -> std::path::PathBuf {
    std::env::current_exe()
        .expect("the test's path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the target dir")
        .join(name)
}

#[tokio::test]
async fn the_local_grid_comes_up_and_leaves_nothing_running_when_stopped() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    ensure!(
        Command::new(binary("zos-localgrid"))
            .arg("--nodes")
            .status()?
            .code()
            == Some(2),
        "unknown arguments are refused"
    );
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir()?;
        let (rpc, registry) = (free_port()?, free_port()?);
        ensure!(rpc != registry, "two free ports");
        let path = format!(
            "{}:{}",
            binary("zos-localgrid").parent().context("dir")?.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut grid = Launched(
            Command::new(binary("zos-localgrid"))
                .env("ZOS_RPC_PORT", rpc.to_string())
                .env("ZOS_REGISTRY_PORT", registry.to_string())
                .env("ZOS_LOCALGRID_DIR", dir.path())
                .env("PATH", path)
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.path().join("stderr"))?)
                .spawn()?,
        );
        // Read to the end, as a terminal would: a closed pipe would fail its later lines.
        let stdout = grid.0.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("local grid ready") {
                    let _ = tx.send(());
                }
            }
        });
        let ready =
            tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(180))).await?;
        let config = dir.path().join("agent/agent.toml");
        let config = config.to_string_lossy().into_owned();
        // Up: the agent, the chain (its RPC port is an argument) and the registry (its port taken).
        let up = ready.is_ok()
            && process_with_arg(&config)
            && process_with_arg(&rpc.to_string())
            && std::net::TcpListener::bind(("127.0.0.1", registry)).is_err();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &grid.0.id().to_string()])
            .status()?;
        ensure!(
            up,
            "the local grid came up ({ready:?}): {}",
            std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
        );
        ensure!(kill.success(), "kill -{signal}");
        let status = grid.0.wait()?;
        let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        ensure!(status.success(), "stopped by SIG{signal}: {status}\n{log}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let chain = process_with_arg(&rpc.to_string());
            let agent = process_with_arg(&config);
            let registry_bound = std::net::TcpListener::bind(("127.0.0.1", registry)).is_err();
            if !chain && !agent && !registry_bound {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "left running after SIG{signal}: chain {chain}, agent {agent}, registry {registry_bound}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
