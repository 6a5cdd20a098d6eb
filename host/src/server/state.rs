//! The daemon's handle on its request state (finished requests for
//! `GET /v1/requests/{id}`, idempotency keys, held requests): a
//! [`RequestStore`] (`state.db` by default, see
//! [`crate::store::SqliteRequestStore`]) with the calling conventions the
//! server uses.
//!
//! It must never run a store call on an async worker: durable writes are
//! awaited [`crate::store::Ack`]s, everything else runs through
//! [`StateStore::blocking`].

use crate::store::{Held, HeldState};
pub use crate::store::{IdempotentRecord, StoredResponse};
use crate::store::{RequestStore, SqliteRequestStore, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The daemon's working state. Cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    store: Arc<dyn RequestStore>,
    /// Named in errors.
    path: PathBuf,
}

impl StateStore {
    /// Opens (creating) `<data_dir>/state.db`.
    pub fn open(data_dir: &Path) -> Result<StateStore, StoreError> {
        let store = SqliteRequestStore::open(data_dir)?;
        let path = store.path().to_owned();
        Ok(StateStore {
            store: Arc::new(store),
            path,
        })
    }

    /// Runs `f` on a blocking thread (store calls block on I/O).
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

    /// A stopped writer becomes a commit failure naming the file.
    fn written(&self, r: Result<(), StoreError>) -> Result<(), StoreError> {
        r.map_err(|e| match e {
            StoreError::Closed => StoreError::CommitFailed {
                path: self.path.clone(),
                reason: "the state writer stopped".into(),
            },
            e => e,
        })
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
        let done = self.store.finish(request_id, stored, idempotency).await;
        self.written(done)
    }

    /// Inserts or replaces a held (approval-gated) request; with `stored`,
    /// also records the response `GET /v1/requests/{id}` shows meanwhile,
    /// in the same transaction. Blocks until committed.
    pub fn put_held(&self, held: &Held, stored: Option<&StoredResponse>) -> Result<(), StoreError> {
        self.written(self.store.put_held(held, stored).wait())
    }

    /// Records a held request's end together with the response callers
    /// now read from `GET /v1/requests/{id}`, in one transaction. Blocks
    /// until committed.
    pub fn end_held(&self, held: &Held, stored: &StoredResponse) -> Result<(), StoreError> {
        self.written(self.store.end_held(held, stored).wait())
    }

    /// A held request by id.
    pub fn held(&self, id: &str) -> Result<Option<Held>, StoreError> {
        self.store.held(id)
    }

    /// Held requests in `state` (all states when `None`), oldest first, at
    /// most `limit`. An unknown state matches nothing.
    pub fn held_list(&self, state: Option<&str>, limit: usize) -> Result<Vec<Held>, StoreError> {
        match state.map(HeldState::parse_filter) {
            None => self.store.held_list(None, limit),
            Some(Ok(state)) => self.store.held_list(state, limit),
            Some(Err(_)) => Ok(Vec::new()),
        }
    }

    /// Pending held requests whose deadline is at or before `now_ms`.
    pub fn held_due(&self, now_ms: u64) -> Result<Vec<Held>, StoreError> {
        self.store.held_due(now_ms)
    }

    /// Number of pending held requests and the creation time of the oldest.
    pub fn pending_summary(&self) -> Result<(u64, Option<u64>), StoreError> {
        let s = self.store.pending_summary()?;
        Ok((s.pending, s.oldest_admitted_ms))
    }

    /// A finished request by id.
    pub fn request(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        self.store.request(id)
    }

    /// The completed request that used `key` for `principal`, if any.
    pub fn idempotent(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotentRecord>, StoreError> {
        self.store.idempotent(principal, key)
    }
}
