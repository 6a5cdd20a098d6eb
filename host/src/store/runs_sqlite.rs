//! [`RunStore`] in SQLite: the workflow run journal (tables `runs` and
//! `run_steps`), in one of two places:
//!
//! - **in the audit database** ([`SqliteRunStore::in_audit_log`], what the
//!   daemon uses): the tables are part of `warden.db`'s schema (version 4)
//!   and every write is a job of the audit log's one group-commit writer,
//!   in the same WAL as the entries. The executor appends a step's entry
//!   *deferred* and then journals its result durably, so the two share one
//!   fsync (docs/workflows.md, "One fsync per step"). A `runs.db` left by
//!   an earlier version is imported once, at open, and renamed
//!   `runs.db.imported`.
//! - **in its own file** `runs.db` ([`SqliteRunStore::open`]; schema 0→1
//!   below), with a group-commit writer of its own: every write is durable
//!   on its own (nothing is deferred), for embedders and tests without the
//!   audit log's writer.
//!
//! Either way, concurrent runs' steps share transactions and fsyncs, and
//! each caller is answered only once its own rows are committed (durable,
//! unless it asked for a deferred write). Reads use a second connection
//! and block: async callers run them on the blocking pool.
//!
//! This module must never skip or default a row it cannot decode: it is a
//! [`StoreError::BadRow`] naming the table and the row's key; and never
//! defer a write when the journal does not share the audit log's WAL.

use super::AUDIT_SCHEMA;
use super::audit_log::{AuditLog, RowWrite};
use super::database::{Access, Migration, Schema, in_savepoint, open};
use super::runs::{
    Journal, RUNS_FILE, RunRecord, RunState, RunStore, StepAfterEntry, StepRecord, StepState,
};
use super::writer::{Ack, Table, Wake, Writer};
use super::{StoreError, now_ms, sqlite_err, to_sql_int};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Most writes one transaction takes.
const MAX_BATCH: usize = 1024;

/// Most runs one listing returns.
pub const MAX_LIST: usize = 1000;

/// `runs.db`: version 1 creates the journal.
pub(crate) const RUNS_SCHEMA: Schema = Schema {
    name: "workflow runs",
    migrations: &[Migration {
        to: 1,
        run: create_tables,
    }],
};

pub(crate) fn create_tables(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(
        "
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, created_ms);
CREATE TABLE IF NOT EXISTS run_steps (
    run_id      TEXT NOT NULL,
    step        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
",
    )
    .map_err(sqlite_err(path))
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// One journal write.
enum Op {
    Start {
        run: RunRecord,
        steps: Vec<StepRecord>,
    },
    Step {
        run_id: String,
        step: StepRecord,
        run_state: Option<RunState>,
    },
    State {
        run_id: String,
        state: RunState,
        /// Written only if this step's record is `done` (else refused).
        after_done: Option<String>,
    },
}

/// A write queued to `runs.db`'s own writer, with its caller's reply.
struct Job(Op, Reply);

impl Job {
    fn reply(self) -> Reply {
        self.1
    }
}

struct RunsTable {
    path: PathBuf,
}

fn encode<T: serde::Serialize>(what: String, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode {
        what,
        reason: e.to_string(),
    })
}

impl RunsTable {
    /// Writes one job; `Err` fails only this job (the others still commit).
    fn write_one(&self, tx: &Transaction<'_>, job: &Op) -> Result<(), StoreError> {
        let sql = || sqlite_err(&self.path);
        let now = to_sql_int(now_ms());
        match job {
            Op::Start { run, steps } => {
                let exists: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")
                    .and_then(|mut s| s.query_row(params![run.id], |r| r.get(0)).optional())
                    .map_err(sql())?;
                if exists.is_some() {
                    return Err(StoreError::BadRow {
                        path: self.path.clone(),
                        table: "runs",
                        key: format!("{:?}", run.id),
                        reason: "a run with this id exists already; one id never names two runs"
                            .into(),
                    });
                }
                let record = encode(format!("run {:?}", run.id), run)?;
                tx.prepare_cached(
                    "INSERT INTO runs (id, workflow, state, created_ms, updated_ms, record) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        run.id,
                        run.workflow,
                        run.state.as_str(),
                        to_sql_int(run.created_ms),
                        to_sql_int(run.updated_ms),
                        record
                    ])
                })
                .map_err(sql())?;
                for s in steps {
                    self.put_step(tx, &run.id, s)?;
                }
            }
            Op::Step {
                run_id,
                step,
                run_state,
            } => {
                self.put_step(tx, run_id, step)?;
                if let Some(state) = run_state {
                    self.put_state(tx, run_id, *state, now)?;
                }
            }
            Op::State {
                run_id,
                state,
                after_done,
            } => {
                if let Some(step) = after_done {
                    self.require_done(tx, run_id, step)?;
                }
                self.put_state(tx, run_id, *state, now)?
            }
        }
        Ok(())
    }

    fn put_step(
        &self,
        tx: &Transaction<'_>,
        run_id: &str,
        s: &StepRecord,
    ) -> Result<(), StoreError> {
        let record = encode(format!("step {:?} of run {run_id:?}", s.step), s)?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO run_steps (run_id, step, position, state, updated_ms, record) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run_id,
                s.step,
                s.position,
                s.state.as_str(),
                to_sql_int(s.updated_ms),
                record
            ])
        })
        .map_err(sqlite_err(&self.path))?;
        Ok(())
    }

    /// Refuses unless step `step` of run `run_id` is journaled `done`.
    fn require_done(
        &self,
        tx: &Transaction<'_>,
        run_id: &str,
        step: &str,
    ) -> Result<(), StoreError> {
        let state: Option<String> = tx
            .prepare_cached("SELECT state FROM run_steps WHERE run_id = ?1 AND step = ?2")
            .and_then(|mut s| s.query_row(params![run_id, step], |r| r.get(0)).optional())
            .map_err(sqlite_err(&self.path))?;
        if state.as_deref() == Some(StepState::Done.as_str()) {
            return Ok(());
        }
        Err(StoreError::BadRow {
            path: self.path.clone(),
            table: "run_steps",
            key: format!("{:?}", format!("{run_id}/{step}")),
            reason: format!(
                "the step is {}, not done: the run's end written behind it is refused",
                state.as_deref().unwrap_or("missing")
            ),
        })
    }

    fn put_state(
        &self,
        tx: &Transaction<'_>,
        run_id: &str,
        state: RunState,
        now: i64,
    ) -> Result<(), StoreError> {
        let sql = || sqlite_err(&self.path);
        let record: Option<String> = tx
            .prepare_cached("SELECT record FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![run_id], |r| r.get(0)).optional())
            .map_err(sql())?;
        let Some(record) = record else {
            return Err(StoreError::BadRow {
                path: self.path.clone(),
                table: "runs",
                key: format!("{run_id:?}"),
                reason: "no such run".into(),
            });
        };
        let mut run: RunRecord = serde_json::from_str(&record).map_err(|e| StoreError::BadRow {
            path: self.path.clone(),
            table: "runs",
            key: format!("{run_id:?}"),
            reason: format!("record does not decode: {e}"),
        })?;
        run.state = state;
        run.updated_ms = u64::try_from(now).unwrap_or(0);
        let record = encode(format!("run {run_id:?}"), &run)?;
        tx.prepare_cached("UPDATE runs SET state = ?2, updated_ms = ?3, record = ?4 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![run_id, state.as_str(), now, record]))
            .map_err(sql())?;
        Ok(())
    }
}

impl Table for RunsTable {
    type Job = (Job, Option<Result<(), StoreError>>);

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn write(
        &mut self,
        tx: &Transaction<'_>,
        jobs: &mut Vec<Self::Job>,
        _: Wake,
    ) -> Result<bool, StoreError> {
        for (job, result) in jobs.iter_mut() {
            // Each job in its own savepoint: a refused job (a duplicate run
            // id) leaves no partial rows and does not fail its neighbours.
            *result = Some(in_savepoint(tx, &self.path, |tx| {
                self.write_one(tx, &job.0)
            })?);
        }
        Ok(!jobs.is_empty())
    }

    fn answer(&mut self, jobs: &mut Vec<Self::Job>, committed: Result<bool, StoreError>) -> bool {
        let reason = committed.err().map(|e| e.to_string());
        for (job, result) in jobs.drain(..) {
            let answer = match (&reason, result) {
                (Some(reason), _) => Err(StoreError::CommitFailed {
                    path: self.path.clone(),
                    reason: reason.clone(),
                }),
                (None, Some(r)) => r,
                (None, None) => Ok(()),
            };
            let _ = job.reply().send(answer);
        }
        false
    }
}

/// Who commits the journal's writes.
enum Writes {
    /// `runs.db`'s own writer: every write durable on its own.
    Own(Writer<(Job, Option<Result<(), StoreError>>)>),
    /// The audit log's writer, in `warden.db`: writes may be deferred.
    Audit(AuditLog),
    /// No writer: opened to read ([`SqliteRunStore::read_only`]); every
    /// write is refused.
    None,
}

/// The run journal. Share it behind an `Arc` (it is a [`RunStore`]).
pub struct SqliteRunStore {
    path: PathBuf,
    writes: Writes,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRunStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteRunStore {
    /// Opens (creating and migrating) `<data_dir>/runs.db` and starts its writer.
    pub fn open(data_dir: &Path) -> Result<SqliteRunStore, StoreError> {
        let path = data_dir.join(RUNS_FILE);
        let conn = open(&path, &RUNS_SCHEMA, Access::Write)?;
        let reader = open(&path, &RUNS_SCHEMA, Access::Read)?;
        let writer = Writer::spawn(
            "warden-runs-writer",
            &path,
            conn,
            RunsTable { path: path.clone() },
        )?;
        Ok(SqliteRunStore {
            path,
            writes: Writes::Own(writer),
            reader: Mutex::new(reader),
        })
    }

    /// The journal inside `log`'s database (`warden.db`), written by the
    /// log's own writer so that a step's journal record and its audit
    /// entry share one fsync. A `runs.db` beside it from an earlier version
    /// is imported first (its rows copied, in one durable commit; a run id
    /// present in both keeps the audit database's rows) and renamed
    /// `runs.db.imported`.
    pub fn in_audit_log(log: &AuditLog) -> Result<SqliteRunStore, StoreError> {
        let path = log.path().to_owned();
        let reader = open(&path, &AUDIT_SCHEMA, Access::Read)?;
        let store = SqliteRunStore {
            path: path.clone(),
            writes: Writes::Audit(log.clone()),
            reader: Mutex::new(reader),
        };
        if let Some(dir) = path.parent() {
            store.import_runs_db(&dir.join(RUNS_FILE))?;
        }
        Ok(store)
    }

    /// The journal, opened only to read (offline tools such as `warden
    /// audit replay --run`, beside a running daemon): in the audit database
    /// `audit_db` when it holds the journal's tables (schema version 4 and
    /// later), else in a `runs.db` an embedder keeps in `data_dir`.
    /// `Ok(None)`: neither exists. Every write through it is refused.
    pub fn read_only(
        audit_db: &Path,
        data_dir: &Path,
    ) -> Result<Option<SqliteRunStore>, StoreError> {
        let (path, schema) = if audit_db.exists() && has_runs_table(audit_db)? {
            (audit_db.to_owned(), &AUDIT_SCHEMA)
        } else if data_dir.join(RUNS_FILE).exists() {
            (data_dir.join(RUNS_FILE), &RUNS_SCHEMA)
        } else {
            return Ok(None);
        };
        let reader = open(&path, schema, Access::Read)?;
        Ok(Some(SqliteRunStore {
            path,
            writes: Writes::None,
            reader: Mutex::new(reader),
        }))
    }

    /// The journal for `host`: in its audit database when it has one
    /// ([`in_audit_log`](Self::in_audit_log)), else `runs.db` in `data_dir`.
    pub fn for_host(host: &crate::Host, data_dir: &Path) -> Result<SqliteRunStore, StoreError> {
        match host.audit() {
            Some(log) => SqliteRunStore::in_audit_log(log),
            None => SqliteRunStore::open(data_dir),
        }
    }

    /// Copies every row of a legacy `runs.db` into the audit database, then
    /// renames it. Nothing to do when there is no such file.
    fn import_runs_db(&self, legacy: &Path) -> Result<(), StoreError> {
        if !legacy.exists() {
            return Ok(());
        }
        let rows = {
            let conn = open(legacy, &RUNS_SCHEMA, Access::Read)?;
            let sql = sqlite_err(legacy);
            let mut runs = conn
                .prepare("SELECT id, workflow, state, created_ms, updated_ms, record FROM runs")
                .map_err(sqlite_err(legacy))?;
            let runs: Vec<(String, String, String, i64, i64, String)> = runs
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sqlite_err(legacy))?;
            let mut steps = conn
                .prepare("SELECT run_id, step, position, state, updated_ms, record FROM run_steps")
                .map_err(sqlite_err(legacy))?;
            let steps: Vec<(String, String, i64, String, i64, String)> = steps
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sql)?;
            (runs, steps)
        };
        let path = self.path.clone();
        let (runs, steps) = rows;
        let imported = (runs.len(), steps.len());
        self.submit(
            true,
            Box::new(move |tx: &Transaction<'_>| {
                for r in &runs {
                    tx.execute(
                        "INSERT OR IGNORE INTO runs (id, workflow, state, created_ms, updated_ms, record) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![r.0, r.1, r.2, r.3, r.4, r.5],
                    )
                    .map_err(sqlite_err(&path))?;
                }
                for s in &steps {
                    tx.execute(
                        "INSERT OR IGNORE INTO run_steps (run_id, step, position, state, updated_ms, record) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![s.0, s.1, s.2, s.3, s.4, s.5],
                    )
                    .map_err(sqlite_err(&path))?;
                }
                Ok(())
            }),
        )
        .wait()?;
        let mut to = legacy.as_os_str().to_owned();
        to.push(".imported");
        std::fs::rename(legacy, &to).map_err(|source| StoreError::Io {
            path: legacy.to_owned(),
            source,
        })?;
        for suffix in ["-wal", "-shm"] {
            let mut side = legacy.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(side);
        }
        tracing::info!(
            "imported {} runs and {} steps from {} into the audit database {}",
            imported.0,
            imported.1,
            legacy.display(),
            self.path.display()
        );
        Ok(())
    }

    /// Queues a row write to whichever writer owns the journal.
    fn submit(&self, durable: bool, write: RowWrite) -> Ack<()> {
        match &self.writes {
            Writes::Audit(log) => log.submit_write(durable, write),
            Writes::Own(_) | Writes::None => Ack::failed(StoreError::Closed),
        }
    }

    /// Queues `op`: to `runs.db`'s writer (always durable), or to the audit
    /// log's (deferred when `durable` is false).
    fn queue(&self, op: Op, durable: bool) -> Ack<()> {
        match &self.writes {
            Writes::Own(writer) => writer.submit(|reply| (Job(op, reply), None)),
            Writes::None => Ack::failed(StoreError::Closed),
            Writes::Audit(_) => {
                let table = RunsTable {
                    path: self.path.clone(),
                };
                self.submit(
                    durable,
                    Box::new(move |tx: &Transaction<'_>| table.write_one(tx, &op)),
                )
            }
        }
    }

    /// `op` as a write inside the audit log's transaction, when the
    /// journal shares its commits.
    fn row_write(&self, op: Op) -> Option<RowWrite> {
        if !self.shares_audit_commits() {
            return None;
        }
        let table = RunsTable {
            path: self.path.clone(),
        };
        Some(Box::new(move |tx: &Transaction<'_>| {
            table.write_one(tx, &op)
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
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

    fn decode_run(&self, id: &str, state: &str, record: &str) -> Result<RunRecord, StoreError> {
        let run: RunRecord = serde_json::from_str(record)
            .map_err(|e| self.bad_row("runs", id, format!("record does not decode: {e}")))?;
        if RunState::parse(state) != Some(run.state) || run.id != id {
            return Err(self.bad_row(
                "runs",
                id,
                format!("the state column `{state}` or id disagrees with the record"),
            ));
        }
        Ok(run)
    }

    fn run_rows(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows: Vec<(String, String, String)> = self.read(|c| {
            let mut stmt = c.prepare_cached(sql).map_err(sqlite_err(&self.path))?;
            stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sqlite_err(&self.path))
        })?;
        rows.iter()
            .map(|(id, state, record)| self.decode_run(id, state, record))
            .collect()
    }
}

impl RunStore for SqliteRunStore {
    fn start(&self, run: &RunRecord, steps: &[StepRecord]) -> Ack<()> {
        self.start_with(run, steps, true)
    }

    fn record_step(&self, run_id: &str, step: &StepRecord, run_state: Option<RunState>) -> Ack<()> {
        self.record_step_with(run_id, step, run_state, true)
    }

    fn set_state(&self, run_id: &str, state: RunState) -> Ack<()> {
        self.set_state_with(run_id, state, true)
    }

    fn shares_audit_commits(&self) -> bool {
        matches!(self.writes, Writes::Audit(_))
    }

    fn start_with(&self, run: &RunRecord, steps: &[StepRecord], durable: bool) -> Ack<()> {
        let op = Op::Start {
            run: run.clone(),
            steps: steps.to_vec(),
        };
        self.queue(op, durable)
    }

    fn record_step_with(
        &self,
        run_id: &str,
        step: &StepRecord,
        run_state: Option<RunState>,
        durable: bool,
    ) -> Ack<()> {
        let op = Op::Step {
            run_id: run_id.to_string(),
            step: step.clone(),
            run_state,
        };
        self.queue(op, durable)
    }

    fn writes_through(&self, log: &AuditLog) -> bool {
        matches!(&self.writes, Writes::Audit(own) if own.is_same(log))
    }

    fn start_write(&self, run: &RunRecord, steps: &[StepRecord]) -> Option<RowWrite> {
        self.row_write(Op::Start {
            run: run.clone(),
            steps: steps.to_vec(),
        })
    }

    fn state_write(&self, run_id: &str, state: RunState) -> Option<RowWrite> {
        self.row_write(Op::State {
            run_id: run_id.to_string(),
            state,
            after_done: None,
        })
    }

    fn end_write_after(&self, run_id: &str, state: RunState, step: &str) -> Option<RowWrite> {
        self.row_write(Op::State {
            run_id: run_id.to_string(),
            state,
            after_done: Some(step.to_string()),
        })
    }

    fn step_after_entry(&self, run_id: &str) -> Option<StepAfterEntry> {
        if !self.shares_audit_commits() {
            return None;
        }
        let path = self.path.clone();
        let run_id = run_id.to_string();
        Some(std::sync::Arc::new(move |mut step: StepRecord| {
            let table = RunsTable { path: path.clone() };
            let run_id = run_id.clone();
            Box::new(move |tx: &Transaction<'_>, seq: u64| {
                step.audit_seqs.push(seq);
                step.updated_ms = now_ms();
                let op = Op::Step {
                    run_id,
                    step,
                    run_state: None,
                };
                table.write_one(tx, &op)
            })
        }))
    }

    fn set_state_with(&self, run_id: &str, state: RunState, durable: bool) -> Ack<()> {
        let op = Op::State {
            run_id: run_id.to_string(),
            state,
            after_done: None,
        };
        self.queue(op, durable)
    }

    fn journal(&self, run_id: &str) -> Result<Option<Journal>, StoreError> {
        let mut runs = self.run_rows(
            "SELECT id, state, record FROM runs WHERE id = ?1",
            params![run_id],
        )?;
        let Some(run) = runs.pop() else {
            return Ok(None);
        };
        let rows: Vec<(String, String, String)> = self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT step, state, record FROM run_steps WHERE run_id = ?1 ORDER BY position",
                )
                .map_err(sqlite_err(&self.path))?;
            stmt.query_map(params![run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sqlite_err(&self.path))
        })?;
        let mut steps = Vec::with_capacity(rows.len());
        for (step, state, record) in rows {
            let key = format!("{run_id}/{step}");
            let s: StepRecord = serde_json::from_str(&record).map_err(|e| {
                self.bad_row("run_steps", &key, format!("record does not decode: {e}"))
            })?;
            if StepState::parse(&state) != Some(s.state) || s.step != step {
                return Err(self.bad_row(
                    "run_steps",
                    &key,
                    format!("the state column `{state}` or step id disagrees with the record"),
                ));
            }
            steps.push(s);
        }
        Ok(Some(Journal { run, steps }))
    }

    fn runs(&self, state: Option<RunState>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let limit = i64::try_from(limit.min(MAX_LIST)).unwrap_or(0);
        match state {
            Some(s) => self.run_rows(
                "SELECT id, state, record FROM runs WHERE state = ?1 ORDER BY created_ms, id LIMIT ?2",
                params![s.as_str(), limit],
            ),
            None => self.run_rows(
                "SELECT id, state, record FROM runs ORDER BY created_ms, id LIMIT ?1",
                params![limit],
            ),
        }
    }

    fn unfinished(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.run_rows(
            "SELECT id, state, record FROM runs WHERE state IN ('running', 'waiting', 'compensating') \
             ORDER BY created_ms, id",
            [],
        )
    }
}

/// Whether the database at `path` has the journal's `runs` table.
fn has_runs_table(path: &Path) -> Result<bool, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err(path))?;
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(sqlite_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn run(id: &str) -> RunRecord {
        RunRecord {
            id: id.into(),
            workflow: "order".into(),
            plan_hash: "sha256:00".into(),
            state: RunState::Running,
            principal: "alice".into(),
            tenant: None,
            input: json!({"order": "o-1"}),
            input_hash: "sha256:11".into(),
            pins: BTreeMap::from([(
                "reserve".to_string(),
                super::super::runs::Pin {
                    component: "sha256:aa".into(),
                    policy: "sha256:bb".into(),
                },
            )]),
            created_ms: 1,
            updated_ms: 1,
        }
    }

    fn step(id: &str, position: u32) -> StepRecord {
        StepRecord {
            step: id.into(),
            position,
            state: StepState::Pending,
            attempts: 0,
            outcome: None,
            output: None,
            audit_seqs: Vec::new(),
            updated_ms: 1,
        }
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "warden-runs-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn a_journaled_run_and_its_steps_survive_reopening_in_plan_order() {
        let d = dir();
        {
            let store = SqliteRunStore::open(&d).expect("open");
            store
                .start(&run("r1"), &[step("b", 1), step("a", 0)])
                .wait()
                .expect("start");
            let mut done = step("a", 0);
            done.state = StepState::Done;
            done.attempts = 1;
            done.outcome = Some("ok".into());
            done.output = Some(json!({"reservation": "x"}));
            done.audit_seqs = vec![7];
            store
                .record_step("r1", &done, Some(RunState::Waiting))
                .wait()
                .expect("step");
        }
        let store = SqliteRunStore::open(&d).expect("reopen");
        let j = store.journal("r1").expect("read").expect("exists");
        assert_eq!(j.run.state, RunState::Waiting);
        assert_eq!(j.run.pins, run("r1").pins);
        let ids: Vec<&str> = j.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(j.steps[0].output, Some(json!({"reservation": "x"})));
        assert_eq!(j.steps[0].audit_seqs, [7]);
        assert!(store.journal("nope").expect("read").is_none());
    }

    #[test]
    fn one_run_id_never_names_two_runs_and_the_refusal_spares_its_batch() {
        let d = dir();
        let store = SqliteRunStore::open(&d).expect("open");
        store
            .start(&run("r1"), &[step("a", 0)])
            .wait()
            .expect("first");
        let dup = store.start(&run("r1"), &[step("zzz", 0)]);
        let other = store.start(&run("r2"), &[step("a", 0)]);
        let e = dup.wait().expect_err("duplicate");
        assert!(e.to_string().contains("exists already"), "{e}");
        other.wait().expect("the neighbour commits");
        let j = store.journal("r1").expect("read").expect("exists");
        assert_eq!(j.steps.len(), 1, "no partial rows from the refused start");
    }

    #[test]
    fn listings_filter_by_state_and_unfinished_runs_are_found_for_resume() {
        let d = dir();
        let store = SqliteRunStore::open(&d).expect("open");
        for (id, state) in [
            ("r1", RunState::Completed),
            ("r2", RunState::Running),
            ("r3", RunState::NeedsAttention),
            ("r4", RunState::Waiting),
            ("r5", RunState::Compensated),
        ] {
            store.start(&run(id), &[]).wait().expect("start");
            store.set_state(id, state).wait().expect("state");
        }
        let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(store.unfinished().expect("read")), ["r2", "r4"]);
        assert_eq!(
            ids(store
                .runs(Some(RunState::NeedsAttention), 10)
                .expect("read")),
            ["r3"]
        );
        assert_eq!(store.runs(None, 2).expect("read").len(), 2);
        assert!(store.set_state("ghost", RunState::Running).wait().is_err());
    }

    #[test]
    fn a_row_that_does_not_decode_is_an_error_naming_it() {
        let d = dir();
        let store = SqliteRunStore::open(&d).expect("open");
        store
            .start(&run("r1"), &[step("a", 0)])
            .wait()
            .expect("start");
        let conn = Connection::open(d.join(RUNS_FILE)).expect("raw");
        conn.execute("UPDATE run_steps SET record = '{' WHERE step = 'a'", [])
            .expect("corrupt");
        let e = store.journal("r1").expect_err("bad row");
        let text = format!("{e} {e:?}");
        assert!(
            text.contains("run_steps") && text.contains("r1/a"),
            "{text}"
        );
        conn.execute("UPDATE runs SET state = 'bogus'", [])
            .expect("corrupt");
        let e = store.runs(None, 10).expect_err("bad run row");
        assert!(format!("{e:?}").contains("bogus"), "{e:?}");
    }
}
