//! The schema of the audit database (`warden.db`, docs/audit.md "Storage")
//! and its migrations, run by [`super::database`].
//!
//! This module must never change what an entry's bytes are or how they hash:
//! migrations only add tables, columns and indexes beside the chain.

use super::database::{Migration, Schema};
use super::{StoreError, sqlite_err};
use rusqlite::Connection;
use std::path::Path;

/// The audit database: version 1 is the chain; version 2 adds the listing
/// columns and their indexes; version 3 the Merkle tree and its checkpoint
/// notes ([`super::audit_tree`]); version 4 the workflow run journal's
/// tables (`runs`, `run_steps`: [`super::runs_sqlite`]), written by the
/// audit log's writer so a step's record and its entry share one fsync;
/// version 5 keeps only every fourth level of the tree's nodes.
pub(crate) const AUDIT_SCHEMA: Schema = Schema {
    name: "audit",
    migrations: &[
        Migration {
            to: 1,
            run: create_chain,
        },
        Migration {
            to: 2,
            run: add_listing_columns,
        },
        Migration {
            to: 3,
            run: super::audit_tree::add_merkle_tree,
        },
        Migration {
            to: 4,
            run: super::runs_sqlite::create_tables,
        },
        Migration {
            to: 5,
            run: super::audit_tree::keep_every_fourth_level,
        },
    ],
};

/// Version 1: the chain, its checkpoints and the payloads. `IF NOT EXISTS`
/// keeps it idempotent.
fn create_chain(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(
        "
CREATE TABLE IF NOT EXISTS audit_entries (
    seq       INTEGER PRIMARY KEY,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL,
    entry     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id        INTEGER PRIMARY KEY,
    size      INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    at_ms     INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_payloads (
    hash         BLOB PRIMARY KEY,
    data         BLOB NOT NULL,
    stored_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_payloads_by_age ON audit_payloads (stored_at_ms);
",
    )
    .map_err(sqlite_err(path))
}

/// Rows the v2 migration decodes per step (bounds its memory).
const MIGRATION_CHUNK: i64 = 10_000;

/// Version 1 -> 2: `audit_entries` gains `capability`, `outcome` and
/// `outcome_class` (copied out of each entry, so `GET /v1/audit` filters
/// through an index instead of decoding every entry) and their indexes.
/// It adds only missing columns and fills only empty rows. A row whose entry
/// does not decode keeps empty columns (it is listed unfiltered, and
/// `audit verify` reports it). Entries are hashed over their encoded blob
/// only, so nothing here changes what verifies.
fn add_listing_columns(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = sqlite_err;
    let columns: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('audit_entries')")
            .map_err(sql(path))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(sql(path))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(sql(path))?
    };
    for column in ["capability", "outcome", "outcome_class"] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE audit_entries ADD COLUMN {column} TEXT"
            ))
            .map_err(sql(path))?;
        }
    }
    let mut after: i64 = 0;
    loop {
        let chunk: Vec<(i64, Vec<u8>)> = {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, entry FROM audit_entries \
                     WHERE seq > ?1 AND capability IS NULL ORDER BY seq LIMIT ?2",
                )
                .map_err(sql(path))?;
            let rows = stmt
                .query_map([after, MIGRATION_CHUNK], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql(path))?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql(path))?
        };
        let Some(last) = chunk.last().map(|(seq, _)| *seq) else {
            break;
        };
        after = last;
        let mut update = conn
            .prepare_cached(
                "UPDATE audit_entries SET capability = ?2, outcome = ?3, outcome_class = ?4 \
                 WHERE seq = ?1",
            )
            .map_err(sql(path))?;
        for (seq, blob) in &chunk {
            // Not a silent drop: the row keeps its entry, only the copied
            // columns stay empty, and `audit verify` names the row.
            if let Ok((_, e)) = crate::audit::entry::decode(blob) {
                update
                    .execute(rusqlite::params![
                        seq,
                        e.capability,
                        e.outcome.as_string(),
                        e.outcome.class()
                    ])
                    .map_err(sql(path))?;
            }
        }
    }
    conn.execute_batch(
        "
CREATE INDEX IF NOT EXISTS audit_entries_by_capability ON audit_entries (capability, seq);
CREATE INDEX IF NOT EXISTS audit_entries_by_outcome_class ON audit_entries (outcome_class, seq);
",
    )
    .map_err(sql(path))
}
