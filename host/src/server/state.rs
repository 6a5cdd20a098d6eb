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
        let mut request = tx.prepare_cached(
            "INSERT OR REPLACE INTO requests (id, principal, status, response, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
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
