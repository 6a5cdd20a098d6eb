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

/// The guest's output would serialise to more bytes than the budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the output exceeds {limit} bytes of JSON (conversion stopped at {reached} bytes)")]
pub struct OutputOverBudget {
    /// The budget, in bytes of compact JSON.
    pub limit: u64,
    /// How many bytes had been counted when conversion stopped.
    pub reached: u64,
}

/// Counts the bytes of compact JSON (`serde_json::to_vec`) as a value is
/// converted, and stops the conversion the moment they pass the limit.
struct Meter {
    used: u64,
    limit: u64,
}

impl Meter {
    fn add(&mut self, n: u64) -> Result<(), OutputOverBudget> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit {
            return Err(OutputOverBudget {
                limit: self.limit,
                reached: self.used,
            });
        }
        Ok(())
    }

    /// `s` as a JSON string: quotes plus escapes exactly as serde_json writes them.
    fn string(&mut self, s: &str) -> Result<(), OutputOverBudget> {
        let escaped: u64 = s
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
                0x00..=0x1f => 6,
                _ => 1,
            })
            .sum();
        self.add(escaped.saturating_add(2))
    }

    /// `n` more elements of an array or members of an object: brackets and
    /// separators.
    fn container(&mut self, n: usize) -> Result<(), OutputOverBudget> {
        self.add((n as u64).saturating_add(1).max(2))
    }
}

fn decimal_len(mut n: u128) -> u64 {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn int_json(meter: &mut Meter, n: i128) -> Result<Value, OutputOverBudget> {
    meter.add(decimal_len(n.unsigned_abs()) + u64::from(n < 0))?;
    Ok(match (i64::try_from(n), u64::try_from(n)) {
        (Ok(i), _) => Value::from(i),
        (_, Ok(u)) => Value::from(u),
        _ => Value::Null,
    })
}

/// Converts a component value back to JSON, counting the bytes of its
/// compact serialisation as it goes and stopping as soon as they pass
/// `limit` (the invocation's `max_output`): the host never builds more than
/// a budget's worth of JSON for a guest, however long the value. Values
/// come from the guest but are typed by wasmtime already, so nothing else
/// can fail; kinds that cannot cross JSON (resources, futures, streams)
/// become `null` and are refused at inspection time.
pub fn val_to_json(v: Val, limit: u64) -> Result<Value, OutputOverBudget> {
    let mut meter = Meter { used: 0, limit };
    to_json(v, &mut meter)
}

/// Takes the value apart as it converts it: strings, names and record keys
/// move into the JSON instead of being copied.
fn to_json(v: Val, m: &mut Meter) -> Result<Value, OutputOverBudget> {
    Ok(match v {
        Val::Bool(b) => {
            m.add(if b { 4 } else { 5 })?;
            Value::Bool(b)
        }
        Val::S8(n) => int_json(m, i128::from(n))?,
        Val::U8(n) => int_json(m, i128::from(n))?,
        Val::S16(n) => int_json(m, i128::from(n))?,
        Val::U16(n) => int_json(m, i128::from(n))?,
        Val::S32(n) => int_json(m, i128::from(n))?,
        Val::U32(n) => int_json(m, i128::from(n))?,
        Val::S64(n) => int_json(m, i128::from(n))?,
        Val::U64(n) => int_json(m, i128::from(n))?,
        Val::Float32(f) => counted(m, json_float(f64::from(f)))?,
        Val::Float64(f) => counted(m, json_float(f))?,
        Val::Char(c) => {
            let mut buf = [0u8; 4];
            let s: &str = c.encode_utf8(&mut buf);
            m.string(s)?;
            Value::String(s.to_string())
        }
        Val::String(s) => {
            m.string(&s)?;
            Value::String(s)
        }
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            m.container(items.len())?;
            let mut out = Vec::new();
            for item in items {
                out.push(to_json(item, m)?);
            }
            Value::Array(out)
        }
        Val::Map(pairs) => {
            m.container(pairs.len())?;
            let mut out = Vec::new();
            for (k, v) in pairs {
                m.container(2)?;
                let k = to_json(k, m)?;
                out.push(Value::Array(vec![k, to_json(v, m)?]));
            }
            Value::Array(out)
        }
        Val::Record(fields) => {
            m.container(fields.len())?;
            let mut out = Map::new();
            for (k, v) in fields {
                m.string(&k)?;
                m.add(1)?;
                let v = to_json(v, m)?;
                out.insert(k, v);
            }
            Value::Object(out)
        }
        Val::Variant(name, None) | Val::Enum(name) => {
            m.string(&name)?;
            Value::String(name)
        }
        Val::Variant(name, Some(p)) => single_json(m, &name, Some(*p))?,
        Val::Option(None) => {
            m.add(4)?;
            Value::Null
        }
        Val::Option(Some(inner)) => match *inner {
            inner @ Val::Option(_) => single_json(m, "some", Some(inner))?,
            other => to_json(other, m)?,
        },
        Val::Result(Ok(p)) => single_json(m, "ok", p.map(|p| *p))?,
        Val::Result(Err(p)) => single_json(m, "err", p.map(|p| *p))?,
        Val::Flags(names) => {
            m.container(names.len())?;
            let mut out = Vec::new();
            for n in names {
                m.string(&n)?;
                out.push(Value::String(n));
            }
            Value::Array(out)
        }
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
            m.add(4)?;
            Value::Null
        }
    })
}

/// `{"key": payload}` (`null` without a payload).
fn single_json(m: &mut Meter, key: &str, payload: Option<Val>) -> Result<Value, OutputOverBudget> {
    m.container(1)?;
    m.string(key)?;
    m.add(1)?;
    let v = match payload {
        Some(p) => to_json(p, m)?,
        None => {
            m.add(4)?;
            Value::Null
        }
    };
    Ok(single(key, v))
}

/// A scalar whose length is easiest to count by writing it (floats).
fn counted(m: &mut Meter, v: Value) -> Result<Value, OutputOverBudget> {
    m.add(serialized_len(&v))?;
    Ok(v)
}

/// Length of `serde_json::to_vec(value)`, counted without building it.
pub fn serialized_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len() as u64);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => u64::MAX,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn val() -> impl Strategy<Value = Val> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Val::Bool),
            any::<i8>().prop_map(Val::S8),
            any::<u64>().prop_map(Val::U64),
            any::<i64>().prop_map(Val::S64),
            any::<f32>().prop_map(Val::Float32),
            any::<f64>().prop_map(Val::Float64),
            any::<char>().prop_map(Val::Char),
            ".{0,12}".prop_map(Val::String),
            "[a-z]{1,6}".prop_map(Val::Enum),
            Just(Val::Option(None)),
            Just(Val::Result(Ok(None))),
            prop::collection::vec("[a-z]{1,5}", 0..4).prop_map(Val::Flags),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Val::List),
                prop::collection::vec(inner.clone(), 1..4).prop_map(Val::Tuple),
                prop::collection::vec(("[a-z]{1,6}", inner.clone()), 1..4).prop_map(|f| {
                    // Record field names are unique in WIT.
                    let mut seen = std::collections::BTreeSet::new();
                    Val::Record(
                        f.into_iter()
                            .filter(|(k, _)| seen.insert(k.clone()))
                            .collect(),
                    )
                }),
                prop::collection::vec((inner.clone(), inner.clone()), 0..3).prop_map(Val::Map),
                ("[a-z]{1,6}", inner.clone()).prop_map(|(n, p)| Val::Variant(n, Some(Box::new(p)))),
                inner.clone().prop_map(|p| Val::Option(Some(Box::new(p)))),
                inner
                    .clone()
                    .prop_map(|p| Val::Result(Err(Some(Box::new(p))))),
            ]
        })
    }

    proptest! {
        /// The meter counts exactly the bytes serde_json writes: a value
        /// converts within a budget of its own size and not within one byte less.
        #[test]
        fn the_output_meter_counts_the_exact_serialized_length(v in val()) {
            let json = val_to_json(v.clone(), u64::MAX).expect("no limit");
            let len = serialized_len(&json);
            let within = val_to_json(v.clone(), len);
            prop_assert_eq!(within.as_ref(), Ok(&json));
            prop_assert!(val_to_json(v.clone(), len - 1).is_err());
        }

    }

    #[test]
    fn a_long_list_stops_converting_at_the_budget_not_at_its_end() {
        // Its separators alone pass the budget: refused before any element.
        let long = Val::List(vec![Val::Result(Ok(None)); 1_000_000]);
        let err = val_to_json(long, 1000).expect_err("over budget");
        assert_eq!(err.limit, 1000);
        // Separators fit, elements do not: stops within one element of it.
        let some = Val::List(vec![Val::Result(Ok(None)); 400]);
        let err = val_to_json(some, 1000).expect_err("over budget");
        assert!(err.reached <= 1000 + 11, "{err:?}");
    }
}
