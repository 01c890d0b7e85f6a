//! `zos-agent`: the node agent daemon (`run`), its local view (`status`), and the container shim
//! it re-executes itself as (`shim`, not for people).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use zos_agent::{config::Config, drivers::Layout, state::State, status::Report};

const DEFAULT_CONFIG: &str = "/etc/zos/agent.toml";

#[derive(Parser)]
#[command(name = "zos-agent", version, about = "The Zero-OS node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Registers the node and runs its workloads as the chain says, until stopped.
    Run {
        /// The configuration file. Without one, /etc/zos/agent.toml if it exists, else the
        /// defaults (a dev chain on ws://127.0.0.1:9944).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// What this node runs and each workload's state, read locally.
    Status {
        /// The configuration file (for where the state is).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The container shim (the agent starts it; not for people).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn load(config: Option<PathBuf>) -> anyhow::Result<Config> {
    match config {
        Some(path) => Ok(Config::load(&path)?),
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            Ok(Config::load(std::path::Path::new(DEFAULT_CONFIG))?)
        }
        None => Ok(Config::default()),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The shim forks containers: it must run before any thread exists.
    if let Command::Shim { args } = cli.command {
        zos_host::container::shim_main(args);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info".into())
        // The netlink parser warns of every attribute newer than itself, at every link read.
        .add_directive(
            "netlink_packet_route=error"
                .parse()
                .expect("a valid directive"),
        );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Status { config, json } => status(config, json),
        Command::Shim { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zos-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(config)?;
    let shim = zos_host::container::ShimCommand {
        program: std::env::current_exe()?,
        args: vec!["shim".into()],
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(zos_agent::agent::run(config, shim))
}

fn status(config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let config = load(config)?;
    let db = config.db_path();
    if !db.exists() {
        anyhow::bail!(
            "no agent state at {}: the agent has not run with this configuration",
            db.display()
        );
    }
    let node = match zos_chain_client::keys::load(&config.key_path()) {
        Ok(zos_chain_client::keys::UserKey::Ed25519(k)) => k.account().to_string(),
        Ok(_) => "(the key file holds no ed25519 key)".to_string(),
        Err(e) => format!("(no key: {e})"),
    };
    let state = State::open_read_only(&db)?;
    let images = Layout::new(&config.storage_dir, &config.run_dir).images;
    let report = Report::read(&state, node)?.with_image_store(&images)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
