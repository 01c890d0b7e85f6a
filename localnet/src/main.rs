//! `zos-chain`: the Zero-OS grid's chain node.
//!
//! `--dev` runs a single-node chain that seals and finalizes a block as soon as a transaction
//! arrives (or every `--dev-block-time` milliseconds); `--chain local` with `--alice`, `--bob`,
//! `--charlie` runs Aura block production with GRANDPA finality across validators.

// `sc_cli::Error` and `sc_service::Error` are Substrate's, and large; the signatures here are
// the ones Substrate's runner and builders take.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> polkadot_sdk::sc_cli::Result<()> {
    command::run()
}
