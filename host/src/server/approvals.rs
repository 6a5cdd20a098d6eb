//! Approval-gated requests (docs/approvals.md): hold, decide, expire, run.
//!
//! A request whose policy `[[approval]]` rules require approval is routed
//! and type-checked, then *held*: persisted in `state.db`, audited as
//! `pending_approval`, answered `202`. Approvers decide through the API;
//! each decision (and each refused attempt to decide) is an `approval`
//! audit entry. On the last approval the request runs against exactly the
//! component digest and policy hash it was held with; if a reload changed
//! either, the approval is void and the request ends `approval_denied`.
//! Denied and expired requests end with their own audit entry. All of a
//! request's entries share its request id.
//!
//! Decisions on held requests are serialized by one lock: two approvers
//! racing on the same request see a consistent count.

use super::Daemon;
use super::auth::Principal;
use super::errors::ApiError;
use super::errors::status_for;
use super::metrics::labels;
use super::state::StoredResponse;
use crate::audit::{Approval, ApprovalDecision, EventKind};
use crate::digest::json_digest;
use crate::pipeline::answer::{Answer, Hold};
use crate::pipeline::{Refusal, admit, gate};
use crate::policy::approval::{Approver, Requirement};
use crate::{Call, Capability, Outcome};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Longest reason an approver may give.
pub const MAX_REASON: usize = 2000;

pub use crate::store::{Decision, Held, HeldState};

/// What the server adds to a held request (persisted as plain data in
/// `store`): the call that runs it, its stored response, who may decide.
trait HeldServer {
    /// The call that runs it, with the decisions attached.
    fn call(&self) -> Call;
    /// The response `GET /v1/requests/{id}` shows for it.
    fn stored(&self, answer: &Answer) -> StoredResponse;
    /// Whether `who` is one of its approvers.
    fn admits(&self, who: &Principal) -> bool;
}

impl HeldServer for Held {
    /// The call that runs it, with the decisions attached.
    fn call(&self) -> Call {
        Call {
            capability: self.capability.clone(),
            function: self.function.clone(),
            input: self.input.clone(),
            request_id: Some(self.request_id.clone()),
            // A held request runs once, at its decision: its request id.
            idempotency_key: None,
            admitted_at: Some(std::time::UNIX_EPOCH + Duration::from_millis(self.admitted_at_ms)),
            principal: self.requester.clone(),
            tenant: self.tenant.clone(),
            via: self.via.clone().unwrap_or_else(|| "http".into()),
            client: self.client.clone(),
            route: self.route.clone(),
            attempt: 1,
            timeout: None,
            approvals: self.decisions.iter().map(Decision::audit).collect(),
            audit_deferred: false,
            audit_then: None,
        }
    }

    /// The response `GET /v1/requests/{id}` shows for it.
    fn stored(&self, answer: &Answer) -> StoredResponse {
        StoredResponse {
            principal: self.requester.clone(),
            status: status_for(answer.outcome).as_u16(),
            response: answer.to_json(),
        }
    }

    fn admits(&self, who: &Principal) -> bool {
        self.approvers.is_empty()
            || self
                .approvers
                .iter()
                .any(|a| Approver::parse(a).is_ok_and(|a| a.admits(&who.name, &who.groups)))
    }
}

/// `POST /v1/approvals/{id}/approve|deny` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why (required, up to [`MAX_REASON`] bytes).
    pub reason: String,
}

impl Daemon {
    /// Holds a routed, gated request: audited as `pending_approval`,
    /// persisted, answered 202. The input has already been typed. The held
    /// request keeps its request id and admission time: when it runs, its
    /// virtual clock reads the time it was admitted.
    pub(super) async fn hold(
        &self,
        cap: &Arc<Capability>,
        call: &Call,
        kind: &str,
        rule_id: Option<String>,
        need: Requirement,
    ) -> Answer {
        let admitted_at_ms = admit::unix_ms(call.admitted_at.unwrap_or(std::time::UNIX_EPOCH));
        let expires = u64::try_from(need.expires.as_millis()).unwrap_or(u64::MAX);
        let expires_at_ms = admitted_at_ms.saturating_add(expires);
        let hold = Hold::of(&need, expires_at_ms);
        let held = Held {
            request_id: call.request_id.clone().unwrap_or_default(),
            state: HeldState::Pending,
            requester: call.principal.clone(),
            kind: kind.to_string(),
            tenant: call.tenant.clone(),
            capability: cap.name().to_string(),
            function: call.function.clone(),
            input: call.input.clone(),
            route_rule: rule_id.clone().unwrap_or_default(),
            route: call.route.clone(),
            binding: cap.binding(),
            rule: need.rule,
            mode: need.mode,
            approvers: hold.approvers.clone(),
            reason: need.reason.clone(),
            admitted_at_ms,
            expires_at_ms,
            decisions: Vec::new(),
            ended_at_ms: None,
            outcome: None,
            end_reason: None,
            via: Some(call.via.clone()),
            client: call.client.clone(),
            run: None,
        };
        let why = format!(
            "held for {} approval (rule {}: {}); expires in {}",
            need.mode.as_str(),
            need.rule,
            need.reason,
            crate::policy::HumanDuration(need.expires)
        );
        let refusal = Refusal::of(cap, Outcome::PendingApproval, why);
        let mut answer = self
            .refused(&refusal, call, rule_id.as_deref(), "policy")
            .await;
        if answer.outcome != Outcome::PendingApproval {
            // The audit entry could not be committed: nothing is held.
            return answer;
        }
        answer.approval = Some(hold);
        let (h, stored) = (held.clone(), held.stored(&answer));
        let saved = self
            .state
            .blocking(move |s| s.put_held(&h, Some(&stored)))
            .await;
        if let Err(saved) = saved {
            tracing::error!(request_id = %held.request_id, "persisting the held request failed: {saved:?}");
            answer.outcome = Outcome::Transient;
            answer.error =
                Some("the request could not be held (state store failure); submit it again".into());
            return answer;
        }
        self.metrics.add(
            "warden_approvals_held_total",
            labels(&[("capability", cap.name())]),
            1,
        );
        answer
    }

    /// One approver's decision on a held request.
    pub async fn decide(
        self: &Arc<Self>,
        who: &Principal,
        id: &str,
        decision: ApprovalDecision,
        reason: &str,
    ) -> Result<Value, ApiError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON {
            return Err(ApiError::bad_request(
                "invalid_reason",
                format!("give a `reason` of 1 to {MAX_REASON} bytes"),
            ));
        }
        let guard = self.approvals_lock.lock().await;
        let mut held = self.load_held(id).await?;
        if held.state != HeldState::Pending {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_pending",
                format!("request {id} is {}, not pending", held.state.as_str()),
            ));
        }
        let now = crate::store::now_ms();
        if now >= held.expires_at_ms {
            self.expire(&mut held).await;
            return Err(ApiError::new(
                StatusCode::GONE,
                "approval_expired",
                format!("request {id} expired before this decision"),
            ));
        }
        let refusal = if who.name == held.requester {
            Some((
                StatusCode::FORBIDDEN,
                "self_approval",
                format!(
                    "`{}` submitted request {id} and cannot decide on it",
                    who.name
                ),
            ))
        } else if held.decisions.iter().any(|d| d.principal == who.name) {
            Some((
                StatusCode::CONFLICT,
                "already_decided",
                format!("`{}` has already decided on request {id}", who.name),
            ))
        } else if !held.admits(who) {
            Some((
                StatusCode::FORBIDDEN,
                "not_an_approver",
                format!(
                    "`{}` is not among the approvers of request {id} ({})",
                    who.name,
                    held.approvers.join(", ")
                ),
            ))
        } else {
            None
        };
        if let Some((status, code, message)) = refusal {
            // A refused decision is evidence too.
            let detail =
                json!({"refused": code, "attempted": decision.as_str(), "message": message});
            self.audit_approval(&held, &who.name, Outcome::Denied, Vec::new(), detail)
                .await
                .map_err(ApiError::internal)?;
            self.metrics
                .add("warden_denials_total", labels(&[("reason", code)]), 1);
            return Err(ApiError::new(status, code, message));
        }
        let d = Decision {
            principal: who.name.clone(),
            decision,
            at_ms: now,
            reason: reason.to_string(),
        };
        held.decisions.push(d.clone());
        let detail = json!({
            "decision": decision.as_str(),
            "approvals_given": held.approvals_given(),
            "approvals_needed": held.mode.required(),
            "rule": held.rule,
        });
        self.audit_approval(&held, &who.name, Outcome::Ok, vec![d.audit()], detail)
            .await
            .map_err(|e| ApiError::unavailable("transient", e, 1))?;
        self.metrics.add(
            "warden_approval_decisions_total",
            labels(&[("decision", decision.as_str())]),
            1,
        );
        if held.run.is_some() {
            // An approval step of a workflow run: nothing runs here; the
            // run goes on (or compensates) from its journal.
            let end = if decision == ApprovalDecision::Denied {
                Some((
                    HeldState::Denied,
                    Outcome::ApprovalDenied,
                    format!("denied by `{}`: {reason}", who.name),
                ))
            } else if held.approvals_given() >= held.mode.required() {
                Some((
                    HeldState::Executed,
                    Outcome::Ok,
                    format!("approved by {} approver(s)", held.approvals_given()),
                ))
            } else {
                None
            };
            match end {
                Some((state, outcome, why)) => {
                    self.end_step_approval(&mut held, state, outcome, why)
                        .await
                        .map_err(ApiError::internal)?;
                    drop(guard);
                    if let Some(step) = &held.run {
                        self.continue_run(&step.run_id);
                    }
                }
                None => self.save_held(&held).await.map_err(ApiError::internal)?,
            }
            return Ok(held.view(crate::store::now_ms()));
        }
        if decision == ApprovalDecision::Denied {
            let why = format!("denied by `{}`: {reason}", who.name);
            self.end(&mut held, HeldState::Denied, Outcome::ApprovalDenied, why)
                .await;
            return Ok(held.view(crate::store::now_ms()));
        }
        // Bound to exactly what the approvers saw.
        let cap = self
            .deployment()
            .capabilities
            .get(&held.capability)
            .cloned();
        let cap = match cap {
            Some(cap) if cap.binding() == held.binding => cap,
            now_loaded => {
                let now_is = now_loaded.map_or("not loaded".to_string(), |c| {
                    format!("digest {} policy {}", c.digest, c.policy_hash)
                });
                let why = format!(
                    "approval void: a reload changed capability `{}` after the request was held (held against digest {} policy {}; now {now_is}); submit it again",
                    held.capability, held.binding.component_digest, held.binding.policy_hash
                );
                self.end(
                    &mut held,
                    HeldState::Denied,
                    Outcome::ApprovalDenied,
                    why.clone(),
                )
                .await;
                return Err(ApiError {
                    details: Some(Box::new(held.view(crate::store::now_ms()))),
                    ..ApiError::new(StatusCode::CONFLICT, "approval_voided", why)
                });
            }
        };
        if held.approvals_given() < held.mode.required() {
            self.save_held(&held).await.map_err(ApiError::internal)?;
            return Ok(held.view(crate::store::now_ms()));
        }
        held.state = HeldState::Approved;
        self.save_held(&held).await.map_err(ApiError::internal)?;
        drop(guard);
        // Re-enters the request path at "execute", with the decisions it
        // was approved with: the gate's decision is not taken again. The
        // input is typed for the same component it was typed for at hold
        // time (the binding checked above).
        let call = held.call();
        let rule_id = Some(held.route_rule.clone()).filter(|r| !r.is_empty());
        let answer = match gate::typed(&cap, &call) {
            Ok(typed) => {
                let params = typed.params;
                self.attempts(&cap, params, call, rule_id).await
            }
            Err(refusal) => {
                self.refused(&refusal, &call, rule_id.as_deref(), "policy")
                    .await
            }
        };
        held.state = HeldState::Executed;
        held.ended_at_ms = Some(crate::store::now_ms());
        held.outcome = Some(answer.outcome.as_string());
        self.finish_held(&held, &answer).await;
        let mut view = held.view(crate::store::now_ms());
        view["result"] = answer.to_json();
        Ok(view)
    }

    /// Ends every pending request past its deadline; at startup, also ends
    /// requests that were running when the daemon stopped (not re-run: they
    /// may have had effects; their audit entries say what happened).
    pub async fn sweep_approvals(self: &Arc<Self>, at_startup: bool) {
        let _guard = self.approvals_lock.lock().await;
        let now = crate::store::now_ms();
        let listed = self
            .state
            .blocking(move |state| {
                let mut all = state.held_due(now)?;
                if at_startup {
                    all.extend(state.held_list(Some(HeldState::Approved.as_str()), usize::MAX)?);
                }
                Ok(all)
            })
            .await;
        let Ok(held) = listed else {
            tracing::error!("listing held requests failed: {listed:?}");
            return;
        };
        for mut h in held {
            match h.state {
                HeldState::Pending if now >= h.expires_at_ms => self.expire(&mut h).await,
                HeldState::Approved => {
                    let why = "the daemon stopped while this approved request was running; it is not re-run automatically (it may have had effects): check the audit chain for its request id and submit it again if needed".to_string();
                    self.end(&mut h, HeldState::Executed, Outcome::Transient, why)
                        .await;
                }
                _ => {}
            }
        }
    }

    /// After a reload: ends every pending request whose capability the
    /// reload changed (digest or policy) or removed, as a decision on it
    /// would (`approval_denied`, audited), so it stops listing as pending.
    /// Returns how many were voided.
    pub(super) async fn void_stale_held(&self) -> usize {
        let _guard = self.approvals_lock.lock().await;
        let listed = self
            .state
            .blocking(|state| state.held_list(Some(HeldState::Pending.as_str()), usize::MAX))
            .await;
        let Ok(pending) = listed else {
            tracing::error!("listing held requests after a reload failed: {listed:?}");
            return 0;
        };
        let deployment = self.deployment();
        let mut voided = 0;
        for mut held in pending {
            if held.run.is_some() {
                // An approval step is bound to its run's pinned plan, not
                // to one capability's version.
                continue;
            }
            let now_loaded = deployment.capabilities.get(&held.capability);
            if now_loaded.is_some_and(|cap| cap.binding() == held.binding) {
                continue;
            }
            let now_is = now_loaded.map_or("not loaded".to_string(), |c| {
                format!("digest {} policy {}", c.digest, c.policy_hash)
            });
            let why = format!(
                "approval void: a reload changed capability `{}` while the request was held (held against digest {} policy {}; now {now_is}); submit it again",
                held.capability, held.binding.component_digest, held.binding.policy_hash
            );
            self.end(&mut held, HeldState::Denied, Outcome::ApprovalDenied, why)
                .await;
            voided += 1;
        }
        voided
    }

    async fn expire(self: &Arc<Self>, held: &mut Held) {
        let why = format!(
            "no {} approval within the rule's expiry ({} of {} given)",
            held.mode.as_str(),
            held.approvals_given(),
            held.mode.required()
        );
        self.metrics.add(
            "warden_approval_expiries_total",
            labels(&[("capability", &held.capability)]),
            1,
        );
        if let Some(step) = held.run.clone() {
            // Expiry is a denial of the approval step (docs/workflows.md).
            match self
                .end_step_approval(held, HeldState::Expired, Outcome::ApprovalExpired, why)
                .await
            {
                Ok(()) => self.continue_run(&step.run_id),
                Err(e) => {
                    tracing::error!(request_id = %held.request_id, "expiring an approval step failed: {e}");
                }
            }
            return;
        }
        self.end(held, HeldState::Expired, Outcome::ApprovalExpired, why)
            .await;
    }

    /// Ends a held request without running it: the final audit entry
    /// (bound to the held digest and policy), the state, the stored response.
    async fn end(&self, held: &mut Held, state: HeldState, outcome: Outcome, why: String) {
        let call = held.call();
        let refusal = Refusal::bound(&held.binding, outcome, why);
        let record = self.host.refuse(&refusal, &call).await;
        let rule_id = Some(held.route_rule.as_str()).filter(|r| !r.is_empty());
        let answer = self.answered(&record, None, rule_id, 1, None, "policy");
        held.state = state;
        held.ended_at_ms = Some(crate::store::now_ms());
        held.outcome = Some(record.outcome.as_string());
        held.end_reason = Some(refusal.why);
        self.finish_held(held, &answer).await;
    }

    /// Persists the end of a held request and wakes long-polls.
    async fn finish_held(&self, held: &Held, answer: &Answer) {
        let latency = held
            .ended_at_ms
            .unwrap_or_default()
            .saturating_sub(held.admitted_at_ms);
        self.metrics.observe(
            "warden_approval_latency_seconds",
            labels(&[("state", held.state.as_str())]),
            Duration::from_millis(latency),
        );
        let (h, stored) = (held.clone(), held.stored(answer));
        if let Err(saved) = self.state.blocking(move |s| s.end_held(&h, &stored)).await {
            tracing::error!(request_id = %held.request_id, "recording the end of a held request failed: {saved:?}");
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn save_held(&self, held: &Held) -> Result<(), String> {
        let h = held.clone();
        self.state.blocking(move |s| s.put_held(&h, None)).await
    }

    pub(super) async fn load_held(&self, id: &str) -> Result<Held, ApiError> {
        let id_owned = id.to_string();
        self.state
            .blocking(move |s| s.held(&id_owned))
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no held request `{id}`")))
    }

    /// An `approval` audit entry for a held request.
    async fn audit_approval(
        &self,
        held: &Held,
        principal: &str,
        outcome: Outcome,
        approvals: Vec<Approval>,
        detail: Value,
    ) -> Result<(), String> {
        let recorder = self.host.recorder();
        let mut entry =
            recorder.event_entry(EventKind::Approval, principal, "http", outcome, &detail);
        entry.request_id = held.request_id.clone();
        entry.route = held.route.clone();
        entry.capability = held.capability.clone();
        entry.component_digest = held.binding.component_digest.parse().ok();
        entry.policy_hash = held.binding.policy_hash.parse().ok();
        entry.function = held.function.clone();
        entry.input_sha256 = json_digest(&held.input).parse().ok();
        entry.approvals = approvals;
        recorder.event(entry).await.map(|_| ()).map_err(|e| {
            format!("the approval could not be recorded in the audit chain ({e}); nothing changed")
        })
    }
}
