//! Proofs read from `warden.db`: the latest signed checkpoint note,
//! inclusion proofs and consistency proofs, each built in one read snapshot
//! from the stored tree ([`super::audit_tree`]).
//!
//! This module must never write, and never hand out a proof whose
//! checkpoint was not read in the same snapshot as its hashes.

use super::audit_read::AuditReader;
use super::audit_tree::{StoredNodes, has_tree, notes};
use super::{StoreError, sqlite_err};
use crate::audit::merkle::{ProofError, prove_consistency, prove_inclusion, root_at};
pub use crate::audit::proof_file::{ConsistencyProof, InclusionProof};
use crate::digest::Hash256;
use rusqlite::OptionalExtension;

/// A stored checkpoint note: size, root and the note's text.
pub type StoredNote = (u64, Hash256, String);

impl AuditReader {
    fn snapshot<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection, &std::path::Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (conn, path) = self.parts();
        if !has_tree(conn) {
            return Err(no_tree(path));
        }
        let tx = conn.unchecked_transaction().map_err(sqlite_err(path))?;
        let out = f(conn, path)?;
        tx.finish().map_err(sqlite_err(path))?;
        Ok(out)
    }

    /// Every stored checkpoint note, oldest first.
    pub fn notes(&self) -> Result<Vec<StoredNote>, StoreError> {
        self.snapshot(notes)
    }

    /// The newest stored checkpoint note, if any.
    pub fn latest_note(&self) -> Result<Option<StoredNote>, StoreError> {
        self.snapshot(latest)
    }

    /// Inclusion proof of leaf `index` (entry `index + 1`) against the
    /// checkpoint of `size` (default: the newest checkpoint).
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, StoreError> {
        self.snapshot(|conn, path| {
            let (size, _, checkpoint) = note_for(conn, path, size)?;
            let proof_err = |source| StoreError::Proof {
                path: path.to_owned(),
                source,
            };
            let hashes = prove_inclusion(&StoredNodes { conn }, index, size).map_err(proof_err)?;
            let seq = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
            let blob: Vec<u8> = conn
                .query_row(
                    "SELECT hash FROM audit_entries WHERE seq = ?1",
                    [seq],
                    |r| r.get(0),
                )
                .map_err(sqlite_err(path))?;
            let entry_hash =
                <[u8; 32]>::try_from(&blob[..])
                    .map(Hash256)
                    .map_err(|_| StoreError::Corrupt {
                        path: path.to_owned(),
                        detail: format!("entry {seq}: hash is not 32 bytes"),
                    })?;
            Ok(InclusionProof {
                index,
                entry_hash,
                hashes,
                checkpoint,
            })
        })
    }

    /// Consistency proof from the tree of `old` entries to the checkpoint of
    /// `new` (default: the newest checkpoint).
    pub fn consistency_proof(
        &self,
        old: u64,
        new: Option<u64>,
    ) -> Result<ConsistencyProof, StoreError> {
        self.snapshot(|conn, path| {
            let (new, _, checkpoint) = note_for(conn, path, new)?;
            let proof_err = |source| StoreError::Proof {
                path: path.to_owned(),
                source,
            };
            let nodes = StoredNodes { conn };
            let hashes = prove_consistency(&nodes, old, new).map_err(proof_err)?;
            let old_root = root_at(&nodes, old).map_err(proof_err)?;
            Ok(ConsistencyProof {
                old_size: old,
                old_root,
                hashes,
                checkpoint,
            })
        })
    }
}

/// A database from before the tree (schema < 3) has no proofs.
fn no_tree(path: &std::path::Path) -> StoreError {
    StoreError::Proof {
        path: path.to_owned(),
        source: ProofError::Node {
            level: 0,
            index: 0,
            reason: "this database has no Merkle tree yet (schema before version 3); \
                     start `warden serve` of this version once to build it"
                .into(),
        },
    }
}

pub(super) fn latest(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
) -> Result<Option<StoredNote>, StoreError> {
    let row: Option<(i64, Vec<u8>, String)> = conn
        .query_row(
            "SELECT size, root, note FROM audit_notes ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(sqlite_err(path))?;
    row.map(|(size, root, note)| {
        let root = <[u8; 32]>::try_from(&root[..]).map_err(|_| StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("checkpoint note at size {size}: root is not 32 bytes"),
        })?;
        Ok((u64::try_from(size).unwrap_or(0), Hash256(root), note))
    })
    .transpose()
}

/// The note of `size`, or the newest one.
fn note_for(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    size: Option<u64>,
) -> Result<StoredNote, StoreError> {
    let newest = latest(conn, path)?.ok_or_else(|| StoreError::Proof {
        path: path.to_owned(),
        source: ProofError::SizeOutOfRange {
            asked: size.unwrap_or(0),
            available: 0,
        },
    })?;
    let Some(size) = size else {
        return Ok(newest);
    };
    if size > newest.0 {
        return Err(StoreError::Proof {
            path: path.to_owned(),
            source: ProofError::SizeOutOfRange {
                asked: size,
                available: newest.0,
            },
        });
    }
    notes(conn, path)?
        .into_iter()
        .rev()
        .find(|n| n.0 == size)
        .ok_or_else(|| StoreError::Proof {
            path: path.to_owned(),
            source: ProofError::Mismatch(format!(
                "no signed checkpoint at size {size}; proofs are against a checkpointed size \
                 (list them with `warden audit checkpoints`, or omit --size for the newest, {})",
                newest.0
            )),
        })
}

/// What [`AuditReader::verify_tree`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TreeReport {
    /// Entries whose leaves were recomputed.
    pub leaves: u64,
    /// Root of the recomputed tree over all of them.
    pub root: Hash256,
    /// Checkpoint notes checked.
    pub notes_checked: u64,
    /// The first problem, if any.
    pub problem: Option<String>,
}

impl AuditReader {
    /// Recomputes the Merkle tree from every entry's stored hash, in one
    /// snapshot, and checks every checkpoint note against it: its signature
    /// (with `key`, when given), its size and its root; and that the stored
    /// tree's right edge matches the recomputed one. `extra` notes (kept
    /// outside the database, e.g. a witnessed note) are checked the same way.
    /// [`AuditReader::verify_all`] does this and the chain in one pass.
    pub fn verify_tree(
        &self,
        key: Option<&ed25519_dalek::VerifyingKey>,
        extra: &[StoredNote],
    ) -> Result<TreeReport, StoreError> {
        let (conn, path) = self.parts();
        if !has_tree(conn) {
            return Err(no_tree(path));
        }
        self.verify_tree_only(key, extra)
    }
}
