//! The transparency-log endpoints (docs/api.md "Transparency log"):
//! `GET /v1/audit/checkpoint` (the newest signed C2SP checkpoint note, with
//! the witness cosignatures the daemon has collected for it appended),
//! `GET /v1/audit/proof/inclusion?index=&size=` (a C2SP tlog-proof) and
//! `GET /v1/audit/proof/consistency?old=&new=`, all `text/plain`; and the
//! read-only C2SP `tlog-tiles` layout under the prefix `/v1/audit/tlog`
//! (`checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`).
//!
//! This module must never run SQLite on an async worker (reads go through
//! the blocking pool) and never serve a proof it did not read in one
//! snapshot with its checkpoint.

use super::Daemon;
use super::config::Role;
use super::errors::ApiError;
use crate::store::cosigned::with_cosignatures;
use crate::store::{AuditLog, StoreError};
use axum::extract::{Query, State, rejection::QueryRejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

type Shared = State<Arc<Daemon>>;

/// Who may read the transparency endpoints (as `GET /v1/audit`; docs/api.md "Roles").
const AUDIT: &[Role] = &[Role::Audit];

/// Runs `f` on the audit log on the blocking pool; a proof that cannot be
/// made for the numbers asked is a 400 naming them.
async fn read<T: Send + 'static>(
    d: &Arc<Daemon>,
    f: impl FnOnce(&AuditLog) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        let log = d
            .host
            .audit()
            .ok_or_else(|| ApiError::not_found("this daemon keeps no audit log"))?;
        f(log).map_err(|e| match e {
            StoreError::Proof { source, .. } => {
                ApiError::bad_request("invalid_proof_request", source.to_string())
            }
            other => ApiError::internal(other.to_string()),
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("audit read task failed: {e}")))?
}

fn text(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /v1/audit/checkpoint`.
pub(super) async fn checkpoint(State(d): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    d.auth(&headers, AUDIT)?;
    let newest = read(&d, |log| {
        Ok(log.latest_note()?.map(|(_, _, note)| {
            // A `.cosigned` file that cannot be used never hides the
            // checkpoint itself: it is served with the log signature alone.
            with_cosignatures(log.path(), &log.public_key(), &note).unwrap_or_else(|e| {
                tracing::warn!("serving the checkpoint without cosignatures: {e}");
                note
            })
        }))
    });
    match newest.await? {
        Some(note) => Ok(text(note)),
        None => Err(ApiError::not_found(
            "no checkpoint has been signed yet (one is signed every `[checkpoints]` interval)",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

/// `GET /v1/audit/proof/inclusion?index=&size=`.
pub(super) async fn inclusion(
    State(d): Shared,
    headers: HeaderMap,
    query: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    d.auth(&headers, AUDIT)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let proof = read(&d, move |log| log.inclusion_proof(q.index, q.size)).await?;
    Ok(text(proof.to_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

/// `GET /v1/audit/proof/consistency?old=&new=`.
pub(super) async fn consistency(
    State(d): Shared,
    headers: HeaderMap,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    d.auth(&headers, AUDIT)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let proof = read(&d, move |log| log.consistency_proof(q.old, q.new)).await?;
    Ok(text(proof.to_text()))
}

/// `GET /v1/audit/tlog/tile/<L>/<N>[.p/<W>]` and
/// `GET /v1/audit/tlog/tile/entries/<N>[.p/<W>]` (C2SP tlog-tiles):
/// `application/octet-stream`, cacheable for good (a tile never changes);
/// 404 for a tile the newest checkpoint does not cover yet.
pub(super) async fn tile(
    State(d): Shared,
    headers: HeaderMap,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    d.auth(&headers, AUDIT)?;
    let tile = crate::audit::tiles::TilePath::parse(&path)
        .map_err(|e| ApiError::bad_request("invalid_tile_path", e.to_string()))?;
    match read(&d, move |log| log.tile(&tile)).await? {
        Some(bytes) => Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response()),
        None => Err(ApiError::not_found(
            "no such tile yet: the newest checkpoint does not cover it",
        )),
    }
}
