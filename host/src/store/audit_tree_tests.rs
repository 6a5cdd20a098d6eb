//! Tests of the Merkle tree kept in `warden.db`: maintained on append,
//! built once for a database from before it, checked at restart, and the
//! proofs read from it.

use super::conformance::entry;
use super::{AuditLog, AuditReader, CheckpointPolicy, Payloads, StoreError};
use crate::audit::merkle::{Frontier, leaf_hash};
use crate::audit::note::{default_origin, verify_checkpoint};
use crate::digest::Hash256;
use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn every(n: u64) -> CheckpointPolicy {
    CheckpointPolicy {
        every_entries: n,
        every: Duration::from_secs(3600),
    }
}

/// Appends `n` entries (numbered from `from`), `batch` at a time concurrently.
fn append(log: &AuditLog, from: u64, n: u64, batch: u64) {
    let mut i = from;
    while i < from + n {
        let acks: Vec<_> = (i..(i + batch).min(from + n))
            .map(|k| log.submit(entry(k, None), Payloads::default()))
            .collect();
        for a in acks {
            a.wait().expect("append");
        }
        i += batch;
    }
}

/// The root recomputed from the entries' stored hashes, straight.
fn recomputed_root(db: &Path, size: u64) -> Hash256 {
    let c = Connection::open(db).expect("open");
    let mut f = Frontier::new();
    let mut stmt = c
        .prepare("SELECT hash FROM audit_entries WHERE seq <= ?1 ORDER BY seq")
        .expect("select");
    let hashes = stmt
        .query_map([size as i64], |r| r.get::<_, Vec<u8>>(0))
        .expect("query");
    for h in hashes {
        let h: [u8; 32] = h.expect("row").try_into().expect("32 bytes");
        f.append(leaf_hash(&Hash256(h)), |_| {});
    }
    f.root()
}

#[test]
fn the_tree_is_maintained_on_append_and_every_note_matches_a_full_recomputation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let log = AuditLog::open(&db, key(), every(17)).expect("open");
    append(&log, 1, 200, 7);
    let cp = log.submit_checkpoint().wait().expect("checkpoint");
    assert_eq!(cp.size, 200);
    let reader = AuditReader::open(&db).expect("reader");
    let notes = reader.notes().expect("notes");
    assert!(
        notes.len() >= 9,
        "a note at every checkpoint: {}",
        notes.len()
    );
    assert_eq!(
        notes.len(),
        reader.checkpoints().expect("checkpoints").len(),
        "one note per warden-checkpoint-v1"
    );
    let vk = key().verifying_key();
    for (size, root, note) in &notes {
        assert_eq!(*root, recomputed_root(&db, *size), "size {size}");
        let (_, head) = verify_checkpoint(note.as_bytes(), &vk, Some(&default_origin(&vk)))
            .expect("the note verifies");
        assert_eq!((head.size, head.root), (*size, *root));
    }
    let report = reader.verify_tree(Some(&vk), &[]).expect("verify");
    assert_eq!(report.problem, None);
    assert_eq!(report.leaves, 200);
}

#[test]
fn inclusion_and_consistency_proofs_from_the_database_verify_for_every_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let log = AuditLog::open(&db, key(), every(10)).expect("open");
    append(&log, 1, 45, 4);
    log.submit_checkpoint().wait().expect("checkpoint");
    let vk = key().verifying_key();
    let sizes: Vec<u64> = log.inner_notes_sizes();
    for &size in &sizes {
        for index in 0..size {
            let p = log.inclusion_proof(index, Some(size)).expect("proof");
            let head = p.verify(&vk, None).expect("verifies");
            assert_eq!(head.size, size);
        }
        for old in 0..=size {
            let p = log.consistency_proof(old, Some(size)).expect("proof");
            p.verify(&vk, None).expect("verifies");
            assert_eq!(p.old_root, recomputed_root(&db, old), "{old}->{size}");
        }
    }
    // Against the newest by default; beyond it is refused with the sizes.
    assert_eq!(log.inclusion_proof(44, None).expect("proof").index, 44);
    let e = log.inclusion_proof(45, None).expect_err("out of range");
    assert!(
        e.to_string()
            .contains("leaf index 45 is not in a tree of size 45"),
        "{e}"
    );
    let e = log
        .consistency_proof(3, Some(46))
        .expect_err("no such checkpoint");
    assert!(
        e.to_string().contains("tree size 46 is larger than 45"),
        "{e}"
    );
    let e = log
        .inclusion_proof(0, Some(7))
        .expect_err("not a checkpointed size");
    assert!(
        e.to_string().contains("no signed checkpoint at size 7"),
        "{e}"
    );
}

impl AuditLog {
    fn inner_notes_sizes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = AuditReader::open(self.path())
            .and_then(|r| r.notes())
            .expect("notes")
            .into_iter()
            .map(|n| n.0)
            .collect();
        v.dedup();
        v
    }
}

/// Makes `db` look as the previous version left it: schema 2, no tree.
fn downgrade_to_schema_2(db: &Path) {
    let c = Connection::open(db).expect("open");
    c.execute_batch(
        "DROP TABLE audit_tree_nodes; DROP TABLE audit_notes; PRAGMA user_version = 2;",
    )
    .expect("downgrade");
}

#[test]
fn a_database_from_before_the_tree_gets_it_built_once_on_open_for_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let log = AuditLog::open(&db, key(), every(0)).expect("open");
    append(&log, 1, 300, 16);
    drop(log);
    let before = recomputed_root(&db, 300);
    downgrade_to_schema_2(&db);
    // A reader of the old file has no proofs, and says why.
    let e = AuditReader::open(&db)
        .expect("reader")
        .latest_note()
        .expect_err("no tree");
    assert!(e.to_string().contains("no Merkle tree yet"), "{e}");
    let log = AuditLog::open(&db, key(), every(0)).expect("migrates");
    let v: i64 = Connection::open(&db)
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(
        v,
        super::AUDIT_SCHEMA.version(),
        "migrated to the current version"
    );
    append(&log, 301, 5, 5);
    let cp = log.submit_checkpoint().wait().expect("checkpoint");
    assert_eq!(cp.size, 305);
    let (size, root, _) = log.latest_note().expect("read").expect("a note");
    assert_eq!((size, root), (305, recomputed_root(&db, 305)));
    let p = log.consistency_proof(300, None).expect("proof");
    assert_eq!(p.old_root, before);
    p.verify(&key().verifying_key(), None)
        .expect("the new checkpoint extends the tree built for the old entries");
    let report = AuditReader::open(&db)
        .expect("reader")
        .verify_tree(Some(&key().verifying_key()), &[])
        .expect("verify");
    assert_eq!(report.problem, None);
}

#[test]
fn a_restart_never_signs_a_checkpoint_inconsistent_with_the_last_one_it_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let log = AuditLog::open(&db, key(), every(0)).expect("open");
    append(&log, 1, 20, 3);
    drop(log); // signs the final note at 20
    let notes_before = AuditReader::open(&db).expect("r").notes().expect("notes");
    // Someone with write access to the database changes a stored node on
    // the tree's right edge (20 = 16 + 4: node (4, 0) is kept; (2, 4) is
    // recomputed from the entries).
    Connection::open(&db)
        .expect("open")
        .execute(
            "UPDATE audit_tree_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 0",
            [],
        )
        .expect("tamper");
    let e = AuditLog::open(&db, key(), every(0)).expect_err("refused");
    assert!(matches!(e, StoreError::TreeInconsistent { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("signed checkpoint of size 20"), "{msg}");
    assert!(msg.contains("tree of 20 entries"), "{msg}");
    assert_eq!(
        AuditReader::open(&db).expect("r").notes().expect("notes"),
        notes_before,
        "nothing was signed"
    );
    // A missing node is refused too, naming it.
    let c = Connection::open(&db).expect("open");
    c.execute("DELETE FROM audit_tree_nodes WHERE level = 4", [])
        .expect("delete");
    drop(c);
    let e = AuditLog::open(&db, key(), every(0)).expect_err("refused");
    assert!(e.to_string().contains("level 4"), "{e}");
}

#[test]
fn only_every_fourth_level_of_nodes_is_stored_and_a_version_3_file_drops_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let log = AuditLog::open(&db, key(), every(0)).expect("open");
    append(&log, 1, 300, 16);
    drop(log);
    let levels = |db: &Path| -> Vec<(u32, i64)> {
        let c = Connection::open(db).expect("open");
        let mut stmt = c
            .prepare("SELECT level, count(*) FROM audit_tree_nodes GROUP BY level ORDER BY level")
            .expect("select");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    // 300 leaves: 18 complete subtrees of 16, one of 256.
    assert_eq!(levels(&db), vec![(4, 18), (8, 1)]);
    // A file as version 3 wrote it: every level stored.
    let c = Connection::open(&db).expect("open");
    c.execute_batch(
        "INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (1, 0, zeroblob(32)), (3, 2, zeroblob(32));
         PRAGMA user_version = 3;",
    )
    .expect("as version 3");
    drop(c);
    let log = AuditLog::open(&db, key(), every(0)).expect("migrates");
    assert_eq!(levels(&db), vec![(4, 18), (8, 1)]);
    // Every proof still verifies from what is kept.
    let vk = key().verifying_key();
    for index in [0, 1, 15, 16, 17, 127, 255, 256, 299] {
        log.inclusion_proof(index, None)
            .expect("proof")
            .verify(&vk, None)
            .expect("verifies");
    }
    for old in [1, 3, 16, 17, 100, 256, 299] {
        let p = log.consistency_proof(old, None).expect("proof");
        p.verify(&vk, None).expect("verifies");
        assert_eq!(p.old_root, recomputed_root(&db, old));
    }
}

#[test]
fn audit_verify_of_the_tree_catches_a_rewritten_entry_hash_under_a_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let log = AuditLog::open(&db, key(), every(5)).expect("open");
    append(&log, 1, 10, 1);
    drop(log);
    Connection::open(&db)
        .expect("open")
        .execute(
            "UPDATE audit_entries SET hash = zeroblob(32) WHERE seq = 3",
            [],
        )
        .expect("tamper");
    let report = AuditReader::open(&db)
        .expect("r")
        .verify_tree(Some(&key().verifying_key()), &[])
        .expect("verify");
    let p = report.problem.expect("a problem");
    assert!(p.contains("checkpoint note at size 5 has root"), "{p}");
}
