//! Approval steps of workflow runs on the daemon's approvals machinery
//! (issue 20, docs/workflows.md "Approval steps"): a run waiting for
//! humans holds a real approval (`/v1/approvals`, the CLI, roles,
//! refusals); approve lets the run continue, deny compensates before the
//! pivot and stops in `needs_attention` after it, expiry is a denial, and
//! a waiting run survives a SIGKILL.

use crate::daemon::{APPROVE, AUDIT, Daemon, SUBMIT, cap, deploy};
use crate::support::*;
use crate::workflows_daemon::add_workflow;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden_host::server::auth::token_hash;

const CAROL: &str = "tok-carol";
const DAVE: &str = "tok-dave";

/// Reserve, then (by amount) a dual finance approval or a 1s single one,
/// then pay (the pivot), then above 5000 a single approval, then tell.
const PLAN: &str = r#"
[input]
type = "object"
required = ["who", "amount"]
[input.properties]
who = { type = "string" }
amount = { type = "integer" }

[[step]]
id = "reserve"
call = "echo.echo"
input = { message = "reserve ${input.who}" }
compensate = { call = "echo.echo", input = { message = "release ${input.who}" } }

[[step]]
id = "gate"
needs = ["reserve"]
when = "input.amount > 100 and input.amount != 7"
approval = { mode = "dual", approvers = ["group:finance"], expires = "1h" }

[[step]]
id = "quick"
needs = ["reserve"]
when = "input.amount == 7"
approval = { mode = "single", expires = "1s" }

[[step]]
id = "pay"
needs = ["reserve", "gate", "quick"]
call = "echo.echo"
input = { message = "pay ${input.who} after ${steps.gate.output}" }
pivot = true

[[step]]
id = "after"
needs = ["pay"]
when = "input.amount > 5000"
approval = { mode = "single" }

[[step]]
id = "tell"
needs = ["after"]
call = "echo.echo"
input = { message = "told ${input.who}" }
"#;

fn principals() -> String {
    [("carol", CAROL), ("dave", DAVE)]
        .iter()
        .map(|(n, t)| {
            format!(
                "[[principal]]\nname = \"{n}\"\ntoken_sha256 = \"{}\"\nroles = [\"approve\"]\ngroups = [\"finance\"]\n\n",
                token_hash(t)
            )
        })
        .collect()
}

fn order_deploy(name: &str) -> PathBuf {
    let dir = deploy(
        &format!("wfa-{name}"),
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        &principals(),
    );
    add_workflow(&dir, "order", PLAN);
    dir
}

fn start(d: &Daemon, who: &str, amount: u64) -> String {
    let r = d.submit(json!({"kind": "order", "input": {"who": who, "amount": amount}}));
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["run"]["run_id"]
        .as_str()
        .expect("run id")
        .to_string()
}

fn run_of(d: &Daemon, id: &str) -> Value {
    let r = d.client(AUDIT).get(&format!("/v1/runs/{id}")).expect("run");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn wait_state(d: &Daemon, id: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = run_of(d, id);
        if states.contains(&run["state"].as_str().unwrap_or_default()) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run never reached {states:?}: {run}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the approval `id` is held (pending) and returns it.
fn wait_held(d: &Daemon, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = d
            .client(APPROVE)
            .get(&format!("/v1/approvals/{id}"))
            .expect("approval");
        if r.status == 200 {
            return r.json();
        }
        assert!(
            Instant::now() < deadline,
            "approval {id} never held: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn step(run: &Value, id: &str) -> Value {
    run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no step {id} in {run}"))
}

fn decide(d: &Daemon, token: &str, id: &str, verb: &str, reason: &str) -> (u16, Value) {
    let r = d
        .client(token)
        .post_json(
            &format!("/v1/approvals/{id}/{verb}"),
            &json!({"reason": reason}),
        )
        .expect("decide");
    (r.status, r.json())
}

#[test]
fn an_approval_step_holds_a_real_approval_and_dual_approval_lets_the_run_continue() {
    let d = Daemon::start(&order_deploy("dual"));
    let id = start(&d, "ann", 500);
    wait_state(&d, &id, &["waiting"]);
    let gate = format!("{id}.gate");
    let held = wait_held(&d, &gate);
    assert_eq!(held["state"], "pending");
    assert_eq!(held["run"]["run_id"], id.as_str());
    assert_eq!(held["run"]["step"], "gate");
    assert_eq!(held["run"]["workflow"], "order");
    assert_eq!(held["requester"], "alice");
    assert_eq!(held["approvals_needed"], 2);
    assert_eq!(held["rule"]["approvers"], json!(["group:finance"]));
    assert_eq!(
        held["input"]["steps"]["reserve"],
        json!("reserve ann"),
        "approvers see what the run did so far: {held}"
    );
    // The listing shows it with its run and step; so does the CLI.
    let list = d
        .client(AUDIT)
        .get("/v1/approvals?state=pending")
        .expect("list")
        .json();
    assert!(
        list.to_string().contains(&gate),
        "the approval step is listed: {list}"
    );
    let (code, out, err) = d.cli(&["approvals", "list"], APPROVE);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("run {id} step gate (workflow order)")),
        "{out}"
    );
    // The same refusals as for held requests.
    let (status, body) = decide(&d, APPROVE, &gate, "approve", "looks fine");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_an_approver");
    let (status, body) = decide(&d, CAROL, &gate, "approve", "stock checked");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approvals_given"], 1);
    let (status, body) = decide(&d, CAROL, &gate, "approve", "again");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_decided");
    assert_eq!(run_of(&d, &id)["state"], "waiting", "one of two approvals");
    let (status, body) = decide(&d, DAVE, &gate, "approve", "customer known");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "executed");
    let run = wait_state(&d, &id, &["completed"]);
    assert_eq!(step(&run, "gate")["state"], "done");
    assert_eq!(
        step(&run, "gate")["output"],
        json!({"approved_by": ["carol", "dave"]}),
        "the journal records who decided"
    );
    assert_eq!(
        step(&run, "pay")["output"],
        json!("pay ann after {\"approved_by\":[\"carol\",\"dave\"]}")
    );
    assert_eq!(step(&run, "after")["state"], "skipped");
    assert_eq!(step(&run, "tell")["state"], "done");
    // The audit trail: the hold, both decisions and the end, under the
    // approval's request id.
    let events: Vec<(String, String, String)> = d
        .audit()
        .iter()
        .filter(|e| e["entry"]["request_id"] == gate.as_str())
        .map(|e| {
            let s = |k: &str| e["entry"][k].as_str().unwrap_or_default().to_string();
            (s("event"), s("outcome"), s("principal"))
        })
        .collect();
    let ev = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        events,
        vec![
            ev("workflow", "pending_approval", "alice"),
            ev("approval", "denied", "approver"),
            ev("approval", "ok", "carol"),
            ev("approval", "denied", "carol"),
            ev("approval", "ok", "dave"),
            ev("workflow", "ok", "alice"),
        ]
    );
}

#[test]
fn a_denied_approval_step_before_the_pivot_compensates_the_run() {
    let d = Daemon::start(&order_deploy("deny"));
    let id = start(&d, "bo", 500);
    let gate = format!("{id}.gate");
    wait_held(&d, &gate);
    let (status, body) = decide(&d, CAROL, &gate, "deny", "address is a PO box");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "denied");
    let run = wait_state(&d, &id, &["compensated"]);
    let g = step(&run, "gate");
    assert_eq!(g["state"], "failed");
    assert_eq!(g["outcome"], "approval_denied");
    assert!(
        g["output"]
            .as_str()
            .is_some_and(|o| o.contains("denied by `carol`: address is a PO box")),
        "the journal records who denied and why: {g}"
    );
    assert_eq!(step(&run, "reserve")["state"], "compensated");
    assert_eq!(step(&run, "pay")["state"], "pending", "the pivot never ran");
    assert!(
        d.audit()
            .iter()
            .any(|e| e["entry"]["request_id"] == format!("{id}.reserve.compensate").as_str()),
        "the compensation is audited"
    );
    // Deciding again on the ended approval is refused.
    let (status, body) = decide(&d, DAVE, &gate, "approve", "too late");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_pending");
}

#[test]
fn a_denied_approval_step_after_the_pivot_needs_attention_and_nothing_is_compensated() {
    let d = Daemon::start(&order_deploy("after"));
    let id = start(&d, "cy", 9000);
    let gate = format!("{id}.gate");
    wait_held(&d, &gate);
    assert_eq!(decide(&d, CAROL, &gate, "approve", "ok").0, 200);
    assert_eq!(decide(&d, DAVE, &gate, "approve", "ok").0, 200);
    let after = format!("{id}.after");
    let held = wait_held(&d, &after);
    assert_eq!(held["approvals_needed"], 1);
    assert_eq!(run_of(&d, &id)["state"], "waiting");
    // Anyone with the approve role may decide (the step names nobody) —
    // but never the requester.
    let (status, body) = decide(&d, SUBMIT, &after, "approve", "mine");
    assert_eq!(status, 403, "{body}");
    let (status, body) = decide(&d, APPROVE, &after, "deny", "chargeback risk");
    assert_eq!(status, 200, "{body}");
    let run = wait_state(&d, &id, &["needs_attention"]);
    assert_eq!(step(&run, "pay")["state"], "done");
    assert_eq!(step(&run, "reserve")["state"], "done", "never compensated");
    assert_eq!(step(&run, "after")["outcome"], "approval_denied");
    assert_eq!(step(&run, "tell")["state"], "pending");
}

#[test]
fn an_expired_approval_step_is_a_denial_and_a_cancelled_run_ends_its_approval() {
    let d = Daemon::start(&order_deploy("expire"));
    let id = start(&d, "di", 7);
    let quick = format!("{id}.quick");
    wait_held(&d, &quick);
    let run = wait_state(&d, &id, &["compensated"]);
    let q = step(&run, "quick");
    assert_eq!(q["state"], "failed");
    assert_eq!(q["outcome"], "approval_expired");
    assert_eq!(step(&run, "reserve")["state"], "compensated");
    let held = d
        .client(APPROVE)
        .get(&format!("/v1/approvals/{quick}"))
        .expect("approval")
        .json();
    assert_eq!(held["state"], "expired");
    // A run cancelled while it waits ends its approval (denied).
    let id = start(&d, "ed", 500);
    let gate = format!("{id}.gate");
    wait_held(&d, &gate);
    let r = d
        .client(APPROVE)
        .post_json(
            &format!("/v1/runs/{id}/cancel"),
            &json!({"reason": "customer left"}),
        )
        .expect("cancel");
    assert_eq!(r.status, 200, "{}", r.text());
    let held = d
        .client(APPROVE)
        .get(&format!("/v1/approvals/{gate}"))
        .expect("approval")
        .json();
    assert_eq!(held["state"], "denied", "{held}");
    assert!(
        held["end_reason"]
            .as_str()
            .is_some_and(|r| r.contains("cancelled")),
        "{held}"
    );
    let (status, body) = decide(&d, CAROL, &gate, "approve", "late");
    assert_eq!(status, 409, "{body}");
}

#[test]
fn a_run_waiting_for_approvers_survives_a_sigkill_and_continues_after_approval() {
    let dir = order_deploy("restart");
    let d = Daemon::start(&dir);
    let id = start(&d, "flo", 500);
    let gate = format!("{id}.gate");
    wait_held(&d, &gate);
    assert_eq!(decide(&d, CAROL, &gate, "approve", "first").0, 200);
    d.signal("-KILL");
    drop(d);
    let d = Daemon::start(&dir);
    assert_eq!(run_of(&d, &id)["state"], "waiting", "still waiting");
    let held = wait_held(&d, &gate);
    assert_eq!(held["state"], "pending");
    assert_eq!(held["approvals_given"], 1, "the decision survived");
    let (status, body) = decide(&d, DAVE, &gate, "approve", "second, after the restart");
    assert_eq!(status, 200, "{body}");
    let run = wait_state(&d, &id, &["completed"]);
    assert_eq!(
        step(&run, "gate")["output"],
        json!({"approved_by": ["carol", "dave"]})
    );
    assert_eq!(step(&run, "reserve")["attempts"], 1, "never re-run");
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
}

#[test]
fn the_daemon_refuses_an_approval_step_its_principals_cannot_decide() {
    // Only carol may approve; the plan names nobody and needs two people.
    let dir = deploy(
        "wfa-unsatisfiable",
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        &format!(
            "[[principal]]\nname = \"carol\"\ntoken_sha256 = \"{}\"\nroles = [\"approve\"]\n\n",
            token_hash(CAROL)
        ),
    );
    add_workflow(
        &dir,
        "order",
        r#"
[input]
type = "object"

[[step]]
id = "gate"
approval = { mode = "dual", approvers = ["nobody", "carol"] }

[[step]]
id = "pay"
needs = ["gate"]
call = "echo.echo"
input = { message = "pay" }
compensate = "none"
"#,
    );
    let (code, _out, err) = warden(&[
        "serve",
        "--config",
        dir.join("warden.toml").to_str().expect("utf8"),
    ]);
    assert_eq!(code, 2, "{err}");
    for needle in [
        "order.toml: approval step `gate`: approver `nobody` is not a principal with the `approve` role",
        "approval step `gate`: mode `dual` needs 2 distinct approvers but only 1",
    ] {
        assert!(err.contains(needle), "{needle}:\n{err}");
    }
}
