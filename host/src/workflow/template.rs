//! The template language of workflow plans: how a step's input is built
//! from the workflow input and earlier steps' outputs (docs/workflows.md,
//! "Templates").
//!
//! A template is any JSON value (written in TOML). Strings may hold
//! references `${path}`:
//!
//! ```text
//! path  := "input" seg*  |  "steps" "." step_id "." "output" seg*
//! seg   := "." name  |  "[" index "]"
//! ```
//!
//! A string that is exactly one reference (`"${input.order}"`) is replaced
//! by the referenced value, keeping its type; a string with text around
//! references is interpolated (strings verbatim, every other value as its
//! compact JSON). `$${` writes a literal `${`.
//!
//! The language is total: evaluation never fails and never loops. A path
//! that is absent at run time (an optional field, a skipped step) gives
//! `null` (`"null"` when interpolated); `warden workflow check` refuses
//! paths that can never exist. This module is pure: no I/O, no clock.

use crate::names::StepId;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Most segments one path may have after its root (`input.a.b` has 2):
/// bounds checking and evaluation work per reference.
pub const MAX_PATH_SEGMENTS: usize = 32;

/// Deepest nesting of arrays and objects in one template.
pub const MAX_DEPTH: usize = 32;

/// One step of a path: `.name` or `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// `.name`
    Field(String),
    /// `[index]`
    Index(usize),
}

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `input`: the workflow's input.
    Input,
    /// `steps.<id>.output`: an earlier step's output.
    Step(StepId),
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Where it starts.
    pub root: Root,
    /// What it reads below the root.
    pub segs: Vec<Seg>,
    /// The text as written (trimmed), for messages.
    pub text: String,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One piece of an interpolated string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A reference rendered as text.
    Ref(Path),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// A value with no references.
    Literal(Value),
    /// A string that is exactly one reference: the referenced value.
    Ref(Path),
    /// A string with text and references: always a string.
    Interpolate(Vec<Piece>),
    /// An object of templates.
    Object(BTreeMap<String, Template>),
    /// An array of templates.
    Array(Vec<Template>),
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// The string the problem is in (for locating it in the file).
    pub near: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// What a template is evaluated against.
pub struct Scope<'a> {
    /// The workflow's input.
    pub input: &'a Value,
    /// Outputs of the steps that have finished (a skipped step: absent or `null`).
    pub steps: &'a BTreeMap<String, Value>,
}

impl Template {
    /// Parses a template from its JSON form.
    pub fn parse(value: &Value) -> Result<Template, TemplateError> {
        parse_at(value, 0)
    }

    /// Every reference in the template, in order.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Path>) {
        match self {
            Template::Literal(_) => {}
            Template::Ref(p) => out.push(p),
            Template::Interpolate(pieces) => {
                for p in pieces {
                    if let Piece::Ref(p) = p {
                        out.push(p);
                    }
                }
            }
            Template::Object(m) => m.values().for_each(|t| t.collect(out)),
            Template::Array(items) => items.iter().for_each(|t| t.collect(out)),
        }
    }

    /// The value for `scope`. Total: an absent path gives `null`.
    pub fn eval(&self, scope: &Scope<'_>) -> Value {
        match self {
            Template::Literal(v) => v.clone(),
            Template::Ref(p) => lookup(p, scope).cloned().unwrap_or(Value::Null),
            Template::Interpolate(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Ref(p) => match lookup(p, scope) {
                            Some(Value::String(s)) => out.push_str(s),
                            Some(v) => out.push_str(&v.to_string()),
                            None => out.push_str("null"),
                        },
                    }
                }
                Value::String(out)
            }
            Template::Object(m) => {
                Value::Object(m.iter().map(|(k, t)| (k.clone(), t.eval(scope))).collect())
            }
            Template::Array(items) => Value::Array(items.iter().map(|t| t.eval(scope)).collect()),
        }
    }
}

fn lookup<'a>(path: &Path, scope: &Scope<'a>) -> Option<&'a Value> {
    let mut at = match &path.root {
        Root::Input => scope.input,
        Root::Step(id) => scope.steps.get(id.as_str())?,
    };
    for seg in &path.segs {
        at = match seg {
            Seg::Field(name) => at.as_object()?.get(name)?,
            Seg::Index(i) => at.as_array()?.get(*i)?,
        };
    }
    Some(at)
}

fn parse_at(value: &Value, depth: usize) -> Result<Template, TemplateError> {
    if depth > MAX_DEPTH {
        return Err(TemplateError {
            near: String::new(),
            message: format!("a template may nest arrays and tables at most {MAX_DEPTH} deep"),
        });
    }
    Ok(match value {
        Value::String(s) => parse_string(s)?,
        Value::Object(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                out.insert(k.clone(), parse_at(v, depth + 1)?);
            }
            if out.values().all(|t| matches!(t, Template::Literal(_))) {
                Template::Literal(value.clone())
            } else {
                Template::Object(out)
            }
        }
        Value::Array(items) => {
            let out = items
                .iter()
                .map(|v| parse_at(v, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if out.iter().all(|t| matches!(t, Template::Literal(_))) {
                Template::Literal(value.clone())
            } else {
                Template::Array(out)
            }
        }
        other => Template::Literal(other.clone()),
    })
}

fn parse_string(s: &str) -> Result<Template, TemplateError> {
    let fail = |message: String| TemplateError {
        near: s.to_string(),
        message,
    };
    let mut pieces: Vec<Piece> = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${` is a literal `${`.
            text.push_str(&rest[..at - 1]);
            text.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        text.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(fail(format!(
                "`{s}`: `${{` without a closing `}}` (write `$${{` for a literal `${{`)"
            )));
        };
        let path = parse_path(after[..end].trim()).map_err(|m| fail(format!("`{s}`: {m}")))?;
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Ref(path));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(match pieces.as_slice() {
        [] => Template::Literal(Value::String(String::new())),
        [Piece::Text(t)] => Template::Literal(Value::String(t.clone())),
        [Piece::Ref(p)] => Template::Ref(p.clone()),
        _ => Template::Interpolate(pieces),
    })
}

/// Parses the text between `${` and `}`.
pub fn parse_path(text: &str) -> Result<Path, String> {
    let segs = parse_segs(text)?;
    let mut iter = segs.into_iter();
    let root = match iter.next() {
        Some(Seg::Field(f)) if f == "input" => Root::Input,
        Some(Seg::Field(f)) if f == "steps" => {
            let id = match iter.next() {
                Some(Seg::Field(id)) => StepId::parse(&id)?,
                _ => return Err(format!("`{text}`: write `steps.<step id>.output…`")),
            };
            match iter.next() {
                Some(Seg::Field(o)) if o == "output" => Root::Step(id),
                _ => {
                    return Err(format!(
                        "`{text}`: a step is read through its output: `steps.{id}.output…`"
                    ));
                }
            }
        }
        _ => {
            return Err(format!(
                "`{text}`: a path starts with `input` or `steps.<step id>.output`"
            ));
        }
    };
    let segs: Vec<Seg> = iter.collect();
    if segs.len() > MAX_PATH_SEGMENTS {
        return Err(format!(
            "`{text}` has {} segments after its root; at most {MAX_PATH_SEGMENTS} are allowed",
            segs.len()
        ));
    }
    Ok(Path {
        root,
        segs,
        text: text.to_string(),
    })
}

fn parse_segs(text: &str) -> Result<Vec<Seg>, String> {
    let bad = |why: &str| format!("`{text}` is not a path: {why}");
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut first = true;
    while i < bytes.len() {
        match bytes[i] {
            b'.' if !first => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && name_char(bytes[j]) {
                    j += 1;
                }
                if j == start {
                    return Err(bad("expected a field name after `.`"));
                }
                out.push(Seg::Field(text[start..j].to_string()));
                i = j;
            }
            b'[' if !first => {
                let close = text[i..].find(']').ok_or_else(|| bad("`[` without `]`"))?;
                let index: usize = text[i + 1..i + close]
                    .parse()
                    .map_err(|_| bad("an index is a non-negative integer"))?;
                out.push(Seg::Index(index));
                i += close + 1;
            }
            c if first && name_char(c) => {
                let mut j = i;
                while j < bytes.len() && name_char(bytes[j]) {
                    j += 1;
                }
                out.push(Seg::Field(text[i..j].to_string()));
                i = j;
            }
            _ => return Err(bad("expected `.name` or `[index]`")),
        }
        first = false;
    }
    if out.is_empty() {
        return Err(bad("it is empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: Value) -> Template {
        Template::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    #[test]
    fn a_whole_string_reference_keeps_the_referenced_type() {
        let input = json!({"order": {"id": 7, "lines": [{"sku": "A"}]}});
        let steps = BTreeMap::from([("score".to_string(), json!({"risk": 0.5}))]);
        let scope = Scope {
            input: &input,
            steps: &steps,
        };
        let tpl = t(json!({
            "id": "${input.order.id}",
            "first": "${ input.order.lines[0].sku }",
            "risk": "${steps.score.output.risk}",
            "fixed": 3,
        }));
        assert_eq!(
            tpl.eval(&scope),
            json!({"id": 7, "first": "A", "risk": 0.5, "fixed": 3})
        );
    }

    #[test]
    fn interpolation_renders_strings_verbatim_and_other_values_as_json() {
        let input = json!({"name": "ann", "n": 2, "tags": ["x"]});
        let steps = BTreeMap::new();
        let scope = Scope {
            input: &input,
            steps: &steps,
        };
        assert_eq!(
            t(json!("${input.name} has ${input.n} ${input.tags}")).eval(&scope),
            json!("ann has 2 [\"x\"]")
        );
        assert_eq!(
            t(json!("cost: $${input.n}")).eval(&scope),
            json!("cost: ${input.n}")
        );
    }

    #[test]
    fn evaluation_is_total_an_absent_path_gives_null() {
        let input = json!({"a": 1});
        let steps = BTreeMap::new();
        let scope = Scope {
            input: &input,
            steps: &steps,
        };
        assert_eq!(t(json!("${input.b.c}")).eval(&scope), Value::Null);
        assert_eq!(t(json!("${input.a[3]}")).eval(&scope), Value::Null);
        assert_eq!(t(json!("${steps.gone.output}")).eval(&scope), Value::Null);
        assert_eq!(t(json!("x=${input.b}")).eval(&scope), json!("x=null"));
    }

    #[test]
    fn malformed_references_are_refused_with_the_text() {
        for bad in [
            "${input",
            "${}",
            "${output.x}",
            "${steps.x}",
            "${steps.x.result}",
            "${steps.Bad.output}",
            "${input..a}",
            "${input[x]}",
            "${input.a b}",
        ] {
            let e = Template::parse(&json!(bad)).expect_err(bad);
            assert!(e.message.contains('`'), "{bad}: {e}");
        }
    }

    #[test]
    fn a_path_longer_than_the_limit_is_refused() {
        let ok = format!("${{input{}}}", ".a".repeat(MAX_PATH_SEGMENTS));
        assert!(Template::parse(&json!(ok)).is_ok());
        let long = format!("${{input{}}}", ".a".repeat(MAX_PATH_SEGMENTS + 1));
        let e = Template::parse(&json!(long)).expect_err("too long");
        assert!(e.message.contains("at most 32"), "{e}");
    }

    #[test]
    fn a_template_nested_deeper_than_the_limit_is_refused() {
        let mut v = json!("${input}");
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        assert!(Template::parse(&v).is_ok());
        let v = json!([v]);
        assert!(Template::parse(&v).is_err());
    }

    #[test]
    fn paths_lists_every_reference_in_order() {
        let tpl = t(json!({"a": "${input.x}", "b": ["k ${steps.s.output.y}"]}));
        let texts: Vec<&str> = tpl.paths().iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["input.x", "steps.s.output.y"]);
    }
}
