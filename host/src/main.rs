//! The `warden` binary: a thin command-line shell over the `warden-host` library.
//!
//! Exit codes: 0 success; 1 usage error (clap); 2 an error the command
//! reports (bad input file, refused load); 4 `warden routes explain` found
//! no route; `warden run` maps outcome classes
//! to 10..19 (see README "Exit codes").

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;

/// warden: run signed WebAssembly capabilities under deny-by-default policy,
/// within budgets, with evidence.
#[derive(Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one function of a component under a policy.
    Run(commands::run::Args),
    /// Show a component's imports, exports, schemas and digest.
    Inspect(commands::inspect::Args),
    /// Validate or generate policies.
    #[command(subcommand)]
    Policy(commands::policy::Cmd),
    /// Validate a route table, or explain how it routes a request.
    #[command(subcommand)]
    Routes(commands::routes::Cmd),
    /// Scaffold a new capability crate and policy.
    New(commands::new::Args),
    /// Build, sign and serve a capability folder for development (`--watch` reloads).
    Dev(commands::dev::Args),
    /// Write a ready deployment directory (config, tokens, key, trust, routes).
    Init(commands::init::Args),
    /// Make bearer tokens for warden.toml principals (`warden token create`).
    Token(commands::token::Args),
    /// Manage Ed25519 signing keys (`warden key generate --name <name>`).
    Key(commands::key::Args),
    /// Maintain the KV store of a data directory (`warden kv migrate`).
    #[command(subcommand)]
    Kv(commands::kv::Cmd),
    /// Sign a component: embed a signature section, or write a detached signature.
    Sign(commands::sign::Args),
    /// Show a component's digest and signatures, and check them against a trust file.
    Verify(commands::verify::Args),
    /// Run the daemon: HTTP API, routing, budgets, audit (docs/config.md, docs/api.md).
    Serve(commands::serve::Args),
    /// Serve MCP on stdio for a local agent, as `[mcp] stdio_principal` (docs/mcp.md).
    Mcp(commands::mcp::Args),
    /// Submit a request to a running daemon.
    Submit(commands::client::SubmitArgs),
    /// List the capabilities a running daemon serves.
    Capabilities(commands::client::CapabilitiesArgs),
    /// List, show, approve and deny requests a running daemon holds for approval.
    #[command(subcommand)]
    Approvals(commands::approvals::Cmd),
    /// Check, explain and draw workflow plans (docs/workflows.md).
    #[command(subcommand)]
    Workflow(commands::workflow::Cmd),
    /// Check, list and export the tamper-evident audit chain (`tail`: from a running daemon).
    Audit {
        #[command(subcommand)]
        cmd: commands::audit::Cmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", report(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: many library
/// errors already quote their source (`cannot read X: No such file`), and
/// printing the chain as is would repeat it.
fn report(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => commands::run::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Policy(c) => commands::policy::run(c),
        Command::Routes(c) => commands::routes::run(c),
        Command::New(a) => commands::new::run(a),
        Command::Dev(args) => commands::dev::run(args),
        Command::Init(args) => commands::init::run(args),
        Command::Token(args) => commands::token::run(args),
        Command::Key(args) => commands::key::run(args),
        Command::Kv(c) => commands::kv::run(c),
        Command::Sign(args) => commands::sign::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Serve(a) => commands::serve::run(a),
        Command::Mcp(a) => commands::mcp::run(a),
        Command::Submit(a) => commands::client::submit(a),
        Command::Capabilities(a) => commands::client::capabilities(a),
        Command::Approvals(c) => commands::approvals::run(c),
        Command::Workflow(c) => commands::workflow::run(c),
        Command::Audit { cmd } => commands::audit::run(cmd),
    }
}
