//! Stage 4, execute: one attempt of a gated request in a fresh sandbox,
//! with the policy's budgets. Returns the record of what happened; it does
//! not retry (the daemon's attempts loop does, per policy `[retry]`) and it
//! does not audit (stage 5 does).
//!
//! This module must never evaluate approval rules or routes, and must
//! never fail as a Rust error: every way an attempt ends is an
//! [`Outcome`](crate::Outcome) in the record.

use super::gate::Typed;
use crate::Capability;
use crate::digest::Hash256;
use crate::interfaces::HostServices;
use crate::invocation::{Call, InvocationRecord};
use crate::sandbox::{self, InvocationIdentity, Sandbox};
use std::sync::Arc;
use std::time::SystemTime;

/// Where an attempt runs: the engine and the per-host services its
/// interfaces share.
pub struct Executor<'a> {
    /// The engine.
    pub sandbox: &'a Sandbox,
    /// KV store, model backends, static names.
    pub services: &'a Arc<HostServices>,
    /// Whether the host allows unsigned components (recorded).
    pub unsigned_allowed: bool,
}

impl Executor<'_> {
    /// Runs one attempt of an admitted, routed and gated call.
    pub async fn run(&self, cap: &Capability, typed: Typed<'_>, call: &Call) -> InvocationRecord {
        let (done, fresh) = self.attempt(cap, typed, call).await;
        let mut record = super::blank_record_copying(call, fresh, self.unsigned_allowed);
        filled(&mut record, cap, done);
        record
    }

    /// [`run`](Self::run) for a call its caller owns and drops once the
    /// record is audited: the record takes the call's names
    /// ([`blank_record_taking`](super::blank_record_taking)), so the call
    /// is left without its request id, principal, capability and function.
    pub(crate) async fn run_taking(
        &self,
        cap: &Capability,
        typed: Typed<'_>,
        call: &mut Call,
    ) -> InvocationRecord {
        let (done, fresh) = self.attempt(cap, typed, call).await;
        let mut record = super::blank_record_taking(call, fresh, self.unsigned_allowed);
        filled(&mut record, cap, done);
        record
    }

    /// The attempt itself, and the request id made up for a call that
    /// skipped admission.
    async fn attempt(
        &self,
        cap: &Capability,
        typed: Typed<'_>,
        call: &Call,
    ) -> (sandbox::CallOutcome, Option<String>) {
        let admitted_at = call.admitted_at.unwrap_or(SystemTime::UNIX_EPOCH);
        // Admission gave the call its id; a call that skipped it gets one here.
        let fresh = match call.request_id {
            Some(_) => None,
            None => Some(crate::new_request_id()),
        };
        let request_id = call
            .request_id
            .as_deref()
            .or(fresh.as_deref())
            .unwrap_or_default();
        let id = InvocationIdentity {
            request_id,
            idempotency_key: call.idempotency_key.as_deref().unwrap_or(request_id),
            admitted_at,
            capability: &call.capability,
            tenant: call.tenant.as_ref(),
        };
        let done = sandbox::invoke(
            self.sandbox,
            cap.instance_pre(),
            &cap.policy,
            typed.export,
            typed.params,
            &id,
            self.services,
            !cap.shape.imports.is_empty(),
            call.timeout,
        )
        .await;
        (done, fresh)
    }
}

/// Fills in `record` (built after the call: nothing of it is held across
/// the wait) with what the attempt did.
fn filled(record: &mut InvocationRecord, cap: &Capability, done: sandbox::CallOutcome) {
    record.component_digest = Some(cap.digest);
    record.policy_hash = Some(cap.policy_hash);
    record.outcome = done.outcome;
    record.usage = done.usage;
    record.stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    record.stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    record.logs = done.logs;
    record.logs_dropped = done.logs_dropped;
    record.host_calls = done.host_calls;
    record.replayable = done.not_replayable.is_none();
    record.not_replayable = done.not_replayable;
    record.recorded = done.recorded;
    record.divergence = done.divergence;
    record.output = done.output;
    record.error = done.error;
    record.output_hash = match &record.output {
        Some(out) => Hash256::of_json(out),
        None => Hash256::of_json(&record.output_document()),
    };
}
