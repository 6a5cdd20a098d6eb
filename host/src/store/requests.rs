//! The request state the daemon persists (`state.db`, or another backend
//! behind [`super::RequestStore`]): finished responses, idempotency keys and
//! held (approval-gated) requests, as plain serde data.
//!
//! These types carry no storage and no server behaviour; what is stored is
//! their serde JSON form, so renaming a field here changes `state.db`'s
//! records (add fields with `#[serde(default)]`, never rename). `Held::view`
//! lives here (not in `server::approvals`) because Rust only allows inherent
//! methods next to the type; the server's behaviour on a held request
//! (`call`, `stored`, `admits`) is an extension trait in `server::approvals`,
//! which keeps this module free of the request pipeline's types.
//!
//! This module must never touch a database or depend on `server`.

use crate::audit::{Approval, ApprovalDecision, RouteDecision};
use crate::digest::Hash256;
use crate::policy::approval::Mode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// File name of the request state database inside the data directory.
pub const STATE_FILE: &str = "state.db";

/// A stored response: what `GET /v1/requests/{id}` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// Who submitted it.
    pub principal: String,
    /// HTTP status sent.
    pub status: u16,
    /// Response body JSON.
    pub response: Value,
}

/// A completed idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentRecord {
    /// Fingerprint of the request that used the key first.
    pub fingerprint: String,
    /// Its request id.
    pub request_id: String,
}

/// What a request was bound to when it was held: the exact component and
/// policy approvers see (and the payload retention and replayability that
/// go with them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    /// `sha256:<hex>` of the component.
    pub component_digest: String,
    /// `sha256:<hex>` of the effective policy.
    pub policy_hash: String,
    /// Payloads are kept as hashes only.
    pub hash_only: bool,
    /// Replayable by its grants.
    pub replayable: bool,
}

/// How many held requests are pending, and since when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSummary {
    /// Pending held requests.
    pub pending: u64,
    /// Admission time (unix ms) of the oldest, if any.
    pub oldest_admitted_ms: Option<u64>,
}

/// Where a held request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldState {
    /// Waiting for decisions.
    Pending,
    /// Enough approvals; running now.
    Approved,
    /// Ran (whatever the outcome).
    Executed,
    /// Denied by an approver, or voided by a reload.
    Denied,
    /// Expired before enough approvals.
    Expired,
}

impl HeldState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            HeldState::Pending => "pending",
            HeldState::Approved => "approved",
            HeldState::Executed => "executed",
            HeldState::Denied => "denied",
            HeldState::Expired => "expired",
        }
    }

    /// Parses a `?state=` filter (`all` is `None`).
    pub fn parse_filter(s: &str) -> Result<Option<HeldState>, String> {
        Ok(Some(match s {
            "pending" => HeldState::Pending,
            "approved" => HeldState::Approved,
            "executed" => HeldState::Executed,
            "denied" => HeldState::Denied,
            "expired" => HeldState::Expired,
            "all" => return Ok(None),
            other => {
                return Err(format!(
                    "unknown state `{other}`: use pending, approved, executed, denied, expired or all"
                ));
            }
        }))
    }
}

/// One approver's decision, as kept with the held request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// Who.
    pub principal: String,
    /// What.
    pub decision: ApprovalDecision,
    /// When, unix ms.
    pub at_ms: u64,
    /// Why (the audit chain keeps its SHA-256).
    pub reason: String,
}

impl Decision {
    /// The decision as the audit chain records it (the reason as its SHA-256).
    pub fn audit(&self) -> Approval {
        Approval {
            principal: self.principal.clone(),
            decision: self.decision,
            at_ms: self.at_ms,
            reason_sha256: Some(Hash256::of(self.reason.as_bytes())),
        }
    }
}

/// A held request: everything needed to show it to approvers and to run it
/// later, exactly as submitted, against exactly what it was bound to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    /// The request id (all its audit entries carry it).
    pub request_id: String,
    /// Where it is.
    pub state: HeldState,
    /// Who submitted it.
    pub requester: String,
    /// The submitted kind, tenant and attributes.
    pub kind: String,
    /// Tenant, canonical (the request runs for it: its KV namespace).
    pub tenant: Option<crate::Tenant>,
    /// Capability chosen by the route.
    pub capability: String,
    /// Function chosen by the route.
    pub function: String,
    /// The input, as submitted.
    pub input: Value,
    /// The route rule id.
    pub route_rule: String,
    /// The route decision recorded in the audit chain.
    pub route: Option<RouteDecision>,
    /// The component and policy approvers see and the request will run.
    pub binding: Binding,
    /// 1-based index of the `[[approval]]` rule that triggered.
    pub rule: usize,
    /// Approvals needed.
    pub mode: Mode,
    /// Who may approve (`group:<name>` for groups); anyone with the
    /// `approve` role when empty.
    pub approvers: Vec<String>,
    /// Why the rule applied.
    pub reason: String,
    /// Admission time, unix ms.
    pub admitted_at_ms: u64,
    /// Deadline for the approvals, unix ms.
    pub expires_at_ms: u64,
    /// Decisions so far, in order.
    pub decisions: Vec<Decision>,
    /// When it ended, unix ms.
    pub ended_at_ms: Option<u64>,
    /// The final outcome, once ended.
    pub outcome: Option<String>,
    /// Why it ended that way.
    pub end_reason: Option<String>,
    /// How it arrived (`http`, `mcp`); absent in records written before
    /// MCP existed, which all came over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The client program that sent it, when the transport named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The workflow step this approval gates (docs/workflows.md, "Approval
    /// steps"); absent for a held request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<HeldStep>,
}

/// The workflow run step an approval gates: deciding on it lets the run go
/// on (approved) or fails the step (denied, expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldStep {
    /// The run id.
    pub run_id: String,
    /// The workflow.
    pub workflow: String,
    /// The approval step's id.
    pub step: String,
}

impl Held {
    /// Distinct approvals so far.
    pub fn approvals_given(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.decision == ApprovalDecision::Approved)
            .count()
    }

    /// As shown by `GET /v1/approvals[/{id}]`.
    pub fn view(&self, now_ms: u64) -> Value {
        json!({
            "request_id": self.request_id,
            "state": self.state.as_str(),
            "requester": self.requester,
            "kind": self.kind,
            "tenant": self.tenant,
            "capability": self.capability,
            "function": self.function,
            "input": self.input,
            "route": self.route_rule,
            "component_digest": self.binding.component_digest,
            "policy_hash": self.binding.policy_hash,
            "rule": {"index": self.rule, "mode": self.mode, "reason": self.reason, "approvers": self.approvers},
            "approvals_needed": self.mode.required(),
            "approvals_given": self.approvals_given(),
            "decisions": self.decisions,
            "admitted_at_ms": self.admitted_at_ms,
            "age_ms": now_ms.saturating_sub(self.admitted_at_ms),
            "expires_at_ms": self.expires_at_ms,
            "expires_in_ms": self.expires_at_ms.saturating_sub(now_ms),
            "ended_at_ms": self.ended_at_ms,
            "outcome": self.outcome,
            "end_reason": self.end_reason,
            "run": self.run,
        })
    }
}

#[cfg(test)]
mod held_step_tests {
    use super::*;

    fn held(run: Option<HeldStep>) -> Held {
        Held {
            request_id: "r1.gate".into(),
            state: HeldState::Pending,
            requester: "alice".into(),
            kind: "order".into(),
            tenant: None,
            capability: String::new(),
            function: String::new(),
            input: json!({"input": {"amount": 5}}),
            route_rule: String::new(),
            route: None,
            binding: Binding {
                component_digest: String::new(),
                policy_hash: String::new(),
                hash_only: false,
                replayable: false,
            },
            rule: 0,
            mode: Mode::Dual,
            approvers: vec!["group:finance".into()],
            reason: "workflow `order` step `gate`".into(),
            admitted_at_ms: 1,
            expires_at_ms: 2,
            decisions: vec![],
            ended_at_ms: None,
            outcome: None,
            end_reason: None,
            via: Some("workflow".into()),
            client: None,
            run,
        }
    }

    #[test]
    fn a_held_record_written_before_approval_steps_decodes_without_a_run() {
        let plain = serde_json::to_value(held(None)).expect("encode");
        assert!(plain.get("run").is_none(), "no `run` key: {plain}");
        let back: Held = serde_json::from_value(plain).expect("decode");
        assert_eq!(back.run, None);
    }

    #[test]
    fn an_approval_steps_record_keeps_its_run_and_step_and_the_view_shows_them() {
        let step = HeldStep {
            run_id: "r1".into(),
            workflow: "order".into(),
            step: "gate".into(),
        };
        let h = held(Some(step.clone()));
        let back: Held =
            serde_json::from_value(serde_json::to_value(&h).expect("encode")).expect("decode");
        assert_eq!(back.run, Some(step));
        let view = h.view(1);
        assert_eq!(
            view["run"],
            json!({"run_id": "r1", "workflow": "order", "step": "gate"})
        );
        let mut bad = serde_json::to_value(&h).expect("encode");
        bad["run"]["extra"] = json!(1);
        assert!(
            serde_json::from_value::<Held>(bad).is_err(),
            "an unknown field in `run` is an error, never ignored"
        );
    }
}
