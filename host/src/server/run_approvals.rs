//! Approval steps of workflow runs on the daemon's approvals machinery
//! (docs/workflows.md, "Approval steps"): a run whose step waits for a
//! human gets a held approval in `state.db` (id `<run id>.<step id>`, the
//! same store, API, CLI, roles and refusals as held requests); the
//! decisions on it move the step on — approved: `done` with
//! `{"approved_by": [...]}`; denied or expired: `failed`
//! (`approval_denied` / `approval_expired`), after which the saga
//! compensates (before the pivot) or stops in `needs_attention`.
//!
//! The journal and `state.db` are reconciled by one idempotent function,
//! [`Daemon::settle_approvals`], run under the run's drive guard after
//! every drive, after every decision, and at start: whatever the daemon
//! crashed between (held but not journaled, decided but not journaled),
//! the next settle finishes it. It must never run guest code, decide
//! control flow (the executor and `saga` do, from the journal), or append
//! audit entries other than through the host's `Recorder`.

use super::Daemon;
use super::state::StoredResponse;
use super::workflows::Loaded;
use crate::audit::{ApprovalDecision, EventKind};
use crate::store::{Binding, Held, HeldState, HeldStep, RunState, RunStore, StepState};
use crate::workflow::plan::Action;
use crate::{Outcome, Tenant};
use serde_json::{Value, json};
use std::sync::Arc;

impl Daemon {
    /// Reconciles run `run_id`'s approval steps with their held approvals.
    /// The caller holds the run's drive guard. For each step journaled
    /// `waiting`: no held approval yet → one is held (audited `workflow`
    /// `approval` entry, `pending_approval`); approved → the step is `done`;
    /// denied or expired → the step is `failed`; still pending → nothing.
    /// A run that is over ends its still-pending approvals (denied, with
    /// the reason). Returns whether a step changed (drive the run again).
    pub(super) async fn settle_approvals(
        &self,
        loaded: &Loaded,
        run_id: &str,
    ) -> Result<bool, String> {
        let journal = {
            let store = self.runs.clone();
            let id = run_id.to_string();
            tokio::task::spawn_blocking(move || store.journal(&id))
                .await
                .map_err(|e| format!("run store task failed: {e}"))?
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no run `{run_id}` in the journal"))?
        };
        let run = &journal.run;
        let mut changed = false;
        for record in journal
            .steps
            .iter()
            .filter(|r| r.state == StepState::Waiting)
        {
            let Some(step) = loaded
                .plan
                .steps
                .iter()
                .find(|s| s.id.as_str() == record.step)
            else {
                continue;
            };
            let Action::Approval(gate) = &step.action else {
                continue;
            };
            let id = format!("{run_id}.{}", record.step);
            let held = {
                let id = id.clone();
                self.state.blocking(move |s| s.held(&id)).await?
            };
            let mut r = record.clone();
            match held {
                None if run.state.is_final() => {}
                None => {
                    let now = crate::store::now_ms();
                    let expires = u64::try_from(gate.expires.as_millis()).unwrap_or(u64::MAX);
                    let reason = match &step.when {
                        Some(w) => format!(
                            "workflow `{}` step `{}` (its `when` `{}` holds)",
                            run.workflow,
                            record.step,
                            w.source()
                        ),
                        None => format!("workflow `{}` step `{}`", run.workflow, record.step),
                    };
                    // What the approvers decide on: the run's input and
                    // every output so far.
                    let outputs: serde_json::Map<String, Value> = journal
                        .steps
                        .iter()
                        .filter(|s| s.state == StepState::Done)
                        .map(|s| (s.step.clone(), s.output.clone().unwrap_or(Value::Null)))
                        .collect();
                    let held = Held {
                        request_id: id.clone(),
                        state: HeldState::Pending,
                        requester: run.principal.clone(),
                        kind: run.workflow.clone(),
                        tenant: run.tenant.as_deref().and_then(|t| Tenant::parse(t).ok()),
                        capability: String::new(),
                        function: String::new(),
                        input: json!({"input": run.input, "steps": outputs}),
                        route_rule: String::new(),
                        route: None,
                        binding: Binding {
                            component_digest: String::new(),
                            policy_hash: String::new(),
                            hash_only: false,
                            replayable: false,
                        },
                        rule: 0,
                        mode: gate.mode,
                        approvers: gate.approvers.iter().map(ToString::to_string).collect(),
                        reason,
                        admitted_at_ms: now,
                        expires_at_ms: now.saturating_add(expires),
                        decisions: Vec::new(),
                        ended_at_ms: None,
                        outcome: None,
                        end_reason: None,
                        via: Some("workflow".into()),
                        client: None,
                        run: Some(HeldStep {
                            run_id: run_id.to_string(),
                            workflow: run.workflow.clone(),
                            step: record.step.clone(),
                        }),
                    };
                    let seq = self
                        .audit_step_event(
                            &held,
                            Outcome::PendingApproval,
                            json!({
                                "run": run_id,
                                "workflow": run.workflow,
                                "event": "approval",
                                "step": record.step,
                                "mode": gate.mode,
                                "approvers": held.approvers,
                                "expires_at_ms": held.expires_at_ms,
                            }),
                        )
                        .await?;
                    let stored = step_response(&held, 202);
                    let h = held.clone();
                    self.state
                        .blocking(move |s| s.put_held(&h, Some(&stored)))
                        .await?;
                    self.metrics.add(
                        "warden_approvals_held_total",
                        super::metrics::labels(&[("capability", "workflow")]),
                        1,
                    );
                    r.audit_seqs.extend(seq);
                    r.updated_ms = now;
                    self.runs
                        .record_step(run_id, &r, None)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Some(mut held) if run.state.is_final() => {
                    if held.state == HeldState::Pending {
                        let why = format!(
                            "the run ended {} before the approval was decided",
                            run.state.as_str()
                        );
                        self.end_step_approval(
                            &mut held,
                            HeldState::Denied,
                            Outcome::ApprovalDenied,
                            why,
                        )
                        .await?;
                    }
                }
                Some(held) => {
                    let (state, outcome, output) = match held.state {
                        HeldState::Pending | HeldState::Approved => continue,
                        HeldState::Executed => {
                            let by: Vec<&str> = held
                                .decisions
                                .iter()
                                .filter(|d| d.decision == ApprovalDecision::Approved)
                                .map(|d| d.principal.as_str())
                                .collect();
                            (
                                StepState::Done,
                                "ok".to_string(),
                                json!({"approved_by": by}),
                            )
                        }
                        HeldState::Denied | HeldState::Expired => (
                            StepState::Failed,
                            held.outcome.clone().unwrap_or_else(|| {
                                if held.state == HeldState::Expired {
                                    "approval_expired".into()
                                } else {
                                    "approval_denied".into()
                                }
                            }),
                            Value::String(held.end_reason.clone().unwrap_or_default()),
                        ),
                    };
                    r.state = state;
                    r.outcome = Some(outcome);
                    r.output = Some(output);
                    r.attempts = r.attempts.max(1);
                    r.updated_ms = crate::store::now_ms();
                    // A run stopped for an operator stays stopped; the
                    // decision is journaled for when it resumes.
                    let run_state =
                        (run.state != RunState::NeedsAttention).then_some(RunState::Running);
                    self.runs
                        .record_step(run_id, &r, run_state)
                        .await
                        .map_err(|e| e.to_string())?;
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// The last decision on (or the expiry of) an approval step's held
    /// approval: `state.db` first, then the run is driven on a task (the
    /// settle there journals the step). `Executed` means approved.
    pub(super) async fn end_step_approval(
        &self,
        held: &mut Held,
        state: HeldState,
        outcome: Outcome,
        why: String,
    ) -> Result<(), String> {
        let Some(step) = held.run.clone() else {
            return Err(format!("{} is not an approval step", held.request_id));
        };
        self.audit_step_event(
            held,
            outcome,
            json!({
                "run": step.run_id,
                "workflow": step.workflow,
                "event": "approval_end",
                "step": step.step,
                "state": state.as_str(),
                "reason": why,
            }),
        )
        .await?;
        held.state = state;
        held.ended_at_ms = Some(crate::store::now_ms());
        held.outcome = Some(outcome.as_string());
        held.end_reason = Some(why);
        let status = match outcome {
            Outcome::Ok => 200,
            Outcome::ApprovalExpired => 410,
            _ => 403,
        };
        let (h, stored) = (held.clone(), step_response(held, status));
        self.state
            .blocking(move |s| s.end_held(&h, &stored))
            .await?;
        self.metrics.observe(
            "warden_approval_latency_seconds",
            super::metrics::labels(&[("state", held.state.as_str())]),
            std::time::Duration::from_millis(
                crate::store::now_ms().saturating_sub(held.admitted_at_ms),
            ),
        );
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Drives run `run_id` again after a decision on one of its approval
    /// steps (no-op when a task drives it already: that task settles again
    /// once it lets go of the run).
    pub(super) fn continue_run(self: &Arc<Self>, run_id: &str) {
        let this = self.clone();
        let run_id = run_id.to_string();
        tokio::spawn(async move {
            let workflow = {
                let store = this.runs.clone();
                let id = run_id.clone();
                tokio::task::spawn_blocking(move || store.journal(&id)).await
            };
            let workflow = match workflow {
                Ok(Ok(Some(j))) => j.run.workflow,
                other => {
                    tracing::error!(run = run_id, "cannot continue the run: {other:?}");
                    return;
                }
            };
            let deployment = this.deployment();
            match deployment.workflows.get(&workflow).cloned() {
                Some(loaded) => {
                    this.drive_run(deployment, loaded, run_id);
                }
                None => tracing::error!(
                    run = run_id,
                    "cannot continue the run: workflow `{workflow}` is not loaded"
                ),
            }
        });
    }

    /// A `workflow` audit entry about an approval step, carrying the held
    /// approval's request id; its seq.
    async fn audit_step_event(
        &self,
        held: &Held,
        outcome: Outcome,
        detail: Value,
    ) -> Result<Option<u64>, String> {
        let recorder = self.host.recorder();
        let mut entry = recorder.event_entry(
            EventKind::Workflow,
            &held.requester,
            "workflow",
            outcome,
            &detail,
        );
        entry.request_id = held.request_id.clone();
        recorder
            .event(entry)
            .await
            .map(|a| a.map(|a| a.seq))
            .map_err(|e| format!("the approval step could not be audited ({e}); nothing changed"))
    }
}

/// What `GET /v1/requests/<run id>.<step id>` answers for an approval step.
fn step_response(held: &Held, status: u16) -> StoredResponse {
    StoredResponse {
        principal: held.requester.clone(),
        status,
        response: held.view(crate::store::now_ms()),
    }
}
