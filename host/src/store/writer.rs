//! The group-commit writer shared by every durable table: one dedicated
//! thread per database file owns the writing connection, takes every job
//! queued (up to the table's batch bound), writes them in one transaction,
//! commits (one WAL fsync under `synchronous=FULL`) and only then answers
//! each caller. Concurrent callers share fsyncs; none is answered before its
//! own write is durable.
//!
//! What a job writes is the [`Table`]'s business; this module owns the
//! thread, the queue, the batching, the transaction and the answer
//! discipline. It must never answer a job before its transaction committed,
//! and never run on an async worker (callers await an [`Ack`]).
//!
//! A table may mark a batch as not needing its own fsync
//! ([`Table::durable`] false: every job in it is *deferred*): the writer
//! commits it under `synchronous=NORMAL`, which in WAL mode appends the
//! transaction to the WAL without syncing it. The next durable commit's
//! fsync of the same WAL file makes it durable too (the WAL is one ordered
//! file; recovery keeps a prefix of it), so a deferred write is never
//! durable later than the next durable write queued after it, and a
//! process kill (SIGKILL) loses neither: only an OS crash or power loss can
//! drop a deferred write that no durable commit followed.

use super::StoreError;
use rusqlite::{Connection, Transaction};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::oneshot;

/// Why the writer woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Jobs arrived.
    Jobs,
    /// [`Table::due`] passed with no job queued.
    Due,
    /// Every handle is gone: the last batch before the thread ends.
    Stopping,
}

/// A table (or set of tables) written by a [`Writer`].
pub(crate) trait Table: Send + 'static {
    /// One queued write, carrying its caller's reply channel.
    type Job: Send + 'static;

    /// Most jobs one transaction takes. Bounds the latency a backlog adds to
    /// its first caller and the size of one WAL write.
    fn max_batch(&self) -> usize;

    /// When the writer must wake up without jobs (a timed checkpoint), if ever.
    fn due(&self) -> Option<Instant> {
        None
    }

    /// Writes `jobs` inside `tx` (jobs it refuses outright it may answer and
    /// drop here). Returns whether anything was written: `false` rolls the
    /// empty transaction back instead of committing it.
    fn write(
        &mut self,
        tx: &Transaction<'_>,
        jobs: &mut Vec<Self::Job>,
        wake: Wake,
    ) -> Result<bool, StoreError>;

    /// Whether this batch's commit must be synced to disk before its jobs
    /// are answered (`synchronous=FULL`). `false` only when every job in it
    /// is deferred: it is committed without an fsync and becomes durable
    /// with the next durable commit (see the module header). Asked before
    /// [`Table::write`], on every batch; an empty batch (a timed or final
    /// wake) must be durable.
    fn durable(&mut self, _jobs: &[Self::Job]) -> bool {
        true
    }

    /// Answers every job left in `jobs` (and drains it) with the result of
    /// the commit; returns true to stop the writer after this batch.
    fn answer(&mut self, jobs: &mut Vec<Self::Job>, committed: Result<bool, StoreError>) -> bool;
}

/// Callers waiting for their commit: queue depth and total wait.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    /// Jobs handed to the writer and not yet answered (or given up).
    pub in_flight: AtomicU64,
    /// Nanoseconds callers have waited, summed.
    pub wait_nanos: AtomicU64,
}

/// Counts a job as in flight until its [`Ack`] is dropped.
struct Waiting(Arc<Waits>, Instant);

impl Waiting {
    fn enter(waits: &Arc<Waits>) -> Waiting {
        waits.in_flight.fetch_add(1, Ordering::Relaxed);
        Waiting(waits.clone(), Instant::now())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let waited = u64::try_from(self.1.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.wait_nanos.fetch_add(waited, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer to one durable write: resolves once the write is committed
/// (or failed). Await it from async code, or [`Ack::wait`] outside a runtime.
/// Dropping it does not cancel the write.
#[must_use = "the write is durable only once the Ack resolves Ok"]
pub struct Ack<T> {
    state: AckState<T>,
    _waiting: Option<Waiting>,
}

enum AckState<T> {
    Queued(oneshot::Receiver<Result<T, StoreError>>),
    Failed(Option<StoreError>),
}

impl<T> Ack<T> {
    /// An answer known before anything was queued (a refused job).
    pub fn failed(e: StoreError) -> Ack<T> {
        Ack {
            state: AckState::Failed(Some(e)),
            _waiting: None,
        }
    }

    /// An answer that will come through `rx` (for implementations that
    /// answer from a task or thread of their own).
    pub fn from_receiver(rx: oneshot::Receiver<Result<T, StoreError>>) -> Ack<T> {
        Ack {
            state: AckState::Queued(rx),
            _waiting: None,
        }
    }

    /// Blocks until the write is committed. Must not be called from inside
    /// an async runtime (use `.await` there, or call it on the blocking pool).
    pub fn wait(self) -> Result<T, StoreError> {
        match self.state {
            AckState::Queued(rx) => rx.blocking_recv().map_err(|_| StoreError::Closed)?,
            AckState::Failed(e) => Err(e.unwrap_or(StoreError::Closed)),
        }
    }
}

impl<T> Future for Ack<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            AckState::Queued(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(r) => Poll::Ready(r.unwrap_or(Err(StoreError::Closed))),
                Poll::Pending => Poll::Pending,
            },
            AckState::Failed(e) => Poll::Ready(Err(e.take().unwrap_or(StoreError::Closed))),
        }
    }
}

/// The handle to a writer thread. Dropping it lets the thread write its
/// last batch ([`Wake::Stopping`]) and waits for it to end.
pub(crate) struct Writer<J> {
    tx: Option<mpsc::Sender<J>>,
    thread: Option<std::thread::JoinHandle<()>>,
    waits: Arc<Waits>,
}

impl<J: Send + 'static> Writer<J> {
    /// Starts the thread `name`, which owns `conn` (opened on `path`).
    pub fn spawn<T: Table<Job = J>>(
        name: &str,
        path: &Path,
        conn: Connection,
        table: T,
    ) -> Result<Writer<J>, StoreError> {
        let (tx, rx) = mpsc::channel();
        let owned = path.to_owned();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(conn, table, &rx, &owned))
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            waits: Arc::new(Waits::default()),
        })
    }

    /// Queues the job `make` builds around its reply channel; the [`Ack`]
    /// resolves with the writer's answer. A stopped writer answers
    /// [`StoreError::Closed`].
    pub fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> J,
    ) -> Ack<T> {
        let waiting = Waiting::enter(&self.waits);
        let (reply, rx) = oneshot::channel();
        let Some(tx) = &self.tx else {
            return Ack::failed(StoreError::Closed);
        };
        if tx.send(make(reply)).is_err() {
            return Ack::failed(StoreError::Closed);
        }
        Ack {
            state: AckState::Queued(rx),
            _waiting: Some(waiting),
        }
    }

    /// Callers waiting right now, and their total wait so far (ns).
    pub fn waits(&self) -> (u64, u64) {
        (
            self.waits.in_flight.load(Ordering::Relaxed),
            self.waits.wait_nanos.load(Ordering::Relaxed),
        )
    }
}

impl<J> Drop for Writer<J> {
    fn drop(&mut self) {
        // Closing the queue makes the thread write its last batch and end.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread's loop.
fn run<T: Table>(mut conn: Connection, mut table: T, rx: &mpsc::Receiver<T::Job>, path: &Path) {
    let max = table.max_batch().max(1);
    let mut batch: Vec<T::Job> = Vec::with_capacity(max);
    // The connection is opened with synchronous=FULL (database::open).
    let mut synced = true;
    loop {
        let first = match table.due() {
            Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(job) => Ok(job),
                Err(mpsc::RecvTimeoutError::Timeout) => Err(Wake::Due),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(Wake::Stopping),
            },
            None => rx.recv().map_err(|_| Wake::Stopping),
        };
        let wake = match first {
            Ok(job) => {
                batch.push(job);
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                Wake::Jobs
            }
            Err(wake) => wake,
        };
        let durable = table.durable(&batch);
        let committed = match set_synchronous(&conn, &mut synced, durable, path) {
            Ok(()) => write_batch(&mut conn, &mut table, &mut batch, wake, path),
            Err(e) => Err(e),
        };
        let stop = table.answer(&mut batch, committed);
        batch.clear();
        if stop || wake == Wake::Stopping {
            return;
        }
    }
}

/// Switches the connection between `synchronous=FULL` (a durable commit:
/// the WAL is synced before the commit returns) and `NORMAL` (a deferred
/// commit: appended to the WAL, synced by the next durable commit).
fn set_synchronous(
    conn: &Connection,
    synced: &mut bool,
    durable: bool,
    path: &Path,
) -> Result<(), StoreError> {
    if *synced != durable {
        conn.execute_batch(if durable {
            "PRAGMA synchronous=FULL"
        } else {
            "PRAGMA synchronous=NORMAL"
        })
        .map_err(super::sqlite_err(path))?;
        *synced = durable;
    }
    Ok(())
}

/// One transaction: the table writes, then commit (or roll back if empty).
fn write_batch<T: Table>(
    conn: &mut Connection,
    table: &mut T,
    batch: &mut Vec<T::Job>,
    wake: Wake,
    path: &Path,
) -> Result<bool, StoreError> {
    let tx = conn.transaction().map_err(super::sqlite_err(path))?;
    let wrote = table.write(&tx, batch, wake)?;
    if wrote {
        tx.commit().map_err(super::sqlite_err(path))?;
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// Appends numbers to `n (v)`; a negative number fails its whole batch.
    struct Numbers {
        batches: Arc<Mutex<Vec<usize>>>,
    }

    struct Job(i64, oneshot::Sender<Result<(), StoreError>>);

    impl Table for Numbers {
        type Job = Job;
        fn max_batch(&self) -> usize {
            8
        }
        fn write(
            &mut self,
            tx: &Transaction<'_>,
            jobs: &mut Vec<Job>,
            _: Wake,
        ) -> Result<bool, StoreError> {
            for Job(v, _) in jobs.iter() {
                tx.execute("INSERT INTO n (v) VALUES (?1)", [v])
                    .map_err(super::super::sqlite_err(Path::new("n.db")))?;
                if *v < 0 {
                    return Err(StoreError::Closed);
                }
            }
            self.batches
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(jobs.len());
            Ok(!jobs.is_empty())
        }
        fn answer(&mut self, jobs: &mut Vec<Job>, committed: Result<bool, StoreError>) -> bool {
            let reason = committed.err().map(|e| e.to_string());
            for Job(_, reply) in jobs.drain(..) {
                let _ = reply.send(match &reason {
                    None => Ok(()),
                    Some(r) => Err(StoreError::CommitFailed {
                        path: "n.db".into(),
                        reason: r.clone(),
                    }),
                });
            }
            false
        }
    }

    fn numbers(dir: &Path) -> (Writer<Job>, Arc<Mutex<Vec<usize>>>, PathBuf) {
        let path = dir.join("n.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE n (v INTEGER);")
            .expect("schema");
        let batches = Arc::new(Mutex::new(Vec::new()));
        let table = Numbers {
            batches: batches.clone(),
        };
        let w = Writer::spawn("test-writer", &path, conn, table).expect("spawn");
        (w, batches, path)
    }

    fn count(path: &Path) -> i64 {
        Connection::open(path)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM n", [], |r| r.get(0)))
            .expect("count")
    }

    #[test]
    fn every_caller_is_answered_after_its_row_is_committed_in_shared_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, batches, path) = numbers(dir.path());
        let acks: Vec<Ack<()>> = (0..100).map(|i| w.submit(|r| Job(i, r))).collect();
        for ack in acks {
            ack.wait().expect("committed");
        }
        assert_eq!(count(&path), 100);
        let batches = batches.lock().expect("batches").clone();
        assert_eq!(batches.iter().sum::<usize>(), 100);
        assert!(
            batches.iter().all(|b| *b <= 8),
            "a batch crossed max_batch: {batches:?}"
        );
        assert_eq!(w.waits().0, 0, "nothing left in flight");
    }

    #[test]
    fn a_failed_batch_answers_every_caller_with_the_error_and_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, _, path) = numbers(dir.path());
        let e = w.submit(|r| Job(-1, r)).wait().expect_err("fails");
        assert!(matches!(e, StoreError::CommitFailed { .. }), "{e}");
        assert_eq!(count(&path), 0);
        w.submit(|r| Job(1, r)).wait().expect("the writer goes on");
        assert_eq!(count(&path), 1);
    }

    #[tokio::test]
    async fn an_ack_is_awaitable_and_a_stopped_writer_answers_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut w, _, _) = numbers(dir.path());
        w.submit(|r| Job(5, r)).await.expect("awaited");
        drop(w.tx.take());
        let e = w.submit(|r| Job(6, r)).await.expect_err("closed");
        assert!(matches!(e, StoreError::Closed), "{e}");
    }
}
