//! JSON Schema (2020-12) for each export's input and output, matching the
//! JSON encoding in `convert`.

use serde_json::{Value, json};
use wasmtime::component::Type;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Schema of the input object for a function with these parameters.
pub fn input_schema(params: &[(String, Type)]) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for (name, ty) in params {
        properties.insert(name.clone(), type_schema(ty));
        if !matches!(ty, Type::Option(_)) {
            required.push(Value::String(name.clone()));
        }
    }
    json!({
        "$schema": DIALECT,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// Schema of the output (`null` when the function returns nothing).
pub fn output_schema(result: Option<&Type>) -> Value {
    let mut s = match result {
        Some(t) => type_schema(t),
        None => json!({"type": "null"}),
    };
    if let Value::Object(m) = &mut s {
        m.insert("$schema".into(), Value::String(DIALECT.into()));
    }
    s
}

fn exact_int(min: i64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn one_key(key: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "properties": { key: schema },
        "required": [key],
        "additionalProperties": false,
    })
}

/// Schema for one WIT type.
pub fn type_schema(ty: &Type) -> Value {
    let float =
        || json!({"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]});
    match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::S8 => exact_int(i8::MIN.into(), i8::MAX as u64),
        Type::U8 => exact_int(0, u8::MAX.into()),
        Type::S16 => exact_int(i16::MIN.into(), i16::MAX as u64),
        Type::U16 => exact_int(0, u16::MAX.into()),
        Type::S32 => exact_int(i32::MIN.into(), i32::MAX as u64),
        Type::U32 => exact_int(0, u32::MAX.into()),
        Type::S64 => exact_int(i64::MIN, i64::MAX as u64),
        Type::U64 => exact_int(0, u64::MAX),
        Type::Float32 | Type::Float64 => float(),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(l) => json!({"type": "array", "items": type_schema(&l.ty())}),
        Type::FixedLengthList(l) => json!({
            "type": "array", "items": type_schema(&l.ty()),
            "minItems": l.len(), "maxItems": l.len(),
        }),
        Type::Map(m) => json!({
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [type_schema(&m.key()), type_schema(&m.value())],
                "minItems": 2, "maxItems": 2,
            }
        }),
        Type::Record(r) => {
            let mut properties = serde_json::Map::new();
            let mut required = Vec::new();
            for f in r.fields() {
                properties.insert(f.name.to_string(), type_schema(&f.ty));
                if !matches!(f.ty, Type::Option(_)) {
                    required.push(Value::String(f.name.to_string()));
                }
            }
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        }
        Type::Tuple(t) => {
            let items: Vec<Value> = t.types().map(|t| type_schema(&t)).collect();
            let n = items.len();
            json!({"type": "array", "prefixItems": items, "minItems": n, "maxItems": n, "items": false})
        }
        Type::Variant(v) => {
            let cases: Vec<Value> = v
                .cases()
                .map(|c| match &c.ty {
                    None => json!({"const": c.name}),
                    Some(t) => one_key(c.name, type_schema(t)),
                })
                .collect();
            json!({"oneOf": cases})
        }
        Type::Enum(e) => json!({"type": "string", "enum": e.names().collect::<Vec<_>>()}),
        Type::Option(o) => {
            let inner = o.ty();
            let some = match inner {
                Type::Option(_) => one_key("some", type_schema(&inner)),
                _ => type_schema(&inner),
            };
            json!({"anyOf": [{"type": "null"}, some]})
        }
        Type::Result(r) => {
            let payload = |t: Option<Type>| t.map_or(json!({"type": "null"}), |t| type_schema(&t));
            json!({"oneOf": [one_key("ok", payload(r.ok())), one_key("err", payload(r.err()))]})
        }
        Type::Flags(f) => json!({
            "type": "array",
            "items": {"type": "string", "enum": f.names().collect::<Vec<_>>()},
            "uniqueItems": true,
        }),
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            json!({"not": {}, "description": "cannot cross JSON"})
        }
    }
}
