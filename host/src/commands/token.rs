//! `warden token create`: a new bearer token and its warden.toml lines.

use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::deployment;
use warden_host::principal::check_principal_name;

/// Make bearer tokens for warden.toml principals.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Print a new random token and the `[[principal]]` block (with its
    /// `token_sha256`) to paste into warden.toml. With `--out`, the token is
    /// written to that file (mode 0600, never overwritten) instead of printed.
    Create(CreateArgs),
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The principal's name (lowercase, as warden.toml requires).
    #[arg(long, default_value = "new-principal")]
    name: String,
    /// A role for the block: submit, audit, admin or approve; repeatable.
    #[arg(long = "role", value_name = "ROLE", default_values_t = ["submit".to_string()])]
    roles: Vec<String>,
    /// Write the token to this file (0600) instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `warden token`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        TokenCommand::Create(args) => create(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    check_principal_name(&args.name)
        .map_err(|why| anyhow::anyhow!("--name {:?}: {why}", args.name))?;
    for role in &args.roles {
        if !["submit", "audit", "admin", "approve"].contains(&role.as_str()) {
            anyhow::bail!("--role {role:?}: not a role (submit, audit, admin or approve)");
        }
    }
    let token = deployment::new_token()?;
    match &args.out {
        Some(path) => {
            deployment::write_token_file(path, &token)?;
            println!("token written to {} (mode 0600)", path.display());
        }
        None => println!("token: {token}"),
    }
    println!();
    println!(
        "add to warden.toml (only the hash is kept there), then restart the daemon (principals are read only at start):"
    );
    println!();
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    print!(
        "{}",
        deployment::principal_block(&args.name, &token, &roles)
    );
    Ok(ExitCode::SUCCESS)
}
