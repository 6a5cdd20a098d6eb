//! `warden kv`: maintenance of the KV store (`kv.db` in a data directory).

use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::Tenant;
use warden_host::interfaces::kv::{KvStore, Migration};

/// Maintain the KV store of a data directory.
#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Move the rows of a `kv.db` written before tenants (one namespace per
    /// capability, shared by every tenant) into the (capability, tenant)
    /// layout: into each capability's tenant-less namespace, or with
    /// `--tenant` into that tenant's. One transaction; stop the daemon (and
    /// any `warden run` on the directory) first. A `kv.db` already in the
    /// current layout is left as it is.
    Migrate(MigrateArgs),
}

/// `warden kv migrate`.
#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The data directory holding `kv.db`.
    #[arg(long, env = "WARDEN_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Move the rows into this tenant's namespaces instead of the
    /// tenant-less ones.
    #[arg(long, value_parser = Tenant::parse)]
    pub tenant: Option<Tenant>,
}

/// Runs `warden kv`.
pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Migrate(args) => migrate(args),
    }
}

fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let tenant = args.tenant.clone();
    let path = args.data_dir.join("kv.db");
    let into = tenant.as_ref().map_or_else(
        || "each capability's tenant-less namespace".to_string(),
        |t| format!("tenant `{t}`'s namespace of each capability"),
    );
    match KvStore::migrate(&path, tenant.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))? {
        Migration::AlreadyCurrent => {
            println!(
                "{}: already in the (capability, tenant) layout; nothing to do",
                path.display()
            );
        }
        Migration::Moved { rows, capabilities } => {
            println!(
                "{}: moved {rows} row(s) of {capabilities} capability(ies) into {into}",
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
