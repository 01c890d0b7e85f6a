//! Command line.

use polkadot_sdk::*;

#[derive(Debug, clap::Parser)]
pub struct Cli {
    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,

    #[clap(flatten)]
    pub run: RunCmd,
}

/// The node's run options: Substrate's, plus how the dev chain seals.
#[derive(Debug, clap::Args)]
#[group(id = "ZosRunCmd")]
pub struct RunCmd {
    #[clap(flatten)]
    pub base: sc_cli::RunCmd,

    /// On a development chain, seal (and finalize) a block every this many milliseconds instead
    /// of as soon as a transaction arrives.
    #[arg(long, value_name = "MS")]
    pub dev_block_time: Option<u64>,
}

#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Subcommand {
    /// Key management.
    #[command(subcommand)]
    Key(sc_cli::KeySubcommand),

    /// Writes the chain specification.
    BuildSpec(sc_cli::BuildSpecCmd),

    /// Removes the whole chain.
    PurgeChain(sc_cli::PurgeChainCmd),

    /// Measures the runtime.
    #[command(subcommand)]
    Benchmark(BenchmarkCmd),
}

/// What `zos-chain benchmark` measures.
#[derive(Debug, clap::Subcommand)]
pub enum BenchmarkCmd {
    /// Measures the weights of pallets' calls (see docs/benchmarks.md).
    Pallet(frame_benchmarking_cli::PalletCmd),
}
