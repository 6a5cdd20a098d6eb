//! Capability policies: parse, validate and compile `policies/<name>.toml`.
//!
//! Pure: no I/O beyond reading the policy text handed in, no wasmtime types.
//! A policy names everything a capability may touch; anything it does not
//! name is denied. Enforcement (building linkers from grants, checking host
//! calls) lives in `sandbox` and `interfaces`, never here.
//!
//! The `[imports]` table is generic here (names, duplicates, positions);
//! what one grant means and which settings it takes is each interface's
//! own, looked up in `interfaces::catalogue` (pure: no I/O, no wasmtime
//! types). The grant types are re-exported below under their old paths.

pub mod approval;
pub mod predicate;
mod retry;

pub use crate::interfaces::catalogue::{Grant, GrantKind, default_grant_settings};
pub use crate::interfaces::clocks::ClockMode;
pub use crate::interfaces::egress::{Origin, OriginPattern};
pub use crate::interfaces::fs::{DirMode, PreopenDir, PreopenDirs};
pub use crate::interfaces::http::HttpGrant;
pub use crate::interfaces::kv::KvLimits;
pub use crate::interfaces::log::LogLimits;
pub use crate::interfaces::model::ModelGrant;
pub use crate::interfaces::random::RandomMode;
pub use crate::names::{FunctionId, InterfaceName};
pub use crate::units::{ByteSize, Fuel, HumanDuration};
pub use retry::{Backoff, RetryPolicy, RetryRule};

use crate::diagnostic::line_col;
use crate::toml_shape::{self, Field, Kind, field};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// One problem in a policy file, located by line and column when known.
pub use crate::diagnostic::Diagnostic as PolicyError;

/// Every problem found in one policy file (never only the first).
pub use crate::diagnostic::Diagnostics as PolicyErrors;

/// Whether input/output payloads are stored beside their hashes in the audit store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadRetention {
    /// Store payloads (prunable by retention without breaking the chain).
    #[default]
    Full,
    /// Store only hashes: for sensitive capabilities.
    HashOnly,
}

/// `[capability]`: what the policy is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySection {
    /// The capability's name (lowercase kebab-case); routes and trust refer to it.
    pub name: String,
    /// The component file, relative to the components directory.
    pub component: String,
    /// Optional pin: the component digest (`sha256:<hex>`, signature sections stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Optional: trust-store key names allowed to sign this component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// Payload retention in the audit store.
    #[serde(default)]
    pub payloads: PayloadRetention,
}

/// `[budget]`: what one invocation may consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    /// Wasm fuel. By default 1_000_000_000 units.
    #[serde(default = "defaults::fuel")]
    pub fuel: Fuel,
    /// Linear memory (per memory) the guest may grow to. By default 64MiB.
    #[serde(default = "defaults::memory")]
    pub memory: ByteSize,
    /// Table elements per table. By default 20_000.
    #[serde(default = "defaults::table_elements")]
    pub table_elements: u32,
    /// Wall-clock time. By default 5s.
    #[serde(default = "defaults::wall_time")]
    pub wall_time: HumanDuration,
    /// Size of the output JSON. By default 1MiB.
    #[serde(default = "defaults::max_output")]
    pub max_output: ByteSize,
    /// Captured stdout + stderr bytes. By default 64KiB.
    #[serde(default = "defaults::max_stdout")]
    pub max_stdout: ByteSize,
}

mod defaults {
    use super::*;
    pub fn fuel() -> Fuel {
        Fuel::Limit(1_000_000_000)
    }
    pub fn memory() -> ByteSize {
        ByteSize(64 << 20)
    }
    pub fn table_elements() -> u32 {
        20_000
    }
    pub fn wall_time() -> HumanDuration {
        HumanDuration(Duration::from_secs(5))
    }
    pub fn max_output() -> ByteSize {
        ByteSize(1 << 20)
    }
    pub fn max_stdout() -> ByteSize {
        ByteSize(64 << 10)
    }
}

impl Default for BudgetSection {
    fn default() -> Self {
        BudgetSection {
            fuel: defaults::fuel(),
            memory: defaults::memory(),
            table_elements: defaults::table_elements(),
            wall_time: defaults::wall_time(),
            max_output: defaults::max_output(),
            max_stdout: defaults::max_stdout(),
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The file it was read from (for error messages).
    pub source: PathBuf,
    /// `[capability]`.
    pub capability: CapabilitySection,
    /// `[imports]`, in file order.
    pub imports: Vec<Grant>,
    /// `[budget]`.
    pub budget: BudgetSection,
    /// `[retry]` (the daemon retries; a single `invoke` never does).
    pub retry: RetryPolicy,
    /// `[[approval]]` rules, in file order (docs/approvals.md).
    pub approvals: Vec<approval::Rule>,
}

/// What a policy file may hold, for [`toml_shape::check`] (kept in step with
/// the `Raw*` structs; `shape_matches_the_documented_policy` checks it
/// against docs/policy.md's full example).
const SHAPE: &[Field] = &[
    field(
        "capability",
        Kind::Table(&[
            field("name", Kind::Text),
            field("component", Kind::Text),
            field("digest", Kind::Text),
            field("signers", Kind::TextList),
            field("payloads", Kind::OneOf(&["full", "hash-only"])),
        ]),
    ),
    field("imports", Kind::Any),
    field(
        "budget",
        Kind::Table(&[
            field("fuel", Kind::Fuel),
            field("memory", Kind::Size),
            field("table_elements", Kind::Count),
            field("wall_time", Kind::Duration),
            field("max_output", Kind::Size),
            field("max_stdout", Kind::Size),
        ]),
    ),
    field(
        "retry",
        Kind::Table(&[
            field("transient", Kind::Table(RETRY_RULE)),
            field("trap", Kind::Table(RETRY_RULE)),
            field("timeout", Kind::Table(RETRY_RULE)),
        ]),
    ),
    field(
        "approval",
        Kind::Tables(&[
            field("function", Kind::Text),
            field("when", Kind::Text),
            field("mode", Kind::OneOf(&["none", "single", "dual"])),
            field("expires", Kind::Duration),
            field("approvers", Kind::TextList),
        ]),
    ),
];

const RETRY_RULE: &[Field] = &[
    field("attempts", Kind::Count),
    field("backoff", Kind::OneOf(&["exponential"])),
    field("base", Kind::Duration),
    field("max_delay", Kind::Duration),
    field("deadline", Kind::Duration),
];

/// `[capability]` as written, with the places of the values that are
/// validated here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapability {
    name: Spanned<String>,
    component: String,
    #[serde(default)]
    digest: Option<Spanned<String>>,
    #[serde(default)]
    signers: Vec<String>,
    #[serde(default)]
    payloads: PayloadRetention,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    capability: RawCapability,
    /// Sorted by name (as `toml::Table` iterates), each key with its place.
    #[serde(default)]
    imports: BTreeMap<Spanned<String>, toml::Value>,
    #[serde(default)]
    budget: BudgetSection,
    #[serde(default)]
    retry: RetryPolicy,
    #[serde(default)]
    approval: Vec<approval::RawRule>,
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyErrors(vec![PolicyError {
                file: path.to_path_buf(),
                line: None,
                column: None,
                message: format!("cannot read policy: {e}"),
            }])
        })?;
        Policy::parse(path, &text)
    }

    /// Validates policy `text` read from `source`, collecting every problem.
    pub fn parse(source: &Path, text: &str) -> Result<Policy, PolicyErrors> {
        let err_at = |offset: Option<usize>, message: String| {
            let (line, column) = match offset {
                Some(o) => {
                    let (l, c) = line_col(text, o);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            PolicyError {
                file: source.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            // serde stops at the first problem; the shape walk finds them all.
            let all = toml_shape::check(text, SHAPE);
            if all.is_empty() {
                PolicyErrors(vec![err_at(
                    e.span().map(|s| s.start),
                    e.message().trim().to_string(),
                )])
            } else {
                PolicyErrors(
                    all.into_iter()
                        .map(|p| err_at(Some(p.span.start), p.message))
                        .collect(),
                )
            }
        })?;
        let mut errors = Vec::new();
        let name = &raw.capability.name;
        if !is_kebab_name(name.get_ref()) {
            errors.push(err_at(
                Some(key_start(text, name.span().start)),
                format!(
                    "capability name `{}` must be lowercase kebab-case (e.g. `pii-redact`)",
                    name.get_ref()
                ),
            ));
        }
        if let Some(d) = &raw.capability.digest {
            let ok = d
                .get_ref()
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
            if !ok {
                errors.push(err_at(
                    Some(contents_start(text, d.span().start)),
                    format!(
                        "digest `{}` must be `sha256:` followed by 64 hex digits",
                        d.get_ref()
                    ),
                ));
            }
        }
        let mut imports: Vec<Grant> = Vec::new();
        for (key, settings) in raw.imports {
            let at = Some(key.span().start);
            let key = key.into_inner();
            let name = match InterfaceName::parse(&key) {
                Ok(n) => n,
                Err(e) => {
                    errors.push(err_at(at, e));
                    continue;
                }
            };
            if let Some(prev) = imports
                .iter()
                .find(|g| g.name.unversioned() == name.unversioned())
            {
                errors.push(err_at(
                    at,
                    format!("`{key}` is granted twice (also as `{}`)", prev.name),
                ));
                continue;
            }
            match crate::interfaces::grant_kind(&name, settings) {
                Ok(kind) => imports.push(Grant { name, kind }),
                Err(e) => errors.push(err_at(at, e)),
            }
        }
        let mut approvals = Vec::new();
        for raw in raw.approval {
            match raw.compile() {
                Ok(rule) => approvals.push(rule),
                Err(rule_errors) => {
                    for e in rule_errors {
                        let at = if e.about_key {
                            key_start(text, e.span.start)
                        } else {
                            contents_start(text, e.span.start)
                        };
                        errors.push(err_at(Some(at), e.message));
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        let RawCapability {
            name,
            component,
            digest,
            signers,
            payloads,
        } = raw.capability;
        Ok(Policy {
            source: source.to_path_buf(),
            capability: CapabilitySection {
                name: name.into_inner(),
                component,
                digest: digest.map(Spanned::into_inner),
                signers,
                payloads,
            },
            imports,
            budget: raw.budget,
            retry: raw.retry,
            approvals,
        })
    }

    /// The grant covering `import`, if any.
    pub fn grants(&self, import: &InterfaceName) -> Option<&Grant> {
        self.imports.iter().find(|g| g.name.covers(import))
    }

    /// The effective policy (defaults filled in) as JSON; its canonical form is hashed.
    pub fn effective(&self) -> serde_json::Value {
        let imports: serde_json::Map<String, serde_json::Value> = self
            .imports
            .iter()
            .map(|g| {
                (
                    g.name.to_string(),
                    serde_json::to_value(&g.kind).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        let mut effective = serde_json::json!({
            "capability": self.capability,
            "imports": imports,
            "budget": self.budget,
        });
        // Only when set: policies without `[retry]` keep the hash they had
        // before the section existed.
        if !self.retry.is_empty() {
            effective["retry"] = serde_json::to_value(self.retry).unwrap_or_default();
        }
        if !self.approvals.is_empty() {
            effective["approval"] = self.approvals.iter().map(approval::Rule::to_json).collect();
        }
        effective
    }

    /// `sha256:<hex>` of the canonical JSON of the effective policy.
    pub fn hash(&self) -> String {
        crate::digest::json_digest(&self.effective())
    }

    /// What `function` called with `input` needs before it may run, by the
    /// `[[approval]]` rules (`None`: it runs at once).
    pub fn approval_for(
        &self,
        function: &FunctionId,
        input: &serde_json::Value,
    ) -> Option<approval::Requirement> {
        approval::requirement(&self.approvals, function, input)
    }

    /// Binds every `[[approval]]` rule's function name to its canonical
    /// identity with `resolve` (the component's
    /// [`crate::component::Shape::resolve`]). Returns, for the first rule
    /// whose name resolves to nothing, its 1-based index and name.
    pub fn bind_functions(
        &mut self,
        resolve: impl Fn(&str) -> Option<FunctionId>,
    ) -> Result<(), (usize, String)> {
        for (i, rule) in self.approvals.iter_mut().enumerate() {
            if rule.function == "*" {
                continue;
            }
            match resolve(&rule.function) {
                Some(id) => rule.bound = Some(id),
                None => return Err((i + 1, rule.function.clone())),
            }
        }
        Ok(())
    }

    /// Whether, by its grants alone, an invocation can be replayed (virtual
    /// clocks, seeded random, no external host calls).
    pub fn is_replayable(&self) -> bool {
        self.imports.iter().all(|g| g.kind.is_replayable())
    }
}

/// Lowercase kebab-case: starts with a letter; letters, digits and single dashes.
pub fn is_kebab_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Where the contents of the value starting at byte `value_start` begin:
/// past the opening quotes of a string (so a column plus a position inside
/// the string, as the `when` parser reports, lands on the character), at
/// the value itself otherwise.
fn contents_start(text: &str, value_start: usize) -> usize {
    let rest = text.get(value_start..).unwrap_or_default();
    let quotes = ["\"\"\"", "'''", "\"", "'"]
        .into_iter()
        .find(|q| rest.starts_with(q))
        .map_or(0, str::len);
    value_start + quotes
}

/// Where the key of the `key = value` pair whose value starts at byte
/// `value_start` begins (the problem is about the setting, not its
/// contents). Walks back over ` = ` and one bare or quoted key; when the
/// text before the value is not that (an array element), the value's own
/// start.
fn key_start(text: &str, value_start: usize) -> usize {
    let before = text.get(..value_start).unwrap_or_default();
    let Some(before_eq) = before
        .trim_end_matches([' ', '\t'])
        .strip_suffix('=')
        .map(|b| b.trim_end_matches([' ', '\t']))
    else {
        return value_start;
    };
    let key_start = match before_eq.chars().last() {
        Some(q @ ('"' | '\'')) => before_eq[..before_eq.len() - 1].rfind(q),
        Some(_) => Some(
            before_eq
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .map_or(0, |i| i + 1),
        ),
        None => None,
    };
    match key_start {
        Some(k) if k < before_eq.len() => k,
        _ => value_start,
    }
}

#[cfg(test)]
mod tests;
