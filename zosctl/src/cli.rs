//! The command line.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The Zero-OS command-line tool.
///
/// Exit codes: 0 done, 1 anything else (not found, timeout, I/O), 2 usage, 3 invalid input
/// (deployment file, deployment, key, account, group), 4 refused by the chain (or by
/// pallet-multisig's rules), 5 the chain cannot be reached.
#[derive(Debug, Parser)]
#[command(name = "zosctl", version, about, long_about = None)]
pub struct Cli {
    /// Chain RPC endpoint; repeat it (or separate with commas) to fall back to the next one.
    #[arg(
        long = "url",
        global = true,
        env = "ZOSCTL_URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:9944"
    )]
    pub urls: Vec<String>,
    /// Where keys and groups are kept [default: ~/.zosctl].
    #[arg(long, global = true, env = "ZOSCTL_HOME")]
    pub home: Option<PathBuf>,
    /// The key to sign with: a key name in the home, or a dev URI or mnemonic (`//Alice`).
    #[arg(long, global = true, env = "ZOSCTL_KEY", value_name = "NAME_OR_URI")]
    pub key: Option<String>,
    /// Output: text for people, or JSON for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text for people.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Keys: generate, import, list.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Farms.
    #[command(subcommand)]
    Farm(FarmCommand),
    /// Nodes: capacity, reservations, status.
    #[command(subcommand)]
    Node(NodeCommand),
    /// An account's free balance (your key's by default).
    Balance {
        /// Address, key name, group name or dev URI.
        account: Option<String>,
    },
    /// Sends ZOS to an account.
    Transfer {
        /// Address, key name, group name or dev URI.
        to: String,
        /// Amount in ZOS, with up to 12 decimals (e.g. 1.5).
        amount: String,
    },
    /// Private networks: members, subnets and states.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Creates a contract from a deployment file, or updates one (`--contract`).
    Apply(ApplyArgs),
    /// Lists contracts of an owner (your key's account by default).
    Get {
        /// Owner: address, key name, group name or dev URI.
        #[arg(long)]
        owner: Option<String>,
    },
    /// A contract: deployment, workload states, consumption, billing.
    Describe {
        /// Contract id.
        id: u64,
    },
    /// Cancels a contract (or proposes that its group does).
    Delete {
        /// Contract id.
        id: u64,
        /// Propose the cancellation on behalf of this group.
        #[arg(long, value_name = "GROUP")]
        as_group: Option<String>,
    },
    /// Images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Groups (pallet-multisig): create, pending, approve, reject.
    #[command(subcommand)]
    Group(GroupCommand),
}

/// Key schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// Schnorrkel (mnemonics, dev URIs).
    Sr25519,
    /// Ed25519 (a 32-byte seed).
    Ed25519,
}

/// `zosctl key`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generates a key; its mnemonic (or seed) is shown once.
    Generate {
        /// Name in the home.
        name: String,
        /// Scheme.
        #[arg(long, value_enum, default_value_t = Scheme::Sr25519)]
        scheme: Scheme,
    },
    /// Imports a key from a mnemonic, a secret URI or a seed.
    Import {
        /// Name in the home.
        name: String,
        /// A BIP-39 mnemonic (sr25519).
        #[arg(long, group = "secret")]
        mnemonic: Option<String>,
        /// A secret URI, e.g. `//Alice` or `<mnemonic>//hard/soft` (sr25519).
        #[arg(long, group = "secret")]
        uri: Option<String>,
        /// A 32-byte seed in hex.
        #[arg(long, group = "secret")]
        seed: Option<String>,
        /// Scheme of `--seed`.
        #[arg(long, value_enum, default_value_t = Scheme::Sr25519, requires = "seed")]
        scheme: Scheme,
    },
    /// Lists the keys in the home: name, scheme, address.
    List,
}

/// `zosctl farm`.
#[derive(Debug, Subcommand)]
pub enum FarmCommand {
    /// Creates a farm owned by your key.
    Create {
        /// Unique name.
        name: String,
    },
    /// Lets a node register under your farm (a node cannot join a farm without its owner).
    Approve {
        /// The farm's id.
        farm: u32,
        /// The node's account (its ed25519 public key, as the agent prints it).
        node: String,
    },
}

/// `zosctl node`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Lists the nodes, of one farm or of all.
    List {
        /// Farm name.
        #[arg(long)]
        farm: Option<String>,
    },
    /// One node.
    Show {
        /// The node's account (its ed25519 public key), as an address or 0x hex.
        account: String,
    },
}

/// `zosctl network`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// One private network: its range, and each member's node, contract, subnet, WireGuard port
    /// slot and state.
    Show {
        /// The network's name (the name of its network workloads).
        name: String,
        /// Its owner: address, key name, group name or dev URI (your key's account by default).
        #[arg(long)]
        owner: Option<String>,
    },
}

/// `zosctl apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The deployment file, YAML (or JSON for `.json`).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// The node to deploy on (address or 0x hex); a new contract needs it.
    #[arg(long)]
    pub node: Option<String>,
    /// Update this contract instead of creating one; the file's version must be higher.
    #[arg(long)]
    pub contract: Option<u64>,
    /// Propose the call on behalf of this group instead of signing it alone.
    #[arg(long, value_name = "GROUP")]
    pub as_group: Option<String>,
    /// Return once the contract is on chain, without waiting for the node.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the node to report this version (`120s`, `2m`).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
}

/// `zosctl image`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Builds an image with one layer per DIR (bottom first), pushes it and prints its pinned
    /// reference.
    Push {
        /// Layer directories, bottom first.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Registry `host:port` (plain HTTP only on loopback).
        #[arg(long)]
        registry: String,
        /// Repository.
        #[arg(long)]
        repository: String,
        /// Tag to push the manifest under as well.
        #[arg(long, default_value = "latest")]
        tag: String,
    },
}

/// `zosctl group`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Saves a group profile and prints the group's account.
    Create {
        /// Name in the home.
        name: String,
        /// Members: addresses, key names or dev URIs, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
        /// How many members must approve a call.
        #[arg(long)]
        threshold: u16,
    },
    /// Lists the saved groups.
    List,
    /// A group: members, threshold, account, balance.
    Show {
        /// Group name.
        name: String,
    },
    /// The group's open proposals, each with its whole call: a deployment in full, and for an
    /// update its changes from the deployment on chain.
    Pending {
        /// Group name.
        name: String,
    },
    /// Approves a proposal; the approval that reaches the threshold runs the call (and, for a
    /// deployment, waits for the node like `apply`).
    Approve {
        /// Group name.
        name: String,
        /// The proposal's call hash (0x…).
        call_hash: String,
        /// Return once the call ran, without waiting for the node.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the node to report the deployment (`120s`, `2m`).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        wait_timeout: Duration,
        /// Approve a call that `group pending` cannot show in full (another pallet's call, bytes
        /// this zosctl cannot decode, a call that is not on chain). Check it another way first.
        #[arg(long)]
        blind: bool,
    },
    /// Withdraws a proposal (only its proposer can; others refuse by not approving).
    Reject {
        /// Group name.
        name: String,
        /// The proposal's call hash (0x…).
        call_hash: String,
    },
}

/// `120s`, `2m`, `1h`, `500ms` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 120s or 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?}: use s, m, h or ms")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
    }
}
