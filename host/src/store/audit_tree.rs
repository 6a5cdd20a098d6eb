//! The Merkle tree beside the audit chain in `warden.db` (docs/audit.md
//! "Merkle tree"): the v3 migration that adds its tables and builds the tree
//! of an existing chain once, the stored-node reader proofs are built from,
//! and the rows the writer adds in each batch's transaction.
//!
//! Leaves are not stored twice: leaf `i` is `SHA-256(0x00 ‖ hash)` of the
//! `hash` column of entry `i + 1`; `audit_tree_nodes` holds every complete
//! subtree whose level is a positive multiple of [`KEPT_LEVEL_STEP`] (4, 8,
//! 12, …); a node between two kept levels is recomputed from at most
//! 2^(step−1) nodes of the kept level below it (or entry hashes), read in
//! one range query. So an append adds on average 1/15 of a row instead of
//! one, and every tile level of C2SP `tlog-tiles` (multiples of 8) is
//! stored. `audit_notes` holds the signed C2SP checkpoint notes.
//!
//! This module must never change an entry row, and never store a node that
//! was not derived from the committed entries of the same transaction.

use super::{StoreError, sqlite_err, to_sql_int};
use crate::audit::merkle::{Frontier, NewNode, NodeSource, ProofError, leaf_hash, node_hash};
use crate::digest::Hash256;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// Version 2 -> 3: the tree's tables, and the tree of every entry already
/// in the chain, built once (streaming, in the migration's transaction).
pub(crate) fn add_merkle_tree(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(
        "
CREATE TABLE IF NOT EXISTS audit_tree_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_notes (
    id   INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL
);
DELETE FROM audit_tree_nodes;
",
    )
    .map_err(sqlite_err(path))?;
    let mut frontier = Frontier::new();
    let mut nodes: Vec<NewNode> = Vec::new();
    let mut stmt = conn
        .prepare("SELECT seq, hash FROM audit_entries ORDER BY seq")
        .map_err(sqlite_err(path))?;
    let mut rows = stmt.query([]).map_err(sqlite_err(path))?;
    while let Some(row) = rows.next().map_err(sqlite_err(path))? {
        let seq: i64 = row.get(0).map_err(sqlite_err(path))?;
        let blob: Vec<u8> = row.get(1).map_err(sqlite_err(path))?;
        let expected = i64::try_from(frontier.size())
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let hash = <[u8; 32]>::try_from(&blob[..])
            .ok()
            .filter(|_| seq == expected)
            .ok_or_else(|| StoreError::Corrupt {
                path: path.to_owned(),
                detail: format!(
                    "cannot build the Merkle tree: entry row {seq} (expected {expected}) has a \
                     gap before it or a hash that is not 32 bytes; run `warden audit verify`"
                ),
            })?;
        frontier.append(leaf_hash(&Hash256(hash)), |n| nodes.push(n));
        insert_nodes(conn, path, &mut nodes)?;
    }
    Ok(())
}

/// `audit_tree_nodes` keeps the levels that are positive multiples of
/// this; the levels between are recomputed on read.
pub(crate) const KEPT_LEVEL_STEP: u32 = 4;

/// Whether nodes of `level` are kept in `audit_tree_nodes`.
pub(crate) fn kept(level: u32) -> bool {
    level > 0 && level.is_multiple_of(KEPT_LEVEL_STEP)
}

/// Version 3 -> 4: drop the nodes of levels that are no longer kept (they
/// are recomputed from the kept level below them). Changes no entry and
/// no kept node.
pub(crate) fn keep_every_fourth_level(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM audit_tree_nodes WHERE level % ?1 != 0",
        [KEPT_LEVEL_STEP],
    )
    .map_err(sqlite_err(path))?;
    Ok(())
}

/// Inserts (and drains) the kept ones of `nodes` (level 0 is the entry
/// row; see [`kept`]).
pub(crate) fn insert_nodes(
    conn: &Connection,
    path: &Path,
    nodes: &mut Vec<NewNode>,
) -> Result<(), StoreError> {
    if !nodes.iter().any(|n| kept(n.0)) {
        nodes.clear();
        return Ok(());
    }
    let mut ins = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO audit_tree_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
        )
        .map_err(sqlite_err(path))?;
    for (level, idx, hash) in nodes.drain(..) {
        if kept(level) {
            ins.execute(rusqlite::params![level, to_sql_int(idx), &hash.0[..]])
                .map_err(sqlite_err(path))?;
        }
    }
    Ok(())
}

/// Stored nodes read through one connection (inside whatever snapshot or
/// transaction the caller holds).
pub(crate) struct StoredNodes<'c> {
    pub conn: &'c Connection,
}

impl StoredNodes<'_> {
    /// The `count` consecutive hashes of a level that is read, not
    /// recomputed (0: leaf hashes of the entries; or a kept level),
    /// starting at `first`, in one range query.
    fn read_run(&self, level: u32, first: u64, count: u64) -> Result<Vec<Hash256>, ProofError> {
        let fail = |index: u64, reason: String| ProofError::Node {
            level,
            index,
            reason,
        };
        let lo = i64::try_from(first).map_err(|_| fail(first, "index too large".into()))?;
        let hi = first
            .checked_add(count - 1)
            .and_then(|h| i64::try_from(h).ok())
            .ok_or_else(|| fail(first, "index too large".into()))?;
        let read = |sql: &str, lo: i64, hi: i64| -> Result<Vec<(i64, Vec<u8>)>, rusqlite::Error> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt.query_map(rusqlite::params![lo, hi, level], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect()
        };
        let rows = if level == 0 {
            read(
                "SELECT seq - 1, hash FROM audit_entries WHERE seq BETWEEN ?1 + 1 AND ?2 + 1 \
                 AND ?3 = 0 ORDER BY seq",
                lo,
                hi,
            )
        } else {
            read(
                "SELECT idx, hash FROM audit_tree_nodes WHERE level = ?3 AND idx BETWEEN ?1 AND ?2 \
                 ORDER BY idx",
                lo,
                hi,
            )
        }
        .map_err(|e| fail(first, e.to_string()))?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, (idx, blob)) in (first..).zip(rows) {
            if u64::try_from(idx).ok() != Some(expected) {
                break;
            }
            let h = <[u8; 32]>::try_from(&blob[..])
                .map_err(|_| fail(expected, format!("{} bytes, not 32", blob.len())))?;
            out.push(if level == 0 {
                leaf_hash(&Hash256(h))
            } else {
                Hash256(h)
            });
        }
        if (out.len() as u64) < count {
            return Err(fail(
                first + out.len() as u64,
                "no such row (is the database from before the tree, or cut?)".into(),
            ));
        }
        Ok(out)
    }
}

impl NodeSource for StoredNodes<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash256, ProofError> {
        let below = level % KEPT_LEVEL_STEP;
        if below == 0 {
            let mut one = self.read_run(level, index, 1)?;
            return one.pop().ok_or(ProofError::Node {
                level,
                index,
                reason: "no such row".into(),
            });
        }
        // Between two kept levels: hash up the 2^below nodes of the kept
        // level (or the leaves) under it.
        let width = 1u64 << below;
        let first = index.checked_mul(width).ok_or(ProofError::Node {
            level,
            index,
            reason: "index too large".into(),
        })?;
        let mut run = self.read_run(level - below, first, width)?;
        while run.len() > 1 {
            run = run
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
        }
        run.pop().ok_or(ProofError::Node {
            level,
            index,
            reason: "no such row".into(),
        })
    }
}

/// Every stored checkpoint note, oldest first: `(size, root, note text)`.
pub(crate) fn notes(
    conn: &Connection,
    path: &Path,
) -> Result<Vec<(u64, Hash256, String)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT size, root, note FROM audit_notes ORDER BY id")
        .map_err(sqlite_err(path))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sqlite_err(path))?;
    let mut out = Vec::new();
    for row in rows {
        let (size, root, note) = row.map_err(sqlite_err(path))?;
        let root = <[u8; 32]>::try_from(&root[..]).map_err(|_| StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("checkpoint note at size {size}: root is not 32 bytes"),
        })?;
        out.push((u64::try_from(size).unwrap_or(0), Hash256(root), note));
    }
    Ok(out)
}

/// Whether the file has the tree's tables (version 3 and later).
pub(crate) fn has_tree(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_notes'",
        [],
        |_| Ok(()),
    )
    .optional()
    .ok()
    .flatten()
    .is_some()
}

/// Loads the tree's right edge at `head` and checks, before anything is
/// signed, that the stored tree extends the newest checkpoint note signed
/// by `key` for `origin` (a consistency proof from the stored nodes,
/// verified against that note's signed root). So a restart never signs a
/// checkpoint inconsistent with the last one it signed and kept.
pub(crate) fn check_tree(
    conn: &Connection,
    path: &Path,
    key: &ed25519_dalek::VerifyingKey,
    origin: &str,
    head: u64,
) -> Result<Frontier, StoreError> {
    use crate::audit::merkle::{prove_consistency, verify_consistency};
    let fail = |detail: String| StoreError::TreeInconsistent {
        path: path.to_owned(),
        detail,
    };
    let nodes = StoredNodes { conn };
    let frontier =
        Frontier::load(&nodes, head).map_err(|e| fail(format!("the tree at size {head}: {e}")))?;
    let signed = notes(conn, path)?
        .into_iter()
        .rev()
        .find_map(|(size, root, text)| {
            crate::audit::note::verify_checkpoint(text.as_bytes(), key, Some(origin))
                .ok()
                .map(|(_, h)| (size, root, h))
        });
    let Some((size, root, head_note)) = signed else {
        return Ok(frontier);
    };
    if head_note.size != size || head_note.root != root {
        return Err(fail(format!(
            "a checkpoint note's row says size {size} root {root}, its signed text says size {} root {}",
            head_note.size, head_note.root
        )));
    }
    if size > head {
        return Err(fail(format!(
            "the newest signed checkpoint covers {size} entries (root {root}), the database holds {head} \
             (entries were cut off)"
        )));
    }
    let proof = prove_consistency(&nodes, size, head).map_err(|e| fail(e.to_string()))?;
    verify_consistency(size, head, &root, &frontier.root(), &proof).map_err(|_| {
        fail(format!(
            "the stored tree of {head} entries (root {}) is not consistent with the signed checkpoint \
             of size {size} (root {root}): the tree or the history was rewritten",
            frontier.root()
        ))
    })?;
    Ok(frontier)
}
