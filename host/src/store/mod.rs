//! Embedded storage: the SQLite files in the data directory, behind small
//! traits so that another backend (PostgreSQL) can be added without
//! touching the request pipeline.
//!
//! - `warden.db`: the audit chain ([`AuditLog`] writes, [`AuditReader`]
//!   reads; [`AuditStore`] is the trait).
//! - `state.db`: the daemon's request state: finished responses,
//!   idempotency keys, held approval requests ([`RequestStore`],
//!   implemented by [`SqliteRequestStore`]).
//! - `artifacts/`: the content-addressed, write-once artifact store
//!   ([`ArtifactStore`]: components, policies, route tables by hash).
//! - the workflow run journal: runs and their steps ([`RunStore`],
//!   implemented by [`SqliteRunStore`]), in `warden.db` beside the chain
//!   and written by the audit log's writer (the daemon), or in a `runs.db`
//!   of its own (embedders).
//! - `kv.db`: the guests' key-value namespaces ([`KvBackend`], implemented
//!   by [`KvStore`]).
//!
//! Every file is opened by one helper ([`database`]: WAL,
//! `synchronous=FULL`, busy timeout, schema versions in `PRAGMA
//! user_version` with ordered migrations), and every durable write goes
//! through one group-commit writer ([`writer`]): a dedicated thread writes a
//! batch in one transaction and answers each caller only after the commit.
//! A committed transaction survives a crash or power loss — except a
//! *deferred* one in `warden.db` (a workflow step's entry and in-flight
//! marker), which survives a process kill and is synced by the durable
//! commit its caller makes next (`writer.rs`).
//!
//! This folder must never decide *what* is recorded or how entries are
//! encoded and hashed (that is [`crate::audit`], pure and I/O-free), must
//! never acknowledge a write before its transaction is committed, must never
//! run SQLite on an async worker (async callers await the writer's [`Ack`]
//! or use the blocking pool), and must never drop or default a row it cannot
//! decode ([`StoreError::BadRow`] names it).

mod anchor;
pub mod artifacts;
mod audit_log;
mod audit_proofs;
mod audit_read;
mod audit_schema;
mod audit_tiles;
mod audit_tree;
#[cfg(test)]
mod audit_tree_tests;
mod audit_verify;
#[cfg(test)]
mod conformance;
pub mod cosigned;
pub(crate) mod database;
pub mod hostkey;
pub mod kv;
mod requests;
mod requests_sqlite;
pub mod runs;
#[cfg(test)]
mod runs_shared_tests;
mod runs_sqlite;
mod traits;
pub mod witness_state;
pub(crate) mod writer;

pub use anchor::{anchor_path, checkpoints_in_file};
pub use artifacts::{ArtifactError, ArtifactStore};
pub use audit_log::{
    AppendStats, Appended, AuditLog, CheckpointPolicy, Payloads, RowWrite, SeqWrite,
};
pub use audit_proofs::{ConsistencyProof, InclusionProof, StoredNote, TreeReport};
pub use audit_read::{
    AuditReader, EntryFilter, EntryPage, ExportSummary, verify_db, verify_db_expecting,
    verify_export, verify_export_expecting,
};
pub(crate) use audit_schema::AUDIT_SCHEMA;
pub use audit_verify::FullReport;
pub use database::BUSY_TIMEOUT;
pub use kv::{KvError, KvStore, Namespace};
pub use requests::{
    Binding, Decision, Held, HeldState, HeldStep, IdempotentRecord, PendingSummary, STATE_FILE,
    StoredResponse,
};
pub use requests_sqlite::SqliteRequestStore;
pub use runs::{
    Journal, Pin, RUNS_FILE, RunRecord, RunState, RunStore, StepAfterEntry, StepRecord, StepState,
};
pub use runs_sqlite::SqliteRunStore;
pub use traits::{AuditStore, KvBackend, RequestStore};
pub use writer::Ack;

use crate::audit::Problem;
use std::path::{Path, PathBuf};

/// Default file name of the database inside the data directory.
pub const DB_FILE: &str = "warden.db";

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
        head: crate::digest::Hash256,
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
    #[error(
        "{path}: {what} database schema version {found} is newer than this build supports \
         ({supported}); run the newer warden, or restore a backup taken before the upgrade \
         (docs/operations.md, Upgrades)"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// What the file holds (`audit`, `request state`, `kv`).
        what: &'static str,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored row does not decode into what its table holds. Never
    /// skipped or defaulted: the caller sees which row.
    #[error("{path}: table `{table}`, row {key}: {reason}")]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The row's key (id, or key columns), quoted.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record could not be encoded for storage.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being stored.
        what: String,
        /// Why.
        reason: String,
    },
    /// At open, the stored Merkle tree does not extend the newest checkpoint
    /// note this host signed (or cannot be read): nothing is signed.
    #[error("{path}: the Merkle tree does not extend the last signed checkpoint: {detail}")]
    TreeInconsistent {
        /// The database file.
        path: PathBuf,
        /// Sizes and roots involved.
        detail: String,
    },
    /// A proof was asked for that cannot be produced.
    #[error("{path}: {source}")]
    Proof {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: crate::audit::merkle::ProofError,
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
        found: crate::digest::Hash256,
        /// The entry's hash field.
        recorded: Option<crate::digest::Hash256>,
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

pub(crate) use crate::units::now_ms;

/// u64 -> SQLite integer; values above i64::MAX are clamped (never reached:
/// sequence numbers and millisecond times).
pub(crate) fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
