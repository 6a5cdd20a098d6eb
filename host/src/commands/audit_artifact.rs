//! `warden audit artifact <sha256:…> [-o FILE]`: one artifact from the data
//! directory's content-addressed store, verified against its hash.
//!
//! Exit codes: 0 written; 3 the artifact is missing or fails its hash; 2
//! anything else (bad hash text, unwritable output). It never prints bytes
//! that did not verify.

use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::digest::Hash256;
use warden_host::store::{ArtifactError, ArtifactStore};

/// `warden audit artifact`.
#[derive(Args, Debug)]
pub struct ArtifactArgs {
    /// The artifact's hash (`sha256:<64 hex>`): an entry's component
    /// digest, policy hash or route table hash.
    hash: Hash256,
    /// Write it to this file instead of stdout.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Data directory holding `artifacts/` (default `data`, as the other
    /// `audit` commands).
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Runs `warden audit artifact`.
pub fn run(a: ArtifactArgs) -> anyhow::Result<ExitCode> {
    let store = ArtifactStore::in_data_dir(&super::data_dir::resolve(a.data_dir.as_deref(), None));
    let bytes = match store.get(&a.hash) {
        Ok(b) => b,
        Err(e @ (ArtifactError::Missing { .. } | ArtifactError::Tampered { .. })) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(super::audit::EXIT_NOT_VERIFIED));
        }
        Err(e) => return Err(e.into()),
    };
    match &a.out {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} bytes, {} verified, written to {}",
                bytes.len(),
                a.hash,
                path.display()
            );
        }
        None => std::io::stdout()
            .write_all(&bytes)
            .context("writing to stdout")?,
    }
    Ok(ExitCode::SUCCESS)
}
