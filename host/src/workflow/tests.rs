//! Plan parsing and the static checker, on plain text and hand-written
//! schemas: one test per problem `warden workflow check` refuses.

use super::check::{Catalog, FunctionSig, Lookup, check};
use super::plan::Plan;
use super::render;
use serde_json::{Value, json};
use std::path::Path;

/// A catalog of two capabilities with hand-written schemas (the same shape
/// `component::schema` derives from WIT).
struct TestCatalog;

fn u32_schema() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 4294967295u64})
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

impl Catalog for TestCatalog {
    fn lookup(&self, capability: &str, function: &str) -> Lookup {
        let sig = |id: &str, input: Value, output: Value| {
            Lookup::Found(FunctionSig {
                id: id.into(),
                signature: format!("func({id})"),
                input,
                output,
            })
        };
        match (capability, function) {
            ("stock", "reserve") => sig(
                "reserve",
                object(
                    json!({"sku": {"type": "string"}, "qty": u32_schema()}),
                    &["sku", "qty"],
                ),
                object(json!({"reservation": {"type": "string"}}), &["reservation"]),
            ),
            ("stock", "release") => sig(
                "release",
                object(json!({"reservation": {"type": "string"}}), &["reservation"]),
                json!({"type": "null"}),
            ),
            ("risk", "score") => sig(
                "score",
                object(json!({"amount": u32_schema()}), &["amount"]),
                object(json!({"risk": {"type": "number"}}), &["risk"]),
            ),
            ("pay", "charge") => sig(
                "charge",
                object(
                    json!({"amount": u32_schema(), "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}}),
                    &["amount"],
                ),
                object(json!({"receipt": {"type": "string"}}), &["receipt"]),
            ),
            ("stock" | "risk" | "pay", _) => Lookup::NoFunction {
                exports: vec!["reserve".into(), "release".into()],
            },
            _ => Lookup::NoCapability {
                known: vec!["pay".into(), "risk".into(), "stock".into()],
            },
        }
    }
}

const HEADER: &str = r#"
[input]
type = "object"
required = ["sku", "amount"]
[input.properties]
sku = { type = "string" }
amount = { type = "integer", minimum = 0 }
"#;

/// The order plan every test starts from; it checks clean.
const GOOD: &str = r#"
[[step]]
id = "reserve"
call = "stock.reserve"
input = { sku = "${input.sku}", qty = 1 }
compensate = { call = "stock.release", input = { reservation = "${steps.reserve.output.reservation}" } }

[[step]]
id = "score"
call = "risk.score"
input = { amount = "${input.amount}" }
compensate = "none"

[[step]]
id = "approve"
needs = ["score"]
when = "steps.score.output.risk > 0.5"
approval = { mode = "dual", approvers = ["group:finance"], expires = "4h" }

[[step]]
id = "charge"
needs = ["reserve", "approve"]
call = "pay.charge"
input = { amount = "${input.amount}", note = "sku ${input.sku}" }
pivot = true

[[step]]
id = "notify"
needs = ["charge"]
call = "risk.score"
input = { amount = "${input.amount}" }
"#;

fn parse(steps: &str) -> Result<Plan, String> {
    Plan::parse(
        Path::new("workflows/order.toml"),
        &format!("{HEADER}{steps}"),
    )
    .map_err(|e| e.to_string())
}

/// Every problem `check` reports for a plan (parse problems included).
fn problems(steps: &str) -> String {
    match parse(steps) {
        Err(e) => e,
        Ok(plan) => match check(&plan, Some(&TestCatalog)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        },
    }
}

fn assert_refused(steps: &str, needle: &str) -> String {
    let out = problems(steps);
    assert!(
        out.contains(needle),
        "expected a problem containing {needle:?}, got:\n{out}"
    );
    assert!(out.starts_with("workflows/order.toml:"), "{out}");
    out
}

fn line_of(steps: &str, needle: &str) -> usize {
    let text = format!("{HEADER}{steps}");
    let at = text.find(needle).expect("needle in plan");
    text[..at].matches('\n').count() + 1
}

#[test]
fn the_order_plan_checks_clean_and_orders_steps_after_their_needs() {
    let plan = parse(GOOD).expect("parses");
    let checked = check(&plan, Some(&TestCatalog)).expect("checks");
    let ids: Vec<&str> = checked
        .order
        .iter()
        .map(|&i| plan.steps[i].id.as_str())
        .collect();
    assert_eq!(ids, ["reserve", "score", "approve", "charge", "notify"]);
    assert!(checked.typed);
    assert_eq!(plan.name.as_str(), "order");
}

#[test]
fn the_plan_hash_ignores_layout_and_comments_but_not_meaning() {
    let a = parse(GOOD).expect("parses");
    let b = parse(&format!("# a comment\n{}", GOOD.replace(" = ", "="))).expect("parses");
    assert_eq!(a.hash(), b.hash());
    let c = parse(&GOOD.replace("qty = 1", "qty = 2")).expect("parses");
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn check_reports_every_problem_at_once_each_with_its_line() {
    let plan = GOOD
        .replace(
            "call = \"risk.score\"\ninput = { amount = \"${input.amount}\" }\ncompensate",
            "call = \"risk.nope\"\ninput = { amount = \"${input.amount}\" }\ncompensate",
        )
        .replace("needs = [\"charge\"]", "needs = [\"charge\", \"ghost\"]");
    let out = problems(&plan);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains(&format!(":{}:", line_of(&plan, "risk.nope"))),
        "{out}"
    );
    assert!(
        out.contains(&format!(":{}:", line_of(&plan, "\"ghost\""))),
        "{out}"
    );
}

#[test]
fn a_toml_syntax_error_is_reported_with_its_line() {
    let out = assert_refused("[[step]\nid = 1", "workflows/order.toml:");
    assert!(
        out.contains(&format!(":{}:", line_of("[[step]\nid = 1", "[[step]"))),
        "{out}"
    );
}

#[test]
fn an_unknown_key_is_refused() {
    assert_refused(&GOOD.replace("pivot = true", "pivto = true"), "pivto");
    assert_refused(&format!("{GOOD}\n[extra]\nx = 1\n"), "unknown key `extra`");
}

#[test]
fn a_plan_without_a_declared_input_is_refused() {
    let out = Plan::parse(Path::new("order.toml"), GOOD).expect_err("no input");
    assert!(
        out.to_string().contains("declares no `[input]` type"),
        "{out}"
    );
}

#[test]
fn an_unsupported_input_schema_keyword_is_refused() {
    let text = format!(
        "{}{GOOD}",
        HEADER.replace(
            "type = \"object\"\n",
            "type = \"object\"\npattern = \"^a\"\n"
        )
    );
    let out = Plan::parse(Path::new("order.toml"), &text).expect_err("pattern");
    assert!(
        out.to_string()
            .contains("keyword `pattern` is not supported"),
        "{out}"
    );
}

#[test]
fn a_bad_step_id_is_refused() {
    assert_refused(
        &GOOD.replace("id = \"score\"", "id = \"Score-1\""),
        "step id `Score-1`",
    );
}

#[test]
fn a_duplicate_step_id_is_refused_naming_the_first() {
    let plan = GOOD.replace("id = \"notify\"", "id = \"score\"");
    assert_refused(
        &plan,
        &format!(
            "duplicate step id `score` (first defined at line {})",
            line_of(&plan, "id = \"score\"")
        ),
    );
}

#[test]
fn a_call_that_is_not_capability_dot_function_is_refused() {
    assert_refused(
        &GOOD.replace("\"pay.charge\"", "\"charge\""),
        "must be `capability.function`",
    );
}

#[test]
fn a_step_with_neither_or_both_call_and_approval_is_refused() {
    assert_refused(
        &GOOD.replace("call = \"pay.charge\"\n", ""),
        "step `charge` has neither",
    );
    assert_refused(
        &GOOD.replace("approval = {", "call = \"pay.charge\"\napproval = {"),
        "has both `call` and `approval`",
    );
}

#[test]
fn a_second_pivot_is_refused() {
    assert_refused(
        &GOOD.replace("id = \"notify\"", "id = \"notify\"\npivot = true"),
        "second pivot",
    );
}

#[test]
fn a_malformed_template_is_refused_at_its_line() {
    let plan = GOOD.replace("${input.sku}\", qty", "${input.sku\", qty");
    let out = assert_refused(&plan, "without a closing `}`");
    assert!(
        out.contains(&format!(":{}:", line_of(&plan, "${input.sku\""))),
        "{out}"
    );
}

#[test]
fn a_when_that_does_not_parse_is_refused() {
    assert_refused(
        &GOOD.replace("risk > 0.5", "risk >> 0.5"),
        "`when` does not parse",
    );
}

#[test]
fn a_need_that_names_no_step_is_refused() {
    assert_refused(
        &GOOD.replace("needs = [\"charge\"]", "needs = [\"charg\"]"),
        "needs `charg`, which is not a step of this plan",
    );
}

#[test]
fn a_cycle_is_refused_naming_its_steps() {
    let plan = GOOD.replace(
        "id = \"reserve\"\ncall",
        "id = \"reserve\"\nneeds = [\"notify\"]\ncall",
    );
    let out = assert_refused(&plan, "cycle in `needs`");
    assert!(
        out.contains("`reserve` needs `notify` needs `charge` needs `reserve`"),
        "{out}"
    );
}

#[test]
fn a_step_behind_a_cycle_is_unreachable() {
    let plan = format!(
        "{GOOD}\n[[step]]\nid = \"a\"\nneeds = [\"b\"]\ncall = \"risk.score\"\ninput = {{ amount = 1 }}\n\n[[step]]\nid = \"b\"\nneeds = [\"a\"]\ncall = \"risk.score\"\ninput = {{ amount = 1 }}\n\n[[step]]\nid = \"c\"\nneeds = [\"b\"]\ncall = \"risk.score\"\ninput = {{ amount = 1 }}\n"
    );
    let out = assert_refused(&plan, "step `c` is unreachable: it needs `b`");
    assert_eq!(out.matches("cycle in `needs`").count(), 1, "{out}");
}

#[test]
fn a_step_whose_when_is_never_true_is_unreachable() {
    assert_refused(
        &GOOD.replace(
            "when = \"steps.score.output.risk > 0.5\"",
            "when = \"1 > 2\"",
        ),
        "step `approve` is unreachable: its `when` (1 > 2) is never true",
    );
}

#[test]
fn an_unknown_capability_is_refused() {
    assert_refused(
        &GOOD.replace("\"pay.charge\"", "\"bank.charge\""),
        "no capability `bank` is loaded (loaded: pay, risk, stock)",
    );
}

#[test]
fn an_unknown_function_is_refused_listing_the_exports() {
    assert_refused(
        &GOOD.replace("\"stock.reserve\"", "\"stock.reserv\""),
        "`stock` exports no function `reserv` (it exports reserve, release)",
    );
}

#[test]
fn an_unknown_compensation_function_is_refused() {
    assert_refused(
        &GOOD.replace("\"stock.release\"", "\"stock.unreserve\""),
        "step `reserve` is compensated by `stock.unreserve`, but `stock` exports no function `unreserve`",
    );
}

#[test]
fn an_input_path_that_cannot_exist_is_refused() {
    let plan = GOOD.replace("${input.sku}\", qty", "${input.skew}\", qty");
    let out = assert_refused(
        &plan,
        "`${input.skew}` cannot exist: `input` has no field `skew` (it has `amount`, `sku`)",
    );
    assert!(
        out.contains(&format!(":{}:", line_of(&plan, "input.skew"))),
        "{out}"
    );
}

#[test]
fn a_step_output_path_that_cannot_exist_is_refused() {
    assert_refused(
        &GOOD.replace(
            "${steps.reserve.output.reservation}",
            "${steps.reserve.output.id}",
        ),
        "`steps.reserve.output` has no field `id` (it has `reservation`)",
    );
}

#[test]
fn reading_a_step_that_is_not_needed_is_refused() {
    assert_refused(
        &GOOD.replace(
            "input = { amount = \"${input.amount}\" }\ncompensate = \"none\"",
            "input = { amount = \"${steps.reserve.output.reservation}\" }\ncompensate = \"none\"",
        ),
        "cannot exist when this step runs: it does not need `reserve`",
    );
}

#[test]
fn a_when_path_that_cannot_exist_is_refused() {
    assert_refused(
        &GOOD.replace(
            "steps.score.output.risk > 0.5",
            "steps.score.output.danger > 0.5",
        ),
        "`when` reads `steps.score.output.danger`, which cannot exist",
    );
}

#[test]
fn a_template_whose_type_cannot_match_the_wit_parameter_is_refused() {
    let plan = GOOD.replace(
        "input = { amount = \"${input.amount}\", note",
        "input = { amount = \"${input.sku}\", note",
    );
    let out = assert_refused(
        &plan,
        "step `charge`: the input cannot match `pay.charge` (func(charge)): input.amount: gives a string, but an integer is wanted",
    );
    assert!(
        out.contains(&format!(
            ":{}:",
            line_of(&plan, "amount = \"${input.sku}\"")
        )),
        "{out}"
    );
}

#[test]
fn a_literal_outside_the_wit_range_is_refused() {
    assert_refused(&GOOD.replace("qty = 1", "qty = -1"), "input.qty: gives -1");
}

#[test]
fn a_missing_or_unknown_parameter_is_refused() {
    assert_refused(
        &GOOD.replace(
            "input = { sku = \"${input.sku}\", qty = 1 }",
            "input = { sku = \"${input.sku}\" }",
        ),
        "the required field `qty` is never set",
    );
    assert_refused(
        &GOOD.replace("qty = 1 }", "qty = 1, colour = \"red\" }"),
        "there is no field `colour` to set",
    );
}

#[test]
fn a_step_before_the_pivot_without_a_compensation_is_refused() {
    assert_refused(
        &GOOD.replace("compensate = \"none\"\n", ""),
        "step `score` can finish before the pivot `charge` and declares no compensation",
    );
}

#[test]
fn a_compensation_after_the_pivot_is_refused_as_never_running() {
    assert_refused(
        &GOOD.replace(
            "pivot = true",
            "pivot = true\ncompensate = { call = \"stock.release\", input = { reservation = \"x\" } }",
        ),
        "step `charge` runs at or after the pivot, so its compensation never runs",
    );
}

#[test]
fn an_approval_step_with_mode_none_or_a_bad_approver_is_refused() {
    assert_refused(
        &GOOD.replace("mode = \"dual\"", "mode = \"none\""),
        "mode is \"single\" or \"dual\"",
    );
    assert_refused(
        &GOOD.replace("\"group:finance\"", "\"group:\""),
        "step `approve`:",
    );
}

#[test]
fn a_step_timeout_of_zero_over_an_hour_or_on_an_approval_is_refused() {
    let timed = |t: &str| GOOD.replace("pivot = true", &format!("pivot = true\ntimeout = \"{t}\""));
    assert_eq!(
        problems(&timed("1h")),
        "",
        "one hour is the limit and allowed"
    );
    let plan = parse(&timed("2s")).expect("parses");
    let charge = plan.steps.iter().find(|s| s.id.as_str() == "charge");
    assert_eq!(
        charge.and_then(|s| s.timeout),
        Some(std::time::Duration::from_secs(2))
    );
    let out = assert_refused(
        &timed("0s"),
        "step `charge`: `timeout` must be longer than 0s",
    );
    assert!(
        out.starts_with(&format!(
            "workflows/order.toml:{}:",
            line_of(&timed("0s"), "\"0s\"")
        )),
        "{out}"
    );
    assert_refused(
        &timed("3601s"),
        "step `charge`: `timeout` of 3601s is over the limit of 1h",
    );
    assert_refused(
        &GOOD.replace("expires = \"4h\" }", "expires = \"4h\" }\ntimeout = \"5s\""),
        "step `approve`: an approval step takes no `timeout`",
    );
}

#[test]
fn without_a_catalog_only_structure_and_input_paths_are_checked() {
    let plan = parse(&GOOD.replace("\"pay.charge\"", "\"bank.charge\"")).expect("parses");
    let checked = check(&plan, None).expect("structure is fine");
    assert!(!checked.typed);
}

#[test]
fn explain_shows_the_hash_and_steps_in_journal_order() {
    let plan = parse(GOOD).expect("parses");
    let checked = check(&plan, Some(&TestCatalog)).expect("checks");
    let text = render::explain(&plan, &checked.order);
    assert!(
        text.contains(&format!("plan hash   {}", plan.hash())),
        "{text}"
    );
    let at = |s: &str| text.find(s).unwrap_or(usize::MAX);
    assert!(at("1. reserve") < at("4. charge  [pivot]"), "{text}");
    assert!(
        text.contains("approval    dual (group:finance), expires in 14400s"),
        "{text}"
    );
}

#[test]
fn graph_is_mermaid_with_one_edge_per_need_and_escaped_labels() {
    let plan = parse(&GOOD.replace(
        "when = \"steps.score.output.risk > 0.5\"",
        "when = 'steps.score.output.risk > 0.5 and input.sku != \"<x>\"'",
    ))
    .expect("parses");
    let g = render::mermaid(&plan);
    assert!(g.starts_with("flowchart TD\n"), "{g}");
    assert!(g.contains("    reserve --> charge\n"), "{g}");
    assert!(g.contains("    approve --> charge\n"), "{g}");
    assert!(g.contains("approve{{\"approve<br/>approval: dual"), "{g}");
    assert!(g.contains("#quot;#lt;x#gt;#quot;"), "{g}");
    assert!(g.contains("class charge pivot"), "{g}");
}
