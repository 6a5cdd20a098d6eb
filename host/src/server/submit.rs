//! `POST /v1/requests`: the request path, one straight line.
//!
//! tenant (canonical, bound to the principal) -> idempotency -> route ->
//! breaker -> queue (pool + capability slots) -> attempts (each audited;
//! retried per policy `[retry]`) -> response, stored for
//! `GET /v1/requests/{id}` and, when final, under the idempotency key.
//!
//! Only a final answer is stored under an idempotency key: a retryable one
//! (`503`: `transient`, `overloaded`, an open breaker) releases the key, so
//! a client retrying after `Retry-After` with the same key runs the request
//! again instead of replaying the `503` ([`Answer::is_final`]).

use super::auth::Principal;
use super::errors::ApiError;
use super::metrics::labels;
use super::protect::Admission;
use super::state::StoredResponse;
use super::{Active, Daemon};
use crate::canonical::json_digest;
use crate::router::{Decision, RouteRequest};
use crate::{Call, Capability, InvocationRecord, Outcome, Tenant};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// The body of `POST /v1/requests`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// What is asked for; the route table maps it to a capability.
    pub kind: String,
    /// The function's input.
    pub input: Value,
    /// Tenant the request is made for: routes may match on it, and it
    /// scopes the capability's KV namespace. Parsed into canonical form at
    /// admission ([`crate::tenant`]); the principal must be bound to it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Extra routing attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Deduplicates retries by the client: same key, same principal = same answer.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A finished request: HTTP status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: Value,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl Answer {
    /// Whether the answer is final, so that an idempotency key may replay
    /// it. Every `503` (`transient` after the last attempt, `overloaded`, an
    /// open breaker) tells the client to retry: storing it under the key
    /// would answer every retry with the same `503`.
    pub fn is_final(&self) -> bool {
        self.status != StatusCode::SERVICE_UNAVAILABLE && self.retry_after.is_none()
    }
}

/// Whether a principal bound to `tenants` may read a stored answer: the
/// answer's `tenant` (absent or null: tenant-less) must be one of them. An
/// unreadable `tenant` is readable by no one but auditors.
pub fn may_read_answer(tenants: &crate::tenant::TenantBinding, body: &Value) -> bool {
    match body.get("tenant") {
        None | Some(Value::Null) => tenants.admits(None),
        Some(Value::String(t)) => Tenant::parse(t).is_ok_and(|t| tenants.admits(Some(&t))),
        Some(_) => false,
    }
}

/// HTTP status for an outcome (docs/api.md "Status codes").
pub fn status_for(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Ok => StatusCode::OK,
        Outcome::PendingApproval => StatusCode::ACCEPTED,
        Outcome::InvalidInput | Outcome::CapabilityError | Outcome::BudgetExhausted(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Outcome::NoRoute => StatusCode::NOT_FOUND,
        Outcome::Denied | Outcome::ApprovalDenied => StatusCode::FORBIDDEN,
        Outcome::ApprovalExpired => StatusCode::GONE,
        Outcome::Trap => StatusCode::BAD_GATEWAY,
        Outcome::Transient => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Releases an idempotency key's "in progress" mark (also when the task is
/// cancelled), waking duplicates that wait for it.
struct PendingKey<'a> {
    daemon: &'a Daemon,
    key: (String, String),
    done: watch::Sender<bool>,
}

impl Drop for PendingKey<'_> {
    fn drop(&mut self) {
        self.daemon
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
        let _ = self.done.send(true);
    }
}

enum Claim<'a> {
    Run(Option<PendingKey<'a>>),
    Replay(Answer),
}

impl Daemon {
    /// Runs one request for `principal` to the end (never cancelled by the
    /// client going away: the handler spawns it).
    pub async fn submit(
        self: Arc<Self>,
        principal: Principal,
        mut body: SubmitBody,
    ) -> Result<Answer, ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the daemon is shutting down",
                1,
            ));
        }
        let _active = Active::enter(&self.active);
        if body.kind.is_empty() {
            return Err(ApiError::bad_request("invalid_request", "`kind` is empty"));
        }
        // The tenant's one parse: from here on only its canonical name exists
        // (routing, the fingerprint, a held request, the KV namespace).
        let tenant = match body.tenant.as_deref().map(Tenant::parse).transpose() {
            Ok(t) => t,
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_tenant",
                    e.to_string(),
                ));
            }
        };
        body.tenant = tenant.as_ref().map(ToString::to_string);
        let principal_name = principal.name;
        let answer = if principal.tenants.admits(tenant.as_ref()) {
            self.submit_admitted(&principal_name, &body, tenant.as_ref())
                .await?
        } else {
            // Before the idempotency key is looked at: a replay must not
            // answer for a tenant the principal is (no longer) bound to.
            self.refuse_tenant(&principal_name, &body, tenant.as_ref())
                .await
        };
        Ok(answer)
    }

    /// Claims the idempotency key (if any), runs, and records the answer.
    async fn submit_admitted(
        &self,
        principal: &str,
        body: &SubmitBody,
        tenant: Option<&Tenant>,
    ) -> Result<Answer, ApiError> {
        let fingerprint = json_digest(&json!({
            "kind": body.kind, "input": body.input, "tenant": body.tenant, "attributes": body.attributes,
        }));
        let claim = match &body.idempotency_key {
            Some(key) => self.claim(principal, key, &fingerprint).await?,
            None => Claim::Run(None),
        };
        let pending = match claim {
            Claim::Replay(answer) => return Ok(answer),
            Claim::Run(pending) => pending,
        };
        let answer = self.run(principal, body, tenant).await;
        // A retryable answer releases the key (dropping `pending`) instead
        // of being stored under it.
        let key = body
            .idempotency_key
            .as_deref()
            .filter(|_| answer.is_final())
            .map(|k| (k, fingerprint.as_str()));
        self.record(principal, &answer, key).await;
        drop(pending);
        Ok(answer)
    }

    /// Stores the answer for `GET /v1/requests/{id}` and, with `key`, under
    /// the idempotency key (group commit on the state writer thread; awaited
    /// without a blocking-pool hop).
    async fn record(&self, principal: &str, answer: &Answer, key: Option<(&str, &str)>) {
        let request_id = answer.body["request_id"].as_str().unwrap_or_default();
        let stored = StoredResponse {
            principal: principal.to_string(),
            status: answer.status.as_u16(),
            response: answer.body.clone(),
        };
        let saved = self.state.finish_async(request_id, &stored, key).await;
        if saved.is_err() {
            tracing::error!(
                request_id,
                "recording the response in state.db failed: {saved:?}"
            );
        }
    }

    /// Refuses (`403 denied`, audited with the principal and the tenant) a
    /// request for a tenant the principal is not bound to.
    async fn refuse_tenant(
        &self,
        principal: &str,
        body: &SubmitBody,
        tenant: Option<&Tenant>,
    ) -> Answer {
        let why = match tenant {
            Some(t) => format!(
                "principal `{principal}` is not bound to tenant `{t}` (`tenants` of its [[principal]] in the daemon config)"
            ),
            None => format!(
                "principal `{principal}` is bound to tenants and must name one of them: a tenant-less request is refused"
            ),
        };
        let mut call = Call::new("", "", body.input.clone())
            .with_request_id(crate::new_request_id())
            .admitted_at(SystemTime::now())
            .from_principal(principal, "http");
        call.tenant = tenant.cloned();
        let record = self.host.refuse(None, &call, Outcome::Denied, why).await;
        let mut answer = self.answer_denied_for(&record, None, 1, None, "", "tenant");
        answer.body["error_code"] = json!("tenant_forbidden");
        self.record(principal, &answer, None).await;
        answer
    }

    /// Claims an idempotency key: waits while a duplicate runs, replays a
    /// completed one, refuses a different input under the same key.
    async fn claim<'a>(
        &'a self,
        principal: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Claim<'a>, ApiError> {
        if key.is_empty() || key.len() > 256 {
            return Err(ApiError::bad_request(
                "invalid_request",
                "idempotency_key must be 1 to 256 characters",
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
                    // This request holds the key now (duplicates wait for
                    // it), so the lookup below cannot race another run.
                    let mine = PendingKey {
                        daemon: self,
                        key: map_key,
                        done,
                    };
                    let (p, k) = (principal.to_string(), key.to_string());
                    let recorded = self
                        .state
                        .blocking(move |s| s.idempotent(&p, &k))
                        .await
                        .map_err(ApiError::internal)?;
                    return match recorded {
                        Some(done) => {
                            match self.replay(principal, key, fingerprint, &done).await? {
                                Some(answer) => Ok(Claim::Replay(answer)),
                                // Only earlier versions stored a retryable 503:
                                // the key is free again and this run's final
                                // answer replaces the record.
                                None => Ok(Claim::Run(Some(mine))),
                            }
                        }
                        None => Ok(Claim::Run(Some(mine))),
                    };
                }
                // The first request is running: wait for it, then look again.
                Err(mut rx) => {
                    let _ = rx.wait_for(|done| *done).await;
                }
            }
        }
    }

    /// The answer recorded under a key, to replay; `None` when it is a
    /// retryable `503` (only earlier versions stored those: the key is then
    /// free again).
    async fn replay(
        &self,
        principal: &str,
        key: &str,
        fingerprint: &str,
        done: &super::state::IdempotentRecord,
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
        if done.fingerprint != fingerprint {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!(
                    "idempotency key `{key}` was already used by request {} with a different kind, input, tenant or attributes",
                    done.request_id
                ),
            ));
        }
        let stored = stored
            .filter(|s| s.principal == principal)
            .ok_or_else(|| ApiError::internal("the recorded response is missing"))?;
        let mut body = stored.response;
        body["replayed"] = json!(true);
        self.metrics
            .add("warden_idempotent_replays_total", String::new(), 1);
        Ok(Some(Answer {
            status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
            body,
            retry_after: None,
        }))
    }

    /// Routes and runs the request (every attempt audited).
    async fn run(&self, principal: &str, body: &SubmitBody, tenant: Option<&Tenant>) -> Answer {
        let admitted = SystemTime::now();
        let request_id = crate::new_request_id();
        let deployment = self.deployment();
        let t = Instant::now();
        let decision = deployment.routes.decide(&RouteRequest {
            kind: body.kind.clone(),
            tenant: body.tenant.clone(),
            attributes: body.attributes.clone(),
        });
        self.metrics.observe(
            "warden_stage_seconds",
            labels(&[("stage", "route")]),
            t.elapsed(),
        );
        let mut call = Call {
            capability: String::new(),
            function: String::new(),
            input: body.input.clone(),
            request_id: Some(request_id),
            admitted_at: Some(admitted),
            principal: principal.to_string(),
            tenant: tenant.cloned(),
            via: "http".into(),
            // A no_route refusal also names the table it was made against.
            route: Some(deployment.routes.audit_route(&decision)),
            attempt: 1,
            approvals: Vec::new(),
        };
        let (rule_id, cap_name) = match decision {
            Decision::NoRoute => {
                let why = format!(
                    "no route matches kind `{}`{}",
                    body.kind,
                    body.tenant
                        .as_ref()
                        .map(|t| format!(" for tenant `{t}`"))
                        .unwrap_or_default()
                );
                let record = self.host.refuse(None, &call, Outcome::NoRoute, why).await;
                return self.answer(&record, None, 1, None, "");
            }
            Decision::Route {
                rule_id,
                capability,
                function,
            } => {
                call.capability = capability.clone();
                call.function = function;
                (rule_id, capability)
            }
        };
        let Some(cap) = deployment.capabilities.get(&cap_name).cloned() else {
            let why =
                format!("route `{rule_id}` names capability `{cap_name}`, which is not loaded");
            let record = self.host.refuse(None, &call, Outcome::Denied, why).await;
            return self.answer(&record, None, 1, None, &rule_id);
        };
        // The route's function name becomes its canonical identity once;
        // the approval gate and everything after compare only that.
        let Some(function) = cap.shape.resolve(&call.function) else {
            let why = match cap.typed_params(&call.function, &call.input) {
                Err(why) => why,
                Ok(_) => format!("`{}` does not resolve to one export", call.function),
            };
            let record = self
                .host
                .refuse(Some(&cap), &call, Outcome::InvalidInput, why)
                .await;
            return self.answer(&record, Some(&cap), 1, None, &rule_id);
        };
        call.function = function.as_str().to_string();
        if let Some(need) = cap.policy.approval_for(&function, &call.input) {
            // Approvers are only ever asked about requests that could run.
            if let Err(why) = cap.typed_params(&call.function, &call.input) {
                let record = self
                    .host
                    .refuse(Some(&cap), &call, Outcome::InvalidInput, why)
                    .await;
                return self.answer(&record, Some(&cap), 1, None, &rule_id);
            }
            return self.hold(&cap, &call, body, &rule_id, need).await;
        }
        self.attempts(cap, call, &rule_id).await
    }

    /// Queue, breaker and attempts for a routed request.
    pub(super) async fn attempts(
        &self,
        cap: Arc<Capability>,
        mut call: Call,
        rule_id: &str,
    ) -> Answer {
        let protection = self.protection(cap.name());
        let retry = cap.policy.retry;
        let started = Instant::now();
        let mut last: Option<InvocationRecord> = None;
        loop {
            let probe = match protection.admit() {
                Admission::Refused(wait) => {
                    let why = format!(
                        "the circuit breaker of `{}` is open after consecutive transient failures; retry later",
                        cap.name()
                    );
                    let record = match last {
                        // A retry refused by the breaker ends with the last attempt's outcome.
                        Some(record) => record,
                        None => {
                            self.host
                                .refuse(Some(&cap), &call, Outcome::Transient, why)
                                .await
                        }
                    };
                    return self.answer(
                        &record,
                        Some(&cap),
                        call.attempt,
                        Some(secs(wait)),
                        rule_id,
                    );
                }
                Admission::Probe => true,
                Admission::Pass => false,
            };
            let t = Instant::now();
            let queue = self.config.limits.queue_timeout.get();
            let permits = tokio::time::timeout(queue, async {
                let pool = self.pool.acquire().await;
                let slot = protection.slots.acquire().await;
                (pool, slot)
            })
            .await;
            self.metrics.observe(
                "warden_stage_seconds",
                labels(&[("stage", "queue")]),
                t.elapsed(),
            );
            let Ok((Ok(_pool), Ok(_slot))) = permits else {
                if probe {
                    // Give the probe back: nothing ran.
                    protection.record_not_run();
                }
                self.metrics.add(
                    "warden_queue_timeouts_total",
                    labels(&[("capability", cap.name())]),
                    1,
                );
                let why = format!(
                    "`{}` is at its concurrency limit and no slot freed within {}; retry later",
                    cap.name(),
                    self.config.limits.queue_timeout
                );
                let record = self
                    .host
                    .refuse(Some(&cap), &call, Outcome::Transient, why)
                    .await;
                let mut answer = self.answer(&record, Some(&cap), call.attempt, Some(1), rule_id);
                answer.body["error_code"] = json!("overloaded");
                return answer;
            };
            let record = if self.take_fault(cap.name()) {
                let why =
                    "injected fault ([testing] transient_faults in the daemon config)".to_string();
                self.host
                    .refuse(Some(&cap), &call, Outcome::Transient, why)
                    .await
            } else {
                let t = Instant::now();
                let record = self.invoke_as_task(&cap, &call).await;
                let total = t.elapsed();
                let exec = Duration::from_micros(record.usage.wall_time_us);
                self.metrics.observe(
                    "warden_stage_seconds",
                    labels(&[("stage", "execute")]),
                    exec,
                );
                self.metrics.observe(
                    "warden_stage_seconds",
                    labels(&[("stage", "audit_commit")]),
                    total.saturating_sub(exec),
                );
                record
            };
            drop((_pool, _slot));
            protection.record(record.outcome == Outcome::Transient);
            let delay = retry.next_delay(
                record.outcome,
                call.attempt,
                &record.request_id,
                started.elapsed(),
            );
            match delay {
                Some(delay) => {
                    self.metrics.add(
                        "warden_retries_total",
                        labels(&[
                            ("capability", cap.name()),
                            ("outcome", record.outcome.class()),
                        ]),
                        1,
                    );
                    last = Some(record);
                    tokio::time::sleep(delay).await;
                    call.attempt += 1;
                }
                None => {
                    let retry_after = (record.outcome == Outcome::Transient).then_some(1);
                    return self.answer(&record, Some(&cap), call.attempt, retry_after, rule_id);
                }
            }
        }
    }

    /// Runs one attempt as a task of its own on the runtime. Guest code
    /// yields at every epoch tick (see `sandbox::invoke`), so CPU-bound
    /// guests cannot stall the HTTP server's workers. A task of its own
    /// (not the connection's future) means a client that disconnects
    /// cannot cancel an invocation half way: it still finishes and is
    /// audited; a panic in it is a `transient` failure, not a lost request.
    async fn invoke_as_task(&self, cap: &Arc<Capability>, call: &Call) -> InvocationRecord {
        let (host, cap_for_task, call_for_task) = (self.host.clone(), cap.clone(), call.clone());
        let task =
            tokio::spawn(async move { host.invoke_capability(&cap_for_task, call_for_task).await });
        match task.await {
            Ok(record) => record,
            Err(e) => {
                let why = format!("the invocation task failed: {e}");
                self.host
                    .refuse(Some(cap), call, Outcome::Transient, why)
                    .await
            }
        }
    }

    fn take_fault(&self, capability: &str) -> bool {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match faults.get_mut(capability) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// The response for a final record; counts it in the metrics.
    pub(super) fn answer(
        &self,
        record: &InvocationRecord,
        cap: Option<&Capability>,
        attempts: u32,
        retry_after: Option<u64>,
        rule_id: &str,
    ) -> Answer {
        self.answer_denied_for(record, cap, attempts, retry_after, rule_id, "policy")
    }

    /// [`answer`](Self::answer), counting a `denied` outcome under `denial_reason`.
    fn answer_denied_for(
        &self,
        record: &InvocationRecord,
        cap: Option<&Capability>,
        attempts: u32,
        retry_after: Option<u64>,
        rule_id: &str,
        denial_reason: &str,
    ) -> Answer {
        let outcome = record.outcome;
        let capability = cap.map_or("", |c| c.name());
        self.metrics.add(
            "warden_requests_total",
            labels(&[
                ("capability", capability),
                ("route", rule_id),
                ("outcome", outcome.class()),
            ]),
            1,
        );
        if record.usage.fuel > 0 {
            self.metrics.add(
                "warden_fuel_used_total",
                labels(&[("capability", capability)]),
                record.usage.fuel,
            );
        }
        if let Some(b) = outcome.budget() {
            self.metrics.add(
                "warden_budget_exhaustions_total",
                labels(&[("capability", capability), ("budget", b.as_str())]),
                1,
            );
        }
        if outcome == Outcome::Denied {
            self.metrics.add(
                "warden_denials_total",
                labels(&[("reason", denial_reason)]),
                1,
            );
        }
        let body = json!({
            "request_id": record.request_id,
            "outcome": outcome.as_string(),
            "output": record.output,
            "error": record.error,
            "usage": record.usage,
            "capability": record.capability,
            "function": record.function,
            "route": if rule_id.is_empty() { Value::Null } else { json!(rule_id) },
            "component_digest": record.component_digest,
            "policy_hash": record.policy_hash,
            "attempts": attempts,
            "tenant": record.tenant,
            "audit": record.audit,
            "replayed": false,
        });
        Answer {
            status: status_for(outcome),
            body,
            retry_after,
        }
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
