//! The `warden` binary: a thin command-line shell over the `warden-host` library.
//!
//! Exit codes: 0 success; 1 usage or configuration error; 2 an error the
//! command reports (bad input file, refused load); `warden run` maps outcome
//! classes to 10..19 (see README "Exit codes").

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;

/// warden: run signed WebAssembly capabilities under deny-by-default policy.
#[derive(Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check, list and export the tamper-evident audit chain.
    Audit {
        #[command(subcommand)]
        cmd: commands::audit::Cmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Audit { cmd } => commands::audit::run(cmd),
    }
}
