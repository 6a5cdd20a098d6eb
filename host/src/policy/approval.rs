//! Human approval gates: the `[[approval]]` rules of a policy and what they
//! require of one request (docs/approvals.md).
//!
//! Owns parsing and validating `[[approval]]` rules (with the place of each
//! value, so [`crate::policy::Policy::parse`] can point at it) and deciding
//! what one request needs. Pure: rules are parsed with the policy and
//! evaluated on a request's function and JSON input; this module must never
//! do I/O, hold requests or record decisions. Holding requests, collecting
//! decisions and running the approved request is the daemon's work
//! (`server::approvals`); the [`crate::Host`] refuses to run a gated request
//! without enough approvals attached to its [`crate::Call`].

use super::predicate::Predicate;
use super::{FunctionId, HumanDuration};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// How many distinct people must approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No approval: the request runs at once.
    None,
    /// One approver.
    Single,
    /// Two distinct approvers.
    Dual,
}

impl Mode {
    /// Approvals needed.
    pub fn required(self) -> usize {
        match self {
            Mode::None => 0,
            Mode::Single => 1,
            Mode::Dual => 2,
        }
    }

    /// The name used in policies and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Single => "single",
            Mode::Dual => "dual",
        }
    }
}

/// Who may approve: a principal by name, or any member of a group
/// (`group:<name>`; groups are given to principals in the daemon config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approver {
    /// One principal.
    Principal(String),
    /// Members of a group.
    Group(String),
}

impl Approver {
    /// Parses `name` or `group:name`.
    pub fn parse(text: &str) -> Result<Approver, String> {
        let (group, name) = match text.strip_prefix("group:") {
            Some(g) => (true, g),
            None => (false, text),
        };
        crate::principal::check_principal_name(name).map_err(|why| {
            format!("approver `{text}` must be a principal name or `group:<name>`: {why}")
        })?;
        Ok(if group {
            Approver::Group(name.to_string())
        } else {
            Approver::Principal(name.to_string())
        })
    }

    /// Whether `principal` (a member of `groups`) is this approver.
    pub fn admits(&self, principal: &str, groups: &[String]) -> bool {
        match self {
            Approver::Principal(p) => p == principal,
            Approver::Group(g) => groups.iter().any(|x| x == g),
        }
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approver::Principal(p) => f.write_str(p),
            Approver::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// One `[[approval]]` rule, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The function as written in the policy (an export id, its short form,
    /// or `*` for every function); shown and hashed as written.
    pub function: String,
    /// The canonical identity `function` resolved to against the component
    /// (set by [`crate::policy::Policy::bind_functions`] at load). A named
    /// rule that was never bound covers every function: an unresolved name
    /// fails closed.
    pub bound: Option<FunctionId>,
    /// When the rule applies; always when absent.
    pub when: Option<Predicate>,
    /// Approvals needed.
    pub mode: Mode,
    /// How long a held request waits for its approvals.
    pub expires: Duration,
    /// Who may approve; anyone with the `approve` role when empty.
    pub approvers: Vec<Approver>,
}

/// Default `expires`.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// `[[approval]]` as written, with the place of every value in the policy
/// text (so problems point at their line and column).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Export id or `*`.
    pub function: Spanned<String>,
    /// Predicate text.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// `none`, `single` or `dual`.
    pub mode: Mode,
    /// Expiry; 24h by default.
    #[serde(default)]
    pub expires: Option<Spanned<HumanDuration>>,
    /// Principal names or `group:<name>`.
    #[serde(default)]
    pub approvers: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Why a raw rule is invalid: the message, and where in the policy text
/// the part at fault is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Byte span of the value at fault in the policy text.
    pub span: Range<usize>,
    /// Whether the problem is about the value's key (`expires`,
    /// `approvers`) rather than its contents (a `when` expression, one
    /// approver's name).
    pub about_key: bool,
    /// What is wrong.
    pub message: String,
}

impl RawRule {
    /// Validates the rule.
    pub fn compile(self) -> Result<Rule, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut fail = |value_span: Range<usize>, about_key: bool, message: String| {
            errors.push(RuleError {
                span: value_span,
                about_key,
                message,
            });
        };
        if self.function.get_ref().is_empty() {
            fail(
                self.function.span(),
                true,
                "`function` is empty: name an exported function or `*`".into(),
            );
        }
        let when = match &self.when {
            None => None,
            Some(text) => match Predicate::parse(text.get_ref()) {
                Ok(p) => Some(p),
                Err(e) => {
                    fail(
                        text.span(),
                        false,
                        format!("approval `when` does not parse {e}"),
                    );
                    None
                }
            },
        };
        let expires = self
            .expires
            .as_ref()
            .map_or(DEFAULT_EXPIRY, |d| d.get_ref().get());
        if expires.is_zero()
            && let Some(written) = &self.expires
        {
            fail(
                written.span(),
                true,
                "`expires` must be longer than 0s".into(),
            );
        }
        let written_approvers = self.approvers.as_ref().map_or(&[][..], |a| a.get_ref());
        let mut approvers = Vec::new();
        for a in written_approvers {
            match Approver::parse(a.get_ref()) {
                Ok(a) => approvers.push(a),
                Err(message) => fail(a.span(), false, message),
            }
        }
        if self.mode == Mode::None
            && !written_approvers.is_empty()
            && let Some(list) = &self.approvers
        {
            fail(
                list.span(),
                true,
                "a rule with mode = \"none\" takes no `approvers`".into(),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Rule {
            function: self.function.into_inner(),
            bound: None,
            when,
            mode: self.mode,
            expires,
            approvers,
        })
    }
}

impl Rule {
    /// Whether the rule is about `function`, compared as canonical
    /// identities only. A rule whose name was never bound to an export
    /// covers every function (fails closed).
    pub fn covers(&self, function: &FunctionId) -> bool {
        if self.function == "*" {
            return true;
        }
        match &self.bound {
            Some(id) => id == function,
            None => true,
        }
    }

    /// The rule as JSON (in the effective policy, hence the policy hash,
    /// and shown to approvers).
    pub fn to_json(&self) -> Value {
        json!({
            "function": self.function,
            "when": self.when.as_ref().map(Predicate::source),
            "mode": self.mode,
            "expires": HumanDuration(self.expires).to_string(),
            "approvers": self.approvers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}

/// What a request needs before it may run.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// 1-based index of the rule that triggered, in file order.
    pub rule: usize,
    /// Approvals needed (never [`Mode::None`]).
    pub mode: Mode,
    /// How long the request may wait.
    pub expires: Duration,
    /// Who may approve (anyone with the `approve` role when empty).
    pub approvers: Vec<Approver>,
    /// Why: the predicate that held, or why it could not be evaluated.
    pub reason: String,
}

impl Requirement {
    /// As shown to approvers and callers.
    pub fn to_json(&self) -> Value {
        json!({
            "rule": self.rule,
            "mode": self.mode,
            "approvals_needed": self.mode.required(),
            "expires_after": HumanDuration(self.expires).to_string(),
            "approvers": self.approvers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "reason": self.reason,
        })
    }
}

/// Evaluates `rules` in order for one request: the first rule about
/// `function` whose `when` holds (or has none) decides. A `when` that cannot
/// be evaluated (missing field, wrong type) makes its rule apply, and such a
/// rule needs at least a single approval even if its mode is `none`: an
/// input the gate cannot read never skips the gate. No rule, or a `none`
/// rule, means no approval.
pub fn requirement(rules: &[Rule], function: &FunctionId, input: &Value) -> Option<Requirement> {
    for (i, rule) in rules.iter().enumerate() {
        if !rule.covers(function) {
            continue;
        }
        let (mode, reason) = match &rule.when {
            None => (rule.mode, format!("every call of `{}`", rule.function)),
            Some(p) => match p.eval(input) {
                Ok(true) => (rule.mode, format!("`{}` holds", p.source())),
                Ok(false) => continue,
                Err(e) => (
                    rule.mode.max(Mode::Single),
                    format!(
                        "`{}` cannot be evaluated ({e}), which requires approval",
                        p.source()
                    ),
                ),
            },
        };
        if mode == Mode::None {
            return None;
        }
        return Some(Requirement {
            rule: i + 1,
            mode,
            expires: rule.expires,
            approvers: rule.approvers.clone(),
            reason,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fid(name: &str) -> FunctionId {
        FunctionId::from_export_id(name)
    }

    fn rule(function: &str, when: Option<&str>, mode: Mode) -> Rule {
        let mut rule = RawRule {
            function: Spanned::new(0..0, function.into()),
            when: when.map(|w| Spanned::new(0..0, w.into())),
            mode,
            expires: None,
            approvers: None,
        }
        .compile()
        .expect("valid rule");
        if function != "*" {
            rule.bound = Some(fid(function));
        }
        rule
    }

    fn refund_rules() -> Vec<Rule> {
        vec![
            rule("refund", Some("input.amount_cents > 100000"), Mode::Dual),
            rule("refund", Some("input.amount_cents > 5000"), Mode::Single),
            rule("refund", None, Mode::None),
        ]
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = refund_rules();
        let need = |amount: Value| {
            requirement(&rules, &fid("refund"), &json!({"amount_cents": amount}))
                .map(|r| (r.rule, r.mode))
        };
        assert_eq!(need(json!(100)), None);
        assert_eq!(need(json!(5000)), None);
        assert_eq!(need(json!(5001)), Some((2, Mode::Single)));
        assert_eq!(need(json!(100_000)), Some((2, Mode::Single)));
        assert_eq!(need(json!(100_001)), Some((1, Mode::Dual)));
        assert_eq!(requirement(&rules, &fid("status"), &json!({})), None);
    }

    #[test]
    fn an_input_the_predicate_cannot_read_requires_approval() {
        let rules = refund_rules();
        for input in [
            json!({}),
            json!({"amount_cents": "100"}),
            json!({"amount_cents": null}),
            json!(null),
        ] {
            let r = requirement(&rules, &fid("refund"), &input).expect("gated");
            assert_eq!((r.rule, r.mode), (1, Mode::Dual), "{input}");
            assert!(r.reason.contains("cannot be evaluated"), "{}", r.reason);
        }
        // Even a `none` rule whose predicate cannot be read requires one approval.
        let rules = vec![rule("refund", Some("input.trusted == true"), Mode::None)];
        let r = requirement(&rules, &fid("refund"), &json!({})).expect("gated");
        assert_eq!(r.mode, Mode::Single);
        assert_eq!(
            requirement(&rules, &fid("refund"), &json!({"trusted": true})),
            None
        );
    }

    #[test]
    fn wildcard_rules_cover_every_function() {
        let rules = vec![rule("*", None, Mode::Single)];
        assert_eq!(
            requirement(&rules, &fid("anything"), &json!({})).map(|r| r.mode),
            Some(Mode::Single)
        );
    }

    #[test]
    fn invalid_rules_name_the_part_at_fault() {
        let raw = RawRule {
            function: Spanned::new(1..3, String::new()),
            when: Some(Spanned::new(10..21, "input.a >".into())),
            mode: Mode::None,
            expires: Some(Spanned::new(30..34, HumanDuration(Duration::ZERO))),
            approvers: Some(Spanned::new(
                40..52,
                vec![Spanned::new(41..51, "bad name".into())],
            )),
        };
        let errors = raw.compile().expect_err("invalid");
        let found: Vec<(Range<usize>, bool, &str)> = errors
            .iter()
            .map(|e| (e.span.clone(), e.about_key, e.message.as_str()))
            .collect();
        assert_eq!(errors.len(), 5, "{found:?}");
        let at = |needle: &str| {
            found
                .iter()
                .find(|(_, _, m)| m.contains(needle))
                .map(|(span, key, _)| (span.clone(), *key))
        };
        assert_eq!(at("`function` is empty"), Some((1..3, true)));
        assert_eq!(at("does not parse"), Some((10..21, false)));
        assert_eq!(at("`expires`"), Some((30..34, true)));
        assert_eq!(at("approver `bad name`"), Some((41..51, false)));
        assert_eq!(at("takes no `approvers`"), Some((40..52, true)));
    }

    #[test]
    fn approvers_are_principals_or_groups() {
        assert_eq!(
            Approver::parse("alice"),
            Ok(Approver::Principal("alice".into()))
        );
        let g = Approver::parse("group:finance").expect("group");
        assert!(g.admits("bob", &["finance".into()]));
        assert!(!g.admits("finance", &[]));
        assert!(Approver::parse("group:").is_err());
    }

    #[test]
    fn a_named_rule_never_bound_to_an_export_gates_every_function() {
        let mut unbound = rule("calc#add", None, Mode::Single);
        unbound.bound = None;
        for f in ["calc#add", "ns:pkg/calc#add", "other"] {
            assert!(
                requirement(std::slice::from_ref(&unbound), &fid(f), &json!({})).is_some(),
                "{f}"
            );
        }
    }

    #[test]
    fn a_bound_rule_covers_only_its_canonical_function() {
        let mut bound = rule("calc#add", None, Mode::Single);
        bound.bound = Some(fid("ns:pkg/calc#add"));
        let rules = [bound];
        assert!(requirement(&rules, &fid("ns:pkg/calc#add"), &json!({})).is_some());
        assert!(requirement(&rules, &fid("ns:pkg/calc#sub"), &json!({})).is_none());
    }
}
