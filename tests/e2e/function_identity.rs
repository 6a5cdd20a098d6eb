//! Issue 14, item 1: an approval rule gates its function whichever form
//! (`calc#add` or `warden-test:all-types/calc#add`) the rule, the route,
//! `warden run --call` or `Call::new` names it by.

use crate::daemon::{Cap, Daemon, SUBMIT, deploy};
use crate::support::*;
use serde_json::json;
use warden_host::{Call, Outcome};

const SHORT: &str = "calc#add";
const LONG: &str = "warden-test:all-types/calc#add";

fn gated_policy_text(rule_function: &str) -> String {
    format!(
        "[capability]\nname = \"all-types\"\ncomponent = \"all_types.wasm\"\n\n[imports]\n{STD_IMPORTS}\n\n[[approval]]\nfunction = \"{rule_function}\"\nmode = \"single\"\n"
    )
}

#[tokio::test]
async fn an_approval_rule_gates_the_library_call_in_every_pairing_of_short_and_long_names() {
    for rule in [SHORT, LONG] {
        let mut host = host();
        let policy = warden_host::policy::Policy::parse(
            std::path::Path::new("policies/all-types.toml"),
            &gated_policy_text(rule),
        )
        .expect("policy");
        load(&mut host, policy, "all-types");
        for called in [SHORT, LONG] {
            let r = host
                .invoke(Call::new("all-types", called, json!({"a": 1, "b": 2})))
                .await;
            assert_eq!(
                r.outcome,
                Outcome::PendingApproval,
                "rule `{rule}`, call `{called}`: {:?}",
                r.error
            );
            assert!(r.output.is_none());
            assert_eq!(r.function, LONG, "the record names the canonical identity");
        }
        // An ungated function of the same component still runs.
        let r = host
            .invoke(Call::new("all-types", "echo-u8", json!({"v": 7})))
            .await;
        assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
    }
}

#[test]
fn an_approval_rule_gates_warden_run_in_every_pairing_of_short_and_long_names() {
    for rule in [SHORT, LONG] {
        let dir = scratch("identity-run");
        let policy = dir.join("all-types.toml");
        std::fs::write(&policy, gated_policy_text(rule)).expect("policy");
        for called in [SHORT, LONG] {
            let data = dir.join(format!("data-{}", called.len()));
            let (code, out, err) = warden(&[
                "run",
                &guest("all-types").display().to_string(),
                "--policy",
                &policy.display().to_string(),
                "--call",
                called,
                "--input",
                r#"{"a": 1, "b": 2}"#,
                "--allow-unsigned",
                "--data-dir",
                &data.display().to_string(),
            ]);
            assert_eq!(
                code, 13,
                "rule `{rule}`, --call `{called}`: exit {code}\n{out}\n{err}"
            );
        }
    }
}

#[test]
fn an_approval_rule_gates_routed_requests_in_every_pairing_of_short_and_long_names() {
    let cap = |name: &'static str, extra: &'static str| Cap {
        name,
        guest: "all-types",
        imports: STD_IMPORTS,
        extra,
    };
    let dir = deploy(
        "identity-routes",
        &[
            cap(
                "rule-short",
                "[[approval]]\nfunction = \"calc#add\"\nmode = \"single\"\n",
            ),
            cap(
                "rule-long",
                "[[approval]]\nfunction = \"warden-test:all-types/calc#add\"\nmode = \"single\"\n",
            ),
        ],
        &[
            ("s-s", "short-short", "rule-short", SHORT),
            ("s-l", "short-long", "rule-short", LONG),
            ("l-s", "long-short", "rule-long", SHORT),
            ("l-l", "long-long", "rule-long", LONG),
        ],
        "",
    );
    let d = Daemon::start(&dir);
    for kind in ["short-short", "short-long", "long-short", "long-long"] {
        let r = d
            .client(SUBMIT)
            .post_json(
                "/v1/requests",
                &json!({"kind": kind, "input": {"a": 1, "b": 2}}),
            )
            .expect("submit");
        assert_eq!(r.status, 202, "{kind}: {}", r.text());
        let body = r.json();
        assert_eq!(body["outcome"], "pending_approval", "{kind}: {body}");
    }
    let held: Vec<String> = d
        .audit()
        .iter()
        .filter(|e| e["entry"]["outcome"] == "pending_approval")
        .map(|e| {
            e["entry"]["function"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(held, vec![LONG; 4], "audited under the canonical identity");
}
