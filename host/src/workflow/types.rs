//! Static types for workflow checking, expressed as JSON Schemas: the
//! declared workflow input, each function's input and output (derived from
//! its WIT signature by `component::schema`), and the type of a template.
//!
//! Two questions, both pure: where does a path lead inside a schema
//! ([`navigate`]), and can a value of one schema ever be accepted by another
//! ([`can_match`]). `can_match` refuses only what can never work (a string
//! where a `u32` is wanted, a field the target does not have, a required
//! field the template never builds); anything that might work is left to
//! the run-time typing of the pipeline's gate, which is exact.
//!
//! Objects of the declared input are closed: `input.x` exists only when
//! `x` is one of the object's `properties` (or `additionalProperties` is a
//! schema). This module never does I/O and knows nothing of wasmtime.

use super::template::{Seg, Template};
use serde_json::{Map, Value, json};

/// JSON kinds, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kinds(u8);

const NULL: u8 = 1;
const BOOL: u8 = 2;
const INT: u8 = 4;
const FRACTION: u8 = 8;
const STRING: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ALL: u8 = 127;

impl Kinds {
    fn of_value(v: &Value) -> Kinds {
        Kinds(match v {
            Value::Null => NULL,
            Value::Bool(_) => BOOL,
            Value::Number(n) if n.is_i64() || n.is_u64() => INT,
            Value::Number(_) => FRACTION,
            Value::String(_) => STRING,
            Value::Array(_) => ARRAY,
            Value::Object(_) => OBJECT,
        })
    }

    fn of_type_name(name: &str) -> u8 {
        match name {
            "null" => NULL,
            "boolean" => BOOL,
            "integer" => INT,
            "number" => INT | FRACTION,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            _ => ALL,
        }
    }

    fn describe(self) -> String {
        if self.0 == ALL {
            return "any value".into();
        }
        let mut names = Vec::new();
        let number = self.0 & (INT | FRACTION) == INT | FRACTION;
        let table: [(u8, &'static str); 4] = [
            (NULL, "null"),
            (BOOL, "a boolean"),
            (INT, "an integer"),
            (FRACTION, "a fractional number"),
        ];
        for (bit, name) in table {
            if number && bit == INT {
                names.push("a number");
            } else if self.0 & bit != 0 && !(number && bit == FRACTION) {
                names.push(name);
            }
        }
        let mut add = |bit: u8, name: &'static str| {
            if self.0 & bit != 0 {
                names.push(name);
            }
        };
        add(STRING, "a string");
        add(ARRAY, "a list");
        add(OBJECT, "an object");
        if names.is_empty() {
            return "no value".into();
        }
        names.join(" or ")
    }
}

/// The alternatives of a schema (`anyOf`/`oneOf`), or the schema itself.
fn branches(schema: &Value) -> Vec<&Value> {
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = schema.get(key) {
            return items.iter().flat_map(branches).collect();
        }
    }
    vec![schema]
}

/// Kinds one branch (no `anyOf`) admits.
fn branch_kinds(schema: &Value) -> Kinds {
    match schema {
        Value::Bool(false) => return Kinds(0),
        Value::Bool(true) => return Kinds(ALL),
        _ => {}
    }
    if schema
        .get("not")
        .is_some_and(|n| n.as_object().is_some_and(Map::is_empty))
    {
        return Kinds(0);
    }
    if let Some(c) = schema.get("const") {
        return Kinds::of_value(c);
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Kinds(values.iter().fold(0, |k, v| k | Kinds::of_value(v).0));
    }
    match schema.get("type") {
        Some(Value::String(t)) => Kinds(Kinds::of_type_name(t)),
        Some(Value::Array(ts)) => Kinds(
            ts.iter()
                .filter_map(Value::as_str)
                .fold(0, |k, t| k | Kinds::of_type_name(t)),
        ),
        _ => Kinds(ALL),
    }
}

/// Kinds a schema admits (the union over its alternatives).
fn kinds(schema: &Value) -> Kinds {
    Kinds(
        branches(schema)
            .iter()
            .fold(0, |k, b| k | branch_kinds(b).0),
    )
}

/// A short description of what a schema admits, for messages.
pub fn describe(schema: &Value) -> String {
    kinds(schema).describe()
}

/// Where `seg` leads inside `schema`: the schema of the value there, or why
/// nothing can be there. Alternatives are followed together (an option's
/// `null` and a variant's other cases simply do not have the field).
pub fn navigate(schema: &Value, seg: &Seg) -> Result<Value, String> {
    let mut found = Vec::new();
    for b in branches(schema) {
        if let Some(s) = navigate_branch(b, seg) {
            found.push(s);
        }
    }
    match found.len() {
        0 => Err(match seg {
            Seg::Field(name) => {
                let known = field_names(schema);
                if kinds(schema).0 & OBJECT == 0 {
                    format!("has no field `{name}`: it is {}", describe(schema))
                } else if known.is_empty() {
                    format!("has no field `{name}`")
                } else {
                    format!("has no field `{name}` (it has {})", known.join(", "))
                }
            }
            Seg::Index(i) => format!("has no element [{i}]: it is {}", describe(schema)),
        }),
        1 => Ok(found.remove(0)),
        _ => Ok(json!({ "anyOf": found })),
    }
}

fn field_names(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for b in branches(schema) {
        if let Some(Value::Object(props)) = b.get("properties") {
            out.extend(props.keys().map(|k| format!("`{k}`")));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn navigate_branch(schema: &Value, seg: &Seg) -> Option<Value> {
    let k = branch_kinds(schema).0;
    match seg {
        Seg::Field(name) => {
            if k & OBJECT == 0 {
                return None;
            }
            if let Some(s) = schema.get("properties").and_then(|p| p.get(name)) {
                return Some(s.clone());
            }
            match schema.get("additionalProperties") {
                Some(extra @ Value::Object(_)) => Some(extra.clone()),
                Some(Value::Bool(true)) => Some(json!({})),
                // An unconstrained schema (`{}`) may hold anything.
                _ if k == ALL && schema.get("properties").is_none() => Some(json!({})),
                _ => None,
            }
        }
        Seg::Index(i) => {
            if k & ARRAY == 0 {
                return None;
            }
            if let Some(Value::Array(prefix)) = schema.get("prefixItems")
                && let Some(s) = prefix.get(*i)
            {
                return Some(s.clone());
            }
            if schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|max| (*i as u64) >= max)
            {
                return None;
            }
            match schema.get("items") {
                Some(Value::Bool(false)) => None,
                Some(items @ Value::Object(_)) => Some(items.clone()),
                _ => Some(json!({})),
            }
        }
    }
}

/// The static type of a template, given the type of each reference.
pub fn template_schema(
    template: &Template,
    resolve: &mut dyn FnMut(&super::template::Path) -> Value,
) -> Value {
    match template {
        Template::Literal(v) => json!({ "const": v }),
        Template::Ref(p) => resolve(p),
        Template::Interpolate(pieces) => {
            for piece in pieces {
                if let super::template::Piece::Ref(p) = piece {
                    resolve(p);
                }
            }
            json!({"type": "string"})
        }
        Template::Object(m) => {
            let mut properties = Map::new();
            for (k, t) in m {
                properties.insert(k.clone(), template_schema(t, resolve));
            }
            let required: Vec<&String> = m.keys().collect();
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        }
        Template::Array(items) => {
            let prefix: Vec<Value> = items.iter().map(|t| template_schema(t, resolve)).collect();
            let n = prefix.len();
            json!({"type": "array", "prefixItems": prefix, "items": false, "minItems": n, "maxItems": n})
        }
    }
}

/// Whether some value of `src` could be accepted by `dst`. `Err` lists why
/// not, each reason starting with where (`.order.id: …`), relative to `at`.
pub fn can_match(src: &Value, dst: &Value, at: &str) -> Result<(), Vec<String>> {
    let src_branches = branches(src);
    let dst_branches = branches(dst);
    let mut first_failure = None;
    for s in &src_branches {
        for d in &dst_branches {
            match match_branch(s, d, at) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
    }
    if src_branches.len() > 1 || dst_branches.len() > 1 {
        // No pair fits: say it in terms of the whole types.
        let (ks, kd) = (kinds(src), kinds(dst));
        if ks.0 & kd.0 == 0 || first_failure.is_none() {
            return Err(vec![format!(
                "{}: gives {}, but {} is wanted",
                place(at),
                ks.describe(),
                kd.describe()
            )]);
        }
    }
    Err(first_failure.unwrap_or_default())
}

fn place(at: &str) -> &str {
    if at.is_empty() {
        "(the whole input)"
    } else {
        at
    }
}

fn match_branch(src: &Value, dst: &Value, at: &str) -> Result<(), Vec<String>> {
    let (ks, kd) = (branch_kinds(src), branch_kinds(dst));
    let common = ks.0 & kd.0;
    if common == 0 {
        return Err(vec![format!(
            "{}: gives {}, but {} is wanted",
            place(at),
            ks.describe(),
            kd.describe()
        )]);
    }
    // Known values on the source side must be acceptable values.
    if let Some(values) = known_values(src) {
        if !values.iter().any(|v| value_fits(v, dst)) {
            let shown: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            return Err(vec![format!(
                "{}: gives {}, which {} does not accept",
                place(at),
                shown.join(" or "),
                wanted(dst)
            )]);
        }
        // A literal object or array is checked field by field below only
        // when it is the single value.
        if values.len() > 1 || !matches!(values[0], Value::Object(_) | Value::Array(_)) {
            return Ok(());
        }
    }
    if common & (INT | FRACTION) != 0 && common & !(INT | FRACTION) == 0 {
        let (smin, smax) = range(src);
        let (dmin, dmax) = range(dst);
        if smin.zip(dmax).is_some_and(|(a, b)| a > b) || smax.zip(dmin).is_some_and(|(a, b)| a < b)
        {
            return Err(vec![format!(
                "{}: gives a number in {}, but {} is wanted",
                place(at),
                show_range(smin, smax),
                show_range(dmin, dmax)
            )]);
        }
    }
    if common == OBJECT {
        return match_objects(src, dst, at);
    }
    if common == ARRAY {
        return match_arrays(src, dst, at);
    }
    Ok(())
}

fn wanted(dst: &Value) -> String {
    if let Some(Value::Array(values)) = dst.get("enum") {
        let shown: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        return format!("the wanted {}", shown.join(" | "));
    }
    let (min, max) = range(dst);
    if min.is_some() || max.is_some() {
        return format!("the wanted range {}", show_range(min, max));
    }
    format!("the wanted type ({})", describe(dst))
}

fn known_values(schema: &Value) -> Option<Vec<&Value>> {
    if let Some(c) = schema.get("const") {
        return Some(vec![c]);
    }
    match schema.get("enum") {
        Some(Value::Array(values)) => Some(values.iter().collect()),
        _ => None,
    }
}

/// Whether a literal value could be accepted by `dst` (shallow: kind, enum,
/// range, length; objects and arrays are checked field by field separately).
fn value_fits(v: &Value, dst: &Value) -> bool {
    branches(dst).into_iter().any(|d| {
        if branch_kinds(d).0 & Kinds::of_value(v).0 == 0 {
            return false;
        }
        if let Some(Value::Array(allowed)) = d.get("enum")
            && !allowed.contains(v)
        {
            return false;
        }
        if let Some(c) = d.get("const")
            && c != v
        {
            return false;
        }
        if let Some(n) = v.as_f64() {
            let (min, max) = range(d);
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                return false;
            }
        }
        if let Some(s) = v.as_str() {
            let len = s.chars().count() as u64;
            if d.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
                || d.get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| len > m)
            {
                return false;
            }
        }
        true
    })
}

fn range(schema: &Value) -> (Option<f64>, Option<f64>) {
    if let Some(n) = schema.get("const").and_then(Value::as_f64) {
        return (Some(n), Some(n));
    }
    (
        schema.get("minimum").and_then(Value::as_f64),
        schema.get("maximum").and_then(Value::as_f64),
    )
}

fn show_range(min: Option<f64>, max: Option<f64>) -> String {
    let end = |v: Option<f64>| v.map_or("…".to_string(), |v| v.to_string());
    format!("[{}, {}]", end(min), end(max))
}

fn match_objects(src: &Value, dst: &Value, at: &str) -> Result<(), Vec<String>> {
    let empty = Map::new();
    let src_props = src
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let dst_props = dst
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let src_closed = src.get("additionalProperties") == Some(&Value::Bool(false))
        || (src.get("properties").is_some() && src.get("additionalProperties").is_none());
    let dst_closed = dst.get("additionalProperties") == Some(&Value::Bool(false));
    let literal = src.get("const").and_then(Value::as_object);
    let mut errors = Vec::new();
    for name in required(dst) {
        let has = literal.map_or_else(|| src_props.contains_key(name), |m| m.contains_key(name));
        if !has && (src_closed || literal.is_some()) {
            errors.push(format!(
                "{}: the required field `{name}` is never set",
                place(at)
            ));
        }
    }
    let fields: Vec<(String, Value)> = match literal {
        Some(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "const": v })))
            .collect(),
        None => src_props
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    for (name, s) in fields {
        let here = format!("{at}.{name}");
        match dst_props.get(&name) {
            Some(d) => {
                if let Err(e) = can_match(&s, d, &here) {
                    errors.extend(e);
                }
            }
            None if dst_closed => {
                let known: Vec<String> = dst_props.keys().map(|k| format!("`{k}`")).collect();
                errors.push(format!(
                    "{}: there is no field `{name}` to set (the wanted fields are {})",
                    place(at),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn required(schema: &Value) -> Vec<&str> {
    match schema.get("required") {
        Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn match_arrays(src: &Value, dst: &Value, at: &str) -> Result<(), Vec<String>> {
    let items: Vec<Value> = if let Some(Value::Array(values)) = src.get("const") {
        values.iter().map(|v| json!({ "const": v })).collect()
    } else if let Some(Value::Array(prefix)) = src.get("prefixItems") {
        prefix.clone()
    } else if let Some(item @ Value::Object(_)) = src.get("items") {
        vec![item.clone()]
    } else {
        Vec::new()
    };
    let mut errors = Vec::new();
    for (i, s) in items.iter().enumerate() {
        let d = match dst.get("prefixItems").and_then(|p| p.get(i)) {
            Some(d) => d.clone(),
            None => match dst.get("items") {
                Some(d @ Value::Object(_)) => d.clone(),
                _ => continue,
            },
        };
        if let Err(e) = can_match(s, &d, &format!("{at}[{i}]")) {
            errors.extend(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_schema() -> Value {
        json!({"type": "integer", "minimum": 0, "maximum": 4294967295u64})
    }

    fn record() -> Value {
        json!({
            "type": "object",
            "properties": {"id": u32_schema(), "note": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
            "required": ["id"],
            "additionalProperties": false,
        })
    }

    #[test]
    fn navigation_follows_properties_items_and_alternatives() {
        let s = json!({"type": "object", "properties": {"lines": {"type": "array", "items": record()}}});
        let lines = navigate(&s, &Seg::Field("lines".into())).expect("lines");
        let first = navigate(&lines, &Seg::Index(0)).expect("[0]");
        let note = navigate(&first, &Seg::Field("note".into())).expect("note");
        assert_eq!(describe(&note), "null or a string");
        let e = navigate(&first, &Seg::Field("nope".into())).expect_err("nope");
        assert!(
            e.contains("has no field `nope` (it has `id`, `note`)"),
            "{e}"
        );
        let e = navigate(&u32_schema(), &Seg::Field("x".into())).expect_err("scalar");
        assert!(e.contains("it is an integer"), "{e}");
        let opt = json!({"anyOf": [{"type": "null"}, record()]});
        assert!(navigate(&opt, &Seg::Field("id".into())).is_ok());
    }

    #[test]
    fn a_string_can_never_match_an_integer() {
        let e = can_match(&json!({"type": "string"}), &u32_schema(), ".id").expect_err("mismatch");
        assert_eq!(e, [".id: gives a string, but an integer is wanted"]);
        assert!(can_match(&json!({"type": "integer"}), &u32_schema(), ".id").is_ok());
        assert!(can_match(&json!({"type": "number"}), &u32_schema(), ".id").is_ok());
    }

    #[test]
    fn literals_outside_the_wanted_range_or_enum_are_refused() {
        assert!(can_match(&json!({"const": -1}), &u32_schema(), ".n").is_err());
        assert!(can_match(&json!({"const": 5}), &u32_schema(), ".n").is_ok());
        let color = json!({"type": "string", "enum": ["red", "green"]});
        let e = can_match(&json!({"const": "blue"}), &color, ".c").expect_err("enum");
        assert!(e[0].contains("\"blue\""), "{e:?}");
        assert!(can_match(&json!({"const": "red"}), &color, ".c").is_ok());
        let range = json!({"type": "integer", "minimum": 10, "maximum": 20});
        let e = can_match(&range, &u32_schema(), "").err();
        assert!(e.is_none());
        let disjoint = json!({"type": "integer", "minimum": 5000000000u64});
        assert!(can_match(&disjoint, &u32_schema(), ".n").is_err());
    }

    #[test]
    fn objects_need_every_required_field_and_no_unknown_one() {
        let missing = json!({"type": "object", "properties": {"note": {"const": "x"}}, "required": ["note"], "additionalProperties": false});
        let e = can_match(&missing, &record(), "").expect_err("missing id");
        assert!(e[0].contains("required field `id` is never set"), "{e:?}");
        let extra = json!({"type": "object", "properties": {"id": {"const": 1}, "bogus": {"const": 1}}, "additionalProperties": false});
        let e = can_match(&extra, &record(), "").expect_err("extra");
        assert!(e[0].contains("no field `bogus`"), "{e:?}");
        let fine = json!({"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false});
        assert!(can_match(&fine, &record(), "").is_ok());
        assert!(can_match(&json!({"const": {"id": 3}}), &record(), "").is_ok());
        assert!(can_match(&json!({"const": {"id": "3"}}), &record(), "").is_err());
    }

    #[test]
    fn null_matches_an_option_and_nothing_else() {
        let opt = json!({"anyOf": [{"type": "null"}, {"type": "string"}]});
        assert!(can_match(&json!({"const": null}), &opt, ".o").is_ok());
        assert!(can_match(&json!({"const": null}), &json!({"type": "string"}), ".o").is_err());
    }

    #[test]
    fn list_elements_are_matched_against_the_item_type() {
        let list = json!({"type": "array", "items": u32_schema()});
        assert!(can_match(&json!({"const": [1, 2]}), &list, ".l").is_ok());
        let e = can_match(&json!({"const": [1, "x"]}), &list, ".l").expect_err("element");
        assert!(e[0].starts_with(".l[1]:"), "{e:?}");
    }
}
