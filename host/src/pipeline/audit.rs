//! Stage 5, audit: the one place in warden that appends to the audit log.
//!
//! Every invocation, every refusal, every held request, every approval
//! decision and every reload ends here as one entry, durable before the
//! caller goes on. Without a data directory there is no log and records
//! pass through unaudited (tests, simple embedders).
//!
//! If an invocation's entry cannot be committed, its result is withheld:
//! the record comes back `transient`, because an unrecorded result must not
//! reach the caller. This module decides nothing about the request; entry
//! encoding and hashing are [`crate::audit`]'s (pure), durability is
//! [`crate::store`]'s.

use super::Refusal;
use crate::audit::{EventKind, NewEntry};
use crate::invocation::{AuditRef, Call, InvocationRecord};
use crate::outcome::{Outcome, Usage};
use crate::store::{AuditLog, Payloads, StoreError};
use serde_json::Value;

/// Appends entries to the host's audit log (when it has one). Cheap to
/// clone: a clone appends through the same log.
#[derive(Clone)]
pub struct Recorder {
    log: Option<AuditLog>,
    unsigned_allowed: bool,
}

impl Recorder {
    /// A recorder over `log`; `unsigned_allowed` is stamped on every entry.
    pub fn new(log: Option<AuditLog>, unsigned_allowed: bool) -> Recorder {
        Recorder {
            log,
            unsigned_allowed,
        }
    }

    /// The audit log, when there is one (for reading, checkpoints, close).
    pub fn log(&self) -> Option<&AuditLog> {
        self.log.as_ref()
    }

    /// Takes the log out (shutdown writes the final checkpoint).
    pub fn into_log(self) -> Option<AuditLog> {
        self.log
    }

    /// Commits an invocation record's entry (durable before this returns,
    /// unless the call asked for a deferred entry: `Call::audit_deferred`;
    /// with the rows `Call::audit_then` makes from the record, if any, in
    /// the same transaction, durable unless it says otherwise).
    /// `hash_only`: keep hashes of the payloads, not the payloads.
    /// The record is completed in place (its `audit` reference, or the
    /// failure that withholds its result): it is not moved through the
    /// stage.
    pub async fn commit(&self, record: &mut InvocationRecord, hash_only: bool, call: &Call) {
        if let Some(log) = &self.log {
            // Boxed: appending holds the entry and the writer's answer
            // across the wait, and every caller's future would otherwise
            // carry (and copy) all of it, audited or not.
            Box::pin(Self::append(log, record, hash_only, call)).await
        }
    }

    async fn append(log: &AuditLog, record: &mut InvocationRecord, hash_only: bool, call: &Call) {
        let payloads = if hash_only {
            // The entry still commits to the results' hashes; without the
            // input and the results it cannot be re-executed.
            if record.replayable {
                record.replayable = false;
                record.not_replayable = Some(crate::interfaces::recording::HASH_ONLY.into());
            }
            Payloads::default()
        } else {
            let (input, output) = record.payloads(&call.input);
            Payloads {
                input: Some(input),
                output: Some(output),
                results: std::mem::take(&mut record.recorded),
            }
        };
        let mut entry = record.audit_entry(call);
        if !payloads.results.is_empty() {
            entry.evidence.results = payloads
                .results
                .iter()
                .map(|r| crate::digest::Hash256::of(r))
                .collect();
        }
        let then = call
            .audit_then
            .as_ref()
            .and_then(|t| Some(((t.make)(record)?, t.durable)));
        let ack = match then {
            // The caller's rows follow the entry in its transaction.
            Some((then, durable)) => log.submit_with(entry, payloads, then, durable),
            None if call.audit_deferred => log.submit_deferred(entry, payloads),
            None => log.submit(entry, payloads),
        };
        // What the caller commits next if this record is ok, queued behind
        // the entry before its answer is awaited.
        if let Some(follow) = call.audit_then.as_ref().and_then(|t| t.follow.as_ref()) {
            follow(record);
        }
        match ack.await {
            Ok(appended) => record.audit = Some(Self::reference(&appended)),
            Err(e) => {
                tracing::error!(request_id = %record.request_id, "audit append failed: {e}");
                record.outcome = Outcome::Transient;
                record.output = None;
                record.error = Some(format!(
                    "the audit entry could not be committed ({e}); the result is withheld because it is not recorded"
                ));
            }
        }
    }

    /// Records a request that ends before guest code runs.
    pub async fn refusal(&self, refusal: &Refusal, call: &Call) -> InvocationRecord {
        // Boxed: a refusal's record is held across the append, and the
        // futures of the callers that may refuse would carry it on every
        // call, refused or not.
        Box::pin(async {
            let mut record = refusal.record(call, self.unsigned_allowed);
            self.commit(&mut record, refusal.hash_only(), call).await;
            record
        })
        .await
    }

    /// An entry for a daemon event (reload, approval decision): no
    /// capability ran; `detail` says what happened. The caller may fill in
    /// the request it concerns before [`event`](Self::event) appends it.
    pub fn event_entry(
        &self,
        event: EventKind,
        principal: &str,
        via: &str,
        outcome: Outcome,
        detail: &Value,
    ) -> NewEntry {
        NewEntry {
            event,
            admitted_at_ms: crate::store::now_ms(),
            request_id: super::admit::new_request_id(),
            principal: principal.to_string(),
            request_kind: via.to_string(),
            route: None,
            capability: String::new(),
            component_digest: None,
            policy_hash: None,
            function: String::new(),
            input_sha256: None,
            output_sha256: None,
            outcome,
            usage: Usage::default(),
            replayable: true,
            unsigned_allowed: self.unsigned_allowed,
            attempt: 1,
            approvals: Vec::new(),
            host_calls: Vec::new(),
            detail: Some(crate::digest::canonical_json(detail)),
            evidence: Default::default(),
        }
    }

    /// Appends an event entry (no payloads). Without a log, nothing to do.
    pub async fn event(&self, entry: NewEntry) -> Result<Option<AuditRef>, StoreError> {
        self.event_with(entry, true).await
    }

    /// [`event`](Self::event), deferred when `durable` is false: committed
    /// without its own fsync, durable with the log's next durable commit
    /// (the workflow executor's journal record that follows it).
    pub async fn event_with(
        &self,
        entry: NewEntry,
        durable: bool,
    ) -> Result<Option<AuditRef>, StoreError> {
        self.event_after(None, entry, durable).await
    }

    /// [`event_with`](Self::event_with), with `before` written in the
    /// entry's transaction first (the workflow journal's start or end of a
    /// run): when it fails, the entry is not appended and its error is
    /// returned. Without a log, `before` cannot run: refused.
    pub async fn event_after(
        &self,
        before: Option<crate::store::RowWrite>,
        entry: NewEntry,
        durable: bool,
    ) -> Result<Option<AuditRef>, StoreError> {
        let Some(log) = &self.log else {
            return match before {
                Some(_) => Err(StoreError::Closed),
                None => Ok(None),
            };
        };
        let payloads = Payloads::default();
        let appended = match before {
            Some(before) => log.submit_after(before, entry, payloads, durable).await?,
            None if durable => log.append(entry, payloads).await?,
            None => log.submit_deferred(entry, payloads).await?,
        };
        Ok(Some(Self::reference(&appended)))
    }

    /// [`event_after`](Self::event_after) without awaiting: the entry is
    /// queued now (behind everything queued before it) and the answer
    /// returned to be awaited later. `None` without a log.
    pub fn queue_event_after(
        &self,
        before: crate::store::RowWrite,
        entry: NewEntry,
        durable: bool,
    ) -> Option<crate::store::Ack<crate::store::Appended>> {
        let log = self.log.as_ref()?;
        Some(log.submit_after(before, entry, Payloads::default(), durable))
    }

    /// The reference an appended entry is given by.
    fn reference(appended: &crate::store::Appended) -> AuditRef {
        AuditRef {
            seq: appended.seq,
            hash: appended.hash.to_string(),
            leaf_index: appended.seq.saturating_sub(1),
        }
    }
}
