//! `warden audit bundle --request <id> -o FILE` writes one request's
//! evidence bundle; `warden audit verify --bundle FILE` checks one with the
//! host's public key only (`warden audit replay --bundle FILE` replays it).
//!
//! Exit codes: 0 written / verified; 3 the bundle does not verify; 2 the
//! bundle could not be built or read.

use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_host::bundle::Bundle;
use warden_host::store::{ArtifactStore, AuditReader, hostkey};

/// `warden audit bundle`.
#[derive(Args, Debug)]
pub struct BundleArgs {
    /// The request whose entries go in the bundle.
    #[arg(long)]
    request: String,
    /// The bundle file to write.
    #[arg(long, short = 'o')]
    out: PathBuf,
    #[command(flatten)]
    db: super::audit::DbArgs,
}

/// Writes a bundle.
pub fn run(a: BundleArgs) -> anyhow::Result<ExitCode> {
    let db = a.db.db_path();
    let reader = AuditReader::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let artifacts = ArtifactStore::in_data_dir(&a.db.data_dir());
    let bundle = match Bundle::build(&reader, &artifacts, &a.request) {
        Ok(b) => b,
        Err(why) => bail!("cannot bundle request {}: {why}", a.request),
    };
    let text = serde_json::to_vec(&bundle).context("serialising the bundle")?;
    std::fs::write(&a.out, text).with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "request {}: {} entries, chain of {} up to checkpoint {}, {} artifacts, {} payloads -> {}",
        a.request,
        bundle.seqs.len(),
        bundle.chain.len(),
        bundle.checkpoint.size,
        bundle.artifacts.len(),
        bundle.payloads.len(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads a bundle file.
pub fn read(path: &Path) -> anyhow::Result<Bundle> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an evidence bundle", path.display()))
}

/// `warden audit verify --bundle FILE [--pubkey P | --skip-signatures]`.
pub fn verify(
    path: &Path,
    pubkey: Option<&Path>,
    skip_signatures: bool,
) -> anyhow::Result<ExitCode> {
    let bundle = read(path)?;
    let key = if skip_signatures {
        None
    } else {
        let Some(p) = pubkey else {
            bail!(
                "give the host's public key (--pubkey host.pub), or --skip-signatures to check hashes only"
            );
        };
        Some(hostkey::read_public_key(p).with_context(|| format!("reading {}", p.display()))?)
    };
    match bundle.verify(key.as_ref()) {
        Ok(()) => {
            println!(
                "bundle of request {} verifies: entries {:?} are in the chain up to checkpoint {} ({}){}",
                bundle.request_id,
                bundle.seqs,
                bundle.checkpoint.size,
                bundle.checkpoint.head_hash,
                if key.is_none() {
                    "; signatures NOT checked"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!(
                "bundle of request {} does NOT verify: {why}",
                bundle.request_id
            );
            Ok(ExitCode::from(super::audit::EXIT_NOT_VERIFIED))
        }
    }
}
