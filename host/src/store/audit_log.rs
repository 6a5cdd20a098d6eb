//! The durable audit log (`warden.db`): group commit, signed checkpoints,
//! the anchor file, and the tail check at open.
//!
//! `append` hands the entry to the shared group-commit [`Writer`] and waits.
//! Its thread takes everything queued (up to [`MAX_BATCH`]); [`AuditTable`]
//! links the entries, inserts them in one transaction, which the writer
//! commits (one WAL fsync under `synchronous=FULL`) before every waiter is
//! answered. Concurrent invocations therefore share fsyncs, and no response
//! is ever sent for an entry that is not on disk.
//!
//! The same writer also commits the workflow journal's rows
//! ([`AuditLog::submit_write`], `runs_sqlite.rs`), so a step's journal
//! record and its audit entry share one file, one WAL and one fsync: a
//! step's entry is appended *deferred* (committed without its own fsync)
//! and the durable journal record queued after it makes both durable
//! (writer.rs, "deferred"). A batch holding a checkpoint is always durable.
//!
//! This module must never decide what an entry holds or how it hashes
//! ([`crate::audit`] does), never sign a checkpoint before the open-time
//! check passed, and never write the anchor ahead of the database.

use super::anchor::{read_anchor, write_anchor};
use super::audit_read::{AuditReader, EntryFilter, ExportSummary};
use super::audit_tree::insert_nodes;
use super::database::{Access, in_savepoint, open as open_database};
use super::writer::{Ack, Table, Wake, Writer};
use super::{AUDIT_SCHEMA, StoreError, now_ms, sqlite_err, to_sql_int};
use crate::audit::merkle::{Frontier, NewNode, leaf_hash};
use crate::audit::note::{TreeHead, sign_checkpoint};
use crate::audit::{AuditEntry, Checkpoint, NewEntry, Problem, ProblemKind, VerifyReport};
use crate::digest::Hash256;
use ed25519_dalek::SigningKey;
use rusqlite::{Connection, Transaction};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Recorded host-call results, in call order; when given, there must be
    /// one per hash of the entry's `evidence.results`, hashing to it.
    pub results: Vec<Vec<u8>>,
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
    /// Transactions committed with an fsync (`synchronous=FULL`) that held
    /// entries, journal rows or a checkpoint; deferred commits are not
    /// counted (they are synced by the next of these).
    pub synced_commits: u64,
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
    /// Time the writer thread spent building batches (inserting entries,
    /// payloads, tree nodes and checkpoints), in nanoseconds, summed.
    pub write_nanos: u64,
    /// Of `write_nanos`, the time spent maintaining the Merkle tree (leaf
    /// and node hashes and the `audit_tree_nodes` inserts).
    pub tree_nanos: u64,
    /// Time from the end of building a batch to its answer: the commit
    /// (the WAL fsync), in nanoseconds, summed.
    pub commit_nanos: u64,
}

// Each message is moved once through the channel; boxing would add an allocation per append.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append {
        entry: NewEntry,
        payloads: Payloads,
        /// `false`: deferred (no fsync of its own; see the module header).
        durable: bool,
        /// Rows written in the same transaction right before the entry; if
        /// they fail, the entry is not appended ([`AuditLog::submit_after`]).
        before: Option<RowWrite>,
        /// Rows written in the same transaction right after the entry,
        /// given its seq ([`AuditLog::submit_with`]).
        then: Option<SeqWrite>,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    /// Rows of another table in this database (the workflow journal),
    /// written in the writer's transaction, in queue order.
    Write {
        write: RowWrite,
        durable: bool,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<Checkpoint, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A write of rows beside the chain, run inside the writer's transaction
/// (in a savepoint of its own: an `Err` undoes only its rows and fails
/// only its caller).
pub type RowWrite = Box<dyn FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send>;

/// A [`RowWrite`] that follows one entry in the same transaction and is
/// given that entry's seq ([`AuditLog::submit_with`]).
pub type SeqWrite = Box<dyn FnOnce(&Transaction<'_>, u64) -> Result<(), StoreError> + Send>;

const HISTOGRAM_BUCKETS: usize = 14;

struct Stats {
    commits: AtomicU64,
    synced_commits: AtomicU64,
    entries: AtomicU64,
    max_batch: AtomicU64,
    histogram: [AtomicU64; HISTOGRAM_BUCKETS],
    write_nanos: AtomicU64,
    tree_nanos: AtomicU64,
    commit_nanos: AtomicU64,
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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

struct Inner {
    path: PathBuf,
    /// Dropping it (the last clone) makes the writer sign a final
    /// checkpoint and stop.
    writer: Writer<Msg>,
    head: Arc<Mutex<(u64, Hash256)>>,
    stats: Arc<Stats>,
    reader: Mutex<AuditReader>,
    signer_public: ed25519_dalek::VerifyingKey,
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
    let reader =
        AuditReader::from_connection(open_database(path, &AUDIT_SCHEMA, Access::Read)?, path);
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
        let conn = open_database(path, &AUDIT_SCHEMA, Access::Write)?;
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
        let origin = crate::audit::note::default_origin(&signer.verifying_key());
        let frontier =
            super::audit_tree::check_tree(&conn, path, &signer.verifying_key(), &origin, head_seq)?;
        let reader =
            AuditReader::from_connection(open_database(path, &AUDIT_SCHEMA, Access::Read)?, path);
        let head = Arc::new(Mutex::new((head_seq, head_hash)));
        let stats = Arc::new(Stats {
            commits: AtomicU64::new(0),
            synced_commits: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            max_batch: AtomicU64::new(0),
            histogram: Default::default(),
            write_nanos: AtomicU64::new(0),
            tree_nanos: AtomicU64::new(0),
            commit_nanos: AtomicU64::new(0),
        });
        let table = AuditTable {
            _lock: lock,
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
            batch: Batch::default(),
            frontier,
            origin,
            nodes: Vec::with_capacity(64),
            leaves: Vec::with_capacity(64),
            built_at: None,
            deferred: false,
        };
        let signer_public = table.signer_public;
        let writer = Writer::spawn("warden-audit-writer", path, conn, table)?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer,
                head,
                stats,
                reader: Mutex::new(reader),
                signer_public,
            }),
        })
    }

    /// Appends one entry; the [`Ack`] resolves only after its transaction is
    /// committed. The entry and its payloads are moved to the writer as they are.
    pub fn submit(&self, entry: NewEntry, payloads: Payloads) -> Ack<Appended> {
        self.queue_append(entry, payloads, true, None, None)
    }

    /// Appends one entry *deferred*: the [`Ack`] resolves once it is
    /// committed (readable, linked, surviving a process kill) but before it
    /// is synced; it becomes durable with the next durable commit of this
    /// log ([`submit`](Self::submit), or a durable
    /// [`submit_write`](Self::submit_write)). Only for a caller that makes
    /// such a commit before acting on the result (the workflow executor:
    /// the step's journal record).
    pub fn submit_deferred(&self, entry: NewEntry, payloads: Payloads) -> Ack<Appended> {
        self.queue_append(entry, payloads, false, None, None)
    }

    /// Appends one entry and runs `then` with its seq in the same
    /// transaction, right after it (in a savepoint of its own: an `Err`
    /// undoes only `then`'s rows; the entry is appended all the same, and
    /// `then` must tell its caller itself whether it wrote). `durable` as
    /// for [`submit`](Self::submit) / [`submit_deferred`](Self::submit_deferred).
    /// The workflow executor writes a step's result record this way, so
    /// the step's entry and its record cost one writer round trip and (at
    /// most) one fsync.
    pub fn submit_with(
        &self,
        entry: NewEntry,
        payloads: Payloads,
        then: SeqWrite,
        durable: bool,
    ) -> Ack<Appended> {
        self.queue_append(entry, payloads, durable, None, Some(then))
    }

    /// Appends one entry after `before` in the same transaction (in a
    /// savepoint of its own): when `before` fails, its rows are undone, the
    /// entry is *not* appended, and the [`Ack`] answers `before`'s error.
    /// `durable` as for [`submit`](Self::submit) /
    /// [`submit_deferred`](Self::submit_deferred). The workflow executor
    /// journals a run's start and end this way, with their entries.
    pub fn submit_after(
        &self,
        before: RowWrite,
        entry: NewEntry,
        payloads: Payloads,
        durable: bool,
    ) -> Ack<Appended> {
        self.queue_append(entry, payloads, durable, Some(before), None)
    }

    /// Queues one entry's append (the forms above).
    fn queue_append(
        &self,
        entry: NewEntry,
        payloads: Payloads,
        durable: bool,
        before: Option<RowWrite>,
        then: Option<SeqWrite>,
    ) -> Ack<Appended> {
        self.inner.writer.submit(|reply| Msg::Append {
            entry,
            payloads,
            durable,
            before,
            then,
            reply,
        })
    }

    /// Whether `other` is a handle on this same log (one writer, one file).
    pub fn is_same(&self, other: &AuditLog) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Writes rows beside the chain (the workflow journal's tables, created
    /// by this database's schema) in the writer's next transaction, in
    /// queue order with the entries. `durable`: answered only once synced
    /// (and everything committed before it with it); otherwise deferred.
    pub(crate) fn submit_write(&self, durable: bool, write: RowWrite) -> Ack<()> {
        self.inner.writer.submit(|reply| Msg::Write {
            write,
            durable,
            reply,
        })
    }

    /// Appends one entry; returns only after its transaction is committed.
    pub async fn append(
        &self,
        entry: NewEntry,
        payloads: Payloads,
    ) -> Result<Appended, StoreError> {
        self.submit(entry, payloads).await
    }

    /// [`append`](Self::append) for callers outside an async runtime (must not be
    /// called from inside one).
    pub fn append_blocking(
        &self,
        entry: NewEntry,
        payloads: Payloads,
    ) -> Result<Appended, StoreError> {
        self.submit(entry, payloads).wait()
    }

    /// Signs and commits a checkpoint over the current head now.
    pub async fn checkpoint_now(&self) -> Result<Checkpoint, StoreError> {
        self.submit_checkpoint().await
    }

    /// [`checkpoint_now`](Self::checkpoint_now) as an [`Ack`].
    pub fn submit_checkpoint(&self) -> Ack<Checkpoint> {
        self.inner.writer.submit(|reply| Msg::Checkpoint { reply })
    }

    /// Writes the final checkpoint and stops the writer. Appends through other
    /// clones fail with [`StoreError::Closed`] afterwards.
    pub async fn close(self) -> Result<(), StoreError> {
        self.inner.writer.submit(|reply| Msg::Close { reply }).await
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
        let (in_flight, wait_nanos) = self.inner.writer.waits();
        AppendStats {
            commits: s.commits.load(Ordering::Relaxed),
            synced_commits: s.synced_commits.load(Ordering::Relaxed),
            entries: s.entries.load(Ordering::Relaxed),
            max_batch: s.max_batch.load(Ordering::Relaxed),
            in_flight,
            wait_nanos,
            histogram: s
                .histogram
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            write_nanos: s.write_nanos.load(Ordering::Relaxed),
            tree_nanos: s.tree_nanos.load(Ordering::Relaxed),
            commit_nanos: s.commit_nanos.load(Ordering::Relaxed),
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

    /// The newest signed checkpoint note (`size`, `root`, note text).
    pub fn latest_note(&self) -> Result<Option<(u64, Hash256, String)>, StoreError> {
        self.with_reader(AuditReader::latest_note)
    }

    /// A C2SP tlog-tiles tile or entry bundle, if the newest checkpoint
    /// covers it ([`AuditReader::tile`]).
    pub fn tile(
        &self,
        tile: &crate::audit::tiles::TilePath,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_reader(|r| r.tile(tile))
    }

    /// Inclusion proof of leaf `index` against the checkpoint of `size`
    /// (default: the newest).
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<super::InclusionProof, StoreError> {
        self.with_reader(|r| r.inclusion_proof(index, size))
    }

    /// Consistency proof from `old` entries to the checkpoint of `new`
    /// (default: the newest).
    pub fn consistency_proof(
        &self,
        old: u64,
        new: Option<u64>,
    ) -> Result<super::ConsistencyProof, StoreError> {
        self.with_reader(|r| r.consistency_proof(old, new))
    }

    /// The host key's public half (what checkpoints verify with).
    pub fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.inner.signer_public
    }

    /// The origin line of this log's checkpoint notes.
    pub fn origin(&self) -> String {
        crate::audit::note::default_origin(&self.inner.signer_public)
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

/// The audit tables as the group-commit [`Writer`] writes them: links each
/// batch's entries onto the head, inserts them with their payloads (and a
/// checkpoint when one is due) and, after the commit, moves the head,
/// rewrites the anchor and answers.
struct AuditTable {
    /// Exclusive lock on `<db>.lock`, held for the writer's lifetime: one
    /// writer per chain, even across processes (a second writer would fork it).
    _lock: std::fs::File,
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
    /// What the batch being written holds, between `write` and `answer`.
    batch: Batch,
    /// The committed tree's right edge (the batch works on a copy).
    frontier: Frontier,
    /// The origin line of this log's checkpoint notes.
    origin: String,
    /// Nodes completed by the batch's entries.
    nodes: Vec<NewNode>,
    /// The chain hashes of the batch's entries, in order (their leaves are
    /// added to the tree after the entries are inserted).
    leaves: Vec<Hash256>,
    /// When the batch being written was built (for [`AppendStats`]).
    built_at: Option<Instant>,
    /// Whether the batch being written is deferred ([`Table::durable`]).
    deferred: bool,
}

type AppendReply = oneshot::Sender<Result<Appended, StoreError>>;
type WriteReply = oneshot::Sender<Result<(), StoreError>>;

/// The batch in progress.
#[derive(Default)]
struct Batch {
    appends: Vec<(AuditEntry, AppendReply)>,
    writes: Vec<(Result<(), StoreError>, WriteReply)>,
    cp_waiters: Vec<oneshot::Sender<Result<Checkpoint, StoreError>>>,
    close_waiters: Vec<oneshot::Sender<Result<(), StoreError>>>,
    /// Head after the batch.
    head: (u64, Hash256),
    /// The checkpoint the batch signed.
    checkpoint: Option<Checkpoint>,
    /// The tree after the batch.
    frontier: Option<Frontier>,
}

impl Table for AuditTable {
    type Job = Msg;

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn durable(&mut self, jobs: &[Msg]) -> bool {
        let durable = jobs.is_empty()
            || jobs.iter().any(|m| match m {
                Msg::Append { durable, .. } | Msg::Write { durable, .. } => *durable,
                Msg::Checkpoint { .. } | Msg::Close { .. } => true,
            });
        self.deferred = !durable;
        durable
    }

    fn due(&self) -> Option<Instant> {
        if self.head_seq > self.last_cp_size {
            self.last_cp_at.checked_add(self.policy.every)
        } else {
            None
        }
    }

    fn write(
        &mut self,
        tx: &Transaction<'_>,
        jobs: &mut Vec<Msg>,
        wake: Wake,
    ) -> Result<bool, StoreError> {
        let started = Instant::now();
        let b = &mut self.batch;
        let (mut seq, mut prev) = (self.head_seq, self.head_hash);
        let now = now_ms();
        let sql = sqlite_err(&self.path);
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO audit_entries (seq, prev_hash, hash, entry, capability, outcome, outcome_class) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql)?;
        let mut ins_payload = tx
            .prepare_cached(
                "INSERT INTO audit_payloads (hash, data, stored_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(hash) DO UPDATE SET stored_at_ms = excluded.stored_at_ms",
            )
            .map_err(sqlite_err(&self.path))?;
        let mut tree = self.frontier.clone();
        self.leaves.clear();
        let mut wrote_rows = false;
        for msg in jobs.drain(..) {
            match msg {
                Msg::Append {
                    entry,
                    payloads,
                    before,
                    then,
                    reply,
                    ..
                } => {
                    if let Err(e) = check_payloads(&entry, &payloads) {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                    if let Some(before) = before {
                        let r = in_savepoint(tx, &self.path, |tx| before(tx))?;
                        if let Err(e) = r {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                    }
                    seq += 1;
                    let e = AuditEntry::link(seq, prev, entry);
                    prev = e.hash;
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
                    self.leaves.push(e.hash);
                    for data in [&payloads.input, &payloads.output]
                        .into_iter()
                        .flatten()
                        .chain(payloads.results.iter())
                    {
                        let h = Hash256::of(data);
                        ins_payload
                            .execute(rusqlite::params![&h.0[..], &data[..], to_sql_int(now)])
                            .map_err(sqlite_err(&self.path))?;
                    }
                    if let Some(then) = then {
                        let r = in_savepoint(tx, &self.path, |tx| then(tx, e.seq))?;
                        if let Err(err) = r {
                            tracing::warn!(
                                seq = e.seq,
                                "a write after an audit entry failed: {err}"
                            );
                        }
                    }
                    b.appends.push((e, reply));
                }
                Msg::Write { write, reply, .. } => {
                    let r = in_savepoint(tx, &self.path, |tx| write(tx))?;
                    wrote_rows |= r.is_ok();
                    b.writes.push((r, reply));
                }
                Msg::Checkpoint { reply } => b.cp_waiters.push(reply),
                Msg::Close { reply } => b.close_waiters.push(reply),
            }
        }
        // The tree: every leaf of the batch, then its completed nodes in
        // one run of inserts (same transaction as the entries).
        let tree_started = Instant::now();
        self.nodes.clear();
        for h in &self.leaves {
            tree.append(leaf_hash(h), |n| {
                if super::audit_tree::kept(n.0) {
                    self.nodes.push(n)
                }
            });
        }
        insert_nodes(tx, &self.path, &mut self.nodes)?;
        self.stats
            .tree_nanos
            .fetch_add(nanos(tree_started.elapsed()), Ordering::Relaxed);
        b.head = (seq, prev);
        let closing = !b.close_waiters.is_empty() || wake == Wake::Stopping;
        // A deferred batch never holds a checkpoint: its anchor file is
        // written after the commit and must never name an unsynced head.
        // The next durable batch (or the timed wake) takes it instead.
        let want_cp = !b.cp_waiters.is_empty()
            || (closing && (seq > self.last_cp_size || !self.has_checkpoint))
            || (!self.deferred
                && ((self.policy.every_entries > 0
                    && seq - self.last_cp_size >= self.policy.every_entries)
                    || (seq > self.last_cp_size
                        && self.last_cp_at.elapsed() >= self.policy.every)));
        if want_cp {
            let cp = Checkpoint::sign(seq, prev, now, &self.signer);
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
            b.checkpoint = Some(cp);
            let head = TreeHead {
                origin: self.origin.clone(),
                size: tree.size(),
                root: tree.root(),
            };
            let note = sign_checkpoint(&head, &self.signer).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("cannot sign a checkpoint note: {e}"),
            })?;
            tx.execute(
                "INSERT INTO audit_notes (size, root, note) VALUES (?1, ?2, ?3)",
                rusqlite::params![to_sql_int(head.size), &head.root.0[..], note],
            )
            .map_err(sqlite_err(&self.path))?;
        }
        b.frontier = Some(tree);
        let built = Instant::now();
        self.stats
            .write_nanos
            .fetch_add(nanos(built - started), Ordering::Relaxed);
        self.built_at = Some(built);
        Ok(!b.appends.is_empty() || b.checkpoint.is_some() || wrote_rows)
    }

    fn answer(&mut self, _: &mut Vec<Msg>, committed: Result<bool, StoreError>) -> bool {
        if let Some(built) = self.built_at.take() {
            self.stats
                .commit_nanos
                .fetch_add(nanos(built.elapsed()), Ordering::Relaxed);
        }
        let b = std::mem::take(&mut self.batch);
        let closing = !b.close_waiters.is_empty();
        match committed {
            Ok(wrote) => {
                if !b.appends.is_empty() {
                    self.stats.record(b.appends.len() as u64);
                }
                if wrote && !self.deferred {
                    self.stats.synced_commits.fetch_add(1, Ordering::Relaxed);
                }
                (self.head_seq, self.head_hash) = b.head;
                if let Some(tree) = b.frontier {
                    self.frontier = tree;
                }
                *self
                    .shared_head
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = b.head;
                if let Some(cp) = &b.checkpoint {
                    self.last_cp_size = cp.size;
                    self.has_checkpoint = true;
                    self.last_cp_at = Instant::now();
                    self.write_anchor(cp);
                }
                for (e, reply) in b.appends {
                    let _ = reply.send(Ok(Appended {
                        seq: e.seq,
                        hash: e.hash,
                    }));
                }
                for (r, reply) in b.writes {
                    let _ = reply.send(r);
                }
                for reply in b.cp_waiters {
                    let _ = reply.send(b.checkpoint.clone().ok_or(StoreError::Closed));
                }
                for reply in b.close_waiters {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) => {
                let msg = err.to_string();
                let again = || StoreError::CommitFailed {
                    path: self.path.clone(),
                    reason: msg.clone(),
                };
                for (_, reply) in b.appends {
                    let _ = reply.send(Err(again()));
                }
                for (_, reply) in b.writes {
                    let _ = reply.send(Err(again()));
                }
                for reply in b.cp_waiters {
                    let _ = reply.send(Err(again()));
                }
                for reply in b.close_waiters {
                    let _ = reply.send(Err(again()));
                }
            }
        }
        closing
    }
}

impl AuditTable {
    /// Rewrites the anchor after `cp` committed. The checkpoint and its
    /// batch are committed; failing them now would deny entries that are in
    /// the chain. So a failure is logged: the anchor stays one checkpoint
    /// behind (still extended by the chain) and is rewritten at the next
    /// checkpoint or open.
    fn write_anchor(&self, cp: &Checkpoint) {
        if let Err(e) = write_anchor(&self.anchor_path, cp) {
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            tracing::error!(
                "audit checkpoint at size {} is committed, but the trusted-checkpoint file \
                 was not updated: {e}: {}",
                cp.size,
                cause.unwrap_or_default()
            );
        }
    }
}

fn check_payloads(entry: &NewEntry, p: &Payloads) -> Result<(), StoreError> {
    if !p.results.is_empty() {
        let committed = &entry.evidence.results;
        if committed.len() != p.results.len() {
            return Err(StoreError::PayloadHashMismatch {
                which: "recorded result count",
                found: Hash256::of(&(p.results.len() as u64).to_be_bytes()),
                recorded: None,
            });
        }
        for (data, recorded) in p.results.iter().zip(committed) {
            let found = Hash256::of(data);
            if found != *recorded {
                return Err(StoreError::PayloadHashMismatch {
                    which: "recorded result",
                    found,
                    recorded: Some(*recorded),
                });
            }
        }
    }
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
