//! The shape of an operator's TOML file — which keys each table may hold and
//! what kind of value each key takes — checked over the whole document, so
//! every misspelt key and every mistyped value is reported at once.
//!
//! serde stops at the first problem (`fule = 5` hides `wall_time = 1`
//! below it). The loaders (policies, warden.toml) parse with serde as
//! before; only when that fails do they call [`check`], which walks the
//! whole document against a [`Field`] table and returns every problem it
//! finds, each with its byte span and a message in words ("a duration: a
//! string with a unit such as \"1s\""), never a Rust type name. When the
//! walk finds nothing, the loader reports serde's error as it was.
//!
//! Pure: no I/O. It never decides that a file is valid — semantic checks
//! (names, ranges, references) stay with each loader.

use crate::units::{ByteSize, HumanDuration};
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// What one key takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Any string.
    Text,
    /// A non-negative integer.
    Count,
    /// `true` or `false`.
    Flag,
    /// A duration string (`"500ms"`, `"2s"`).
    Duration,
    /// A byte size: an integer, or a string with a unit (`"16MiB"`).
    Size,
    /// Fuel: an integer, or `"off"`.
    Fuel,
    /// An array of strings.
    TextList,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A table with these keys.
    Table(&'static [Field]),
    /// An array of tables, each with these keys (`[[principal]]`).
    Tables(&'static [Field]),
    /// A table whose keys are names chosen by the operator, each value of
    /// this kind (`[capability.<name>]`, `[testing.transient_faults]`).
    Named(&'static Kind),
    /// Anything; its loader checks it (`[imports]` grants).
    Any,
}

/// A key and the kind of its value.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The key as written.
    pub key: &'static str,
    /// What it takes.
    pub kind: Kind,
}

/// Shorthand for a [`Field`] table entry.
pub const fn field(key: &'static str, kind: Kind) -> Field {
    Field { key, kind }
}

/// One problem: where (byte span in the text) and what, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte span of the key or value at fault.
    pub span: Range<usize>,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Every problem of `text` against `root`: syntax errors (all of them, as
/// far as the parser can recover), unknown keys and mistyped values, in
/// file order.
pub fn check(text: &str, root: &'static [Field]) -> Vec<Problem> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    let mut problems: Vec<Problem> = errors
        .iter()
        .map(|e| {
            let span = e.span().unwrap_or(0..0);
            let mut message = e.message().trim().to_owned();
            if message == "duplicate key"
                && let Some(key) = text.get(span.clone())
            {
                message = format!("duplicate key `{}`: each key may appear once", key.trim());
            }
            Problem { span, message }
        })
        .collect();
    table(doc.get_ref(), root, "", &mut problems);
    problems.sort_by_key(|p| p.span.start);
    problems
}

fn table(t: &DeTable<'_>, fields: &'static [Field], path: &str, out: &mut Vec<Problem>) {
    for (key, value) in t.iter() {
        let name: &str = key.get_ref();
        match fields.iter().find(|f| f.key == name) {
            Some(f) => kind(
                value.get_ref(),
                value.span(),
                &f.kind,
                &join(path, name),
                out,
            ),
            None => out.push(Problem {
                span: key.span(),
                message: unknown(name, path, fields),
            }),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown(name: &str, path: &str, fields: &[Field]) -> String {
    let place = if path.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in [{path}]")
    };
    let known: Vec<&str> = fields.iter().map(|f| f.key).collect();
    let hint = known
        .iter()
        .find(|k| close(name, k))
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    format!(
        "unknown key `{name}` {place}{hint} (known: {})",
        known.join(", ")
    )
}

/// Whether `a` is one edit (or one swap of neighbours) from `b`.
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match ra.len() as isize - rb.len() as isize {
        0 => {
            ra.get(1..) == rb.get(1..)
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        1 => ra.get(1..) == Some(rb),
        -1 => rb.get(1..) == Some(ra),
        _ => false,
    }
}

/// What a value is, for a message: "the integer 1", "a table".
fn found(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {:?}", s.as_ref()),
        DeValue::Integer(i) => format!("the integer {}", i.as_str()),
        DeValue::Float(_) => "a decimal number".to_owned(),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(_) => "a date".to_owned(),
        DeValue::Array(_) => "a list".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

fn integer(v: &DeValue<'_>) -> Option<Result<u64, ()>> {
    match v {
        DeValue::Integer(i) => Some(u64::from_str_radix(i.as_str(), i.radix()).map_err(|_| ())),
        _ => None,
    }
}

fn kind(v: &DeValue<'_>, span: Range<usize>, k: &Kind, path: &str, out: &mut Vec<Problem>) {
    let mut wrong = |expected: &str| {
        out.push(Problem {
            span: span.clone(),
            message: format!("`{path}` must be {expected} (found {})", found(v)),
        })
    };
    match k {
        Kind::Any => {}
        Kind::Text => {
            if !matches!(v, DeValue::String(_)) {
                wrong("a string, in quotes");
            }
        }
        Kind::Flag => {
            if !matches!(v, DeValue::Boolean(_)) {
                wrong("true or false");
            }
        }
        Kind::Count => match integer(v) {
            Some(Ok(_)) => {}
            Some(Err(())) => wrong("a whole number from 0 to 18446744073709551615"),
            None => wrong("a whole number, without quotes"),
        },
        Kind::Duration => match v {
            DeValue::String(s) => {
                if let Err(why) = HumanDuration::parse(s) {
                    out.push(Problem {
                        span,
                        message: format!("`{path}`: {why}"),
                    });
                }
            }
            _ => wrong("a duration: a string with a unit, such as \"500ms\", \"2s\" or \"4h\""),
        },
        Kind::Size => match (v, integer(v)) {
            (_, Some(Ok(_))) => {}
            (DeValue::String(s), _) => {
                if let Err(why) = ByteSize::parse(s) {
                    out.push(Problem {
                        span,
                        message: format!("`{path}`: {why}"),
                    });
                }
            }
            _ => wrong(
                "a size: a number of bytes, or a string with a unit such as \"64KiB\" or \"16MiB\"",
            ),
        },
        Kind::Fuel => match (v, integer(v)) {
            (_, Some(Ok(_))) => {}
            (DeValue::String(s), _) if s.as_ref() == "off" => {}
            _ => wrong("a number of fuel units (e.g. 100_000_000), or \"off\""),
        },
        Kind::TextList => match v {
            DeValue::Array(items) => {
                for item in items.iter() {
                    if !matches!(item.get_ref(), DeValue::String(_)) {
                        out.push(Problem {
                            span: item.span(),
                            message: format!(
                                "`{path}` must be a list of strings (found {} in it)",
                                found(item.get_ref())
                            ),
                        });
                    }
                }
            }
            _ => wrong("a list of strings, such as [\"a\", \"b\"]"),
        },
        Kind::OneOf(options) => {
            let listed = options
                .iter()
                .map(|o| format!("\"{o}\""))
                .collect::<Vec<_>>()
                .join(", ");
            match v {
                DeValue::String(s) if options.contains(&s.as_ref()) => {}
                _ => wrong(&format!("one of {listed}")),
            }
        }
        Kind::Table(fields) => match v {
            DeValue::Table(t) => table(t, fields, path, out),
            _ => wrong("a table"),
        },
        Kind::Tables(fields) => match v {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(t) => table(t, fields, path, out),
                        other => out.push(Problem {
                            span: item.span(),
                            message: format!("`{path}` must hold tables (found {})", found(other)),
                        }),
                    }
                }
            }
            _ => wrong(&format!("a list of tables, written [[{path}]]")),
        },
        Kind::Named(each) => match v {
            DeValue::Table(t) => {
                for (key, value) in t.iter() {
                    let name: &str = key.get_ref();
                    kind(value.get_ref(), value.span(), each, &join(path, name), out);
                }
            }
            _ => wrong("a table"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: &[Field] = &[
        field("fuel", Kind::Fuel),
        field("wall_time", Kind::Duration),
        field("memory", Kind::Size),
    ];
    const ROOT: &[Field] = &[
        field("budget", Kind::Table(BUDGET)),
        field("name", Kind::Text),
    ];

    fn messages(text: &str) -> Vec<String> {
        check(text, ROOT).into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn every_unknown_key_and_mistyped_value_is_reported_at_once() {
        let m = messages("[budget]\nfule = 5\nwall_time = 1\nmemory = true\n");
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(
            m[0].contains("unknown key `fule` in [budget]; did you mean `fuel`?"),
            "{m:?}"
        );
        assert!(
            m[1].contains("`budget.wall_time` must be a duration"),
            "{m:?}"
        );
        assert!(m[1].contains("found the integer 1"), "{m:?}");
        assert!(m[2].contains("`budget.memory` must be a size"), "{m:?}");
    }

    #[test]
    fn a_duplicate_key_is_named() {
        let m = messages("name = \"a\"\nname = \"b\"\n");
        assert!(
            m.iter().any(|m| m.contains("duplicate key `name`")),
            "{m:?}"
        );
    }

    #[test]
    fn a_bad_duration_string_says_what_a_duration_looks_like() {
        let m = messages("[budget]\nwall_time = \"soon\"\n");
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("is not a duration"), "{m:?}");
    }

    #[test]
    fn a_well_formed_document_has_no_problems() {
        assert!(messages("name = \"x\"\n[budget]\nfuel = \"off\"\nmemory = \"1MiB\"\n").is_empty());
    }

    #[test]
    fn near_misses_are_suggested_and_far_ones_are_not() {
        assert!(close("fule", "fuel"));
        assert!(close("memry", "memory"));
        assert!(close("wall_times", "wall_time"));
        assert!(!close("colour", "fuel"));
    }
}
