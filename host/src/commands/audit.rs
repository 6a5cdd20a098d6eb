//! `warden audit verify|show|export|tail|prune` (`artifact`, `replay`: own files): check, read, export the
//! audit chain, and delete old payloads.
//!
//! Exit codes: 0 the chain verifies (or the listing/export succeeded); 3 the
//! chain does not verify (the first problem is printed); 2 the database or
//! file could not be read.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_host::audit::ExpectedCheckpoint;
use warden_host::digest::Hash256;
use warden_host::store::hostkey;
use warden_host::store::{
    AuditReader, DB_FILE, EntryFilter, checkpoints_in_file, verify_export_expecting,
};

/// Exit code when the chain does not verify.
pub(crate) const EXIT_NOT_VERIFIED: u8 = 3;

/// Where the database lives.
#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// Data directory holding `warden.db` and the host key (default: the
    /// directory of `--db`, else `data`, as the daemon's default).
    #[arg(long = "data-dir", env = "WARDEN_DATA_DIR")]
    pub data_dir_arg: Option<PathBuf>,
    /// The audit database (default: `<data-dir>/warden.db`); the host key is
    /// looked for beside it.
    #[arg(long)]
    pub db: Option<PathBuf>,
}

impl DbArgs {
    pub(crate) fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| self.data_dir().join(DB_FILE))
    }

    /// The data directory (see `commands/data_dir.rs`).
    pub fn data_dir(&self) -> PathBuf {
        super::data_dir::resolve(self.data_dir_arg.as_deref(), self.db.as_deref())
    }
}

/// Check, list and export the tamper-evident audit chain.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Recompute every entry hash and check every checkpoint signature.
    ///
    /// Reports the first problem by sequence number: hash_mismatch,
    /// broken_link, gap, reordered, malformed, bad_checkpoint_signature,
    /// checkpoint_mismatch, truncated, or uncovered_tail (entries after the
    /// last signed checkpoint; a clean shutdown always writes one). Exits 3 on
    /// any problem. With `--expect-size/--expect-head` or
    /// `--expect-checkpoint`, the chain must also extend a checkpoint held
    /// outside it (detects truncation and rewriting below it).
    Verify(VerifyArgs),
    /// List entries, oldest first.
    Show(ShowArgs),
    /// Write a portable JSONL export (entries + checkpoints) that
    /// `warden audit verify --export` checks offline.
    Export(ExportArgs),
    /// Print the newest entries from a running daemon (`GET /v1/audit`);
    /// `--follow` keeps polling.
    Tail(TailArgs),
    /// Delete stored input/output payloads older than a retention period.
    ///
    /// Entries keep the payloads' SHA-256, so the chain still verifies; only
    /// the bytes are gone (`audit show` and exports then omit them). Safe
    /// while a daemon is running on the same database.
    Prune(PruneArgs),
    /// Print a Merkle inclusion proof of entry SEQ (C2SP tlog-proof), or with
    /// `--consistency OLD [NEW]` a consistency proof, against a signed checkpoint.
    Prove(super::audit_prove::ProveArgs),
    /// Check a proof offline with only the host's public key.
    VerifyProof(super::audit_prove::VerifyProofArgs),
    /// Print the newest signed checkpoint note (C2SP tlog-checkpoint).
    Checkpoint(super::audit_prove::CheckpointArgs),
    /// Witness another warden's log: check its newest checkpoint against
    /// the last one this witness accepted (a consistency proof), cosign it
    /// (C2SP tlog-cosignature) or refuse naming both sizes and roots;
    /// `--serve` answers C2SP tlog-witness `add-checkpoint` requests.
    Witness(super::audit_witness::WitnessArgs),
    /// Write one artifact (component, policy, route table) from the
    /// content-addressed store, verified against its hash.
    Artifact(super::audit_artifact::ArtifactArgs),
    /// Re-execute entries offline from stored artifacts and recorded
    /// host-call results, and compare outcome, output, fuel and host calls.
    Replay(super::audit_replay::ReplayArgs),
    /// Write one request's evidence bundle (entries, chain to the covering
    /// checkpoint, artifacts, payloads) for `verify --bundle` and
    /// `replay --bundle` elsewhere.
    Bundle(super::audit_bundle::BundleArgs),
}

/// `warden audit prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Delete payloads stored longer ago than this (`30d`, `12h`, `0s` for all).
    #[arg(long, value_parser = warden_host::policy::HumanDuration::parse)]
    older_than: warden_host::policy::HumanDuration,
}

/// `warden audit tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// How many of the newest entries to print first.
    #[arg(long, short = 'n', default_value_t = 20)]
    lines: u64,
    /// Keep polling for new entries.
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    conn: super::client::Connection,
}

/// `warden audit verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Verify an export file instead of the database.
    #[arg(long, conflicts_with = "db")]
    export: Option<PathBuf>,
    /// Verify an evidence bundle (`warden audit bundle`) instead.
    #[arg(long, conflicts_with_all = ["db", "export"])]
    bundle: Option<PathBuf>,
    /// The host's public key file (`ed25519:<hex>`); default `<data-dir>/host.pub`.
    #[arg(long)]
    pubkey: Option<PathBuf>,
    /// Do not fail when entries after the last checkpoint are not yet covered
    /// (e.g. verifying a live database between checkpoints).
    #[arg(long)]
    allow_uncovered_tail: bool,
    /// Verify hashes only, without any public key (checkpoint signatures
    /// are then NOT checked: anyone could have rewritten the whole chain).
    #[arg(long, conflicts_with = "pubkey")]
    skip_signatures: bool,
    /// Fail unless the chain holds at least this many entries and entry N
    /// has the hash given by `--expect-head` (a checkpoint you kept).
    #[arg(long, requires = "expect_head", conflicts_with = "expect_checkpoint")]
    expect_size: Option<u64>,
    /// The hash (`sha256:<hex>`) entry `--expect-size` must have.
    #[arg(long, requires = "expect_size")]
    expect_head: Option<Hash256>,
    /// Like `--expect-size/--expect-head`, from a file: an anchor file
    /// (`warden.db.anchor`), a checkpoint JSON object, a saved `GET
    /// /v1/audit/checkpoints` answer or an export; its newest checkpoint
    /// counts, and its signature must verify (unless `--skip-signatures`).
    #[arg(long)]
    expect_checkpoint: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Require this many witness cosignatures (from distinct
    /// `--witness-key`s) on the witnessed checkpoint note (`--cosigned`),
    /// whose root must also match the recomputed tree.
    #[arg(long, requires = "witness_key")]
    witnesses: Option<usize>,
    /// A witness key `NAME=ed25519:<hex>` (repeatable).
    #[arg(long)]
    witness_key: Vec<String>,
    /// The cosigned checkpoint note (default `<db>.cosigned`, written by a
    /// daemon pushing to `[[checkpoints.witnesses]]`).
    #[arg(long)]
    cosigned: Option<PathBuf>,
}

/// `warden audit show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    db: DbArgs,
    /// First sequence number to list.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Only this capability.
    #[arg(long)]
    capability: Option<String>,
    /// Only this outcome (`denied`, `budget_exhausted`, `budget_exhausted:fuel`, ...).
    #[arg(long)]
    outcome: Option<String>,
    /// One JSON object per line (the export's entry form).
    #[arg(long)]
    json: bool,
}

/// `warden audit export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The JSONL file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs one `warden audit` subcommand.
pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Verify(a) => verify(a),
        Cmd::Show(a) => show(a),
        Cmd::Export(a) => export(a),
        Cmd::Tail(a) => tail(a),
        Cmd::Prune(a) => prune(a),
        Cmd::Prove(a) => super::audit_prove::prove(a),
        Cmd::VerifyProof(a) => super::audit_prove::verify_proof(a),
        Cmd::Checkpoint(a) => super::audit_prove::checkpoint(a),
        Cmd::Witness(a) => super::audit_witness::run(a),
        Cmd::Artifact(a) => super::audit_artifact::run(a),
        Cmd::Replay(a) => super::audit_replay::run(a),
        Cmd::Bundle(a) => super::audit_bundle::run(a),
    }
}

fn prune(a: PruneArgs) -> anyhow::Result<ExitCode> {
    let reader = open(&a.db.db_path())?;
    let retention_ms = u64::try_from(a.older_than.get().as_millis()).unwrap_or(u64::MAX);
    let cutoff_ms = warden_host::units::now_ms().saturating_sub(retention_ms);
    let deleted = reader
        .prune_payloads(cutoff_ms)
        .with_context(|| format!("pruning payloads in {}", a.db.db_path().display()))?;
    println!(
        "deleted {deleted} payloads stored more than {} ago (before Unix ms {cutoff_ms}); entries keep their hashes",
        a.older_than
    );
    Ok(ExitCode::SUCCESS)
}

fn tail(a: TailArgs) -> anyhow::Result<ExitCode> {
    let client = a.conn.client()?;
    let first = super::client::ok_json(client.get("/v1/audit?limit=1")?)?;
    let head = first["head"]["seq"].as_u64().unwrap_or(0);
    let mut after = head.saturating_sub(a.lines);
    loop {
        let page =
            super::client::ok_json(client.get(&format!("/v1/audit?after={after}&limit=1000"))?)?;
        for e in page["entries"].as_array().into_iter().flatten() {
            let x = &e["entry"];
            println!(
                "#{} {} {} {} {}{}{} attempt={} {}",
                e["seq"],
                x["event"].as_str().unwrap_or("?"),
                x["request_id"].as_str().unwrap_or(""),
                x["principal"].as_str().unwrap_or(""),
                x["capability"].as_str().unwrap_or(""),
                if x["function"].as_str().unwrap_or("").is_empty() {
                    ""
                } else {
                    "."
                },
                x["function"].as_str().unwrap_or(""),
                x["attempt"],
                x["outcome"].as_str().unwrap_or("?"),
            );
        }
        let next = page["next_after"].as_u64().unwrap_or(after);
        if !a.follow {
            return Ok(ExitCode::SUCCESS);
        }
        if next == after {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        after = next;
    }
}

fn public_key(a: &VerifyArgs) -> anyhow::Result<Option<ed25519_dalek::VerifyingKey>> {
    if a.skip_signatures {
        return Ok(None);
    }
    let path = a
        .pubkey
        .clone()
        .unwrap_or_else(|| a.db.data_dir().join(hostkey::PUBLIC_FILE));
    let key = hostkey::read_public_key(&path).context("no public key to check checkpoint signatures with (give --pubkey, or --skip-signatures to check hashes only)")?;
    Ok(Some(key))
}

/// The checkpoint `--expect-*` asks for, if any.
fn expected_checkpoint(
    a: &VerifyArgs,
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> anyhow::Result<Option<ExpectedCheckpoint>> {
    if let (Some(size), Some(head)) = (a.expect_size, a.expect_head) {
        return Ok(Some(ExpectedCheckpoint {
            size,
            head_hash: head,
            source: "--expect-size/--expect-head".into(),
        }));
    }
    let Some(file) = &a.expect_checkpoint else {
        return Ok(None);
    };
    let found = checkpoints_in_file(file)
        .with_context(|| format!("reading the expected checkpoint {}", file.display()))?;
    let cp =
        warden_host::audit::anchor::newest(found).with_context(|| format!("{}", file.display()))?;
    if let Some(key) = key {
        cp.verify(key).with_context(|| {
            format!(
                "the expected checkpoint in {} is not signed by this host key",
                file.display()
            )
        })?;
    }
    Ok(Some(ExpectedCheckpoint::from_checkpoint(
        &cp,
        file.display().to_string(),
    )))
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(bundle) = &a.bundle {
        return super::audit_bundle::verify(bundle, a.pubkey.as_deref(), a.skip_signatures);
    }
    let key = public_key(&a)?;
    let expected = expected_checkpoint(&a, key.as_ref())?;
    let witnesses = super::audit_prove::WitnessRequirement {
        count: a.witnesses,
        keys: &a.witness_key,
        cosigned: a.cosigned.as_deref(),
    };
    // A database is verified in one pass: chain and tree together.
    let (what, report, tree) = match &a.export {
        Some(file) => (
            file.clone(),
            verify_export_expecting(file, key.as_ref(), expected.as_ref())?,
            None,
        ),
        None => {
            let db = a.db.db_path();
            let witnessed = super::audit_prove::witnessed_notes(&db, key.as_ref(), &witnesses)?;
            let extra = witnessed.as_deref().unwrap_or(&[]);
            let full = open(&db)?.verify_all(key.as_ref(), expected.as_ref(), extra)?;
            (db, full.chain, Some((full.tree, witnessed)))
        }
    };
    let passed = report.passed(a.allow_uncovered_tail);
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{}: {} entries, {} checkpoints checked{}",
            what.display(),
            report.entries_checked,
            report.checkpoints_checked,
            if report.signatures_checked {
                ""
            } else {
                " (signatures NOT checked)"
            }
        );
        if let Some(x) = &expected {
            println!(
                "expected checkpoint ({}): entry {} with hash {}",
                x.source, x.size, x.head_hash
            );
        }
        match &report.problem {
            None => println!("ok: head {} {}", report.head_seq, report.head_hash),
            Some(p) if passed => println!("ok (allowed): {p}"),
            Some(p) => println!("FAILED at {p}"),
        }
    }
    let tree_passed = match &tree {
        None => true,
        Some((tree, witnessed)) => super::audit_prove::print_tree(tree.as_ref(), witnessed, a.json),
    };
    let passed = passed && tree_passed;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_VERIFIED)
    })
}

fn show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let reader = open(&a.db.db_path())?;
    let filter = EntryFilter {
        capability: a.capability,
        outcome: a.outcome,
    };
    for e in reader.entries(a.from, a.limit, &filter)? {
        if a.json {
            println!("{}", serde_json::to_string(&e)?);
            continue;
        }
        let n = &e.entry;
        println!(
            "#{:<6} {} {:<10} {:<24} {}.{} by {} ({}) fuel={} mem={} time={}us{}{} {}",
            e.seq,
            n.admitted_at_ms,
            n.event.as_str(),
            n.outcome.as_string(),
            if n.capability.is_empty() {
                "-"
            } else {
                &n.capability
            },
            if n.function.is_empty() {
                "-"
            } else {
                &n.function
            },
            n.principal,
            n.request_id,
            n.usage.fuel,
            n.usage.peak_memory,
            n.usage.wall_time_us,
            if n.replayable { " replayable" } else { "" },
            if n.attempt > 1 {
                format!(" attempt={}", n.attempt)
            } else {
                String::new()
            },
            &e.hash.hex()[..16],
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let reader = open(&a.db.db_path())?;
    let key = hostkey::read_public_key(&a.db.data_dir().join(hostkey::PUBLIC_FILE)).ok();
    let s = reader.export_jsonl(&a.out, key.as_ref(), warden_host::units::now_ms())?;
    println!(
        "wrote {}: {} entries, {} checkpoints",
        a.out.display(),
        s.entries,
        s.checkpoints
    );
    Ok(ExitCode::SUCCESS)
}

fn open(db: &Path) -> anyhow::Result<AuditReader> {
    AuditReader::open(db).with_context(|| format!("opening audit database {}", db.display()))
}
