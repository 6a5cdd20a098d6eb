//! Validating a run's input against the plan's declared input type (the
//! JSON Schema keywords `plan.rs` accepts), before any step runs: an input
//! that does not match is refused whole, never half-way (docs/workflows.md).
//!
//! Objects are closed (a field not in `properties` is refused unless
//! `additionalProperties` is a schema or `true`), as the checker assumes.
//! Pure and bounded: recursion follows the schema, which the plan bounds.

use serde_json::Value;

/// Most problems reported for one input (the rest are counted).
pub const MAX_PROBLEMS: usize = 20;

/// Every way `input` does not match `schema` (empty: it matches), each
/// starting with where (`input.order.id: …`).
pub fn validate(schema: &Value, input: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, input, "input", &mut out);
    if out.len() > MAX_PROBLEMS {
        let more = out.len() - MAX_PROBLEMS;
        out.truncate(MAX_PROBLEMS);
        out.push(format!("… and {more} more"));
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn walk(schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let Value::Object(s) = schema else {
        if schema == &Value::Bool(false) {
            out.push(format!("{at}: no value is allowed here"));
        }
        return;
    };
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = s.get(key) {
            let fits: usize = alts
                .iter()
                .filter(|alt| {
                    let mut probe = Vec::new();
                    walk(alt, v, at, &mut probe);
                    probe.is_empty()
                })
                .count();
            let ok = if key == "oneOf" { fits == 1 } else { fits >= 1 };
            if !ok {
                out.push(format!(
                    "{at}: {} matches {fits} of the {} alternatives (`{key}`)",
                    kind(v),
                    alts.len()
                ));
            }
        }
    }
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => {
            out.push(format!("{at}: is {}, but {t} is wanted", kind(v)));
            return;
        }
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)) => {
            out.push(format!(
                "{at}: is {}, which none of the allowed types is",
                kind(v)
            ));
            return;
        }
        _ => {}
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        out.push(format!("{at}: must be {c}"));
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(v)
    {
        let shown: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        out.push(format!("{at}: must be one of {}", shown.join(", ")));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            out.push(format!("{at}: {v} is below the minimum {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            out.push(format!("{at}: {v} is above the maximum {max}"));
        }
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            out.push(format!("{at}: is {len} characters, fewer than {min}"));
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            out.push(format!("{at}: is {len} characters, more than {max}"));
        }
    }
    if let Value::Array(items) = v {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            out.push(format!("{at}: has {n} elements, fewer than {min}"));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            out.push(format!("{at}: has {n} elements, more than {max}"));
        }
        let prefix = s.get("prefixItems").and_then(Value::as_array);
        for (i, item) in items.iter().enumerate() {
            let here = format!("{at}[{i}]");
            match prefix.and_then(|p| p.get(i)) {
                Some(p) => walk(p, item, &here, out),
                None => {
                    if let Some(each) = s.get("items") {
                        walk(each, item, &here, out);
                    }
                }
            }
        }
    }
    if let Value::Object(fields) = v {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    out.push(format!("{at}: the required field `{name}` is missing"));
                }
            }
        }
        for (name, value) in fields {
            let here = format!("{at}.{name}");
            match props.and_then(|p| p.get(name)) {
                Some(p) => walk(p, value, &here, out),
                None => match s.get("additionalProperties") {
                    Some(extra @ Value::Object(_)) => walk(extra, value, &here, out),
                    Some(Value::Bool(true)) => {}
                    _ if props.is_none() && !s.contains_key("additionalProperties") => {}
                    _ => out.push(format!("{at}: has no field `{name}`")),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["order", "amount", "currency"],
            "properties": {
                "order": {"type": "string", "minLength": 1},
                "amount": {"type": "integer", "minimum": 1},
                "currency": {"type": "string", "enum": ["EUR", "USD"]},
                "lines": {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
                "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            },
        })
    }

    #[test]
    fn a_matching_input_has_no_problems() {
        let ok = json!({"order": "o-1", "amount": 5, "currency": "EUR", "lines": [{"sku": "a"}], "note": null});
        assert!(validate(&schema(), &ok).is_empty());
    }

    #[test]
    fn every_mismatch_is_reported_with_its_place() {
        let bad = json!({"order": "", "amount": 0, "currency": "JPY", "lines": [{"sku": 1}, {}, {}], "note": 3, "extra": true});
        let problems = validate(&schema(), &bad);
        let text = problems.join("\n");
        assert!(
            text.contains("input.order: is 0 characters, fewer than 1"),
            "{text}"
        );
        assert!(
            text.contains("input.amount: 0 is below the minimum 1"),
            "{text}"
        );
        assert!(
            text.contains("input.currency: must be one of \"EUR\", \"USD\""),
            "{text}"
        );
        assert!(
            text.contains("input.lines: has 3 elements, more than 2"),
            "{text}"
        );
        assert!(
            text.contains("input.lines[0].sku: is an integer, but string is wanted"),
            "{text}"
        );
        assert!(
            text.contains("input.note: an integer matches 0 of the 2 alternatives"),
            "{text}"
        );
        assert!(text.contains("input: has no field `extra`"), "{text}");
    }

    #[test]
    fn a_missing_required_field_and_a_wrong_top_level_type_are_refused() {
        let p = validate(&schema(), &json!({"order": "o"}));
        assert!(p.iter().any(|m| m.contains("`amount` is missing")), "{p:?}");
        let p = validate(&schema(), &json!([1]));
        assert_eq!(p, ["input: is a list, but object is wanted"]);
    }

    #[test]
    fn problems_beyond_the_limit_are_counted_not_listed() {
        let s = json!({"type": "array", "items": {"type": "string"}});
        let p = validate(&s, &json!(vec![0; MAX_PROBLEMS + 5]));
        assert_eq!(p.len(), MAX_PROBLEMS + 1);
        assert_eq!(p.last().map(String::as_str), Some("… and 5 more"));
    }
}
