//! Interface names (`wasi:io/streams@0.2.6`) and semver-aware grant matching.

use std::fmt;

/// A parsed component import name: `namespace:package/interface[@version]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceName {
    /// `wasi`, `warden`, …
    pub namespace: String,
    /// `io`, `host`, …
    pub package: String,
    /// `streams`, `log`, …
    pub interface: String,
    /// The version, when the name carries one.
    pub version: Option<semver::Version>,
}

impl InterfaceName {
    /// Parses `ns:pkg/iface` or `ns:pkg/iface@1.2.3`. Grants may also write a
    /// partial version (`@0.2`), which is read as `0.2.0`.
    pub fn parse(text: &str) -> Result<InterfaceName, String> {
        let (path, version) = match text.split_once('@') {
            Some((p, v)) => (
                p,
                Some(parse_version(v).map_err(|e| format!("`{text}`: {e}"))?),
            ),
            None => (text, None),
        };
        let (namespace, rest) = path.split_once(':').ok_or_else(|| {
            format!("`{text}` is not an interface name: expected `namespace:package/interface`")
        })?;
        let (package, interface) = rest.split_once('/').ok_or_else(|| {
            format!("`{text}` names a package, not an interface: expected `{path}/<interface>`")
        })?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !valid(namespace) || !valid(package) || !valid(interface) {
            return Err(format!(
                "`{text}` is not an interface name: parts must be lowercase kebab-case"
            ));
        }
        Ok(InterfaceName {
            namespace: namespace.to_string(),
            package: package.to_string(),
            interface: interface.to_string(),
            version,
        })
    }

    /// `namespace:package/interface`, without the version.
    pub fn unversioned(&self) -> String {
        format!("{}:{}/{}", self.namespace, self.package, self.interface)
    }

    /// `namespace:package`.
    pub fn package_id(&self) -> String {
        format!("{}:{}", self.namespace, self.package)
    }

    /// Whether a grant written as `self` covers the import `import`.
    ///
    /// Same namespace, package and interface; and when the grant names a
    /// version, the import's version is on the same semver compatibility
    /// track: equal major for `>=1`, equal `0.minor` for `0.x`, exact for
    /// `0.0.x`. A grant without a version covers every version.
    pub fn covers(&self, import: &InterfaceName) -> bool {
        if self.namespace != import.namespace
            || self.package != import.package
            || self.interface != import.interface
        {
            return false;
        }
        match (&self.version, &import.version) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(g), Some(i)) => compatibility_track(g) == compatibility_track(i),
        }
    }
}

fn parse_version(v: &str) -> Result<semver::Version, String> {
    let padded = match v.split('.').count() {
        1 => format!("{v}.0.0"),
        2 => format!("{v}.0"),
        _ => v.to_string(),
    };
    semver::Version::parse(&padded).map_err(|e| format!("bad version `{v}`: {e}"))
}

fn compatibility_track(v: &semver::Version) -> (u64, u64, u64) {
    if v.major > 0 {
        (v.major, 0, 0)
    } else if v.minor > 0 {
        (0, v.minor, 0)
    } else {
        (0, 0, v.patch)
    }
}

impl serde::Serialize for InterfaceName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.unversioned())?;
        if let Some(v) = &self.version {
            write!(f, "@{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> InterfaceName {
        InterfaceName::parse(s).expect("valid name")
    }

    #[test]
    fn grant_without_version_covers_every_version() {
        assert!(n("wasi:io/streams").covers(&n("wasi:io/streams@0.2.6")));
        assert!(n("wasi:io/streams").covers(&n("wasi:io/streams")));
    }

    #[test]
    fn versioned_grant_covers_only_its_compatibility_track() {
        assert!(n("wasi:io/streams@0.2").covers(&n("wasi:io/streams@0.2.6")));
        assert!(n("wasi:io/streams@0.2.0").covers(&n("wasi:io/streams@0.2.9")));
        assert!(!n("wasi:io/streams@0.2").covers(&n("wasi:io/streams@0.3.0")));
        assert!(n("warden:host/kv@1.0.0").covers(&n("warden:host/kv@1.4.2")));
        assert!(!n("warden:host/kv@1").covers(&n("warden:host/kv@2.0.0")));
        assert!(!n("x:y/z@0.0.1").covers(&n("x:y/z@0.0.2")));
        assert!(!n("wasi:io/streams@0.2").covers(&n("wasi:io/streams")));
    }

    #[test]
    fn different_interfaces_never_cover_each_other() {
        assert!(!n("wasi:io/streams").covers(&n("wasi:io/poll@0.2.6")));
        assert!(!n("wasi:cli/stdout").covers(&n("wasi:cli/stderr@0.2.6")));
        assert!(!n("wasi:io/streams").covers(&n("evil:io/streams@0.2.6")));
    }

    #[test]
    fn malformed_names_are_rejected_with_the_name() {
        for bad in [
            "wasi",
            "wasi:io",
            "WASI:io/streams",
            "wasi:io/streams@x.y",
            ":io/x",
        ] {
            let err = InterfaceName::parse(bad).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }
}

/// The canonical identity of an exported function: its export id exactly as
/// [`crate::component::Shape`] lists it (`echo`, or
/// `ns:pkg/iface#func` inside an exported interface).
///
/// A caller may name a function by a short form (`iface#func`); every such
/// name is resolved to a `FunctionId` once, against the component, and
/// function names are compared only as `FunctionId`s. Only
/// [`crate::component::Shape::resolve`] makes one from a caller's text, so
/// an unresolved name cannot be compared by accident (issue: an approval
/// rule written `calc#add` did not gate a call of
/// `warden-test:all-types/calc#add`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionId(String);

impl FunctionId {
    /// Wraps an export id as the component lists it. Only the component
    /// inspection (and tests) may call this.
    pub(crate) fn from_export_id(id: &str) -> FunctionId {
        FunctionId(id.to_string())
    }

    /// The export id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest workflow name or step id accepted.
pub const MAX_PLAN_NAME_LEN: usize = 64;

/// The canonical name of a workflow: lowercase kebab-case, like a
/// capability name (`order-intake`), at most [`MAX_PLAN_NAME_LEN`] bytes.
/// Plans, routes (`workflow = "…"`) and runs compare workflows only as
/// `WorkflowName`s, made once from the operator's text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct WorkflowName(String);

impl WorkflowName {
    /// Parses a workflow name; the error says what a valid one looks like.
    pub fn parse(text: &str) -> Result<WorkflowName, String> {
        let kebab = {
            let mut chars = text.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
                && text
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !text.ends_with('-')
                && !text.contains("--")
        };
        if !kebab || text.len() > MAX_PLAN_NAME_LEN {
            return Err(format!(
                "workflow name `{text}` must be lowercase kebab-case of at most {MAX_PLAN_NAME_LEN} bytes (e.g. `order-intake`)"
            ));
        }
        Ok(WorkflowName(text.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkflowName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The canonical id of a step in a workflow plan: lowercase letters,
/// digits and `_`, starting with a letter (`reserve_stock`), at most
/// [`MAX_PLAN_NAME_LEN`] bytes — so it reads the same in templates
/// (`steps.reserve_stock.output`), in `when` predicates and in the journal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    /// Parses a step id; the error says what a valid one looks like.
    pub fn parse(text: &str) -> Result<StepId, String> {
        let mut chars = text.chars();
        let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && text.len() <= MAX_PLAN_NAME_LEN;
        if !ok {
            return Err(format!(
                "step id `{text}` must start with a lowercase letter and hold only lowercase letters, digits and `_`, at most {MAX_PLAN_NAME_LEN} bytes (e.g. `reserve_stock`)"
            ));
        }
        Ok(StepId(text.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod plan_name_tests {
    use super::*;

    #[test]
    fn workflow_names_are_kebab_case_and_bounded() {
        assert!(WorkflowName::parse("order-intake").is_ok());
        for bad in ["", "Order", "order_intake", "-x", "x-", "a--b", "1x"] {
            let e = WorkflowName::parse(bad).expect_err(bad);
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        assert!(WorkflowName::parse(&"a".repeat(MAX_PLAN_NAME_LEN)).is_ok());
        assert!(WorkflowName::parse(&"a".repeat(MAX_PLAN_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn step_ids_are_snake_case_and_bounded() {
        assert!(StepId::parse("reserve_stock2").is_ok());
        for bad in ["", "Reserve", "reserve-stock", "_x", "2x", "a.b"] {
            let e = StepId::parse(bad).expect_err(bad);
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        assert!(StepId::parse(&"s".repeat(MAX_PLAN_NAME_LEN)).is_ok());
        assert!(StepId::parse(&"s".repeat(MAX_PLAN_NAME_LEN + 1)).is_err());
    }
}
