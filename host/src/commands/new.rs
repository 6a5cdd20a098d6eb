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
    let snake = warden_host::scaffold::snake(&args.name);
    println!("\nnext (copy as printed):");
    println!("  cd {}", dir.display());
    println!("  cargo build --release --target wasm32-wasip2");
    println!(
        "  warden run target/wasm32-wasip2/release/{snake}.wasm --policy policy.toml \\\n      --allow-unsigned --call run --input '{{\"input\":\"hello\"}}'"
    );
    println!(
        "(--allow-unsigned skips the signature check: for local authoring only.)\n\nor serve it while you edit (builds, signs with a development key, reloads on change):"
    );
    println!("  warden dev --watch");
    println!(
        "  warden submit --token-file .warden-dev/dev.token --kind run --input '{{\"input\":\"hello\"}}'   # in another terminal, same folder"
    );
    Ok(ExitCode::SUCCESS)
}
