//! Workflows: `warden workflow check|explain|graph` against the real
//! example components (their WIT signatures type the checks).

use crate::support::{guest, repo, scratch, warden};
use std::path::PathBuf;

fn example() -> PathBuf {
    repo().join("examples/workflows/order-refund.toml")
}

fn components() -> String {
    guest("echo")
        .parent()
        .expect("guests dir")
        .display()
        .to_string()
}

fn check_against_examples(plan: &str) -> (i32, String, String) {
    let policies = repo().join("policies").display().to_string();
    let components = components();
    warden(&[
        "workflow",
        "check",
        plan,
        "--policies",
        &policies,
        "--components",
        &components,
        "--allow-unsigned",
    ])
}

#[test]
fn the_example_order_workflow_checks_clean_against_the_real_components() {
    let plan = example().display().to_string();
    let (code, out, err) = check_against_examples(&plan);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("workflow `order-refund`, 5 step(s), calls and types checked"),
        "{out}"
    );
}

#[test]
fn check_refuses_a_wit_type_mismatch_and_an_unknown_function_at_once_with_lines() {
    let text = std::fs::read_to_string(example())
        .expect("example plan")
        .replace(
            "amount = \"${input.amount}\", currency",
            "amount = \"${input.currency}\", currency",
        )
        .replace("\"echo.echo\"", "\"echo.shout\"");
    let dir = scratch("workflow-check");
    let path = dir.join("order-refund.toml");
    std::fs::write(&path, &text).expect("write plan");
    let (code, out, err) = check_against_examples(&path.display().to_string());
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    let line = |needle: &str| {
        let at = text.find(needle).expect("needle");
        text[..at].matches('\n').count() + 1
    };
    let file = path.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:{}:",
            line("amount = \"${input.currency}\"")
        )) && err.contains("input.amount: gives a string, but an integer is wanted"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:{}:", line("\"echo.shout\"")))
            && err.contains("`echo` exports no function `shout` (it exports echo)"),
        "{err}"
    );
    assert!(err.contains("2 problem(s) in 1 plan(s)"), "{err}");
}

#[test]
fn explain_prints_the_plan_hash_and_graph_prints_mermaid() {
    let plan = example().display().to_string();
    let (code, out, err) = warden(&["workflow", "explain", &plan]);
    assert_eq!(code, 0, "{err}");
    let hash_line = out
        .lines()
        .find(|l| l.starts_with("plan hash   sha256:"))
        .unwrap_or_else(|| panic!("no hash in:\n{out}"));
    let (_, again, _) = warden(&["workflow", "explain", &plan]);
    assert!(again.contains(hash_line), "the hash is stable:\n{again}");
    assert!(out.contains("4. refund  [pivot]"), "{out}");
    let (code, graph, err) = warden(&["workflow", "graph", &plan]);
    assert_eq!(code, 0, "{err}");
    assert!(graph.starts_with("flowchart TD\n"), "{graph}");
    assert!(graph.contains("    note --> refund\n"), "{graph}");
}

// ---------------------------------------------------------------------------
// The library executor: real components, a real journal and audit log.

use crate::support::{audited_host, load, policy};
use warden_host::store::{RunState, RunStore, SqliteRunStore, StepState};
use warden_host::workflow::executor::{ExecError, Executor};
use warden_host::workflow::{Plan, check};

const SAGA: &str = r#"
[input]
type = "object"
required = ["word"]
[input.properties]
word = { type = "string" }

[[step]]
id = "first"
call = "echo.echo"
input = { message = "first ${input.word}" }
compensate = { call = "echo.echo", input = { message = "undo ${steps.first.output}" } }

[[step]]
id = "second"
needs = ["first"]
call = "echo.echo"
input = { message = "${steps.first.output} then second" }
compensate = { call = "echo.echo", input = { message = "undo second" } }

[[step]]
id = "third"
needs = ["second"]
call = "THIRD"
input = { message = "${steps.second.output}" }
PIVOT
"#;

fn saga_plan(third: &str, pivot_on_second: bool) -> Plan {
    let mut text = SAGA.replace("THIRD", third);
    if pivot_on_second {
        text = text
            .replace(
                "compensate = { call = \"echo.echo\", input = { message = \"undo second\" } }",
                "pivot = true",
            )
            .replace("PIVOT", "");
    } else {
        text = text.replace("PIVOT", "compensate = \"none\"");
    }
    Plan::parse(std::path::Path::new("saga.toml"), &text).expect("plan parses")
}

fn saga_host(name: &str) -> (warden_host::Host, SqliteRunStore) {
    let mut host = audited_host(name);
    load(&mut host, policy("echo", "", ""), "echo");
    load(
        &mut host,
        policy("panicker", crate::support::STD_IMPORTS, ""),
        "panicker",
    );
    // The journal in the audit database, as the daemon keeps it: steps'
    // entries deferred, their records durable (one fsync per step).
    let store = SqliteRunStore::in_audit_log(host.audit().expect("audited host")).expect("journal");
    (host, store)
}

#[tokio::test]
async fn a_run_completes_each_step_reading_the_journaled_output_of_the_one_before() {
    let (host, store) = saga_host("wf-complete");
    let plan = saga_plan("echo.echo", false);
    let checked = check(&plan, None).expect("checks");
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-1",
            "alice",
            serde_json::json!({"word": "hi"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::Completed);
    let j = store.journal("run-1").expect("read").expect("journaled");
    assert_eq!(j.run.plan_hash, plan.hash().tagged());
    assert!(j.run.pins.contains_key("first") && j.run.pins.contains_key("first.compensate"));
    let outputs: Vec<_> = j.steps.iter().map(|s| s.output.clone()).collect();
    assert_eq!(
        outputs,
        [
            Some(serde_json::json!("first hi")),
            Some(serde_json::json!("first hi then second")),
            Some(serde_json::json!("first hi then second")),
        ]
    );
    // One audit entry per step, in plan order.
    let seqs: Vec<u64> = j.steps.iter().flat_map(|s| s.audit_seqs.clone()).collect();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn a_failure_before_the_pivot_compensates_completed_steps_in_reverse_order() {
    let (host, store) = saga_host("wf-compensate");
    let plan = saga_plan("panicker.boom", false);
    let checked = check(&plan, None).expect("checks");
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-2",
            "alice",
            serde_json::json!({"word": "hi"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::Compensated);
    let j = store.journal("run-2").expect("read").expect("journaled");
    let states: Vec<StepState> = j.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            StepState::Compensated,
            StepState::Compensated,
            StepState::Failed
        ]
    );
    assert_eq!(j.steps[2].outcome.as_deref(), Some("trap"));
    // second was undone before first: its compensation entry comes first.
    let undo_first = *j.steps[0].audit_seqs.last().expect("undo entry");
    let undo_second = *j.steps[1].audit_seqs.last().expect("undo entry");
    assert!(undo_second < undo_first, "{:?}", j.steps);
}

#[tokio::test]
async fn a_failure_after_the_pivot_stops_in_needs_attention_without_compensating() {
    let (host, store) = saga_host("wf-pivot");
    let plan = saga_plan("panicker.boom", true);
    let checked = check(&plan, None).expect("checks");
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-3",
            "alice",
            serde_json::json!({"word": "hi"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::NeedsAttention);
    let j = store.journal("run-3").expect("read").expect("journaled");
    let states: Vec<StepState> = j.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [StepState::Done, StepState::Done, StepState::Failed]
    );
}

#[tokio::test]
async fn an_input_that_does_not_match_the_declared_type_is_refused_before_any_step() {
    let (host, store) = saga_host("wf-input");
    let plan = saga_plan("echo.echo", false);
    let checked = check(&plan, None).expect("checks");
    let err = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-4",
            "alice",
            serde_json::json!({"word": 3}),
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ExecError::InvalidInput { problems, .. } if problems == &["input.word: is an integer, but string is wanted"]),
        "{err}"
    );
    assert!(
        store.journal("run-4").expect("read").is_none(),
        "nothing was journaled"
    );
}

#[tokio::test]
async fn a_step_in_flight_at_a_crash_is_rerun_with_its_request_id_and_done_steps_are_not() {
    let (host, store) = saga_host("wf-resume");
    let plan = saga_plan("echo.echo", false);
    let checked = check(&plan, None).expect("checks");
    // Run to completion once to get a real journal, then rewind it to "the
    // daemon died while `second` was in flight": first done, second running.
    Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-5",
            "alice",
            serde_json::json!({"word": "hi"}),
        )
        .await
        .expect("runs");
    let before = store.journal("run-5").expect("read").expect("journaled");
    let mut second = before.steps[1].clone();
    second.state = StepState::Running;
    second.output = None;
    second.audit_seqs.clear();
    let mut third = before.steps[2].clone();
    third.state = StepState::Pending;
    third.output = None;
    third.audit_seqs.clear();
    store
        .record_step("run-5", &second, Some(RunState::Running))
        .await
        .expect("rewind");
    store
        .record_step("run-5", &third, None)
        .await
        .expect("rewind");

    let state = Executor::new(&host, &store)
        .drive(&plan, "run-5")
        .await
        .expect("resumes");
    assert_eq!(state, RunState::Completed);
    let after = store.journal("run-5").expect("read").expect("journaled");
    assert_eq!(
        after.steps[0], before.steps[0],
        "a done step is never re-run"
    );
    assert_eq!(after.steps[1].attempts, 2, "the in-flight step ran again");
    let log = host.audit().expect("audit log");
    let seq = *after.steps[1].audit_seqs.last().expect("entry");
    let entry = log
        .entries(seq, 1, &warden_host::store::EntryFilter::default())
        .expect("read")
        .remove(0);
    assert_eq!(
        entry.entry.request_id, "run-5.second",
        "the same deterministic id"
    );
    assert_eq!(after.steps[2].output, before.steps[2].output);
}

#[tokio::test]
async fn a_run_is_driven_only_by_the_plan_it_pinned() {
    let (host, store) = saga_host("wf-pinned");
    let plan = saga_plan("echo.echo", false);
    let checked = check(&plan, None).expect("checks");
    Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-6",
            "alice",
            serde_json::json!({"word": "hi"}),
        )
        .await
        .expect("runs");
    let changed = saga_plan("echo.echo", true);
    let err = Executor::new(&host, &store)
        .drive(&changed, "run-6")
        .await
        .expect_err("another plan");
    assert!(matches!(err, ExecError::PlanChanged { .. }), "{err}");
}

#[tokio::test]
async fn a_step_after_the_pivot_is_retried_per_its_policy_then_needs_attention() {
    let (host, store) = saga_host("wf-retry");
    let plan = saga_plan("panicker.boom", true);
    let source = plan.text.replace(
        "call = \"panicker.boom\"",
        "call = \"panicker.boom\"\nretry = { trap = { attempts = 3, base = \"1ms\" } }",
    );
    let plan = Plan::parse(std::path::Path::new("saga.toml"), &source).expect("parses");
    let checked = check(&plan, None).expect("checks");
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-7",
            "alice",
            serde_json::json!({"word": "hi"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::NeedsAttention);
    let j = store.journal("run-7").expect("read").expect("journaled");
    assert_eq!(j.steps[2].state, StepState::Failed);
    assert_eq!(j.steps[2].attempts, 3);
    assert_eq!(j.steps[2].audit_seqs.len(), 3, "every attempt is audited");
}

#[tokio::test]
async fn a_run_records_its_start_skips_and_end_in_the_audit_chain_which_verifies() {
    let (host, store) = saga_host("wf-audit");
    // `second` is skipped, so the third step reads its output as null.
    let source = saga_plan("echo.echo", false)
        .text
        .replace(
            "id = \"second\"\nneeds = [\"first\"]",
            "id = \"second\"\nneeds = [\"first\"]\nwhen = 'input.word == \"skip-me-not\"'",
        )
        .replace(
            "input = { message = \"${steps.second.output}\" }",
            "input = { message = \"after ${steps.second.output}\" }",
        );
    let plan = Plan::parse(std::path::Path::new("saga.toml"), &source).expect("parses");
    let checked = check(&plan, None).expect("checks");
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-8",
            "alice",
            serde_json::json!({"word": "hi"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::Completed);
    let log = host.audit().expect("audit log");
    let entries = log
        .entries(1, 100, &warden_host::store::EntryFilter::default())
        .expect("read");
    let kinds: Vec<(String, Option<String>)> = entries
        .iter()
        .map(|e| (e.entry.event.as_str().to_string(), e.entry.detail.clone()))
        .collect();
    let events: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        events,
        [
            "workflow",
            "invocation",
            "workflow",
            "invocation",
            "workflow"
        ],
        "{kinds:?}"
    );
    let detail = |i: usize| -> serde_json::Value {
        serde_json::from_str(kinds[i].1.as_deref().expect("detail")).expect("json")
    };
    assert_eq!(detail(0)["event"], "start");
    assert_eq!(detail(0)["plan_hash"], plan.hash().tagged());
    assert!(detail(0)["pins"]["first"]["component"].is_string());
    assert_eq!(detail(2)["event"], "skip");
    assert_eq!(detail(2)["when"], "input.word == \"skip-me-not\"");
    assert_eq!(detail(4)["event"], "end");
    assert_eq!(detail(4)["state"], "completed");
    let j = store.journal("run-8").expect("read").expect("journaled");
    assert_eq!(j.steps[1].state, StepState::Skipped);
    assert_eq!(j.steps[1].audit_seqs, [entries[2].seq]);
    assert_eq!(j.steps[2].output, Some(serde_json::json!("after null")));
    log.checkpoint_now().await.expect("sign a checkpoint");
    let report = log.verify().expect("verify runs");
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.entries_checked, 5);
}
