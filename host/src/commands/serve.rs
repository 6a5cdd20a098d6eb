//! `warden serve --config warden.toml`: run the daemon (docs/config.md, docs/api.md).
//!
//! Exit codes: 0 stopped cleanly (SIGTERM/SIGINT, drained, final checkpoint
//! written); 2 the config, a policy, a signature, a component or the route
//! table does not validate (every problem is printed), or the address
//! cannot be bound.

use anyhow::Context;
use clap::Args as ClapArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::server::{self, DaemonConfig, ServeError, ServeOptions};

/// `warden serve`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The daemon config file.
    #[arg(long, default_value = "warden.toml", env = "WARDEN_CONFIG")]
    pub config: PathBuf,
    /// Listen here instead of the config's `listen` (port 0 picks a free port).
    #[arg(long, env = "WARDEN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Validate everything (config, trust, policies, signatures, components,
    /// routes, approvers), print the problems, and exit without listening.
    /// Read-only: opens nothing in the data directory, so it can check a
    /// deployment while a daemon serves it.
    #[arg(long)]
    pub check: bool,
}

/// Runs `warden serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match DaemonConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => return Ok(refuse(&ServeError::Config(e))),
    };
    let runtime = runtime(&config)?;
    if args.check {
        return runtime.block_on(async {
            match tokio::task::block_in_place(|| server::Daemon::check(&config)) {
                Ok(()) => {
                    println!("ok: {} validates", args.config.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(refuse(&e)),
            }
        });
    }
    let options = ServeOptions {
        listen: args.listen,
        ready_file: args.ready_file,
    };
    match runtime.block_on(server::serve(config, options)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Ok(refuse(&e)),
    }
}

/// The daemon's runtime. Invocations run as tasks on the workers (guests
/// yield every epoch tick); their blocking work (filesystem calls, kv's
/// SQLite) goes to the blocking pool, sized so that every admitted
/// invocation can be in such a call at once without queueing unseen behind
/// the others. (`warden serve` and `warden mcp`.)
pub(super) fn runtime(config: &DaemonConfig) -> anyhow::Result<tokio::runtime::Runtime> {
    let blocking = usize::try_from(config.limits.max_in_flight)
        .unwrap_or(usize::MAX)
        .saturating_add(64)
        .max(512);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking)
        .build()
        .context("starting the async runtime")
}

fn refuse(e: &ServeError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
