//! Kind patterns: an exact kind (`echo`) or a prefix glob with one trailing
//! `*` (`invoice.*`, `*`).

use std::fmt;

/// A validated `match.kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindPattern {
    /// Matches exactly this kind.
    Exact(String),
    /// Matches every kind that starts with this prefix (the text before the
    /// trailing `*`; empty for `*`, which matches every kind).
    Prefix(String),
}

impl KindPattern {
    /// Parses `kind`: non-empty, and at most one `*`, which must be last.
    pub fn parse(kind: &str) -> Result<KindPattern, String> {
        if kind.is_empty() {
            return Err("match.kind is empty: give a kind such as `echo` or `invoice.*`".into());
        }
        match kind.find('*') {
            None => Ok(KindPattern::Exact(kind.to_string())),
            Some(i) if i == kind.len() - 1 => Ok(KindPattern::Prefix(kind[..i].to_string())),
            Some(_) => Err(format!(
                "match.kind `{kind}`: `*` is only allowed once, as the last character (e.g. `invoice.*`)"
            )),
        }
    }

    /// Whether a request of `kind` matches.
    pub fn matches(&self, kind: &str) -> bool {
        match self {
            KindPattern::Exact(k) => k == kind,
            KindPattern::Prefix(p) => kind.starts_with(p.as_str()),
        }
    }

    /// Whether every kind `other` matches is also matched by `self`.
    pub fn covers(&self, other: &KindPattern) -> bool {
        match (self, other) {
            (KindPattern::Exact(a), KindPattern::Exact(b)) => a == b,
            (KindPattern::Exact(_), KindPattern::Prefix(_)) => false,
            (KindPattern::Prefix(p), KindPattern::Exact(b)) => b.starts_with(p.as_str()),
            (KindPattern::Prefix(p), KindPattern::Prefix(q)) => q.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for KindPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindPattern::Exact(k) => write!(f, "{k}"),
            KindPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}
