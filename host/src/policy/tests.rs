use super::*;

fn parse(text: &str) -> Result<Policy, PolicyErrors> {
    Policy::parse(Path::new("policies/test.toml"), text)
}

const GOOD: &str = r#"
[capability]
name = "fx-rate"
component = "fx_rate.wasm"
signers = ["payments-team"]

[imports]
"wasi:io/streams" = {}
"wasi:clocks/wall-clock" = { mode = "system" }
"wasi:random/random@0.2" = {}
"warden:host/log" = { max_lines = 5 }

[budget]
fuel = 50_000_000
memory = "32MiB"
wall_time = "500ms"
max_output = "64KiB"
"#;

#[test]
fn a_complete_policy_parses_with_its_settings() {
    let p = parse(GOOD).expect("valid");
    assert_eq!(p.capability.name, "fx-rate");
    assert_eq!(p.budget.fuel, Fuel::Limit(50_000_000));
    assert_eq!(p.budget.memory, ByteSize(32 << 20));
    assert_eq!(p.budget.wall_time.get(), Duration::from_millis(500));
    assert_eq!(p.budget.max_stdout, ByteSize(64 << 10), "default filled in");
    assert_eq!(p.imports.len(), 4);
    assert!(!p.is_replayable(), "system clock makes it non-replayable");
    let log = p
        .grants(&InterfaceName::parse("warden:host/log@0.1.0").expect("name"))
        .expect("granted");
    assert_eq!(
        log.kind,
        GrantKind::Log(LogLimits {
            max_lines: 5,
            max_bytes: ByteSize(16 << 10)
        })
    );
}

#[test]
fn ungranted_imports_are_not_covered() {
    let p = parse(GOOD).expect("valid");
    for name in [
        "wasi:io/poll@0.2.6",
        "wasi:random/random@0.3.0",
        "wasi:cli/stdout@0.2.6",
    ] {
        assert!(
            p.grants(&InterfaceName::parse(name).expect("name"))
                .is_none(),
            "{name}"
        );
    }
}

#[test]
fn unknown_fields_are_errors_with_file_and_line() {
    let text = "[capability]\nname = \"a\"\ncomponent = \"a.wasm\"\ncolour = \"blue\"\n";
    let err = parse(text).expect_err("unknown field");
    let e = &err.0[0];
    assert_eq!(e.line, Some(4), "{err}");
    assert!(
        err.to_string().starts_with("policies/test.toml:4:"),
        "{err}"
    );
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn unknown_budget_field_is_an_error() {
    let text = "[capability]\nname = \"a\"\ncomponent = \"a.wasm\"\n[budget]\nfule = 5\n";
    let err = parse(text).expect_err("typo");
    assert_eq!(err.0[0].line, Some(5), "{err}");
}

#[test]
fn bad_values_are_errors_with_their_line() {
    let text =
        "[capability]\nname = \"a\"\ncomponent = \"a.wasm\"\n[budget]\nmemory = \"12 parsecs\"\n";
    let err = parse(text).expect_err("bad size");
    assert_eq!(err.0[0].line, Some(5), "{err}");
    assert!(err.to_string().contains("12 parsecs"), "{err}");
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = r#"[capability]
name = "Bad_Name"
component = "a.wasm"
digest = "md5:abc"
[imports]
"wasi:sockets/tcp" = {}
"not an interface" = {}
"wasi:clocks/wall-clock" = { mode = "warp" }
"#;
    let err = parse(text).expect_err("many problems");
    let lines: Vec<Option<usize>> = err.0.iter().map(|e| e.line).collect();
    assert_eq!(err.0.len(), 5, "{err}");
    for l in [2, 4, 6, 7, 8] {
        assert!(lines.contains(&Some(l)), "line {l} missing in {err}");
    }
}

#[test]
fn fuel_can_be_turned_off_but_not_zero() {
    let base = "[capability]\nname = \"a\"\ncomponent = \"a.wasm\"\n[budget]\n";
    let p = parse(&format!("{base}fuel = \"off\"\n")).expect("off");
    assert_eq!(p.budget.fuel, Fuel::Off);
    assert!(parse(&format!("{base}fuel = 0\n")).is_err());
    assert!(parse(&format!("{base}fuel = \"lots\"\n")).is_err());
}

#[test]
fn granting_the_same_interface_twice_is_an_error() {
    let text = "[capability]\nname = \"a\"\ncomponent = \"a.wasm\"\n[imports]\n\"wasi:io/poll\" = {}\n\"wasi:io/poll@0.2\" = {}\n";
    let err = parse(text).expect_err("duplicate");
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn policy_hash_is_stable_and_changes_with_any_setting() {
    let a = parse(GOOD).expect("valid");
    let b = parse(GOOD).expect("valid");
    assert_eq!(a.hash(), b.hash());
    let c = parse(&GOOD.replace("50_000_000", "50_000_001")).expect("valid");
    assert_ne!(a.hash(), c.hash());
    assert!(a.hash().starts_with("sha256:"));
}

#[test]
fn kebab_names() {
    for ok in ["echo", "pii-redact", "a1-b2"] {
        assert!(is_kebab_name(ok), "{ok}");
    }
    for bad in ["", "Echo", "1echo", "pii_redact", "a--b", "a-"] {
        assert!(!is_kebab_name(bad), "{bad}");
    }
}

#[test]
fn approval_rules_are_parsed_in_order_and_enter_the_policy_hash() {
    let base = "[capability]\nname = \"refund\"\ncomponent = \"refund.wasm\"\n";
    let with_rules = format!(
        "{base}\n[[approval]]\nfunction = \"refund\"\nwhen = \"input.amount > 100\"\nmode = \"dual\"\nexpires = \"2h\"\napprovers = [\"group:finance\"]\n\n[[approval]]\nfunction = \"*\"\nmode = \"none\"\n"
    );
    let p = Policy::parse(Path::new("refund.toml"), &with_rules).expect("valid");
    assert_eq!(p.approvals.len(), 2);
    assert_eq!(p.approvals[0].mode, crate::policy::approval::Mode::Dual);
    assert_eq!(p.approvals[0].expires, std::time::Duration::from_secs(7200));
    let need = p
        .approval_for(
            &crate::policy::FunctionId::from_export_id("refund"),
            &serde_json::json!({"amount": 101}),
        )
        .expect("gated");
    assert_eq!(
        (need.rule, need.mode),
        (1, crate::policy::approval::Mode::Dual)
    );
    assert_eq!(
        p.approval_for(
            &crate::policy::FunctionId::from_export_id("refund"),
            &serde_json::json!({"amount": 100})
        ),
        None
    );
    let plain = Policy::parse(Path::new("refund.toml"), base).expect("valid");
    assert_ne!(p.hash(), plain.hash(), "rules are part of the policy hash");
    assert!(p.effective()["approval"][0]["when"] == "input.amount > 100");
}

#[test]
fn approval_rule_errors_point_at_their_own_rule() {
    let text = "[capability]\nname = \"refund\"\ncomponent = \"refund.wasm\"\n\n[[approval]]\nfunction = \"refund\"\nwhen = \"input.amount > 1\"\nmode = \"single\"\n\n[[approval]]\nfunction = \"refund\"\nwhen = \"input.amount >\"\nmode = \"single\"\n\n[[approval]]\nfunction = \"refund\"\nmode = \"sometimes\"\n";
    let errors = Policy::parse(Path::new("refund.toml"), text).expect_err("invalid");
    let shown = errors.to_string();
    // The unknown mode is a TOML-level error with its line.
    assert!(shown.contains("refund.toml:17"), "{shown}");
    let text = text.replace(
        "mode = \"sometimes\"",
        "mode = \"none\"\napprovers = [\"x\"]",
    );
    let errors = Policy::parse(Path::new("refund.toml"), &text).expect_err("invalid");
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("refund.toml:12:") && lines[0].contains("does not parse"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("refund.toml:18:") && lines[1].contains("takes no `approvers`"),
        "{lines:?}"
    );
}

/// Policy text assembled from real keys and extreme values, so the parser
/// and validator see mostly-valid input.
fn policy_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let value = prop_oneof![
        Just("\"64KiB\""),
        Just("\"18446744073709551615GiB\""),
        Just("\"36501d\""),
        Just("\"0ms\""),
        Just("\"500ms\""),
        Just("0"),
        Just("-1"),
        Just("18446744073709551615"),
        Just("\"off\""),
        Just("\"system\""),
        Just("\"read-write\""),
        Just("[]"),
        Just("[\"https://x.example.com\", \"http://[::1]:99999\"]"),
        Just("{}"),
        Just("{ max_bytes = \"1B\", max_lines = 4294967295 }"),
        Just(
            "{ dirs = [{ host = \"/tmp\", guest = \"/t\", mode = \"read-write\", max_write_bytes = \"1GiB\" }] }"
        ),
        Just("{ allow = [\"https://a.example\"], timeout = \"10000000000000000d\" }"),
        Just("\"calc#add\""),
        Just("\"input.amount > 1e400\""),
    ];
    let line = prop_oneof![
        Just("[capability]\nname = \"p\"\ncomponent = \"p.wasm\"\n".to_string()),
        Just("[imports]\n".to_string()),
        Just("[budget]\n".to_string()),
        Just("[[approval]]\nfunction = \"*\"\nmode = \"single\"\n".to_string()),
        Just("[retry]\n".to_string()),
        (
            prop_oneof![
                Just("fuel"),
                Just("memory"),
                Just("wall_time"),
                Just("max_output"),
                Just("max_stdout"),
                Just("table_elements"),
                Just("\"warden:host/log\""),
                Just("\"warden:host/kv\""),
                Just("\"wasi:filesystem/preopens\""),
                Just("\"wasi:http/outgoing-handler\""),
                Just("\"wasi:clocks/wall-clock\""),
                Just("when"),
                Just("expires"),
                Just("payloads"),
                Just("transient"),
            ],
            value,
        )
            .prop_map(|(k, v)| format!("{k} = {v}\n")),
    ];
    proptest::collection::vec(line, 0..12).prop_map(|l| l.concat())
}

proptest::proptest! {
    /// Any text parses to a policy or to errors that name a line; no panic.
    #[test]
    fn any_policy_text_parses_or_is_refused_without_a_panic(text in policy_text()) {
        if let Ok(p) = parse(&text) {
            let _ = p.hash();
            let _ = p.effective();
        }
    }

    /// Arbitrary bytes as a policy never panic the parser.
    #[test]
    fn arbitrary_text_never_panics_the_policy_parser(text in ".{0,200}") {
        let _ = parse(&text);
    }
}

#[test]
fn fuel_is_shown_as_a_policy_writes_it() {
    assert_eq!(Fuel::Limit(100).to_string(), "100");
    assert_eq!(Fuel::Off.to_string(), "off");
}

/// (line, column) of every problem, in order.
fn places(err: &PolicyErrors) -> Vec<(Option<usize>, Option<usize>)> {
    err.0.iter().map(|e| (e.line, e.column)).collect()
}

#[test]
fn errors_point_at_the_key_or_the_value_at_fault_by_line_and_column() {
    let text = "[capability]\nname = \"Bad_Name\"\ncomponent = \"a.wasm\"\ndigest   =   \"md5:abc\"\n[imports]\n\"not an interface\" = {}\n  'wasi:clocks/wall-clock' = { mode = \"warp\" }\n";
    let err = parse(text).expect_err("problems");
    // The name's key; the digest's contents (inside the quotes); each
    // import's key, quotes included, wherever it starts on its line.
    assert_eq!(
        places(&err),
        vec![
            (Some(2), Some(1)),
            (Some(4), Some(15)),
            (Some(6), Some(1)),
            (Some(7), Some(3)),
        ],
        "{err}"
    );
}

#[test]
fn error_positions_are_not_moved_by_earlier_mentions_of_the_same_text() {
    // Before spans, each position was the first `text.find` of a word: a
    // comment mentioning `name` or the digest, or an approver's name, moved
    // the error to that comment's line.
    let text = "# name: kebab-case; digest md5:abc is refused; Bad Name is no principal\n[capability]\nname = \"Bad_Name\"\ncomponent = \"a.wasm\"\ndigest = \"md5:abc\"\n\n[[approval]]\nfunction = \"refund\"\n# Bad Name again\nmode = \"single\"\napprovers = [\"ok\", \"Bad Name\"]\n";
    let err = parse(text).expect_err("problems");
    assert_eq!(
        places(&err),
        vec![
            (Some(3), Some(1)),
            (Some(5), Some(11)),
            (Some(11), Some(21))
        ],
        "{err}"
    );
}

#[test]
fn approval_rule_errors_point_at_the_when_text_and_at_setting_keys() {
    let text = "[capability]\nname = \"refund\"\ncomponent = \"refund.wasm\"\n\n[[approval]]\nfunction = \"\"\nwhen = \"input.amount >\"\nmode = \"none\"\nexpires = \"0s\"\napprovers = [\"x\"]\n";
    let errors = Policy::parse(Path::new("bad.toml"), text).expect_err("invalid");
    let shown: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        places(&errors),
        vec![
            (Some(6), Some(1)),
            (Some(7), Some(9)),
            (Some(9), Some(1)),
            (Some(10), Some(1)),
        ],
        "{shown:?}"
    );
    // The `when` column plus the parser's character lands on the fault
    // (docs/approvals.md shows `bad.toml:7:9: ... at character 21`).
    assert!(
        shown[1].starts_with("bad.toml:7:9: approval `when` does not parse at character"),
        "{shown:?}"
    );
}

#[test]
fn misspelt_keys_and_mistyped_values_are_all_reported_in_one_run() {
    let text = "[capability]\nname = \"a\"\ncomponent = \"a.wasm\"\ncolour = \"red\"\n\
                [budget]\nfule = 5\nwall_time = 1\nmemory = true\n";
    let err = parse(text).expect_err("four problems");
    let lines: Vec<Option<usize>> = err.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(4), Some(6), Some(7), Some(8)], "{err}");
    let text = err.to_string();
    assert!(text.contains("did you mean `fuel`?"), "{text}");
    assert!(
        text.contains("`budget.wall_time` must be a duration: a string with a unit"),
        "{text}"
    );
    assert!(
        !text.contains("invalid type"),
        "serde's wording leaked: {text}"
    );
}

#[test]
fn a_duplicate_key_in_a_policy_names_the_key() {
    let err = parse("[capability]\nname = \"a\"\nname = \"b\"\ncomponent = \"a.wasm\"\n")
        .expect_err("duplicate");
    assert!(err.to_string().contains("duplicate key `name`"), "{err}");
}

#[test]
fn shape_matches_the_documented_policy_examples() {
    // Every complete example in docs/policy.md and docs/approvals.md passes
    // the shape walk: a key the loader accepts is never called unknown.
    for doc in ["policy.md", "approvals.md"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(doc);
        let text = std::fs::read_to_string(&path).expect("docs readable");
        for block in text.split("```toml\n").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            let problems = toml_shape::check(block, SHAPE);
            assert!(problems.is_empty(), "{doc}: {problems:?}\n{block}");
        }
    }
}
