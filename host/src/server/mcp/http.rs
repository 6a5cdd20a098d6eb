//! `/mcp` on `warden serve`: MCP over streamable HTTP, stateless (every
//! POST stands alone; no session is kept between requests, so nothing
//! outlives a request and any daemon instance can answer).
//!
//! Before `rmcp` sees a request, this door checks, in order: the daemon is
//! not draining; the `Origin` header, when present, is one of `[mcp]
//! allowed_origins` (else `403 forbidden_origin`, audited — DNS rebinding
//! protection); the bearer token belongs to a principal with the `submit`
//! role (`401` as the rest of the API; a principal without the role is
//! `403 forbidden`, audited); the body fits `[limits] max_body` and
//! arrives within `[http] body_read_timeout`, counted against `[http]
//! max_open_requests`. It must never interpret the JSON-RPC itself, with
//! one exception: an `initialize` from a 2025-11-25 client is answered
//! with an `Mcp-Session-Id` carrying the client's label, which comes back
//! on its later requests ([`client_id`]: no state is kept).

use super::{Caller, McpServer, SessionClient, client_id};
use crate::pipeline::Refusal;
use crate::server::Daemon;
use crate::server::errors::ApiError;
use crate::{Call, Outcome};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};
use rmcp::transport::StreamableHttpServerConfig;
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use std::sync::Arc;
use tower_service::Service;

type Mcp = StreamableHttpService<McpServer, NeverSessionManager>;

/// The `/mcp` route.
pub(crate) fn route(daemon: Arc<Daemon>) -> MethodRouter<Arc<Daemon>> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        // The `Host` check is the SDK's DNS-rebinding guard for servers
        // without authentication; `/mcp` checks `Origin` itself (audited)
        // and needs a bearer token, and the daemon may listen on any name.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(
            usize::try_from(daemon.config.limits.max_body.bytes()).unwrap_or(usize::MAX),
        );
    let handler = McpServer::http(daemon);
    let service: Mcp = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    any(move |State(d): State<Arc<Daemon>>, req: Request| {
        let service = service.clone();
        async move {
            match door(&d, service, req).await {
                Ok(resp) => resp,
                Err(e) => e.into_response(),
            }
        }
    })
}

/// Checks the request, then hands it to `rmcp` with its principal attached.
async fn door(d: &Arc<Daemon>, mut service: Mcp, req: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        if !d.config.mcp.allowed_origins.contains(&origin) {
            let who = token_holder(d, &parts.headers);
            let why = format!(
                "Origin `{origin}` is not in [mcp] allowed_origins (a browser page from another site must not reach /mcp)"
            );
            refuse(d, &who, why.clone(), "origin").await;
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                why,
            ));
        }
    }
    let principal = match d.auth(&parts.headers, crate::server::api::roles::SUBMIT) {
        Ok(p) => p,
        Err(e) => {
            if e.code == "forbidden" {
                let who = token_holder(d, &parts.headers);
                refuse(d, &who, format!("/mcp: {}", e.message), "forbidden").await;
            }
            return Err(e);
        }
    };
    // The SDK keeps no sessions: the id is warden's own, taken off here.
    if let Some(id) = parts.headers.remove(SESSION_ID)
        && let Some(label) = id.to_str().ok().and_then(client_id::from_session_id)
    {
        parts.extensions.insert(SessionClient(label));
    }
    let mut session = None;
    let body = if parts.method == Method::POST {
        let open = crate::server::api::admit_body(d)?;
        let bytes = crate::server::api::read_body(d, body).await?;
        parts.extensions.insert(open_permit(open));
        session = client_id::session_for_initialize(&bytes);
        Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(Caller(principal));
    let req = Request::from_parts(parts, body);
    let Ok(resp) = service.call(req).await;
    let mut resp = resp.map(Body::new);
    if let Some(id) = session.filter(|_| resp.status() == StatusCode::OK)
        && let Ok(value) = axum::http::HeaderValue::from_str(&id)
    {
        resp.headers_mut().insert(SESSION_ID, value);
    }
    Ok(resp)
}

/// The streamable HTTP session header (2025-11-25).
const SESSION_ID: &str = "mcp-session-id";

/// The permit of `[http] max_open_requests`, held while the request runs.
#[derive(Clone)]
struct OpenPermit(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

fn open_permit(p: tokio::sync::OwnedSemaphorePermit) -> OpenPermit {
    OpenPermit(Arc::new(p))
}

/// The name of the principal holding the request's token, or `anonymous`.
fn token_holder(d: &Daemon, headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| d.principals.lookup(t.trim()))
        .map_or_else(|| "anonymous".to_string(), |p| p.name.clone())
}

/// Audits a refusal at the door (`denied`, via `mcp`).
async fn refuse(d: &Daemon, principal: &str, why: String, reason: &str) {
    let mut call = Call::new("", "", serde_json::Value::Null).from_principal(principal, "mcp");
    crate::pipeline::admit::admit(&mut call);
    d.refused(&Refusal::new(Outcome::Denied, why), &call, None, reason)
        .await;
}
