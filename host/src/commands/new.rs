//! `warden new`: scaffold a capability crate and its policy.

use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;

/// Create a new Rust capability crate (WIT world, src/lib.rs, policy.toml).
#[derive(ClapArgs)]
pub struct Args {
    /// Capability name, lowercase kebab-case (e.g. `fx-rate`).
    pub name: String,
    /// Directory to create (default: ./<name>). Must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let written = warden_host::scaffold::scaffold(&args.name, &dir)?;
    for p in &written {
        println!("created {}", p.display());
    }
    println!(
        "\nnext: cd {} && cargo build --release --target wasm32-wasip2\n      warden run target/wasm32-wasip2/release/{}.wasm --policy policy.toml --allow-unsigned --call <fn> --input '{{..}}'\n      (--allow-unsigned is for local authoring only; sign it for a daemon: docs/signing.md)",
        dir.display(),
        args.name.replace('-', "_")
    );
    Ok(ExitCode::SUCCESS)
}
