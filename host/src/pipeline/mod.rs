//! The request path: every entry point (the daemon's `POST /v1/requests`,
//! `warden run`, the embedding API, and later workflows and MCP) walks the
//! same stages, in this order, one module per stage:
//!
//! ```text
//!  authenticate  server::auth (HTTP bearer token) / the caller (CLI, embedder)
//!       |
//!  admit         admit      request id + admission time, fixed once (ms)
//!       |
//!  idempotency   server::idempotency   (daemon: claim, replay, conflict)
//!       |
//!  route         route      kind -> route table, or a named target;
//!       |                   function -> its canonical identity
//!  gate          gate       input typed once; [[approval]] evaluated once
//!       |   \
//!       |    hold           server::approvals (daemon): persisted, 202;
//!       |      \            approved later -> re-enters at execute with
//!       |       '---------> the decisions it was approved with
//!  execute       execute    one attempt in a fresh sandbox
//!       |                   (daemon: server::attempts = queue, breaker, retries)
//!  audit         audit      the one place that appends to the audit log
//!       |
//!  answer        answer     a typed response, serialised once at the edge
//! ```
//!
//! A stage that refuses returns a [`Refusal`]; the refusal goes straight to
//! "audit" (every refusal is evidence) and then "answer". Stages before
//! "execute" never run guest code; only "audit" appends.

pub mod admit;
pub mod answer;
pub mod audit;
pub mod execute;
pub mod gate;
pub mod route;

use crate::invocation::{Call, InvocationRecord};
use crate::outcome::Outcome;
use crate::{Binding, Capability};

/// A request that ends before guest code runs, and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// How it ends.
    pub outcome: Outcome,
    /// Why (recorded and answered).
    pub why: String,
    /// The component and policy it was refused under, when a capability
    /// was chosen.
    pub binding: Option<Binding>,
}

impl Refusal {
    /// A refusal before any capability was chosen.
    pub fn new(outcome: Outcome, why: String) -> Refusal {
        Refusal {
            outcome,
            why,
            binding: None,
        }
    }

    /// A refusal under `cap`.
    pub fn of(cap: &Capability, outcome: Outcome, why: String) -> Refusal {
        Refusal {
            outcome,
            why,
            binding: Some(cap.binding()),
        }
    }

    /// A refusal under a binding that may no longer be loaded (a held
    /// request whose approval ended after a reload).
    pub fn bound(binding: &Binding, outcome: Outcome, why: String) -> Refusal {
        Refusal {
            outcome,
            why,
            binding: Some(binding.clone()),
        }
    }

    /// Whether its payloads are kept as hashes only.
    pub fn hash_only(&self) -> bool {
        self.binding.as_ref().is_some_and(|b| b.hash_only)
    }

    /// The record of the refused call (not yet audited).
    pub fn record(&self, call: &Call, unsigned_allowed: bool) -> InvocationRecord {
        let mut record = blank_record(call, unsigned_allowed);
        if let Some(b) = &self.binding {
            record.component_digest = b.component_digest.parse().ok();
            record.policy_hash = b.policy_hash.parse().ok();
            record.replayable = b.replayable;
            if !b.replayable {
                record.not_replayable = Some(
                    "the policy grants the system clock or system random, whose readings are not recorded"
                        .into(),
                );
            }
        }
        record.fail(self.outcome, self.why.clone())
    }
}

/// The record of an admitted call before anything happened to it
/// (outcome `denied` until a stage says otherwise).
pub(crate) fn blank_record(call: &Call, unsigned_allowed: bool) -> InvocationRecord {
    blank_record_copying(call, None, unsigned_allowed)
}

/// [`blank_record`]; `fresh` is the request id [`execute`] made up for a
/// call that had none.
pub(crate) fn blank_record_copying(
    call: &Call,
    fresh: Option<String>,
    unsigned_allowed: bool,
) -> InvocationRecord {
    let names = Names {
        request_id: request_id(call.request_id.clone(), fresh),
        principal: call.principal.clone(),
        capability: call.capability.clone(),
        function: call.function.clone(),
    };
    record_with(names, call, unsigned_allowed)
}

/// [`blank_record_copying`] of a call its caller owns and drops once the
/// record is audited (the audit stage reads these names from the record,
/// not the call): the record takes the call's request id, principal,
/// capability and function instead of copying them.
pub(crate) fn blank_record_taking(
    call: &mut Call,
    fresh: Option<String>,
    unsigned_allowed: bool,
) -> InvocationRecord {
    let names = Names {
        request_id: request_id(call.request_id.take(), fresh),
        principal: std::mem::take(&mut call.principal),
        capability: std::mem::take(&mut call.capability),
        function: std::mem::take(&mut call.function),
    };
    record_with(names, call, unsigned_allowed)
}

/// The call's own request id, else the one execute made up, else a new one.
fn request_id(own: Option<String>, fresh: Option<String>) -> String {
    own.or(fresh).unwrap_or_else(crate::new_request_id)
}

/// The names a record is filed under.
struct Names {
    request_id: String,
    principal: String,
    capability: String,
    function: String,
}

fn record_with(names: Names, call: &Call, unsigned_allowed: bool) -> InvocationRecord {
    let admitted_at = call.admitted_at.unwrap_or(std::time::UNIX_EPOCH);
    InvocationRecord {
        request_id: names.request_id,
        admitted_at_ms: admit::unix_ms(admitted_at),
        principal: names.principal,
        tenant: call.tenant.clone(),
        capability: names.capability,
        function: names.function,
        component_digest: None,
        policy_hash: None,
        outcome: Outcome::Denied,
        output: None,
        error: None,
        input_hash: crate::digest::Hash256::of_json(&call.input),
        // Set when the record ends (`execute::finish`, `fail`).
        output_hash: crate::digest::Hash256::ZERO,
        usage: crate::outcome::Usage::default(),
        replayable: true,
        unsigned_allowed,
        stdout: String::new(),
        stderr: String::new(),
        logs: Vec::new(),
        logs_dropped: 0,
        host_calls: Vec::new(),
        audit: None,
        recorded: Vec::new(),
        not_replayable: None,
        divergence: None,
    }
}
