//! `warden audit prove | verify-proof | checkpoint`: Merkle proofs over the
//! audit log, and their offline verification with only the host's public
//! key (docs/audit.md "Proofs").
//!
//! Exit codes: 0 the proof was written / verifies; 3 it does not verify;
//! 2 the database, key or file could not be read.
//!
//! This module must never write to the audit database.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::audit::note::verify_checkpoint;
use warden_host::audit::proof_file::{
    CONSISTENCY_HEADER, ConsistencyProof, INCLUSION_HEADER, InclusionProof,
};
use warden_host::digest::Hash256;
use warden_host::store::{AuditReader, StoredNote, TreeReport, hostkey};

use super::audit::DbArgs;

/// Exit code when a proof does not verify.
const EXIT_NOT_VERIFIED: u8 = 3;

/// `warden audit prove`.
#[derive(Args, Debug)]
pub struct ProveArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Entry to prove (its `seq`; the leaf index is `seq - 1`).
    #[arg(
        required_unless_present = "consistency",
        conflicts_with = "consistency"
    )]
    seq: Option<u64>,
    /// Prove against the checkpoint of this size (default: the newest).
    #[arg(long, conflicts_with = "consistency")]
    size: Option<u64>,
    /// A consistency proof from OLD entries to NEW (default: the newest
    /// checkpoint).
    #[arg(long, num_args = 1..=2, value_names = ["OLD", "NEW"])]
    consistency: Option<Vec<u64>>,
    /// Write the proof here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `warden audit verify-proof`.
#[derive(Args, Debug)]
pub struct VerifyProofArgs {
    /// The proof file (`warden audit prove` or the HTTP proof endpoints).
    file: PathBuf,
    /// The host's public key file (`ed25519:<hex>`).
    #[arg(long)]
    pubkey: PathBuf,
    /// The log's origin line the checkpoint must carry (default: any, the
    /// key name must equal it).
    #[arg(long)]
    origin: Option<String>,
    /// For an inclusion proof: the entry hash (`sha256:<hex>`) you hold;
    /// the proof must be for that entry.
    #[arg(long)]
    entry_hash: Option<Hash256>,
    /// For a consistency proof: the checkpoint note you held before; the
    /// proof must start from its size and root.
    #[arg(long)]
    old_checkpoint: Option<PathBuf>,
}

/// `warden audit checkpoint`.
#[derive(Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    db: DbArgs,
}

/// `warden audit prove`.
pub fn prove(a: ProveArgs) -> anyhow::Result<ExitCode> {
    let db = a.db.db_path();
    let reader = AuditReader::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let text = match (&a.consistency, a.seq) {
        (Some(sizes), _) => {
            let old = sizes.first().copied().unwrap_or(0);
            reader
                .consistency_proof(old, sizes.get(1).copied())?
                .to_text()
        }
        (None, Some(seq)) => {
            let index = seq
                .checked_sub(1)
                .context("entry sequence numbers start at 1")?;
            reader.inclusion_proof(index, a.size)?.to_text()
        }
        (None, None) => anyhow::bail!("give an entry's seq, or --consistency OLD [NEW]"),
    };
    match &a.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `warden audit checkpoint`: prints the newest signed checkpoint note,
/// with the witness cosignatures collected for it.
pub fn checkpoint(a: CheckpointArgs) -> anyhow::Result<ExitCode> {
    let db = a.db.db_path();
    let reader = AuditReader::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let (_, _, note) = reader
        .latest_note()?
        .context("no checkpoint note has been signed yet")?;
    // With the host key beside the database, the witnesses' cosignatures
    // kept for this note are appended (docs/audit.md "Witnesses").
    let note = match hostkey::read_public_key(&a.db.data_dir().join(hostkey::PUBLIC_FILE)) {
        Ok(key) => warden_host::store::cosigned::with_cosignatures(&db, &key, &note)?,
        Err(_) => note,
    };
    print!("{note}");
    Ok(ExitCode::SUCCESS)
}

/// `warden audit verify-proof`.
pub fn verify_proof(a: VerifyProofArgs) -> anyhow::Result<ExitCode> {
    let key = hostkey::read_public_key(&a.pubkey)
        .with_context(|| format!("reading the public key {}", a.pubkey.display()))?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let first = text.lines().next().unwrap_or_default();
    let origin = a.origin.as_deref();
    let verdict: Result<String, String> = if first == INCLUSION_HEADER {
        match InclusionProof::parse(&text).and_then(|p| p.verify(&key, origin).map(|h| (p, h))) {
            Err(e) => Err(e.to_string()),
            Ok((p, _)) if a.entry_hash.is_some_and(|h| h != p.entry_hash) => Err(format!(
                "the proof is for entry hash {}, not the one given",
                p.entry_hash
            )),
            Ok((p, h)) => Ok(format!(
                "ok: entry {} (hash {}) is leaf {} of {} (origin {}, root {})",
                p.index.saturating_add(1),
                p.entry_hash,
                p.index,
                h.size,
                h.origin,
                h.root
            )),
        }
    } else if first == CONSISTENCY_HEADER {
        let old = match &a.old_checkpoint {
            None => None,
            Some(file) => {
                let note =
                    std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                let (_, head) = verify_checkpoint(&note, &key, origin).with_context(|| {
                    format!("the old checkpoint {} does not verify", file.display())
                })?;
                Some(head)
            }
        };
        match ConsistencyProof::parse(&text).and_then(|p| p.verify(&key, origin).map(|h| (p, h))) {
            Err(e) => Err(e.to_string()),
            Ok((p, _))
                if old
                    .as_ref()
                    .is_some_and(|o| o.size != p.old_size || o.root != p.old_root) =>
            {
                let o = old.as_ref().map(|o| (o.size, o.root)).unwrap_or_default();
                Err(format!(
                    "the proof starts from size {} root {}, the old checkpoint says size {} root {}",
                    p.old_size, p.old_root, o.0, o.1
                ))
            }
            Ok((p, h)) => Ok(format!(
                "ok: size {} (root {}) extends size {} (root {}){}",
                h.size,
                h.root,
                p.old_size,
                p.old_root,
                if old.is_some() {
                    ""
                } else {
                    " (old root taken from the proof: pass --old-checkpoint to check it against one you hold)"
                }
            )),
        }
    } else {
        Err(format!(
            "{}: not a proof (first line must be {INCLUSION_HEADER} or {CONSISTENCY_HEADER})",
            a.file.display()
        ))
    };
    match verdict {
        Ok(line) => {
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("FAILED: {why}");
            Ok(ExitCode::from(EXIT_NOT_VERIFIED))
        }
    }
}

/// `audit verify --witnesses N --witness-key … [--cosigned f]`.
pub struct WitnessRequirement<'a> {
    /// Cosignatures required (none: no witness check).
    pub count: Option<usize>,
    /// `NAME=ed25519:<hex>` keys.
    pub keys: &'a [String],
    /// The cosigned note (default `<db>.cosigned`).
    pub cosigned: Option<&'a std::path::Path>,
}

/// The witnessed note, checked: its log signature and at least `count`
/// cosignatures by distinct given keys. Returns the note as an extra note
/// for the tree check, or why it fails.
fn witnessed_note(
    db: &std::path::Path,
    key: Option<&ed25519_dalek::VerifyingKey>,
    req: &WitnessRequirement<'_>,
) -> anyhow::Result<Result<StoredNote, String>> {
    let Some(count) = req.count else {
        return Ok(Err(String::new()));
    };
    let key = key.context("--witnesses needs the host's public key (not --skip-signatures)")?;
    let path = req
        .cosigned
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| warden_host::server::witness_push::cosigned_path(db));
    let text = std::fs::read(&path)
        .with_context(|| format!("reading the cosigned checkpoint {}", path.display()))?;
    let (note, head) = match verify_checkpoint(&text, key, None) {
        Ok(x) => x,
        Err(e) => return Ok(Err(format!("{}: {e}", path.display()))),
    };
    let mut good = Vec::new();
    for k in req.keys {
        let (name, vk) = k
            .split_once('=')
            .with_context(|| format!("--witness-key {k:?} is not NAME=ed25519:<hex>"))?;
        let vk = warden_host::keys::parse_public_key(vk)
            .with_context(|| format!("--witness-key {name}"))?;
        if warden_host::audit::note::verify_cosignature(&note, name, &vk).is_ok()
            && !good.contains(&name)
        {
            good.push(name);
        }
    }
    if good.len() < count {
        return Ok(Err(format!(
            "the witnessed checkpoint (size {}) has {} valid cosignature(s) from the given witness keys{}, {count} required",
            head.size,
            good.len(),
            if good.is_empty() {
                String::new()
            } else {
                format!(" ({})", good.join(", "))
            }
        )));
    }
    Ok(Ok((
        head.size,
        head.root,
        String::from_utf8_lossy(&text).into_owned(),
    )))
}

/// The notes `audit verify --witnesses` adds to the tree check: none when
/// no witnesses are required, the witnessed note when it carries enough
/// valid cosignatures, or why not (printed as `FAILED (witnesses)`).
pub fn witnessed_notes(
    db: &std::path::Path,
    key: Option<&ed25519_dalek::VerifyingKey>,
    witnesses: &WitnessRequirement<'_>,
) -> anyhow::Result<Result<Vec<StoredNote>, String>> {
    Ok(match witnessed_note(db, key, witnesses)? {
        Ok(n) => Ok(vec![n]),
        Err(why) if why.is_empty() => Ok(Vec::new()),
        Err(why) => Err(why),
    })
}

/// Prints the Merkle-tree half of `warden audit verify` on a database (one
/// line, or with `json` one JSON object) and returns whether it passed.
/// `witnessed` is what [`witnessed_notes`] found. A database from before
/// the tree (schema < 3, `tree` is `None`) has nothing to check and passes,
/// unless witnesses are required.
pub fn print_tree(
    tree: Option<&TreeReport>,
    witnessed: &Result<Vec<StoredNote>, String>,
    json: bool,
) -> bool {
    let extra = match witnessed {
        Ok(extra) => extra,
        Err(why) => {
            println!("FAILED (witnesses): {why}");
            return false;
        }
    };
    let Some(report) = tree else {
        return extra.is_empty();
    };
    if json {
        println!("{}", serde_json::json!({ "tree": report }));
    } else {
        match &report.problem {
            None => println!(
                "tree: {} leaves, {} checkpoint notes checked{}, root {}",
                report.leaves,
                report.notes_checked,
                if extra.is_empty() {
                    ""
                } else {
                    " (including the witnessed one)"
                },
                report.root
            ),
            Some(p) => println!("FAILED (tree): {p}"),
        }
    }
    report.problem.is_none()
}
