//! Embedded storage: one SQLite file (bundled SQLite) in the data directory.
//!
//! Today it holds the audit chain ([`AuditLog`] writes, [`AuditReader`] reads);
//! approvals, idempotency records and KV join it later. Every connection runs
//! in WAL mode with `synchronous=FULL`, so a committed transaction survives a
//! crash or power loss.
//!
//! This folder must never decide *what* is recorded or how entries are
//! encoded and hashed (that is [`crate::audit`], pure and I/O-free), and it
//! must never acknowledge an append before its transaction is committed.

mod anchor;
mod audit_log;
mod audit_read;

pub use anchor::{anchor_path, checkpoints_in_file};
pub use audit_log::{AppendStats, Appended, AuditLog, CheckpointPolicy, Payloads};
pub use audit_read::{
    AuditReader, EntryFilter, EntryPage, ExportSummary, verify_db, verify_db_expecting,
    verify_export, verify_export_expecting,
};

use crate::audit::Problem;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// Default file name of the database inside the data directory.
pub const DB_FILE: &str = "warden.db";

/// Schema version stored in `PRAGMA user_version`: 1 is the chain; 2 adds
/// the listing columns and their indexes ([`migrate_to_v2`]).
const SCHEMA_VERSION: i64 = 2;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite error on {path}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file other than the database could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// At open, the last entries or the last checkpoint do not check out:
    /// a torn or partial tail, or a database changed behind our back.
    #[error(
        "{path}: the audit chain's tail does not verify ({problem}); run `warden audit verify --db {path}`"
    )]
    TornTail {
        /// The database file.
        path: PathBuf,
        /// The first problem found.
        problem: Problem,
    },
    /// At open, the database does not extend the newest checkpoint this host
    /// signed (kept in the anchor file): entries were cut off, the history
    /// was rewritten, or that checkpoint was deleted. Nothing is signed.
    #[error(
        "{db}: the audit chain does not extend the trusted checkpoint in {anchor} \
         (size {size}, head {head}): {found}. Nothing was signed. If you restored an older \
         backup of the database on purpose, restore the anchor file from the same backup \
         or move {anchor} aside (docs/operations.md, Backups); otherwise treat the database \
         as tampered with: keep it and run `warden audit verify --db {db} --expect-checkpoint {anchor}`"
    )]
    NotExtendingAnchor {
        /// The database file.
        db: PathBuf,
        /// The anchor file.
        anchor: PathBuf,
        /// The anchor's size.
        size: u64,
        /// The anchor's head hash.
        head: crate::audit::Hash256,
        /// What the database holds instead.
        found: String,
    },
    /// The anchor file cannot be read, parsed, or its signature does not
    /// verify with the host key.
    #[error(
        "{anchor}: the trusted checkpoint is not usable: {reason}. If the host key was \
         replaced on purpose (a new chain), move the anchor away with the old database \
         (docs/operations.md, Rotation)"
    )]
    BadAnchor {
        /// The anchor file.
        anchor: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another log in this process) is writing this store.
    #[error(
        "{path}: another warden process is writing this audit store (its lock file {path}.lock is held); \
         stop it, or give this one its own --data-dir"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer warden.
    #[error("{path}: schema version {found} is newer than this build's {SCHEMA_VERSION}")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// A row holds a value of the wrong shape (e.g. a 31-byte hash).
    #[error("{path}: corrupt row: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A payload's bytes do not hash to the entry's input or output hash.
    #[error("{which} payload hashes to {found}, the entry records {recorded:?}")]
    PayloadHashMismatch {
        /// `input` or `output`.
        which: &'static str,
        /// SHA-256 of the bytes given.
        found: crate::audit::Hash256,
        /// The entry's hash field.
        recorded: Option<crate::audit::Hash256>,
    },
    /// The transaction holding the entry failed to commit; the entry is not
    /// in the chain and the request must not be acknowledged.
    #[error("{path}: audit commit failed: {reason}")]
    CommitFailed {
        /// The database file.
        path: PathBuf,
        /// SQLite's error, as text (shared by every entry of the batch).
        reason: String,
    },
    /// The log was closed (or its writer stopped) before the append.
    #[error("the audit log is closed")]
    Closed,
}

pub(crate) fn sqlite_err(path: &Path) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating if asked) a connection with WAL, `synchronous=FULL` and the schema.
pub(crate) fn open_connection(path: &Path, create: bool) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
    }
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite_err(path))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err(path))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
        });
    }
    if version == 0 && !create {
        // Readers never write a schema into a file that is not a warden database.
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: "not a warden database (no schema version)".into(),
        });
    }
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(sqlite_err(path))?;
    conn.execute_batch("PRAGMA synchronous=FULL;")
        .map_err(sqlite_err(path))?;
    if version < 1 {
        conn.execute_batch(SCHEMA).map_err(sqlite_err(path))?;
    }
    // Only the writer (which holds the lock file, so no older warden is
    // writing) migrates; readers never alter a schema.
    if version < 2 && create {
        migrate_to_v2(&conn, path)?;
    }
    Ok(conn)
}

/// Rows the v2 migration decodes per step (bounds its memory).
const MIGRATION_CHUNK: i64 = 10_000;

/// Schema 1 -> 2: `audit_entries` gains `capability`, `outcome` and
/// `outcome_class` (copied out of each entry, so `GET /v1/audit` filters
/// through an index instead of decoding every entry) and their indexes.
/// Idempotent and safe to race: it runs in one `BEGIN IMMEDIATE`
/// transaction that re-reads the version, adds only missing columns and
/// fills only empty rows. A row whose entry does not decode keeps empty
/// columns (it is listed unfiltered, and `audit verify` reports it).
/// Entries are hashed over their encoded blob only, so nothing here changes
/// what verifies.
fn migrate_to_v2(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = sqlite_err;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql(path))?;
    let result = (|| -> Result<(), StoreError> {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(path))?;
        if version >= 2 {
            return Ok(());
        }
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
        conn.execute_batch(INDEXES_V2).map_err(sql(path))?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(sql(path)),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The indexes `GET /v1/audit` filters through (schema 2).
const INDEXES_V2: &str = "
CREATE INDEX IF NOT EXISTS audit_entries_by_capability ON audit_entries (capability, seq);
CREATE INDEX IF NOT EXISTS audit_entries_by_outcome_class ON audit_entries (outcome_class, seq);
PRAGMA user_version = 2;
";

/// The schema (docs/audit.md "Storage"). `IF NOT EXISTS` keeps it idempotent.
const SCHEMA: &str = "
BEGIN;
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
PRAGMA user_version = 1;
COMMIT;
";

/// Current time in unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// u64 -> SQLite integer; values above i64::MAX are clamped (never reached:
/// sequence numbers and millisecond times).
pub(crate) fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
