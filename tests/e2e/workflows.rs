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
