//! `cairn-bench`: `load` drives a running server with the agent workload and reports ingest
//! throughput, visibility lag, CPU, memory and bytes stored; `generate` writes a large store for
//! the query suite. See `benches/README.md`.

use std::process::ExitCode;

use cairn_bench::generate::{self, GenerateArgs};
use cairn_bench::load::{self, LoadArgs};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn-bench",
    version,
    about = "Cairn's load generator and store generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send the agent workload to a running server and follow it until it is queryable.
    Load(Box<LoadArgs>),
    /// Write a large generated store for the query suite.
    Generate(GenerateArgs),
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Load(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| cairn_bench::Error::Internal(e.to_string()))
            .and_then(|rt| rt.block_on(load::run(*args)))
            .map(|_| ()),
        Command::Generate(args) => generate::run(&args).map(|summary| {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).expect("serialisable")
            )
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
