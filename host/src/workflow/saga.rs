//! The saga rules of a run as a pure decision: given a checked plan and the
//! journaled state of every step, what happens next — start these steps,
//! run this compensation, wait, or end the run in a state
//! (docs/workflows.md, "Saga").
//!
//! - Steps start in plan order once every step they need is done or
//!   skipped, at most `max_parallel` in flight.
//! - A failure before the pivot has finished: wait for the steps in
//!   flight, then compensate every done step in reverse completion order;
//!   the run ends `compensated`.
//! - A failure after the pivot finished (retries are the executor's, before
//!   it journals `failed`): the run stops `needs_attention`.
//! - A compensation that fails: `needs_attention`.
//!
//! The executor calls [`next`] after every journal write and does what it
//! says; it never decides control flow itself. Pure: no clock, no I/O.

use super::plan::{Compensation, Plan};
use super::template::Scope;
use crate::policy::predicate::EvalError;
use crate::store::{RunState, StepState};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What the executor does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start these steps (plan indexes, in plan order).
    Start(Vec<usize>),
    /// Run the compensation of this step (plan index).
    Compensate(usize),
    /// Nothing to start: steps are in flight or waiting for a human.
    Wait,
    /// The run is over, or stopped for an operator, in this state.
    Finish(RunState),
}

/// One step as the journal has it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    /// Its state.
    pub state: StepState,
    /// When it finished `done`, counting from 1 in the run (compensation
    /// order is the reverse of this); `None` otherwise.
    pub done_order: Option<u64>,
}

/// Decides what happens next. `steps[i]` is plan step `i`.
pub fn next(plan: &Plan, steps: &[StepView]) -> Next {
    let is = |i: usize, s: StepState| steps.get(i).is_some_and(|v| v.state == s);
    let any = |s: StepState| steps.iter().any(|v| v.state == s);
    if any(StepState::CompensationFailed) {
        return Next::Finish(RunState::NeedsAttention);
    }
    let pivot = plan.steps.iter().position(|s| s.pivot);
    let pivot_done = pivot.is_some_and(|p| is(p, StepState::Done));
    if any(StepState::Failed) {
        if pivot_done {
            return Next::Finish(RunState::NeedsAttention);
        }
        if any(StepState::Running) {
            return Next::Wait;
        }
        // Reverse completion order: the latest done step with something to undo.
        let undo = (0..plan.steps.len())
            .filter(|&i| is(i, StepState::Done))
            .filter(|&i| matches!(plan.steps[i].compensate, Compensation::Call(_)))
            .max_by_key(|&i| steps[i].done_order.unwrap_or(0));
        return match undo {
            Some(i) => Next::Compensate(i),
            None => Next::Finish(RunState::Compensated),
        };
    }
    let settled = |i: usize| is(i, StepState::Done) || is(i, StepState::Skipped);
    let running = steps
        .iter()
        .filter(|v| v.state == StepState::Running)
        .count();
    let room = (plan.max_parallel as usize).saturating_sub(running);
    let ready: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| is(i, StepState::Pending))
        .filter(|&i| {
            plan.steps[i].needs.iter().all(|(n, _)| {
                plan.steps
                    .iter()
                    .position(|s| s.id.as_str() == n)
                    .is_some_and(settled)
            })
        })
        .take(room)
        .collect();
    if !ready.is_empty() {
        return Next::Start(ready);
    }
    if (0..plan.steps.len()).all(settled) {
        return Next::Finish(RunState::Completed);
    }
    Next::Wait
}

/// What `steps.<id>.output` reads: done steps' outputs; skipped steps read `null`.
pub fn outputs(
    plan: &Plan,
    steps: &[StepView],
    values: &[Option<Value>],
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        match steps.get(i).map(|v| v.state) {
            Some(StepState::Done) => {
                out.insert(
                    step.id.to_string(),
                    values.get(i).cloned().flatten().unwrap_or(Value::Null),
                );
            }
            Some(StepState::Skipped) => {
                out.insert(step.id.to_string(), Value::Null);
            }
            _ => {}
        }
    }
    out
}

/// Whether step `i` runs: its `when` over the workflow input and the
/// outputs so far (`true` without one). An error fails the step; it never
/// skips it.
pub fn should_run(plan: &Plan, i: usize, scope: &Scope<'_>) -> Result<bool, EvalError> {
    let Some(when) = plan.steps.get(i).and_then(|s| s.when.as_ref()) else {
        return Ok(true);
    };
    let mut steps = Map::new();
    for (id, output) in scope.steps {
        let mut entry = Map::new();
        entry.insert("output".into(), output.clone());
        steps.insert(id.clone(), Value::Object(entry));
    }
    let mut roots = Map::new();
    roots.insert("input".into(), scope.input.clone());
    roots.insert("steps".into(), Value::Object(steps));
    when.eval_in(&roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const PLAN: &str = r#"
[workflow]
max_parallel = 2
[input]
type = "object"
[input.properties]
amount = { type = "integer" }

[[step]]
id = "a"
call = "x.f"
compensate = { call = "x.undo", input = { of = "a" } }

[[step]]
id = "b"
call = "x.f"
compensate = "none"

[[step]]
id = "c"
call = "x.f"
compensate = { call = "x.undo", input = { of = "c" } }

[[step]]
id = "gate"
needs = ["a", "b", "c"]
when = "input.amount > 100"
approval = { mode = "single" }

[[step]]
id = "pay"
needs = ["gate"]
call = "x.f"
pivot = true

[[step]]
id = "tell"
needs = ["pay"]
call = "x.f"
"#;

    fn plan() -> Plan {
        Plan::parse(Path::new("w.toml"), PLAN).expect("parses")
    }

    fn views(states: &[(StepState, Option<u64>)]) -> Vec<StepView> {
        states
            .iter()
            .map(|&(state, done_order)| StepView { state, done_order })
            .collect()
    }

    use StepState::*;

    #[test]
    fn ready_steps_start_in_plan_order_within_max_parallel() {
        let p = plan();
        let all_pending = views(&[(Pending, None); 6]);
        assert_eq!(next(&p, &all_pending), Next::Start(vec![0, 1]));
        let one_running = views(&[
            (Running, None),
            (Pending, None),
            (Pending, None),
            (Pending, None),
            (Pending, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &one_running), Next::Start(vec![1]));
        let two_running = views(&[
            (Running, None),
            (Running, None),
            (Pending, None),
            (Pending, None),
            (Pending, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &two_running), Next::Wait);
    }

    #[test]
    fn a_step_waits_for_every_need_and_a_skipped_need_counts_as_settled() {
        let p = plan();
        let s = views(&[
            (Done, Some(1)),
            (Done, Some(2)),
            (Running, None),
            (Pending, None),
            (Pending, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &s), Next::Wait);
        let s = views(&[
            (Done, Some(1)),
            (Done, Some(2)),
            (Done, Some(3)),
            (Skipped, None),
            (Pending, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &s), Next::Start(vec![4]));
    }

    #[test]
    fn a_run_whose_steps_are_all_done_or_skipped_is_completed() {
        let p = plan();
        let s = views(&[
            (Done, Some(1)),
            (Done, Some(2)),
            (Done, Some(3)),
            (Skipped, None),
            (Done, Some(4)),
            (Done, Some(5)),
        ]);
        assert_eq!(next(&p, &s), Next::Finish(RunState::Completed));
    }

    #[test]
    fn a_failure_before_the_pivot_compensates_in_reverse_completion_order() {
        let p = plan();
        // c finished before a; b has nothing to undo; the gate was refused.
        let mut s = views(&[
            (Done, Some(3)),
            (Done, Some(2)),
            (Done, Some(1)),
            (Failed, None),
            (Pending, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &s), Next::Compensate(0), "a finished last");
        s[0].state = Compensated;
        assert_eq!(next(&p, &s), Next::Compensate(2));
        s[2].state = Compensated;
        assert_eq!(next(&p, &s), Next::Finish(RunState::Compensated));
    }

    #[test]
    fn a_failure_waits_for_steps_in_flight_before_compensating() {
        let p = plan();
        let s = views(&[
            (Failed, None),
            (Running, None),
            (Done, Some(1)),
            (Pending, None),
            (Pending, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &s), Next::Wait);
    }

    #[test]
    fn a_failure_after_the_pivot_needs_attention_and_is_never_compensated() {
        let p = plan();
        let s = views(&[
            (Done, Some(1)),
            (Done, Some(2)),
            (Done, Some(3)),
            (Done, Some(4)),
            (Done, Some(5)),
            (Failed, None),
        ]);
        assert_eq!(next(&p, &s), Next::Finish(RunState::NeedsAttention));
    }

    #[test]
    fn a_failed_compensation_needs_attention() {
        let p = plan();
        let s = views(&[
            (CompensationFailed, Some(1)),
            (Done, Some(2)),
            (Done, Some(3)),
            (Failed, None),
            (Pending, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &s), Next::Finish(RunState::NeedsAttention));
    }

    #[test]
    fn a_failure_of_the_pivot_itself_compensates() {
        let p = plan();
        let s = views(&[
            (Done, Some(1)),
            (Done, Some(2)),
            (Compensated, Some(3)),
            (Done, Some(4)),
            (Failed, None),
            (Pending, None),
        ]);
        assert_eq!(next(&p, &s), Next::Compensate(0));
    }

    #[test]
    fn when_reads_the_input_and_step_outputs_and_an_error_never_skips() {
        let p = plan();
        let steps = BTreeMap::new();
        let big = json!({"amount": 500});
        let small = json!({"amount": 5});
        let none = json!({});
        let scope = |input| Scope {
            input,
            steps: &steps,
        };
        assert_eq!(should_run(&p, 3, &scope(&big)), Ok(true));
        assert_eq!(should_run(&p, 3, &scope(&small)), Ok(false));
        assert!(should_run(&p, 3, &scope(&none)).is_err());
        assert_eq!(should_run(&p, 0, &scope(&none)), Ok(true));
    }

    #[test]
    fn outputs_give_done_steps_values_and_skipped_steps_null() {
        let p = plan();
        let s = views(&[
            (Done, Some(1)),
            (Skipped, None),
            (Running, None),
            (Pending, None),
            (Pending, None),
            (Pending, None),
        ]);
        let values = vec![Some(json!({"r": 1})), None, None, None, None, None];
        let o = outputs(&p, &s, &values);
        assert_eq!(o.get("a"), Some(&json!({"r": 1})));
        assert_eq!(o.get("b"), Some(&Value::Null));
        assert!(!o.contains_key("c"));
    }
}
