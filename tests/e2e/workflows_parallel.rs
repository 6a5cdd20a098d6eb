//! Concurrent steps bounded by `[workflow] max_parallel` (issue 20): two
//! independent refund steps run at once under `max_parallel = 2` and one
//! after the other under `max_parallel = 1`; either way their results are
//! journaled in plan order, while their invocation entries are in
//! completion order (what the executor documents).

use crate::doubles::{Ledger, payments_with};
use crate::support::{audited_host, guest, repo, scratch};
use std::time::{Duration, Instant};
use warden_host::policy::Policy;
use warden_host::store::{RunState, RunStore, SqliteRunStore};
use warden_host::workflow::executor::Executor;
use warden_host::workflow::{Plan, check};

const PLAN: &str = r#"
[workflow]
max_parallel = PARALLEL

[input]
type = "object"
required = ["order"]
[input.properties]
order = { type = "string" }

[[step]]
id = "slow"
call = "refund.refund"
input = { order = "${input.order}-slow", amount = 100, currency = "EUR" }
compensate = "none"

[[step]]
id = "quick"
call = "refund.refund"
input = { order = "${input.order}-quick", amount = 200, currency = "EUR" }
compensate = "none"

[[step]]
id = "after"
needs = ["slow", "quick"]
call = "refund.refund"
input = { order = "${input.order}-after", amount = 300, currency = "EUR" }
pivot = true
"#;

#[tokio::test]
async fn independent_steps_run_concurrently_within_max_parallel_and_journal_in_plan_order() {
    let _port = crate::support::FX_PORT.lock().await;
    let ledger = Ledger::default();
    let _double = payments_with(18081, ledger.clone())
        .await
        .expect("port 18081 is free");
    let mut host = audited_host("wf-parallel");
    host.load(
        Policy::load(&repo().join("policies/refund.toml")).expect("policy"),
        &std::fs::read(guest("refund")).expect("built"),
        "refund",
    )
    .expect("load");
    let store = SqliteRunStore::open(&scratch("wf-parallel-runs")).expect("journal");
    let stall = Duration::from_millis(1200);
    for (parallel, run_id) in [(2u32, "run-p2"), (1, "run-p1")] {
        let order = run_id.to_uppercase();
        let plan = Plan::parse(
            std::path::Path::new("fan.toml"),
            &PLAN.replace("PARALLEL", &parallel.to_string()),
        )
        .expect("plan parses");
        let checked = check(&plan, None).expect("checks");
        ledger.stall(&format!("{order}-slow"), stall);
        let started = Instant::now();
        let state = Executor::new(&host, &store)
            .start(
                &plan,
                &checked,
                run_id,
                "alice",
                serde_json::json!({"order": order}),
            )
            .await
            .expect("runs");
        let took = started.elapsed();
        assert_eq!(state, RunState::Completed, "max_parallel = {parallel}");
        let j = store.journal(run_id).expect("read").expect("journaled");
        let step = |id: &str| {
            j.steps
                .iter()
                .find(|s| s.step == id)
                .cloned()
                .expect("step journaled")
        };
        let (slow, quick) = (step("slow"), step("quick"));
        // Journaled in plan order: `slow` (first in the file) before `quick`.
        assert!(
            slow.updated_ms <= quick.updated_ms,
            "max_parallel = {parallel}: results journaled in plan order: {slow:?} {quick:?}"
        );
        let (slow_seq, quick_seq) = (slow.audit_seqs[0], quick.audit_seqs[0]);
        if parallel == 2 {
            // Both were in flight at once: `quick` finished (and was audited)
            // while `slow` waited on the stalled service.
            assert!(
                quick_seq < slow_seq,
                "invocation entries are in completion order: quick {quick_seq}, slow {slow_seq}"
            );
            assert!(took < stall * 2, "ran concurrently: {took:?}");
        } else {
            assert!(slow_seq < quick_seq, "one at a time, in plan order");
        }
        for s in ["slow", "quick", "after"] {
            assert_eq!(ledger.effects_for(&format!("{run_id}.{s}")), 1);
        }
    }
}
