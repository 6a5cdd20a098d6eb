//! The daemon's decision-level workflow metrics (docs/workflows.md
//! "Metrics"): step latency per workflow and step, each run's cost (fuel
//! and model tokens, summed in memory over its invocations until it ends),
//! runs by workflow and end state, escalations (runs that waited for a
//! human), run wall time, and the scrape-time `needs_attention` gauges read
//! from the run journal on the blocking pool.
//!
//! Label values are only workflow names and step ids of loaded plans (and
//! run states): never a request id, run id, input or other client-controlled
//! string. It must never change what a run does, and never read SQLite on an
//! async worker.

use super::Daemon;
use super::metrics::labels;
use crate::InvocationRecord;
use crate::audit::HostCall;
use crate::store::{RunState, RunStore, StepState};
use crate::workflow::Plan;
use crate::workflow::executor::StepObserver;
use crate::workflow::plan::Action;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Fuel and model tokens a run has used so far in this process.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    fuel: u64,
    tokens: u64,
}

/// Per run id, the cost of its invocations so far (dropped when it ends).
#[derive(Debug, Default)]
pub(super) struct RunCosts(Mutex<HashMap<String, Cost>>);

impl RunCosts {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Cost>) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Model tokens (input + output) an invocation's model calls reported, from
/// their host-call summaries (`ok tokens=<in>+<out>`).
fn model_tokens(calls: &[HostCall]) -> u64 {
    calls
        .iter()
        .filter(|c| c.interface == "warden:host/model")
        .filter_map(|c| {
            let t = c
                .status
                .split_whitespace()
                .find_map(|w| w.strip_prefix("tokens="))?;
            let (i, o) = t.split_once('+')?;
            Some(
                i.parse::<u64>()
                    .ok()?
                    .saturating_add(o.parse::<u64>().ok()?),
            )
        })
        .fold(0u64, u64::saturating_add)
}

impl StepObserver for Daemon {
    fn invoked(
        &self,
        workflow: &str,
        run: &str,
        step: &str,
        record: &InvocationRecord,
        elapsed: Duration,
    ) {
        self.metrics.observe(
            "warden_workflow_step_seconds",
            labels(&[("workflow", workflow), ("step", step)]),
            elapsed,
        );
        let tokens = model_tokens(&record.host_calls);
        self.run_costs.with(|costs| {
            let c = costs.entry(run.to_string()).or_default();
            c.fuel = c.fuel.saturating_add(record.usage.fuel);
            c.tokens = c.tokens.saturating_add(tokens);
        });
    }
}

impl Daemon {
    /// Counts run `run_id` of `plan` stopping in `state`, when that is an
    /// end (completed, compensated, cancelled) or `needs_attention`; other
    /// states (waiting, still running) count nothing.
    pub(super) async fn run_stopped(&self, plan: &Plan, run_id: &str, state: RunState) {
        if !(state.is_final() || state == RunState::NeedsAttention) {
            return;
        }
        let workflow = plan.name.as_str();
        self.metrics.add(
            "warden_workflow_runs_total",
            labels(&[("workflow", workflow), ("state", state.as_str())]),
            1,
        );
        // A run in needs_attention may be resumed: its cost keeps adding up.
        let cost = if state.is_final() {
            self.run_costs.with(|c| c.remove(run_id))
        } else {
            None
        };
        if state == RunState::Completed {
            let cost = cost.unwrap_or_default();
            let l = labels(&[("workflow", workflow)]);
            self.metrics
                .add("warden_workflow_run_fuel_total", l.clone(), cost.fuel);
            self.metrics
                .add("warden_workflow_run_model_tokens_total", l, cost.tokens);
        }
        let journal = {
            let store = self.runs.clone();
            let id = run_id.to_string();
            tokio::task::spawn_blocking(move || store.journal(&id)).await
        };
        let Ok(Ok(Some(journal))) = journal else {
            tracing::warn!(run = run_id, "run metrics: the journal could not be read");
            return;
        };
        let wall = crate::units::now_ms().saturating_sub(journal.run.created_ms);
        self.metrics.observe(
            "warden_workflow_run_seconds",
            labels(&[("workflow", workflow), ("state", state.as_str())]),
            Duration::from_millis(wall),
        );
        let escalated = plan.steps.iter().any(|s| {
            matches!(s.action, Action::Approval(_))
                && journal.steps.iter().any(|r| {
                    r.step == s.id.as_str()
                        && !matches!(r.state, StepState::Pending | StepState::Skipped)
                })
        });
        if state.is_final() && escalated {
            self.metrics.add(
                "warden_workflow_runs_escalated_total",
                labels(&[("workflow", workflow)]),
                1,
            );
        }
    }

    /// Scrape-time values: per workflow, runs in `needs_attention` now, and
    /// the age in seconds of the one stopped longest (read on the blocking pool).
    pub(super) async fn needs_attention(&self) -> (Vec<(String, i64)>, f64) {
        let store = self.runs.clone();
        let runs = tokio::task::spawn_blocking(move || {
            store.runs(Some(RunState::NeedsAttention), usize::MAX)
        })
        .await;
        let Ok(Ok(runs)) = runs else {
            tracing::warn!("metrics: the run journal could not be read");
            return (Vec::new(), 0.0);
        };
        let mut per: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for r in &runs {
            let n = per.entry(r.workflow.clone()).or_default();
            *n = n.saturating_add(1);
        }
        let now = crate::units::now_ms();
        let oldest = runs.iter().map(|r| r.updated_ms).min();
        let age = oldest.map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0);
        (per.into_iter().collect(), age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(interface: &str, status: &str) -> HostCall {
        HostCall {
            interface: interface.into(),
            target: "m".into(),
            bytes_in: 0,
            bytes_out: 0,
            status: status.into(),
            request_sha256: None,
            response_sha256: None,
        }
    }

    #[test]
    fn model_tokens_are_summed_from_model_call_summaries_only_and_saturate() {
        let calls = [
            call("warden:host/model", "ok tokens=12+30"),
            call("warden:host/model", "budget_exhausted tokens=5+7"),
            call("warden:host/model", "unavailable"),
            call("warden:host/model", "ok tokens=x+3"),
            call("wasi:http/outgoing-handler", "200 tokens=1000+1000"),
        ];
        assert_eq!(model_tokens(&calls), 54);
        let huge = [
            call("warden:host/model", &format!("ok tokens={}+1", u64::MAX)),
            call("warden:host/model", "ok tokens=1+1"),
        ];
        assert_eq!(model_tokens(&huge), u64::MAX);
    }
}
