//! A workflow step's `timeout` (issue 20): the step's invocation gets that
//! wall-clock deadline when it is smaller than the policy's `wall_time`; an
//! attempt that crosses it ends `budget_exhausted:time` naming the step
//! timeout, and is retried per the step's `retry` (class `timeout`) with
//! the same idempotency key, so the payments double applies one effect.

use crate::doubles::{Ledger, payments_with};
use crate::support::{audited_host, repo, scratch};
use std::time::Duration;
use warden_host::policy::Policy;
use warden_host::store::{RunState, RunStore, SqliteRunStore, StepState};
use warden_host::workflow::executor::Executor;
use warden_host::workflow::{Plan, check};

const PLAN: &str = r#"
[input]
type = "object"
required = ["order"]
[input.properties]
order = { type = "string" }

[[step]]
id = "pay"
call = "refund.refund"
input = { order = "${input.order}", amount = 900, currency = "EUR" }
pivot = true
timeout = "300ms"
RETRY
"#;

#[tokio::test]
async fn a_step_over_its_timeout_fails_as_a_timeout_and_its_retry_reuses_the_key() {
    let _port = crate::support::FX_PORT.lock().await;
    let ledger = Ledger::default();
    let _double = payments_with(18081, ledger.clone())
        .await
        .expect("port 18081 is free");
    let mut host = audited_host("wf-timeout");
    let refund = Policy::load(&repo().join("policies/refund.toml")).expect("policy");
    assert_eq!(refund.budget.wall_time.get(), Duration::from_secs(5));
    host.load(
        refund,
        &std::fs::read(crate::support::guest("refund")).expect("built"),
        "refund",
    )
    .expect("load");
    let store = SqliteRunStore::open(&scratch("wf-timeout-runs")).expect("journal");
    let run = |retry: &str| {
        Plan::parse(
            std::path::Path::new("pay.toml"),
            &PLAN.replace("RETRY", retry),
        )
        .expect("plan parses")
    };

    // Retried on `timeout`: the first attempt waits on a stalled service and
    // is cut off at 300ms; the second (same key) gets the first receipt.
    ledger.stall("T-1", Duration::from_secs(3));
    let plan = run("retry = { timeout = { attempts = 2, base = \"10ms\" } }");
    let checked = check(&plan, None).expect("checks");
    let started = std::time::Instant::now();
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-t1",
            "alice",
            serde_json::json!({"order": "T-1"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::Completed);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the step did not wait out the stalled service: {:?}",
        started.elapsed()
    );
    let j = store.journal("run-t1").expect("read").expect("journaled");
    let pay = &j.steps[0];
    assert_eq!((pay.state, pay.attempts), (StepState::Done, 2));
    assert_eq!(
        ledger.keys_for("T-1"),
        vec![Some("run-t1.pay".to_string()); 2]
    );
    assert_eq!(
        ledger.effects_for("run-t1.pay"),
        1,
        "one refund for two attempts"
    );
    let log = host.audit().expect("audit log");
    let entries = log
        .entries(1, 100, &warden_host::store::EntryFilter::default())
        .expect("entries");
    let first = entries
        .iter()
        .find(|e| e.entry.request_id == "run-t1.pay" && e.entry.attempt == 1)
        .expect("the first attempt is audited");
    assert_eq!(first.entry.outcome.as_string(), "budget_exhausted:time");

    // Not retried: the attempt over its timeout fails the step (the pivot,
    // unfinished, so the run is compensated: nothing before it to undo).
    ledger.stall("T-2", Duration::from_secs(3));
    let plan = run("");
    let checked = check(&plan, None).expect("checks");
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-t2",
            "alice",
            serde_json::json!({"order": "T-2"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::Compensated);
    let j = store.journal("run-t2").expect("read").expect("journaled");
    let pay = &j.steps[0];
    assert_eq!((pay.state, pay.attempts), (StepState::Failed, 1));
    assert_eq!(pay.outcome.as_deref(), Some("budget_exhausted:time"));
    let why = pay.output.as_ref().and_then(|o| o.as_str()).unwrap_or("");
    assert!(
        why.contains("step timeout of 300ms exceeded") && why.contains("wall_time is 5s"),
        "{why}"
    );
}
