//! `zos-localgrid`: a local grid on this machine for trying Zero-OS out: a dev chain
//! (ws://127.0.0.1:9944), an OCI registry (127.0.0.1:5000) holding a busybox image, Alice's farm
//! `localgrid`, and one node agent registered under it, ready for a deployment from `examples/`
//! (written with the pushed image's digest). Runs until Ctrl-C (or SIGTERM, SIGHUP), then removes
//! what it made.
//!
//! Environment: `ZOS_RPC_PORT` (9944), `ZOS_REGISTRY_PORT` (5000), `ZOS_LOCALGRID_DIR`
//! (/var/tmp/zos-localgrid, emptied at start).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use zos_e2e::{clean_host, AgentHome, Grid};
use zos_testkit::{registry::Registry, ChainNode};

fn port(var: &str, default: u16) -> Result<u16> {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{var}={v:?} is not a port")),
        Err(_) => Ok(default),
    }
}

const USAGE: &str = "usage: zos-localgrid

Runs a local grid on this machine (as root): a dev chain, an OCI registry with a busybox image,
the farm `localgrid` and one node agent, until Ctrl-C (or SIGTERM, SIGHUP); then removes what it
made. It takes no arguments; the environment sets ZOS_RPC_PORT (9944), ZOS_REGISTRY_PORT (5000)
and ZOS_LOCALGRID_DIR (/var/tmp/zos-localgrid, emptied at start).";

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(_) => {
            eprintln!("zos-localgrid: unexpected arguments {args:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
    // Stopped by a service manager or a closed terminal as by Ctrl-C: everything is removed. The
    // handlers are in place before anything starts: a signal during the set-up is acted on once
    // it is done, never by dying with the children left behind.
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let rpc_port = port("ZOS_RPC_PORT", 9944)?;
    let registry_port = port("ZOS_REGISTRY_PORT", 5000)?;
    let root = PathBuf::from(
        std::env::var("ZOS_LOCALGRID_DIR").unwrap_or_else(|_| "/var/tmp/zos-localgrid".into()),
    );
    let chain_url = format!("ws://127.0.0.1:{rpc_port}");
    // Whatever a previous run left (its agent's containers keep running by design).
    clean_host(&AgentHome::new(&root.join("agent"), &chain_url, 0)?);

    eprintln!(
        "starting the registry on 127.0.0.1:{registry_port} and the dev chain on {chain_url}"
    );
    let registry = Registry::start_on(Some(registry_port));
    let chain = ChainNode::start(
        "zos-chain --dev",
        &["--dev", "--tmp", "--rpc-port", &rpc_port.to_string()],
        None,
    )
    .await?;
    let grid = Grid::assemble("localgrid", registry, chain).await?;
    let home = AgentHome::new(&root.join("agent"), &chain_url, grid.farm_id)?;

    let (mut agent, node) = grid.start_node(&home).await?;
    agent.show_log_on_drop = false;
    let registered = grid.client.node(&node, None).await?.context("registered")?;

    let examples = root.join("examples");
    std::fs::create_dir_all(&examples)?;
    let example_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for entry in std::fs::read_dir(&example_dir)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let fixed: String = text
            .lines()
            .map(|l| match l.split_once("image: ") {
                Some((head, image)) if image.contains("/zos/busybox@") => {
                    format!("{head}image: {}", grid.image)
                }
                Some((head, image)) if image.contains("/zos/vm@") => {
                    format!("{head}image: {}", grid.vm_image)
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(
            examples.join(path.file_name().context("file name")?),
            fixed + "\n",
        )?;
    }

    let zosctl = std::env::current_exe()?.with_file_name("zosctl");
    println!(
        "\nlocal grid ready\n  chain     {chain_url}\n  registry  {}\n  image     {}\n  farm      localgrid, id {} (owner //Alice)\n  node      {node}\n  capacity  {} CPUs, {} MiB memory, {} GiB storage\n  examples  {} (the image digest filled in)\n  agent     {} (zos-agent status --config {})\n\ndeploy an example:\n  {} --key //Bob apply -f {}/container-with-volume.yaml --node {node}\n\nCtrl-C (or SIGTERM) stops it all.",
        grid.registry.addr,
        grid.image,
        grid.farm_id,
        registered.capacity.cpu_millis as f64 / 1000.0,
        registered.capacity.mru >> 20,
        registered.capacity.sru >> 30,
        examples.display(),
        home.root.display(),
        home.config.display(),
        zosctl.display(),
        examples.display(),
    );

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut agent_died = None;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = term.recv() => break,
            _ = hangup.recv() => break,
            _ = tick.tick() => {
                if let Err(e) = agent.process.check_running() {
                    agent_died = Some(e);
                    break;
                }
            }
        }
    }
    // Written without panicking: after a hang-up the terminal is gone, and a panic here would
    // leave the children running.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "stopping: the agent, its containers and volumes, the chain, the registry"
    );
    drop(agent);
    clean_host(&home);
    match agent_died {
        // A service manager sees the failure.
        Some(e) => Err(e).context("the node agent stopped"),
        None => Ok(()),
    }
}
