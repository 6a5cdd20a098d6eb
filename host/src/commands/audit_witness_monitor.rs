//! The monitoring side of `warden audit witness --serve` (docs/audit.md
//! "Witnesses", "Monitoring a witness"): what the witness has cosigned,
//! readable by monitors, under the same prefix as `add-checkpoint`.
//!
//! C2SP tlog-witness defines a *monitoring prefix* but leaves its read API
//! to be designed ("TBD Monitor Retrieval Mechanism"); this follows the
//! common practice of the transparency-dev witness
//! (`/witness/v0/logs`, `/witness/v0/logs/<log id>/checkpoint`), with the
//! log id being the lowercase hex SHA-256 of the origin line:
//!
//! - `GET /logs`: `{"logs":[{"id","origin","size"}]}` for every log held;
//! - `GET /logs/<id>/checkpoint`: the newest checkpoint the witness
//!   cosigned for that log, as a signed note carrying the log's signature
//!   and the witness's `cosignature/v1` line (`text/plain`), or 404.
//!
//! This module must never write the state file and never serve a
//! checkpoint the witness did not cosign.

use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use warden_host::audit::witness::WitnessedLog;
use warden_host::store::witness_state::read_state;

/// The monitoring id of a log: lowercase hex SHA-256 of its origin line.
pub fn log_id(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// Reads the state file on the blocking pool.
async fn logs(state: Arc<PathBuf>) -> Result<Vec<WitnessedLog>, Response> {
    let read = tokio::task::spawn_blocking(move || read_state(&state)).await;
    match read {
        Ok(Ok(s)) => Ok(s.logs),
        Ok(Err(e)) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()),
    }
}

/// The monitoring routes, reading the witness's state file `state`.
pub fn routes(state: PathBuf) -> axum::Router {
    let state = Arc::new(state);
    let list = state.clone();
    axum::Router::new()
        .route(
            "/logs",
            axum::routing::get(move || {
                let state = list.clone();
                async move {
                    let logs = match logs(state).await {
                        Ok(l) => l,
                        Err(r) => return r,
                    };
                    let body: Vec<_> = logs
                        .iter()
                        .map(|l| {
                            serde_json::json!({
                                "id": log_id(&l.origin),
                                "origin": l.origin,
                                "size": l.size,
                            })
                        })
                        .collect();
                    axum::Json(serde_json::json!({ "logs": body })).into_response()
                }
            }),
        )
        .route(
            "/logs/{id}/checkpoint",
            axum::routing::get(move |UrlPath(id): UrlPath<String>| {
                let state = state.clone();
                async move {
                    let logs = match logs(state).await {
                        Ok(l) => l,
                        Err(r) => return r,
                    };
                    match logs
                        .iter()
                        .find(|l| log_id(&l.origin) == id && l.cosignature.is_some())
                    {
                        Some(l) => (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                            l.cosigned(),
                        )
                            .into_response(),
                        None => (
                            StatusCode::NOT_FOUND,
                            format!(
                                "this witness holds no cosigned checkpoint for log id {id:?} \
                                 (ids are the hex SHA-256 of the origin line; see GET /logs)\n"
                            ),
                        )
                            .into_response(),
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_id_is_the_hex_sha256_of_the_origin_line() {
        // SHA-256("") is the well-known e3b0…b855.
        assert_eq!(
            log_id(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(log_id("warden/audit/x").len(), 64);
    }
}
