//! `warden mcp --config warden.toml`: the MCP server on stdio for a local
//! agent (docs/mcp.md). The daemon's HTTP API listens too, so approvers can
//! decide held calls.
//!
//! Exit codes: 0 the client closed the session (or SIGTERM/SIGINT), the
//! daemon drained and wrote its final checkpoint; 2 the config (including
//! `[mcp] stdio_principal`) or the deployment does not validate.

use clap::Args as ClapArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::server::{DaemonConfig, ServeError, ServeOptions};

/// `warden mcp`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The daemon config file (its `[mcp] stdio_principal` is who the
    /// session acts as).
    #[arg(long, default_value = "warden.toml", env = "WARDEN_CONFIG")]
    pub config: PathBuf,
    /// Listen here instead of the config's `listen` (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Write the HTTP API's bound address to this file once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// Runs `warden mcp`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match DaemonConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => return Ok(refuse(&ServeError::Config(e))),
    };
    let runtime = super::serve::runtime(&config)?;
    let options = ServeOptions {
        listen: args.listen,
        ready_file: args.ready_file,
    };
    match runtime.block_on(warden_host::server::mcp::stdio::serve(config, options)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Ok(refuse(&e)),
    }
}

fn refuse(e: &ServeError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
