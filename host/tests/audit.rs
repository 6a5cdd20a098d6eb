//! Audit chain: store round trips, tamper detection, crash durability, group
//! commit and offline export verification.
//!
//! Run: `cargo test -p warden-host --test audit`
//! Rates: `cargo test -p warden-host --test audit -- --ignored --nocapture measure_`
//! (env `WARDEN_BENCH_CONCURRENCY`, default 64; `WARDEN_BENCH_PER_TASK`, default 3000).

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_host::audit::{
    Approval, ApprovalDecision, EventKind, HostCall, NewEntry, ProblemKind, RouteDecision,
    VerifyReport,
};
use warden_host::digest::{Hash256, canonical_json};
use warden_host::outcome::{Budget, Outcome, Usage};
use warden_host::store::hostkey;
use warden_host::store::{
    AuditLog, AuditReader, CheckpointPolicy, EntryFilter, Payloads, StoreError, verify_db,
    verify_export,
};

// ---------------------------------------------------------------------------
// Helpers

/// splitmix64: a small seeded PRNG so tamper trials are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn all_outcomes() -> Vec<Outcome> {
    let mut v = vec![
        Outcome::Ok,
        Outcome::InvalidInput,
        Outcome::NoRoute,
        Outcome::Denied,
        Outcome::PendingApproval,
        Outcome::ApprovalDenied,
        Outcome::ApprovalExpired,
        Outcome::Trap,
        Outcome::CapabilityError,
        Outcome::Transient,
    ];
    for b in [
        Budget::Fuel,
        Budget::Memory,
        Budget::Time,
        Budget::Output,
        Budget::Stdout,
        Budget::Http,
        Budget::Tokens,
        Budget::Kv,
        Budget::Log,
    ] {
        v.push(Outcome::BudgetExhausted(b));
    }
    v
}

/// An entry with every field set, varied by `i`.
fn full_entry(i: u64, outcome: Outcome) -> NewEntry {
    let input = serde_json::json!({"amount": i, "currency": "EUR"});
    let output = serde_json::json!({"rate": 1.5, "i": i});
    NewEntry {
        event: EventKind::Invocation,
        admitted_at_ms: 1_700_000_000_000 + i,
        request_id: format!("req-{i}"),
        principal: "alice".into(),
        request_kind: "http".into(),
        route: Some(RouteDecision {
            rule_id: format!("rule-{}", i % 3),
            table_hash: Hash256([3; 32]),
        }),
        capability: format!("cap-{}", i % 4),
        component_digest: Some(Hash256([4; 32])),
        policy_hash: Some(Hash256([5; 32])),
        function: "convert".into(),
        input_sha256: Some(Hash256::of_json(&input)),
        output_sha256: Some(Hash256::of_json(&output)),
        outcome,
        usage: Usage {
            fuel: 1000 + i,
            peak_memory: 65536,
            wall_time_us: 10 + i,
        },
        replayable: i.is_multiple_of(2),
        unsigned_allowed: i.is_multiple_of(5),
        attempt: 1 + (i % 3) as u32,
        approvals: vec![Approval {
            principal: "bob".into(),
            decision: if i.is_multiple_of(2) {
                ApprovalDecision::Approved
            } else {
                ApprovalDecision::Denied
            },
            at_ms: 1_700_000_000_500 + i,
            reason_sha256: Some(Hash256([6; 32])),
        }],
        host_calls: vec![HostCall {
            interface: "wasi:http/outgoing-handler".into(),
            target: "https://rates.example.com".into(),
            bytes_in: 12,
            bytes_out: 345,
            status: "200".into(),
            request_sha256: None,
            response_sha256: Some(Hash256([7; 32])),
        }],
        detail: (i.is_multiple_of(7)).then(|| "{\"note\":\"x\"}".to_owned()),
        evidence: Default::default(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Builds a closed database with `n` entries, checkpoints every `every` entries
/// (and the final one at close). Returns its path.
fn build_db(dir: &Path, n: u64, every: u64) -> PathBuf {
    let path = dir.join("base.db");
    let rt = runtime();
    rt.block_on(async {
        let log = AuditLog::open(
            &path,
            key(),
            CheckpointPolicy {
                every_entries: every,
                every: Duration::from_secs(3600),
            },
        )
        .expect("open");
        let outcomes = all_outcomes();
        for i in 1..=n {
            let o = outcomes[(i as usize) % outcomes.len()];
            log.append(full_entry(i, o), Payloads::default())
                .await
                .expect("append");
        }
        log.close().await.expect("close");
    });
    assert!(
        !path.with_extension("db-wal").exists()
            || std::fs::metadata(path.with_extension("db-wal"))
                .map(|m| m.len() == 0)
                .unwrap_or(true),
        "WAL should be merged after close"
    );
    path
}

fn copy_db(base: &Path, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(base, &p).expect("copy db");
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(p.with_extension(ext));
    }
    p
}

fn verify_strict(path: &Path) -> VerifyReport {
    let vk = key().verifying_key();
    verify_db(path, Some(&vk)).expect("verify runs")
}

fn problem(report: &VerifyReport) -> (u64, ProblemKind) {
    let p = report.problem.as_ref().expect("a problem is reported");
    (p.seq, p.kind)
}

// ---------------------------------------------------------------------------
// Round trips

#[test]
fn every_outcome_class_round_trips_through_the_store_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    let outcomes = all_outcomes();
    let expected: Vec<NewEntry> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| full_entry(i as u64, *o))
        .collect();
    runtime().block_on(async {
        let log = AuditLog::open(&path, key(), CheckpointPolicy::default()).expect("open");
        for (i, e) in expected.iter().enumerate() {
            let a = log
                .append(e.clone(), Payloads::default())
                .await
                .expect("append");
            assert_eq!(a.seq, i as u64 + 1);
            assert_eq!(log.head(), (a.seq, a.hash));
        }
        log.close().await.expect("close");
    });
    let reader = AuditReader::open(&path).expect("reader");
    let stored = reader
        .entries(1, usize::MAX, &EntryFilter::default())
        .expect("entries");
    assert_eq!(
        stored.len(),
        outcomes.len(),
        "exactly one entry per outcome"
    );
    for (s, e) in stored.iter().zip(&expected) {
        assert_eq!(&s.entry, e);
    }
    let report = verify_strict(&path);
    assert_eq!(report.problem, None);
    assert_eq!(report.entries_checked, outcomes.len() as u64);
    // Filtering by outcome class and by full form.
    let fuel = EntryFilter {
        outcome: Some("budget_exhausted:fuel".into()),
        ..Default::default()
    };
    assert_eq!(reader.entries(1, 100, &fuel).expect("filter").len(), 1);
    let budget = EntryFilter {
        outcome: Some("budget_exhausted".into()),
        ..Default::default()
    };
    assert_eq!(reader.entries(1, 100, &budget).expect("filter").len(), 9);
}

#[test]
fn payloads_are_kept_by_hash_and_pruning_keeps_the_chain_verifiable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    runtime().block_on(async {
        let log = AuditLog::open(&path, key(), CheckpointPolicy::default()).expect("open");
        let input = serde_json::json!({"currency": "EUR", "amount": 1});
        let mut e = full_entry(1, Outcome::Ok);
        e.input_sha256 = Some(Hash256::of_json(&input));
        e.output_sha256 = None;
        let bytes = canonical_json(&input).into_bytes();
        log.append(
            e.clone(),
            Payloads {
                input: Some(bytes.clone()),
                output: None,
                results: Vec::new(),
            },
        )
        .await
        .expect("append");
        let key_hash = Hash256::of(&bytes);
        assert_eq!(log.payload(&key_hash).expect("payload"), Some(bytes));
        // A payload that does not match the recorded hash is refused.
        let bad = log
            .append(
                e,
                Payloads {
                    input: Some(b"{}".to_vec()),
                    output: None,
                    results: Vec::new(),
                },
            )
            .await;
        assert!(matches!(
            bad,
            Err(StoreError::PayloadHashMismatch { which: "input", .. })
        ));
        assert_eq!(log.prune_payloads(u64::MAX).expect("prune"), 1);
        assert_eq!(log.payload(&key_hash).expect("payload"), None);
        log.close().await.expect("close");
    });
    assert_eq!(verify_strict(&path).problem, None);
}

#[test]
fn checkpoints_are_written_by_count_and_at_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    runtime().block_on(async {
        let log = AuditLog::open(
            &path,
            key(),
            CheckpointPolicy {
                every_entries: 10,
                every: Duration::from_secs(3600),
            },
        )
        .expect("open");
        for i in 1..=25 {
            log.append(full_entry(i, Outcome::Ok), Payloads::default())
                .await
                .expect("append");
        }
        let sizes: Vec<u64> = log
            .checkpoints()
            .expect("cps")
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, vec![10, 20]);
        let report = log.verify().expect("verify");
        assert_eq!(problem(&report), (21, ProblemKind::UncoveredTail));
        log.close().await.expect("close");
    });
    let reader = AuditReader::open(&path).expect("reader");
    let sizes: Vec<u64> = reader
        .checkpoints()
        .expect("cps")
        .iter()
        .map(|c| c.size)
        .collect();
    assert_eq!(sizes, vec![10, 20, 25]);
    assert_eq!(verify_strict(&path).problem, None);
}

#[test]
fn checkpoints_are_written_after_the_configured_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    runtime().block_on(async {
        let log = AuditLog::open(
            &path,
            key(),
            CheckpointPolicy {
                every_entries: 0,
                every: Duration::from_millis(50),
            },
        )
        .expect("open");
        log.append(full_entry(1, Outcome::Ok), Payloads::default())
            .await
            .expect("append");
        let mut sizes = Vec::new();
        for _ in 0..200 {
            sizes = log
                .checkpoints()
                .expect("cps")
                .iter()
                .map(|c| c.size)
                .collect();
            if !sizes.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(sizes, vec![1]);
        log.close().await.expect("close");
    });
}

#[test]
fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_db(dir.path(), 12, 5);
    runtime().block_on(async {
        let log = AuditLog::open(&path, key(), CheckpointPolicy::default()).expect("reopen");
        assert_eq!(log.head().0, 12);
        let a = log
            .append(full_entry(13, Outcome::Ok), Payloads::default())
            .await
            .expect("append");
        assert_eq!(a.seq, 13);
        log.close().await.expect("close");
    });
    assert_eq!(verify_strict(&path).problem, None);
}

// ---------------------------------------------------------------------------
// Tampering with the database

const N: u64 = 40;

#[test]
fn flipping_any_byte_of_a_stored_entry_is_detected_at_its_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = build_db(dir.path(), N, 10);
    let mut rng = Rng(0x5eed_0001);
    for trial in 0..150 {
        let db = copy_db(&base, dir.path(), "t.db");
        let seq = rng.range(1, N);
        let column = ["entry", "hash", "prev_hash"][rng.range(0, 2) as usize];
        {
            let conn = Connection::open(&db).expect("open copy");
            let mut blob: Vec<u8> = conn
                .query_row(
                    &format!("SELECT {column} FROM audit_entries WHERE seq = ?1"),
                    [seq as i64],
                    |r| r.get(0),
                )
                .expect("row");
            let pos = rng.range(0, blob.len() as u64 - 1) as usize;
            blob[pos] ^= 1 << rng.range(0, 7);
            conn.execute(
                &format!("UPDATE audit_entries SET {column} = ?1 WHERE seq = ?2"),
                rusqlite::params![blob, seq as i64],
            )
            .expect("update");
        }
        let report = verify_strict(&db);
        let (at, kind) = problem(&report);
        assert_eq!(
            at, seq,
            "trial {trial}: {column} of entry {seq}: {:?}",
            report.problem
        );
        assert!(
            matches!(kind, ProblemKind::HashMismatch | ProblemKind::Malformed),
            "trial {trial}: {kind:?}"
        );
    }
}

#[test]
fn deleting_an_entry_is_reported_as_a_gap_at_its_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = build_db(dir.path(), N, 10);
    let mut rng = Rng(0x5eed_0002);
    for trial in 0..40 {
        let db = copy_db(&base, dir.path(), "t.db");
        let seq = rng.range(1, N);
        Connection::open(&db)
            .expect("open copy")
            .execute("DELETE FROM audit_entries WHERE seq = ?1", [seq as i64])
            .expect("delete");
        let report = verify_strict(&db);
        // Deleting the last entry is a cut tail below the final checkpoint.
        let kind = if seq == N {
            ProblemKind::Truncated
        } else {
            ProblemKind::Gap
        };
        assert_eq!(problem(&report), (seq, kind), "trial {trial}");
    }
}

#[test]
fn swapping_two_entries_is_reported_as_reordering_at_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = build_db(dir.path(), N, 10);
    let mut rng = Rng(0x5eed_0003);
    for trial in 0..40 {
        let db = copy_db(&base, dir.path(), "t.db");
        let a = rng.range(1, N - 1);
        let b = rng.range(a + 1, N);
        {
            let conn = Connection::open(&db).expect("open copy");
            // Swap the stored contents; the row keys stay in place.
            conn.execute_batch(&format!(
                "UPDATE audit_entries SET seq = -1 WHERE seq = {a};
                 UPDATE audit_entries SET seq = {a} WHERE seq = {b};
                 UPDATE audit_entries SET seq = {b} WHERE seq = -1;"
            ))
            .expect("swap");
        }
        let report = verify_strict(&db);
        assert_eq!(
            problem(&report),
            (a, ProblemKind::Reordered),
            "trial {trial}: swap {a}<->{b}"
        );
    }
}

#[test]
fn truncating_the_tail_below_the_last_checkpoint_is_detected_at_the_first_missing_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = build_db(dir.path(), N, 10);
    let mut rng = Rng(0x5eed_0004);
    for trial in 0..30 {
        let db = copy_db(&base, dir.path(), "t.db");
        let from = rng.range(1, N);
        Connection::open(&db)
            .expect("open copy")
            .execute("DELETE FROM audit_entries WHERE seq >= ?1", [from as i64])
            .expect("truncate");
        let report = verify_strict(&db);
        assert_eq!(
            problem(&report),
            (from, ProblemKind::Truncated),
            "trial {trial}"
        );
    }
}

#[test]
fn replacing_a_checkpoint_signature_is_detected_at_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = build_db(dir.path(), N, 10);
    let mut rng = Rng(0x5eed_0005);
    let cps = AuditReader::open(&base)
        .expect("r")
        .checkpoints()
        .expect("cps");
    assert_eq!(
        cps.iter().map(|c| c.size).collect::<Vec<_>>(),
        vec![10, 20, 30, 40]
    );
    for trial in 0..20 {
        let db = copy_db(&base, dir.path(), "t.db");
        let victim = rng.range(0, cps.len() as u64 - 1) as usize;
        // A valid signature by the right key, but over a different checkpoint.
        let donor = &cps[(victim + 1) % cps.len()];
        let conn = Connection::open(&db).expect("open copy");
        conn.execute(
            "UPDATE audit_checkpoints SET signature = ?1 WHERE size = ?2",
            rusqlite::params![&donor.signature.0[..], cps[victim].size as i64],
        )
        .expect("update");
        drop(conn);
        let report = verify_strict(&db);
        assert_eq!(
            problem(&report),
            (cps[victim].size, ProblemKind::BadCheckpointSignature),
            "trial {trial}"
        );
    }
}

#[test]
fn a_torn_tail_is_reported_at_open_not_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = build_db(dir.path(), N, 10);
    let db = copy_db(&base, dir.path(), "torn.db");
    Connection::open(&db)
        .expect("open copy")
        .execute(
            "UPDATE audit_entries SET hash = zeroblob(32) WHERE seq = ?1",
            [N as i64],
        )
        .expect("update");
    match AuditLog::open(&db, key(), CheckpointPolicy::default()) {
        Err(StoreError::TornTail { problem, .. }) => assert_eq!(problem.seq, N),
        other => panic!("expected a torn tail, got {other:?}"),
    }
    let db = copy_db(&base, dir.path(), "cut.db");
    Connection::open(&db)
        .expect("open copy")
        .execute("DELETE FROM audit_entries WHERE seq > 35", [])
        .expect("delete");
    match AuditLog::open(&db, key(), CheckpointPolicy::default()) {
        Err(StoreError::TornTail { problem, .. }) => {
            assert_eq!((problem.seq, problem.kind), (36, ProblemKind::Truncated));
        }
        other => panic!("expected a truncated tail, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Export

#[test]
fn an_export_verifies_offline_with_only_the_host_public_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let signer = hostkey::load_or_create(&data_dir).expect("host key");
    let db = data_dir.join("warden.db");
    let export = dir.path().join("audit.jsonl");
    runtime().block_on(async {
        let log = AuditLog::open(&db, signer, CheckpointPolicy::default()).expect("open");
        for i in 1..=30 {
            log.append(full_entry(i, Outcome::Ok), Payloads::default())
                .await
                .expect("append");
        }
        let summary = log.export_jsonl(&export).expect("export");
        assert_eq!(summary.entries, 30);
        log.close().await.expect("close");
    });
    // The export above was taken before close: its tail is not yet covered.
    let pubkey = hostkey::read_public_key(&data_dir.join(hostkey::PUBLIC_FILE)).expect("pub");
    let r = verify_export(&export, Some(&pubkey)).expect("verify");
    assert_eq!(problem(&r), (1, ProblemKind::UncoveredTail));
    // After close, a fresh export is fully covered.
    AuditReader::open(&db)
        .expect("reader")
        .export_jsonl(&export, Some(&pubkey), 0)
        .expect("export");
    let r = verify_export(&export, Some(&pubkey)).expect("verify");
    assert_eq!(r.problem, None, "{r:?}");
    assert_eq!((r.entries_checked, r.checkpoints_checked), (30, 1));
    // Another key does not verify the checkpoints.
    let other = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let r = verify_export(&export, Some(&other)).expect("verify");
    assert_eq!(problem(&r), (30, ProblemKind::BadCheckpointSignature));
}

fn export_lines(dir: &Path) -> (Vec<String>, usize) {
    let base = build_db(dir, N, 10);
    let out = dir.join("base.jsonl");
    AuditReader::open(&base)
        .expect("reader")
        .export_jsonl(&out, Some(&key().verifying_key()), 0)
        .expect("export");
    let lines: Vec<String> = std::fs::read_to_string(&out)
        .expect("read export")
        .lines()
        .map(str::to_owned)
        .collect();
    let first_entry = lines
        .iter()
        .position(|l| l.starts_with("{\"type\":\"entry\""))
        .expect("entry lines");
    assert_eq!(lines.len() - first_entry, N as usize);
    (lines, first_entry)
}

fn verify_lines(dir: &Path, lines: &[Vec<u8>]) -> VerifyReport {
    let path = dir.join("t.jsonl");
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    std::fs::write(&path, bytes).expect("write export");
    verify_export(&path, Some(&key().verifying_key())).expect("verify runs")
}

#[test]
fn tampering_with_an_export_is_detected_at_the_right_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lines, first) = export_lines(dir.path());
    let base: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(verify_lines(dir.path(), &base).problem, None);
    let mut rng = Rng(0x5eed_0006);
    // Flip one bit of one byte of one entry line.
    for trial in 0..200 {
        let mut t = base.clone();
        let seq = rng.range(1, N);
        let line = &mut t[first + seq as usize - 1];
        let pos = rng.range(0, line.len() as u64 - 1) as usize;
        line[pos] ^= 1 << rng.range(0, 7);
        let r = verify_lines(dir.path(), &t);
        assert_eq!(
            problem(&r).0,
            seq,
            "trial {trial}: byte {pos} of entry {seq}: {:?}",
            r.problem
        );
    }
    // Delete one entry line.
    for trial in 0..20 {
        let mut t = base.clone();
        let seq = rng.range(1, N);
        t.remove(first + seq as usize - 1);
        let kind = if seq == N {
            ProblemKind::Truncated
        } else {
            ProblemKind::Gap
        };
        assert_eq!(
            problem(&verify_lines(dir.path(), &t)),
            (seq, kind),
            "trial {trial}"
        );
    }
    // Swap two entry lines.
    for trial in 0..20 {
        let mut t = base.clone();
        let a = rng.range(1, N - 1);
        let b = rng.range(a + 1, N);
        t.swap(first + a as usize - 1, first + b as usize - 1);
        assert_eq!(
            problem(&verify_lines(dir.path(), &t)),
            (a, ProblemKind::Reordered),
            "trial {trial}"
        );
    }
    // Cut the tail.
    for trial in 0..10 {
        let mut t = base.clone();
        let from = rng.range(1, N);
        t.truncate(first + from as usize - 1);
        assert_eq!(
            problem(&verify_lines(dir.path(), &t)),
            (from, ProblemKind::Truncated),
            "trial {trial}"
        );
    }
    // Replace a checkpoint's signature with another checkpoint's.
    for victim in 1..first {
        let mut t = base.clone();
        let donor = if victim + 1 < first { victim + 1 } else { 1 };
        let sig_of = |l: &[u8]| -> String {
            let v: serde_json::Value = serde_json::from_slice(l).expect("json");
            v["signature"].as_str().expect("signature").to_owned()
        };
        let size = {
            let v: serde_json::Value = serde_json::from_slice(&t[victim]).expect("json");
            v["size"].as_u64().expect("size")
        };
        let replaced = String::from_utf8(t[victim].clone())
            .expect("utf8")
            .replace(&sig_of(&t[victim]), &sig_of(&base[donor]));
        t[victim] = replaced.into_bytes();
        assert_eq!(
            problem(&verify_lines(dir.path(), &t)),
            (size, ProblemKind::BadCheckpointSignature),
            "checkpoint line {victim}"
        );
    }
}

// ---------------------------------------------------------------------------
// Group commit

#[test]
fn concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    let total: u64 = 64 * 40;
    let rt = runtime();
    let log = rt.block_on(async {
        let log = AuditLog::open(&path, key(), CheckpointPolicy::default()).expect("open");
        // Hold SQLite's write lock so the writer's first commit waits: every
        // task then has its first append queued, and the next commit must take
        // them together. This makes batching observable without timing.
        let blocker = Connection::open(&path).expect("side connection");
        blocker.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..40u64 {
                    let a = log
                        .append(full_entry(t * 1000 + i, Outcome::Ok), Payloads::default())
                        .await
                        .expect("append");
                    seqs.push(a.seq);
                }
                seqs
            }));
        }
        while log.stats().in_flight < 64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        blocker.execute_batch("ROLLBACK").expect("unlock");
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (1..=total).collect::<Vec<_>>(),
            "every append got its own seq"
        );
        log
    });
    let stats = log.stats();
    assert_eq!(stats.entries, total);
    assert_eq!(stats.commits, log.commit_count());
    assert_eq!(stats.in_flight, 0);
    // The 64 first appends were all queued while the lock was held: they went
    // into at most two commits, so one of them held at least 32 entries.
    assert!(stats.max_batch >= 32, "{stats:?}");
    assert!(
        stats.commits < total,
        "{} commits for {total} entries",
        stats.commits
    );
    assert_eq!(stats.histogram.iter().sum::<u64>(), stats.commits);
    eprintln!(
        "group commit: {total} entries in {} commits (max batch {})",
        stats.commits, stats.max_batch
    );
    rt.block_on(log.close()).expect("close");
    assert_eq!(verify_strict(&path).problem, None);
}

// ---------------------------------------------------------------------------
// Crash durability

const CRASH_CHILD_ENV: &str = "WARDEN_AUDIT_CRASH_CHILD_DB";

/// The child half of the crash test: appends from 64 tasks until killed and
/// prints `ACK <request id> <seq>` after each acknowledged append. Does
/// nothing unless started by the parent.
#[test]
fn crash_child_appends_until_killed() {
    let Ok(db) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    runtime().block_on(async {
        let log = AuditLog::open(
            Path::new(&db),
            key(),
            CheckpointPolicy {
                every_entries: 500,
                every: Duration::from_secs(3600),
            },
        )
        .expect("child open");
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100_000u64 {
                    let mut e = full_entry(i, Outcome::Ok);
                    e.request_id = format!("t{t}-{i}");
                    let a = log
                        .append(e.clone(), Payloads::default())
                        .await
                        .expect("append");
                    println!("ACK {} {}", e.request_id, a.seq);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn acknowledged_appends_survive_sigkill_mid_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test exe"))
        .args([
            "--exact",
            "crash_child_appends_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, &db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("read child") == 0 {
            break;
        }
        if let Some(rest) = line.trim_end().strip_prefix("ACK ") {
            let (id, seq) = rest.split_once(' ').expect("ACK id seq");
            acked.push((id.to_owned(), seq.parse().expect("seq")));
        }
        if !killed && acked.len() >= 3000 {
            child.kill().expect("SIGKILL child");
            killed = true;
        }
    }
    let status = child.wait().expect("wait child");
    assert!(killed, "child ended before being killed: {status:?}");
    assert!(!status.success());

    let vk = key().verifying_key();
    let report = verify_db(&db, Some(&vk)).expect("verify after crash");
    assert!(report.passed(true), "chain after SIGKILL: {report:?}");
    let reader = AuditReader::open(&db).expect("reader");
    let stored: std::collections::HashMap<String, u64> = reader
        .entries(1, usize::MAX, &EntryFilter::default())
        .expect("entries")
        .into_iter()
        .map(|e| (e.entry.request_id, e.seq))
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(id, seq)| stored.get(id) != Some(seq))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged appends lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert!(stored.len() >= acked.len());
    eprintln!(
        "crash: {} acknowledged, {} stored",
        acked.len(),
        stored.len()
    );
    // The store reopens cleanly and a clean close covers the tail.
    runtime().block_on(async {
        let log =
            AuditLog::open(&db, key(), CheckpointPolicy::default()).expect("reopen after crash");
        log.close().await.expect("close");
    });
    assert_eq!(verify_strict(&db).problem, None);
}

// ---------------------------------------------------------------------------
// Rates (ignored: run on demand)

#[test]
#[ignore]
fn measure_append_and_verify_rates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    let per_task: u64 = std::env::var("WARDEN_BENCH_PER_TASK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let concurrency: u64 = std::env::var("WARDEN_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let total = concurrency * per_task;
    let rt = runtime();
    let started = std::time::Instant::now();
    let log = rt.block_on(async {
        let log = AuditLog::open(&path, key(), CheckpointPolicy::default()).expect("open");
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_task {
                    log.append(
                        full_entry(t * 1_000_000 + i, Outcome::Ok),
                        Payloads::default(),
                    )
                    .await
                    .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        log
    });
    let append_s = started.elapsed().as_secs_f64();
    let stats = log.stats();
    rt.block_on(log.close()).expect("close");
    let started = std::time::Instant::now();
    let report = verify_strict(&path);
    let verify_s = started.elapsed().as_secs_f64();
    assert_eq!(report.problem, None);
    let export = dir.path().join("e.jsonl");
    AuditReader::open(&path)
        .expect("reader")
        .export_jsonl(&export, None, 0)
        .expect("export");
    let started = std::time::Instant::now();
    let r = verify_export(&export, Some(&key().verifying_key())).expect("verify export");
    let export_s = started.elapsed().as_secs_f64();
    assert_eq!(r.problem, None);
    eprintln!(
        "append: {total} entries at concurrency {concurrency} in {append_s:.2}s = {:.0}/s; {} commits, mean batch {:.1}, max {}",
        total as f64 / append_s,
        stats.commits,
        stats.entries as f64 / stats.commits.max(1) as f64,
        stats.max_batch
    );
    eprintln!(
        "verify db: {total} entries in {verify_s:.3}s = {:.0}/s; verify export: {export_s:.3}s = {:.0}/s",
        total as f64 / verify_s,
        total as f64 / export_s
    );
}

#[test]
fn readers_refuse_a_file_that_is_not_a_warden_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .expect("create")
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .expect("table");
    assert!(matches!(
        AuditReader::open(&path),
        Err(StoreError::Corrupt { .. })
    ));
    let tables: i64 = Connection::open(&path)
        .expect("reopen")
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(tables, 1, "the reader must not have written a schema");
}
