//! Runs what the command line asks for.

use crate::{
    chain_spec,
    cli::{BenchmarkCmd, Cli, Subcommand},
    service,
};
use polkadot_sdk::{sc_cli::SubstrateCli, *};
use zos_runtime::opaque::Block;

impl SubstrateCli for Cli {
    fn impl_name() -> String {
        "Zero-OS chain".into()
    }

    fn impl_version() -> String {
        env!("SUBSTRATE_CLI_IMPL_VERSION").into()
    }

    fn description() -> String {
        env!("CARGO_PKG_DESCRIPTION").into()
    }

    fn author() -> String {
        "Zero-OS developers".into()
    }

    fn support_url() -> String {
        "the project's issue tracker".into()
    }

    fn copyright_start_year() -> i32 {
        2026
    }

    fn load_spec(&self, id: &str) -> Result<Box<dyn sc_service::ChainSpec>, String> {
        Ok(match id {
            "dev" => Box::new(chain_spec::development()?),
            "" | "local" => Box::new(chain_spec::local_testnet()?),
            path => Box::new(chain_spec::ChainSpec::from_json_file(
                std::path::PathBuf::from(path),
            )?),
        })
    }
}

pub fn run() -> sc_cli::Result<()> {
    let cli = Cli::from_args();

    match &cli.subcommand {
        Some(Subcommand::Key(cmd)) => cmd.run(&cli),
        Some(Subcommand::BuildSpec(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.chain_spec, config.network))
        }
        Some(Subcommand::PurgeChain(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.database))
        }
        Some(Subcommand::Benchmark(BenchmarkCmd::Pallet(cmd))) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| {
                cmd.run_with_spec::<sp_runtime::traits::HashingFor<Block>, ()>(Some(
                    config.chain_spec,
                ))
            })
        }
        None => {
            let runner = cli.create_runner(&cli.run.base)?;
            let dev_block_time = cli.run.dev_block_time;
            runner.run_node_until_exit(|config| async move {
                service::start(config, dev_block_time).map_err(sc_cli::Error::Service)
            })
        }
    }
}
