//! `warden verify`: report a component's digest and signatures.

use anyhow::Context as _;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::signing::{self, SignerPins, TrustStore};

/// Print a component's digest and, for each signature, its key id, whether
/// it verifies and (with --trust) which capabilities its key may sign.
///
/// Exit code: 0 if at least one signature verifies (with --trust: and its key
/// is in the trust file; with --capability: and the component may run as that
/// capability); 2 otherwise.
#[derive(clap::Args)]
pub struct Args {
    /// The component (.wasm) to check.
    component: PathBuf,
    /// Trust file (trust.toml) mapping keys to the capabilities they may sign.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Detached signature file (from `warden sign --detached`), checked in
    /// addition to the embedded signatures.
    #[arg(long)]
    signature: Option<PathBuf>,
    /// Also run the load-time decision for this capability name (needs --trust).
    #[arg(long, requires = "trust")]
    capability: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `warden verify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bytes = fs::read(&args.component)
        .with_context(|| format!("cannot read component {}", args.component.display()))?;
    let context = || format!("cannot verify {}", args.component.display());
    let trust = args.trust.as_deref().map(TrustStore::load).transpose()?;
    let digest = signing::digest(&bytes).with_context(context)?;
    let mut signatures = signing::signatures(&bytes).with_context(context)?;
    if let Some(path) = &args.signature {
        let file = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        signatures.extend(
            signing::detached_signatures(&file)
                .with_context(|| format!("{}: not a signature file", path.display()))?,
        );
    }
    let store = trust.clone().unwrap_or_default();
    let reports = store.describe(&digest, &signatures);
    let decision = args.capability.as_deref().map(|capability| {
        (
            capability,
            store.decide(&digest, &signatures, capability, &SignerPins::default()),
        )
    });

    let ok = match &decision {
        Some((_, result)) => result.is_ok(),
        None => reports
            .iter()
            .any(|r| r.verifies() && (trust.is_none() || r.trusted_as.is_some())),
    };

    if args.json {
        let value = serde_json::json!({
            "component": args.component.display().to_string(),
            "digest": digest.to_string(),
            "signatures": reports.iter().map(|r| serde_json::json!({
                "key_id": r.key_id,
                "public_key": r.public_key,
                "verifies": r.verifies(),
                "problem": r.problem,
                "trusted_as": r.trusted_as,
                "capabilities": r.capabilities,
            })).collect::<Vec<_>>(),
            "decision": decision.as_ref().map(|(capability, result)| serde_json::json!({
                "capability": capability,
                "allowed": result.is_ok(),
                "signer": result.as_ref().ok().map(|v| v.signer.clone()),
                "refusal": result.as_ref().err().map(ToString::to_string),
            })),
            "ok": ok,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("component: {}", args.component.display());
        println!("digest:    {digest}");
        if reports.is_empty() {
            println!("signatures: none (unsigned)");
        }
        for (index, report) in reports.iter().enumerate() {
            let status = match &report.problem {
                None => "verifies".to_owned(),
                Some(problem) => format!("DOES NOT VERIFY: {problem}"),
            };
            println!(
                "signature {}: key {} ({}): {status}",
                index + 1,
                report.key_id,
                report.public_key
            );
            match (&trust, &report.trusted_as) {
                (None, _) => println!("  trust: not checked (no --trust file)"),
                (Some(_), None) => println!("  trust: key not in the trust file"),
                (Some(_), Some(name)) => println!(
                    "  trust: key {name:?} may sign: {}",
                    report.capabilities.join(", ")
                ),
            }
        }
        if let Some((capability, result)) = &decision {
            match result {
                Ok(verified) => println!(
                    "capability {capability:?}: allowed (signer {:?}, key {})",
                    verified.signer, verified.key_id
                ),
                Err(refusal) => println!("capability {capability:?}: REFUSED: {refusal}"),
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
