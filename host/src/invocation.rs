//! Calls into the library and the records they produce, and how a record
//! becomes an audit entry.

use crate::audit::entry::{NewEntry, RouteDecision};
use crate::audit::{Approval, ApprovalDecision, EventKind, HostCall};
use crate::digest::Hash256;
use crate::digest::canonical_json;
use crate::interfaces::log::LogLine;
use crate::outcome::{Outcome, Usage};
use crate::tenant::Tenant;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::SystemTime;

/// One invocation request to the library.
#[derive(Debug, Clone)]
pub struct Call {
    /// Capability name.
    pub capability: String,
    /// Export id (`echo`, `iface#func`).
    pub function: String,
    /// Input object keyed by parameter names.
    pub input: Value,
    /// Request id; generated when absent. Seeds random.
    pub request_id: Option<String>,
    /// The idempotency key `warden:host/invocation` answers when it is not
    /// the request id: `<principal>:<key>` for a request the client sent
    /// with an idempotency key. `None`: the request id (a workflow step's
    /// request id `<run id>.<step id>` is its key).
    pub idempotency_key: Option<String>,
    /// Admission time; now when absent. The virtual wall clock reads it.
    /// Kept at millisecond precision (what the audit entry records): the
    /// admission stage truncates it ([`crate::pipeline::admit`]).
    pub admitted_at: Option<SystemTime>,
    /// Who asked (authenticated principal). By default `local`.
    pub principal: String,
    /// The tenant the call is made for; `None` (the default) is
    /// tenant-less. Scopes KV: each (capability, tenant) pair, and the
    /// capability's tenant-less namespace, are separate namespaces.
    pub tenant: Option<Tenant>,
    /// How the request arrived: `embed` (default), `cli`, `http`, `mcp`.
    pub via: String,
    /// The client program that sent it, when the transport names one
    /// (MCP: `name/version` from the client's implementation info);
    /// recorded in the audit entry's `detail`.
    pub client: Option<String>,
    /// The routing decision, when a route table chose the target.
    pub route: Option<RouteDecision>,
    /// Retry attempt, 1-based.
    pub attempt: u32,
    /// A wall-clock deadline for each attempt (a workflow step's
    /// `timeout`); the smaller of it and the policy's `wall_time` applies.
    /// `None`: the policy's alone.
    pub timeout: Option<std::time::Duration>,
    /// Human decisions on this request (the daemon attaches them once a
    /// gated request is approved); recorded in the audit entry.
    pub approvals: Vec<Approval>,
    /// Commit the audit entry *deferred* (no fsync of its own; durable with
    /// the audit log's next durable commit). Only for a caller that makes
    /// such a commit before it acts on the result: the workflow executor,
    /// whose journal record of the step follows in the same database.
    /// `false` (the default): the entry is durable before the result returns.
    pub audit_deferred: bool,
    /// Rows written in the entry's transaction, right after it (the
    /// workflow executor's step result record).
    pub(crate) audit_then: Option<AuditThen>,
}

/// Makes, from an invocation's finished record, a write that follows its
/// audit entry in the same transaction and is given the entry's seq
/// ([`crate::store::AuditLog::submit_with`]); `None`: nothing to write.
#[derive(Clone)]
pub(crate) struct AuditThen {
    /// Makes the write (`None`: nothing to write for this record).
    pub(crate) make: std::sync::Arc<MakeAfterEntry>,
    /// Whether the entry and the write are committed durably; `false`
    /// only when a durable commit of the caller follows before anything
    /// acts on them.
    pub(crate) durable: bool,
    /// Called with the finished record right after the entry's job is
    /// queued, before its answer is awaited: a caller that already knows
    /// what it will commit next if the record is ok queues it here, so that
    /// it follows the entry in the writer's queue (the workflow executor's
    /// run `end` behind the last step).
    pub(crate) follow: Option<std::sync::Arc<FollowEntry>>,
}

/// What [`AuditThen`] holds.
pub(crate) type MakeAfterEntry =
    dyn Fn(&InvocationRecord) -> Option<crate::store::SeqWrite> + Send + Sync;

/// [`AuditThen::follow`].
pub(crate) type FollowEntry = dyn Fn(&InvocationRecord) + Send + Sync;

impl std::fmt::Debug for AuditThen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditThen")
    }
}

impl Call {
    /// A call with a generated request id admitted now.
    pub fn new(capability: &str, function: &str, input: Value) -> Call {
        Call::new_owned(capability.to_string(), function.to_string(), input)
    }

    /// [`Call::new`] of names the caller owns and gives up (a route
    /// decision's, say): they move into the call instead of being copied.
    pub fn new_owned(capability: String, function: String, input: Value) -> Call {
        Call {
            capability,
            function,
            input,
            request_id: None,
            idempotency_key: None,
            admitted_at: None,
            principal: "local".into(),
            tenant: None,
            via: "embed".into(),
            client: None,
            route: None,
            attempt: 1,
            timeout: None,
            approvals: Vec::new(),
            audit_deferred: false,
            audit_then: None,
        }
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Call {
        self.request_id = Some(id.into());
        self
    }

    /// Makes the call for `tenant` (its KV namespace is the capability's
    /// namespace for that tenant).
    pub fn for_tenant(mut self, tenant: Tenant) -> Call {
        self.tenant = Some(tenant);
        self
    }

    /// Sets the admission time.
    pub fn admitted_at(mut self, at: SystemTime) -> Call {
        self.admitted_at = Some(at);
        self
    }

    /// Attaches approval decisions (see [`crate::policy::approval`]).
    pub fn with_approvals(mut self, approvals: Vec<Approval>) -> Call {
        self.approvals = approvals;
        self
    }

    /// Distinct principals, other than the requester, who approved.
    pub fn approvers(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .approvals
            .iter()
            .filter(|a| a.decision == ApprovalDecision::Approved && a.principal != self.principal)
            .map(|a| a.principal.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Sets the principal and how the request arrived.
    pub fn from_principal(mut self, principal: &str, via: &str) -> Call {
        self.principal = principal.to_string();
        self.via = via.to_string();
        self
    }
}

/// Where an invocation's audit entry landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(from = "AuditRefWire")]
pub struct AuditRef {
    /// Sequence number in the chain.
    pub seq: u64,
    /// The entry hash (`sha256:<hex>`).
    pub hash: String,
    /// The entry's leaf index in the Merkle tree (`seq - 1`), for
    /// `GET /v1/audit/proof/inclusion?index=…`.
    pub leaf_index: u64,
}

/// [`AuditRef`] as stored answers from before the tree hold it (no
/// `leaf_index`): it is derived from `seq`.
#[derive(serde::Deserialize)]
struct AuditRefWire {
    seq: u64,
    hash: String,
    #[serde(default)]
    leaf_index: Option<u64>,
}

impl From<AuditRefWire> for AuditRef {
    fn from(w: AuditRefWire) -> AuditRef {
        AuditRef {
            seq: w.seq,
            hash: w.hash,
            leaf_index: w.leaf_index.unwrap_or(w.seq.saturating_sub(1)),
        }
    }
}

/// Everything known about one finished invocation.
#[derive(Debug, Clone, Serialize)]
pub struct InvocationRecord {
    /// Request id.
    pub request_id: String,
    /// Admission time, Unix milliseconds.
    pub admitted_at_ms: u64,
    /// Who asked.
    pub principal: String,
    /// The tenant it ran for (canonical); `None`: tenant-less.
    pub tenant: Option<Tenant>,
    /// Capability name.
    pub capability: String,
    /// Function id.
    pub function: String,
    /// Component digest (`None` when the capability is unknown; serialized
    /// as `sha256:<hex>`, or `""` when `None`).
    #[serde(serialize_with = "ser_hash_or_empty")]
    pub component_digest: Option<Hash256>,
    /// Effective policy hash (`None` when the capability is unknown;
    /// serialized as `component_digest` is).
    #[serde(serialize_with = "ser_hash_or_empty")]
    pub policy_hash: Option<Hash256>,
    /// Outcome.
    #[serde(serialize_with = "ser_outcome")]
    pub outcome: Outcome,
    /// Output JSON (`ok` and `capability_error`).
    pub output: Option<Value>,
    /// Failure reason.
    pub error: Option<String>,
    /// SHA-256 of the canonical input JSON (serialized `sha256:<hex>`).
    pub input_hash: Hash256,
    /// `sha256:` of the canonical output JSON, or of the error JSON
    /// (`{"error": <message>, "outcome": <outcome>}`); serialized
    /// `sha256:<hex>`.
    pub output_hash: Hash256,
    /// Resources used.
    pub usage: Usage,
    /// Whether the invocation can be replayed bit for bit.
    pub replayable: bool,
    /// Whether the host ran with the development switch allowing unsigned components.
    pub unsigned_allowed: bool,
    /// Captured stdout, lossy UTF-8.
    pub stdout: String,
    /// Captured stderr, lossy UTF-8.
    pub stderr: String,
    /// Log lines.
    pub logs: Vec<LogLine>,
    /// Log lines dropped over budget.
    pub logs_dropped: u64,
    /// Host calls made (summaries).
    pub host_calls: Vec<HostCall>,
    /// The audit entry, when the host keeps an audit log.
    pub audit: Option<AuditRef>,
    /// Results from outside the sandbox, in call order (canonical JSON;
    /// stored as payloads of the entry, which commits to their hashes).
    #[serde(skip)]
    pub recorded: Vec<Vec<u8>>,
    /// Why the invocation cannot be replayed (`None`: it can).
    #[serde(skip)]
    pub not_replayable: Option<String>,
    /// `warden audit replay` only: how the guest departed from the
    /// recorded calls.
    #[serde(skip)]
    pub divergence: Option<String>,
}

fn ser_hash_or_empty<S: serde::Serializer>(h: &Option<Hash256>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => h.serialize(s),
        None => s.serialize_str(""),
    }
}

fn ser_outcome<S: serde::Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&o.as_string())
}

impl InvocationRecord {
    /// The JSON whose canonical form `output_hash` covers: the output, or
    /// the error JSON.
    pub fn output_document(&self) -> Value {
        match (&self.output, &self.error) {
            (Some(out), _) => out.clone(),
            (None, err) => json!({
                "outcome": self.outcome.as_string(),
                "error": err.clone().unwrap_or_default(),
            }),
        }
    }

    /// Ends the record with `outcome` and `error`, before any guest code ran.
    pub(crate) fn fail(mut self, outcome: Outcome, error: String) -> InvocationRecord {
        self.outcome = outcome;
        self.output = None;
        self.error = Some(error);
        self.output_hash = Hash256::of_json(&self.output_document());
        self
    }

    /// The audit entry this record is committed as (the host does this
    /// itself; public for embedders that forward entries, and so that the
    /// benchmark can time building it apart from the durable commit).
    pub fn audit_entry(&self, call: &Call) -> NewEntry {
        NewEntry {
            event: EventKind::Invocation,
            admitted_at_ms: self.admitted_at_ms,
            request_id: self.request_id.clone(),
            principal: self.principal.clone(),
            request_kind: call.via.clone(),
            route: call.route.clone(),
            capability: self.capability.clone(),
            component_digest: self.component_digest,
            policy_hash: self.policy_hash,
            function: self.function.clone(),
            input_sha256: Some(self.input_hash),
            output_sha256: Some(self.output_hash),
            outcome: self.outcome,
            usage: self.usage,
            replayable: self.replayable,
            unsigned_allowed: self.unsigned_allowed,
            attempt: call.attempt,
            approvals: call.approvals.clone(),
            host_calls: self.host_calls.clone(),
            // The tenant the request was made for (and whose KV namespace
            // it used), when it named one; the client program, when the
            // transport named one (MCP).
            detail: match (&self.tenant, &call.client) {
                (None, None) => None,
                (Some(t), None) => Some(json!({ "tenant": t }).to_string()),
                (t, Some(c)) => {
                    let mut d = json!({ "client": c });
                    if let (Some(t), Some(m)) = (t, d.as_object_mut()) {
                        m.insert("tenant".into(), json!(t));
                    }
                    Some(canonical_json(&d))
                }
            },
            evidence: crate::audit::Evidence {
                results: self.recorded.iter().map(|r| Hash256::of(r)).collect(),
                not_replayable: if self.replayable {
                    None
                } else {
                    Some(
                        self.not_replayable
                            .clone()
                            .unwrap_or_else(|| "not replayable".into()),
                    )
                },
            },
        }
    }

    /// Canonical input and output payload bytes for the audit store (the
    /// bytes `input_hash` and `output_hash` cover).
    pub fn payloads(&self, input: &Value) -> (Vec<u8>, Vec<u8>) {
        (
            canonical_json(input).into_bytes(),
            match &self.output {
                Some(out) => canonical_json(out).into_bytes(),
                None => canonical_json(&self.output_document()).into_bytes(),
            },
        )
    }
}
