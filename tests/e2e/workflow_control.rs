//! Runs in the daemon, continued (issue 20): cancelling a run while one of
//! its steps executes (the step finishes, nothing later starts, the run
//! compensates; driven once), a run past its pivot not cancelled, the
//! run's tenant passed to its steps, the demo's order plan checking
//! clean against the real example components, and a step holding its
//! capability's concurrency slot as a request does.

use crate::daemon::{APPROVE, AUDIT, Cap, Daemon, cap, deploy};
use crate::support::*;
use crate::workflows_daemon::{add_workflow, run_of, slow_fetch_deployment, wait_state};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_host::server::auth::token_hash;

fn step(run: &Value, id: &str) -> Value {
    run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no step {id} in {run}"))
}

#[test]
fn a_run_cancelled_while_a_step_executes_lets_the_step_finish_then_compensates_once() {
    let (_rt, double, dir) = slow_fetch_deployment("wf-cancel-flight", Duration::from_secs(4));
    add_workflow(
        &dir,
        "slow",
        &format!(
            r#"
[input]
type = "object"
required = ["who"]
[input.properties]
who = {{ type = "string" }}

[[step]]
id = "first"
call = "echo.echo"
input = {{ message = "first ${{input.who}}" }}
compensate = {{ call = "echo.echo", input = {{ message = "undo first ${{input.who}}" }} }}

[[step]]
id = "fetch"
needs = ["first"]
call = "http-fetch.fetch-many"
input = {{ url = "{}/slow", times = 1 }}
compensate = {{ call = "echo.echo", input = {{ message = "undo fetch" }} }}

[[step]]
id = "last"
needs = ["fetch"]
call = "echo.echo"
input = {{ message = "last" }}
compensate = "none"
"#,
            double.origin()
        ),
    );
    let d = Daemon::start(&dir);
    let r = d.submit(json!({"kind": "slow", "input": {"who": "kim"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while double.hits() == 0 {
        assert!(Instant::now() < deadline, "the fetch step never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The fetch step is in flight: the cancel is accepted, not applied yet.
    let r = d
        .client(APPROVE)
        .post_json(
            &format!("/v1/runs/{id}/cancel"),
            &json!({"reason": "order withdrawn"}),
        )
        .expect("cancel");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["cancel"], "requested");
    assert_eq!(r.json()["state"], "running");
    // A second cancel meanwhile is accepted too; it is applied once.
    let again = d
        .client(APPROVE)
        .post_json(
            &format!("/v1/runs/{id}/cancel"),
            &json!({"reason": "twice"}),
        )
        .expect("cancel");
    assert_eq!(again.status, 202, "{}", again.text());
    let run = wait_state(&d, &id, &["cancelled", "needs_attention", "completed"]);
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(step(&run, "first")["state"], "compensated");
    assert_eq!(
        step(&run, "fetch")["state"],
        "compensated",
        "the step in flight finished, then was compensated: {run}"
    );
    assert_eq!(step(&run, "fetch")["attempts"], 1);
    assert_eq!(step(&run, "last")["state"], "pending", "nothing later ran");
    assert_eq!(double.hits(), 1, "the step in flight ran once");
    // The audit trail: one cancel, each compensation once, in reverse
    // completion order, then the end; the last step never ran.
    let audit = d.audit();
    let of = |rid: String| {
        audit
            .iter()
            .filter(|e| e["entry"]["request_id"] == rid.as_str())
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect::<Vec<u64>>()
    };
    let undo_fetch = of(format!("{id}.fetch.compensate"));
    let undo_first = of(format!("{id}.first.compensate"));
    assert_eq!(undo_fetch.len(), 1, "compensated once");
    assert_eq!(undo_first.len(), 1, "compensated once");
    assert!(undo_fetch[0] < undo_first[0], "reverse completion order");
    assert!(
        of(format!("{id}.last")).is_empty(),
        "the last step never ran"
    );
    let cancels: Vec<&Value> = audit
        .iter()
        .filter(|e| {
            let detail = e["entry"]["detail"].as_str().unwrap_or_default();
            detail.contains(&id) && detail.contains("\"event\":\"cancel\"")
        })
        .collect();
    assert_eq!(cancels.len(), 1, "one cancel applied: {cancels:?}");
    assert!(cancels[0].to_string().contains("order withdrawn"));
    // Once final, a cancel is refused.
    let r = d
        .client(APPROVE)
        .post_json(&format!("/v1/runs/{id}/cancel"), &json!({}))
        .expect("cancel");
    assert_eq!(r.status, 409, "{}", r.text());
}

#[test]
fn a_run_past_its_pivot_is_not_cancelled() {
    let dir = deploy(
        "wf-cancel-pivot",
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_workflow(
        &dir,
        "paid",
        r#"
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

[[step]]
id = "gate"
needs = ["pay"]
approval = { mode = "single" }
"#,
    );
    let d = Daemon::start(&dir);
    let r = d.submit(json!({"kind": "paid", "input": {"who": "lu"}}));
    let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    wait_state(&d, &id, &["waiting"]);
    let r = d
        .client(APPROVE)
        .post_json(&format!("/v1/runs/{id}/cancel"), &json!({"reason": "oops"}))
        .expect("cancel");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "past_pivot");
    assert_eq!(run_of(&d, &id, AUDIT)["state"], "waiting");
}

const ACME: &str = "tok-acme";
const GLOBEX: &str = "tok-globex";

fn notes_cap() -> Cap {
    let mut c = cap("notes", "kv-user");
    c.imports = Box::leak(
        format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}\n\"warden:host/kv\" = {{}}")
            .into_boxed_str(),
    );
    c
}

#[test]
fn every_step_of_a_run_runs_for_the_tenant_of_the_request_that_started_it() {
    let principals: String = [("acme-app", ACME, "[\"acme\"]"), ("globex-app", GLOBEX, "[\"globex\"]")]
        .iter()
        .map(|(n, t, tenants)| {
            format!(
                "[[principal]]\nname = \"{n}\"\ntoken_sha256 = \"{}\"\nroles = [\"submit\"]\ntenants = {tenants}\n\n",
                token_hash(t)
            )
        })
        .collect();
    let dir = deploy(
        "wf-tenant",
        &[notes_cap()],
        &[("fetch", "note.fetch", "notes", "fetch")],
        &principals,
    );
    add_workflow(
        &dir,
        "stash",
        r#"
[input]
type = "object"
required = ["value"]
[input.properties]
value = { type = "string" }

[[step]]
id = "put"
call = "notes.put"
input = { key = "note/1", value = "${input.value}" }
compensate = { call = "notes.remove", input = { key = "note/1" } }

[[step]]
id = "read"
needs = ["put"]
call = "notes.fetch"
input = { key = "note/1" }
compensate = "none"
"#,
    );
    let d = Daemon::start(&dir);
    let r = d
        .client(ACME)
        .post_json(
            "/v1/requests",
            &json!({"kind": "stash", "tenant": "acme", "input": {"value": "acme secret"}}),
        )
        .expect("start");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    let run = wait_state(&d, &id, &["completed", "compensated", "needs_attention"]);
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["tenant"], "acme");
    assert_eq!(
        step(&run, "read")["output"],
        json!("acme secret"),
        "the steps share the tenant's namespace"
    );
    // The write is in acme's namespace, not globex's.
    let fetch = |token: &str, tenant: &str| {
        let r = d
            .client(token)
            .post_json(
                "/v1/requests",
                &json!({"kind": "note.fetch", "tenant": tenant, "input": {"key": "note/1"}}),
            )
            .expect("fetch");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["output"].clone()
    };
    assert_eq!(fetch(ACME, "acme"), json!({"ok": "acme secret"}));
    assert_eq!(fetch(GLOBEX, "globex"), json!({"ok": null}));
}

#[test]
fn the_demo_order_workflow_checks_clean_against_the_real_components_and_is_routed() {
    let plan = repo().join("examples/workflows/order.toml");
    let policies = repo().join("policies").display().to_string();
    let components = guest("echo")
        .parent()
        .expect("guests dir")
        .display()
        .to_string();
    let (code, out, err) = warden(&[
        "workflow",
        "check",
        plan.to_str().expect("utf8"),
        "--policies",
        &policies,
        "--components",
        &components,
        "--allow-unsigned",
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("workflow `order`, 6 step(s), calls and types checked"),
        "{out}"
    );
    // A plan whose charge is not compensable before the pivot is refused:
    // the checker sees the real `inventory` and `payments` exports.
    let text = std::fs::read_to_string(&plan)
        .expect("plan")
        .replace("\"inventory.release\"", "\"inventory.unreserve\"");
    let dir = crate::support::scratch("order-plan-bad");
    let bad = dir.join("order.toml");
    std::fs::write(&bad, text).expect("write");
    let (code, _, err) = warden(&[
        "workflow",
        "check",
        bad.to_str().expect("utf8"),
        "--policies",
        &policies,
        "--components",
        &components,
        "--allow-unsigned",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`inventory` exports no function `unreserve`"),
        "{err}"
    );
    let routes = repo().join("examples/routes.toml");
    let (code, out, err) = warden(&[
        "routes",
        "explain",
        "--routes",
        routes.to_str().expect("utf8"),
        "--kind",
        "order",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("orders"), "{out}");
}

#[test]
fn a_step_holds_its_capabilitys_slot_so_a_request_beside_it_waits_for_its_turn() {
    // One slot for `spin`: a run's step in it makes a request of the same
    // capability queue, and refuse as overloaded after queue_timeout — as
    // it would beside another request.
    let dir = one_spin_slot("wf-slots");
    let d = Daemon::start(&dir);
    let r = d.submit(json!({"kind": "busy", "input": {"who": "kim"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while step(&run_of(&d, &id, AUDIT), "spin")["state"] != "running" {
        assert!(Instant::now() < deadline, "the spin step never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // `running` is journaled just before the step waits for its slot; give
    // it that moment (the step then spins for 1.5 s).
    std::thread::sleep(Duration::from_millis(300));
    let beside = d.submit(json!({"kind": "spin", "input": {"n": 1}}));
    assert_eq!(beside.status, 503, "{}", beside.text());
    assert_eq!(beside.json()["error_code"], "overloaded");
    let run = wait_state(&d, &id, &["completed", "compensated", "needs_attention"]);
    assert!(
        step(&run, "spin")["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("budget_exhausted")),
        "the step ran to its own budget: {run}"
    );
    let metrics = d.client(AUDIT).get("/metrics").expect("metrics").text();
    assert!(
        metrics.contains("warden_queue_timeouts_total{capability=\"spin\"} 1"),
        "{metrics}"
    );
}

/// A deployment where `spin` (1.5 s of wall time) has one slot and a
/// 200 ms queue, and the workflow `busy` is one `spin` step.
fn one_spin_slot(name: &str) -> std::path::PathBuf {
    let mut spin = cap("spin", "spin-loop");
    spin.extra = "[budget]\nfuel = \"off\"\nwall_time = \"1500ms\"";
    let dir = deploy(
        name,
        &[spin],
        &[("spin", "spin", "spin", "spin")],
        "[limits]\nqueue_timeout = \"200ms\"\n\n[capability.spin]\nconcurrency = 1",
    );
    add_workflow(
        &dir,
        "busy",
        r#"
[input]
type = "object"
required = ["who"]
[input.properties]
who = { type = "string" }

[[step]]
id = "spin"
call = "spin.spin"
input = { n = 1 }
compensate = "none"
"#,
    );
    dir
}

#[test]
fn a_step_that_finds_no_slot_in_time_is_refused_as_transient_and_audited() {
    let dir = one_spin_slot("wf-no-slot");
    let d = Daemon::start(&dir);
    std::thread::scope(|s| {
        // A request takes the one slot for 1.5 s.
        let first = s.spawn(|| d.submit(json!({"kind": "spin", "input": {"n": 1}})));
        std::thread::sleep(Duration::from_millis(400));
        let r = d.submit(json!({"kind": "busy", "input": {"who": "kim"}}));
        assert_eq!(r.status, 202, "{}", r.text());
        let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
        let run = wait_state(&d, &id, &["completed", "compensated", "needs_attention"]);
        assert_eq!(step(&run, "spin")["outcome"], "transient", "{run}");
        let refused: Vec<Value> = d
            .audit()
            .into_iter()
            .filter(|e| e["entry"]["request_id"] == format!("{id}.spin").as_str())
            .collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["entry"]["outcome"], "transient");
        let first = first.join().expect("thread");
        assert_eq!(first.json()["outcome"], "budget_exhausted:time");
    });
    let metrics = d.client(AUDIT).get("/metrics").expect("metrics").text();
    assert!(
        metrics.contains("warden_queue_timeouts_total{capability=\"spin\"} 1"),
        "{metrics}"
    );
}
