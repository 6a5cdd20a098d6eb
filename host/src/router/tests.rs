use super::*;
use proptest::prelude::*;

fn parse(text: &str) -> Result<RouteTable, RouteErrors> {
    RouteTable::parse(Path::new("routes.toml"), text)
}

fn table(text: &str) -> RouteTable {
    match parse(text) {
        Ok(t) => t,
        Err(e) => panic!("expected a valid table, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn req(kind: &str, tenant: Option<&str>, attrs: &[(&str, &str)]) -> RouteRequest {
    RouteRequest {
        kind: kind.into(),
        tenant: tenant.map(Into::into),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn routed(t: &RouteTable, r: &RouteRequest) -> Option<String> {
    match t.decide(r) {
        Decision::Route { rule_id, .. } => Some(rule_id),
        Decision::NoRoute => None,
    }
}

const EXAMPLE: &str = r#"# routes
[[route]]
id = "acme-eu-invoices"
match = { kind = "invoice.*", tenant = "acme", attributes = { region = "eu" } }
capability = "invoice-reconcile"
function = "reconcile"

[[route]]
id = "invoices"
match = { kind = "invoice.*" }
capability = "invoice-reconcile"
function = "reconcile"

[[route]]
id = "echo"
match = { kind = "echo" }
capability = "echo"
function = "echo"

[[route]]
id = "redact"
match = { kind = "text.redact" }
capability = "pii-redact"
function = "redact"
"#;

#[test]
fn the_first_matching_rule_wins() {
    let t = table(EXAMPLE);
    let acme_eu = req("invoice.create", Some("acme"), &[("region", "eu")]);
    assert_eq!(routed(&t, &acme_eu).as_deref(), Some("acme-eu-invoices"));
    let acme_us = req("invoice.create", Some("acme"), &[("region", "us")]);
    assert_eq!(routed(&t, &acme_us).as_deref(), Some("invoices"));
    assert_eq!(
        t.decide(&req("echo", None, &[])),
        Decision::Route {
            rule_id: "echo".into(),
            capability: "echo".into(),
            function: "echo".into()
        }
    );
}

#[test]
fn a_request_no_rule_matches_gets_no_route() {
    let t = table(EXAMPLE);
    assert_eq!(
        t.decide(&req("refund.create", None, &[])),
        Decision::NoRoute
    );
    assert_eq!(t.decide(&req("invoice", None, &[])), Decision::NoRoute);
    assert_eq!(t.decide(&req("echo.more", None, &[])), Decision::NoRoute);
}

#[test]
fn an_empty_table_routes_nothing() {
    let t = table("# nothing yet\n");
    assert!(t.rules().is_empty());
    assert_eq!(t.decide(&req("echo", None, &[])), Decision::NoRoute);
}

#[test]
fn a_trailing_star_matches_every_kind_with_that_prefix() {
    let p = KindPattern::parse("invoice.*").expect("pattern");
    assert!(p.matches("invoice.create"));
    assert!(p.matches("invoice.a.b"));
    assert!(!p.matches("invoice"));
    assert!(!p.matches("invoices.create"));
    assert!(!p.matches("refund.invoice.x"));
    let all = KindPattern::parse("*").expect("pattern");
    assert!(all.matches("anything.at.all"));
    let exact = KindPattern::parse("echo").expect("pattern");
    assert!(exact.matches("echo"));
    assert!(!exact.matches("echo2"));
}

#[test]
fn a_star_anywhere_but_last_or_twice_is_refused() {
    for bad in ["in*voice", "*.create", "invoice.**", "**"] {
        assert!(KindPattern::parse(bad).is_err(), "{bad} should be refused");
    }
    let errs = errors(
        "[[route]]\nid = \"a\"\nmatch = { kind = \"in*voice\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("routes.toml:3:18: route `a`: match.kind `in*voice`"));
}

#[test]
fn an_empty_kind_is_refused_with_its_line() {
    let errs = errors(
        "[[route]]\nid = \"a\"\nmatch = { kind = \"\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("routes.toml:3:18: route `a`: match.kind is empty"),
        "{errs:?}"
    );
}

#[test]
fn patterns_cover_what_they_match() {
    let p = |s| KindPattern::parse(s).expect("pattern");
    assert!(p("a.*").covers(&p("a.b")));
    assert!(p("a.*").covers(&p("a.b.*")));
    assert!(p("a.*").covers(&p("a.*")));
    assert!(p("*").covers(&p("x")));
    assert!(p("*").covers(&p("x.*")));
    assert!(p("a.b").covers(&p("a.b")));
    assert!(!p("a.b").covers(&p("a.b.*")));
    assert!(!p("a.b.*").covers(&p("a.*")));
    assert!(!p("a.*").covers(&p("b.c")));
    assert!(!p("a.b").covers(&p("a.c")));
}

#[test]
fn duplicate_ids_are_refused_naming_both_lines() {
    let errs = errors(
        "[[route]]\nid = \"a\"\nmatch = { kind = \"x\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\n\
         [[route]]\nid = \"a\"\nmatch = { kind = \"y\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
    assert_eq!(
        errs,
        vec!["routes.toml:8:6: duplicate route id `a` (first defined at line 2)"]
    );
}

#[test]
fn a_rule_covered_by_an_earlier_one_is_refused_as_shadowed() {
    let errs = errors(
        "[[route]]\nid = \"all-invoices\"\nmatch = { kind = \"invoice.*\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\n\
         [[route]]\nid = \"acme-create\"\nmatch = { kind = \"invoice.create\", tenant = \"acme\", attributes = { region = \"eu\" } }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
    assert_eq!(
        errs,
        vec![
            "routes.toml:8:6: route `acme-create` (line 8) can never match: every request it matches is taken first by route `all-invoices` (line 2)"
        ]
    );
}

#[test]
fn a_narrower_rule_first_does_not_shadow_a_broader_one() {
    // Tenant, attributes and kind each narrow the earlier rule, so the later one still matches something.
    table(
        "[[route]]\nid = \"a\"\nmatch = { kind = \"invoice.*\", tenant = \"acme\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"b\"\nmatch = { kind = \"invoice.*\", attributes = { region = \"eu\" } }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"c\"\nmatch = { kind = \"invoice.create\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"d\"\nmatch = { kind = \"*\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
}

#[test]
fn attributes_and_tenant_that_differ_do_not_shadow() {
    table(
        "[[route]]\nid = \"eu\"\nmatch = { kind = \"x\", attributes = { region = \"eu\" } }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"us\"\nmatch = { kind = \"x\", attributes = { region = \"us\" } }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"acme\"\nmatch = { kind = \"x\", tenant = \"acme\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"globex\"\nmatch = { kind = \"x\", tenant = \"globex\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
}

#[test]
fn unknown_fields_are_refused_with_their_line() {
    let errs = errors(
        "[[route]]\nid = \"a\"\nmatch = { kind = \"x\", tenat = \"acme\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("routes.toml:3:"), "{errs:?}");
    assert!(errs[0].contains("tenat"), "{errs:?}");
    let errs = errors("[[rout]]\nid = \"a\"\n");
    assert!(
        errs[0].starts_with("routes.toml:1:3: unknown key `rout`"),
        "{errs:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(
        "[[route]]\nid = \"bad id\"\nmatch = { kind = \"x\" }\ncapability = \"Echo\"\nfunction = \"\"\n\n\
         [[route]]\nid = \"b\"\nmatch = { kind = \"y\" }\ncapability = \"echo\"\n\n\
         [[route]]\nid = \"c\"\nmatch = { kind = \"a*b\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
    let lines: Vec<&str> = errs
        .iter()
        .map(|e| e.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert_eq!(lines[0], "routes.toml:2:6");
    assert_eq!(lines[1], "routes.toml:4:14");
    assert_eq!(lines[2], "routes.toml:5:12");
    assert!(errs[3].contains("missing field `function`"), "{errs:#?}");
    assert!(lines[3].starts_with("routes.toml:8:"), "{errs:#?}");
    assert_eq!(lines[4], "routes.toml:14:18");
}

#[test]
fn toml_syntax_errors_have_a_line() {
    let errs = errors("[[route]]\nid = \"a\nmatch = 3\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("routes.toml:2:"), "{errs:?}");
}

#[test]
fn explain_says_why_each_earlier_rule_did_not_match() {
    let t = table(EXAMPLE);
    let v = t.explain(&req("invoice.create", Some("globex"), &[]));
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].rule_id, "acme-eu-invoices");
    assert!(!v[0].matched);
    assert_eq!(
        v[0].reason,
        "tenant \"globex\" != \"acme\"; attribute region missing (rule needs \"eu\")"
    );
    assert_eq!(v[1].rule_id, "invoices");
    assert!(v[1].matched);
    assert_eq!(v[1].reason, "kind \"invoice.create\" matches \"invoice.*\"");

    let v = t.explain(&req("refund.create", None, &[("region", "us")]));
    assert_eq!(v.len(), 4);
    assert!(v.iter().all(|v| !v.matched));
    assert_eq!(
        v[0].reason,
        "kind \"refund.create\" does not match \"invoice.*\"; tenant missing (rule needs \"acme\"); attribute region \"us\" != \"eu\""
    );
    assert_eq!(v[2].line, 15);
}

#[test]
fn the_hash_ignores_comments_and_layout_but_not_order() {
    let a = table(EXAMPLE);
    let spaced = EXAMPLE
        .replace("# routes", "# a different comment\n\n")
        .replace(
            "match = { kind = \"echo\" }",
            "match.kind = \"echo\"  # same rule",
        );
    let b = table(&spaced);
    assert_eq!(a.hash(), b.hash());
    assert!(a.hash().starts_with("sha256:"));
    let json = serde_json::to_value(a.rules()).expect("json");
    assert_eq!(a.hash(), crate::digest::json_digest(&json));

    let swapped = table(
        "[[route]]\nid = \"redact\"\nmatch = { kind = \"text.redact\" }\ncapability = \"pii-redact\"\nfunction = \"redact\"\n\
         [[route]]\nid = \"echo\"\nmatch = { kind = \"echo\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    );
    let ordered = table(
        "[[route]]\nid = \"echo\"\nmatch = { kind = \"echo\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"redact\"\nmatch = { kind = \"text.redact\" }\ncapability = \"pii-redact\"\nfunction = \"redact\"\n",
    );
    assert_ne!(swapped.hash(), ordered.hash());
}

#[test]
fn audit_route_records_the_rule_and_the_table_hash() {
    let t = table(EXAMPLE);
    let d = t.decide(&req("echo", None, &[]));
    let a = t.audit_route(&d);
    assert_eq!(a.rule_id, "echo");
    assert_eq!(a.table_hash.to_string(), t.hash());
    assert_eq!(t.audit_route(&Decision::NoRoute).rule_id, "");
}

fn catalog(name: &str) -> Option<Vec<String>> {
    match name {
        "echo" => Some(vec!["echo".into()]),
        "calc" => Some(vec![
            "warden-test:all-types/calc@0.1.0#add".into(),
            "other:pkg/calc#add".into(),
            "warden-test:all-types/strings#upper".into(),
        ]),
        _ => None,
    }
}

#[test]
fn check_accepts_exact_and_unambiguous_short_export_ids() {
    let t = table(
        "[[route]]\nid = \"a\"\nmatch = { kind = \"a\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"b\"\nmatch = { kind = \"b\" }\ncapability = \"calc\"\nfunction = \"strings#upper\"\n\
         [[route]]\nid = \"c\"\nmatch = { kind = \"c\" }\ncapability = \"calc\"\nfunction = \"other:pkg/calc#add\"\n",
    );
    assert_eq!(t.check(&catalog), Ok(()));
}

#[test]
fn check_reports_unknown_capabilities_and_functions_with_their_lines() {
    let t = table(
        "[[route]]\nid = \"a\"\nmatch = { kind = \"a\" }\ncapability = \"nope\"\nfunction = \"echo\"\n\
         [[route]]\nid = \"b\"\nmatch = { kind = \"b\" }\ncapability = \"echo\"\nfunction = \"shout\"\n\
         [[route]]\nid = \"c\"\nmatch = { kind = \"c\" }\ncapability = \"calc\"\nfunction = \"calc#add\"\n",
    );
    let errs: Vec<String> = match t.check(&catalog) {
        Ok(()) => panic!("expected errors"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    };
    assert_eq!(
        errs,
        vec![
            "routes.toml:4:14: route `a`: unknown capability `nope` (no loaded policy has that name)",
            "routes.toml:10:12: route `b`: capability `echo` does not export function `shout`; it exports: echo",
            "routes.toml:15:12: route `c`: capability `calc` exports more than one function matching `calc#add` (warden-test:all-types/calc@0.1.0#add, other:pkg/calc#add): write the full id",
        ]
    );
}

fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut s = seed | 1;
    for i in (1..items.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        items.swap(i, (s % (i as u64 + 1)) as usize);
    }
}

fn kind_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "echo",
        "invoice.create",
        "invoice.refund.x",
        "invoice",
        "text.redact",
        "text.other",
        "refund.create",
    ])
    .prop_map(String::from)
}

proptest! {
    #[test]
    fn the_same_request_always_gets_the_same_decision(
        kind in kind_strategy(),
        tenant in prop::option::of(prop::sample::select(vec!["acme", "globex"])),
        region in prop::option::of(prop::sample::select(vec!["eu", "us"])),
    ) {
        let t = table(EXAMPLE);
        let mut attrs = Vec::new();
        if let Some(r) = region { attrs.push(("region", r)); }
        let r = req(&kind, tenant, &attrs);
        let first = t.decide(&r);
        for _ in 0..5 {
            prop_assert_eq!(&t.decide(&r), &first);
            prop_assert_eq!(&t.decide(&r.clone()), &first);
        }
        prop_assert_eq!(&table(EXAMPLE).decide(&r), &first);
    }

    #[test]
    fn attribute_insertion_order_and_unmentioned_attributes_change_nothing(
        kind in kind_strategy(),
        tenant in prop::option::of(prop::sample::select(vec!["acme", "globex"])),
        region in prop::option::of(prop::sample::select(vec!["eu", "us"])),
        extra in prop::collection::vec(("[a-q]{1,6}", "[a-z0-9]{0,6}"), 0..6),
        seed in any::<u64>(),
    ) {
        let t = table(EXAMPLE);
        let mut base = req(&kind, tenant, &[]);
        if let Some(r) = region { base.attributes.insert("region".into(), r.into()); }
        let expected = t.decide(&base);
        // The same attributes plus ones no rule mentions, inserted in a shuffled order.
        let mut pairs: Vec<(String, String)> = base.attributes.clone().into_iter().collect();
        pairs.extend(extra.into_iter().filter(|(k, _)| k != "region"));
        shuffle(&mut pairs, seed);
        let mut noisy = base.clone();
        noisy.attributes = BTreeMap::new();
        for (k, v) in pairs {
            noisy.attributes.insert(k, v);
        }
        prop_assert_eq!(t.decide(&noisy), expected);
    }

    #[test]
    fn fields_no_rule_mentions_do_not_change_the_decision(
        kind in kind_strategy(),
        tenant in prop::option::of("[a-z]{1,8}"),
        attrs in prop::collection::btree_map("[a-z]{1,6}", "[a-z]{0,4}", 0..5),
        present in any::<(bool, bool)>(),
    ) {
        // A table whose rules mention only kinds: tenant and attributes are unrelated fields.
        let t = table(
            "[[route]]\nid = \"inv\"\nmatch = { kind = \"invoice.*\" }\ncapability = \"invoice-reconcile\"\nfunction = \"reconcile\"\n\
             [[route]]\nid = \"echo\"\nmatch = { kind = \"echo\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
        );
        let bare = req(&kind, None, &[]);
        let expected = t.decide(&bare);
        let mut with = bare.clone();
        if present.0 { with.tenant = tenant; }
        if present.1 { with.attributes = attrs; }
        prop_assert_eq!(t.decide(&with), expected);
    }
}

proptest! {
    /// Any route-table text parses or is refused with errors; any parsed
    /// table decides any request. No panic.
    #[test]
    fn any_route_table_text_parses_or_is_refused_without_a_panic(
        lines in prop::collection::vec(
            prop::sample::select(vec![
                "[[route]]\n",
                "id = \"r\"\n",
                "id = \"\"\n",
                "match = { kind = \"k\" }\n",
                "match = { kind = \"k\", tenant = \"\", attributes = { a = \"b\" } }\n",
                "match = { kind = \"*\" }\n",
                "capability = \"echo\"\n",
                "function = \"calc#add\"\n",
                "function = 7\n",
                "[route]\n",
                "\u{0}\n",
            ]),
            0..16,
        ),
        kind in "[a-z*]{0,4}",
    ) {
        let text: String = lines.concat();
        if let Ok(t) = parse(&text) {
            let _ = t.decide(&req(&kind, Some("acme"), &[("a", "b")]));
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_route_parser(text in ".{0,200}") {
        let _ = parse(&text);
    }
}

#[test]
fn a_workflow_rule_routes_its_kind_to_the_workflow_and_the_hash_covers_it() {
    let text = "[[route]]\nid = \"echo\"\nmatch = { kind = \"echo\" }\ncapability = \"echo\"\nfunction = \"echo\"\n\n\
                [[route]]\nid = \"refund\"\nmatch = { kind = \"refund\" }\nworkflow = \"order-refund\"\n";
    let t = table(text);
    assert_eq!(
        t.workflow_for(&req("refund", None, &[])),
        Some(("refund".to_string(), "order-refund".to_string()))
    );
    assert_eq!(t.workflow_for(&req("echo", None, &[])), None);
    // Capability rules are checked against capabilities, workflow rules
    // against workflows.
    let caps = |name: &str| (name == "echo").then(|| vec!["echo".to_string()]);
    assert!(t.check(&caps).is_ok());
    assert!(t.check_workflows(&|w| w == "order-refund").is_ok());
    let unknown = t.check_workflows(&|_| false).expect_err("unknown workflow");
    assert!(
        unknown.to_string().contains("routes.toml:10:")
            && unknown
                .to_string()
                .contains("unknown workflow `order-refund`"),
        "{unknown}"
    );
    // The workflow name is hashed; a capability-only table hashes as before.
    let other = table(&text.replace("order-refund", "order-other"));
    assert_ne!(t.hash(), other.hash());
    let caps_only = "[[route]]\nid = \"echo\"\nmatch = { kind = \"echo\" }\ncapability = \"echo\"\nfunction = \"echo\"\n";
    assert!(
        !serde_json::to_string(&table(caps_only).rules)
            .expect("json")
            .contains("workflow")
    );
}

#[test]
fn a_rule_with_both_a_workflow_and_a_capability_or_neither_is_refused_with_its_line() {
    let both = errors(
        "[[route]]\nid = \"x\"\nmatch = { kind = \"x\" }\ncapability = \"echo\"\nfunction = \"echo\"\nworkflow = \"w\"\n",
    );
    assert!(
        both.iter().any(|e| e.contains("routes.toml:2:")
            && e.contains("either `capability` and `function`, or `workflow` alone")),
        "{both:?}"
    );
    let neither = errors("[[route]]\nid = \"x\"\nmatch = { kind = \"x\" }\n");
    assert!(
        neither.iter().any(|e| e.contains("or `workflow` alone")),
        "{neither:?}"
    );
    let bad = errors("[[route]]\nid = \"x\"\nmatch = { kind = \"x\" }\nworkflow = \"Not Kebab\"\n");
    assert!(
        bad.iter().any(|e| e.contains("is not a workflow name")),
        "{bad:?}"
    );
}
