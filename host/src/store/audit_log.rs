//! The durable audit log: one writer thread, group commit, signed checkpoints.
//!
//! `append` hands the entry to the writer thread and waits. The writer takes
//! everything queued (up to [`MAX_BATCH`]), links the entries, inserts them in
//! one transaction, commits (one WAL fsync under `synchronous=FULL`) and only
//! then answers every waiter. Concurrent invocations therefore share fsyncs,
//! and no response is ever sent for an entry that is not on disk.

use super::anchor::{read_anchor, write_anchor};
use super::audit_read::{AuditReader, EntryFilter, ExportSummary};
use super::{StoreError, now_ms, open_connection, sqlite_err, to_sql_int};
use crate::audit::{AuditEntry, Checkpoint, Hash256, NewEntry, Problem, ProblemKind, VerifyReport};
use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most entries one transaction takes. Bounds the latency a large backlog adds
/// to the first waiter and the size of one WAL write.
pub const MAX_BATCH: usize = 4096;

/// How many trailing entries `open` re-verifies to detect a torn tail.
pub const TAIL_CHECK: u64 = 1024;

/// When the writer signs a checkpoint (it also signs one at clean shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many entries since the last checkpoint (0 = never by count).
    pub every_entries: u64,
    /// After this long since the last checkpoint, if there are new entries.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    /// By default: every 10,000 entries or 60 seconds.
    fn default() -> Self {
        CheckpointPolicy {
            every_entries: 10_000,
            every: Duration::from_secs(60),
        }
    }
}

/// The request's input and output JSON bytes (canonical JSON), stored beside the
/// chain keyed by SHA-256. Pass `None` for `payloads = "hash-only"` capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payloads {
    /// Canonical input JSON; must hash to the entry's `input_sha256`.
    pub input: Option<Vec<u8>>,
    /// Canonical output (or error) JSON; must hash to the entry's `output_sha256`.
    pub output: Option<Vec<u8>>,
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its entry hash.
    pub hash: Hash256,
}

/// Commit statistics, for metrics and the group-commit tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendStats {
    /// Transactions committed that held at least one entry.
    pub commits: u64,
    /// Entries committed.
    pub entries: u64,
    /// Appends waiting for their commit right now (queue depth).
    pub in_flight: u64,
    /// Total time appenders have spent waiting for their entry to be
    /// committed (from handing it to the writer until it is durable), in
    /// nanoseconds, summed over every append so far.
    pub wait_nanos: u64,
    /// Largest batch.
    pub max_batch: u64,
    /// `histogram[i]` counts batches of size in `(2^(i-1), 2^i]` (`[0]`: size 1).
    pub histogram: Vec<u64>,
}

// Each message is moved once through the channel; boxing would add an allocation per append.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append {
        entry: NewEntry,
        payloads: Payloads,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<Checkpoint, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

const HISTOGRAM_BUCKETS: usize = 14;

struct Stats {
    commits: AtomicU64,
    entries: AtomicU64,
    max_batch: AtomicU64,
    in_flight: AtomicU64,
    wait_nanos: AtomicU64,
    histogram: [AtomicU64; HISTOGRAM_BUCKETS],
}

impl Stats {
    fn record(&self, batch: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.entries.fetch_add(batch, Ordering::Relaxed);
        self.max_batch.fetch_max(batch, Ordering::Relaxed);
        let bucket = (64 - (batch.max(1) - 1).leading_zeros()) as usize;
        self.histogram[bucket.min(HISTOGRAM_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts an append as in flight until it returns (or its future is dropped).
struct InFlight<'a>(&'a Stats, Instant);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(stats, Instant::now())
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let waited = u64::try_from(self.1.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.wait_nanos.fetch_add(waited, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Inner {
    path: PathBuf,
    tx: Option<mpsc::Sender<Msg>>,
    writer: Option<std::thread::JoinHandle<()>>,
    head: Arc<Mutex<(u64, Hash256)>>,
    stats: Arc<Stats>,
    reader: Mutex<AuditReader>,
    signer_public: ed25519_dalek::VerifyingKey,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel makes the writer sign a final checkpoint and stop.
        drop(self.tx.take());
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

/// The durable, hash-chained audit log. Cheap to clone; every clone appends
/// to the same chain through the same writer.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.inner.path)
            .field("head", &self.head())
            .finish()
    }
}

/// Takes the exclusive writer lock `<db>.lock` (released when the writer
/// thread ends, or by the OS if the process dies).
fn acquire_writer_lock(db: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::Io {
            path: lock_path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: db.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
            path: lock_path,
            source,
        }),
    }
}

/// What [`check_tail`] verified at open.
struct Recovered {
    head_seq: u64,
    head_hash: Hash256,
    /// Largest size among the stored checkpoints.
    last_cp_size: Option<u64>,
    /// The newest stored checkpoint signed by this host's key whose head the
    /// verified chain matches, at or after the trusted point: the anchor to keep.
    newest_trusted: Option<Checkpoint>,
}

/// Verifies, before anything is signed, that the database extends a
/// checkpoint this host trusts, and re-checks the tail.
///
/// The trusted point is `anchor` (the anchor file, signature already
/// checked) or, without one (a data directory from an older version), the
/// newest stored checkpoint whose signature verifies with `signer`, or the
/// empty chain. Every entry from there (and at least the last
/// [`TAIL_CHECK`]) to the head is recomputed and its link checked, streaming.
fn check_tail(
    conn: &Connection,
    path: &Path,
    signer: &SigningKey,
    anchor: Option<(&Path, &Checkpoint)>,
) -> Result<Recovered, StoreError> {
    let reader = AuditReader::from_connection(open_connection(path, false)?, path);
    let torn = |seq, kind, detail: String| StoreError::TornTail {
        path: path.to_owned(),
        problem: Problem { seq, kind, detail },
    };
    let not_extending =
        |(file, a): (&Path, &Checkpoint), found: String| StoreError::NotExtendingAnchor {
            db: path.to_owned(),
            anchor: file.to_owned(),
            size: a.size,
            head: a.head_hash,
            found,
        };
    let max_seq: Option<i64> = conn
        .query_row("SELECT MAX(seq) FROM audit_entries", [], |r| r.get(0))
        .map_err(sqlite_err(path))?;
    let head_seq = max_seq.map_or(0, |s| u64::try_from(s).unwrap_or(0));
    let checkpoints = match reader.checkpoints() {
        Ok(c) => c,
        Err(StoreError::Corrupt { detail, .. }) => {
            return Err(torn(0, ProblemKind::BadCheckpointSignature, detail));
        }
        Err(e) => return Err(e),
    };
    let vk = signer.verifying_key();
    let own_key = crate::audit::key_id(&vk);
    let trusted: Option<Checkpoint> = match anchor {
        Some((_, a)) => Some(a.clone()),
        None => checkpoints
            .iter()
            .filter(|c| c.key_id == own_key && c.size <= head_seq && c.verify(&vk).is_ok())
            .max_by_key(|c| (c.size, c.at_ms))
            .cloned(),
    };
    if let Some(a) = anchor
        && a.1.size > head_seq
    {
        return Err(not_extending(
            a,
            format!(
                "the database holds {head_seq} entries, fewer than the {} the anchor covers \
                 (entries were cut off)",
                a.1.size
            ),
        ));
    }
    let trusted_size = trusted.as_ref().map_or(0, |c| c.size);
    let from = head_seq.saturating_sub(TAIL_CHECK).min(trusted_size).max(1);
    // Hashes of the entries that checkpoints (and the trusted point) name.
    let mut hash_at: std::collections::BTreeMap<u64, Hash256> = Default::default();
    hash_at.insert(0, Hash256::ZERO);
    let named: std::collections::BTreeSet<u64> = checkpoints
        .iter()
        .map(|c| c.size)
        .chain([trusted_size])
        .filter(|s| *s >= from)
        .collect();
    let mut expected = from;
    let mut prev: Option<Hash256> = None;
    let mut scratch = Vec::new();
    if head_seq > 0 {
        let scanned = reader.scan_from(from, |e| {
            if e.recompute_hash(&mut scratch) != e.hash {
                return Err(torn(
                    expected,
                    ProblemKind::HashMismatch,
                    format!("entry at position {expected} does not match its hash"),
                ));
            }
            if e.seq != expected {
                return Err(torn(
                    expected,
                    ProblemKind::Gap,
                    format!("expected entry {expected}, found {}", e.seq),
                ));
            }
            if prev.is_some_and(|p| p != e.prev_hash)
                || (e.seq == 1 && e.prev_hash != Hash256::ZERO)
            {
                return Err(torn(
                    expected,
                    ProblemKind::BrokenLink,
                    "prev_hash does not link".into(),
                ));
            }
            if named.contains(&e.seq) {
                hash_at.insert(e.seq, e.hash);
            }
            prev = Some(e.hash);
            expected += 1;
            Ok(())
        });
        match scanned {
            Ok(()) => {}
            Err(StoreError::Corrupt { detail, .. }) => {
                return Err(torn(expected, ProblemKind::Malformed, detail));
            }
            Err(e) => return Err(e),
        }
    }
    let head_hash = prev.unwrap_or(Hash256::ZERO);
    if head_seq > 0 && expected != head_seq + 1 {
        return Err(torn(
            head_seq,
            ProblemKind::Gap,
            "tail does not end at the head".into(),
        ));
    }
    if let Some(a) = anchor {
        match hash_at.get(&a.1.size) {
            Some(h) if *h == a.1.head_hash => {}
            found => {
                let found = found.map_or_else(|| "nothing".to_owned(), ToString::to_string);
                return Err(not_extending(
                    a,
                    format!(
                        "entry {} in the database has hash {found} (the history was rewritten)",
                        a.1.size
                    ),
                ));
            }
        }
        if !checkpoints.contains(a.1) {
            let newest = checkpoints
                .iter()
                .map(|c| c.size)
                .max()
                .map_or_else(|| "none".to_owned(), |n| n.to_string());
            return Err(not_extending(
                a,
                format!(
                    "the database no longer holds that checkpoint (its newest covers {newest} \
                     entries): a checkpoint was deleted"
                ),
            ));
        }
    }
    let last_cp_size = checkpoints.iter().map(|c| c.size).max();
    if let Some(cp) = checkpoints.iter().max_by_key(|c| c.size)
        && cp.size > head_seq
    {
        return Err(torn(
            head_seq + 1,
            ProblemKind::Truncated,
            format!(
                "checkpoint covers {} entries, the chain ends at {head_seq}",
                cp.size
            ),
        ));
    }
    let mut newest_trusted: Option<&Checkpoint> = None;
    for cp in checkpoints.iter().filter(|c| c.size >= from) {
        if hash_at.get(&cp.size).is_some_and(|h| *h != cp.head_hash) {
            return Err(torn(
                cp.size,
                ProblemKind::CheckpointMismatch,
                format!(
                    "checkpoint over {} entries names head {}, the stored entry differs",
                    cp.size, cp.head_hash
                ),
            ));
        }
        if cp.key_id != own_key || cp.size < trusted_size {
            continue;
        }
        if let Err(e) = cp.verify(&vk) {
            return Err(torn(
                cp.size,
                ProblemKind::BadCheckpointSignature,
                e.to_string(),
            ));
        }
        if newest_trusted.is_none_or(|n| (cp.size, cp.at_ms) > (n.size, n.at_ms)) {
            newest_trusted = Some(cp);
        }
    }
    Ok(Recovered {
        head_seq,
        head_hash,
        last_cp_size,
        newest_trusted: newest_trusted.cloned(),
    })
}

impl AuditLog {
    /// Opens or creates the log at `path`, recovers the chain head, verifies
    /// that the database extends the trusted checkpoint in
    /// [`anchor_path`](super::anchor_path)`(path)` (every entry from it to the
    /// head, and at least the last [`TAIL_CHECK`]), and starts the writer
    /// thread. Nothing is signed before that check passed.
    ///
    /// A tail that does not verify is [`StoreError::TornTail`]; a database
    /// that no longer extends the anchor (cut off, rewritten, its checkpoint
    /// deleted) is [`StoreError::NotExtendingAnchor`]; both are reported,
    /// never silently accepted or repaired. Without an anchor file (a data
    /// directory from a version before it), the newest stored checkpoint
    /// whose signature verifies with `signer` becomes the anchor, and a
    /// warning says so.
    pub fn open(
        path: &Path,
        signer: SigningKey,
        policy: CheckpointPolicy,
    ) -> Result<AuditLog, StoreError> {
        let lock = acquire_writer_lock(path)?;
        let conn = open_connection(path, true)?;
        let anchor_file = super::anchor_path(path);
        let anchor = read_anchor(&anchor_file)?;
        if let Some(a) = &anchor {
            a.verify(&signer.verifying_key())
                .map_err(|e| StoreError::BadAnchor {
                    anchor: anchor_file.clone(),
                    reason: e.to_string(),
                })?;
        }
        let recovered = check_tail(
            &conn,
            path,
            &signer,
            anchor.as_ref().map(|a| (anchor_file.as_path(), a)),
        )?;
        match (&anchor, &recovered.newest_trusted) {
            (None, Some(cp)) => {
                write_anchor(&anchor_file, cp)?;
                tracing::warn!(
                    "{}: no trusted-checkpoint file; created it from the database's newest \
                     checkpoint signed by this host (size {}, head {}). Expected once after \
                     upgrading from a version without it; otherwise the file was removed \
                     (docs/operations.md, Backups)",
                    anchor_file.display(),
                    cp.size,
                    cp.head_hash
                );
            }
            // The anchor lagged (a crash between a checkpoint's commit and
            // the anchor write): catch up to the verified newer checkpoint.
            (Some(a), Some(cp)) if a != cp => write_anchor(&anchor_file, cp)?,
            _ => {}
        }
        let (head_seq, head_hash, last_cp) = (
            recovered.head_seq,
            recovered.head_hash,
            recovered.last_cp_size,
        );
        let reader = AuditReader::from_connection(open_connection(path, false)?, path);
        let head = Arc::new(Mutex::new((head_seq, head_hash)));
        let stats = Arc::new(Stats {
            commits: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            max_batch: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            wait_nanos: AtomicU64::new(0),
            histogram: Default::default(),
        });
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            _lock: lock,
            conn,
            path: path.to_owned(),
            anchor_path: anchor_file,
            signer_public: signer.verifying_key(),
            signer,
            policy,
            head_seq,
            head_hash,
            last_cp_size: last_cp.unwrap_or(0),
            has_checkpoint: last_cp.is_some(),
            last_cp_at: Instant::now(),
            shared_head: head.clone(),
            stats: stats.clone(),
            scratch: Vec::with_capacity(1024),
        };
        let signer_public = writer.signer_public;
        let handle = std::thread::Builder::new()
            .name("warden-audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                tx: Some(tx),
                writer: Some(handle),
                head,
                stats,
                reader: Mutex::new(reader),
                signer_public,
            }),
        })
    }

    fn send(&self, msg: Msg) -> Result<(), StoreError> {
        self.inner
            .tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(msg)
            .map_err(|_| StoreError::Closed)
    }

    /// Appends one entry; returns only after its transaction is committed.
    pub async fn append(
        &self,
        entry: NewEntry,
        payloads: Payloads,
    ) -> Result<Appended, StoreError> {
        let _waiting = InFlight::enter(&self.inner.stats);
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Append {
            entry,
            payloads,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// [`append`](Self::append) for callers outside an async runtime (must not be
    /// called from inside one).
    pub fn append_blocking(
        &self,
        entry: NewEntry,
        payloads: Payloads,
    ) -> Result<Appended, StoreError> {
        let _waiting = InFlight::enter(&self.inner.stats);
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Append {
            entry,
            payloads,
            reply,
        })?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Signs and commits a checkpoint over the current head now.
    pub async fn checkpoint_now(&self) -> Result<Checkpoint, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Checkpoint { reply })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes the final checkpoint and stops the writer. Appends through other
    /// clones fail with [`StoreError::Closed`] afterwards.
    pub async fn close(self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Close { reply })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Sequence number and hash of the last committed entry (`(0, ZERO)` when empty).
    pub fn head(&self) -> (u64, Hash256) {
        *self
            .inner
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Transactions committed by this process that held entries.
    pub fn commit_count(&self) -> u64 {
        self.inner.stats.commits.load(Ordering::Relaxed)
    }

    /// Commit and batch-size statistics since open.
    pub fn stats(&self) -> AppendStats {
        let s = &self.inner.stats;
        AppendStats {
            commits: s.commits.load(Ordering::Relaxed),
            entries: s.entries.load(Ordering::Relaxed),
            max_batch: s.max_batch.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            wait_nanos: s.wait_nanos.load(Ordering::Relaxed),
            histogram: s
                .histogram
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn with_reader<T>(&self, f: impl FnOnce(&AuditReader) -> T) -> T {
        let r = self
            .inner
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&r)
    }

    /// Committed entries with `seq >= from` matching `filter`, at most `limit`.
    pub fn entries(
        &self,
        from: u64,
        limit: usize,
        filter: &EntryFilter,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.with_reader(|r| r.entries(from, limit, filter))
    }

    /// One bounded page of committed entries (see [`AuditReader::page`]).
    pub fn page(
        &self,
        from: u64,
        limit: usize,
        max_scan: usize,
        filter: &EntryFilter,
    ) -> Result<super::EntryPage, StoreError> {
        self.with_reader(|r| r.page(from, limit, max_scan, filter))
    }

    /// Every committed checkpoint.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.with_reader(AuditReader::checkpoints)
    }

    /// A stored payload by hash.
    pub fn payload(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_reader(|r| r.payload(hash))
    }

    /// Deletes payloads stored before `older_than_ms` (unix ms); the chain is untouched.
    pub fn prune_payloads(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        self.with_reader(|r| r.prune_payloads(older_than_ms))
    }

    /// Writes the JSONL export of the committed chain.
    pub fn export_jsonl(&self, out: &Path) -> Result<ExportSummary, StoreError> {
        let key = self.inner.signer_public;
        self.with_reader(|r| r.export_jsonl(out, Some(&key), now_ms()))
    }

    /// Verifies the committed chain with this host's own public key.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let key = self.inner.signer_public;
        self.with_reader(|r| r.verify(Some(&key)))
    }
}

struct Writer {
    /// Exclusive lock on `<db>.lock`, held for the writer's lifetime: one
    /// writer per chain, even across processes (a second writer would fork it).
    _lock: std::fs::File,
    conn: Connection,
    path: PathBuf,
    /// Rewritten after every committed checkpoint (see [`super::anchor`]).
    anchor_path: PathBuf,
    signer: SigningKey,
    signer_public: ed25519_dalek::VerifyingKey,
    policy: CheckpointPolicy,
    head_seq: u64,
    head_hash: Hash256,
    last_cp_size: u64,
    has_checkpoint: bool,
    last_cp_at: Instant,
    shared_head: Arc<Mutex<(u64, Hash256)>>,
    stats: Arc<Stats>,
    scratch: Vec<u8>,
}

type AppendReply = oneshot::Sender<Result<Appended, StoreError>>;

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Msg> = Vec::with_capacity(MAX_BATCH);
        loop {
            let due = self.last_cp_at.checked_add(self.policy.every);
            let first = if let Some(due) = due.filter(|_| self.head_seq > self.last_cp_size) {
                match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Nobody waits on a timed checkpoint; a failure is
                        // retried at the next deadline or at close.
                        let _ = self.commit_checkpoint_alone();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if self.process(&mut batch) {
                return;
            }
        }
        // Every handle dropped without `close`: still a clean stop.
        let _ = self.commit_checkpoint_alone();
    }

    fn sqlite(&self) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        sqlite_err(&self.path)
    }

    /// Handles one drained batch; returns true when the log was closed.
    fn process(&mut self, batch: &mut Vec<Msg>) -> bool {
        let mut appends: Vec<(AuditEntry, Payloads, AppendReply)> = Vec::new();
        let mut cp_waiters = Vec::new();
        let mut close_waiters = Vec::new();
        let (mut seq, mut prev) = (self.head_seq, self.head_hash);
        for msg in batch.drain(..) {
            match msg {
                Msg::Append {
                    entry,
                    payloads,
                    reply,
                } => {
                    if let Err(e) = check_payloads(&entry, &payloads) {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                    seq += 1;
                    let linked = AuditEntry::link(seq, prev, entry);
                    prev = linked.hash;
                    appends.push((linked, payloads, reply));
                }
                Msg::Checkpoint { reply } => cp_waiters.push(reply),
                Msg::Close { reply } => close_waiters.push(reply),
            }
        }
        let closing = !close_waiters.is_empty();
        let want_cp = !cp_waiters.is_empty()
            || (closing && (seq > self.last_cp_size || !self.has_checkpoint))
            || (self.policy.every_entries > 0
                && seq - self.last_cp_size >= self.policy.every_entries)
            || (seq > self.last_cp_size && self.last_cp_at.elapsed() >= self.policy.every);
        let result = self.commit(&appends, want_cp.then_some((seq, prev)));
        match result {
            Ok(cp) => {
                if !appends.is_empty() {
                    self.stats.record(appends.len() as u64);
                }
                self.head_seq = seq;
                self.head_hash = prev;
                *self
                    .shared_head
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = (seq, prev);
                if let Some(cp) = &cp {
                    self.last_cp_size = cp.size;
                    self.has_checkpoint = true;
                    self.last_cp_at = Instant::now();
                }
                for (e, _, reply) in appends {
                    let _ = reply.send(Ok(Appended {
                        seq: e.seq,
                        hash: e.hash,
                    }));
                }
                for reply in cp_waiters {
                    let _ = reply.send(cp.clone().ok_or(StoreError::Closed));
                }
                for reply in close_waiters {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) => {
                let msg = err.to_string();
                let again = || StoreError::CommitFailed {
                    path: self.path.clone(),
                    reason: msg.clone(),
                };
                for (_, _, reply) in appends {
                    let _ = reply.send(Err(again()));
                }
                for reply in cp_waiters {
                    let _ = reply.send(Err(again()));
                }
                for reply in close_waiters {
                    let _ = reply.send(Err(again()));
                }
            }
        }
        closing
    }

    fn commit_checkpoint_alone(&mut self) -> Result<(), StoreError> {
        if self.head_seq == self.last_cp_size && self.has_checkpoint {
            return Ok(());
        }
        let cp = self.commit(&[], Some((self.head_seq, self.head_hash)))?;
        if let Some(cp) = cp {
            self.last_cp_size = cp.size;
            self.has_checkpoint = true;
        }
        self.last_cp_at = Instant::now();
        Ok(())
    }

    /// One transaction: the batch's entries and payloads, then optionally a
    /// checkpoint over `(size, head)`.
    fn commit(
        &mut self,
        appends: &[(AuditEntry, Payloads, AppendReply)],
        checkpoint: Option<(u64, Hash256)>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction().map_err(sqlite_err(&self.path))?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO audit_entries (seq, prev_hash, hash, entry, capability, outcome, outcome_class) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sqlite_err(&self.path))?;
            let mut ins_payload = tx
                .prepare_cached(
                    "INSERT INTO audit_payloads (hash, data, stored_at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(hash) DO UPDATE SET stored_at_ms = excluded.stored_at_ms",
                )
                .map_err(sqlite_err(&self.path))?;
            for (e, payloads, _) in appends {
                self.scratch.clear();
                crate::audit::entry::encode_into(e.seq, &e.entry, &mut self.scratch);
                ins.execute(rusqlite::params![
                    to_sql_int(e.seq),
                    &e.prev_hash.0[..],
                    &e.hash.0[..],
                    &self.scratch[..],
                    &e.entry.capability,
                    e.entry.outcome.as_string(),
                    e.entry.outcome.class()
                ])
                .map_err(sqlite_err(&self.path))?;
                for data in [&payloads.input, &payloads.output].into_iter().flatten() {
                    let h = Hash256::of(data);
                    ins_payload
                        .execute(rusqlite::params![&h.0[..], &data[..], to_sql_int(now)])
                        .map_err(sqlite_err(&self.path))?;
                }
            }
        }
        let cp = match checkpoint {
            Some((size, head)) => {
                let cp = Checkpoint::sign(size, head, now, &self.signer);
                tx.execute(
                    "INSERT INTO audit_checkpoints (size, head_hash, at_ms, key_id, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        to_sql_int(cp.size),
                        &cp.head_hash.0[..],
                        to_sql_int(cp.at_ms),
                        &cp.key_id,
                        &cp.signature.0[..]
                    ],
                )
                .map_err(sqlite_err(&self.path))?;
                Some(cp)
            }
            None => None,
        };
        tx.commit().map_err(self.sqlite())?;
        if let Some(cp) = &cp
            && let Err(e) = write_anchor(&self.anchor_path, cp)
        {
            // The checkpoint and the batch are committed; failing them now
            // would deny entries that are in the chain. The anchor stays one
            // checkpoint behind (still extended by the chain) and is
            // rewritten at the next checkpoint or open.
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            tracing::error!(
                "audit checkpoint at size {} is committed, but the trusted-checkpoint file \
                 was not updated: {e}: {}",
                cp.size,
                cause.unwrap_or_default()
            );
        }
        Ok(cp)
    }
}

fn check_payloads(entry: &NewEntry, p: &Payloads) -> Result<(), StoreError> {
    for (which, data, recorded) in [
        ("input", &p.input, entry.input_sha256),
        ("output", &p.output, entry.output_sha256),
    ] {
        if let Some(data) = data {
            let found = Hash256::of(data);
            if recorded != Some(found) {
                return Err(StoreError::PayloadHashMismatch {
                    which,
                    found,
                    recorded,
                });
            }
        }
    }
    Ok(())
}
