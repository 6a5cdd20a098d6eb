//! Human approval gates through a real `warden serve` (issue 6): held
//! requests, single and dual approval, refusals, deny, expiry, restart,
//! reload voiding, and the audit chain of every step.

use crate::daemon::{ADMIN, APPROVE, AUDIT, Cap, Daemon, SUBMIT, cap, deploy, policy_toml};
use crate::support::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden_host::server::auth::token_hash;

const CAROL: &str = "tok-carol";
const DAVE: &str = "tok-dave";
const BOSS: &str = "tok-boss";

/// Rules on `echo` keyed by the message's prefix; the last one cannot be
/// evaluated on any string (a string compared with a number).
const RULES: &str = r#"
[[approval]]
function = "echo"
when = "input.message starts_with \"big\""
mode = "dual"
approvers = ["group:finance", "boss"]

[[approval]]
function = "echo"
when = "input.message starts_with \"pay\""
mode = "single"

[[approval]]
function = "echo"
when = "input.message starts_with \"soon\""
mode = "single"
expires = "1s"

[[approval]]
function = "echo"
when = "input.message starts_with \"free\""
mode = "none"

[[approval]]
function = "echo"
when = "input.message > 100"
mode = "none"
"#;

/// Extra principals: two finance approvers and a boss who may submit and approve.
fn principals() -> String {
    [
        ("carol", CAROL, "[\"approve\"]", "[\"finance\"]"),
        ("dave", DAVE, "[\"approve\"]", "[\"finance\"]"),
        ("boss", BOSS, "[\"submit\", \"approve\"]", "[]"),
    ]
    .iter()
    .map(|(n, t, roles, groups)| {
        format!(
            "[[principal]]\nname = \"{n}\"\ntoken_sha256 = \"{}\"\nroles = {roles}\ngroups = {groups}\n\n",
            token_hash(t)
        )
    })
    .collect()
}

fn approval_deploy(name: &str) -> PathBuf {
    let mut echo = cap("echo", "echo");
    echo.extra = RULES;
    deploy(
        &format!("approvals-{name}"),
        &[echo],
        &[("greet", "greet", "echo", "echo")],
        &principals(),
    )
}

fn greet(message: &str) -> Value {
    json!({"kind": "greet", "input": {"message": message}})
}

/// Submits as `token`; asserts the request was held; returns its 202 body.
fn hold(d: &Daemon, token: &str, message: &str) -> Value {
    let r = d
        .client(token)
        .post_json("/v1/requests", &greet(message))
        .expect("submit");
    assert_eq!(r.status, 202, "{message}: {}", r.text());
    let body = r.json();
    assert_eq!(body["outcome"], "pending_approval", "{body}");
    body
}

fn id_of(body: &Value) -> String {
    body["request_id"].as_str().expect("request id").to_string()
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

/// `(event, outcome, principal)` of every audit entry of request `id`, in chain order.
fn steps(d: &Daemon, id: &str) -> Vec<(String, String, String)> {
    d.audit()
        .iter()
        .filter(|e| e["entry"]["request_id"] == id)
        .map(|e| {
            let s = |k: &str| e["entry"][k].as_str().unwrap_or_default().to_string();
            (s("event"), s("outcome"), s("principal"))
        })
        .collect()
}

fn step(event: &str, outcome: &str, principal: &str) -> (String, String, String) {
    (event.into(), outcome.into(), principal.into())
}

/// The audit entries of request `id`.
fn entries(d: &Daemon, id: &str) -> Vec<Value> {
    d.audit()
        .into_iter()
        .filter(|e| e["entry"]["request_id"] == id)
        .map(|e| e["entry"].clone())
        .collect()
}

fn sha(text: &str) -> Value {
    json!(warden_host::digest::Hash256::of(text.as_bytes()).to_string())
}

#[test]
fn a_single_approval_runs_exactly_the_held_request_and_every_step_is_audited_in_order() {
    let d = Daemon::start(&approval_deploy("single"));
    let free = d.submit(greet("free lunch"));
    assert_eq!(
        free.status,
        200,
        "a `none` rule runs at once: {}",
        free.text()
    );

    let held = hold(&d, SUBMIT, "pay 40");
    let id = id_of(&held);
    assert_eq!(held["approval"]["mode"], "single");
    assert_eq!(held["approval"]["rule"], 2);
    assert_eq!(held["approval"]["approvals_needed"], 1);
    assert!(held["output"].is_null(), "nothing ran: {held}");
    let polled = d
        .client(SUBMIT)
        .get(&format!("/v1/requests/{id}"))
        .expect("poll")
        .json();
    assert_eq!(polled["status"], 202, "{polled}");

    let list = d
        .client(APPROVE)
        .get("/v1/approvals?state=pending")
        .expect("list")
        .json();
    let items = list["approvals"].as_array().expect("list");
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(item["request_id"], id.as_str());
    assert_eq!(item["input"], json!({"message": "pay 40"}));
    assert_eq!(item["capability"], "echo");
    assert_eq!(item["function"], "echo");
    assert_eq!(item["requester"], "alice");
    assert_eq!(item["rule"]["index"], 2);
    assert_eq!(item["component_digest"], held["component_digest"]);
    assert_eq!(item["policy_hash"], held["policy_hash"]);
    assert!(item["age_ms"].is_u64() && item["expires_in_ms"].as_u64() > Some(0));
    let shown = d
        .client(AUDIT)
        .get(&format!("/v1/approvals/{id}"))
        .expect("show")
        .json();
    assert_eq!(shown["state"], "pending");

    let (status, done) = decide(&d, APPROVE, &id, "approve", "customer called");
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "executed");
    assert_eq!(done["result"]["outcome"], "ok");
    assert_eq!(done["result"]["output"], "pay 40");
    assert_eq!(done["result"]["request_id"], id.as_str());

    let final_answer = d
        .client(SUBMIT)
        .get(&format!("/v1/requests/{id}"))
        .expect("poll")
        .json();
    assert_eq!(final_answer["status"], 200, "{final_answer}");
    assert_eq!(final_answer["response"]["output"], "pay 40");
    let pending = d.client(APPROVE).get("/v1/approvals").expect("list").json();
    assert_eq!(pending["approvals"], json!([]), "nothing pending any more");

    assert_eq!(
        steps(&d, &id),
        vec![
            step("invocation", "pending_approval", "alice"),
            step("approval", "ok", "approver"),
            step("invocation", "ok", "alice"),
        ]
    );
    let e = entries(&d, &id);
    assert_eq!(
        e[2]["approvals"],
        json!([{"principal": "approver", "decision": "approved",
                "at_ms": e[1]["approvals"][0]["at_ms"], "reason_sha256": sha("customer called")}])
    );
    assert_eq!(e[0]["component_digest"], e[2]["component_digest"]);
    assert_eq!(e[0]["policy_hash"], e[2]["policy_hash"]);
    assert_eq!(e[0]["input_sha256"], e[2]["input_sha256"]);
}

#[test]
fn dual_approval_needs_two_distinct_eligible_approvers_and_refusals_are_audited() {
    let d = Daemon::start(&approval_deploy("dual"));
    let held = hold(&d, BOSS, "big refund");
    let id = id_of(&held);
    assert_eq!(held["approval"]["mode"], "dual");
    assert_eq!(held["approval"]["approvals_needed"], 2);

    let (status, body) = decide(&d, BOSS, &id, "approve", "mine, trust me");
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("self_approval"))
    );
    let (status, body) = decide(&d, APPROVE, &id, "approve", "looks fine");
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("not_an_approver")),
        "approver is not in group finance"
    );
    let (status, body) = decide(&d, CAROL, &id, "approve", "checked the order");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["state"], &body["approvals_given"]),
        (&json!("pending"), &json!(1))
    );
    let (status, body) = decide(&d, CAROL, &id, "approve", "again");
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("already_decided"))
    );
    let (status, body) = decide(&d, DAVE, &id, "approve", "second pair of eyes");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "executed");
    assert_eq!(body["result"]["output"], "big refund");

    assert_eq!(
        steps(&d, &id),
        vec![
            step("invocation", "pending_approval", "boss"),
            step("approval", "denied", "boss"),
            step("approval", "denied", "approver"),
            step("approval", "ok", "carol"),
            step("approval", "denied", "carol"),
            step("approval", "ok", "dave"),
            step("invocation", "ok", "boss"),
        ]
    );
    let e = entries(&d, &id);
    let refused: Vec<Value> = [1, 2, 4]
        .iter()
        .map(|i| {
            serde_json::from_str::<Value>(e[*i]["detail"].as_str().expect("detail")).expect("json")
                ["refused"]
                .clone()
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            json!("self_approval"),
            json!("not_an_approver"),
            json!("already_decided")
        ]
    );
    let approvers: Vec<&Value> = e[6]["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| &a["principal"])
        .collect();
    assert_eq!(approvers, vec!["carol", "dave"]);
}

#[test]
fn a_denied_request_never_runs_and_ends_approval_denied_through_the_cli() {
    let d = Daemon::start(&approval_deploy("deny"));
    let id = id_of(&hold(&d, SUBMIT, "pay the wrong account"));
    let cli = |args: &[&str], token: &str| d.cli(args, token);
    let (code, out, err) = cli(&["approvals", "list"], APPROVE);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("0/1 approvals"), "{out}");
    let (code, out, err) = cli(&["approvals", "show", &id], AUDIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pay the wrong account"), "{out}");
    let (code, _, err) = cli(&["approvals", "deny", &id, "--reason", "x"], SUBMIT);
    assert_eq!(code, 2, "a submitter cannot decide: {err}");
    assert!(err.contains("403"), "{err}");
    let (code, out, err) = cli(
        &["approvals", "deny", &id, "--reason", "wrong account"],
        APPROVE,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("denied") && out.contains("approval_denied"),
        "{out}"
    );

    let answer = d
        .client(SUBMIT)
        .get(&format!("/v1/requests/{id}"))
        .expect("poll")
        .json();
    assert_eq!(answer["status"], 403, "{answer}");
    assert_eq!(answer["response"]["outcome"], "approval_denied");
    let (status, body) = decide(&d, CAROL, &id, "approve", "too late");
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_pending"))
    );
    let (status, body) = decide(&d, CAROL, &id, "approve", "  ");
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_reason"))
    );
    assert_eq!(
        steps(&d, &id),
        vec![
            step("invocation", "pending_approval", "alice"),
            step("approval", "ok", "approver"),
            step("invocation", "approval_denied", "alice"),
        ]
    );
    // Roles: reading needs approve or audit; deciding needs approve.
    for token in [SUBMIT, ADMIN] {
        let r = d.client(token).get("/v1/approvals").expect("get");
        assert_eq!(r.status, 403, "{}", r.text());
    }
    let (status, _) = decide(&d, AUDIT, &id, "approve", "auditors only read");
    assert_eq!(status, 403);
}

#[test]
fn a_request_past_its_expiry_ends_approval_expired_and_long_polls_see_it() {
    let d = Daemon::start(&approval_deploy("expire"));
    let id = id_of(&hold(&d, SUBMIT, "soon gone"));
    let metrics = |d: &Daemon| d.client(AUDIT).get("/metrics").expect("metrics").text();
    let m = metrics(&d);
    assert!(m.contains("warden_pending_approvals 1"), "{m}");
    assert!(
        m.contains("warden_oldest_pending_approval_age_seconds "),
        "{m}"
    );
    let started = Instant::now();
    let answer = d
        .client(SUBMIT)
        .get(&format!("/v1/requests/{id}?wait=30s"))
        .expect("long poll")
        .json();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the long poll returned when the request ended, not at its timeout"
    );
    assert_eq!(answer["status"], 410, "{answer}");
    assert_eq!(answer["response"]["outcome"], "approval_expired");
    let (status, body) = decide(&d, APPROVE, &id, "approve", "late");
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_pending"))
    );
    let m = metrics(&d);
    assert!(m.contains("warden_pending_approvals 0"), "{m}");
    assert!(
        m.contains("warden_approval_expiries_total{capability=\"echo\"} 1"),
        "{m}"
    );
    assert_eq!(
        steps(&d, &id),
        vec![
            step("invocation", "pending_approval", "alice"),
            step("invocation", "approval_expired", "alice"),
        ]
    );
}

#[test]
fn pending_requests_survive_a_restart_and_run_when_approved_after_it() {
    let dir = approval_deploy("restart");
    let d = Daemon::start(&dir);
    let id = id_of(&hold(&d, SUBMIT, "pay after restart"));
    let (code, err) = d.terminate();
    assert_eq!(code, 0, "{err}");

    let d = Daemon::start(&dir);
    let list = d.client(APPROVE).get("/v1/approvals").expect("list").json();
    assert_eq!(list["approvals"][0]["request_id"], id.as_str(), "{list}");
    let (status, body) = decide(&d, APPROVE, &id, "approve", "ok after restart");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["output"], "pay after restart");
    assert_eq!(
        steps(&d, &id),
        vec![
            step("invocation", "pending_approval", "alice"),
            step("approval", "ok", "approver"),
            step("invocation", "ok", "alice"),
        ]
    );
    let (code, err) = d.terminate();
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        dir.join("data").to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "the chain verifies: {out}{err}");
}

#[test]
fn a_reload_between_approvals_voids_them_at_once() {
    let dir = approval_deploy("void");
    let d = Daemon::start(&dir);
    let id = id_of(&hold(&d, SUBMIT, "big change"));
    let (status, body) = decide(&d, CAROL, &id, "approve", "fine by me");
    assert_eq!(status, 200, "{body}");
    // The policy changes (a tighter budget): its hash changes.
    let mut echo = cap("echo", "echo");
    echo.extra = Box::leak(format!("{RULES}\n[budget]\nwall_time = \"2s\"\n").into_boxed_str());
    std::fs::write(dir.join("policies/echo.toml"), policy_toml(&echo)).expect("write");
    let r = d
        .client(ADMIN)
        .send("POST", "/v1/admin/reload", None, &[])
        .expect("reload");
    assert_eq!(r.status, 200, "{}", r.text());
    let reload = r.json();
    assert_eq!(reload["held_voided"], 1, "{reload}");
    assert!(
        reload["changes"][0]
            .as_str()
            .is_some_and(|c| c.starts_with("capability `echo`: policy sha256:")),
        "the reload says what changed: {reload}"
    );
    // Voided at the reload: it no longer lists as pending.
    let list = d.client(APPROVE).get("/v1/approvals").expect("list").json();
    assert_eq!(list["approvals"], json!([]), "{list}");

    let (status, body) = decide(&d, DAVE, &id, "approve", "fine too");
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_pending")),
        "{body}"
    );
    let answer = d
        .client(SUBMIT)
        .get(&format!("/v1/requests/{id}"))
        .expect("poll")
        .json();
    assert_eq!(answer["response"]["outcome"], "approval_denied", "{answer}");
    assert!(
        answer["response"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("approval void")),
        "{answer}"
    );
    assert_eq!(
        steps(&d, &id),
        vec![
            step("invocation", "pending_approval", "alice"),
            step("approval", "ok", "carol"),
            step("invocation", "approval_denied", "alice"),
        ]
    );
    // The void entry names the digest and policy the approvers saw.
    let e = entries(&d, &id);
    assert_eq!(e[2]["policy_hash"], e[0]["policy_hash"]);
    // A new submission is held against the new policy and can be approved.
    let id2 = id_of(&hold(&d, SUBMIT, "pay again"));
    let (status, body) = decide(&d, APPROVE, &id2, "approve", "new policy");
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["policy_hash"], e[0]["policy_hash"]);
}

#[test]
fn an_unreadable_predicate_holds_the_request_and_invalid_input_is_never_held() {
    let d = Daemon::start(&approval_deploy("unreadable"));
    let held = hold(&d, SUBMIT, "anything else");
    assert_eq!(held["approval"]["rule"], 5);
    assert_eq!(
        held["approval"]["mode"], "single",
        "a `none` rule that cannot be read needs one approval"
    );
    assert!(
        held["approval"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be evaluated")),
        "{held}"
    );
    let r = d.submit(json!({"kind": "greet", "input": {"message": 5}}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["outcome"], "invalid_input");
    let list = d.client(APPROVE).get("/v1/approvals").expect("list").json();
    assert_eq!(
        list["approvals"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
}

#[test]
fn the_daemon_refuses_rules_its_principals_cannot_satisfy() {
    let mut echo = cap("echo", "echo");
    echo.extra = "[[approval]]\nfunction = \"echo\"\nmode = \"dual\"\napprovers = [\"nobody\", \"group:finance\"]\n\n[[approval]]\nfunction = \"shout\"\nmode = \"single\"\n";
    let dir = deploy(
        "approvals-unsatisfiable",
        &[echo],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    let (code, _out, err) = warden(&[
        "serve",
        "--config",
        dir.join("warden.toml").to_str().expect("utf8"),
    ]);
    assert_eq!(code, 2, "{err}");
    for needle in [
        "approver `nobody`",
        "approver `group:finance`",
        "needs 2 distinct approvers but only 0",
        "names function `shout`",
    ] {
        assert!(err.contains(needle), "{needle}:\n{err}");
    }
}

#[tokio::test]
async fn the_library_refuses_a_gated_call_without_enough_distinct_approvals() {
    use warden_host::audit::{Approval, ApprovalDecision};
    use warden_host::{Call, Outcome, policy::Policy};
    let mut host = audited_host("approvals-embed");
    let text = format!("[capability]\nname = \"echo\"\ncomponent = \"echo.wasm\"\n{RULES}");
    let policy = Policy::parse(std::path::Path::new("policies/echo.toml"), &text).expect("policy");
    load(&mut host, policy, "echo");
    let approval = |who: &str| Approval {
        principal: who.into(),
        decision: ApprovalDecision::Approved,
        at_ms: 1,
        reason_sha256: None,
    };
    let call = |msg: &str| {
        Call::new("echo", "echo", json!({"message": msg})).from_principal("boss", "embed")
    };

    let r = host.invoke(call("free ride")).await;
    assert_eq!(r.outcome, Outcome::Ok, "ungated");
    // Dual: one approval, the requester's own, and a repeated one are not enough.
    for approvals in [
        vec![],
        vec![approval("carol")],
        vec![approval("boss"), approval("carol")],
        vec![approval("carol"), approval("carol")],
    ] {
        let r = host
            .invoke(call("big").with_approvals(approvals.clone()))
            .await;
        assert_eq!(
            r.outcome,
            Outcome::PendingApproval,
            "{approvals:?}: {:?}",
            r.error
        );
        assert!(r.output.is_none());
        let entry = audit_entry_of(&host, &r);
        assert_eq!(entry.entry.outcome, Outcome::PendingApproval);
    }
    let r = host
        .invoke(call("big").with_approvals(vec![approval("carol"), approval("dave")]))
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
    let entry = audit_entry_of(&host, &r);
    let names: Vec<&str> = entry
        .entry
        .approvals
        .iter()
        .map(|a| a.principal.as_str())
        .collect();
    assert_eq!(
        names,
        vec!["carol", "dave"],
        "the approvals are in the audit entry"
    );
}

#[test]
fn a_held_request_runs_with_the_admission_time_it_was_held_with() {
    let clock = Cap {
        name: "clock-random",
        guest: "clock-random",
        imports: Box::leak(
            format!(
                "{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{ mode = \"virtual\" }}\n\"wasi:clocks/monotonic-clock\" = {{ mode = \"virtual\" }}\n\"wasi:random/random\" = {{ mode = \"seeded\" }}"
            )
            .into_boxed_str(),
        ),
        extra: "[[approval]]\nfunction = \"sample\"\nmode = \"single\"\n",
    };
    let dir = deploy(
        "approvals-admission",
        &[clock],
        &[("sample", "sample", "clock-random", "sample")],
        "",
    );
    let d = Daemon::start(&dir);
    let r = d
        .client(SUBMIT)
        .post_json("/v1/requests", &json!({"kind": "sample", "input": {}}))
        .expect("submit");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = id_of(&r.json());
    // Long enough that a clock read at approval time would differ.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, done) = decide(&d, APPROVE, &id, "approve", "ok");
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["result"]["outcome"], "ok", "{done}");
    let e = entries(&d, &id);
    assert_eq!(e.len(), 3, "{e:?}");
    let admitted = e[0]["admitted_at_ms"].as_u64().expect("admitted_at_ms");
    assert_eq!(
        e[2]["admitted_at_ms"], admitted,
        "the run keeps the admission time"
    );
    assert_eq!(
        done["admitted_at_ms"], admitted,
        "the held request shows it"
    );
    let out = &done["result"]["output"];
    assert_eq!(
        (out[0].as_u64(), out[1].as_u64()),
        (Some(admitted / 1000), Some(admitted % 1000 * 1_000_000)),
        "the guest's wall clock reads the admission time, to the millisecond: {out}"
    );
}
