//! [`RequestStore`] in SQLite: `state.db` in the data directory. Kept apart
//! from the audit database: the audit chain is evidence; this is the
//! daemon's working state.
//!
//! Every write (finished responses, held requests) goes through the shared
//! group-commit [`Writer`]: requests finishing at the same time share one
//! transaction and one fsync, and each caller is answered only once its own
//! row is durable. Reads use a second connection (WAL readers see the last
//! commit) and block: async callers run them on the blocking pool.
//!
//! This module must never skip or default a row it cannot decode: it is a
//! [`StoreError::BadRow`] naming the table and the row's key.

use super::database::{Access, Migration, Schema, open};
use super::requests::{
    Held, HeldState, IdempotentRecord, PendingSummary, STATE_FILE, StoredResponse,
};
use super::writer::{Ack, Table, Wake, Writer};
use super::{RequestStore, StoreError, now_ms, sqlite_err, to_sql_int};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Most writes one transaction takes.
const MAX_BATCH: usize = 1024;

/// `state.db`: version 1 is the layout of every release so far (files
/// written before versions were kept are at 0 and get version 1 unchanged).
pub(crate) const STATE_SCHEMA: Schema = Schema {
    name: "request state",
    migrations: &[Migration {
        to: 1,
        run: create_tables,
    }],
};

fn create_tables(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(
        "
CREATE TABLE IF NOT EXISTS requests (
    id         TEXT PRIMARY KEY,
    principal  TEXT NOT NULL,
    status     INTEGER NOT NULL,
    response   TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    principal   TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    PRIMARY KEY (principal, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS held_by_state ON held (state, created_ms);
",
    )
    .map_err(sqlite_err(path))
}

/// A `requests` row, encoded.
struct ResponseRow {
    principal: String,
    status: u16,
    response: String,
}

impl ResponseRow {
    fn of(stored: &StoredResponse) -> ResponseRow {
        ResponseRow {
            principal: stored.principal.clone(),
            status: stored.status,
            response: stored.response.to_string(),
        }
    }
}

/// A `held` row, encoded.
struct HeldRow {
    id: String,
    state: &'static str,
    created_ms: i64,
    expires_ms: i64,
    record: String,
}

impl HeldRow {
    fn of(held: &Held) -> Result<HeldRow, StoreError> {
        let record = serde_json::to_string(held).map_err(|e| StoreError::Encode {
            what: format!("held request {:?}", held.request_id),
            reason: e.to_string(),
        })?;
        Ok(HeldRow {
            id: held.request_id.clone(),
            state: held.state.as_str(),
            created_ms: to_sql_int(held.admitted_at_ms),
            expires_ms: to_sql_int(held.expires_at_ms),
            record,
        })
    }
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// One queued write.
enum Job {
    Finish {
        request_id: String,
        response: ResponseRow,
        /// `(key, fingerprint)`.
        idempotency: Option<(String, String)>,
        reply: Reply,
    },
    PutHeld {
        held: HeldRow,
        response: Option<ResponseRow>,
        reply: Reply,
    },
    EndHeld {
        held: HeldRow,
        response: ResponseRow,
        reply: Reply,
    },
}

impl Job {
    fn into_reply(self) -> Reply {
        match self {
            Job::Finish { reply, .. } | Job::PutHeld { reply, .. } | Job::EndHeld { reply, .. } => {
                reply
            }
        }
    }
}

/// `state.db`'s tables as the group-commit writer writes them.
struct StateTable {
    path: PathBuf,
}

impl Table for StateTable {
    type Job = Job;

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn write(
        &mut self,
        tx: &Transaction<'_>,
        jobs: &mut Vec<Job>,
        _: Wake,
    ) -> Result<bool, StoreError> {
        let sql = || sqlite_err(&self.path);
        let now = to_sql_int(now_ms());
        // A held request's row was written when it was held and is
        // replaced when it ends; the submit path never overwrites it.
        let mut finish = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO requests (id, principal, status, response, at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql())?;
        let mut replace = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO requests (id, principal, status, response, at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql())?;
        let mut idempotency = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency (principal, key, fingerprint, request_id) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql())?;
        for job in jobs.iter() {
            match job {
                Job::Finish {
                    request_id,
                    response: r,
                    idempotency: key,
                    ..
                } => {
                    finish
                        .execute(params![request_id, r.principal, r.status, r.response, now])
                        .map_err(sql())?;
                    if let Some((key, fingerprint)) = key {
                        idempotency
                            .execute(params![r.principal, key, fingerprint, request_id])
                            .map_err(sql())?;
                    }
                }
                Job::PutHeld {
                    held: h, response, ..
                } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO held (id, state, created_ms, expires_ms, record) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![h.id, h.state, h.created_ms, h.expires_ms, h.record],
                    )
                    .map_err(sql())?;
                    if let Some(r) = response {
                        replace
                            .execute(params![h.id, r.principal, r.status, r.response, now])
                            .map_err(sql())?;
                    }
                }
                Job::EndHeld {
                    held: h,
                    response: r,
                    ..
                } => {
                    tx.execute(
                        "UPDATE held SET state = ?2, record = ?3 WHERE id = ?1",
                        params![h.id, h.state, h.record],
                    )
                    .map_err(sql())?;
                    replace
                        .execute(params![h.id, r.principal, r.status, r.response, now])
                        .map_err(sql())?;
                }
            }
        }
        Ok(!jobs.is_empty())
    }

    fn answer(&mut self, jobs: &mut Vec<Job>, committed: Result<bool, StoreError>) -> bool {
        let reason = committed.err().map(|e| e.to_string());
        for job in jobs.drain(..) {
            let _ = job.into_reply().send(match &reason {
                None => Ok(()),
                Some(reason) => Err(StoreError::CommitFailed {
                    path: self.path.clone(),
                    reason: reason.clone(),
                }),
            });
        }
        false
    }
}

/// `state.db`. Share it behind an `Arc` (it is a [`RequestStore`]).
pub struct SqliteRequestStore {
    path: PathBuf,
    writer: Writer<Job>,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteRequestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRequestStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteRequestStore {
    /// Opens (creating and migrating) `<data_dir>/state.db` and starts its writer.
    pub fn open(data_dir: &Path) -> Result<SqliteRequestStore, StoreError> {
        let path = data_dir.join(STATE_FILE);
        let conn = open(&path, &STATE_SCHEMA, Access::Write)?;
        let reader = open(&path, &STATE_SCHEMA, Access::Read)?;
        let table = StateTable { path: path.clone() };
        let writer = Writer::spawn("warden-state-writer", &path, conn, table)?;
        Ok(SqliteRequestStore {
            path,
            writer,
            reader: Mutex::new(reader),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A poisoned lock only means another thread panicked mid-read; the
        // connection is still consistent.
        let conn = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn)
    }

    fn bad_row(&self, table: &'static str, key: &str, reason: impl ToString) -> StoreError {
        StoreError::BadRow {
            path: self.path.clone(),
            table,
            key: format!("{key:?}"),
            reason: reason.to_string(),
        }
    }

    /// Decodes one `held` row's record.
    fn decode_held(&self, id: &str, record: &str) -> Result<Held, StoreError> {
        serde_json::from_str(record)
            .map_err(|e| self.bad_row("held", id, format!("record does not decode: {e}")))
    }

    /// Runs a `SELECT id, record FROM held ...` and decodes every row.
    fn held_rows(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Held>, StoreError> {
        let rows: Vec<(String, String)> = self.read(|c| {
            let mut stmt = c.prepare_cached(sql).map_err(sqlite_err(&self.path))?;
            stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sqlite_err(&self.path))
        })?;
        rows.iter()
            .map(|(id, record)| self.decode_held(id, record))
            .collect()
    }
}

impl RequestStore for SqliteRequestStore {
    fn finish(
        &self,
        request_id: &str,
        stored: &StoredResponse,
        idempotency: Option<(&str, &str)>,
    ) -> Ack<()> {
        let response = ResponseRow::of(stored);
        let idempotency = idempotency.map(|(k, f)| (k.to_string(), f.to_string()));
        self.writer.submit(|reply| Job::Finish {
            request_id: request_id.to_string(),
            response,
            idempotency,
            reply,
        })
    }

    fn put_held(&self, held: &Held, stored: Option<&StoredResponse>) -> Ack<()> {
        match HeldRow::of(held) {
            Ok(row) => self.writer.submit(|reply| Job::PutHeld {
                held: row,
                response: stored.map(ResponseRow::of),
                reply,
            }),
            Err(e) => Ack::failed(e),
        }
    }

    fn end_held(&self, held: &Held, stored: &StoredResponse) -> Ack<()> {
        match HeldRow::of(held) {
            Ok(row) => self.writer.submit(|reply| Job::EndHeld {
                held: row,
                response: ResponseRow::of(stored),
                reply,
            }),
            Err(e) => Ack::failed(e),
        }
    }

    fn request(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let row: Option<(String, i64, String)> = self.read(|c| {
            c.query_row(
                "SELECT principal, status, response FROM requests WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sqlite_err(&self.path))
        })?;
        let Some((principal, status, text)) = row else {
            return Ok(None);
        };
        let status = u16::try_from(status).map_err(|_| {
            self.bad_row(
                "requests",
                id,
                format!("status {status} is not an HTTP status"),
            )
        })?;
        let response = serde_json::from_str(&text)
            .map_err(|e| self.bad_row("requests", id, format!("response is not JSON: {e}")))?;
        Ok(Some(StoredResponse {
            principal,
            status,
            response,
        }))
    }

    fn idempotent(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotentRecord>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT fingerprint, request_id FROM idempotency WHERE principal = ?1 AND key = ?2",
                params![principal, key],
                |r| {
                    Ok(IdempotentRecord {
                        fingerprint: r.get(0)?,
                        request_id: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(sqlite_err(&self.path))
        })
    }

    fn held(&self, id: &str) -> Result<Option<Held>, StoreError> {
        let record: Option<String> = self.read(|c| {
            c.query_row("SELECT record FROM held WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sqlite_err(&self.path))
        })?;
        record.map(|r| self.decode_held(id, &r)).transpose()
    }

    fn held_list(&self, state: Option<HeldState>, limit: usize) -> Result<Vec<Held>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.held_rows(
            "SELECT id, record FROM held WHERE (?1 IS NULL OR state = ?1) \
             ORDER BY created_ms, id LIMIT ?2",
            params![state.map(HeldState::as_str), limit],
        )
    }

    fn held_due(&self, now_ms: u64) -> Result<Vec<Held>, StoreError> {
        self.held_rows(
            "SELECT id, record FROM held WHERE state = 'pending' AND expires_ms <= ?1 \
             ORDER BY expires_ms, id",
            params![to_sql_int(now_ms)],
        )
    }

    fn pending_summary(&self) -> Result<PendingSummary, StoreError> {
        let (n, oldest): (i64, Option<i64>) = self.read(|c| {
            c.query_row(
                "SELECT COUNT(*), MIN(created_ms) FROM held WHERE state = 'pending'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sqlite_err(&self.path))
        })?;
        let oldest_admitted_ms = oldest
            .map(|o| {
                u64::try_from(o).map_err(|_| {
                    self.bad_row("held", "pending", format!("created_ms {o} is negative"))
                })
            })
            .transpose()?;
        Ok(PendingSummary {
            pending: u64::try_from(n).unwrap_or(0),
            oldest_admitted_ms,
        })
    }
}
