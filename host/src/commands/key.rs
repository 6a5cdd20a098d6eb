//! `warden key`: manage Ed25519 signing keys.

use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::keys;

/// Manage Ed25519 signing keys.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Generate a key pair: <out>/<name>.key (private, mode 0600) and
    /// <out>/<name>.pub (public, `ed25519:<hex>`, paste it into trust.toml).
    ///
    /// Existing files are never overwritten.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Key name: file stem and the name to use in trust.toml and policy `signers`.
    #[arg(long)]
    name: String,
    /// Directory to write the key files into (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// Runs `warden key`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        KeyCommand::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let key = keys::try_generate()?;
    let (private, public) = keys::write_key_pair(&args.out, &args.name, &key)
        .with_context(|| format!("cannot write key pair {:?}", args.name))?;
    let verifying = key.verifying_key();
    println!(
        "private key: {} (mode 0600; keep it secret)",
        private.display()
    );
    println!("public key:  {}", public.display());
    println!("key id:      {}", keys::key_id(&verifying));
    println!();
    println!("To trust it, add to trust.toml:");
    println!();
    println!("[[key]]");
    println!("name = {:?}", args.name);
    println!("public_key = \"{}\"", keys::public_key_text(&verifying));
    println!("capabilities = [\"<capability-name>\"]");
    Ok(ExitCode::SUCCESS)
}
