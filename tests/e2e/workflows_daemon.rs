//! Workflows in the daemon: a request kind routed to a workflow starts a
//! run (`202` + run id), the runs API shows, cancels and resumes runs, and
//! a run in flight at a SIGKILL resumes at the next start (issue 20).

use crate::daemon::{APPROVE, AUDIT, Daemon, SUBMIT, cap, deploy};
use crate::doubles::{Response, Server};
use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes `plan` as `workflows/<name>.toml` and routes kind `name` to it.
pub(crate) fn add_workflow(dir: &Path, name: &str, plan: &str) {
    std::fs::create_dir_all(dir.join("workflows")).expect("mkdir");
    std::fs::write(dir.join("workflows").join(format!("{name}.toml")), plan).expect("plan");
    let mut routes = std::fs::read_to_string(dir.join("routes.toml")).expect("routes");
    routes.push_str(&format!(
        "[[route]]\nid = \"wf-{name}\"\nmatch = {{ kind = \"{name}\" }}\nworkflow = \"{name}\"\n\n"
    ));
    std::fs::write(dir.join("routes.toml"), routes).expect("routes");
}

/// A deployment (routes: `greet` → echo) with `echo` and `http-fetch`,
/// the latter allowed to reach only a loopback double that answers every
/// request after `delay`: a step that stays in flight that long. The
/// runtime serves the double; keep both alive for the test.
pub(crate) fn slow_fetch_deployment(
    name: &str,
    delay: Duration,
) -> (tokio::runtime::Runtime, Server, PathBuf) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let double = rt
        .block_on(Server::start(0, move |_| Response {
            delay,
            ..Response::text(200, "slow")
        }))
        .expect("double");
    let imports: &'static str = Box::leak(
        format!(
            "{STD_IMPORTS}\n\"wasi:clocks/monotonic-clock\" = {{}}\n\"wasi:http/types\" = {{}}\n\"wasi:http/outgoing-handler\" = {{ allow = [\"{}\"] }}",
            double.origin()
        )
        .into_boxed_str(),
    );
    let mut fetch = cap("http-fetch", "http-fetch");
    fetch.imports = imports;
    let dir = deploy(
        name,
        &[cap("echo", "echo"), fetch],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    (rt, double, dir)
}

pub(crate) const TWO_ECHOES: &str = r#"
[input]
type = "object"
required = ["who"]
[input.properties]
who = { type = "string" }

[[step]]
id = "hello"
call = "echo.echo"
input = { message = "hello ${input.who}" }
compensate = { call = "echo.echo", input = { message = "undo hello ${input.who}" } }

[[step]]
id = "gate"
needs = ["hello"]
when = "input.who == \"boss\""
approval = { mode = "single", expires = "1h" }

[[step]]
id = "bye"
needs = ["hello", "gate"]
call = "echo.echo"
input = { message = "${steps.hello.output} and bye" }
compensate = "none"
"#;

pub(crate) fn run_of(d: &Daemon, id: &str, token: &str) -> Value {
    let r = d.client(token).get(&format!("/v1/runs/{id}")).expect("run");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

pub(crate) fn wait_state(d: &Daemon, id: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = run_of(d, id, AUDIT);
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

fn echo_workflow_deploy(name: &str) -> std::path::PathBuf {
    let dir = deploy(
        name,
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_workflow(&dir, "greeting", TWO_ECHOES);
    dir
}

#[test]
fn a_kind_routed_to_a_workflow_starts_a_run_that_completes_and_is_readable_by_its_owner() {
    let d = Daemon::start(&echo_workflow_deploy("wf-run"));
    let r = d.submit(json!({"kind": "greeting", "input": {"who": "ann"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    let id = body["run"]["run_id"].as_str().expect("run id").to_string();
    assert_eq!(body["run"]["workflow"], "greeting");
    assert_eq!(body["route"], "wf-greeting");
    let run = wait_state(&d, &id, &["completed"]);
    let steps = run["steps"].as_array().expect("steps");
    let state = |s: &str| {
        steps
            .iter()
            .find(|x| x["step"] == s)
            .map(|x| x["state"].clone())
    };
    assert_eq!(state("hello"), Some(json!("done")));
    assert_eq!(state("gate"), Some(json!("skipped")));
    assert_eq!(state("bye"), Some(json!("done")));
    let bye = steps.iter().find(|x| x["step"] == "bye").expect("bye");
    assert_eq!(bye["output"], json!("hello ann and bye"));
    assert!(!bye["audit_seqs"].as_array().expect("seqs").is_empty());
    // The owner reads it; the listing filters by state.
    assert_eq!(run_of(&d, &id, SUBMIT)["state"], "completed");
    let list = d
        .client(SUBMIT)
        .get("/v1/runs?state=completed")
        .expect("list")
        .json();
    assert!(
        list["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .any(|r| r["run_id"] == id.as_str()),
        "{list}"
    );
    let none = d
        .client(AUDIT)
        .get("/v1/runs?state=needs_attention")
        .expect("list")
        .json();
    assert_eq!(none["runs"], json!([]));
    let bad = d.client(AUDIT).get("/v1/runs?state=bogus").expect("list");
    assert_eq!(bad.status, 400);
    // `wait`: the run ends within it, so the answer is the finished run.
    let r = d.submit(json!({"kind": "greeting", "input": {"who": "bob"}, "wait": "30s"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["run"]["state"], "completed");
    // The audit trail has the run's start and end and each step's invocation.
    let audit = d.audit();
    let of_run: Vec<&Value> = audit
        .iter()
        .filter(|e| e.to_string().contains(&id))
        .collect();
    assert!(of_run.len() >= 4, "start, two steps, skip, end: {of_run:?}");
}

#[test]
fn an_input_that_does_not_match_the_declared_type_is_refused_422_and_audited() {
    let d = Daemon::start(&echo_workflow_deploy("wf-422"));
    let r = d.submit(json!({"kind": "greeting", "input": {"who": 7}}));
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    assert_eq!(body["outcome"], "invalid_input");
    let id = body["request_id"].as_str().expect("id").to_string();
    assert!(body.get("run").is_none(), "no run started: {body}");
    let audit = d.audit();
    assert!(
        audit
            .iter()
            .any(|e| e.to_string().contains(&id) && e.to_string().contains("invalid_input")),
        "the refusal is audited"
    );
    let missing = d.client(AUDIT).get(&format!("/v1/runs/{id}")).expect("run");
    assert_eq!(missing.status, 404, "nothing was journaled");
}

#[test]
fn a_waiting_run_is_cancelled_with_its_done_steps_compensated_and_runs_are_private() {
    let d = Daemon::start(&echo_workflow_deploy("wf-cancel"));
    let r = d.submit(json!({"kind": "greeting", "input": {"who": "boss"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    wait_state(&d, &id, &["waiting"]);
    // Submitters cannot cancel; a resume needs needs_attention and a reason.
    let no = d
        .client(SUBMIT)
        .post_json(&format!("/v1/runs/{id}/cancel"), &json!({}))
        .expect("cancel");
    assert_eq!(no.status, 403, "{}", no.text());
    let no = d
        .client(APPROVE)
        .post_json(&format!("/v1/runs/{id}/resume"), &json!({}))
        .expect("resume");
    assert_eq!(no.status, 400, "{}", no.text());
    let no = d
        .client(APPROVE)
        .post_json(&format!("/v1/runs/{id}/resume"), &json!({"reason": "go"}))
        .expect("resume");
    assert_eq!(no.status, 409, "{}", no.text());
    let r = d
        .client(APPROVE)
        .post_json(
            &format!("/v1/runs/{id}/cancel"),
            &json!({"reason": "customer left"}),
        )
        .expect("cancel");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "cancelled");
    let run = run_of(&d, &id, AUDIT);
    assert_eq!(run["state"], "cancelled");
    let hello = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == "hello")
        .cloned()
        .expect("hello");
    assert_eq!(hello["state"], "compensated");
    let again = d
        .client(APPROVE)
        .post_json(&format!("/v1/runs/{id}/cancel"), &json!({}))
        .expect("cancel");
    assert_eq!(again.status, 409, "a final run is not cancelled twice");
    let audit = d.audit();
    assert!(
        audit
            .iter()
            .any(|e| e.to_string().contains(&format!("{id}.hello.compensate"))),
        "the compensation is audited"
    );
    assert!(
        audit
            .iter()
            .any(|e| e.to_string().contains("customer left")),
        "the cancel and its reason are audited"
    );
}

#[test]
fn a_run_in_flight_at_a_sigkill_resumes_at_restart_without_re_running_done_steps() {
    let (_rt, double, dir) = slow_fetch_deployment("wf-crash", Duration::from_secs(2));
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
compensate = "none"

[[step]]
id = "fetch"
needs = ["first"]
call = "http-fetch.fetch-many"
input = {{ url = "{}/slow", times = 1 }}
compensate = "none"

[[step]]
id = "last"
needs = ["fetch"]
call = "echo.echo"
input = {{ message = "${{steps.first.output}} then last" }}
compensate = "none"
"#,
            double.origin()
        ),
    );
    let d = Daemon::start(&dir);
    let r = d.submit(json!({"kind": "slow", "input": {"who": "kim"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    // The fetch step is in flight once the double has seen its request.
    let deadline = Instant::now() + Duration::from_secs(60);
    while double.hits() == 0 {
        assert!(Instant::now() < deadline, "the fetch step never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    d.signal("-KILL");
    drop(d);
    let d = Daemon::start(&dir);
    let run = wait_state(&d, &id, &["completed"]);
    let steps = run["steps"].as_array().expect("steps");
    let step = |s: &str| {
        steps
            .iter()
            .find(|x| x["step"] == s)
            .cloned()
            .expect("step")
    };
    assert_eq!(step("first")["attempts"], 1, "a done step is never re-run");
    // The in-flight marker (attempt 1) is a deferred commit (no fsync of
    // its own, docs/workflows.md "One fsync per step"): it survived the
    // SIGKILL, so the re-run is attempt 2.
    assert_eq!(step("fetch")["attempts"], 2, "the deferred marker survived");
    assert_eq!(step("last")["output"], json!("first kim then last"));
    assert_eq!(
        double.hits(),
        2,
        "the step in flight at the kill ran again (at-least-once)"
    );
    let audit = d.audit();
    let first_calls = audit
        .iter()
        .filter(|e| e.to_string().contains(&format!("\"{id}.first\"")))
        .count();
    assert_eq!(first_calls, 1, "the done step has one invocation entry");
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
fn the_cli_starts_lists_shows_and_cancels_runs() {
    let d = Daemon::start(&echo_workflow_deploy("wf-cli"));
    let (code, out, err) = d.cli(
        &[
            "workflow",
            "start",
            "greeting",
            "--input",
            r#"{"who":"cy"}"#,
            "--wait",
        ],
        SUBMIT,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let run: Value = serde_json::from_str(&out).expect("run json");
    assert_eq!(run["state"], "completed");
    let id = run["run_id"].as_str().expect("id").to_string();
    let (code, out, err) = d.cli(&["workflow", "status", &id], SUBMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hello cy and bye"), "{out}");
    let (code, out, err) = d.cli(&["workflow", "list", "--state", "completed"], AUDIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("greeting"), "{out}");
    // A run waiting for a human: `--wait` exits 1 with the run printed.
    let (code, out, err) = d.cli(
        &[
            "workflow",
            "start",
            "greeting",
            "--input",
            r#"{"who":"boss"}"#,
            "--wait",
        ],
        SUBMIT,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let waiting: Value = serde_json::from_str(&out).expect("run json");
    assert_eq!(waiting["state"], "waiting");
    let wid = waiting["run_id"].as_str().expect("id").to_string();
    let (code, _, err) = d.cli(&["workflow", "cancel", &wid], SUBMIT);
    assert_eq!(code, 2, "a submitter cannot cancel: {err}");
    let (code, out, err) = d.cli(&["workflow", "cancel", &wid, "--reason", "no"], APPROVE);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cancelled"), "{out}");
    let (code, _, err) = d.cli(&["workflow", "resume", &wid, "--reason", "again"], APPROVE);
    assert_eq!(code, 2, "only needs_attention resumes: {err}");
    assert!(err.contains("run_not_stopped"), "{err}");
}

#[test]
fn a_run_stopped_after_its_pivot_needs_attention_and_resumes_only_with_an_audited_reason() {
    let mut panicker = cap("panicker", "panicker");
    panicker.imports = STD_IMPORTS;
    let dir = deploy(
        "wf-resume",
        &[cap("echo", "echo"), panicker],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_workflow(
        &dir,
        "charge",
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
compensate = "none"

[[step]]
id = "record"
needs = ["pay"]
call = "panicker.boom"
input = { message = "${steps.pay.output}" }
compensate = "none"
"#,
    );
    let d = Daemon::start(&dir);
    let r = d.submit(json!({"kind": "charge", "input": {"who": "dee"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    let run = wait_state(&d, &id, &["needs_attention"]);
    let record = |run: &Value| {
        run["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["step"] == "record")
            .cloned()
            .expect("record")
    };
    assert_eq!(record(&run)["state"], "failed");
    let attempts = record(&run)["attempts"].as_u64().expect("attempts");
    let pay = run["steps"][0].clone();
    assert_eq!(
        pay["state"], "done",
        "after the pivot nothing is compensated"
    );
    let no = d
        .client(APPROVE)
        .post_json(&format!("/v1/runs/{id}/resume"), &json!({"reason": "  "}))
        .expect("resume");
    assert_eq!(no.status, 400, "{}", no.text());
    assert_eq!(no.json()["error"]["code"], "reason_required");
    let ok = d
        .client(APPROVE)
        .post_json(
            &format!("/v1/runs/{id}/resume"),
            &json!({"reason": "ledger fixed by hand"}),
        )
        .expect("resume");
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The step runs again (it fails again: the guest always traps).
    let deadline = Instant::now() + Duration::from_secs(60);
    let again = loop {
        let run = run_of(&d, &id, AUDIT);
        if run["state"] == "needs_attention" && record(&run)["attempts"].as_u64() > Some(attempts) {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed step never ran: {run}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(again["steps"][0]["attempts"], 1, "the pivot is not re-run");
    assert!(
        d.audit()
            .iter()
            .any(|e| e.to_string().contains("ledger fixed by hand")),
        "the resume and its reason are audited"
    );
    // A reload with a broken plan is refused, naming file:line, and
    // changes nothing.
    std::fs::write(
        dir.join("workflows").join("broken.toml"),
        "[[step]]\nid = \"x\"\ncall = \"echo.nope\"\ninput = {}\ncompensate = \"none\"\n",
    )
    .expect("plan");
    let r = d
        .client(crate::daemon::ADMIN)
        .post_json("/v1/admin/reload", &json!({}))
        .expect("reload");
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("broken.toml:"), "{}", r.text());
    let r = d.submit(json!({"kind": "charge", "input": {"who": "eve"}}));
    assert_eq!(
        r.status,
        202,
        "the loaded workflows still run: {}",
        r.text()
    );
}
