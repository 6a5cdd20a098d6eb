//! The `warden` command line: run, inspect, policy check/init, new.

use crate::support::*;

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// `warden run` for unsigned test guests, with a scratch data directory.
fn run(args: &[&str]) -> (i32, String, String) {
    let data = scratch("run-data");
    let mut all: Vec<&str> = vec!["run"];
    all.extend_from_slice(args);
    let d = s(&data);
    all.extend_from_slice(&["--allow-unsigned", "--data-dir", &d]);
    warden(&all)
}

#[test]
fn run_prints_output_and_usage_and_exits_zero() {
    let policy = repo().join("policies/echo.toml");
    let (code, out, err) = run(&[
        &s(&guest("echo")),
        "--policy",
        &s(&policy),
        "--call",
        "echo",
        "--input",
        r#"{"message":"cli"}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "\"cli\"");
    assert!(
        err.contains("outcome: ok") && err.contains("fuel:"),
        "{err}"
    );
}

#[test]
fn run_exit_codes_follow_the_outcome_class() {
    let dir = scratch("exit-codes");
    let policy = dir.join("spin.toml");
    std::fs::write(
        &policy,
        "[capability]\nname = \"spin-loop\"\ncomponent = \"spin_loop.wasm\"\n[budget]\nfuel = 1_000_000\n",
    )
    .expect("write");
    let (code, _, err) = run(&[
        &s(&guest("spin-loop")),
        "-p",
        &s(&policy),
        "-c",
        "spin",
        "-i",
        r#"{"n":1}"#,
    ]);
    assert_eq!(code, 16, "budget_exhausted is 16: {err}");
    assert!(err.contains("budget_exhausted:fuel"), "{err}");
    assert!(
        err.contains("fuel budget of 1000000 exhausted") && !err.contains("Limit("),
        "the budget as a policy writes it, never a Rust debug form: {err}"
    );
    let (code, _, err) = run(&[
        &s(&guest("spin-loop")),
        "-p",
        &s(&policy),
        "-c",
        "spin",
        "-i",
        r#"{"n":"x"}"#,
    ]);
    assert_eq!(code, 10, "invalid_input is 10: {err}");
}

#[test]
fn run_refuses_a_component_with_ungranted_imports_with_exit_two() {
    let (code, _, err) = run(&[
        &s(&guest("panicker")),
        "-p",
        &s(&repo().join("policies/echo.toml")),
        "-c",
        "boom",
        "-i",
        "{}",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("wasi:cli/stderr") && err.contains("policies/echo.toml"),
        "{err}"
    );
}

#[test]
fn inspect_lists_imports_as_granted_or_refused_and_exports_with_schemas() {
    let (code, out, err) = warden(&[
        "inspect",
        &s(&guest("pii-redact")),
        "--policy",
        &s(&repo().join("policies/pii-redact.toml")),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(
        v["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    let imports = v["imports"].as_array().expect("imports");
    assert!(
        imports
            .iter()
            .any(|i| i["name"] == "warden:host/log@0.1.0" && i["status"] == "granted"),
        "{out}"
    );
    let redact = &v["exports"][0];
    assert_eq!(redact["id"], "redact");
    assert_eq!(
        redact["input_schema"]["properties"]["text"]["type"],
        "string"
    );

    // Against a policy that grants nothing, every import shows as refused and the exit code is 3.
    let (code, out, _) = warden(&[
        "inspect",
        &s(&guest("pii-redact")),
        "--policy",
        &s(&repo().join("policies/echo.toml")),
    ]);
    assert_eq!(code, 3);
    assert!(
        out.contains("refused          warden:host/log@0.1.0"),
        "{out}"
    );
}

#[test]
fn inspect_shows_a_reviewer_budgets_rules_pins_and_payloads_beside_the_grants() {
    let dir = scratch("inspect-review");
    let policy = dir.join("pii.toml");
    let text = std::fs::read_to_string(repo().join("policies/pii-redact.toml")).expect("policy");
    let text = text.replace("[budget]", "[[approval]]\nfunction = \"redact\"\nmode = \"dual\"\nwhen = 'input.text == \"x\"'\n\n[budget]");
    std::fs::write(&policy, text).expect("write");
    let (code, out, err) = warden(&["inspect", &s(&guest("pii-redact")), "--policy", &s(&policy)]);
    assert_eq!(code, 0, "{err}");
    for expected in [
        "pins       digest not pinned; signers dev",
        "payloads   full",
        "budget     fuel 1000000000, memory 64MiB, wall time 5s",
        "approval   #1 redact dual when input.text == \"x\"; expires 86400s; approvers anyone with the approve role",
        "granted          warden:host/log@0.1.0  <- warden:host/log",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn inspect_without_a_policy_exits_3_for_an_import_no_policy_can_grant() {
    let (code, out, _) = warden(&["inspect", &s(&guest("socket-user"))]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("never grantable  wasi:sockets/tcp@"), "{out}");
    assert!(out.contains("raw sockets"), "the reason is shown: {out}");
}

#[test]
fn a_grant_no_import_uses_is_a_warning_and_fails_with_deny_warnings() {
    let dir = scratch("unused-grant");
    let policy = dir.join("pii.toml");
    let text = std::fs::read_to_string(repo().join("policies/pii-redact.toml")).expect("policy");
    let text = text.replace(
        "[budget]",
        "\"warden:host/kv\" = {}\n\"wasi:clocks/wall-clock\" = { mode = \"system\" }\n\n[budget]",
    );
    std::fs::write(&policy, text).expect("write");
    let component = s(&guest("pii-redact"));
    let (code, _, err) = warden(&["policy", "check", &s(&policy), &component]);
    assert_eq!(code, 0, "a warning alone passes: {err}");
    assert!(
        err.contains(
            "warning: `warden:host/kv` is granted but the component imports nothing it covers"
        ),
        "{err}"
    );
    assert!(err.contains("`wasi:clocks/wall-clock` is granted"), "{err}");
    let (code, _, err) = warden(&[
        "policy",
        "check",
        &s(&policy),
        &component,
        "--deny-warnings",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2 warning(s)"), "{err}");
    let (code, out, _) = warden(&["inspect", &component, "--policy", &s(&policy)]);
    assert_eq!(code, 0);
    assert!(
        out.contains("warning: `warden:host/kv` is granted"),
        "{out}"
    );
    let (code, _, _) = warden(&[
        "inspect",
        &component,
        "--policy",
        &s(&policy),
        "--deny-warnings",
    ]);
    assert_eq!(code, 3);
}

#[test]
fn policy_check_reports_every_problem_with_file_and_line() {
    let dir = scratch("policy-check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[capability]\nname = \"x\"\ncomponent = \"x.wasm\"\n[imports]\n\"wasi:sockets/tcp\" = {}\n\"wasi:clocks/wall-clock\" = { mode = \"fast\" }\n",
    )
    .expect("write");
    let (code, _, err) = warden(&["policy", "check", &s(&bad)]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("bad.toml:6:"), "{err}");
    assert!(err.contains("2 problem(s)"), "{err}");
}

#[test]
fn policy_init_writes_a_policy_that_policy_check_accepts_for_that_component() {
    let dir = scratch("policy-init");
    let out = dir.join("pii.toml");
    let component = s(&guest("pii-redact"));
    let (code, _, err) = warden(&["policy", "init", &component, "-o", &s(&out)]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(text.contains("\"warden:host/log\" = {}"), "{text}");
    let (code, stdout, err) = warden(&["policy", "check", &s(&out), &component]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("grants every import"), "{stdout}");
    // It never overwrites.
    let (code, _, _) = warden(&["policy", "init", &component, "-o", &s(&out)]);
    assert_eq!(code, 2);
}

#[test]
fn policy_init_marks_imports_that_can_never_be_granted() {
    let (code, out, err) = warden(&["policy", "init", &s(&guest("socket-user"))]);
    assert_eq!(code, 3);
    assert!(
        out.contains("# NOT GRANTABLE") && err.contains("wasi:sockets/tcp"),
        "{out}\n{err}"
    );
}

#[test]
fn new_scaffolds_a_capability_and_refuses_bad_names_and_existing_dirs() {
    let dir = scratch("new");
    let target = dir.join("fx-rate");
    let (code, out, err) = warden(&["new", "fx-rate", "--dir", &s(&target)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("policy.toml"), "{out}");
    // The printed next step runs without a trust store.
    assert!(out.contains("--allow-unsigned"), "{out}");
    let policy = target.join("policy.toml");
    let (code, _, err) = warden(&["policy", "check", &s(&policy)]);
    assert_eq!(code, 0, "scaffolded policy is valid: {err}");
    assert!(target.join("src/lib.rs").exists() && target.join("wit/world.wit").exists());
    let (code, _, _) = warden(&["new", "fx-rate", "--dir", &s(&target)]);
    assert_ne!(code, 0, "refuses a non-empty directory");
    let (code, _, err) = warden(&["new", "Bad_Name", "--dir", &s(&dir.join("b"))]);
    assert_ne!(code, 0);
    assert!(err.contains("Bad_Name"), "{err}");
}
