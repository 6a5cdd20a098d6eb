//! Pinned versions (docs/workflows.md "Pinned versions"): a run finishes
//! on the component and policy it pinned at its start — after a reload
//! changed its step's capability, and after a restart, when that version is
//! only in the artifact store (`[[approval]]` rules included) — while new
//! runs use the new version.

use crate::daemon::{ADMIN, APPROVE, AUDIT, Daemon, cap, deploy, policy_toml};
use crate::workflows_daemon::{add_workflow, run_of, wait_state};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `record` runs on `tight`: the echo guest under a policy whose fuel
/// budget it exhausts. After the pivot, so the run stops in needs_attention.
const PINNED: &str = r#"
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
call = "tight.echo"
input = { message = "${steps.pay.output}" }
compensate = "none"
"#;

/// The `record` attempts of run `id` in the audit trail: (outcome, policy hash).
fn record_attempts(d: &Daemon, id: &str) -> Vec<(String, Value)> {
    d.audit()
        .iter()
        .filter(|e| e["entry"]["request_id"] == format!("{id}.record").as_str())
        .map(|e| {
            (
                e["entry"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["entry"]["policy_hash"].clone(),
            )
        })
        .collect()
}

fn resume_and_wait(d: &Daemon, id: &str, attempts_before: usize) -> Vec<(String, Value)> {
    let r = d
        .client(APPROVE)
        .post_json(
            &format!("/v1/runs/{id}/resume"),
            &json!({"reason": "try again"}),
        )
        .expect("resume");
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempts = record_attempts(d, id);
        let run = run_of(d, id, AUDIT);
        if attempts.len() > attempts_before && run["state"] != "running" {
            return attempts;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed step never ran: {run}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_run_finishes_on_its_pinned_policy_after_a_reload_and_a_restart_while_new_runs_use_the_new_one()
{
    // Both versions carry an `[[approval]]` rule (one that never holds a
    // call): the artifact store rebuilds it exactly after the restart.
    let mut tight = cap("tight", "echo");
    tight.extra = "[budget]\nfuel = 100\n\n[[approval]]\nfunction = \"echo\"\nmode = \"none\"\n";
    let dir = deploy(
        "wf-pinned",
        &[cap("echo", "echo"), tight],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_workflow(&dir, "pinned", PINNED);
    let d = Daemon::start(&dir);
    let r = d.submit(json!({"kind": "pinned", "input": {"who": "old"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let old = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    let run = wait_state(&d, &old, &["needs_attention"]);
    let pinned_policy = run["pins"]["record"]["policy"].clone();
    let first = record_attempts(&d, &old);
    assert!(!first.is_empty(), "{run}");
    assert!(
        first.iter().all(|(o, _)| o.starts_with("budget_exhausted")),
        "{first:?}"
    );

    // The operator raises the budget: a reload changes `tight`'s policy.
    let mut relaxed = cap("tight", "echo");
    relaxed.extra =
        "[budget]\nfuel = 100_000_000\n\n[[approval]]\nfunction = \"echo\"\nmode = \"none\"\n";
    std::fs::write(
        dir.join("policies").join("tight.toml"),
        policy_toml(&relaxed),
    )
    .expect("policy");
    let r = d
        .client(ADMIN)
        .post_json("/v1/admin/reload", &json!({}))
        .expect("reload");
    assert_eq!(r.status, 200, "{}", r.text());

    // A new run uses the new policy and completes.
    let r = d.submit(json!({"kind": "pinned", "input": {"who": "new"}}));
    let new = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    let new_run = wait_state(&d, &new, &["completed"]);
    let new_policy = new_run["pins"]["record"]["policy"].clone();
    assert_ne!(new_policy, pinned_policy, "the reload changed the policy");
    let new_attempts = record_attempts(&d, &new);
    assert_eq!(new_attempts.len(), 1, "{new_attempts:?}");
    assert_eq!(new_attempts[0].0, "ok");

    // The old run, resumed after the reload, still runs on what it pinned.
    let after_reload = resume_and_wait(&d, &old, first.len());
    assert_eq!(run_of(&d, &old, AUDIT)["state"], "needs_attention");
    let old_policy = after_reload[0].1.clone();
    assert_ne!(old_policy, new_attempts[0].1);
    for (outcome, policy) in &after_reload {
        assert!(outcome.starts_with("budget_exhausted"), "{after_reload:?}");
        assert_eq!(*policy, old_policy, "every attempt on the pinned policy");
    }

    // After a restart the pinned policy is only in the artifact store.
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    let d = Daemon::start(&dir);
    let after_restart = resume_and_wait(&d, &old, after_reload.len());
    assert!(after_restart.len() > after_reload.len());
    for (outcome, policy) in &after_restart {
        assert!(outcome.starts_with("budget_exhausted"), "{after_restart:?}");
        assert_eq!(
            *policy, old_policy,
            "the pinned policy, from the artifact store"
        );
    }
    assert_eq!(run_of(&d, &old, AUDIT)["state"], "needs_attention");
    // New runs still use the deployment's version.
    let r = d.submit(json!({"kind": "pinned", "input": {"who": "newer"}}));
    let newer = r.json()["run"]["run_id"].as_str().expect("id").to_string();
    wait_state(&d, &newer, &["completed"]);
}
