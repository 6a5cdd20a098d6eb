//! SIGKILL at every step boundary (issue 20): a run of three effect steps
//! (refunds through the payments double, the last one the pivot) and a
//! final echo, against a real daemon. For each refund step k, the double
//! stalls step k's answer (it has applied the refund, as a service that
//! commits before its answer is lost), the test SIGKILLs the daemon while
//! step k is in flight, restarts it, and checks that the run completes,
//! every refund was applied exactly once (the double counts effects by
//! idempotency key), no completed step ran again (journal attempts, audit
//! entries and arrivals at the double) and the chain verifies.
//!
//! The echo step cannot be held in flight from outside, so it is not one
//! of the kill points; a kill between steps is covered by the existing
//! `a_run_in_flight_at_a_sigkill_resumes_at_restart_without_re_running_done_steps`.

use crate::daemon::{AUDIT, Daemon, cap, deploy};
use crate::doubles::{Ledger, payments_with};
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// The refund policy's grants, with room for a stalled answer (the test
/// kills the daemon long before either limit).
const REFUND_IMPORTS: &str = r#"
"warden:host/invocation" = {}
"wasi:http/types" = {}
"wasi:http/outgoing-handler" = { allow = ["http://127.0.0.1:18081"], max_requests = 1, timeout = "30s" }
"wasi:clocks/monotonic-clock" = {}
"wasi:io/poll" = {}
"wasi:io/error" = {}
"wasi:io/streams" = {}
"wasi:cli/environment" = {}
"wasi:cli/exit" = {}
"wasi:cli/stdin" = {}
"wasi:cli/stdout" = {}
"wasi:cli/stderr" = {}
"wasi:cli/terminal-input" = {}
"wasi:cli/terminal-output" = {}
"wasi:cli/terminal-stdin" = {}
"wasi:cli/terminal-stdout" = {}
"wasi:cli/terminal-stderr" = {}
"#;

const PLAN: &str = r#"
[input]
type = "object"
required = ["order"]
[input.properties]
order = { type = "string" }

[[step]]
id = "deposit"
call = "refund.refund"
input = { order = "${input.order}-deposit", amount = 500, currency = "EUR" }
compensate = { call = "echo.echo", input = { message = "undo ${steps.deposit.output.refund-id}" } }

[[step]]
id = "fee"
needs = ["deposit"]
call = "refund.refund"
input = { order = "${input.order}-fee", amount = 300, currency = "EUR" }
compensate = { call = "echo.echo", input = { message = "undo ${steps.fee.output.refund-id}" } }

[[step]]
id = "pay"
needs = ["fee"]
call = "refund.refund"
input = { order = "${input.order}-pay", amount = 900, currency = "EUR" }
pivot = true

[[step]]
id = "confirm"
needs = ["pay"]
call = "echo.echo"
input = { message = "paid ${steps.pay.output.refund-id}" }
"#;

/// The refund steps, in plan order: the kill points.
const EFFECT_STEPS: [&str; 3] = ["deposit", "fee", "pay"];

fn run_of(d: &Daemon, id: &str) -> Value {
    let r = d.client(AUDIT).get(&format!("/v1/runs/{id}")).expect("run");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn wait_completed(d: &Daemon, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = run_of(d, id);
        match run["state"].as_str() {
            Some("completed") => return run,
            Some("running") => {}
            _ => panic!("the run stopped without completing: {run}"),
        }
        assert!(Instant::now() < deadline, "the run never completed: {run}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn crash_deploy() -> std::path::PathBuf {
    let mut refund = cap("refund", "refund");
    refund.imports = REFUND_IMPORTS;
    refund.extra = "[budget]\nwall_time = \"30s\"\n";
    let dir = deploy(
        "wf-kill-every-step",
        &[refund, cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_plan(&dir);
    dir
}

fn add_plan(dir: &Path) {
    std::fs::create_dir_all(dir.join("workflows")).expect("mkdir");
    std::fs::write(dir.join("workflows/payout.toml"), PLAN).expect("plan");
    let mut routes = std::fs::read_to_string(dir.join("routes.toml")).expect("routes");
    routes.push_str(
        "[[route]]\nid = \"wf-payout\"\nmatch = { kind = \"payout\" }\nworkflow = \"payout\"\n",
    );
    std::fs::write(dir.join("routes.toml"), routes).expect("routes");
}

/// Invocation entries (not `workflow` events) of request id `key`.
fn entries_of<'a>(audit: &'a [Value], key: &str) -> Vec<&'a Value> {
    let needle = format!("\"request_id\":\"{key}\"");
    audit
        .iter()
        .filter(|e| e.to_string().contains(&needle))
        .collect()
}

#[test]
fn a_sigkill_while_each_effect_step_is_in_flight_resumes_with_every_effect_applied_once() {
    let _port = FX_PORT.blocking_lock();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ledger = Ledger::default();
    let _double = rt
        .block_on(payments_with(18081, ledger.clone()))
        .expect("port 18081 (the refund example's payments service) is free");
    let dir = crash_deploy();
    // Built (or found) before the clock starts: its build is not the test's.
    let _ = warden_bin();
    let started = Instant::now();
    let mut d = Daemon::start(&dir);
    eprintln!("first start took {:?}", started.elapsed());
    for (k, killed) in EFFECT_STEPS.iter().enumerate() {
        let order = format!("K{k}");
        ledger.stall(&format!("{order}-{killed}"), Duration::from_secs(60));
        let r = d.submit(json!({"kind": "payout", "input": {"order": order}}));
        assert_eq!(r.status, 202, "{}", r.text());
        let id = r.json()["run"]["run_id"]
            .as_str()
            .expect("run id")
            .to_string();
        // Step k is in flight once its request reached the double.
        let deadline = Instant::now() + Duration::from_secs(60);
        while ledger.arrivals_for(&format!("{order}-{killed}")) == 0 {
            assert!(
                Instant::now() < deadline,
                "step `{killed}` never reached the double"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let in_flight = started.elapsed();
        d.signal("-KILL");
        drop(d);
        d = Daemon::start(&dir);
        let restarted = started.elapsed();
        let run = wait_completed(&d, &id);
        eprintln!(
            "kill at `{killed}`: in flight at {in_flight:?}, restarted at {restarted:?}, completed at {:?}",
            started.elapsed()
        );
        let steps = run["steps"].as_array().expect("steps");
        let audit = d.audit();
        for (i, step) in EFFECT_STEPS.iter().enumerate() {
            let key = format!("{id}.{step}");
            let record = steps
                .iter()
                .find(|s| s["step"] == *step)
                .expect("journaled");
            let (attempts, arrivals) = if i == k { (2, 2) } else { (1, 1) };
            assert_eq!(
                ledger.effects_for(&key),
                1,
                "kill at `{killed}`: `{step}` refunded exactly once"
            );
            assert_eq!(
                ledger.keys_for(&format!("{order}-{step}")),
                vec![Some(key.clone()); arrivals],
                "kill at `{killed}`: `{step}` reached the service {arrivals} time(s), with its key"
            );
            assert_eq!(
                record["attempts"], attempts,
                "kill at `{killed}`: `{step}`: {record}"
            );
            let entries = entries_of(&audit, &key);
            assert_eq!(
                entries.len(),
                1,
                "kill at `{killed}`: `{step}` has one invocation entry (the killed attempt has none): {entries:?}"
            );
            assert!(
                entries[0]
                    .to_string()
                    .contains(&format!("\"attempt\":{attempts}")),
                "kill at `{killed}`: {}",
                entries[0]
            );
        }
        let confirm = steps
            .iter()
            .find(|s| s["step"] == "confirm")
            .expect("confirm");
        assert_eq!(
            confirm["output"],
            json!(format!("paid rf-{order}-pay-900")),
            "{confirm}"
        );
    }
    assert_eq!(
        ledger.effects(),
        3 * EFFECT_STEPS.len(),
        "one effect per step per run"
    );
    let (code, err) = d.terminate();
    assert_eq!(code, 0, "{err}");
    let data = dir.join("data");
    let (code, out, err) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        data.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "the chain verifies:\n{out}\n{err}");
    // Under a second on an idle machine (daemon starts included); the
    // bound only catches a hang.
    eprintln!("three kills and restarts took {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "three kills and restarts took {:?}",
        started.elapsed()
    );
}
