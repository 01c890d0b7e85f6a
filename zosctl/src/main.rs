//! `zosctl`: the Zero-OS command-line tool. See `docs/zosctl.md`.

mod cli;
mod commands;
mod ctx;
mod exit;
mod fmt;
mod home;
mod review;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    cli::{Cli, Output},
    ctx::Ctx,
};

fn main() -> ExitCode {
    // clap exits 2 on usage errors (and 0 for --help and --version).
    let cli = Cli::parse();
    let output = cli.output;
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            let ctx = Ctx::new(&cli)?;
            runtime.block_on(commands::run(&ctx, cli.command))
        });
    match result {
        Ok(out) => {
            match output {
                Output::Human => {
                    if !out.human.is_empty() {
                        println!("{}", out.human.trim_end());
                    }
                }
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).expect("a JSON value prints; qed")
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = exit::classify(&e) as u8;
            let message = exit::describe(&e);
            match output {
                Output::Human => eprintln!("error: {message}"),
                Output::Json => eprintln!(
                    "{}",
                    serde_json::json!({ "error": message, "exit_code": code })
                ),
            }
            ExitCode::from(code)
        }
    }
}
