//! Decision-level workflow metrics on `GET /metrics` (docs/workflows.md
//! "Metrics"): runs by workflow and end state, escalations, cost of
//! completed runs, step latency per workflow and step, and the
//! `needs_attention` gauges — scraped from a real daemon after real runs.

use crate::daemon::{APPROVE, AUDIT, Daemon, cap, deploy};
use crate::support::*;
use crate::workflows_daemon::{TWO_ECHOES, add_workflow, wait_state};
use serde_json::json;
use std::time::{Duration, Instant};

pub(crate) const UNDO: &str = r#"
[input]
type = "object"
required = ["who"]
[input.properties]
who = { type = "string" }

[[step]]
id = "hello"
call = "echo.echo"
input = { message = "hello ${input.who}" }
compensate = { call = "echo.echo", input = { message = "undo ${input.who}" } }

[[step]]
id = "boom"
needs = ["hello"]
call = "panicker.boom"
input = { message = "${steps.hello.output}" }
compensate = "none"
"#;

const PIVOTED: &str = r#"
[input]
type = "object"
required = ["who"]
[input.properties]
who = { type = "string" }

[[step]]
id = "pay"
call = "echo.echo"
input = { message = "paid ${input.who}" }
pivot = true
compensate = "none"

[[step]]
id = "record"
needs = ["pay"]
call = "panicker.boom"
input = { message = "${steps.pay.output}" }
compensate = "none"
"#;

/// The value of the sample line `series` (name with labels), if scraped.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

fn start(d: &Daemon, kind: &str, who: &str) -> String {
    let r = d.submit(json!({"kind": kind, "input": {"who": who}}));
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["run"]["run_id"]
        .as_str()
        .expect("run id")
        .to_string()
}

#[test]
fn metrics_count_runs_by_end_state_escalations_cost_and_step_latency_with_plan_labels_only() {
    let mut panicker = cap("panicker", "panicker");
    panicker.imports = STD_IMPORTS;
    let dir = deploy(
        "wf-metrics",
        &[cap("echo", "echo"), panicker],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_workflow(&dir, "greeting", TWO_ECHOES);
    add_workflow(&dir, "undo", UNDO);
    add_workflow(&dir, "charge", PIVOTED);
    let d = Daemon::start(&dir);

    let done = start(&d, "greeting", "ann");
    wait_state(&d, &done, &["completed"]);
    // Waits for a human, then an operator cancels it: ended, escalated.
    let held = start(&d, "greeting", "boss");
    wait_state(&d, &held, &["waiting"]);
    let r = d
        .client(APPROVE)
        .post_json(&format!("/v1/runs/{held}/cancel"), &json!({"reason": "no"}))
        .expect("cancel");
    assert_eq!(r.status, 200, "{}", r.text());
    let undone = start(&d, "undo", "bob");
    wait_state(&d, &undone, &["compensated"]);
    let stuck = start(&d, "charge", "cy");
    wait_state(&d, &stuck, &["needs_attention"]);

    // The counters are added right after the journal says the run stopped.
    let expected = [
        (
            "warden_workflow_runs_total{workflow=\"greeting\",state=\"completed\"}",
            1.0,
        ),
        (
            "warden_workflow_runs_total{workflow=\"greeting\",state=\"cancelled\"}",
            1.0,
        ),
        (
            "warden_workflow_runs_total{workflow=\"undo\",state=\"compensated\"}",
            1.0,
        ),
        (
            "warden_workflow_runs_total{workflow=\"charge\",state=\"needs_attention\"}",
            1.0,
        ),
        (
            "warden_workflow_runs_escalated_total{workflow=\"greeting\"}",
            1.0,
        ),
        (
            "warden_workflow_runs_needs_attention{workflow=\"charge\"}",
            1.0,
        ),
        (
            "warden_workflow_run_seconds_count{workflow=\"greeting\",state=\"completed\"}",
            1.0,
        ),
        (
            "warden_workflow_run_model_tokens_total{workflow=\"greeting\"}",
            0.0,
        ),
        // Two runs said hello; the cancel and the rollback each ran one compensation.
        (
            "warden_workflow_step_seconds_count{workflow=\"greeting\",step=\"hello\"}",
            2.0,
        ),
        (
            "warden_workflow_step_seconds_count{workflow=\"greeting\",step=\"bye\"}",
            1.0,
        ),
        (
            "warden_workflow_step_seconds_count{workflow=\"greeting\",step=\"hello.compensate\"}",
            1.0,
        ),
        (
            "warden_workflow_step_seconds_count{workflow=\"undo\",step=\"hello.compensate\"}",
            1.0,
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = d.client(AUDIT).get("/metrics").expect("metrics").text();
        let missing: Vec<&str> = expected
            .iter()
            .filter(|(s, v)| sample(&m, s) != Some(*v))
            .map(|(s, _)| *s)
            .collect();
        if missing.is_empty() {
            break m;
        }
        assert!(Instant::now() < deadline, "{missing:?} in\n{m}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Only completed runs count cost; fuel metering is on for the echo guest.
    let fuel = sample(&m, "warden_workflow_run_fuel_total{workflow=\"greeting\"}");
    assert!(fuel.is_some_and(|f| f > 0.0), "{m}");
    assert_eq!(
        sample(&m, "warden_workflow_run_fuel_total{workflow=\"undo\"}"),
        None
    );
    assert!(
        sample(&m, "warden_workflow_oldest_needs_attention_age_seconds").is_some_and(|a| a >= 0.0),
        "{m}"
    );
    // Failed attempts of the step after the pivot are timed too.
    assert!(
        sample(
            &m,
            "warden_workflow_step_seconds_count{workflow=\"charge\",step=\"record\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    // Labels come from the plans only: no run id, no input.
    for id in [&done, &held, &undone, &stuck] {
        assert!(!m.contains(id.as_str()), "run id {id} in metrics");
    }
    assert!(
        !m.contains("ann") && !m.contains("boss"),
        "input in metrics"
    );
}
