//! Workflow plan files (`workflows/<name>.toml`): syntax → typed [`Plan`],
//! every problem at once with `file:line:col`, and the plan's canonical
//! form and hash (docs/workflows.md, "Plan files").
//!
//! This module checks what one file can say about itself: keys, step ids,
//! `call` names, templates, predicates, approval settings, the declared
//! input schema. What needs the whole graph or the capabilities (cycles,
//! unknown steps and functions, types) is `check.rs`. It must never do I/O
//! beyond [`Plan::load`] reading the file it is handed.

use super::template::{Template, TemplateError};
use crate::diagnostic::{Diagnostic, Diagnostics, line_col};
use crate::digest::Hash256;
use crate::names::{StepId, WorkflowName};
use crate::policy::approval::{Approver, DEFAULT_EXPIRY, Mode};
use crate::policy::predicate::Predicate;
use crate::policy::{HumanDuration, RetryPolicy};
use serde::Deserialize;
use serde_json::{Value, json};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Most steps one plan may have.
pub const MAX_STEPS: usize = 256;

/// Largest `max_parallel` accepted (steps of one run in flight at once).
pub const MAX_PARALLEL: u32 = 64;

/// Default `max_parallel`.
pub const DEFAULT_PARALLEL: u32 = 4;

/// Longest per-step `timeout`: one hour. A step waiting longer is a human
/// checkpoint's job (an approval step), not a call's.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Roots a step's `when` predicate may read.
pub const WHEN_ROOTS: &[&str] = &["input", "steps"];

/// JSON Schema keywords the declared input may use (the ones warden
/// validates); anything else is refused rather than silently ignored.
pub const INPUT_SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "anyOf",
    "oneOf",
    "description",
    "title",
    "$schema",
];

/// A validated plan (syntax and each step on its own; see `check` for the graph).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file it was read from.
    pub source: PathBuf,
    /// The file's text (for locating problems found later).
    pub text: String,
    /// The workflow's name.
    pub name: WorkflowName,
    /// Free text for operators.
    pub description: Option<String>,
    /// Steps of one run in flight at once.
    pub max_parallel: u32,
    /// The declared input type (JSON Schema, closed objects).
    pub input: Value,
    /// Byte span of `[input]` in the text.
    pub input_at: Range<usize>,
    /// The steps, in file order ("plan order").
    pub steps: Vec<Step>,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// A governed invocation of a capability's function.
    Call(Call),
    /// A human checkpoint.
    Approval(Gate),
}

/// `call = "capability.function"` with its input template.
#[derive(Debug, Clone)]
pub struct Call {
    /// Capability name.
    pub capability: String,
    /// Function as written (export id or `iface#func`).
    pub function: String,
    /// The input template as written (JSON), for the canonical form.
    pub input_written: Value,
    /// The parsed input template.
    pub input: Template,
    /// Span of the `call` value.
    pub call_at: Range<usize>,
    /// Span of the `input` value (the `call` value when there is none).
    pub input_at: Range<usize>,
}

/// An approval step.
#[derive(Debug, Clone)]
pub struct Gate {
    /// `single` or `dual`.
    pub mode: Mode,
    /// Who may approve; anyone with the `approve` role when empty.
    pub approvers: Vec<Approver>,
    /// How long the run waits before the step fails as `approval_expired`.
    pub expires: Duration,
}

/// What undoes a step when a run is compensated.
#[derive(Debug, Clone)]
pub enum Compensation {
    /// The plan says nothing.
    Undeclared,
    /// `compensate = "none"`: the step changes nothing that needs undoing.
    Nothing,
    /// `compensate = { call = …, input = … }`.
    Call(Box<Call>),
}

/// One `[[step]]`.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its id.
    pub id: StepId,
    /// Span of the id.
    pub id_at: Range<usize>,
    /// Steps that must finish first, as written, each with its span.
    pub needs: Vec<(String, Range<usize>)>,
    /// What it does.
    pub action: Action,
    /// Runs only when this holds (otherwise recorded as skipped).
    pub when: Option<Predicate>,
    /// Span of the `when` value.
    pub when_at: Range<usize>,
    /// The point of no return.
    pub pivot: bool,
    /// Span of `pivot`.
    pub pivot_at: Range<usize>,
    /// Per-attempt timeout (the capability's `wall_time` otherwise).
    pub timeout: Option<Duration>,
    /// Retries by failure class (the capability's `[retry]` otherwise).
    pub retry: Option<RetryPolicy>,
    /// What undoes it.
    pub compensate: Compensation,
    /// Span of `compensate`.
    pub compensate_at: Range<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    max_parallel: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    #[serde(default)]
    call: Option<Spanned<String>>,
    #[serde(default)]
    approval: Option<Spanned<RawApproval>>,
    #[serde(default)]
    needs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    input: Option<Spanned<toml::Value>>,
    #[serde(default)]
    when: Option<Spanned<String>>,
    #[serde(default)]
    pivot: Option<Spanned<bool>>,
    #[serde(default)]
    timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default)]
    compensate: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    mode: Spanned<Mode>,
    #[serde(default)]
    approvers: Vec<Spanned<String>>,
    #[serde(default)]
    expires: Option<Spanned<HumanDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompensation {
    call: String,
    #[serde(default)]
    input: Option<toml::Value>,
}

/// Collects problems located in one file.
pub(crate) struct Problems<'a> {
    source: &'a Path,
    text: &'a str,
    pub(crate) list: Vec<Diagnostic>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(source: &'a Path, text: &'a str) -> Problems<'a> {
        Problems {
            source,
            text,
            list: Vec::new(),
        }
    }

    pub(crate) fn at(&mut self, offset: usize, message: String) {
        let (line, column) = line_col(self.text, offset);
        self.list.push(Diagnostic {
            file: self.source.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message,
        });
    }

    /// At the first occurrence of `needle` inside `span` (e.g. one
    /// reference inside a template), else at the start of `span`.
    pub(crate) fn near(&mut self, span: &Range<usize>, needle: &str, message: String) {
        let offset = self
            .text
            .get(span.clone())
            .and_then(|s| {
                if needle.is_empty() {
                    None
                } else {
                    s.find(needle)
                }
            })
            .map_or(span.start, |i| span.start + i);
        self.at(offset, message);
    }

    fn toml(&mut self, e: &toml::de::Error) {
        match e.span() {
            Some(s) => self.at(s.start, e.message().trim().to_string()),
            None => self.list.push(Diagnostic {
                file: self.source.to_path_buf(),
                line: None,
                column: None,
                message: e.message().trim().to_string(),
            }),
        }
    }

    pub(crate) fn finish(self) -> Result<(), Diagnostics> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(Diagnostics(self.list))
        }
    }
}

impl Plan {
    /// Reads and validates a plan file. The workflow's name is the file
    /// stem unless `[workflow] name` says otherwise.
    pub fn load(path: &Path) -> Result<Plan, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                line: None,
                column: None,
                message: format!("cannot read workflow plan: {e}"),
            }])
        })?;
        Plan::parse(path, &text)
    }

    /// Validates plan `text` read from `source`, collecting every problem.
    pub fn parse(source: &Path, text: &str) -> Result<Plan, Diagnostics> {
        let mut p = Problems::new(source, text);
        let root = match toml::de::DeTable::parse(text) {
            Ok(r) => r,
            Err(e) => {
                p.toml(&e);
                return Err(Diagnostics(p.list));
            }
        };
        let mut header = None;
        let mut input: Option<(Value, Range<usize>)> = None;
        let mut raw_steps = Vec::new();
        for (key, value) in root.into_inner() {
            let span = value.span();
            match key.get_ref().as_ref() {
                "workflow" => {
                    match RawHeader::deserialize(toml::de::ValueDeserializer::from(value)) {
                        Ok(h) => header = Some(h),
                        Err(e) => p.toml(&e),
                    }
                }
                "input" => match Spanned::<toml::Value>::deserialize(
                    toml::de::ValueDeserializer::from(value),
                ) {
                    Ok(v) => match serde_json::to_value(v.get_ref()) {
                        Ok(json) => input = Some((json, span)),
                        Err(e) => p.at(span.start, format!("[input]: {e}")),
                    },
                    Err(e) => p.toml(&e),
                },
                "step" => match value.into_inner() {
                    toml::de::DeValue::Array(items) => {
                        for item in items {
                            match RawStep::deserialize(toml::de::ValueDeserializer::from(item)) {
                                Ok(s) => raw_steps.push(s),
                                Err(e) => p.toml(&e),
                            }
                        }
                    }
                    _ => p.at(
                        span.start,
                        "`step` must be an array of tables: write each step as `[[step]]`".into(),
                    ),
                },
                other => p.at(
                    key.span().start,
                    format!(
                        "unknown key `{other}`: a plan holds `[workflow]`, `[input]` and `[[step]]`"
                    ),
                ),
            }
        }
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match header.as_ref().and_then(|h| h.name.as_ref()) {
            Some(n) => match WorkflowName::parse(n.get_ref()) {
                Ok(name) => Some(name),
                Err(e) => {
                    p.at(n.span().start, e);
                    None
                }
            },
            None => match WorkflowName::parse(&stem) {
                Ok(name) => Some(name),
                Err(e) => {
                    p.at(0, format!("{e}; rename the file or set `[workflow] name`"));
                    None
                }
            },
        };
        let max_parallel = match header.as_ref().and_then(|h| h.max_parallel.as_ref()) {
            None => DEFAULT_PARALLEL,
            Some(m) => match u32::try_from(*m.get_ref()) {
                Ok(n) if (1..=MAX_PARALLEL).contains(&n) => n,
                _ => {
                    p.at(
                        m.span().start,
                        format!(
                            "max_parallel = {} is out of range: 1 to {MAX_PARALLEL}",
                            m.get_ref()
                        ),
                    );
                    DEFAULT_PARALLEL
                }
            },
        };
        let (input, input_at) = match input {
            Some((schema, span)) => {
                check_input_schema(&schema, "input", &span, &mut p);
                (schema, span)
            }
            None => {
                p.at(
                    0,
                    "the plan declares no `[input]` type: add an `[input]` table (a JSON Schema; `type = \"object\"` with `properties`)".into(),
                );
                (json!({}), 0..0)
            }
        };
        if raw_steps.is_empty() && p.list.is_empty() {
            p.at(0, "the plan has no `[[step]]`".into());
        }
        if raw_steps.len() > MAX_STEPS {
            p.at(
                0,
                format!(
                    "the plan has {} steps; at most {MAX_STEPS} are allowed",
                    raw_steps.len()
                ),
            );
        }
        let mut steps: Vec<Step> = Vec::new();
        for raw in raw_steps {
            if let Some(step) = compile_step(raw, &mut p) {
                if let Some(first) = steps.iter().find(|s| s.id == step.id) {
                    let (line, _) = line_col(text, first.id_at.start);
                    p.at(
                        step.id_at.start,
                        format!(
                            "duplicate step id `{}` (first defined at line {line})",
                            step.id
                        ),
                    );
                    continue;
                }
                steps.push(step);
            }
        }
        let pivots: Vec<&Step> = steps.iter().filter(|s| s.pivot).collect();
        if let [first, rest @ ..] = pivots.as_slice() {
            for extra in rest {
                p.at(
                    extra.pivot_at.start,
                    format!(
                        "step `{}` is a second pivot (the first is `{}`): a plan has at most one point of no return",
                        extra.id, first.id
                    ),
                );
            }
        }
        p.finish()?;
        let Some(name) = name else {
            return Err(Diagnostics(Vec::new()));
        };
        Ok(Plan {
            source: source.to_path_buf(),
            text: text.to_string(),
            name,
            description: header.and_then(|h| h.description),
            max_parallel,
            input,
            input_at,
            steps,
        })
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id.as_str() == id)
    }

    /// The pivot step, if any.
    pub fn pivot(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.pivot)
    }

    /// The canonical form: what the plan means, without layout or comments.
    /// Its hash ([`Plan::hash`]) is what a run pins and the audit records.
    pub fn canonical(&self) -> Value {
        let steps: Vec<Value> = self.steps.iter().map(Step::canonical).collect();
        json!({
            "format": "warden-workflow-v1",
            "name": self.name.as_str(),
            "description": self.description,
            "max_parallel": self.max_parallel,
            "input": self.input,
            "steps": steps,
        })
    }

    /// SHA-256 of the canonical JSON of [`Plan::canonical`].
    pub fn hash(&self) -> Hash256 {
        Hash256::of_json(&self.canonical())
    }
}

impl Step {
    /// The step's canonical form (part of [`Plan::canonical`]).
    pub fn canonical(&self) -> Value {
        let mut needs: Vec<&str> = self.needs.iter().map(|(n, _)| n.as_str()).collect();
        needs.sort_unstable();
        needs.dedup();
        let mut out = json!({
            "id": self.id.as_str(),
            "needs": needs,
            "when": self.when.as_ref().map(Predicate::source),
            "pivot": self.pivot,
            "timeout_ms": self.timeout.map(|d| d.as_millis() as u64),
            "retry": self.retry.map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
        });
        let compensate = match &self.compensate {
            Compensation::Undeclared => Value::Null,
            Compensation::Nothing => json!("none"),
            Compensation::Call(c) => call_canonical(c),
        };
        if let Value::Object(m) = &mut out {
            match &self.action {
                Action::Call(c) => {
                    m.insert("call".into(), call_canonical(c));
                }
                Action::Approval(g) => {
                    let approvers: Vec<String> =
                        g.approvers.iter().map(ToString::to_string).collect();
                    m.insert(
                        "approval".into(),
                        json!({
                            "mode": g.mode.as_str(),
                            "approvers": approvers,
                            "expires_ms": g.expires.as_millis() as u64,
                        }),
                    );
                }
            }
            m.insert("compensate".into(), compensate);
        }
        out
    }
}

fn call_canonical(c: &Call) -> Value {
    json!({
        "capability": c.capability,
        "function": c.function,
        "input": c.input_written,
    })
}

/// Splits `capability.function` (capability names never hold a `.`).
fn split_call(text: &str) -> Result<(String, String), String> {
    match text.split_once('.') {
        Some((cap, func)) if crate::policy::is_kebab_name(cap) && !func.trim().is_empty() => {
            Ok((cap.to_string(), func.to_string()))
        }
        _ => Err(format!(
            "call `{text}` must be `capability.function` (e.g. `order-notes.append`)"
        )),
    }
}

fn template(
    value: Option<&Spanned<toml::Value>>,
    fallback: &Range<usize>,
    p: &mut Problems<'_>,
) -> Option<(Value, Template, Range<usize>)> {
    let Some(v) = value else {
        return Some((json!({}), Template::Literal(json!({})), fallback.clone()));
    };
    let span = v.span();
    let json = match serde_json::to_value(v.get_ref()) {
        Ok(j) => j,
        Err(e) => {
            p.at(span.start, format!("input: {e}"));
            return None;
        }
    };
    match Template::parse(&json) {
        Ok(t) => Some((json, t, span)),
        Err(TemplateError { near, message }) => {
            p.near(&span, &near, message);
            None
        }
    }
}

fn compile_call(
    call: &Spanned<String>,
    input: Option<&Spanned<toml::Value>>,
    p: &mut Problems<'_>,
) -> Option<Call> {
    let (capability, function) = match split_call(call.get_ref()) {
        Ok(parts) => parts,
        Err(e) => {
            p.at(call.span().start, e);
            return None;
        }
    };
    let (input_written, input, input_at) = template(input, &call.span(), p)?;
    Some(Call {
        capability,
        function,
        input_written,
        input,
        call_at: call.span(),
        input_at,
    })
}

fn compile_step(raw: RawStep, p: &mut Problems<'_>) -> Option<Step> {
    let id_at = raw.id.span();
    let id = match StepId::parse(raw.id.get_ref()) {
        Ok(id) => id,
        Err(e) => {
            p.at(id_at.start, e);
            return None;
        }
    };
    let before = p.list.len();
    let action = match (&raw.call, &raw.approval) {
        (Some(call), None) => compile_call(call, raw.input.as_ref(), p).map(Action::Call),
        (None, Some(gate)) => {
            if let Some(input) = &raw.input {
                p.at(
                    input.span().start,
                    format!("step `{id}`: an approval step takes no `input`"),
                );
            }
            compile_gate(&id, gate, p).map(Action::Approval)
        }
        (Some(_), Some(gate)) => {
            p.at(
                gate.span().start,
                format!("step `{id}` has both `call` and `approval`: a step is one or the other"),
            );
            None
        }
        (None, None) => {
            p.at(
                id_at.start,
                format!("step `{id}` has neither `call = \"capability.function\"` nor `approval = {{ … }}`"),
            );
            None
        }
    };
    let when = raw.when.as_ref().and_then(|w| {
        match Predicate::parse_with_roots(w.get_ref(), WHEN_ROOTS) {
            Ok(pred) => Some(pred),
            Err(e) => {
                p.at(
                    w.span().start,
                    format!("step `{id}`: `when` does not parse {e}"),
                );
                None
            }
        }
    });
    let needs: Vec<(String, Range<usize>)> = raw
        .needs
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.get_ref().clone(), n.span()))
        .collect();
    for (n, span) in &needs {
        if n == id.as_str() {
            p.at(span.start, format!("step `{id}` needs itself"));
        }
    }
    let pivot = raw.pivot.as_ref().is_some_and(|v| *v.get_ref());
    if pivot && matches!(action, Some(Action::Approval(_))) {
        p.at(
            raw.pivot.as_ref().map_or(id_at.start, |v| v.span().start),
            format!("step `{id}`: an approval cannot be the pivot; mark the call it approves"),
        );
    }
    if let Some(t) = &raw.timeout {
        let d = t.get_ref().get();
        if d.is_zero() {
            p.at(
                t.span().start,
                format!("step `{id}`: `timeout` must be longer than 0s"),
            );
        } else if d > MAX_STEP_TIMEOUT {
            p.at(
                t.span().start,
                format!(
                    "step `{id}`: `timeout` of {} is over the limit of 1h: a step that waits longer belongs behind an approval step",
                    t.get_ref()
                ),
            );
        }
        if matches!(action, Some(Action::Approval(_))) {
            p.at(
                t.span().start,
                format!(
                    "step `{id}`: an approval step takes no `timeout` (its `expires` bounds it)"
                ),
            );
        }
    }
    let compensate_at = raw.compensate.as_ref().map_or(id_at.clone(), Spanned::span);
    let compensate = match &raw.compensate {
        None => Compensation::Undeclared,
        Some(v) => match v.get_ref() {
            toml::Value::String(s) if s == "none" => Compensation::Nothing,
            toml::Value::Table(_) => {
                match RawCompensation::deserialize(v.get_ref().clone()) {
                    Ok(c) => {
                        // Spans inside a re-deserialised table are lost: locate by text.
                        let call = Spanned::new(compensate_at.clone(), c.call);
                        let input = c.input.map(|i| Spanned::new(compensate_at.clone(), i));
                        match compile_call(&call, input.as_ref(), p) {
                            Some(call) => Compensation::Call(Box::new(call)),
                            None => Compensation::Undeclared,
                        }
                    }
                    Err(e) => {
                        p.at(
                            compensate_at.start,
                            format!("step `{id}`: compensate: {}", e.message().trim()),
                        );
                        Compensation::Undeclared
                    }
                }
            }
            _ => {
                p.at(
                    compensate_at.start,
                    format!(
                        "step `{id}`: `compensate` is `{{ call = \"capability.function\", input = {{ … }} }}` or \"none\""
                    ),
                );
                Compensation::Undeclared
            }
        },
    };
    if matches!(action, Some(Action::Approval(_))) && raw.compensate.is_some() {
        p.at(
            compensate_at.start,
            format!("step `{id}`: an approval step has nothing to compensate"),
        );
    }
    if p.list.len() > before {
        return None;
    }
    Some(Step {
        id,
        id_at,
        needs,
        action: action?,
        when,
        when_at: raw.when.as_ref().map_or(0..0, Spanned::span),
        pivot,
        pivot_at: raw.pivot.as_ref().map_or(0..0, Spanned::span),
        timeout: raw.timeout.map(|t| t.get_ref().get()),
        retry: raw.retry,
        compensate,
        compensate_at,
    })
}

fn compile_gate(id: &StepId, gate: &Spanned<RawApproval>, p: &mut Problems<'_>) -> Option<Gate> {
    let g = gate.get_ref();
    let before = p.list.len();
    let mode = *g.mode.get_ref();
    if mode == Mode::None {
        p.at(
            g.mode.span().start,
            format!("step `{id}`: an approval step's mode is \"single\" or \"dual\" (use `when` to skip it)"),
        );
    }
    let mut approvers = Vec::new();
    for a in &g.approvers {
        match Approver::parse(a.get_ref()) {
            Ok(a) => approvers.push(a),
            Err(e) => p.at(a.span().start, format!("step `{id}`: {e}")),
        }
    }
    let expires = g
        .expires
        .as_ref()
        .map_or(DEFAULT_EXPIRY, |e| e.get_ref().get());
    if expires.is_zero() {
        p.at(
            g.expires
                .as_ref()
                .map_or(gate.span().start, |e| e.span().start),
            format!("step `{id}`: `expires` must be longer than 0s"),
        );
    }
    (p.list.len() == before).then_some(Gate {
        mode,
        approvers,
        expires,
    })
}

/// Refuses schema keywords warden does not validate, at every level.
fn check_input_schema(schema: &Value, at: &str, span: &Range<usize>, p: &mut Problems<'_>) {
    let Value::Object(m) = schema else {
        p.at(span.start, format!("{at}: a schema is a table"));
        return;
    };
    for (k, v) in m {
        if !INPUT_SCHEMA_KEYWORDS.contains(&k.as_str()) {
            p.near(
                span,
                k,
                format!(
                    "{at}: schema keyword `{k}` is not supported (warden validates: {})",
                    INPUT_SCHEMA_KEYWORDS.join(", ")
                ),
            );
            continue;
        }
        match (k.as_str(), v) {
            ("properties", Value::Object(props)) => {
                for (name, s) in props {
                    check_input_schema(s, &format!("{at}.{name}"), span, p);
                }
            }
            ("items" | "additionalProperties", s @ Value::Object(_)) => {
                check_input_schema(s, &format!("{at}[]"), span, p);
            }
            ("prefixItems" | "anyOf" | "oneOf", Value::Array(items)) => {
                for s in items {
                    check_input_schema(s, at, span, p);
                }
            }
            ("type", Value::String(t)) if !valid_type_name(t) => {
                p.near(span, t, format!("{at}: `{t}` is not a JSON Schema type"));
            }
            _ => {}
        }
    }
}

fn valid_type_name(t: &str) -> bool {
    matches!(
        t,
        "null" | "boolean" | "integer" | "number" | "string" | "array" | "object"
    )
}
