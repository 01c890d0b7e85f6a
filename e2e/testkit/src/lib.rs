//! Test support shared by the crates' integration tests and `e2e/`.
//!
//! - [`wait_until`]: poll a condition against a deadline instead of sleeping.
//! - [`ChainNode`]: a real `zos-chain` process on free ports, killed (with its process group)
//!   when dropped, whose log tail is printed if the test fails.
//! - [`registry::Registry`]: a real OCI registry on a free loopback port.
//! - [`proxy::CuttingProxy`]: a TCP proxy in front of a node's RPC that cuts a connection at a
//!   chosen reply (e.g. right after the node took a transaction).

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub mod netlab;
pub mod proxy;
pub mod registry;

use anyhow::{anyhow, bail, Context, Result};
pub use jsonrpsee;
use jsonrpsee::{core::client::ClientT, http_client::HttpClient, rpc_params};

/// Polls `cond` every 50 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port free on loopback now (for a process that cannot report the port it bound).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `zos-chain` binary: `ZOS_CHAIN_BIN`, or `zos-chain` beside the running test's target
/// directory. Fails with the command that builds it.
pub fn chain_binary() -> Result<PathBuf> {
    binary("zos-chain", "ZOS_CHAIN_BIN")
}

/// A workspace binary `name`: the path in the environment variable `var`, or `name` in the
/// running test's target directory. Fails with the command that builds it.
pub fn binary(name: &str, var: &str) -> Result<PathBuf> {
    if let Ok(p) = std::env::var(var) {
        return Ok(PathBuf::from(p));
    }
    // Test executables live in <target>/<profile>/deps/, other binaries one level up.
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow!("cannot place the executable {}", exe.display()))?;
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir = dir
            .parent()
            .ok_or_else(|| anyhow!("cannot place the executable {}", exe.display()))?;
    }
    let bin = dir.join(name);
    if !bin.exists() {
        bail!(
            "{} does not exist: build it first with `cargo build --bin {name}` (or set {var})",
            bin.display()
        );
    }
    Ok(bin)
}

const LOG_TAIL: usize = 200;

/// A running process whose stderr and stdout lines are kept (the last [`LOG_TAIL`]) and
/// searched. Killed with its process group on drop.
pub struct Process {
    name: String,
    child: Child,
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Process {
    /// Starts `cmd` in a process group of its own, capturing its output.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Process> {
        use std::os::unix::process::CommandExt;
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let stdout = child.stdout.take().expect("stdout is piped; qed");
        let stderr = child.stderr.take().expect("stderr is piped; qed");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = lines.lock().expect("log lock");
                    if l.len() == LOG_TAIL {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
        }
        Ok(Process {
            name: name.to_string(),
            child,
            lines,
        })
    }

    /// The first kept line for which `f` returns `Some`.
    pub fn find_line<T>(&self, f: impl Fn(&str) -> Option<T>) -> Option<T> {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .find_map(|l| f(l))
    }

    /// Fails if the process has exited, with its last lines.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited with {status}; last lines:\n{}",
                self.name,
                self.tail()
            );
        }
        Ok(())
    }

    /// The kept lines.
    pub fn tail(&self) -> String {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (not its group) with SIGKILL, as a crash would, and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Stops the process group with SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        use nix::{sys::signal, unistd::Pid};
        let pgid = Pid::from_raw(self.child.id() as i32);
        let _ = signal::killpg(pgid, signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = signal::killpg(pgid, signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Never a second panic (a closed stderr): that would abort before the stop below.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "---- last lines of {} ----\n{}\n----",
                self.name,
                self.tail()
            );
        }
        self.stop(Duration::from_secs(5));
    }
}

/// A `zos-chain` node.
pub struct ChainNode {
    /// The process.
    pub process: Process,
    /// Its JSON-RPC address.
    pub rpc: SocketAddr,
    /// Its base path, if the test gave one (kept across restarts).
    pub base_path: Option<PathBuf>,
}

impl ChainNode {
    /// `zos-chain --dev --tmp`.
    pub async fn dev() -> Result<ChainNode> {
        ChainNode::start("zos-chain --dev", &["--dev", "--tmp"], None).await
    }

    /// `zos-chain --dev` on `base_path`, so that a restart finds the chain again.
    pub async fn dev_at(base_path: &Path) -> Result<ChainNode> {
        let bp = base_path.to_string_lossy().into_owned();
        ChainNode::start(
            "zos-chain --dev",
            &["--dev", "--base-path", &bp],
            Some(base_path),
        )
        .await
    }

    /// Starts the node with `args` plus free RPC and p2p ports, and waits for its RPC address in
    /// its log.
    pub async fn start(name: &str, args: &[&str], base_path: Option<&Path>) -> Result<ChainNode> {
        let mut cmd = Command::new(chain_binary()?);
        cmd.args(args).args(["--no-prometheus", "--no-telemetry"]);
        if !args.contains(&"--rpc-port") {
            cmd.args(["--rpc-port", "0"]);
        }
        if !args.contains(&"--port") {
            cmd.args(["--port", "0"]);
        }
        let mut process = Process::spawn(name, cmd)?;
        let rpc = loop_until_line(&mut process, Duration::from_secs(120), |line| {
            let addrs = line.split("Running JSON-RPC server: addr=").nth(1)?;
            addrs
                .split(',')
                .find_map(|a| a.trim().parse::<SocketAddr>().ok())
        })
        .await
        .context("the node never reported its RPC address")?;
        Ok(ChainNode {
            process,
            rpc,
            base_path: base_path.map(Path::to_path_buf),
        })
    }

    /// An HTTP JSON-RPC client of this node.
    pub fn client(&self) -> Result<HttpClient> {
        Ok(HttpClient::builder().build(format!("http://{}", self.rpc))?)
    }

    /// The WebSocket URL of this node's RPC.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.rpc)
    }

    /// The number of the finalized head.
    pub async fn finalized_number(&self) -> Result<u64> {
        let client = self.client()?;
        let hash: String = client
            .request("chain_getFinalizedHead", rpc_params![])
            .await?;
        let header: serde_json::Value =
            client.request("chain_getHeader", rpc_params![hash]).await?;
        parse_number(&header)
    }

    /// How many transactions the node's pool holds.
    pub async fn pending_transactions(&self) -> Result<usize> {
        let pending: Vec<String> = self
            .client()?
            .request("author_pendingExtrinsics", rpc_params![])
            .await?;
        Ok(pending.len())
    }

    /// The number of the best block.
    pub async fn best_number(&self) -> Result<u64> {
        let header: serde_json::Value = self
            .client()?
            .request("chain_getHeader", rpc_params![])
            .await?;
        parse_number(&header)
    }
}

/// The `number` of a JSON header.
pub fn parse_number(header: &serde_json::Value) -> Result<u64> {
    let n = header["number"]
        .as_str()
        .ok_or_else(|| anyhow!("header without number: {header}"))?;
    Ok(u64::from_str_radix(n.trim_start_matches("0x"), 16)?)
}

/// Waits until one of the process's lines gives `Some`, failing early if it exits.
pub async fn loop_until_line<T>(
    process: &mut Process,
    timeout: Duration,
    f: impl Fn(&str) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = process.find_line(&f) {
            return Ok(v);
        }
        process.check_running()?;
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?}; last lines:\n{}",
                process.tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
