//! JSON <-> component values, typed by the export's WIT signature.
//!
//! Guest input is hostile and request input is untrusted: every conversion
//! checks the JSON against the WIT type and reports the JSON path and the
//! expected type on mismatch. Nothing here panics on any input.
//!
//! Encoding (also documented in docs/authoring.md):
//! - `bool`, integers, `string` map to the JSON scalar; integers are range-checked.
//! - floats are JSON numbers; NaN and infinities are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
//! - `char` is a one-character string.
//! - `list<T>` and fixed-length lists are arrays; `tuple<..>` is an array of exact length.
//! - `record` is an object with the WIT field names; unknown fields are errors;
//!   a missing `option` field means `none`.
//! - `variant`: a case without payload is its name as a string; with a payload
//!   `{"case": value}`.
//! - `enum` is its case name; `flags` is an array of set flag names.
//! - `option<T>` is `null` or the value; when `T` is itself an option, `some(x)`
//!   is written `{"some": x}` so that nesting is unambiguous.
//! - `result<T, E>` is `{"ok": value}` or `{"err": value}` (`null` when there is no payload).
//! - `map<K, V>` is an array of `[key, value]` pairs.
//! - resources, futures and streams cannot cross JSON: functions using them are not callable.

use serde_json::{Map, Number, Value};
use std::fmt;
use wasmtime::component::{Type, Val};

/// A JSON value that does not fit the WIT type at `path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConvertError {
    /// JSON path, e.g. `$.invoices[3].amount-cents`.
    pub path: String,
    /// What the WIT type expects.
    pub expected: String,
    /// What was found instead.
    pub found: String,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {}: expected {}, found {}",
            self.path, self.expected, self.found
        )
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            if short.len() < s.len() {
                format!("string \"{short}…\"")
            } else {
                format!("string \"{short}\"")
            }
        }
        Value::Array(a) => format!("array of {} items", a.len()),
        Value::Object(_) => "object".to_string(),
    }
}

fn mismatch(path: impl fmt::Display, expected: impl Into<String>, found: &Value) -> ConvertError {
    ConvertError {
        path: path.to_string(),
        expected: expected.into(),
        found: describe(found),
    }
}

/// Short human name of a WIT type, used in error messages.
pub fn type_name(ty: &Type) -> String {
    super::wit::render_type(ty)
}

fn int_in<T: TryFrom<i128>>(path: &JsonPath<'_>, ty: &Type, v: &Value) -> Result<T, ConvertError> {
    let n: Option<i128> = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    };
    n.and_then(|n| T::try_from(n).ok()).ok_or_else(|| {
        mismatch(
            path,
            format!("an integer in the range of {}", type_name(ty)),
            v,
        )
    })
}

fn float_of(path: &JsonPath<'_>, ty: &Type, v: &Value) -> Result<f64, ConvertError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| mismatch(path, type_name(ty), v)),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(mismatch(path, format!("a number ({})", type_name(ty)), v)),
    }
}

fn json_float(f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f.is_infinite() {
        Value::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Where a value sits in the request, rendered (`$.a[3].b`) only when a
/// conversion fails: building the text for every field and element would
/// cost an allocation each on every request.
#[derive(Clone, Copy)]
enum JsonPath<'a> {
    Root(&'a str),
    Field(&'a JsonPath<'a>, &'a str),
    Index(&'a JsonPath<'a>, usize),
}

impl<'a> JsonPath<'a> {
    fn field(&'a self, name: &'a str) -> JsonPath<'a> {
        JsonPath::Field(self, name)
    }

    fn index(&'a self, i: usize) -> JsonPath<'a> {
        JsonPath::Index(self, i)
    }
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonPath::Root(s) => f.write_str(s),
            JsonPath::Field(parent, name) => write!(f, "{parent}.{name}"),
            JsonPath::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Converts `v` to a component value of type `ty`; `path` locates `v` in the request.
pub fn json_to_val(ty: &Type, v: &Value, path: &str) -> Result<Val, ConvertError> {
    to_val(ty, v, &JsonPath::Root(path))
}

fn to_val(ty: &Type, v: &Value, path: &JsonPath<'_>) -> Result<Val, ConvertError> {
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(|| mismatch(path, "a boolean", v))?),
        Type::S8 => Val::S8(int_in(path, ty, v)?),
        Type::U8 => Val::U8(int_in(path, ty, v)?),
        Type::S16 => Val::S16(int_in(path, ty, v)?),
        Type::U16 => Val::U16(int_in(path, ty, v)?),
        Type::S32 => Val::S32(int_in(path, ty, v)?),
        Type::U32 => Val::U32(int_in(path, ty, v)?),
        Type::S64 => Val::S64(int_in(path, ty, v)?),
        Type::U64 => Val::U64(int_in(path, ty, v)?),
        Type::Float32 => {
            let f = float_of(path, ty, v)?;
            if f.is_finite() && (f as f32).is_infinite() {
                return Err(mismatch(path, "a number in the range of f32", v));
            }
            Val::Float32(f as f32)
        }
        Type::Float64 => Val::Float64(float_of(path, ty, v)?),
        Type::Char => {
            let s = v
                .as_str()
                .ok_or_else(|| mismatch(path, "a one-character string", v))?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(mismatch(path, "a one-character string", v)),
            }
        }
        Type::String => Val::String(
            v.as_str()
                .ok_or_else(|| mismatch(path, "a string", v))?
                .to_string(),
        ),
        Type::List(list) => {
            let items = v
                .as_array()
                .ok_or_else(|| mismatch(path, format!("an array ({})", type_name(ty)), v))?;
            let elem = list.ty();
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| to_val(&elem, item, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::FixedLengthList(list) => {
            let items = v
                .as_array()
                .filter(|a| a.len() == list.len() as usize)
                .ok_or_else(|| {
                    mismatch(path, format!("an array of exactly {} items", list.len()), v)
                })?;
            let elem = list.ty();
            Val::FixedLengthList(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| to_val(&elem, item, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map(map) => {
            let pairs = v
                .as_array()
                .ok_or_else(|| mismatch(path, "an array of [key, value] pairs", v))?;
            let mut out = Vec::with_capacity(pairs.len());
            for (i, pair) in pairs.iter().enumerate() {
                let p = path.index(i);
                match pair.as_array().map(|a| a.as_slice()) {
                    Some([k, val]) => out.push((
                        to_val(&map.key(), k, &p.index(0))?,
                        to_val(&map.value(), val, &p.index(1))?,
                    )),
                    _ => return Err(mismatch(p, "a [key, value] pair", pair)),
                }
            }
            Val::Map(out)
        }
        Type::Record(record) => {
            let obj = v
                .as_object()
                .ok_or_else(|| mismatch(path, format!("an object ({})", type_name(ty)), v))?;
            let mut fields = Vec::new();
            let mut present = 0;
            for field in record.fields() {
                let p = path.field(field.name);
                match obj.get(field.name) {
                    Some(fv) => {
                        present += 1;
                        fields.push((field.name.to_string(), to_val(&field.ty, fv, &p)?))
                    }
                    None if matches!(field.ty, Type::Option(_)) => {
                        fields.push((field.name.to_string(), Val::Option(None)))
                    }
                    None => {
                        return Err(ConvertError {
                            path: p.to_string(),
                            expected: format!("field `{}` ({})", field.name, type_name(&field.ty)),
                            found: "nothing (missing field)".into(),
                        });
                    }
                }
            }
            // Keys are unique: every key matched a field unless there are more.
            if obj.len() > present {
                reject_unknown_keys(obj, record.fields().map(|f| f.name), path)?;
            }
            Val::Record(fields)
        }
        Type::Tuple(tuple) => {
            let n = tuple.types().len();
            let items = v.as_array().filter(|a| a.len() == n).ok_or_else(|| {
                mismatch(
                    path,
                    format!("an array of exactly {n} items ({})", type_name(ty)),
                    v,
                )
            })?;
            Val::Tuple(
                tuple
                    .types()
                    .zip(items)
                    .enumerate()
                    .map(|(i, (t, item))| to_val(&t, item, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(variant) => {
            let expected = || {
                let names: Vec<String> = variant.cases().map(|c| c.name.to_string()).collect();
                format!("one of the cases {}", names.join(" | "))
            };
            let (name, payload) = single_case(v).ok_or_else(|| mismatch(path, expected(), v))?;
            let case = variant
                .cases()
                .find(|c| c.name == name)
                .ok_or_else(|| mismatch(path, expected(), v))?;
            let p = path.field(name);
            let value = match (case.ty, payload) {
                (None, None | Some(Value::Null)) => None,
                (Some(t), Some(pv)) => Some(Box::new(to_val(&t, pv, &p)?)),
                (Some(t), None) => {
                    return Err(mismatch(
                        path,
                        format!("{{\"{name}\": <{}>}}", type_name(&t)),
                        v,
                    ));
                }
                (None, Some(pv)) => return Err(mismatch(p, "no payload (null)", pv)),
            };
            Val::Variant(name.to_string(), value)
        }
        Type::Enum(en) => {
            let s = v
                .as_str()
                .filter(|s| en.names().any(|n| n == *s))
                .ok_or_else(|| {
                    let names: Vec<&str> = en.names().collect();
                    mismatch(path, format!("one of {}", names.join(" | ")), v)
                })?;
            Val::Enum(s.to_string())
        }
        Type::Option(opt) => {
            let inner = opt.ty();
            match v {
                Value::Null => Val::Option(None),
                _ if matches!(inner, Type::Option(_)) => {
                    let some = v
                        .as_object()
                        .filter(|o| o.len() == 1)
                        .and_then(|o| o.get("some"))
                        .ok_or_else(|| {
                            mismatch(path, "null or {\"some\": value} (nested option)", v)
                        })?;
                    Val::Option(Some(Box::new(to_val(&inner, some, &path.field("some"))?)))
                }
                _ => Val::Option(Some(Box::new(to_val(&inner, v, path)?))),
            }
        }
        Type::Result(res) => {
            let expected = "{\"ok\": value} or {\"err\": value}";
            let (name, payload) = single_case(v).ok_or_else(|| mismatch(path, expected, v))?;
            let p = path.field(name);
            let convert = |t: Option<Type>| -> Result<Option<Box<Val>>, ConvertError> {
                match (t, payload) {
                    (None, None | Some(Value::Null)) => Ok(None),
                    (Some(t), Some(pv)) => Ok(Some(Box::new(to_val(&t, pv, &p)?))),
                    (Some(t), None) => Err(mismatch(p, type_name(&t), &Value::Null)),
                    (None, Some(pv)) => Err(mismatch(p, "no payload (null)", pv)),
                }
            };
            match name {
                "ok" => Val::Result(Ok(convert(res.ok())?)),
                "err" => Val::Result(Err(convert(res.err())?)),
                _ => return Err(mismatch(path, expected, v)),
            }
        }
        Type::Flags(flags) => {
            let names: Vec<&str> = flags.names().collect();
            let items = v.as_array().ok_or_else(|| {
                mismatch(
                    path,
                    format!("an array of flag names ({})", names.join(", ")),
                    v,
                )
            })?;
            let mut set = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let s = item.as_str().filter(|s| names.contains(s)).ok_or_else(|| {
                    mismatch(path.index(i), format!("one of {}", names.join(" | ")), item)
                })?;
                if !set.iter().any(|x: &String| x == s) {
                    set.push(s.to_string());
                }
            }
            Val::Flags(set)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(mismatch(
                path,
                format!("a value that can cross JSON ({} cannot)", type_name(ty)),
                v,
            ));
        }
    })
}

/// `"name"` or `{"name": payload}` (one key).
fn single_case(v: &Value) -> Option<(&str, Option<&Value>)> {
    match v {
        Value::String(s) => Some((s.as_str(), None)),
        Value::Object(o) if o.len() == 1 => o.iter().next().map(|(k, pv)| (k.as_str(), Some(pv))),
        _ => None,
    }
}

fn reject_unknown_keys<'a>(
    obj: &Map<String, Value>,
    known: impl Iterator<Item = &'a str>,
    path: impl fmt::Display,
) -> Result<(), ConvertError> {
    let known: Vec<&str> = known.collect();
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ConvertError {
            path: format!("{path}.{k}"),
            expected: format!("only the fields {}", known.join(", ")),
            found: format!("unknown field `{k}`"),
        });
    }
    Ok(())
}

/// Converts function arguments: `input` must be an object keyed by parameter names.
pub fn json_to_params(params: &[(String, Type)], input: &Value) -> Result<Vec<Val>, ConvertError> {
    let empty = Map::new();
    let obj = match input {
        Value::Object(o) => o,
        Value::Null if params.is_empty() => &empty,
        other => return Err(mismatch("$", "an object keyed by parameter names", other)),
    };
    let mut vals = Vec::with_capacity(params.len());
    let mut present = 0;
    for (name, ty) in params {
        let root = JsonPath::Root("$");
        let p = root.field(name);
        match obj.get(name) {
            Some(v) => {
                present += 1;
                vals.push(to_val(ty, v, &p)?)
            }
            None if matches!(ty, Type::Option(_)) => vals.push(Val::Option(None)),
            None => {
                return Err(ConvertError {
                    path: p.to_string(),
                    expected: format!("parameter `{name}` ({})", type_name(ty)),
                    found: "nothing (missing parameter)".into(),
                });
            }
        }
    }
    if obj.len() > present {
        reject_unknown_keys(obj, params.iter().map(|(n, _)| n.as_str()), "$")?;
    }
    Ok(vals)
}

/// Converts a component value back to JSON. Values come from the guest: they
/// are typed by wasmtime already, so this cannot fail except for kinds that
/// cannot cross JSON (resources, futures, streams), which become `null` and
/// are refused at inspection time.
pub fn val_to_json(v: &Val) -> Value {
    match v {
        Val::Bool(b) => Value::Bool(*b),
        Val::S8(n) => Value::from(*n),
        Val::U8(n) => Value::from(*n),
        Val::S16(n) => Value::from(*n),
        Val::U16(n) => Value::from(*n),
        Val::S32(n) => Value::from(*n),
        Val::U32(n) => Value::from(*n),
        Val::S64(n) => Value::from(*n),
        Val::U64(n) => Value::from(*n),
        Val::Float32(f) => json_float(f64::from(*f)),
        Val::Float64(f) => json_float(*f),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(val_to_json).collect())
        }
        Val::Map(pairs) => Value::Array(
            pairs
                .iter()
                .map(|(k, v)| Value::Array(vec![val_to_json(k), val_to_json(v)]))
                .collect(),
        ),
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), val_to_json(v)))
                .collect(),
        ),
        Val::Variant(name, None) => Value::String(name.clone()),
        Val::Variant(name, Some(p)) => single(name, val_to_json(p)),
        Val::Enum(name) => Value::String(name.clone()),
        Val::Option(None) => Value::Null,
        Val::Option(Some(inner)) => match inner.as_ref() {
            Val::Option(_) => single("some", val_to_json(inner)),
            other => val_to_json(other),
        },
        Val::Result(Ok(p)) => single("ok", p.as_deref().map_or(Value::Null, val_to_json)),
        Val::Result(Err(p)) => single("err", p.as_deref().map_or(Value::Null, val_to_json)),
        Val::Flags(names) => Value::Array(names.iter().map(|n| Value::String(n.clone())).collect()),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Value::Null,
    }
}

fn single(key: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), v);
    Value::Object(m)
}

/// Whether values of `ty` can cross JSON at all.
pub fn is_json_representable(ty: &Type) -> bool {
    match ty {
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            false
        }
        Type::List(l) => is_json_representable(&l.ty()),
        Type::FixedLengthList(l) => is_json_representable(&l.ty()),
        Type::Map(m) => is_json_representable(&m.key()) && is_json_representable(&m.value()),
        Type::Record(r) => r.fields().all(|f| is_json_representable(&f.ty)),
        Type::Tuple(t) => t.types().all(|t| is_json_representable(&t)),
        Type::Variant(v) => v
            .cases()
            .all(|c| c.ty.as_ref().is_none_or(is_json_representable)),
        Type::Option(o) => is_json_representable(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().is_none_or(is_json_representable)
                && r.err().as_ref().is_none_or(is_json_representable)
        }
        _ => true,
    }
}
