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
    /// Manage Ed25519 signing keys (`warden key generate --name <name>`).
    Key(commands::key::Args),
    /// Sign a component: embed a signature section, or write a detached signature.
    Sign(commands::sign::Args),
    /// Show a component's digest and signatures, and check them against a trust file.
    Verify(commands::verify::Args),
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
        Command::Key(args) => commands::key::run(args),
        Command::Sign(args) => commands::sign::run(args),
        Command::Verify(args) => commands::verify::run(args),
    }
}
