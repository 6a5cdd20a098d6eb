//! The route table: parse, lint and match `routes.toml`.
//!
//! A route table is an ordered list of `[[route]]` rules mapping a request's
//! `kind` (and optionally its tenant and attributes) to a capability and one of
//! its exported functions. The first matching rule wins; no match is a
//! `no_route` outcome. [`RouteTable::decide`] is a pure function of the
//! request and the table, and [`RouteTable::hash`] identifies the table in
//! every audit entry, so a decision can always be replayed.
//!
//! This module must never do I/O (beyond [`RouteTable::load`] reading the
//! file it is handed) and never touch wasmtime: what a capability exports
//! reaches [`RouteTable::check`] as plain strings through a catalog function.

mod pattern;

pub use pattern::KindPattern;

use crate::audit::entry::RouteDecision;
use crate::diagnostic::line_col;
use crate::digest::Hash256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One problem in a route table, located by line and column when known.
pub use crate::diagnostic::Diagnostic as RouteError;

/// Every problem found in one route table (never only the first).
pub use crate::diagnostic::Diagnostics as RouteErrors;

/// What routing looks at in a request. Everything else about a request
/// (its input, idempotency key, principal) never influences the decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRequest {
    /// The request kind, e.g. `invoice.reconcile`.
    pub kind: String,
    /// The tenant the request is made for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Free-form attributes; rules may require some of them to equal a value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The first matching rule.
    Route {
        /// The rule's `id`.
        rule_id: String,
        /// The capability to invoke.
        capability: String,
        /// The function to call, as written in the rule.
        function: String,
    },
    /// No rule matches: the request is refused with outcome `no_route`.
    NoRoute,
}

/// `match = { kind = …, tenant = …, attributes = { … } }` of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteMatch {
    /// The kind pattern as written: exact, or with one trailing `*`.
    pub kind: String,
    /// When set, only requests for this tenant match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Attributes the request must carry with exactly these values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(skip)]
    pattern: KindPattern,
}

impl RouteMatch {
    /// The parsed kind pattern.
    pub fn pattern(&self) -> &KindPattern {
        &self.pattern
    }

    /// Whether `req` matches: kind, tenant (when set) and every attribute.
    pub fn matches(&self, req: &RouteRequest) -> bool {
        self.pattern.matches(&req.kind)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| req.tenant.as_ref() == Some(t))
            && self
                .attributes
                .iter()
                .all(|(k, v)| req.attributes.get(k) == Some(v))
    }

    /// Whether every request `other` matches is also matched by `self`.
    pub fn covers(&self, other: &RouteMatch) -> bool {
        self.pattern.covers(&other.pattern)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| other.tenant.as_ref() == Some(t))
            && self
                .attributes
                .iter()
                .all(|(k, v)| other.attributes.get(k) == Some(v))
    }
}

/// One validated `[[route]]` rule. Its serialized form (without the line) is
/// what the table hash is taken over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Unique id, recorded in audit entries.
    pub id: String,
    /// Which requests it takes.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// The capability (policy `[capability] name`) to invoke.
    pub capability: String,
    /// The exported function id (`echo`, `ns:pkg/iface#func`, or `iface#func`).
    pub function: String,
    /// A workflow rule (`workflow = "name"`): the request starts a run of
    /// that workflow instead (capability and function are then empty).
    /// Part of the table hash; absent from it for capability rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// 1-based line of the rule's `id` in the file.
    #[serde(skip)]
    pub line: usize,
    #[serde(skip)]
    capability_at: (usize, usize),
    #[serde(skip)]
    function_at: (usize, usize),
}

/// How one rule judged one request, for `warden routes explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleVerdict {
    /// The rule's id.
    pub rule_id: String,
    /// The rule's line in the file.
    pub line: usize,
    /// Whether the rule matches the request.
    pub matched: bool,
    /// Why: every failed condition when it does not match (e.g.
    /// `tenant "globex" != "acme"`), every condition when it does.
    pub reason: String,
}

/// A validated route table: ordered rules, no duplicate ids, no shadowed rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    source: PathBuf,
    rules: Vec<Rule>,
    hash: Hash256,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    id: Spanned<String>,
    #[serde(rename = "match")]
    matcher: RawMatch,
    #[serde(default)]
    capability: Option<Spanned<String>>,
    #[serde(default)]
    function: Option<Spanned<String>>,
    #[serde(default)]
    workflow: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    kind: Spanned<String>,
    #[serde(default)]
    tenant: Option<Spanned<String>>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl RouteTable {
    /// Reads and validates a route table file.
    pub fn load(path: &Path) -> Result<RouteTable, RouteErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RouteErrors(vec![RouteError {
                file: path.to_path_buf(),
                line: None,
                column: None,
                message: format!("cannot read route table: {e}"),
            }])
        })?;
        RouteTable::parse(path, &text)
    }

    /// Validates route table `text` read from `source`, collecting every
    /// problem: TOML syntax, unknown fields, bad ids and kind patterns,
    /// duplicate ids and shadowed rules.
    pub fn parse(source: &Path, text: &str) -> Result<RouteTable, RouteErrors> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            RouteError {
                file: source.to_path_buf(),
                line: Some(line),
                column: Some(column),
                message,
            }
        };
        let from_toml = |e: toml::de::Error| match e.span() {
            Some(s) => at(s.start, e.message().trim().to_string()),
            None => RouteError {
                file: source.to_path_buf(),
                line: None,
                column: None,
                message: e.message().trim().to_string(),
            },
        };
        let root = toml::de::DeTable::parse(text).map_err(|e| RouteErrors(vec![from_toml(e)]))?;
        let mut errors = Vec::new();
        let mut raw_routes = Vec::new();
        for (key, value) in root.into_inner() {
            if key.get_ref().as_ref() != "route" {
                errors.push(at(
                    key.span().start,
                    format!(
                        "unknown key `{}`: a route table holds only `[[route]]` rules",
                        key.get_ref()
                    ),
                ));
                continue;
            }
            let span = value.span();
            match value.into_inner() {
                toml::de::DeValue::Array(items) => {
                    for item in items {
                        match RawRoute::deserialize(toml::de::ValueDeserializer::from(item)) {
                            Ok(r) => raw_routes.push(r),
                            Err(e) => errors.push(from_toml(e)),
                        }
                    }
                }
                _ => errors.push(at(
                    span.start,
                    "`route` must be an array of tables: write each rule as `[[route]]`".into(),
                )),
            }
        }
        let mut rules: Vec<Rule> = Vec::new();
        for raw in raw_routes {
            let id_at = raw.id.span().start;
            let (line, _) = line_col(text, id_at);
            let id = raw.id.into_inner();
            let mut ok = true;
            if !is_route_id(&id) {
                errors.push(at(
                    id_at,
                    format!("route id `{id}` must be non-empty letters, digits, `.`, `_` or `-`"),
                ));
                ok = false;
            }
            let kind_at = raw.matcher.kind.span().start;
            let kind = raw.matcher.kind.into_inner();
            let pattern = match KindPattern::parse(&kind) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(at(kind_at, format!("route `{id}`: {e}")));
                    ok = false;
                    KindPattern::Exact(kind.clone())
                }
            };
            // Tenants are compared in canonical form only (requests are
            // canonicalised at admission).
            let tenant = match &raw.matcher.tenant {
                Some(t) if t.get_ref().is_empty() => {
                    errors.push(at(
                        t.span().start,
                        format!(
                            "route `{id}`: match.tenant is empty: omit it to match every tenant"
                        ),
                    ));
                    ok = false;
                    None
                }
                Some(t) => match crate::tenant::Tenant::parse(t.get_ref()) {
                    Ok(canonical) => Some(canonical.to_string()),
                    Err(e) => {
                        errors.push(at(
                            t.span().start,
                            format!("route `{id}`: match.tenant: {e}"),
                        ));
                        ok = false;
                        None
                    }
                },
                None => None,
            };
            let (capability, function, workflow, capability_at, function_at) = match (
                raw.capability,
                raw.function,
                raw.workflow,
            ) {
                (Some(c), Some(f), None) => {
                    let capability_at = c.span().start;
                    let capability = c.into_inner();
                    if !crate::policy::is_kebab_name(&capability) {
                        errors.push(at(
                                capability_at,
                                format!(
                                    "route `{id}`: capability `{capability}` is not a capability name (lowercase kebab-case, e.g. `pii-redact`)"
                                ),
                            ));
                        ok = false;
                    }
                    let function_at = f.span().start;
                    let function = f.into_inner();
                    if function.trim().is_empty() {
                        errors.push(at(function_at, format!("route `{id}`: function is empty")));
                        ok = false;
                    }
                    (capability, function, None, capability_at, function_at)
                }
                (None, None, Some(w)) => {
                    let w_at = w.span().start;
                    let name = w.into_inner();
                    if !crate::policy::is_kebab_name(&name) {
                        errors.push(at(
                                w_at,
                                format!(
                                    "route `{id}`: workflow `{name}` is not a workflow name (lowercase kebab-case, e.g. `order-flow`)"
                                ),
                            ));
                        ok = false;
                    }
                    (String::new(), String::new(), Some(name), w_at, w_at)
                }
                (c, f, w) => {
                    let what = match (c.is_some(), f.is_some(), w.is_some()) {
                        (true, false, false) => "missing field `function`: ",
                        (false, true, false) => "missing field `capability`: ",
                        (false, false, false) => "missing field `capability` or `workflow`: ",
                        _ => "",
                    };
                    errors.push(at(
                            id_at,
                            format!(
                                "route `{id}`: {what}a rule names either `capability` and `function`, or `workflow` alone"
                            ),
                        ));
                    ok = false;
                    (String::new(), String::new(), None, id_at, id_at)
                }
            };
            if let Some(first) = rules.iter().find(|r| r.id == id) {
                errors.push(at(
                    id_at,
                    format!(
                        "duplicate route id `{id}` (first defined at line {})",
                        first.line
                    ),
                ));
                ok = false;
            }
            let rule = Rule {
                id,
                matcher: RouteMatch {
                    kind,
                    tenant,
                    attributes: raw.matcher.attributes,
                    pattern,
                },
                capability,
                function,
                workflow,
                line,
                capability_at: line_col(text, capability_at),
                function_at: line_col(text, function_at),
            };
            if ok && let Some(earlier) = rules.iter().find(|a| a.matcher.covers(&rule.matcher)) {
                errors.push(at(
                    id_at,
                    format!(
                        "route `{}` (line {}) can never match: every request it matches is taken first by route `{}` (line {})",
                        rule.id, rule.line, earlier.id, earlier.line
                    ),
                ));
            }
            if ok {
                rules.push(rule);
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| (e.line, e.column));
            return Err(RouteErrors(errors));
        }
        let hash = table_hash(&rules);
        Ok(RouteTable {
            source: source.to_path_buf(),
            rules,
            hash,
        })
    }

    /// Checks every rule against the loaded capabilities: `catalog(name)`
    /// returns the exported function ids of capability `name` (`None`: no such
    /// capability). A rule's function must be one of those ids exactly, or the
    /// short form `iface#func` of exactly one of them (as
    /// [`crate::component::Shape::export`] resolves it). Reports every problem.
    pub fn check(&self, catalog: &dyn Fn(&str) -> Option<Vec<String>>) -> Result<(), RouteErrors> {
        let mut errors = Vec::new();
        for rule in self.rules.iter().filter(|r| r.workflow.is_none()) {
            let err = |(line, column): (usize, usize), message: String| RouteError {
                file: self.source.clone(),
                line: Some(line),
                column: Some(column),
                message,
            };
            let Some(exports) = catalog(&rule.capability) else {
                errors.push(err(
                    rule.capability_at,
                    format!(
                        "route `{}`: unknown capability `{}` (no loaded policy has that name)",
                        rule.id, rule.capability
                    ),
                ));
                continue;
            };
            if let Err(why) = resolve_export(&exports, &rule.function) {
                errors.push(err(
                    rule.function_at,
                    format!(
                        "route `{}`: capability `{}` {why}",
                        rule.id, rule.capability
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RouteErrors(errors))
        }
    }

    /// Checks every workflow rule: `known(name)` says whether workflow
    /// `name` is loaded. Reports every problem.
    pub fn check_workflows(&self, known: &dyn Fn(&str) -> bool) -> Result<(), RouteErrors> {
        let errors: Vec<RouteError> = self
            .rules
            .iter()
            .filter_map(|rule| {
                let name = rule.workflow.as_ref()?;
                (!known(name)).then(|| RouteError {
                    file: self.source.clone(),
                    line: Some(rule.capability_at.0),
                    column: Some(rule.capability_at.1),
                    message: format!(
                        "route `{}`: unknown workflow `{name}` (no plan in the workflows directory has that name)",
                        rule.id
                    ),
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RouteErrors(errors))
        }
    }

    /// The workflow `req` starts, when the first rule that matches it is a
    /// workflow rule: `(rule id, workflow name)`.
    pub fn workflow_for(&self, req: &RouteRequest) -> Option<(String, String)> {
        let rule = self.rules.iter().find(|r| r.matcher.matches(req))?;
        Some((rule.id.clone(), rule.workflow.clone()?))
    }

    /// Where `req` goes: the first rule that matches, or [`Decision::NoRoute`].
    /// Pure: the same table and request always give the same decision.
    pub fn decide(&self, req: &RouteRequest) -> Decision {
        match self.rules.iter().find(|r| r.matcher.matches(req)) {
            Some(r) => Decision::Route {
                rule_id: r.id.clone(),
                capability: r.capability.clone(),
                function: r.function.clone(),
            },
            None => Decision::NoRoute,
        }
    }

    /// The audit record of `decision` against this table. A `no_route`
    /// decision is recorded with an empty `rule_id` and the table hash, so the
    /// refusal still names the table it was made against.
    pub fn audit_route(&self, decision: &Decision) -> RouteDecision {
        let rule_id = match decision {
            Decision::Route { rule_id, .. } => rule_id.clone(),
            Decision::NoRoute => String::new(),
        };
        RouteDecision {
            rule_id,
            table_hash: self.hash,
        }
    }

    /// How each rule, in order, judges `req`, up to and including the first
    /// that matches (every rule when none does).
    pub fn explain(&self, req: &RouteRequest) -> Vec<RuleVerdict> {
        let mut out = Vec::new();
        for rule in &self.rules {
            let verdict = verdict(rule, req);
            let matched = verdict.matched;
            out.push(verdict);
            if matched {
                break;
            }
        }
        out
    }

    /// `sha256:<hex>` of the canonical JSON of the rules in order
    /// ([`crate::digest::json_digest`]). Reordering rules changes it;
    /// comments, whitespace and key order in the file do not.
    pub fn hash(&self) -> String {
        self.hash.tagged()
    }

    /// The rules, in match order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The file the table was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }
}

impl RouteTable {
    /// The canonical JSON the table hash is computed over (what the
    /// artifact store keeps under [`RouteTable::hash`]).
    pub fn canonical_form(&self) -> String {
        let json = serde_json::to_value(&self.rules).unwrap_or(serde_json::Value::Null);
        crate::digest::canonical_json(&json)
    }
}

fn table_hash(rules: &[Rule]) -> Hash256 {
    let json = serde_json::to_value(rules).unwrap_or(serde_json::Value::Null);
    Hash256::of_json(&json)
}

fn verdict(rule: &Rule, req: &RouteRequest) -> RuleVerdict {
    let m = &rule.matcher;
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    if m.pattern.matches(&req.kind) {
        passed.push(format!("kind {:?} matches {:?}", req.kind, m.kind));
    } else {
        failed.push(format!("kind {:?} does not match {:?}", req.kind, m.kind));
    }
    if let Some(t) = &m.tenant {
        match &req.tenant {
            Some(rt) if rt == t => passed.push(format!("tenant {rt:?} == {t:?}")),
            Some(rt) => failed.push(format!("tenant {rt:?} != {t:?}")),
            None => failed.push(format!("tenant missing (rule needs {t:?})")),
        }
    }
    for (k, v) in &m.attributes {
        match req.attributes.get(k) {
            Some(rv) if rv == v => passed.push(format!("attribute {k} {rv:?} == {v:?}")),
            Some(rv) => failed.push(format!("attribute {k} {rv:?} != {v:?}")),
            None => failed.push(format!("attribute {k} missing (rule needs {v:?})")),
        }
    }
    let matched = failed.is_empty();
    RuleVerdict {
        rule_id: rule.id.clone(),
        line: rule.line,
        matched,
        reason: if matched { passed } else { failed }.join("; "),
    }
}

/// Resolves `function` among `exports` (exact id, or unambiguous `iface#func`).
fn resolve_export<'a>(exports: &'a [String], function: &str) -> Result<&'a str, String> {
    if let Some(f) = exports.iter().find(|e| *e == function) {
        return Ok(f);
    }
    let listed = || {
        if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        }
    };
    let short: Vec<&String> = match function.split_once('#') {
        Some((iface, func)) => exports
            .iter()
            .filter(|e| {
                e.split_once('#').is_some_and(|(i, f)| {
                    let short = i.rsplit('/').next().unwrap_or(i);
                    f == func && short.split('@').next() == Some(iface)
                })
            })
            .collect(),
        None => Vec::new(),
    };
    match short.as_slice() {
        [one] => Ok(one.as_str()),
        [] => Err(format!(
            "does not export function `{function}`; it exports: {}",
            listed()
        )),
        many => Err(format!(
            "exports more than one function matching `{function}` ({}): write the full id",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Route ids: non-empty ASCII letters, digits, `.`, `_`, `-`.
fn is_route_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests;
