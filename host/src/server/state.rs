//! `state.db` in the data directory: finished requests (for
//! `GET /v1/requests/{id}`) and idempotency keys. Kept apart from the audit
//! database: the audit chain is evidence; this is the daemon's working state.
//!
//! Finished requests are written with group commit, like the audit log: a
//! writer thread takes every [`StateStore::finish`] queued, writes them in
//! one transaction (one WAL fsync under `synchronous=FULL`) and only then
//! answers each caller. Concurrent requests share fsyncs instead of queueing
//! one fsync each behind the connection lock; each caller still returns only
//! once its own row is durable.

use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

/// Most finished requests one transaction takes.
const MAX_FINISH_BATCH: usize = 1024;

/// One queued [`StateStore::finish`].
struct FinishJob {
    request_id: String,
    principal: String,
    status: u16,
    response: String,
    /// `(key, fingerprint)`.
    idempotency: Option<(String, String)>,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// File name inside the data directory.
pub const STATE_FILE: &str = "state.db";

const SCHEMA: &str = "
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
";

/// A stored response.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// Who submitted it.
    pub principal: String,
    /// HTTP status sent.
    pub status: u16,
    /// Response body JSON.
    pub response: serde_json::Value,
}

/// A completed idempotency key.
#[derive(Debug, Clone)]
pub struct IdempotentRecord {
    /// Fingerprint of the request that used the key first.
    pub fingerprint: String,
    /// Its request id.
    pub request_id: String,
}

/// The daemon's working state. Cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Queue of the group-commit writer (which ends when every clone is dropped).
    finishes: mpsc::Sender<FinishJob>,
}

/// Writes (or replaces) a request's stored response.
fn put_request(c: &Connection, id: &str, stored: &StoredResponse) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO requests (id, principal, status, response, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            stored.principal,
            stored.status,
            stored.response.to_string(),
            crate::store::to_sql_int(crate::store::now_ms())
        ],
    )
    .map(|_| ())
}

impl StateStore {
    /// Opens (creating) `<data_dir>/state.db`.
    pub fn open(data_dir: &Path) -> Result<StateStore, StoreError> {
        let path = data_dir.join(STATE_FILE);
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let conn = Connection::open(&path).map_err(crate::store::sqlite_err(&path))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(crate::store::sqlite_err(&path))?;
        conn.execute_batch("PRAGMA synchronous=FULL;")
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(crate::store::sqlite_err(&path))?;
        let conn = Arc::new(Mutex::new(conn));
        let (finishes, rx) = mpsc::channel();
        let writer = conn.clone();
        std::thread::Builder::new()
            .name("warden-state-writer".into())
            .spawn(move || write_finishes(&writer, &rx))
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(StateStore {
            conn,
            path,
            finishes,
        })
    }

    /// Runs `f` on a blocking thread (SQLite calls fsync).
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StateStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || f(&this)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("state store task failed: {e}")),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn).map_err(crate::store::sqlite_err(&self.path))
    }

    /// Records a finished request and (when given) its idempotency key, in
    /// one transaction (shared with the other requests finishing at the same
    /// time); returns once it is committed.
    pub async fn finish_async(
        &self,
        request_id: &str,
        stored: &StoredResponse,
        idempotency: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let done = self.queue_finish(request_id, stored, idempotency)?;
        self.finished(done.await)
    }

    fn queue_finish(
        &self,
        request_id: &str,
        stored: &StoredResponse,
        idempotency: Option<(&str, &str)>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), String>>, StoreError> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let job = FinishJob {
            request_id: request_id.to_string(),
            principal: stored.principal.clone(),
            status: stored.status,
            response: stored.response.to_string(),
            idempotency: idempotency.map(|(k, f)| (k.to_string(), f.to_string())),
            reply,
        };
        self.finishes
            .send(job)
            .map_err(|_| self.commit_failed("the state writer stopped".into()))?;
        Ok(done)
    }

    fn finished(
        &self,
        result: Result<Result<(), String>, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), StoreError> {
        result
            .map_err(|_| self.commit_failed("the state writer stopped".into()))?
            .map_err(|reason| self.commit_failed(reason))
    }

    fn commit_failed(&self, reason: String) -> StoreError {
        StoreError::CommitFailed {
            path: self.path.clone(),
            reason,
        }
    }

    /// Inserts or replaces a held (approval-gated) request; with `stored`,
    /// also records the response `GET /v1/requests/{id}` shows meanwhile,
    /// in the same transaction.
    pub fn put_held(
        &self,
        held: &super::approvals::Held,
        stored: Option<&StoredResponse>,
    ) -> Result<(), StoreError> {
        let record = serde_json::to_string(held).unwrap_or_default();
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO held (id, state, created_ms, expires_ms, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    held.request_id,
                    held.state.as_str(),
                    crate::store::to_sql_int(held.admitted_at_ms),
                    crate::store::to_sql_int(held.expires_at_ms),
                    record
                ],
            )?;
            if let Some(stored) = stored {
                put_request(&tx, &held.request_id, stored)?;
            }
            tx.commit()
        })
    }

    /// Records a held request's end together with the response callers
    /// now read from `GET /v1/requests/{id}`, in one transaction.
    pub fn end_held(
        &self,
        held: &super::approvals::Held,
        stored: &StoredResponse,
    ) -> Result<(), StoreError> {
        let record = serde_json::to_string(held).unwrap_or_default();
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "UPDATE held SET state = ?2, record = ?3 WHERE id = ?1",
                params![held.request_id, held.state.as_str(), record],
            )?;
            put_request(&tx, &held.request_id, stored)?;
            tx.commit()
        })
    }

    /// A held request by id.
    pub fn held(&self, id: &str) -> Result<Option<super::approvals::Held>, StoreError> {
        let text: Option<String> = self.with(|c| {
            c.query_row("SELECT record FROM held WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
        })?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Held requests in `state` (all states when `None`), oldest first, at most `limit`.
    pub fn held_list(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<super::approvals::Held>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let texts: Vec<String> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT record FROM held WHERE (?1 IS NULL OR state = ?1) ORDER BY created_ms, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![state, limit], |r| r.get(0))?;
            rows.collect()
        })?;
        Ok(texts
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    /// Pending held requests whose deadline is at or before `now_ms`.
    pub fn held_due(&self, now_ms: u64) -> Result<Vec<super::approvals::Held>, StoreError> {
        let texts: Vec<String> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT record FROM held WHERE state = 'pending' AND expires_ms <= ?1 ORDER BY expires_ms, id",
            )?;
            let rows = stmt.query_map(params![crate::store::to_sql_int(now_ms)], |r| r.get(0))?;
            rows.collect()
        })?;
        Ok(texts
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    /// Number of pending held requests and the creation time of the oldest.
    pub fn pending_summary(&self) -> Result<(u64, Option<u64>), StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*), MIN(created_ms) FROM held WHERE state = 'pending'",
                [],
                |r| {
                    let n: i64 = r.get(0)?;
                    let oldest: Option<i64> = r.get(1)?;
                    Ok((
                        u64::try_from(n).unwrap_or(0),
                        oldest.and_then(|o| u64::try_from(o).ok()),
                    ))
                },
            )
        })
    }

    /// A finished request by id.
    pub fn request(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT principal, status, response FROM requests WHERE id = ?1",
                params![id],
                |r| {
                    let text: String = r.get(2)?;
                    Ok(StoredResponse {
                        principal: r.get(0)?,
                        status: r.get(1)?,
                        response: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
                    })
                },
            )
            .optional()
        })
    }

    /// The completed request that used `key` for `principal`, if any.
    pub fn idempotent(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotentRecord>, StoreError> {
        self.with(|c| {
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
        })
    }
}

/// The group-commit writer: drains the queue, one transaction per batch.
fn write_finishes(conn: &Mutex<Connection>, rx: &mpsc::Receiver<FinishJob>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_FINISH_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = {
            let c = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            commit_finishes(&c, &batch).map_err(|e| e.to_string())
        };
        for job in batch {
            let _ = job.reply.send(result.clone());
        }
    }
}

fn commit_finishes(c: &Connection, batch: &[FinishJob]) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    let now = crate::store::to_sql_int(crate::store::now_ms());
    {
        // A held request's row was written when it was held and is
        // replaced when it ends; the submit path never overwrites it.
        let mut request = tx.prepare_cached(
            "INSERT OR IGNORE INTO requests (id, principal, status, response, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut idempotency = tx.prepare_cached(
            "INSERT OR REPLACE INTO idempotency (principal, key, fingerprint, request_id) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for job in batch {
            request.execute(params![
                job.request_id,
                job.principal,
                job.status,
                job.response,
                now
            ])?;
            if let Some((key, fingerprint)) = &job.idempotency {
                idempotency.execute(params![job.principal, key, fingerprint, job.request_id])?;
            }
        }
    }
    tx.commit()
}
