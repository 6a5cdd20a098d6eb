//! The storage traits the rest of the host programs against: the audit log,
//! the request state (finished responses, idempotency keys, held requests)
//! and the KV namespaces. The SQLite implementations ([`AuditLog`],
//! [`SqliteRequestStore`](super::SqliteRequestStore), [`KvStore`]) are
//! today's behaviour; another backend (PostgreSQL) implements the same
//! traits and passes the same conformance suite (`store::conformance`).
//!
//! Durable writes return an [`Ack`] that resolves once the write is
//! committed: await it from async code (no thread is blocked), or
//! [`Ack::wait`] on a blocking thread. Every other method may block on I/O:
//! async callers run them on the blocking pool, never on an async worker.
//!
//! This module must never depend on `server`, on wasmtime, or on SQLite.

use super::kv::KvQuota;
use super::{
    Ack, AppendStats, Appended, AuditLog, EntryFilter, EntryPage, Held, HeldState,
    IdempotentRecord, KvError, KvStore, Namespace, Payloads, PendingSummary, StoreError,
    StoredResponse,
};
use crate::audit::{Checkpoint, NewEntry};
use crate::digest::Hash256;
use std::collections::BTreeMap;

/// The hash-chained audit log.
pub trait AuditStore: Send + Sync + 'static {
    /// Links `entry` onto the chain and stores its payloads (which must hash
    /// to the entry's `input_sha256`/`output_sha256`, else
    /// [`StoreError::PayloadHashMismatch`]); resolves once committed, in
    /// submission order.
    fn append(&self, entry: NewEntry, payloads: Payloads) -> Ack<Appended>;

    /// Signs and commits a checkpoint over the current head.
    fn checkpoint(&self) -> Ack<Checkpoint>;

    /// Sequence number and hash of the last committed entry (`(0, ZERO)`
    /// when empty). Never blocks.
    fn head(&self) -> (u64, Hash256);

    /// One bounded page of committed entries with `seq >= from` matching
    /// `filter`: at most `limit` entries, examining at most `max_scan` rows.
    fn page(
        &self,
        from: u64,
        limit: usize,
        max_scan: usize,
        filter: &EntryFilter,
    ) -> Result<EntryPage, StoreError>;

    /// Every committed checkpoint, oldest first.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;

    /// A stored payload by its SHA-256.
    fn payload(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes payloads stored before `older_than_ms` (unix ms); the chain
    /// is untouched. Returns how many were deleted.
    fn prune_payloads(&self, older_than_ms: u64) -> Result<u64, StoreError>;

    /// Commit statistics since open (never blocks).
    fn stats(&self) -> AppendStats;
}

impl AuditStore for AuditLog {
    fn append(&self, entry: NewEntry, payloads: Payloads) -> Ack<Appended> {
        self.submit(entry, payloads)
    }
    fn checkpoint(&self) -> Ack<Checkpoint> {
        self.submit_checkpoint()
    }
    fn head(&self) -> (u64, Hash256) {
        AuditLog::head(self)
    }
    fn page(
        &self,
        from: u64,
        limit: usize,
        max_scan: usize,
        filter: &EntryFilter,
    ) -> Result<EntryPage, StoreError> {
        AuditLog::page(self, from, limit, max_scan, filter)
    }
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        AuditLog::checkpoints(self)
    }
    fn payload(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, StoreError> {
        AuditLog::payload(self, hash)
    }
    fn prune_payloads(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        AuditLog::prune_payloads(self, older_than_ms)
    }
    fn stats(&self) -> AppendStats {
        AuditLog::stats(self)
    }
}

/// The daemon's request state: finished responses (`GET /v1/requests/{id}`),
/// idempotency keys, and held (approval-gated) requests.
pub trait RequestStore: Send + Sync + 'static {
    /// Records a finished request and (when given) its idempotency key
    /// `(key, fingerprint)` for `stored.principal`, in one commit. A response
    /// already stored under `request_id` (a held request's) is kept: the
    /// first response recorded for an id wins here. A key already stored is
    /// replaced.
    fn finish(
        &self,
        request_id: &str,
        stored: &StoredResponse,
        idempotency: Option<(&str, &str)>,
    ) -> Ack<()>;

    /// Inserts or replaces a held request; with `stored`, also replaces the
    /// response `GET /v1/requests/{id}` shows meanwhile, in the same commit.
    fn put_held(&self, held: &Held, stored: Option<&StoredResponse>) -> Ack<()>;

    /// Records a held request's end (its state and record) together with the
    /// response now shown for it (replacing the earlier one), in one commit.
    fn end_held(&self, held: &Held, stored: &StoredResponse) -> Ack<()>;

    /// The response stored for a request id.
    fn request(&self, id: &str) -> Result<Option<StoredResponse>, StoreError>;

    /// The completed request that used `key` for `principal`, if any.
    fn idempotent(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotentRecord>, StoreError>;

    /// A held request by id.
    fn held(&self, id: &str) -> Result<Option<Held>, StoreError>;

    /// Held requests in `state` (every state when `None`), oldest admission
    /// first (ties by id), at most `limit`.
    fn held_list(&self, state: Option<HeldState>, limit: usize) -> Result<Vec<Held>, StoreError>;

    /// Pending held requests whose deadline is at or before `now_ms`,
    /// earliest deadline first (ties by id).
    fn held_due(&self, now_ms: u64) -> Result<Vec<Held>, StoreError>;

    /// How many held requests are pending, and the oldest admission time.
    fn pending_summary(&self) -> Result<PendingSummary, StoreError>;
}

/// The guests' key-value namespaces. Calls block (they run inside a guest's
/// host call, on a thread that may block).
pub trait KvBackend: Send + Sync + 'static {
    /// The committed value of `key` in `ns`.
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Committed keys of `ns` starting with `prefix`, ascending.
    fn keys(&self, ns: &Namespace, prefix: &str) -> Result<Vec<String>, KvError>;

    /// (bytes of keys + values, number of keys) committed in `ns`.
    fn usage(&self, ns: &Namespace) -> Result<(u64, u64), KvError>;

    /// Applies `writes` (`None` deletes) to `ns` atomically, refusing (and
    /// applying nothing, [`KvError::Quota`]) if the namespace would end over
    /// `limits`.
    fn commit(
        &self,
        ns: &Namespace,
        writes: &BTreeMap<String, Option<Vec<u8>>>,
        limits: &KvQuota,
    ) -> Result<(), KvError>;
}

impl KvBackend for KvStore {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        KvStore::get(self, ns, key)
    }
    fn keys(&self, ns: &Namespace, prefix: &str) -> Result<Vec<String>, KvError> {
        KvStore::keys(self, ns, prefix)
    }
    fn usage(&self, ns: &Namespace) -> Result<(u64, u64), KvError> {
        KvStore::usage(self, ns)
    }
    fn commit(
        &self,
        ns: &Namespace,
        writes: &BTreeMap<String, Option<Vec<u8>>>,
        limits: &KvQuota,
    ) -> Result<(), KvError> {
        KvStore::commit(self, ns, writes, limits)
    }
}

/// A shared backend is a backend (the host hands one `Arc` to every invocation).
impl<T: KvBackend + ?Sized> KvBackend for std::sync::Arc<T> {
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        (**self).get(ns, key)
    }
    fn keys(&self, ns: &Namespace, prefix: &str) -> Result<Vec<String>, KvError> {
        (**self).keys(ns, prefix)
    }
    fn usage(&self, ns: &Namespace) -> Result<(u64, u64), KvError> {
        (**self).usage(ns)
    }
    fn commit(
        &self,
        ns: &Namespace,
        writes: &BTreeMap<String, Option<Vec<u8>>>,
        limits: &KvQuota,
    ) -> Result<(), KvError> {
        (**self).commit(ns, writes, limits)
    }
}
