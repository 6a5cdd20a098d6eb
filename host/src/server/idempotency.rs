//! The idempotency stage of the daemon's request path: a client that sends
//! the same `idempotency_key` again (same principal) gets the first
//! request's answer, replayed, instead of a second run.
//!
//! While a request holds its key, duplicates wait for it (in this process;
//! the key is claimed before the stored record is looked at, so the lookup
//! cannot race another run). A finished *final* answer is stored under the
//! key with the request's fingerprint (kind, input, tenant, attributes); a
//! duplicate with a different fingerprint is refused `409
//! idempotency_conflict`. A retryable answer (`transient`: `503`) releases
//! the key instead, so a client retrying after `Retry-After` runs the
//! request again ([`Answer::is_final`]).
//!
//! This module must never route, gate or run a request.

use super::Daemon;
use super::errors::ApiError;
use super::metrics::labels;
use super::state::{IdempotentRecord, StoredResponse};
use crate::Call;
use crate::digest::json_digest;
use crate::pipeline::answer::Answer;
use axum::http::StatusCode;
use serde_json::json;
use std::collections::BTreeMap;
use tokio::sync::watch;

/// Longest idempotency key, in bytes.
pub const MAX_KEY: usize = 256;

/// What identifies "the same request" under one key.
pub fn fingerprint(kind: &str, call: &Call, attributes: &BTreeMap<String, String>) -> String {
    json_digest(&json!({
        "kind": kind, "input": call.input, "tenant": call.tenant, "attributes": attributes,
    }))
}

/// Holds an idempotency key while its request runs; releases it when
/// dropped (also when the task is cancelled), waking duplicates that wait.
pub(super) struct PendingKey<'a> {
    daemon: &'a Daemon,
    principal: String,
    key: String,
    fingerprint: String,
    done: watch::Sender<bool>,
}

impl Drop for PendingKey<'_> {
    fn drop(&mut self) {
        self.daemon
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(
                std::mem::take(&mut self.principal),
                std::mem::take(&mut self.key),
            ));
        let _ = self.done.send(true);
    }
}

/// What the idempotency stage decided.
pub(super) enum Claim<'a> {
    /// Run the request (holding the key, if there is one).
    Run(Option<PendingKey<'a>>),
    /// Answer with the stored answer.
    Replay(Box<Answer>),
}

impl Daemon {
    /// Claims an idempotency key: waits while a duplicate runs, replays a
    /// completed one, refuses a different request under the same key.
    pub(super) async fn claim<'a>(
        &'a self,
        principal: &str,
        key: &str,
        fingerprint: String,
    ) -> Result<Claim<'a>, ApiError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("idempotency_key must be 1 to {MAX_KEY} characters"),
            ));
        }
        let map_key = (principal.to_string(), key.to_string());
        loop {
            let claimed = {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match pending.get(&map_key) {
                    Some(rx) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(false);
                        pending.insert(map_key.clone(), rx);
                        Ok(tx)
                    }
                }
            };
            match claimed {
                Ok(done) => {
                    let mine = PendingKey {
                        daemon: self,
                        principal: map_key.0,
                        key: map_key.1,
                        fingerprint,
                        done,
                    };
                    return self.look_up(mine).await;
                }
                // The first request is running: wait for it, then look again.
                Err(mut rx) => {
                    let _ = rx.wait_for(|done| *done).await;
                }
            }
        }
    }

    /// With the key held: the stored answer to replay, if there is one.
    async fn look_up<'a>(&'a self, mine: PendingKey<'a>) -> Result<Claim<'a>, ApiError> {
        let (p, k) = (mine.principal.clone(), mine.key.clone());
        let recorded = self
            .state
            .blocking(move |s| s.idempotent(&p, &k))
            .await
            .map_err(ApiError::internal)?;
        let Some(done) = recorded else {
            return Ok(Claim::Run(Some(mine)));
        };
        match self.replay(&mine, &done).await? {
            Some(answer) => Ok(Claim::Replay(Box::new(answer))),
            // Only earlier versions stored a retryable 503: the key is free
            // again and this run's final answer replaces the record.
            None => Ok(Claim::Run(Some(mine))),
        }
    }

    /// The answer recorded under a key, to replay; `None` when it is a
    /// retryable `503` (only earlier versions stored those).
    async fn replay(
        &self,
        mine: &PendingKey<'_>,
        done: &IdempotentRecord,
    ) -> Result<Option<Answer>, ApiError> {
        let id = done.request_id.clone();
        let stored = self
            .state
            .blocking(move |s| s.request(&id))
            .await
            .map_err(ApiError::internal)?;
        if stored
            .as_ref()
            .is_some_and(|s| s.status == StatusCode::SERVICE_UNAVAILABLE.as_u16())
        {
            return Ok(None);
        }
        if done.fingerprint != mine.fingerprint {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!(
                    "idempotency key `{}` was already used by request {} with a different kind, input, tenant or attributes",
                    mine.key, done.request_id
                ),
            ));
        }
        let stored = stored
            .filter(|s| s.principal == mine.principal)
            .ok_or_else(|| ApiError::internal("the recorded response is missing"))?;
        let mut answer: Answer = serde_json::from_value(stored.response).map_err(|e| {
            ApiError::internal(format!(
                "the response stored for request {} does not decode: {e}",
                done.request_id
            ))
        })?;
        answer.replayed = true;
        self.metrics
            .add("warden_idempotent_replays_total", labels(&[]), 1);
        Ok(Some(answer))
    }

    /// Stores the answer for `GET /v1/requests/{id}` and, with `key`, under
    /// its idempotency key (group commit on the state writer thread).
    pub(super) async fn remember(
        &self,
        principal: &str,
        answer: &Answer,
        key: Option<&PendingKey<'_>>,
    ) {
        let stored = StoredResponse {
            principal: principal.to_string(),
            status: super::errors::answer_status(answer).as_u16(),
            response: answer.to_json(),
        };
        let key = key.map(|k| (k.key.as_str(), k.fingerprint.as_str()));
        let saved = self
            .state
            .finish_async(&answer.request_id, &stored, key)
            .await;
        if saved.is_err() {
            tracing::error!(
                request_id = answer.request_id,
                "recording the response in state.db failed: {saved:?}"
            );
        }
    }
}
