//! Every invocation through the host leaves exactly one audit entry with the
//! right fields, durable before the caller sees the result.

use crate::support::*;
use serde_json::{Value, json};
use warden_host::digest::{canonical_json, json_digest};
use warden_host::store::hostkey;
use warden_host::store::{EntryFilter, verify_db};
use warden_host::{Budget, Call, Host, HostConfig, InvocationRecord, Outcome};

fn audited_host(dir: &std::path::Path) -> Host {
    let mut h = Host::new(HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    })
    .expect("host");
    load(&mut h, policy("echo", "", ""), "echo");
    load(
        &mut h,
        policy("spin-loop", "", "fuel = 1_000_000"),
        "spin-loop",
    );
    load(&mut h, policy("panicker", STD_IMPORTS, ""), "panicker");
    load(&mut h, policy("all-types", STD_IMPORTS, ""), "all-types");
    load(
        &mut h,
        policy("big-output", STD_IMPORTS, "max_output = \"1KiB\"").with_payloads_hash_only(),
        "big-output",
    );
    h
}

trait HashOnly {
    fn with_payloads_hash_only(self) -> Self;
}

impl HashOnly for warden_host::policy::Policy {
    fn with_payloads_hash_only(mut self) -> Self {
        self.capability.payloads = warden_host::policy::PayloadRetention::HashOnly;
        self
    }
}

#[tokio::test]
async fn every_outcome_class_produces_exactly_one_entry_with_the_right_fields() {
    let dir = scratch("audit-outcomes");
    let h = audited_host(&dir);
    let calls: Vec<(Call, Outcome)> = vec![
        (
            Call::new("echo", "echo", json!({"message": "hi"})),
            Outcome::Ok,
        ),
        (
            Call::new("echo", "echo", json!({"message": 1})),
            Outcome::InvalidInput,
        ),
        (
            Call::new("echo", "no-such-fn", json!({})),
            Outcome::InvalidInput,
        ),
        (Call::new("nope", "echo", json!({})), Outcome::Denied),
        (
            Call::new("spin-loop", "spin", json!({"n": 1})),
            Outcome::BudgetExhausted(Budget::Fuel),
        ),
        (
            Call::new("panicker", "boom", json!({"message": "x"})),
            Outcome::Trap,
        ),
        (
            Call::new("all-types", "try-it", json!({"v": "fail"})),
            Outcome::CapabilityError,
        ),
        (
            Call::new("big-output", "make", json!({"bytes": 5000})),
            Outcome::BudgetExhausted(Budget::Output),
        ),
    ];
    let mut records: Vec<(InvocationRecord, Value)> = Vec::new();
    for (call, expected) in calls {
        let input = call.input.clone();
        let r = h.invoke(call.from_principal("alice", "test")).await;
        assert_eq!(r.outcome, expected, "{r:?}");
        assert!(r.audit.is_some(), "every outcome is audited: {r:?}");
        records.push((r, input));
    }
    let log = h.audit().expect("audit log");
    let entries = log
        .entries(1, 100, &EntryFilter::default())
        .expect("entries");
    assert_eq!(
        entries.len(),
        records.len(),
        "exactly one entry per invocation"
    );
    for (entry, (record, input)) in entries.iter().zip(&records) {
        let a = record.audit.as_ref().expect("audit ref");
        assert_eq!(entry.seq, a.seq);
        assert_eq!(entry.hash.to_string(), a.hash);
        let e = &entry.entry;
        assert_eq!(e.request_id, record.request_id);
        assert_eq!(e.principal, "alice");
        assert_eq!(e.request_kind, "test");
        assert_eq!(e.capability, record.capability);
        assert_eq!(e.function, record.function);
        assert_eq!(e.outcome, record.outcome);
        assert_eq!(e.usage, record.usage);
        assert!(e.unsigned_allowed, "the dev switch is recorded");
        assert_eq!(e.attempt, 1);
        assert_eq!(e.admitted_at_ms, record.admitted_at_ms);
        let input_hash = json_digest(input);
        assert_eq!(
            e.input_sha256.map(|h| h.to_string()),
            Some(input_hash.clone())
        );
        assert_eq!(
            e.output_sha256.map(|h| h.to_string()),
            Some(record.output_hash.to_string())
        );
        assert_eq!(
            record.output_hash.to_string(),
            json_digest(&record.output_document())
        );
        match h.capability(&record.capability) {
            Some(cap) => {
                assert_eq!(e.component_digest, Some(cap.digest));
                assert_eq!(e.policy_hash, Some(cap.policy_hash));
                assert_eq!(record.component_digest, Some(cap.digest));
                assert_eq!(record.policy_hash, Some(cap.policy_hash));
                assert_eq!(e.replayable, cap.policy.is_replayable() && !cap.hash_only());
            }
            None => assert_eq!(e.component_digest, None, "unknown capability: no digest"),
        }
        // Payloads are stored beside the chain, except for hash-only capabilities.
        let stored = e
            .input_sha256
            .and_then(|h| log.payload(&h).expect("payload lookup"));
        if record.capability == "big-output" {
            assert_eq!(stored, None, "hash-only capability stores no payloads");
        } else {
            assert_eq!(stored, Some(canonical_json(input).into_bytes()));
        }
    }
    h.shutdown().await.expect("clean shutdown");
    let pubkey = hostkey::read_public_key(&dir.join(hostkey::PUBLIC_FILE)).expect("host.pub");
    let report = verify_db(&dir.join("warden.db"), Some(&pubkey)).expect("verify");
    assert!(report.passed(false), "{report:?}");
    assert_eq!(report.entries_checked, records.len() as u64);
}

/// `warden run` of echo with `message`, appending to the audit store in `data_dir`.
pub(crate) fn warden_run_echo(data_dir: &str, message: &str) {
    let (code, err) = try_warden_run_echo(data_dir, message);
    assert_eq!(code, 0, "{err}");
}

/// `warden audit prune` deletes stored payloads past the retention period;
/// the entries keep the payloads' hashes, so the chain still verifies.
#[test]
fn audit_prune_deletes_old_payloads_and_the_chain_still_verifies() {
    let data = scratch("prune");
    let d = data.display().to_string();
    warden_run_echo(&d, "kept until pruned");
    let db = data.join("warden.db");
    let input_hash = {
        let reader = warden_host::store::AuditReader::open(&db).expect("db");
        let entry = reader
            .entries(1, 10, &EntryFilter::default())
            .expect("entries")
            .into_iter()
            .next()
            .expect("one entry");
        let hash = entry.entry.input_sha256.expect("input hash");
        assert!(reader.payload(&hash).expect("read").is_some());
        hash
    };
    // A long retention keeps everything.
    let (code, out, err) = warden(&["audit", "prune", "--older-than", "30d", "--data-dir", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted 0 payloads"), "{out}");
    let (code, out, err) = warden(&["audit", "prune", "--older-than", "0s", "--data-dir", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted 2 payloads"), "{out}");
    let reader = warden_host::store::AuditReader::open(&db).expect("db");
    assert_eq!(reader.payload(&input_hash).expect("read"), None);
    let (code, out, err) = warden(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 0, "the chain verifies without payloads: {out}\n{err}");
    let (code, _, err) = warden(&["audit", "prune", "--older-than", "soon", "--data-dir", &d]);
    assert_eq!(code, 2, "a bad duration is a usage error: {err}");
    assert!(err.contains("soon"), "{err}");
}

#[test]
fn warden_run_appends_to_the_audit_store_and_audit_verify_passes() {
    let data = scratch("run-audit");
    let d = data.display().to_string();
    for message in ["one", "two"] {
        warden_run_echo(&d, message);
    }
    let (code, out, err) = warden(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = warden(&["audit", "show", "--data-dir", &d, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("\"request_id\"").count(), 2, "{out}");
}

#[test]
fn audit_verify_db_finds_the_host_key_beside_the_database_and_names_a_missing_one_once() {
    let data = scratch("verify-db");
    let d = data.display().to_string();
    warden_run_echo(&d, "one");
    let db = data.join("warden.db").display().to_string();
    // Run from elsewhere: the key is looked for beside --db, not in ./data.
    let out = std::process::Command::new(warden_bin())
        .args(["audit", "verify", "--db", &db])
        .current_dir(scratch("verify-db-cwd"))
        .output()
        .expect("warden");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 checkpoints checked"), "{stdout}");
    std::fs::remove_file(data.join("host.pub")).expect("rm host.pub");
    let (code, _, err) = warden(&["audit", "verify", "--db", &db]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("host.pub"), "names the file: {err}");
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the OS error is said once: {err}"
    );
}

// ---------------------------------------------------------------------------
// The trusted checkpoint (anchor file): a writer never signs over a history
// it has not verified from the newest checkpoint this host signed.

/// `warden run` of echo, returning (exit code, stderr) instead of asserting.
fn try_warden_run_echo(data_dir: &str, message: &str) -> (i32, String) {
    let input = serde_json::to_string(&json!({"message": message})).expect("json");
    let (code, _, err) = warden(&[
        "run",
        &guest("echo").display().to_string(),
        "--policy",
        &repo().join("policies/echo.toml").display().to_string(),
        "--call",
        "echo",
        "--input",
        &input,
        "--allow-unsigned",
        "--data-dir",
        data_dir,
    ]);
    (code, err)
}

/// A data dir after `n` separate `warden run`s: entries 1..=n, and (each run
/// closes cleanly) one checkpoint per run, at sizes 1..=n.
pub(crate) fn chain_of_runs(name: &str, n: usize) -> std::path::PathBuf {
    let data = scratch(name);
    let d = data.display().to_string();
    for i in 0..n {
        warden_run_echo(&d, &format!("message {i}"));
    }
    data
}

pub(crate) fn tamper(data: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("warden.db")).expect("attacker opens warden.db")
}

/// The anchor file's checkpoint.
fn anchor_of(data: &std::path::Path) -> warden_host::audit::Checkpoint {
    let path = warden_host::store::anchor_path(&data.join("warden.db"));
    let text = std::fs::read_to_string(&path).expect("anchor file exists");
    warden_host::audit::anchor::parse_anchor(&text).expect("anchor parses")
}

/// The attack: delete the checkpoints above `keep`, rewrite entry `keep + 1`
/// (its principal) and re-chain every later entry with the host's own
/// encoding, so every hash and link verifies again.
pub(crate) fn rewrite_after_checkpoint(data: &std::path::Path, keep: u64) {
    use warden_host::audit::{AuditEntry, entry::decode};
    use warden_host::digest::Hash256;
    let conn = tamper(data);
    conn.execute(
        "DELETE FROM audit_checkpoints WHERE size > ?1",
        [keep as i64],
    )
    .expect("delete checkpoints");
    let prev: Vec<u8> = conn
        .query_row(
            "SELECT hash FROM audit_entries WHERE seq = ?1",
            [keep as i64],
            |r| r.get(0),
        )
        .expect("entry at the kept checkpoint");
    let mut prev = Hash256(prev.try_into().expect("32 bytes"));
    let rows: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT seq, entry FROM audit_entries WHERE seq > ?1 ORDER BY seq")
        .expect("select")
        .query_map([keep as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(rows.len() >= 2, "the attack re-chains at least one entry");
    for (i, (seq, blob)) in rows.into_iter().enumerate() {
        let (seq_decoded, mut entry) = decode(&blob).expect("decodes");
        assert_eq!(seq_decoded, seq as u64);
        if i == 0 {
            entry.principal = "mallory-was-never-here".into();
        }
        let forged = AuditEntry::link(seq as u64, prev, entry);
        conn.execute(
            "UPDATE audit_entries SET prev_hash = ?2, hash = ?3, entry = ?4 WHERE seq = ?1",
            rusqlite::params![
                seq,
                &forged.prev_hash.0[..],
                &forged.hash.0[..],
                forged.encode()
            ],
        )
        .expect("rewrite");
        prev = forged.hash;
    }
    // A thorough attacker also drops the newer checkpoint notes and
    // rebuilds the Merkle tree over the forged entries.
    conn.execute("DELETE FROM audit_notes WHERE size > ?1", [keep as i64])
        .expect("delete notes");
    rebuild_tree(&conn);
}

/// Recomputes `audit_tree_nodes` from the entries' stored hashes, as
/// someone who can write the database (but has no key) can.
pub(crate) fn rebuild_tree(conn: &rusqlite::Connection) {
    use warden_host::audit::merkle::{Frontier, leaf_hash};
    use warden_host::digest::Hash256;
    conn.execute("DELETE FROM audit_tree_nodes", [])
        .expect("clear tree");
    let hashes: Vec<Vec<u8>> = conn
        .prepare("SELECT hash FROM audit_entries ORDER BY seq")
        .expect("select")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut f = Frontier::new();
    for h in hashes {
        let mut nodes = Vec::new();
        f.append(leaf_hash(&Hash256(h.try_into().expect("32 bytes"))), |n| {
            nodes.push(n)
        });
        for (level, idx, hash) in nodes.into_iter().filter(|n| n.0 > 0) {
            conn.execute(
                "INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
                rusqlite::params![level, idx as i64, &hash.0[..]],
            )
            .expect("insert node");
        }
    }
}

/// Regression (issue 14, item 7): on main the next writer signed a new
/// checkpoint over the forged tail and `audit verify` then passed.
#[test]
fn a_rechained_history_under_a_deleted_checkpoint_is_refused_at_restart_naming_the_anchor() {
    let data = chain_of_runs("anchor-rewrite", 4);
    let d = data.display().to_string();
    let anchor = anchor_of(&data);
    assert_eq!(anchor.size, 4, "the anchor is the newest checkpoint signed");
    rewrite_after_checkpoint(&data, 2);
    // Without the anchor, the forgery is only an uncovered tail.
    let (code, out, _) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        &d,
        "--allow-uncovered-tail",
    ]);
    assert_eq!(code, 0, "the re-chained copy verifies on its own: {out}");
    let (code, err) = try_warden_run_echo(&d, "after the attack");
    assert_eq!(code, 2, "the start is refused: {err}");
    for needle in [
        "does not extend the trusted checkpoint",
        "warden.db.anchor",
        &format!("size 4, head {}", anchor.head_hash),
        "entry 4 in the database has hash",
        "history was rewritten",
        "Nothing was signed",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    let reader = warden_host::store::AuditReader::open(&data.join("warden.db")).expect("db");
    let cps = reader.checkpoints().expect("checkpoints");
    assert_eq!(
        cps.iter().map(|c| c.size).max(),
        Some(2),
        "no checkpoint was signed over the forged entries"
    );
    assert_eq!(
        reader
            .entries(1, 100, &EntryFilter::default())
            .expect("entries")
            .len(),
        4,
        "nothing was appended"
    );
}

#[test]
fn a_truncated_chain_is_refused_at_restart() {
    let data = chain_of_runs("anchor-truncated", 4);
    let d = data.display().to_string();
    let conn = tamper(&data);
    conn.execute("DELETE FROM audit_entries WHERE seq > 2", [])
        .expect("cut entries");
    conn.execute("DELETE FROM audit_checkpoints WHERE size > 2", [])
        .expect("cut checkpoints");
    drop(conn);
    let (code, err) = try_warden_run_echo(&d, "after the cut");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the database holds 2 entries, fewer than the 4 the anchor covers"),
        "{err}"
    );
}

#[test]
fn deleting_only_the_newest_checkpoint_is_refused_at_restart() {
    let data = chain_of_runs("anchor-cp-deleted", 3);
    let d = data.display().to_string();
    tamper(&data)
        .execute("DELETE FROM audit_checkpoints WHERE size = 3", [])
        .expect("delete checkpoint");
    let (code, err) = try_warden_run_echo(&d, "after the delete");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no longer holds that checkpoint (its newest covers 2 entries)"),
        "{err}"
    );
}

#[test]
fn a_forged_anchor_file_is_refused() {
    let data = chain_of_runs("anchor-forged", 2);
    let d = data.display().to_string();
    let path = warden_host::store::anchor_path(&data.join("warden.db"));
    let mut cp = anchor_of(&data);
    cp.size = 1;
    std::fs::write(&path, warden_host::audit::anchor::anchor_text(&cp)).expect("forge");
    let (code, err) = try_warden_run_echo(&d, "x");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("trusted checkpoint is not usable"), "{err}");
    assert!(err.contains("signature does not verify"), "{err}");
}

#[test]
fn a_clean_restart_moves_the_anchor_to_the_newest_checkpoint() {
    let data = chain_of_runs("anchor-clean", 2);
    let first = anchor_of(&data);
    assert_eq!(first.size, 2);
    warden_run_echo(&data.display().to_string(), "third");
    let next = anchor_of(&data);
    assert_eq!(next.size, 3);
    let pubkey = hostkey::read_public_key(&data.join(hostkey::PUBLIC_FILE)).expect("host.pub");
    next.verify(&pubkey)
        .expect("the anchor is signed by the host key");
}

/// An anchor one checkpoint behind the database (a crash after the
/// checkpoint's commit, before the anchor was replaced) still starts, and
/// the anchor catches up.
#[test]
fn an_anchor_behind_the_database_still_starts_and_catches_up() {
    let data = chain_of_runs("anchor-lag", 2);
    let d = data.display().to_string();
    let path = warden_host::store::anchor_path(&data.join("warden.db"));
    let old = std::fs::read(&path).expect("anchor");
    warden_run_echo(&d, "third");
    std::fs::write(&path, old).expect("roll the anchor back");
    assert_eq!(anchor_of(&data).size, 2);
    warden_run_echo(&d, "fourth");
    assert_eq!(anchor_of(&data).size, 4);
}

/// A data dir made by a version without the anchor file starts; the anchor
/// is derived from the newest checkpoint signed by the host key, and a
/// warning says so.
#[test]
fn a_data_dir_without_an_anchor_file_starts_and_derives_it() {
    let data = chain_of_runs("anchor-upgrade", 2);
    let d = data.display().to_string();
    let path = warden_host::store::anchor_path(&data.join("warden.db"));
    std::fs::remove_file(&path).expect("as an older version left it");
    let (code, err) = try_warden_run_echo(&d, "after upgrade");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("no trusted-checkpoint file; created it from the database's newest checkpoint signed by this host (size 2"),
        "{err}"
    );
    assert_eq!(anchor_of(&data).size, 3, "and moved on at the clean stop");
    let (code, err) = try_warden_run_echo(&d, "again");
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("no trusted-checkpoint file"),
        "only once: {err}"
    );
}

/// Copies a closed data dir's database (with its WAL, if any) to `dest`.
fn copy_db(from: &std::path::Path, dest: &std::path::Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    for suffix in ["", "-wal"] {
        let src = from.join(format!("warden.db{suffix}"));
        if src.exists() {
            std::fs::copy(&src, dest.join(format!("warden.db{suffix}"))).expect("copy");
        }
    }
}

#[test]
fn audit_verify_with_an_expected_checkpoint_passes_on_the_chain_and_fails_on_a_cut_or_rewritten_copy()
 {
    let data = chain_of_runs("expect", 4);
    let d = data.display().to_string();
    let anchor_file = warden_host::store::anchor_path(&data.join("warden.db"));
    let anchor = anchor_of(&data);
    let pubkey = data.join(hostkey::PUBLIC_FILE).display().to_string();
    let size = anchor.size.to_string();
    let head = anchor.head_hash.to_string();
    let verify = |db: &std::path::Path, extra: &[&str]| {
        let db = db.join("warden.db").display().to_string();
        let mut args: Vec<&str> = vec![
            "audit",
            "verify",
            "--db",
            db.as_str(),
            "--pubkey",
            pubkey.as_str(),
        ];
        args.extend_from_slice(extra);
        warden(&args)
    };
    let by_hash: [&str; 4] = ["--expect-size", &size, "--expect-head", &head];
    let anchor_arg = anchor_file.display().to_string();
    let by_file: [&str; 2] = ["--expect-checkpoint", &anchor_arg];
    for extra in [&by_hash[..], &by_file[..]] {
        let (code, out, err) = verify(&data, extra);
        assert_eq!(
            code, 0,
            "the real chain extends its checkpoint: {out}\n{err}"
        );
        assert!(out.contains("expected checkpoint"), "{out}");
    }
    // An export holds the checkpoints too.
    let export = data.join("export.jsonl");
    let (code, _, err) = warden(&[
        "audit",
        "export",
        "--data-dir",
        &d,
        "--out",
        &export.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let export_arg = export.display().to_string();
    let (code, out, err) = verify(&data, &["--expect-checkpoint", &export_arg]);
    assert_eq!(code, 0, "{out}\n{err}");

    // A truncated copy: entries and checkpoints above 2 deleted.
    let cut = scratch("expect-cut");
    copy_db(&data, &cut);
    let conn = tamper(&cut);
    conn.execute("DELETE FROM audit_entries WHERE seq > 2", [])
        .expect("cut");
    conn.execute("DELETE FROM audit_checkpoints WHERE size > 2", [])
        .expect("cut");
    // The checkpoint notes above 2 still name the cut entries: the tree
    // check alone catches this cut.
    let (code, out, _) = verify(&cut, &[]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAILED (tree): checkpoint note at size 3 covers more entries"),
        "{out}"
    );
    // A thorough attacker deletes those notes too and rebuilds the tree.
    conn.execute("DELETE FROM audit_notes WHERE size > 2", [])
        .expect("cut");
    rebuild_tree(&conn);
    drop(conn);
    let (code, out, _) = verify(&cut, &[]);
    assert_eq!(code, 0, "alone, the cut copy verifies: {out}");
    for extra in [&by_hash[..], &by_file[..]] {
        let (code, out, err) = verify(&cut, extra);
        assert_eq!(code, 3, "{out}\n{err}");
        assert!(
            out.contains("FAILED at seq 3: truncated: expected checkpoint"),
            "{out}"
        );
        assert!(out.contains("covers 4 entries"), "{out}");
    }

    // A rewritten copy: checkpoints above 2 deleted, entries 3.. re-chained.
    let forged = scratch("expect-forged");
    copy_db(&data, &forged);
    rewrite_after_checkpoint(&forged, 2);
    let (code, out, _) = verify(&forged, &["--allow-uncovered-tail"]);
    assert_eq!(code, 0, "alone, the forged copy verifies: {out}");
    for extra in [&by_hash[..], &by_file[..]] {
        let with_tail: Vec<&str> = [extra, &["--allow-uncovered-tail"][..]].concat();
        let (code, out, err) = verify(&forged, &with_tail);
        assert_eq!(code, 3, "{out}\n{err}");
        assert!(
            out.contains("FAILED at seq 4: checkpoint_mismatch: expected checkpoint"),
            "{out}"
        );
        assert!(out.contains("history rewritten"), "{out}");
    }

    // A checkpoint file not signed by the host key is refused, not trusted.
    let mut bad = anchor.clone();
    bad.size = 1;
    let bad_file = data.join("bad.anchor");
    std::fs::write(&bad_file, warden_host::audit::anchor::anchor_text(&bad)).expect("write");
    let bad_arg = bad_file.display().to_string();
    let (code, _, err) = verify(&data, &["--expect-checkpoint", &bad_arg]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not signed by this host key"), "{err}");
}
