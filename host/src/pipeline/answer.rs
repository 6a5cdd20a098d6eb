//! Stage 6, answer: what the caller is told, as a typed value. It is built
//! once from the audited record and serialised once, at the edge (the HTTP
//! handler, the state store, later MCP); nothing reads it back as JSON to
//! patch it.
//!
//! The JSON form is the documented body of `POST /v1/requests` and
//! `GET /v1/requests/{id}` (docs/api.md); field names and order are part of
//! that contract.

use crate::invocation::{AuditRef, InvocationRecord};
use crate::outcome::{Outcome, Usage};
use crate::policy::approval::{Mode, Requirement};
use crate::tenant::Tenant;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Request id (every audit entry of the request carries it).
    pub request_id: String,
    /// How it ended.
    #[serde(with = "outcome_string")]
    pub outcome: Outcome,
    /// The function's output (`ok`, `capability_error`).
    pub output: Option<Value>,
    /// Why it did not end `ok`.
    pub error: Option<String>,
    /// Resources used.
    pub usage: Usage,
    /// Capability (empty when none was chosen).
    pub capability: String,
    /// Function, canonical.
    pub function: String,
    /// The route rule that chose the capability.
    pub route: Option<String>,
    /// `sha256:` of the component.
    pub component_digest: String,
    /// `sha256:` of the effective policy.
    pub policy_hash: String,
    /// Attempts made (retries per policy `[retry]`).
    pub attempts: u32,
    /// Tenant, canonical.
    pub tenant: Option<Tenant>,
    /// Where its audit entry landed.
    pub audit: Option<AuditRef>,
    /// Whether this is a stored answer replayed for an idempotency key.
    pub replayed: bool,
    /// A finer reason than the outcome (`overloaded`, `tenant_forbidden`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// For a request routed to a workflow: the run it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRef>,
    /// For a held request: what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Hold>,
    /// Seconds after which a retryable answer may be retried (the
    /// `Retry-After` header, not part of the body).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// The run a request started (`run` in its answer; docs/workflows.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    /// The run id (`GET /v1/runs/{id}`).
    pub run_id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// Its state when the answer was made.
    pub state: String,
}

/// What a held request waits for (`approval` in a `202` answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// single or dual.
    pub mode: Mode,
    /// How many approvals.
    pub approvals_needed: usize,
    /// 1-based index of the `[[approval]]` rule.
    pub rule: usize,
    /// Why the rule applied.
    pub reason: String,
    /// Who may approve (`group:<name>`); anyone with the `approve` role when empty.
    pub approvers: Vec<String>,
    /// Deadline, unix ms.
    pub expires_at_ms: u64,
}

impl Hold {
    /// What `need` asks for, until `expires_at_ms`.
    pub fn of(need: &Requirement, expires_at_ms: u64) -> Hold {
        Hold {
            mode: need.mode,
            approvals_needed: need.mode.required(),
            rule: need.rule,
            reason: need.reason.clone(),
            approvers: need.approvers.iter().map(ToString::to_string).collect(),
            expires_at_ms,
        }
    }
}

impl Answer {
    /// The answer for an audited record.
    pub fn of(record: &InvocationRecord, rule_id: Option<&str>, attempts: u32) -> Answer {
        Answer {
            request_id: record.request_id.clone(),
            outcome: record.outcome,
            output: record.output.clone(),
            error: record.error.clone(),
            usage: record.usage,
            capability: record.capability.clone(),
            function: record.function.clone(),
            route: rule_id.filter(|r| !r.is_empty()).map(str::to_string),
            component_digest: record
                .component_digest
                .map(|h| h.tagged())
                .unwrap_or_default(),
            policy_hash: record.policy_hash.map(|h| h.tagged()).unwrap_or_default(),
            attempts,
            tenant: record.tenant.clone(),
            audit: record.audit.clone(),
            replayed: false,
            error_code: None,
            run: None,
            approval: None,
            retry_after: None,
        }
    }

    /// Whether the answer is final, so that an idempotency key may replay
    /// it. Every `transient` answer (after the last attempt, `overloaded`,
    /// an open breaker, shutting down) tells the client to retry: storing
    /// it under the key would answer every retry with the same `503`.
    pub fn is_final(&self) -> bool {
        self.outcome != Outcome::Transient && self.retry_after.is_none()
    }

    /// The JSON body (the one serialisation, at the edge).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

mod outcome_string {
    use crate::outcome::Outcome;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&o.as_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let s = String::deserialize(d)?;
        Outcome::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown outcome `{s}`")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A fuel-exhausted answer of `echo` (tests elsewhere start from it).
    pub(crate) fn answer() -> Answer {
        Answer {
            request_id: "r-1".into(),
            outcome: Outcome::BudgetExhausted(crate::Budget::Fuel),
            output: None,
            error: Some("fuel".into()),
            usage: Usage::default(),
            capability: "echo".into(),
            function: "echo".into(),
            route: Some("echo".into()),
            component_digest: "sha256:00".into(),
            policy_hash: "sha256:11".into(),
            attempts: 1,
            tenant: None,
            audit: Some(AuditRef {
                seq: 3,
                hash: "sha256:22".into(),
                leaf_index: 2,
            }),
            replayed: false,
            error_code: None,
            run: None,
            approval: None,
            retry_after: Some(1),
        }
    }

    #[test]
    fn the_body_has_the_documented_fields_in_order_and_no_retry_after() {
        let body = answer().to_json();
        let keys: Vec<&str> = body
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "request_id",
                "outcome",
                "output",
                "error",
                "usage",
                "capability",
                "function",
                "route",
                "component_digest",
                "policy_hash",
                "attempts",
                "tenant",
                "audit",
                "replayed"
            ]
        );
        assert_eq!(body["outcome"], json!("budget_exhausted:fuel"));
        assert_eq!(
            body["audit"],
            json!({"seq": 3, "hash": "sha256:22", "leaf_index": 2})
        );
    }

    #[test]
    fn a_stored_answer_from_before_the_tree_gets_its_leaf_index_from_seq() {
        let old: AuditRef =
            serde_json::from_value(json!({"seq": 7, "hash": "sha256:22"})).expect("decodes");
        assert_eq!(old.leaf_index, 6);
    }

    #[test]
    fn a_stored_answer_reads_back_as_it_was_written() {
        let mut a = answer();
        a.error_code = Some("overloaded".into());
        a.retry_after = None;
        let back: Answer = serde_json::from_value(a.to_json()).expect("decodes");
        assert_eq!(back, a);
    }

    #[test]
    fn a_transient_answer_is_never_final() {
        let mut a = answer();
        a.outcome = Outcome::Transient;
        a.retry_after = None;
        assert!(!a.is_final());
        a.outcome = Outcome::Ok;
        assert!(a.is_final());
    }
}
