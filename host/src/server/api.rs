//! HTTP routes (docs/api.md). Every handler authenticates first, then
//! checks its role; client mistakes are 4xx with a machine-readable code.

use super::Daemon;
use super::config::Role;
use super::errors::ApiError;
use super::submit::SubmitBody;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

type Shared = State<Arc<Daemon>>;

/// Roles of each endpoint (docs/api.md "Roles").
pub mod roles {
    use super::Role;
    /// `POST /v1/requests`.
    pub const SUBMIT: &[Role] = &[Role::Submit];
    /// `GET /v1/requests/{id}` (submitters see only their own).
    pub const READ_REQUEST: &[Role] = &[Role::Submit, Role::Audit];
    /// `GET /v1/capabilities[/{name}]`.
    pub const INVENTORY: &[Role] = &[Role::Submit, Role::Audit, Role::Admin];
    /// `GET /v1/routes`.
    pub const ROUTES: &[Role] = &[Role::Audit, Role::Admin];
    /// `GET /v1/audit`, `GET /v1/audit/checkpoints`, `GET /v1/audit/checkpoint`,
    /// `GET /v1/audit/proof/*`.
    pub const AUDIT: &[Role] = &[Role::Audit];
    /// `POST /v1/admin/reload`.
    pub const ADMIN: &[Role] = &[Role::Admin];
    /// `GET /metrics`.
    pub const METRICS: &[Role] = &[Role::Audit, Role::Admin];
    /// `GET /v1/approvals[/{id}]`.
    pub const READ_APPROVALS: &[Role] = &[Role::Approve, Role::Audit];
    /// `POST /v1/approvals/{id}/approve|deny`.
    pub const DECIDE: &[Role] = &[Role::Approve];
}

/// The API router.
pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/requests", post(submit))
        .route("/v1/requests/{id}", get(request))
        .route("/v1/capabilities", get(capabilities))
        .route("/v1/capabilities/{name}", get(capability))
        .route("/v1/routes", get(routes))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/checkpoints", get(checkpoints))
        .route("/v1/audit/checkpoint", get(super::transparency::checkpoint))
        .route(
            "/v1/audit/proof/inclusion",
            get(super::transparency::inclusion),
        )
        .route(
            "/v1/audit/proof/consistency",
            get(super::transparency::consistency),
        )
        .route(
            "/v1/audit/tlog/checkpoint",
            get(super::transparency::checkpoint),
        )
        .route(
            "/v1/audit/tlog/tile/{*path}",
            get(super::transparency::tile),
        )
        .route("/v1/approvals", get(approvals))
        .route("/v1/approvals/{id}", get(approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(deny))
        .route("/v1/runs", get(super::workflows::list))
        .route("/v1/runs/{id}", get(super::workflows::show))
        .route("/v1/runs/{id}/cancel", post(run_cancel))
        .route("/v1/runs/{id}/resume", post(run_resume))
        .route("/v1/admin/reload", post(reload))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(daemon)
}

impl Daemon {
    pub(super) fn auth(
        &self,
        headers: &HeaderMap,
        roles: &[Role],
    ) -> Result<super::auth::Principal, ApiError> {
        self.principals.authorize(headers, roles).inspect_err(|e| {
            self.metrics.add(
                "warden_denials_total",
                super::metrics::labels(&[("reason", e.code)]),
                1,
            );
        })
    }
}

/// Admits a request that carries a body, before a byte of the body is
/// read: refused with `503` and `Retry-After` while the daemon drains or
/// while `[http] max_open_requests` requests already hold one. The permit
/// lives as long as the request (move it into any task that outlives the
/// handler).
pub(super) fn admit_body(d: &Daemon) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    if d.draining.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable(
            "shutting_down",
            "the daemon is shutting down",
            1,
        ));
    }
    d.open_requests.clone().try_acquire_owned().map_err(|_| {
        d.metrics
            .add("warden_requests_shed_total", super::metrics::labels(&[]), 1);
        ApiError::unavailable(
            "overloaded",
            format!(
                "{} requests are already open; retry later",
                d.config.http.max_open_requests
            ),
            1,
        )
    })
}

/// Reads a JSON body within the body limit and `[http] body_read_timeout`;
/// client mistakes are 4xx codes.
async fn read_json<T: serde::de::DeserializeOwned>(d: &Daemon, body: Body) -> Result<T, ApiError> {
    let bytes = read_body(d, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data if e.to_string().contains("unknown field") => {
                ApiError::bad_request("unknown_field", e.to_string())
            }
            Category::Data => ApiError::bad_request("invalid_request", e.to_string()),
            _ => ApiError::bad_request("malformed_json", e.to_string()),
        }
    })
}

/// Reads a body within the body limit and `[http] body_read_timeout`.
pub(super) async fn read_body(d: &Daemon, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let limit = usize::try_from(d.config.limits.max_body.bytes()).unwrap_or(usize::MAX);
    let deadline = d.config.http.body_read_timeout;
    let bytes = tokio::time::timeout(deadline.get(), axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            d.metrics.add(
                "warden_connections_closed_total",
                super::metrics::labels(&[("reason", "body_timeout")]),
                1,
            );
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {deadline}"),
            )
        })?
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is over the limit of {}",
                    d.config.limits.max_body
                ),
            )
        })?;
    Ok(bytes)
}

async fn submit(State(d): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, roles::SUBMIT)?;
    let open = admit_body(&d)?;
    let body: SubmitBody = read_json(&d, body).await?;
    // Run to the end even if the client goes away: the audit entry and the
    // idempotency record must not depend on the connection.
    let task = tokio::spawn({
        let run = d.clone().submit(principal, body);
        async move {
            let answer = run.await;
            drop(open);
            answer
        }
    });
    let answer = task
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))??;
    let (status, replayed) = (super::errors::answer_status(&answer), answer.replayed);
    let mut resp = (status, axum::Json(&answer)).into_response();
    if let Some(secs) = answer.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The body of `POST /v1/runs/{id}/cancel|resume` (empty: no reason).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunControl {
    #[serde(default)]
    reason: Option<String>,
}

async fn run_control(d: &Daemon, body: Body) -> Result<Option<String>, ApiError> {
    let bytes = read_body(d, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body: RunControl = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    Ok(body.reason)
}

async fn run_cancel(
    State(d): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, super::workflows::roles::CONTROL_RUNS)?;
    let _open = admit_body(&d)?;
    let reason = run_control(&d, body).await?;
    super::workflows::cancel(d, principal, id, reason).await
}

async fn run_resume(
    State(d): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, super::workflows::roles::CONTROL_RUNS)?;
    let _open = admit_body(&d)?;
    let reason = run_control(&d, body).await?;
    super::workflows::resume(d, principal, id, reason).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestQuery {
    /// Long-poll: wait up to this long (e.g. `30s`) while the request is
    /// pending approval.
    wait: Option<String>,
}

/// Longest long-poll.
pub(super) const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn request(
    State(d): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<RequestQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, roles::READ_REQUEST)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let wait = match q.wait.as_deref() {
        None => std::time::Duration::ZERO,
        Some(w) => crate::policy::HumanDuration::parse(w)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("wait: {e}")))?
            .get()
            .min(MAX_WAIT),
    };
    Ok(axum::Json(d.stored_request(&principal, &id, wait).await?).into_response())
}

impl Daemon {
    /// `GET /v1/requests/{id}`'s body for `principal`: waits up to `wait`
    /// while the request is held, then answers what is stored (also read
    /// by the MCP resource `warden://requests/{id}`).
    pub(super) async fn stored_request(
        &self,
        principal: &super::auth::Principal,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<Value, ApiError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut changes = self.changes.subscribe();
        let stored = loop {
            changes.mark_unchanged();
            let stored = {
                let id = id.to_string();
                self.state
                    .blocking(move |s| s.request(&id))
                    .await
                    .map_err(ApiError::internal)?
            };
            let pending = stored
                .as_ref()
                .is_some_and(|s| s.status == StatusCode::ACCEPTED.as_u16());
            if !pending
                || tokio::time::timeout_at(deadline, changes.changed())
                    .await
                    .is_err()
            {
                break stored;
            }
        };
        let may_read_all = principal.roles.contains(&Role::Audit);
        // A submitter reads its own answers, and only for tenants it is still bound to.
        let own = |s: &super::state::StoredResponse| {
            s.principal == principal.name
                && super::submit::may_read_answer(&principal.tenants, &s.response)
        };
        match stored {
            Some(s) if may_read_all || own(&s) => {
                Ok(json!({"status": s.status, "principal": s.principal, "response": s.response}))
            }
            _ => Err(ApiError::not_found(format!(
                "no request `{id}` visible to you"
            ))),
        }
    }
}

pub(super) fn inventory(d: &Daemon, cap: &crate::Capability) -> Value {
    let imports: Vec<Value> = cap
        .shape
        .imports
        .iter()
        .map(|i| {
            let grant = i.interface.as_ref().and_then(|n| cap.policy.grants(n));
            json!({
                "name": i.name,
                "granted": grant.is_some(),
                "grant": grant.map(|g| json!({"as": g.name.to_string(), "settings": g.kind})),
            })
        })
        .collect();
    let exports: Vec<Value> = cap
        .shape
        .exports
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "signature": e.signature(),
                "callable": e.callable,
                "input_schema": e.input_schema(),
                "output_schema": e.output_schema(),
            })
        })
        .collect();
    let p = d.protection(cap.name());
    json!({
        "name": cap.name(),
        "digest": cap.digest,
        "signer": cap.signer,
        "key_id": cap.key_id,
        "policy_hash": cap.policy_hash,
        "size": cap.size,
        "imports": imports,
        "budget": cap.policy.budget,
        "retry": cap.policy.retry,
        "exports": exports,
        "concurrency": {"limit": p.concurrency, "in_flight": p.busy()},
        "breaker": p.state().as_str(),
    })
}

async fn capabilities(State(d): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    d.auth(&headers, roles::INVENTORY)?;
    let dep = d.deployment();
    let caps: Vec<Value> = dep
        .capabilities
        .values()
        .map(|c| inventory(&d, c))
        .collect();
    Ok(axum::Json(json!({"capabilities": caps})).into_response())
}

async fn capability(
    State(d): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    d.auth(&headers, roles::INVENTORY)?;
    let dep = d.deployment();
    let cap = dep
        .capabilities
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no capability `{name}` is loaded")))?;
    Ok(axum::Json(inventory(&d, cap)).into_response())
}

async fn routes(State(d): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    d.auth(&headers, roles::ROUTES)?;
    let dep = d.deployment();
    Ok(axum::Json(json!({"hash": dep.routes.hash(), "rules": dep.routes.rules()})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: usize,
    capability: Option<String>,
    outcome: Option<String>,
}

fn default_limit() -> usize {
    100
}

/// Most entries one `GET /v1/audit` returns.
const MAX_AUDIT_PAGE: usize = 1000;

/// Most rows one `GET /v1/audit` examines, so a filter that matches rarely
/// (or not at all) costs a bounded amount of work per page; the client
/// continues from `next_after`.
pub(crate) const MAX_AUDIT_SCAN: usize = 10_000;

/// Runs a read of the audit store on the blocking pool.
async fn audit_read<T: Send + 'static>(
    d: &Arc<Daemon>,
    f: impl FnOnce(&crate::store::AuditLog) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        let log = d
            .host
            .audit()
            .ok_or_else(|| ApiError::internal("no audit log"))?;
        f(log).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("audit read task failed: {e}")))?
}

async fn audit(
    State(d): Shared,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    d.auth(&headers, roles::AUDIT)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let filter = crate::store::EntryFilter {
        capability: q.capability,
        outcome: q.outcome,
    };
    let from = q.after.saturating_add(1);
    let limit = q.limit.clamp(1, MAX_AUDIT_PAGE);
    let (page, (head, head_hash)) = audit_read(&d, move |log| {
        let page = log.page(from, limit, MAX_AUDIT_SCAN, &filter)?;
        Ok((page, log.head()))
    })
    .await?;
    Ok(axum::Json(json!({
        "entries": page.entries,
        "next_after": page.next_after,
        "more": !page.complete,
        "head": {"seq": head, "hash": head_hash},
    }))
    .into_response())
}

async fn checkpoints(State(d): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    d.auth(&headers, roles::AUDIT)?;
    let cps = audit_read(&d, |log| log.checkpoints()).await?;
    Ok(axum::Json(json!({"checkpoints": cps})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsQuery {
    #[serde(default = "default_state")]
    state: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_state() -> String {
    "pending".into()
}

async fn approvals(
    State(d): Shared,
    headers: HeaderMap,
    query: Result<Query<ApprovalsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    d.auth(&headers, roles::READ_APPROVALS)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let state = super::approvals::HeldState::parse_filter(&q.state)
        .map_err(|e| ApiError::bad_request("invalid_query", e))?;
    let limit = q.limit.clamp(1, MAX_AUDIT_PAGE);
    let held = d
        .state
        .blocking(move |s| s.held_list(state.map(|s| s.as_str()), limit))
        .await
        .map_err(ApiError::internal)?;
    let now = crate::store::now_ms();
    let views: Vec<Value> = held.iter().map(|h| h.view(now)).collect();
    Ok(axum::Json(json!({"approvals": views})).into_response())
}

async fn approval(
    State(d): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    d.auth(&headers, roles::READ_APPROVALS)?;
    let held = d.load_held(&id).await?;
    Ok(axum::Json(held.view(crate::store::now_ms())).into_response())
}

async fn approve(
    State(d): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    decide(
        d,
        headers,
        id,
        body,
        crate::audit::ApprovalDecision::Approved,
    )
    .await
}

async fn deny(
    State(d): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    decide(d, headers, id, body, crate::audit::ApprovalDecision::Denied).await
}

async fn decide(
    d: Arc<Daemon>,
    headers: HeaderMap,
    id: String,
    body: Body,
    decision: crate::audit::ApprovalDecision,
) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, roles::DECIDE)?;
    let open = admit_body(&d)?;
    let body: super::approvals::DecisionBody = read_json(&d, body).await?;
    // Run to the end even if the approver goes away (the approved request
    // executes inside this call).
    let task = tokio::spawn(async move {
        let view = d.decide(&principal, &id, decision, &body.reason).await;
        drop(open);
        view
    });
    let view = task
        .await
        .map_err(|e| ApiError::internal(format!("decision task failed: {e}")))??;
    Ok(axum::Json(view).into_response())
}

async fn reload(State(d): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, roles::ADMIN)?;
    match d.reload(&principal.name, "http").await {
        Ok(detail) => Ok(axum::Json(detail).into_response()),
        Err(errors) => Err(ApiError {
            details: Some(Box::new(json!(errors))),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reload_rejected",
                format!(
                    "the new configuration does not validate ({} problem(s)); nothing changed",
                    errors.len()
                ),
            )
        }),
    }
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(d): Shared) -> Response {
    if d.draining.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "draining"})),
        )
            .into_response();
    }
    axum::Json(json!({"status": "ready"})).into_response()
}

async fn metrics(State(d): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    use super::metrics::{AuditCommits, Scrape};
    d.auth(&headers, roles::METRICS)?;
    let caps: Vec<(String, std::sync::Arc<super::protect::Protection>)> = d
        .protection
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (pending, oldest) = d
        .state
        .blocking(|s| s.pending_summary())
        .await
        .unwrap_or((0, None));
    let age = oldest.map_or(0.0, |t| {
        crate::store::now_ms().saturating_sub(t) as f64 / 1000.0
    });
    let (needs_attention, oldest_needs_attention_age_seconds) = d.needs_attention().await;
    let scrape = Scrape {
        needs_attention,
        oldest_needs_attention_age_seconds,
        breakers: caps
            .iter()
            .map(|(name, p)| (name.clone(), i64::from(p.state().gauge())))
            .collect(),
        in_flight: caps
            .iter()
            .map(|(name, p)| (name.clone(), i64::from(p.busy())))
            .collect(),
        requests_active: i64::try_from(*d.active.borrow()).unwrap_or(i64::MAX),
        pending_approvals: i64::try_from(pending).unwrap_or(i64::MAX),
        oldest_pending_approval_age_seconds: age,
        audit_commits: d.host.audit().map(|log| {
            let s = log.stats();
            AuditCommits {
                batch_sizes: s.histogram,
                commits: s.commits,
                entries: s.entries,
                wait: std::time::Duration::from_nanos(s.wait_nanos),
            }
        }),
    };
    let mut out = String::new();
    d.metrics.render(&mut out, scrape);
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::metrics::CONTENT_TYPE),
    );
    Ok(resp)
}
