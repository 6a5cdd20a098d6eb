//! `POST /v1/requests`: the daemon's request path, one straight line
//! ([`crate::pipeline`] draws it and owns the stages):
//!
//! authenticate (the HTTP handler) -> admit (request id, admission time,
//! tenant bound to the principal) -> idempotency ([`super::idempotency`])
//! -> route -> gate -> hold ([`super::approvals`]) or attempts
//! ([`super::attempts`]: queue, breaker, each attempt executed and
//! audited, retried per policy `[retry]`) -> answer, stored for
//! `GET /v1/requests/{id}` and, when final, under the idempotency key.
//!
//! `POST /v1/requests` and MCP `tools/call` ([`super::mcp`]) both enter
//! here ([`Daemon::submit_via`]); only the [`Transport`] recorded in the
//! audit entry differs.
//!
//! This module sequences the stages; it must never type inputs, evaluate
//! approval rules, run guest code or append audit entries itself.

use super::auth::Principal;
use super::errors::ApiError;
use super::idempotency::Claim;
use super::metrics::labels;
use super::{Active, Daemon};
use crate::pipeline::answer::Answer;
use crate::pipeline::gate::{self, Gate};
use crate::pipeline::route::{self, Routed};
use crate::pipeline::{Refusal, admit};
use crate::{Call, InvocationRecord, Outcome, Tenant};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The `capability` and `route` metric label of a request refused before
/// a capability (or route) was chosen.
pub const NO_LABEL: &str = "(none)";

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
    /// For a kind routed to a workflow: wait up to this long (e.g. `10s`,
    /// at most 60s) for the run to end before answering.
    #[serde(default)]
    pub wait: Option<String>,
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

/// How a request reached the daemon: recorded in its audit entries
/// (`request_kind`, and the client in `detail`).
#[derive(Debug, Clone)]
pub struct Transport {
    /// `http` or `mcp`.
    pub via: &'static str,
    /// The client program (`name/version`), when the transport names one.
    pub client: Option<String>,
}

impl Transport {
    /// `POST /v1/requests`.
    pub fn http() -> Transport {
        Transport {
            via: "http",
            client: None,
        }
    }
}

impl Daemon {
    /// Runs one request for an authenticated `principal` to the end (never
    /// cancelled by the client going away: the handler spawns it).
    pub async fn submit(
        self: Arc<Self>,
        principal: Principal,
        body: SubmitBody,
    ) -> Result<Answer, ApiError> {
        self.submit_via(principal, body, Transport::http()).await
    }

    /// [`submit`](Self::submit) for a request that came over `transport`:
    /// the one entry of every transport into the request path.
    pub async fn submit_via(
        self: Arc<Self>,
        principal: Principal,
        body: SubmitBody,
        transport: Transport,
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
        // Admit: the tenant's one parse (from here on only its canonical
        // name exists), the request id and the admission time.
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
        let SubmitBody {
            kind,
            input,
            attributes,
            idempotency_key,
            wait,
            ..
        } = body;
        let wait = match wait.as_deref().map(crate::policy::HumanDuration::parse) {
            None => None,
            Some(Ok(w)) => Some(w.get()),
            Some(Err(e)) => {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!("wait: {e}"),
                ));
            }
        };
        let mut call = Call {
            tenant,
            client: transport.client,
            ..Call::new("", "", input).from_principal(&principal.name, transport.via)
        };
        admit::admit(&mut call);
        // What `warden:host/invocation` answers: the client's key, scoped
        // to the principal as warden's own idempotency is.
        call.idempotency_key = idempotency_key
            .as_ref()
            .map(|key| format!("{}:{key}", call.principal));
        if !principal.tenants.admits(call.tenant.as_ref()) {
            // Before the idempotency key is looked at: a replay must not
            // answer for a tenant the principal is (no longer) bound to.
            return Ok(self.refuse_tenant(&call).await);
        }
        // Idempotency: replay a finished answer, or hold the key while this runs.
        let claim = match &idempotency_key {
            Some(key) => {
                let fingerprint = super::idempotency::fingerprint(&kind, &call, &attributes);
                self.claim(&call.principal, key, fingerprint).await?
            }
            None => Claim::Run(None),
        };
        let pending = match claim {
            Claim::Replay(answer) => return Ok(*answer),
            Claim::Run(pending) => pending,
        };
        let principal = call.principal.clone();
        let answer = self.route_and_run(call, &kind, &attributes, wait).await;
        // A retryable answer releases the key (dropping `pending`) instead
        // of being stored under it.
        let keep = pending.as_ref().filter(|_| answer.is_final());
        self.remember(&principal, &answer, keep).await;
        drop(pending);
        Ok(answer)
    }

    /// Route -> a workflow run ([`super::workflows`]), or gate -> hold or
    /// attempts.
    async fn route_and_run(
        self: &Arc<Self>,
        mut call: Call,
        kind: &str,
        attributes: &BTreeMap<String, String>,
        wait: Option<std::time::Duration>,
    ) -> Answer {
        let deployment = self.deployment();
        let t = Instant::now();
        let request = crate::router::RouteRequest {
            kind: kind.to_string(),
            tenant: call.tenant.as_ref().map(ToString::to_string),
            attributes: attributes.clone(),
        };
        if let Some((rule_id, workflow)) = deployment.routes.workflow_for(&request) {
            self.metrics.observe(
                "warden_stage_seconds",
                labels(&[("stage", "route")]),
                t.elapsed(),
            );
            return self
                .start_run(deployment, call, &rule_id, &workflow, wait)
                .await;
        }
        let routed = route::by_kind(
            &deployment.routes,
            &deployment.capabilities,
            kind,
            attributes,
            &mut call,
        );
        self.metrics.observe(
            "warden_stage_seconds",
            labels(&[("stage", "route")]),
            t.elapsed(),
        );
        let Routed { cap, rule_id } = match routed {
            Ok(routed) => routed,
            Err((refusal, rule_id)) => {
                return self
                    .refused(&refusal, &call, rule_id.as_deref(), "policy")
                    .await;
            }
        };
        let params = match gate::gate(&cap, &call) {
            Ok(Gate::Open(typed)) => typed.params,
            Ok(Gate::Hold(_, need)) => return self.hold(&cap, &call, kind, rule_id, need).await,
            Err(refusal) => {
                return self
                    .refused(&refusal, &call, rule_id.as_deref(), "policy")
                    .await;
            }
        };
        self.attempts(&cap, params, call, rule_id).await
    }

    /// Refuses (`403 denied`, audited with the principal and the tenant) a
    /// request for a tenant the principal is not bound to.
    async fn refuse_tenant(&self, call: &Call) -> Answer {
        let why = match &call.tenant {
            Some(t) => format!(
                "principal `{}` is not bound to tenant `{t}` (`tenants` of its [[principal]] in the daemon config)",
                call.principal
            ),
            None => format!(
                "principal `{}` is bound to tenants and must name one of them: a tenant-less request is refused",
                call.principal
            ),
        };
        let refusal = Refusal::new(Outcome::Denied, why);
        let mut answer = self.refused(&refusal, call, None, "tenant").await;
        answer.error_code = Some("tenant_forbidden".into());
        self.remember(&call.principal, &answer, None).await;
        answer
    }

    /// Audits a refusal and answers it.
    pub(super) async fn refused(
        &self,
        refusal: &Refusal,
        call: &Call,
        rule_id: Option<&str>,
        denial_reason: &str,
    ) -> Answer {
        let record = self.host.refuse(refusal, call).await;
        let capability = refusal.binding.as_ref().map(|_| record.capability.as_str());
        self.answered(&record, capability, rule_id, 1, None, denial_reason)
    }

    /// The answer for an audited record; counts it in the metrics.
    /// (Metric label for "no capability / no route": [`NO_LABEL`].)
    pub(super) fn answered(
        &self,
        record: &InvocationRecord,
        capability: Option<&str>,
        rule_id: Option<&str>,
        attempts: u32,
        retry_after: Option<u64>,
        denial_reason: &str,
    ) -> Answer {
        let outcome = record.outcome;
        // Never an empty label value (Prometheus reads it as "no label"):
        // a request refused before a capability was chosen is `(none)`.
        let capability = capability.unwrap_or(NO_LABEL);
        self.metrics.add(
            "warden_requests_total",
            labels(&[
                ("capability", capability),
                ("route", rule_id.unwrap_or(NO_LABEL)),
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
        Answer {
            retry_after,
            ..Answer::of(record, rule_id, attempts)
        }
    }
}
