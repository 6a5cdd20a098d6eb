//! Runs a checked plan on a [`Host`] with a [`RunStore`] journal: the
//! library's workflow stage. Each call step is one governed invocation
//! through `Host::invoke` — the same admission, routing, typing, approval
//! gate, budgets and audit entry (through the `Recorder`) as any request —
//! with a deterministic request id `<run id>.<step id>` (compensations:
//! `<run id>.<step id>.compensate`), which seeds the step's randomness and
//! is the idempotency key a re-run after a crash reuses.
//!
//! Control flow is [`saga::next`]'s, from the journal alone: every step's
//! result is journaled before the next decision, so a step that needs it
//! never starts first, and [`Executor::drive`] resumes a run from its
//! journal. The journal is read once per drive; the driving task, the
//! run's only writer meanwhile, keeps the run's view in memory and applies
//! each write to it as it is journaled, so each decision is made from what
//! the journal holds without reading it back. This module must never type inputs, evaluate approval rules,
//! append audit entries or decide control flow itself.
//!
//! Commits: when the journal shares the audit log's writer
//! ([`RunStore::shares_audit_commits`]), a step's audit entry, its in-flight
//! marker and the run's `start`/`skip` events are *deferred* (committed
//! without an fsync of their own) and the durable journal record of the
//! step's result that follows makes them durable with one fsync. When it
//! writes through the host's own log ([`RunStore::writes_through`]),
//! journal writes ride in entries' transactions: the run's start ahead of
//! its `start` entry, a chain step's result record after its entry (with
//! the entry's seq), the final state ahead of the durable `end` entry —
//! one writer job each (docs/workflows.md, "One fsync per step"); the
//! `end` of a chain is queued behind its last step's entry as soon as that
//! step's attempt returns ok ([`Executor::end_behind`]). Nothing is acted on — no
//! step that needs a result starts, no caller is answered — before a
//! durable commit covering it.
//!
//! A failing call is retried per the step's `retry` (else the capability's
//! `[retry]`), each attempt journaled and audited. The run's own events
//! (start with plan hash, pins and input hash; skipped steps with their
//! predicate; end with the final state) are `workflow` audit entries
//! appended through the host's `Recorder`.
//!
//! Independent steps run concurrently, at most the plan's `max_parallel`
//! at once, in *waves*: the ready steps [`saga::next`] picks (plan order)
//! are journaled `running` in plan order, invoked concurrently, and their
//! results journaled in plan order once the whole wave has ended, so the
//! journal and the run's `workflow` events do not depend on timing. The
//! per-attempt `invocation` entries are appended by `Host::invoke` as each
//! attempt ends: their order among the steps of one wave is completion
//! order, not plan order. A step's `timeout` is the deadline of each of
//! its attempts. An approval step is journaled `waiting` and the run waits;
//! the embedder (the daemon's approvals machinery) journals its decision.
//! An optional [`StepObserver`] (the daemon's metrics) is told of every
//! invocation after it ended; it never changes what the run does.

use super::check::Checked;
use super::plan::{Action, Call as PlanCall, Compensation, Plan};
use super::saga::{self, Next, StepView};
use super::template::Scope;
use super::validate::validate;
use crate::digest::json_digest;
use crate::invocation::AuditThen;
use crate::pipeline::Refusal;
use crate::policy::RetryPolicy;
use crate::store::{
    Ack, Appended, Pin, RunRecord, RunState, RunStore, StepRecord, StepState, StoreError,
};
use crate::units::now_ms;
use crate::{Call, Capability, Host, InvocationRecord, Tenant};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Why a run could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The input does not match the plan's declared type; no step ran.
    #[error("the input does not match workflow `{workflow}`'s declared type: {}", problems.join("; "))]
    InvalidInput {
        /// The workflow.
        workflow: String,
        /// Every mismatch, with its place.
        problems: Vec<String>,
    },
    /// A step calls a capability the host has not loaded.
    #[error(
        "workflow `{workflow}` step `{step}` calls capability `{capability}`, which is not loaded: load it or fix the plan"
    )]
    NotLoaded {
        /// The workflow.
        workflow: String,
        /// The step.
        step: String,
        /// The capability.
        capability: String,
    },
    /// The journal has no run of that id.
    #[error("no run `{0}` in the journal")]
    NoRun(String),
    /// The journal's run was started from a different plan.
    #[error(
        "run `{run}` pinned plan {pinned}, not {given}: a run finishes on the plan it started with"
    )]
    PlanChanged {
        /// The run.
        run: String,
        /// The hash it pinned.
        pinned: String,
        /// The hash of the plan given.
        given: String,
    },
    /// The journaled run names a tenant that is not a tenant name.
    #[error("run `{run}` journals a tenant that does not parse ({detail}): the journal is damaged")]
    BadTenant {
        /// The run.
        run: String,
        /// Why it does not parse.
        detail: String,
    },
    /// The journal could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ready step once [`Executor::prepare_step`] has looked at it: a call
/// to invoke (journaled `running`), or settled without a call (skipped,
/// failed, waiting for a human), with the record it journaled.
enum Prepared<'p> {
    Call((usize, StepRecord, &'p PlanCall, RetryPolicy)),
    Settled(StepRecord),
}

/// The run's tenant, as its steps are invoked for it.
fn run_tenant(run: &RunRecord) -> Result<Option<Tenant>, ExecError> {
    run.tenant
        .as_deref()
        .map(|t| {
            Tenant::parse(t).map_err(|e| ExecError::BadTenant {
                run: run.id.clone(),
                detail: e.to_string(),
            })
        })
        .transpose()
}

/// Drives runs of plans on a host.
pub struct Executor<'a> {
    host: &'a Host,
    store: &'a dyn RunStore,
    /// The daemon's deployment capabilities; `None`: the host's own.
    caps: Option<&'a BTreeMap<String, Arc<Capability>>>,
    /// Asked before every decision: `true` makes [`drive`](Self::drive)
    /// return at that step boundary, leaving the run as journaled (an
    /// operator's cancel waits for the steps in flight this way); and once
    /// the last step has returned ok, before its run's end is queued.
    stop: Option<Stop>,
    /// The tenant [`begin`](Self::begin) records for a new run.
    tenant: Option<Tenant>,
    /// Told of every step attempt and compensation (metrics).
    observer: Option<&'a dyn StepObserver>,
    /// Where a step's invocation waits for its slot (the daemon's pool and
    /// the capability's concurrency limit); `None`: it runs at once.
    slots: Option<&'a dyn StepSlots>,
}

/// The predicate [`Executor::stopping_when`] asks.
pub type Stop = Arc<dyn Fn() -> bool + Send + Sync>;

/// The run's `end`, queued behind its last step's entry
/// ([`Executor::end_behind`]); taken by the wave that ran that step.
type QueuedEnd = Arc<Mutex<Option<Ack<Appended>>>>;

/// What a step's invocation holds while it runs: the slot a request of
/// the same capability would hold (the daemon's instance pool and the
/// capability's `concurrency`), so that runs and requests share one set of
/// limits.
pub trait StepSlots: Send + Sync {
    /// Waits for a slot to run `capability`. `Err(why)`: none freed in
    /// time; the step's attempt is refused as `transient` (audited) and
    /// its retry policy decides what follows. The slot is held until the
    /// returned value is dropped.
    fn slot<'s>(&'s self, capability: &'s str) -> SlotWait<'s>;
}

/// A wait for a step's slot ([`StepSlots::slot`]): the slot, held until
/// dropped, or why none freed in time.
pub type SlotWait<'s> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Box<dyn Send>, String>> + Send + 's>>;

/// Told of every invocation a run makes (a step attempt or a compensation),
/// after it ended: the daemon's decision-level metrics. It must never
/// change what the run does.
pub trait StepObserver: Send + Sync {
    /// Run `run` of `workflow` invoked `step` (`<id>` for an attempt,
    /// `<id>.compensate` for a compensation); `elapsed` is the attempt's
    /// wall time as the executor saw it.
    fn invoked(
        &self,
        workflow: &str,
        run: &str,
        step: &str,
        record: &InvocationRecord,
        elapsed: std::time::Duration,
    );
}

impl<'a> Executor<'a> {
    /// An executor over `host` journaling to `store`.
    pub fn new(host: &'a Host, store: &'a dyn RunStore) -> Executor<'a> {
        Executor {
            host,
            store,
            caps: None,
            stop: None,
            tenant: None,
            observer: None,
            slots: None,
        }
    }

    /// An executor whose steps call `caps` (the daemon's deployment, which
    /// the host does not hold) instead of the host's own capabilities.
    pub fn with_capabilities(
        host: &'a Host,
        store: &'a dyn RunStore,
        caps: &'a BTreeMap<String, Arc<Capability>>,
    ) -> Executor<'a> {
        Executor {
            host,
            store,
            caps: Some(caps),
            stop: None,
            tenant: None,
            observer: None,
            slots: None,
        }
    }

    /// This executor, telling `observer` of every invocation it makes.
    pub fn observed_by(mut self, observer: &'a dyn StepObserver) -> Executor<'a> {
        self.observer = Some(observer);
        self
    }

    /// This executor, running each invocation in a slot from `slots`.
    pub fn slotted_by(mut self, slots: &'a dyn StepSlots) -> Executor<'a> {
        self.slots = Some(slots);
        self
    }

    fn observe(
        &self,
        plan: &Plan,
        run: &str,
        step: &str,
        r: &InvocationRecord,
        t: std::time::Instant,
    ) {
        if let Some(o) = self.observer {
            o.invoked(plan.name.as_str(), run, step, r, t.elapsed());
        }
    }

    /// This executor, but [`begin`](Self::begin) records `tenant` as the
    /// run's: every step and compensation of the run is invoked for it (its
    /// KV namespace, its audit entries), whoever drives the run later.
    pub fn for_tenant(mut self, tenant: Option<Tenant>) -> Executor<'a> {
        self.tenant = tenant;
        self
    }

    /// This executor, but [`drive`](Self::drive) returns at the first step
    /// boundary where `stop` says so, with the run as journaled. Once the
    /// run's last step has returned ok it is too late: `stop` is asked one
    /// last time then, and unless it says so the run ends `completed`.
    pub fn stopping_when(mut self, stop: Stop) -> Executor<'a> {
        self.stop = Some(stop);
        self
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| stop())
    }

    fn capability(&self, name: &str) -> Option<&Arc<Capability>> {
        match self.caps {
            Some(caps) => caps.get(name),
            None => self.host.capability(name),
        }
    }

    /// Starts run `run_id` of `plan` for `principal`: validates the input
    /// (refused whole, before any step), pins the plan hash and every call's
    /// component digest and policy hash, journals the run, then drives it.
    pub async fn start(
        &self,
        plan: &Plan,
        checked: &Checked,
        run_id: &str,
        principal: &str,
        input: Value,
    ) -> Result<RunState, ExecError> {
        // Nobody is answered before the run ends: the start may be deferred
        // (the first durable commit of the run covers it).
        let (run, steps) = self
            .begin_with(plan, checked, run_id, principal, input, false)
            .await?;
        // Driven from what was just journaled, not from reading it back.
        self.drive_from(plan, run, steps).await
    }

    /// [`start`](Self::start) without driving: once this returns, the run
    /// is journaled (`running`, every step `pending`) and its `start`
    /// entry audited; [`drive`](Self::drive) runs it.
    pub async fn begin(
        &self,
        plan: &Plan,
        checked: &Checked,
        run_id: &str,
        principal: &str,
        input: Value,
    ) -> Result<(), ExecError> {
        self.begin_with(plan, checked, run_id, principal, input, true)
            .await?;
        Ok(())
    }

    /// [`begin`](Self::begin); `durable` false: the journaled run and its
    /// `start` entry may be deferred (the caller drives the run at once).
    async fn begin_with(
        &self,
        plan: &Plan,
        checked: &Checked,
        run_id: &str,
        principal: &str,
        input: Value,
        durable: bool,
    ) -> Result<(RunRecord, Vec<StepRecord>), ExecError> {
        let problems = validate(&plan.input, &input);
        if !problems.is_empty() {
            return Err(ExecError::InvalidInput {
                workflow: plan.name.to_string(),
                problems,
            });
        }
        let mut pins = BTreeMap::new();
        for step in &plan.steps {
            let calls = [
                match &step.action {
                    Action::Call(c) => Some((step.id.to_string(), c)),
                    Action::Approval(_) => None,
                },
                match &step.compensate {
                    Compensation::Call(c) => Some((format!("{}.compensate", step.id), c)),
                    _ => None,
                },
            ];
            for (key, call) in calls.into_iter().flatten() {
                let cap =
                    self.capability(&call.capability)
                        .ok_or_else(|| ExecError::NotLoaded {
                            workflow: plan.name.to_string(),
                            step: step.id.to_string(),
                            capability: call.capability.clone(),
                        })?;
                pins.insert(
                    key,
                    Pin {
                        component: cap.digest.tagged(),
                        policy: cap.policy_hash.tagged(),
                    },
                );
            }
        }
        let now = now_ms();
        let run = RunRecord {
            id: run_id.to_string(),
            workflow: plan.name.to_string(),
            plan_hash: plan.hash().tagged(),
            state: RunState::Running,
            principal: principal.to_string(),
            tenant: self.tenant.as_ref().map(Tenant::to_string),
            input_hash: json_digest(&input),
            input,
            pins,
            created_ms: now,
            updated_ms: now,
        };
        let steps: Vec<StepRecord> = checked
            .order
            .iter()
            .enumerate()
            .map(|(position, &i)| StepRecord::pending(plan.steps[i].id.as_str(), position, now))
            .collect();
        // The journaled run rides in the `start` entry's transaction, ahead
        // of it (a refused start keeps the entry out), when it can.
        let before = if self.fused() {
            self.store.start_write(&run, &steps)
        } else {
            self.store.start_with(&run, &steps, false).await?;
            None
        };
        self.audit_event_after(
            before,
            principal,
            crate::Outcome::Ok,
            serde_json::json!({
                "run": run_id,
                "workflow": plan.name.as_str(),
                "event": "start",
                "plan_hash": run.plan_hash,
                "pins": run.pins,
                "input_sha256": run.input_hash,
            }),
            durable,
        )
        .await?;
        Ok((run, steps))
    }

    /// Cancels run `run_id` for an operator: compensates every `done` step
    /// that has a compensation, in reverse completion order, then ends the
    /// run `cancelled` (a compensation that fails: `needs_attention`).
    /// The caller makes sure nothing else drives the run meanwhile.
    pub async fn cancel(&self, plan: &Plan, run_id: &str) -> Result<RunState, ExecError> {
        let journal = self
            .store
            .journal(run_id)?
            .ok_or_else(|| ExecError::NoRun(run_id.to_string()))?;
        let mut done: Vec<(usize, StepRecord)> = journal
            .steps
            .iter()
            .filter(|r| r.state == StepState::Done)
            .filter_map(|r| {
                let i = plan.steps.iter().position(|s| s.id.as_str() == r.step)?;
                matches!(plan.steps[i].compensate, Compensation::Call(_)).then(|| (i, r.clone()))
            })
            .collect();
        done.sort_by_key(|(_, r)| {
            std::cmp::Reverse(r.audit_seqs.last().copied().unwrap_or(r.updated_ms))
        });
        let values: Vec<Option<Value>> = plan
            .steps
            .iter()
            .map(|s| {
                journal
                    .steps
                    .iter()
                    .find(|r| r.step == s.id.as_str())
                    .and_then(|r| r.output.clone())
            })
            .collect();
        let views: Vec<StepView> = plan
            .steps
            .iter()
            .map(|s| StepView {
                state: journal
                    .steps
                    .iter()
                    .find(|r| r.step == s.id.as_str())
                    .map_or(StepState::Pending, |r| r.state),
                done_order: None,
            })
            .collect();
        let outputs = saga::outputs(plan, &views, &values);
        let input = journal.run.input.clone();
        let scope = Scope {
            input: &input,
            steps: &outputs,
        };
        let mut state = RunState::Cancelled;
        for (i, mut r) in done {
            let Compensation::Call(call) = &plan.steps[i].compensate else {
                continue;
            };
            let id = format!("{run_id}.{}.compensate", plan.steps[i].id);
            let t = std::time::Instant::now();
            let result = self
                .invoke(call, &scope, &id, &journal.run, 1, None, None)
                .await?;
            self.observe(
                plan,
                run_id,
                &format!("{}.compensate", plan.steps[i].id),
                &result,
                t,
            );
            r.audit_seqs.extend(result.audit.as_ref().map(|a| a.seq));
            r.state = if result.outcome.as_string() == "ok" {
                StepState::Compensated
            } else {
                state = RunState::NeedsAttention;
                StepState::CompensationFailed
            };
            r.updated_ms = now_ms();
            self.store
                .record_step(run_id, &r, Some(RunState::Compensating))
                .await?;
            if state == RunState::NeedsAttention {
                break;
            }
        }
        self.end(
            plan,
            run_id,
            &journal.run.principal,
            state,
            crate::Outcome::CapabilityError,
        )
        .await?;
        Ok(state)
    }

    /// Drives run `run_id` from its journal until it finishes, waits for a
    /// human, or stops for an operator. A step journaled `running` (in
    /// flight at a crash) is run again with the same request id.
    pub async fn drive(&self, plan: &Plan, run_id: &str) -> Result<RunState, ExecError> {
        let given = plan.hash().tagged();
        // Read once. The task driving a run is its journal's only writer
        // while it drives (the embedder drives a run from one task at a
        // time), so from here the run's view is kept in memory: every write
        // below is applied to it as it is journaled, never read back.
        let journal = self
            .store
            .journal(run_id)?
            .ok_or_else(|| ExecError::NoRun(run_id.to_string()))?;
        if journal.run.plan_hash != given {
            return Err(ExecError::PlanChanged {
                run: run_id.to_string(),
                pinned: journal.run.plan_hash,
                given,
            });
        }
        self.drive_from(plan, journal.run, journal.steps).await
    }

    /// [`drive`](Self::drive) from the run's journaled record and steps.
    async fn drive_from(
        &self,
        plan: &Plan,
        run: RunRecord,
        steps: Vec<StepRecord>,
    ) -> Result<RunState, ExecError> {
        let run_id = run.id.as_str();
        let mut state = run.state;
        let mut records: Vec<StepRecord> = (0..plan.steps.len())
            .map(|i| StepRecord::pending(plan.steps[i].id.as_str(), i, 0))
            .collect();
        for r in steps {
            if let Some(i) = plan.steps.iter().position(|s| s.id.as_str() == r.step) {
                records[i] = r;
            }
        }
        loop {
            if state.is_final() || state == RunState::NeedsAttention {
                return Ok(state);
            }
            if self.stopping() {
                return Ok(state);
            }
            // A step in flight at a crash is re-run: treat it as ready.
            let views: Vec<StepView> = records
                .iter()
                .map(|r| StepView {
                    state: if r.state == StepState::Running {
                        StepState::Pending
                    } else {
                        r.state
                    },
                    // Completion order: the step's last audit seq (strictly
                    // increasing), else its journal time.
                    done_order: (r.state == StepState::Done)
                        .then(|| r.audit_seqs.last().copied().unwrap_or(r.updated_ms)),
                })
                .collect();
            let values: Vec<Option<Value>> = records.iter().map(|r| r.output.clone()).collect();
            let outputs = saga::outputs(plan, &views, &values);
            let scope = Scope {
                input: &run.input,
                steps: &outputs,
            };
            match saga::next(plan, &views) {
                Next::Finish(state) => {
                    let outcome = if state == RunState::Completed {
                        crate::Outcome::Ok
                    } else {
                        crate::Outcome::CapabilityError
                    };
                    self.end(plan, run_id, &run.principal, state, outcome)
                        .await?;
                    return Ok(state);
                }
                Next::Wait => {
                    self.store.set_state(run_id, RunState::Waiting).await?;
                    return Ok(RunState::Waiting);
                }
                Next::Compensate(i) => {
                    let Compensation::Call(call) = &plan.steps[i].compensate else {
                        continue;
                    };
                    let mut r = records[i].clone();
                    let id = format!("{run_id}.{}.compensate", plan.steps[i].id);
                    let t = std::time::Instant::now();
                    let result = self.invoke(call, &scope, &id, &run, 1, None, None).await?;
                    let label = format!("{}.compensate", plan.steps[i].id);
                    self.observe(plan, run_id, &label, &result, t);
                    r.audit_seqs.extend(result.audit.as_ref().map(|a| a.seq));
                    r.state = if result.outcome.as_string() == "ok" {
                        StepState::Compensated
                    } else {
                        StepState::CompensationFailed
                    };
                    r.updated_ms = now_ms();
                    self.store
                        .record_step(run_id, &r, Some(RunState::Compensating))
                        .await?;
                    records[i] = r;
                    state = RunState::Compensating;
                }
                Next::Start(ready) => {
                    // The last wave: every other step is done or skipped, so
                    // if these end ok the run ends next, durably.
                    let last = views.iter().enumerate().all(|(j, v)| {
                        ready.contains(&j)
                            || matches!(v.state, StepState::Done | StepState::Skipped)
                    });
                    let ready = ready.into_iter().map(|i| (i, records[i].clone())).collect();
                    let (written, end) = self
                        .run_wave(plan, ready, &scope, run_id, &run, last)
                        .await?;
                    for (i, r) in written {
                        if r.state == StepState::Waiting {
                            state = RunState::Waiting;
                        }
                        records[i] = r;
                    }
                    // The end queued behind the last step's entry: the run
                    // is over once it is committed. Refused (that step's
                    // record was not written with its entry), the run is
                    // ended below like any other.
                    if let Some(end) = end {
                        match end.await {
                            Ok(_) => return Ok(RunState::Completed),
                            Err(e) => tracing::debug!(
                                run = run_id,
                                "the end queued behind the last step was refused ({e}); ending the run now"
                            ),
                        }
                    }
                }
            }
        }
    }

    /// Runs the ready steps `ready` (plan indexes in plan order with their
    /// journal records, at most
    /// `max_parallel` of them, as [`saga::next`] chose them) as one wave:
    /// skips, `when` failures and approvals are journaled in plan order;
    /// the calls are journaled `running` in plan order, then invoked
    /// concurrently (each with its own retries); their results are
    /// journaled in plan order once every call of the wave has ended, so
    /// the journal does not depend on which call finished first. `last`:
    /// no other step is left to run. With the records, the run's `end` when
    /// it was queued behind the last step's entry.
    async fn run_wave(
        &self,
        plan: &Plan,
        ready: Vec<(usize, StepRecord)>,
        scope: &Scope<'_>,
        run_id: &str,
        run: &RunRecord,
        last: bool,
    ) -> Result<(Vec<(usize, StepRecord)>, Option<Ack<Appended>>), ExecError> {
        let mut calls = Vec::new();
        let mut written = Vec::new();
        for (i, r) in ready {
            match self.prepare_step(plan, i, r, scope, run_id, run).await? {
                Prepared::Call(prepared) => calls.push(prepared),
                Prepared::Settled(r) => written.push((i, r)),
            }
        }
        // A wave of one call (a chain) has no order to keep among its
        // results: its record is written with the step's entry — durably,
        // unless the run's durable end follows it at once (the last wave:
        // nothing acts on that record but the end, which syncs it).
        let fuse = (calls.len() == 1).then_some(!last);
        let attempts = calls.into_iter().map(|(i, r, call, retry)| async move {
            let ended = self
                .attempt_step(plan, i, r, call, retry, scope, run_id, run, fuse)
                .await;
            (i, ended)
        });
        let mut queued_end = None;
        for (i, ended) in join_all(attempts).await {
            let (mut r, journaled, end) = ended?;
            // Journaled with its entry (the writer stamped that copy).
            r.updated_ms = now_ms();
            if !journaled {
                self.store.record_step(run_id, &r, None).await?;
            }
            queued_end = queued_end.or(end);
            written.push((i, r));
        }
        Ok((written, queued_end))
    }

    /// The part of a step that is decided before it runs, journaled at
    /// once: a false `when` (skipped, audited), a `when` that cannot be
    /// evaluated (failed), an approval (waiting). A call is journaled
    /// `running` (attempt n) and handed back to be invoked.
    async fn prepare_step<'p>(
        &self,
        plan: &'p Plan,
        i: usize,
        mut r: StepRecord,
        scope: &Scope<'_>,
        run_id: &str,
        run: &RunRecord,
    ) -> Result<Prepared<'p>, ExecError> {
        let principal = run.principal.as_str();
        let step = &plan.steps[i];
        match saga::should_run(plan, i, scope) {
            Ok(true) => {}
            Ok(false) => {
                // Deferred: the durable `skipped` record below covers it.
                let seq = self
                    .audit_event_with(
                        principal,
                        crate::Outcome::Ok,
                        serde_json::json!({
                            "run": run_id,
                            "workflow": plan.name.as_str(),
                            "event": "skip",
                            "step": step.id.as_str(),
                            "when": step.when.as_ref().map(|w| w.source()),
                        }),
                        false,
                    )
                    .await?;
                r.audit_seqs.extend(seq);
                r.state = StepState::Skipped;
                r.updated_ms = now_ms();
                self.store.record_step(run_id, &r, None).await?;
                return Ok(Prepared::Settled(r));
            }
            Err(e) => {
                r.state = StepState::Failed;
                r.outcome = Some("invalid_input".into());
                r.output = Some(Value::String(format!("`when` cannot be evaluated: {e}")));
                r.updated_ms = now_ms();
                self.store.record_step(run_id, &r, None).await?;
                return Ok(Prepared::Settled(r));
            }
        }
        let call = match &step.action {
            Action::Call(c) => c,
            Action::Approval(_) => {
                r.state = StepState::Waiting;
                r.updated_ms = now_ms();
                self.store
                    .record_step(run_id, &r, Some(RunState::Waiting))
                    .await?;
                return Ok(Prepared::Settled(r));
            }
        };
        // Retries by failure class: the step's own, else the capability's policy.
        let retry = step.retry.unwrap_or_else(|| {
            self.capability(&call.capability)
                .map(|c| c.policy.retry)
                .unwrap_or_default()
        });
        r.attempts = r.attempts.saturating_add(1);
        self.mark_running(run_id, &mut r).await?;
        Ok(Prepared::Call((i, r, call, retry)))
    }

    /// Invokes a prepared call step until it succeeds or its retries (per
    /// failure class) are exhausted; every retry is journaled `running`
    /// before it starts. The result is returned, not journaled: the wave
    /// journals results in plan order. The last step of a run (`fuse`
    /// `Some(false)`) also hands back the run's `end` when its ok result
    /// queued it ([`end_behind`](Self::end_behind)).
    #[allow(clippy::too_many_arguments)]
    async fn attempt_step(
        &self,
        plan: &Plan,
        i: usize,
        mut r: StepRecord,
        call: &PlanCall,
        retry: RetryPolicy,
        scope: &Scope<'_>,
        run_id: &str,
        run: &RunRecord,
        fuse: Option<bool>,
    ) -> Result<(StepRecord, bool, Option<Ack<Appended>>), ExecError> {
        let step = &plan.steps[i];
        let id = format!("{run_id}.{}", step.id);
        let started = std::time::Instant::now();
        loop {
            let t = std::time::Instant::now();
            let written = Arc::new(AtomicBool::new(false));
            let queued_end = QueuedEnd::default();
            let then = fuse.and_then(|durable| {
                let mut then = self.record_after_entry(call, run_id, &r, &written, durable)?;
                if !durable {
                    then.follow = self.end_behind(plan, run, step.id.as_str(), &queued_end);
                }
                Some(then)
            });
            let result = self
                .invoke(call, scope, &id, run, r.attempts, step.timeout, then)
                .await?;
            let end = queued_end
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            self.observe(plan, run_id, step.id.as_str(), &result, t);
            r.audit_seqs.extend(result.audit.as_ref().map(|a| a.seq));
            r.outcome = Some(result.outcome.as_string());
            if result.outcome.as_string() == "ok" {
                r.state = StepState::Done;
                r.output = Some(unwrap_ok(result.output, self.returns_result(call)));
                // Journaled with the entry (durable) unless that write failed.
                let journaled = written.load(Ordering::Acquire) && result.audit.is_some();
                return Ok((r, journaled, end));
            }
            if let Some(end) = end {
                // Queued on an ok result whose entry then failed: refused
                // (the step is not journaled done); nothing to end.
                let _ = end.await;
            }
            if let Some(delay) =
                retry.next_delay(result.outcome, r.attempts, &id, started.elapsed())
            {
                tokio::time::sleep(delay).await;
                r.attempts = r.attempts.saturating_add(1);
                self.mark_running(run_id, &mut r).await?;
                continue;
            }
            r.state = StepState::Failed;
            r.output = result.error.map(Value::String);
            return Ok((r, false, None));
        }
    }

    /// For a step alone in its wave, when the journal shares the audit
    /// log's commits: the write of its result record, made from the
    /// attempt's invocation record when it ended ok, run in the entry's
    /// transaction right after the entry (`Call::audit_then`), so that the
    /// entry and the record are one writer job and one fsync, as a single
    /// request's entry is. `written` is set once the rows are written; the
    /// record is the one [`attempt_step`](Self::attempt_step) returns.
    /// `durable` false: deferred (the last step of a run, whose durable
    /// `end` follows).
    fn record_after_entry(
        &self,
        call: &PlanCall,
        run_id: &str,
        r: &StepRecord,
        written: &Arc<AtomicBool>,
        durable: bool,
    ) -> Option<AuditThen> {
        if !self.fused() {
            return None;
        }
        let make = self.store.step_after_entry(run_id)?;
        let returns_result = self.returns_result(call);
        let template = r.clone();
        let written = written.clone();
        let make = Arc::new(
            move |rec: &InvocationRecord| -> Option<crate::store::SeqWrite> {
                if rec.outcome != crate::Outcome::Ok {
                    return None;
                }
                let mut step = template.clone();
                step.state = StepState::Done;
                step.outcome = Some(rec.outcome.as_string());
                step.output = Some(unwrap_ok(rec.output.clone(), returns_result));
                let write = make(step);
                let written = written.clone();
                Some(Box::new(move |tx: &rusqlite::Transaction<'_>, seq: u64| {
                    write(tx, seq)?;
                    written.store(true, Ordering::Release);
                    Ok(())
                }))
            },
        );
        Some(AuditThen {
            make,
            durable,
            follow: None,
        })
    }

    /// For the last step of a run (alone in the last wave, its record
    /// written with its entry, deferred): a hook that, when the step's
    /// result is ok and nobody asked the run to stop, queues the run's
    /// durable `end` (the final state `completed` ahead of the entry)
    /// right behind the step's entry, into `slot`. The writer commits it
    /// in queue order, so the end never precedes the step, and its state
    /// write is refused unless the step's record is journaled `done` by
    /// then ([`RunStore::end_write_after`]). One durable commit covers
    /// both without a writer round trip between them.
    fn end_behind(
        &self,
        plan: &Plan,
        run: &RunRecord,
        step: &str,
        slot: &QueuedEnd,
    ) -> Option<Arc<crate::invocation::FollowEntry>> {
        // Appended through the host's recorder, like every entry.
        let recorder = self.host.recorder().clone();
        let before = self
            .store
            .end_write_after(&run.id, RunState::Completed, step)?;
        let entry = recorder.event_entry(
            crate::audit::EventKind::Workflow,
            &run.principal,
            "workflow",
            crate::Outcome::Ok,
            &end_detail(plan, &run.id, RunState::Completed),
        );
        let pending = Mutex::new(Some((before, entry)));
        let stop = self.stop.clone();
        let slot = slot.clone();
        Some(Arc::new(move |record: &InvocationRecord| {
            if record.outcome != crate::Outcome::Ok || stop.as_ref().is_some_and(|stop| stop()) {
                return;
            }
            let taken = pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let Some((before, mut entry)) = taken else {
                return;
            };
            entry.admitted_at_ms = now_ms();
            let Some(ack) = recorder.queue_event_after(before, entry, true) else {
                return;
            };
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ack);
        }))
    }

    /// Journals `r` in flight (`running`, its attempt count) before the
    /// attempt starts, so a crash re-runs the step with the same id and
    /// counts the attempt. When the journal shares the audit log's writer
    /// the marker is deferred and its answer is not awaited: the writer
    /// commits in queue order, so the marker is committed before the
    /// attempt's entry and result record, and the result record's durable
    /// commit (awaited) syncs it — one writer round trip per step fewer.
    /// Lost only with them, to an OS crash (the step then runs again with
    /// the same id); a marker whose commit failed is superseded by the
    /// result record. A journal of its own (`runs.db`) is awaited, durable.
    async fn mark_running(&self, run_id: &str, r: &mut StepRecord) -> Result<(), ExecError> {
        r.state = StepState::Running;
        r.updated_ms = now_ms();
        let ack = self.store.record_step_with(run_id, r, None, false);
        if self.store.shares_audit_commits() {
            // Queued now; dropping the answer does not cancel the write.
            drop(ack);
            return Ok(());
        }
        ack.await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn invoke(
        &self,
        call: &PlanCall,
        scope: &Scope<'_>,
        request_id: &str,
        run: &RunRecord,
        attempt: u32,
        timeout: Option<std::time::Duration>,
        then: Option<AuditThen>,
    ) -> Result<InvocationRecord, ExecError> {
        let mut c = Call::new(&call.capability, &call.function, call.input.eval(scope));
        c.request_id = Some(request_id.to_string());
        c.principal = run.principal.clone();
        c.tenant = run_tenant(run)?;
        c.via = "workflow".into();
        c.attempt = attempt.max(1);
        // Every invocation is followed by the durable journal record of its
        // result, which makes a deferred entry durable with it.
        c.audit_deferred = self.store.shares_audit_commits();
        c.timeout = timeout;
        c.audit_then = then;
        let Some(cap) = self.caps.and_then(|caps| caps.get(&call.capability)) else {
            // The host's own capabilities, or not in the deployment (the
            // pipeline refuses it, audited).
            return Ok(self.host.invoke(c).await);
        };
        let _slot = match self.slots {
            Some(slots) => match slots.slot(&call.capability).await {
                Ok(slot) => Some(slot),
                Err(why) => {
                    let refusal = Refusal::of(cap, crate::Outcome::Transient, why);
                    return Ok(self.host.refuse(&refusal, &c).await);
                }
            },
            None => None,
        };
        Ok(self.host.invoke_capability(cap, c).await)
    }

    /// Appends a `workflow` event entry (run start, skip, end) through the
    /// host's `Recorder`, the only audit appender; its seq is returned.
    pub async fn audit_event(
        &self,
        principal: &str,
        outcome: crate::Outcome,
        detail: Value,
    ) -> Result<Option<u64>, ExecError> {
        self.audit_event_with(principal, outcome, detail, true)
            .await
    }

    /// [`audit_event`](Self::audit_event), deferred when `durable` is false
    /// and the journal shares the audit log's commits (a durable journal
    /// write follows it).
    async fn audit_event_with(
        &self,
        principal: &str,
        outcome: crate::Outcome,
        detail: Value,
        durable: bool,
    ) -> Result<Option<u64>, ExecError> {
        self.audit_event_after(None, principal, outcome, detail, durable)
            .await
    }

    /// Journals the run's final `state` and appends its `end` entry
    /// (durable): one writer job when the journal writes through the
    /// host's audit log (the state written in the entry's transaction,
    /// ahead of it), else the state deferred and the entry durable.
    async fn end(
        &self,
        plan: &Plan,
        run_id: &str,
        principal: &str,
        state: RunState,
        outcome: crate::Outcome,
    ) -> Result<(), ExecError> {
        let before = if self.fused() {
            self.store.state_write(run_id, state)
        } else {
            self.store.set_state_with(run_id, state, false).await?;
            None
        };
        self.audit_event_after(
            before,
            principal,
            outcome,
            end_detail(plan, run_id, state),
            true,
        )
        .await?;
        Ok(())
    }

    /// Whether the journal writes through the host's own audit log, so a
    /// journal write can ride in an entry's transaction.
    fn fused(&self) -> bool {
        self.host
            .audit()
            .is_some_and(|log| self.store.writes_through(log))
    }

    /// [`audit_event_with`](Self::audit_event_with), with `before` (a
    /// journal write) in the entry's transaction, ahead of it.
    async fn audit_event_after(
        &self,
        before: Option<crate::store::RowWrite>,
        principal: &str,
        outcome: crate::Outcome,
        detail: Value,
        durable: bool,
    ) -> Result<Option<u64>, ExecError> {
        let durable = durable || !self.store.shares_audit_commits();
        let recorder = self.host.recorder();
        let entry = recorder.event_entry(
            crate::audit::EventKind::Workflow,
            principal,
            "workflow",
            outcome,
            &detail,
        );
        Ok(recorder
            .event_after(before, entry, durable)
            .await?
            .map(|a| a.seq))
    }

    /// Whether `call`'s function returns a WIT `result` (its `ok` is the
    /// step's output).
    fn returns_result(&self, call: &PlanCall) -> bool {
        self.capability(&call.capability)
            .and_then(|c| c.shape.export(&call.function))
            .is_some_and(|f| f.returns_result())
    }
}

/// The output later steps read: the function's, for `result<T, E>` the
/// `ok` payload.
/// The `end` entry's detail.
fn end_detail(plan: &Plan, run_id: &str, state: RunState) -> Value {
    serde_json::json!({
        "run": run_id,
        "workflow": plan.name.as_str(),
        "event": "end",
        "state": state.as_str(),
    })
}

fn unwrap_ok(output: Option<Value>, returns_result: bool) -> Value {
    match output.unwrap_or(Value::Null) {
        Value::Object(mut m) if returns_result && m.len() == 1 && m.contains_key("ok") => {
            m.remove("ok").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Polls every future until all have ended; their outputs in the order
/// given (the order the caller journals them in). A handful of futures (at
/// most `max_parallel`), so polling each on every wake is fine.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
