//! JSON <-> component values, for every WIT type kind, through a real guest.

use crate::support::*;
use serde_json::{Value, json};
use warden_host::{Host, Outcome};

fn types_host() -> Host {
    let mut h = host();
    load(&mut h, policy("all-types", STD_IMPORTS, ""), "all-types");
    h
}

async fn round_trip(h: &Host, function: &str, v: Value) {
    let r = call(h, "all-types", function, json!({ "v": v })).await;
    // A function returning `result` that returns `err` is a capability error
    // (the guest's own error), with the payload as output.
    let expected = if function == "echo-result" && v.get("err").is_some() {
        Outcome::CapabilityError
    } else {
        Outcome::Ok
    };
    assert_eq!(r.outcome, expected, "{function}({v}): {r:?}");
    assert_eq!(r.output, Some(v.clone()), "{function} round trip");
}

#[tokio::test]
async fn every_wit_type_kind_round_trips() {
    let h = types_host();
    let cases: Vec<(&str, Value)> = vec![
        ("echo-bool", json!(true)),
        ("echo-s8", json!(-128)),
        ("echo-u8", json!(255)),
        ("echo-s16", json!(-32768)),
        ("echo-u16", json!(65535)),
        ("echo-s32", json!(i32::MIN)),
        ("echo-u32", json!(u32::MAX)),
        ("echo-s64", json!(i64::MIN)),
        ("echo-u64", json!(u64::MAX)),
        ("echo-f32", json!(1.5)),
        ("echo-f64", json!(-2.25e300)),
        ("echo-f64", json!("NaN")),
        ("echo-f64", json!("-Infinity")),
        ("echo-char", json!("∑")),
        ("echo-string", json!("quote \" and \u{1F600}")),
        ("echo-list", json!([1, 2, 3])),
        ("echo-list", json!([])),
        ("echo-point", json!({"x": 1, "y": -2, "label": "p"})),
        ("echo-point", json!({"x": 0, "y": 0, "label": null})),
        ("echo-tuple", json!([7, "seven", false])),
        ("echo-shape", json!({"circle": 2.5})),
        ("echo-shape", json!({"square": 4})),
        ("echo-shape", json!("none")),
        ("echo-color", json!("green")),
        ("echo-option", json!(null)),
        ("echo-option", json!(["a", "b"])),
        ("echo-result", json!({"ok": 5})),
        ("echo-result", json!({"err": "bad"})),
        ("echo-perms", json!(["read", "exec"])),
        ("echo-perms", json!([])),
        (
            "echo-nested",
            json!([{"name": "n", "tags": ["t"], "note": null, "at": {"x": 1, "y": 2, "label": null}, "count": 9}]),
        ),
    ];
    for (f, v) in cases {
        round_trip(&h, f, v).await;
    }
}

#[tokio::test]
async fn multiple_parameters_interface_functions_and_unit_results_work() {
    let h = types_host();
    let r = call(
        &h,
        "all-types",
        "mix",
        json!({"a": 2, "b": "x", "c": [{"x": 1, "y": 2}]}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(
        r.output.as_ref().and_then(|o| o.as_str()).is_some(),
        "{r:?}"
    );
    let r = call(&h, "all-types", "calc#add", json!({"a": 40, "b": 2})).await;
    assert_eq!(r.output, Some(json!(42)), "{r:?}");
    let r = call(&h, "all-types", "nothing", json!({})).await;
    assert_eq!((r.outcome, r.output), (Outcome::Ok, Some(Value::Null)));
}

#[tokio::test]
async fn an_err_result_is_a_capability_error_with_its_payload() {
    let h = types_host();
    let ok = call(&h, "all-types", "try-it", json!({"v": "fine"})).await;
    assert_eq!(ok.outcome, Outcome::Ok, "{ok:?}");
    let r = call(&h, "all-types", "try-it", json!({"v": "fail"})).await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert!(
        r.output.as_ref().is_some_and(|o| o.get("err").is_some()),
        "{r:?}"
    );
}

async fn rejected(h: &Host, function: &str, input: Value, path: &str, expected: &str) {
    let r = call(h, "all-types", function, input.clone()).await;
    assert_eq!(
        r.outcome,
        Outcome::InvalidInput,
        "{function}({input}): {r:?}"
    );
    let err = r.error.unwrap_or_default();
    assert!(
        err.contains(&format!("at {path}:")),
        "{function}({input}): path {path} not in: {err}"
    );
    assert!(
        err.contains(expected),
        "{function}({input}): `{expected}` not in: {err}"
    );
    assert_eq!(r.usage.fuel, 0, "no guest code ran");
}

#[tokio::test]
async fn wrong_types_and_out_of_range_values_are_rejected_with_the_json_path() {
    let h = types_host();
    rejected(&h, "echo-u8", json!({"v": 256}), "$.v", "range of u8").await;
    rejected(&h, "echo-s8", json!({"v": -129}), "$.v", "range of s8").await;
    rejected(&h, "echo-u64", json!({"v": -1}), "$.v", "range of u64").await;
    rejected(&h, "echo-u32", json!({"v": 1.5}), "$.v", "integer").await;
    rejected(&h, "echo-bool", json!({"v": "true"}), "$.v", "boolean").await;
    rejected(&h, "echo-char", json!({"v": "ab"}), "$.v", "one-character").await;
    rejected(
        &h,
        "echo-list",
        json!({"v": [1, "two"]}),
        "$.v[1]",
        "integer",
    )
    .await;
    rejected(
        &h,
        "echo-point",
        json!({"v": {"x": 1}}),
        "$.v.y",
        "missing field",
    )
    .await;
    rejected(
        &h,
        "echo-point",
        json!({"v": {"x": 1, "y": 2, "z": 3}}),
        "$.v.z",
        "unknown field",
    )
    .await;
    rejected(
        &h,
        "echo-tuple",
        json!({"v": [1, "a"]}),
        "$.v",
        "exactly 3 items",
    )
    .await;
    rejected(
        &h,
        "echo-shape",
        json!({"v": "triangle"}),
        "$.v",
        "circle | square | none",
    )
    .await;
    rejected(
        &h,
        "echo-shape",
        json!({"v": {"circle": "big"}}),
        "$.v.circle",
        "number",
    )
    .await;
    rejected(
        &h,
        "echo-color",
        json!({"v": "purple"}),
        "$.v",
        "red | green | blue",
    )
    .await;
    rejected(
        &h,
        "echo-result",
        json!({"v": {"maybe": 1}}),
        "$.v",
        "\"ok\"",
    )
    .await;
    rejected(
        &h,
        "echo-perms",
        json!({"v": ["read", "fly"]}),
        "$.v[1]",
        "read | write | exec",
    )
    .await;
    rejected(
        &h,
        "echo-nested",
        json!({"v": [{"name": "n", "tags": [1], "count": 1}]}),
        "$.v[0].tags[0]",
        "a string",
    )
    .await;
    rejected(
        &h,
        "mix",
        json!({"a": 1, "b": "x"}),
        "$.c",
        "missing parameter",
    )
    .await;
    rejected(
        &h,
        "mix",
        json!({"a": 1, "b": "x", "c": [], "d": 0}),
        "$.d",
        "unknown field",
    )
    .await;
    rejected(
        &h,
        "mix",
        json!([1, 2]),
        "$",
        "object keyed by parameter names",
    )
    .await;
}

#[tokio::test]
async fn calling_a_function_that_is_not_exported_is_invalid_input_naming_the_exports() {
    let h = types_host();
    let r = call(&h, "all-types", "launch-missiles", json!({})).await;
    assert_eq!(r.outcome, Outcome::InvalidInput);
    assert!(r.error.unwrap_or_default().contains("echo-bool"));
}

mod any_json_input {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// One host for every case: the component is compiled once.
    fn shared() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(types_host)
    }

    /// JSON built from the names the all-types world uses, so typing goes
    /// deep into records, variants, options and results, plus extremes.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop::sample::select(vec![
                "NaN",
                "Infinity",
                "-Infinity",
                "red",
                "read",
                "none",
                "x",
                "ab",
                "é"
            ])
            .prop_map(|s| Value::String(s.into())),
            ".{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "x", "y", "label", "name", "tags", "note", "circle", "square", "ok", "err",
                        "some", "v", "a", "b", "zzz",
                    ]),
                    inner,
                    0..4,
                )
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any JSON given to any export is typed against its WIT signature
        /// or refused with a path; no panic, whatever the shape.
        #[test]
        fn any_json_input_to_any_export_is_typed_or_refused_without_a_panic(
            v in json_value(),
            wrap in any::<bool>(),
            pick in any::<prop::sample::Index>(),
        ) {
            let cap = shared().capability("all-types").expect("loaded");
            let export = &cap.shape.exports[pick.index(cap.shape.exports.len())];
            let input = if wrap { json!({ "v": v }) } else { v };
            if let Err(why) = cap.typed_params(&export.id, &input) {
                prop_assert!(why.contains("invalid input at $") || why.contains("cannot be called"), "{why}");
            }
        }
    }
}
