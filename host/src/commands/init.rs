//! `warden init <dir>`: write a ready deployment (see `deployment.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::deployment::{self, InitOptions};

/// Write a ready deployment: warden.toml with one principal per role and
/// fresh tokens (tokens/*.token, mode 0600), routes.toml, trust.toml with a
/// new signing key (keys/deploy.key), policies/ and components/, and a README
/// of what is where. `warden serve --config <dir>/warden.toml` starts on it
/// at once.
#[derive(clap::Args)]
pub struct Args {
    /// Directory to create (must not exist, or be empty).
    pub dir: PathBuf,
    /// Address the daemon listens on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// A capability name (or `prefix-*`) the new key is trusted to sign;
    /// repeatable. Without any, trust.toml holds the key commented out.
    #[arg(long = "capability", value_name = "NAME")]
    pub capabilities: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = InitOptions {
        listen: Some(args.listen),
        capabilities: args.capabilities,
    };
    let dep = deployment::init(&args.dir, &options)?;
    for path in &dep.files {
        println!("created {}", path.display());
    }
    println!();
    println!("principals and their token files (mode 0600; the tokens are not printed):");
    for (name, path) in &dep.tokens {
        println!("  {name:<10} {}", path.display());
    }
    println!();
    println!("next: warden serve --config {}", dep.config.display());
    println!(
        "      add a capability: see {}",
        dep.dir.join("README.md").display()
    );
    Ok(ExitCode::SUCCESS)
}
