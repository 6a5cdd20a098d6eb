//! Filtered audit listings (issue 14, item 10): a page examines only rows
//! that can match, never more than its scan bound, and the cursor walks
//! every match exactly once; a version-1 database is migrated in place.
//!
//! Run: `cargo test -p warden-host --test audit_listing`

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use warden_host::audit::{EventKind, NewEntry};
use warden_host::outcome::{Outcome, Usage};
use warden_host::store::{
    AuditLog, AuditReader, CheckpointPolicy, EntryFilter, Payloads, verify_db,
};

/// Entries in the test chain; every `RARE_EVERY`th is capability `rare`
/// with outcome `trap`, the rest `common` and `ok`.
const ENTRIES: u64 = 3000;
const RARE_EVERY: u64 = 100;

fn entry(i: u64) -> NewEntry {
    let rare = i.is_multiple_of(RARE_EVERY);
    NewEntry {
        event: EventKind::Invocation,
        admitted_at_ms: 1_700_000_000_000 + i,
        request_id: format!("req-{i}"),
        principal: "alice".into(),
        request_kind: "http".into(),
        route: None,
        capability: if rare { "rare" } else { "common" }.into(),
        component_digest: None,
        policy_hash: None,
        function: "run".into(),
        input_sha256: None,
        output_sha256: None,
        outcome: if rare { Outcome::Trap } else { Outcome::Ok },
        usage: Usage::default(),
        replayable: true,
        unsigned_allowed: false,
        attempt: 1,
        approvals: Vec::new(),
        host_calls: Vec::new(),
        detail: None,
        evidence: Default::default(),
    }
}

/// A closed database holding [`ENTRIES`] entries (appended concurrently,
/// so the writer commits them in batches).
fn build(dir: &Path) -> PathBuf {
    let path = dir.join("warden.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let log = AuditLog::open(
            &path,
            SigningKey::from_bytes(&[7; 32]),
            CheckpointPolicy::default(),
        )
        .expect("open");
        let mut tasks = Vec::new();
        for i in 1..=ENTRIES {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append(entry(i), Payloads::default())
                    .await
                    .expect("append");
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        log.close().await.expect("close");
    });
    path
}

fn rare_seqs(reader: &AuditReader) -> Vec<u64> {
    reader
        .entries(1, usize::MAX, &EntryFilter::default())
        .expect("all")
        .iter()
        .filter(|e| e.entry.capability == "rare")
        .map(|e| e.seq)
        .collect()
}

/// Pages through `filter` with `limit` and `max_scan`; checks every page's
/// bound and returns the seqs listed, in order.
fn walk(reader: &AuditReader, filter: &EntryFilter, limit: usize, max_scan: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut from = 1;
    for _ in 0..=ENTRIES {
        let page = reader.page(from, limit, max_scan, filter).expect("page");
        assert!(
            page.examined <= max_scan,
            "a page examined {}",
            page.examined
        );
        assert!(page.entries.len() <= limit);
        seqs.extend(page.entries.iter().map(|e| e.seq));
        if page.complete {
            return seqs;
        }
        assert!(page.next_after >= from, "the cursor moves forward");
        from = page.next_after + 1;
    }
    panic!("the listing never completed");
}

#[test]
fn a_filtered_listing_examines_only_matching_rows_and_the_cursor_returns_each_match_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build(dir.path());
    let reader = AuditReader::open(&path).expect("reader");
    let rare = rare_seqs(&reader);
    assert_eq!(rare.len() as u64, ENTRIES / RARE_EVERY);
    let by_capability = EntryFilter {
        capability: Some("rare".into()),
        outcome: None,
    };
    // Through the index: seven matches cost seven rows, not ~700.
    let page = reader.page(1, 7, 10_000, &by_capability).expect("page");
    assert_eq!(page.entries.len(), 7);
    assert_eq!(page.examined, 7, "only matching rows are examined");
    assert_eq!(page.next_after, rare[6]);
    assert!(!page.complete);
    // Paging returns every match exactly once, in order.
    assert_eq!(walk(&reader, &by_capability, 7, 10_000), rare);
    // The same by outcome class and by full form.
    for outcome in ["trap", "ok"] {
        let f = EntryFilter {
            capability: None,
            outcome: Some(outcome.into()),
        };
        let listed = walk(&reader, &f, 50, 10_000);
        let want = if outcome == "trap" {
            rare.len()
        } else {
            (ENTRIES as usize) - rare.len()
        };
        assert_eq!(listed.len(), want, "{outcome}");
        let first = reader.page(1, 5, 10_000, &f).expect("page");
        assert_eq!(first.examined, 5, "{outcome}: only matching rows");
    }
    // A filter the index cannot answer alone (common entries never trap)
    // stops each page at the scan bound and still completes.
    let none = EntryFilter {
        capability: Some("common".into()),
        outcome: Some("trap".into()),
    };
    let page = reader.page(1, 10, 50, &none).expect("page");
    assert_eq!((page.entries.len(), page.examined), (0, 50));
    assert!(!page.complete);
    assert!(walk(&reader, &none, 10, 500).is_empty());
    // And a mixed filter that matches lists each match once.
    let rare_traps = EntryFilter {
        capability: Some("rare".into()),
        outcome: Some("trap".into()),
    };
    assert_eq!(walk(&reader, &rare_traps, 3, 4), rare);
    // The unfiltered listing pages by sequence number.
    let all = walk(&reader, &EntryFilter::default(), 1000, 1000);
    assert_eq!(all, (1..=ENTRIES).collect::<Vec<_>>());
}

#[test]
fn a_version_1_database_is_migrated_in_place_and_still_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build(dir.path());
    {
        // Back to the version-1 shape: no listing columns, no indexes.
        let c = Connection::open(&path).expect("open");
        c.execute_batch(
            "DROP INDEX audit_entries_by_capability;
             DROP INDEX audit_entries_by_outcome_class;
             ALTER TABLE audit_entries DROP COLUMN capability;
             ALTER TABLE audit_entries DROP COLUMN outcome;
             ALTER TABLE audit_entries DROP COLUMN outcome_class;
             PRAGMA user_version = 1;",
        )
        .expect("downgrade");
    }
    let rare_traps = EntryFilter {
        capability: Some("rare".into()),
        outcome: Some("trap".into()),
    };
    let matches = ENTRIES / RARE_EVERY;
    {
        // A reader leaves a version-1 file alone and lists by decoding,
        // still within the scan bound.
        let reader = AuditReader::open(&path).expect("reader");
        let page = reader.page(1, 1000, 10_000, &rare_traps).expect("page");
        assert_eq!(page.entries.len() as u64, matches);
        assert_eq!(page.examined as u64, ENTRIES, "no index yet");
        assert_eq!(walk(&reader, &rare_traps, 5, 300).len() as u64, matches);
    }
    let c = Connection::open(&path).expect("open");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 1, "readers never alter the schema");
    drop(c);
    for _ in 0..2 {
        // The writer migrates once; the second open finds version 2.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let log = AuditLog::open(
                &path,
                SigningKey::from_bytes(&[7; 32]),
                CheckpointPolicy::default(),
            )
            .expect("writer migrates");
            log.close().await.expect("close");
        });
        let reader = AuditReader::open(&path).expect("reader");
        let page = reader.page(1, 1000, 10_000, &rare_traps).expect("page");
        assert_eq!(page.entries.len() as u64, matches);
        assert_eq!(page.examined as u64, matches, "through the index");
        assert!(page.complete);
    }
    let c = Connection::open(&path).expect("open");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    // Every migration ran: 2 (listing columns), 3 (the Merkle tree,
    // built once from the version-1 entries), 4 (the workflow journal's
    // tables) and 5 (only every fourth level of tree nodes kept).
    assert_eq!(version, 5);
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let report = verify_db(&path, Some(&key)).expect("verify");
    assert_eq!(report.problem, None);
    assert_eq!(report.entries_checked, ENTRIES);
    let tree = AuditReader::open(&path)
        .expect("reader")
        .verify_tree(Some(&key), &[])
        .expect("verify tree");
    assert_eq!(tree.problem, None);
    assert_eq!(tree.leaves, ENTRIES);
    assert!(tree.notes_checked >= 1, "the close signed a note");
}

#[test]
fn a_row_whose_listing_columns_were_rewritten_is_refused_not_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build(dir.path());
    {
        // Someone with write access relabels a common entry as `rare`.
        let c = Connection::open(&path).expect("open");
        c.execute(
            "UPDATE audit_entries SET capability = 'rare' WHERE seq = 1",
            [],
        )
        .expect("tamper");
    }
    let reader = AuditReader::open(&path).expect("reader");
    let f = EntryFilter {
        capability: Some("rare".into()),
        outcome: None,
    };
    let e = reader.page(1, 10, 10_000, &f).expect_err("refused");
    assert!(e.to_string().contains("row 1"), "{e}");
}
