//! `warden audit verify` over a database in ONE pass: every row of
//! `audit_entries` is read once, in one snapshot, and feeds both the chain
//! verifier ([`ChainVerifier`]: hashes, links, sequence, checkpoints) and
//! the Merkle-tree recomputation ([`TreeCheck`]: every leaf, every signed
//! checkpoint note, the stored right edge). Verifying the chain and the
//! tree in two passes read the table twice (docs/audit.md "The tree in
//! `audit verify`"); what is checked is the same.
//!
//! This module must never write, never check fewer things than the two
//! separate verifications did, and never report a tree problem as a chain
//! problem or the reverse (each has its own report).

use super::audit_proofs::{StoredNote, TreeReport};
use super::audit_read::{AuditReader, hash_from_blob, new_verifier};
use super::audit_tree::{StoredNodes, has_tree, notes};
use super::{StoreError, sqlite_err};
use crate::audit::merkle::{Frontier, leaf_hash};
use crate::audit::note::verify_checkpoint;
use crate::audit::{ExpectedCheckpoint, VerifyReport};
use crate::digest::Hash256;
use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;
use std::path::Path;

/// Recomputes the tree leaf by leaf and checks every checkpoint note at
/// its size: signature (with the key, when given), the note's row against
/// its signed text, and its root against the recomputed one.
pub(crate) struct TreeCheck<'k> {
    key: Option<&'k VerifyingKey>,
    /// Notes to check, sorted by size; `next` is the first unchecked.
    notes: Vec<StoredNote>,
    next: usize,
    frontier: Frontier,
    checked: u64,
    problem: Option<String>,
    /// A row's hash was not 32 bytes: no more leaves are appended.
    stopped: bool,
}

impl<'k> TreeCheck<'k> {
    /// A check of `notes` (stored ones and any kept outside the database).
    pub(crate) fn new(key: Option<&'k VerifyingKey>, mut notes: Vec<StoredNote>) -> TreeCheck<'k> {
        notes.sort_by_key(|n| n.0);
        let mut t = TreeCheck {
            key,
            notes,
            next: 0,
            frontier: Frontier::new(),
            checked: 0,
            problem: None,
            stopped: false,
        };
        t.check_notes_at_size();
        t
    }

    fn check_note(&mut self, at: usize, root: &Hash256) {
        if self.problem.is_some() {
            return;
        }
        let n = &self.notes[at];
        self.checked += 1;
        if let Some(k) = self.key {
            match verify_checkpoint(n.2.as_bytes(), k, None) {
                Err(e) => {
                    self.problem = Some(format!("checkpoint note at size {}: {e}", n.0));
                    return;
                }
                Ok((_, h)) if h.size != n.0 || h.root != n.1 => {
                    self.problem = Some(format!(
                        "checkpoint note at size {}: its row says size {} root {}, the signed text size {} root {}",
                        n.0, n.0, n.1, h.size, h.root
                    ));
                    return;
                }
                Ok(_) => {}
            }
        }
        if n.1 != *root {
            self.problem = Some(format!(
                "checkpoint note at size {} has root {}, the entries give {} (history rewritten)",
                n.0, n.1, root
            ));
        }
    }

    /// Checks every note whose size is the current size.
    fn check_notes_at_size(&mut self) {
        let size = self.frontier.size();
        if self.notes.get(self.next).is_none_or(|n| n.0 != size) {
            return;
        }
        let root = self.frontier.root();
        while self.notes.get(self.next).is_some_and(|n| n.0 == size) {
            self.check_note(self.next, &root);
            self.next += 1;
        }
    }

    /// The next row's stored `hash` column.
    pub(crate) fn push(&mut self, hash: &[u8]) {
        if self.stopped {
            return;
        }
        let Ok(h) = <[u8; 32]>::try_from(hash) else {
            let at = self.frontier.size().saturating_add(1);
            self.problem
                .get_or_insert_with(|| format!("entry {at}: hash is not 32 bytes"));
            self.stopped = true;
            return;
        };
        self.frontier.append(leaf_hash(&Hash256(h)), |_| {});
        self.check_notes_at_size();
    }

    /// Checks that no note covers more than exists and that the stored
    /// tree's right edge matches, and returns the report.
    pub(crate) fn finish(mut self, conn: &Connection) -> TreeReport {
        let f = &self.frontier;
        if let Some(n) = self.notes.get(self.next)
            && self.problem.is_none()
        {
            self.problem = Some(format!(
                "checkpoint note at size {} covers more entries than the {} that exist (truncated)",
                n.0,
                f.size()
            ));
        }
        if self.problem.is_none() {
            match Frontier::load(&StoredNodes { conn }, f.size()) {
                Ok(s) if s.root() == f.root() => {}
                Ok(s) => {
                    self.problem = Some(format!(
                        "the stored tree's root at size {} is {}, the entries give {}",
                        f.size(),
                        s.root(),
                        f.root()
                    ))
                }
                Err(e) => self.problem = Some(format!("the stored tree: {e}")),
            }
        }
        TreeReport {
            leaves: f.size(),
            root: f.root(),
            notes_checked: self.checked,
            problem: self.problem,
        }
    }
}

/// What one pass found: the chain's report, and the tree's (`None` for a
/// database from before the tree, schema < 3, which has nothing to check).
#[derive(Debug, Clone)]
pub struct FullReport {
    /// The chain: hashes, links, sequence, `warden-checkpoint-v1` checkpoints.
    pub chain: VerifyReport,
    /// The Merkle tree and the signed checkpoint notes.
    pub tree: Option<TreeReport>,
}

impl AuditReader {
    /// Verifies the chain and, when `with_tree`, recomputes the Merkle tree
    /// and checks every checkpoint note (plus `extra` notes kept outside
    /// the database, e.g. a witnessed one), reading every row once in one
    /// consistent snapshot.
    pub fn verify_all(
        &self,
        pubkey: Option<&VerifyingKey>,
        expected: Option<&ExpectedCheckpoint>,
        extra: &[StoredNote],
    ) -> Result<FullReport, StoreError> {
        self.verify_pass(pubkey, expected, Some(extra))
    }

    /// One pass; the tree is recomputed when `tree_extra` is `Some` and
    /// the database has a tree.
    pub(crate) fn verify_pass(
        &self,
        pubkey: Option<&VerifyingKey>,
        expected: Option<&ExpectedCheckpoint>,
        tree_extra: Option<&[StoredNote]>,
    ) -> Result<FullReport, StoreError> {
        let (conn, path) = self.parts();
        let tx = conn.unchecked_transaction().map_err(sqlite_err(path))?;
        let mut tree = match tree_extra {
            Some(extra) if has_tree(conn) => {
                let mut all = notes(conn, path)?;
                all.extend(extra.iter().cloned());
                Some(TreeCheck::new(pubkey, all))
            }
            _ => None,
        };
        let mut verifier = match self.checkpoints() {
            Ok(cps) => new_verifier(&cps, pubkey, expected),
            Err(StoreError::Corrupt { detail, .. }) => {
                // A checkpoint row of the wrong shape: report it, check the rest.
                let mut v = new_verifier(&[], pubkey, expected);
                v.push_malformed(format!("checkpoint table: {detail}"));
                let tree = tree.map(|t| scan_tree(t, conn, path)).transpose()?;
                return Ok(FullReport {
                    chain: v.finish(),
                    tree,
                });
            }
            Err(e) => return Err(e),
        };
        {
            let mut stmt = conn
                .prepare("SELECT seq, prev_hash, hash, entry FROM audit_entries ORDER BY seq")
                .map_err(sqlite_err(path))?;
            let mut rows = stmt.query([]).map_err(sqlite_err(path))?;
            while let Some(row) = rows.next().map_err(sqlite_err(path))? {
                let row_seq: i64 = row.get(0).map_err(sqlite_err(path))?;
                let blob = |i| {
                    row.get_ref(i)
                        .and_then(|v| Ok(v.as_blob()?))
                        .map_err(sqlite_err(path))
                };
                let (prev, hash, encoded) = (blob(1)?, blob(2)?, blob(3)?);
                if let Some(t) = tree.as_mut() {
                    t.push(hash);
                }
                let seq = u64::try_from(row_seq).unwrap_or(0);
                match (
                    hash_from_blob(path, "prev_hash", seq, prev),
                    hash_from_blob(path, "hash", seq, hash),
                ) {
                    (Ok(prev), Ok(hash)) => verifier.push_encoded(&prev, &hash, encoded),
                    (Err(detail), _) | (_, Err(detail)) => verifier.push_malformed(detail),
                }
            }
        }
        let tree = tree.map(|t| t.finish(conn));
        tx.finish().map_err(sqlite_err(path))?;
        Ok(FullReport {
            chain: verifier.finish(),
            tree,
        })
    }
}

/// The tree alone (when the chain's checkpoint table cannot be read).
fn scan_tree(
    mut t: TreeCheck<'_>,
    conn: &Connection,
    path: &Path,
) -> Result<TreeReport, StoreError> {
    {
        let mut stmt = conn
            .prepare("SELECT hash FROM audit_entries ORDER BY seq")
            .map_err(sqlite_err(path))?;
        let mut rows = stmt.query([]).map_err(sqlite_err(path))?;
        while let Some(row) = rows.next().map_err(sqlite_err(path))? {
            let blob = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(sqlite_err(path))?;
            t.push(blob);
        }
    }
    Ok(t.finish(conn))
}

impl AuditReader {
    /// The tree half alone (no chain checks): recomputes the tree from
    /// every entry's stored hash and checks every checkpoint note and
    /// `extra` note (see [`AuditReader::verify_all`], which does both in one
    /// pass).
    pub(crate) fn verify_tree_only(
        &self,
        key: Option<&VerifyingKey>,
        extra: &[StoredNote],
    ) -> Result<TreeReport, StoreError> {
        let (conn, path) = self.parts();
        let tx = conn.unchecked_transaction().map_err(sqlite_err(path))?;
        let mut all = notes(conn, path)?;
        all.extend(extra.iter().cloned());
        let report = scan_tree(TreeCheck::new(key, all), conn, path)?;
        tx.finish().map_err(sqlite_err(path))?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance::entry;
    use super::super::{AuditLog, CheckpointPolicy, Payloads};
    use super::*;
    use ed25519_dalek::SigningKey;
    use std::time::Duration;

    /// A database of 40 entries with a checkpoint (and note) every 8.
    fn database(dir: &Path) -> std::path::PathBuf {
        std::fs::create_dir_all(dir).expect("mkdir");
        let db = dir.join("warden.db");
        let log = AuditLog::open(
            &db,
            SigningKey::from_bytes(&[7; 32]),
            CheckpointPolicy {
                every_entries: 8,
                every: Duration::from_secs(3600),
            },
        )
        .expect("open");
        for k in 1..=40 {
            log.submit(entry(k, None), Payloads::default())
                .wait()
                .expect("append");
        }
        drop(log);
        db
    }

    /// One pass reports exactly what the chain and the tree verified
    /// separately report.
    fn same_as_two_passes(db: &Path) -> FullReport {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let reader = AuditReader::open(db).expect("reader");
        let one = reader.verify_all(Some(&key), None, &[]).expect("one pass");
        assert_eq!(one.chain, reader.verify(Some(&key)).expect("chain"));
        assert_eq!(
            one.tree,
            Some(reader.verify_tree(Some(&key), &[]).expect("tree"))
        );
        one
    }

    #[test]
    fn one_pass_verifies_what_the_chain_and_tree_passes_verify_and_fails_where_they_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(dir.path());
        let good = same_as_two_passes(&db);
        assert_eq!(good.chain.problem, None);
        assert_eq!(good.chain.entries_checked, 40);
        let tree = good.tree.expect("a tree");
        assert_eq!((tree.leaves, tree.problem), (40, None));
        assert!(tree.notes_checked >= 5, "{}", tree.notes_checked);
        // A rewritten entry hash: the chain and the tree both see it.
        sql_on(
            &db,
            "UPDATE audit_entries SET hash = zeroblob(32) WHERE seq = 3",
        );
        let r = same_as_two_passes(&db);
        assert!(r.chain.problem.is_some());
        let p = r.tree.and_then(|t| t.problem).expect("a tree problem");
        assert!(p.contains("checkpoint note at size 8 has root"), "{p}");
        // A hash of the wrong length stops the tree at that leaf.
        sql_on(
            &db,
            "UPDATE audit_entries SET hash = zeroblob(31) WHERE seq = 3",
        );
        let r = same_as_two_passes(&db);
        let p = r.tree.and_then(|t| t.problem).expect("a tree problem");
        assert!(p.contains("entry 3: hash is not 32 bytes"), "{p}");
        // A cut tail: the newest note covers more than exists.
        let db = database(&dir.path().join("cut"));
        sql_on(&db, "DELETE FROM audit_entries WHERE seq > 30");
        let r = same_as_two_passes(&db);
        let p = r.tree.and_then(|t| t.problem).expect("a tree problem");
        assert!(
            p.contains("covers more entries than the 30 that exist"),
            "{p}"
        );
        // A stored node off the recomputed tree.
        let db = database(&dir.path().join("node"));
        sql_on(
            &db,
            "UPDATE audit_tree_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 1",
        );
        let r = same_as_two_passes(&db);
        assert_eq!(r.chain.problem, None);
        let p = r.tree.and_then(|t| t.problem).expect("a tree problem");
        assert!(p.contains("the stored tree's root at size 40"), "{p}");
    }

    fn sql_on(db: &Path, q: &str) {
        Connection::open(db)
            .expect("open")
            .execute(q, [])
            .expect("tamper");
    }
}
