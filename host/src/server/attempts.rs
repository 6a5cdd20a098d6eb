//! The execute stage of the daemon's request path: a gated request's
//! attempts. Each attempt waits for a slot (the daemon's pool and the
//! capability's concurrency limit, up to `queue_timeout`), passes the
//! capability's circuit breaker, runs in a task of its own and is audited
//! ([`crate::Host::execute_gated`]); a failure the policy's `[retry]`
//! covers is retried after its backoff.
//!
//! A held request, once approved, enters here with the decisions it was
//! approved with; nothing here evaluates approval rules or routes.

use super::Daemon;
use super::metrics::labels;
use super::protect::{Admission, Protection};
use crate::pipeline::Refusal;
use crate::pipeline::answer::Answer;
use crate::workflow::executor::{SlotWait, StepSlots};
use crate::{Call, Capability, InvocationRecord, Outcome};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::Val;

/// A slot to run one invocation: the daemon's instance pool and the
/// capability's concurrency limit, held until dropped.
pub(super) struct Slot {
    _pool: OwnedSemaphorePermit,
    _capability: OwnedSemaphorePermit,
}

impl Daemon {
    /// Waits up to `queue_timeout` for a slot in the daemon's pool and in
    /// `protection`'s concurrency limit — what every invocation holds
    /// while it runs, a request's attempt and a workflow step alike.
    /// `None`: no slot freed in time.
    pub(super) async fn queue(&self, protection: &Protection) -> Option<Slot> {
        let t = Instant::now();
        let queue = self.config.limits.queue_timeout.get();
        let permits = tokio::time::timeout(queue, async {
            let pool = self.pool.clone().acquire_owned().await;
            let capability = protection.slots.clone().acquire_owned().await;
            (pool, capability)
        })
        .await;
        self.metrics.observe(
            "warden_stage_seconds",
            labels(&[("stage", "queue")]),
            t.elapsed(),
        );
        match permits {
            Ok((Ok(pool), Ok(capability))) => Some(Slot {
                _pool: pool,
                _capability: capability,
            }),
            _ => None,
        }
    }

    /// Counts a [`queue`](Self::queue) that gave up on `capability` and
    /// says why its invocation is refused.
    pub(super) fn queue_timed_out(&self, capability: &str) -> String {
        self.metrics.add(
            "warden_queue_timeouts_total",
            labels(&[("capability", capability)]),
            1,
        );
        format!(
            "`{capability}` is at its concurrency limit and no slot freed within {}; retry later",
            self.config.limits.queue_timeout
        )
    }

    /// Queue, breaker and attempts for a routed, gated request.
    pub(super) async fn attempts(
        &self,
        cap: &Arc<Capability>,
        params: Vec<Val>,
        mut call: Call,
        rule_id: Option<String>,
    ) -> Answer {
        let rule_id = rule_id.as_deref();
        let name = Some(cap.name());
        let protection = self.protection(cap.name());
        let retry = cap.policy.retry;
        let started = Instant::now();
        let mut last: Option<InvocationRecord> = None;
        loop {
            let probe = match protection.admit() {
                Admission::Refused(wait) => {
                    let record = match last {
                        // A retry refused by the breaker ends with the last attempt's outcome.
                        Some(record) => record,
                        None => {
                            let why = format!(
                                "the circuit breaker of `{}` is open after consecutive transient failures; retry later",
                                cap.name()
                            );
                            let refusal = Refusal::of(cap, Outcome::Transient, why);
                            self.host.refuse(&refusal, &call).await
                        }
                    };
                    let wait = Some(secs(wait));
                    return self.answered(&record, name, rule_id, call.attempt, wait, "policy");
                }
                Admission::Probe => true,
                Admission::Pass => false,
            };
            let Some(slot) = self.queue(&protection).await else {
                if probe {
                    // Give the probe back: nothing ran.
                    protection.record_not_run();
                }
                let why = self.queue_timed_out(cap.name());
                let refusal = Refusal::of(cap, Outcome::Transient, why);
                let record = self.host.refuse(&refusal, &call).await;
                let mut answer =
                    self.answered(&record, name, rule_id, call.attempt, Some(1), "policy");
                answer.error_code = Some("overloaded".into());
                return answer;
            };
            let record = if self.take_fault(cap.name()) {
                let why =
                    "injected fault ([testing] transient_faults in the daemon config)".to_string();
                let refusal = Refusal::of(cap, Outcome::Transient, why);
                self.host.refuse(&refusal, &call).await
            } else {
                let t = Instant::now();
                let record = self.execute_as_task(cap, params.clone(), &call).await;
                let total = t.elapsed();
                let exec = Duration::from_micros(record.usage.wall_time_us);
                self.metrics.observe(
                    "warden_stage_seconds",
                    labels(&[("stage", "execute")]),
                    exec,
                );
                self.metrics.observe(
                    "warden_stage_seconds",
                    labels(&[("stage", "audit_commit")]),
                    total.saturating_sub(exec),
                );
                record
            };
            drop(slot);
            protection.record(record.outcome == Outcome::Transient);
            let delay = retry.next_delay(
                record.outcome,
                call.attempt,
                &record.request_id,
                started.elapsed(),
            );
            let Some(delay) = delay else {
                let retry_after = (record.outcome == Outcome::Transient).then_some(1);
                return self.answered(&record, name, rule_id, call.attempt, retry_after, "policy");
            };
            self.metrics.add(
                "warden_retries_total",
                labels(&[
                    ("capability", cap.name()),
                    ("outcome", record.outcome.class()),
                ]),
                1,
            );
            last = Some(record);
            tokio::time::sleep(delay).await;
            call.attempt += 1;
        }
    }

    /// Runs one attempt as a task of its own on the runtime. Guest code
    /// yields at every epoch tick (see `sandbox::invoke`), so CPU-bound
    /// guests cannot stall the HTTP server's workers. A task of its own
    /// (not the connection's future) means a client that disconnects
    /// cannot cancel an invocation half way: it still finishes and is
    /// audited; a panic in it is a `transient` failure, not a lost request.
    async fn execute_as_task(
        &self,
        cap: &Arc<Capability>,
        params: Vec<Val>,
        call: &Call,
    ) -> InvocationRecord {
        let (host, cap_for_task, call_for_task) = (self.host.clone(), cap.clone(), call.clone());
        let task = tokio::spawn(async move {
            host.execute_gated(&cap_for_task, params, &call_for_task)
                .await
        });
        match task.await {
            Ok(record) => record,
            Err(e) => {
                let why = format!("the invocation task failed: {e}");
                let refusal = Refusal::of(cap, Outcome::Transient, why);
                self.host.refuse(&refusal, call).await
            }
        }
    }

    fn take_fault(&self, capability: &str) -> bool {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match faults.get_mut(capability) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A workflow step waits for the same slot a request of its capability
/// would (its circuit breaker and retries are the executor's own).
impl StepSlots for Daemon {
    fn slot<'s>(&'s self, capability: &'s str) -> SlotWait<'s> {
        Box::pin(async move {
            let protection = self.protection(capability);
            match self.queue(&protection).await {
                Some(slot) => Ok(Box::new(slot) as Box<dyn Send>),
                None => Err(self.queue_timed_out(capability)),
            }
        })
    }
}
