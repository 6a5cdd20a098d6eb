//! Tenant names and which tenants a principal may act for.
//!
//! A tenant name is parsed once, where it enters (an HTTP request, a
//! `warden.toml` principal, a route rule, `warden run --tenant`), into its
//! canonical form; a [`Tenant`] exists only in that form, so every
//! comparison (routing, KV namespaces, bindings) is between canonical names.
//!
//! Canonical form: 1 to [`MAX_TENANT_BYTES`] characters of ASCII lowercase
//! letters, digits and `-`, starting with a letter or digit, not ending with
//! `-`, without `--` (`acme`, `globex-eu`, `42`). Parsing lowers ASCII
//! capitals (`ACME` is `acme`) and changes nothing else: whitespace,
//! non-ASCII letters and every other character are refused, never
//! stripped or folded, so two different names never meet in one namespace.
//!
//! Pure: no I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Longest tenant name, in bytes (a DNS label's length: names fit in
/// hostnames and paths, and a client cannot make namespaces unboundedly long).
pub const MAX_TENANT_BYTES: usize = 63;

/// Why a string is not a tenant name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The empty string.
    #[error("the tenant name is empty (omit `tenant` for a tenant-less request)")]
    Empty,
    /// Over [`MAX_TENANT_BYTES`].
    #[error("tenant name {name:?} is {len} bytes, over the {MAX_TENANT_BYTES}-byte limit")]
    TooLong {
        /// The name, cut to the limit.
        name: String,
        /// Its length.
        len: usize,
    },
    /// A character or shape outside the canonical form.
    #[error(
        "tenant name {name:?} is not a tenant name: {why} (allowed: ASCII letters, digits and `-`, \
         starting with a letter or digit, not ending with `-`, no `--`; letters are lowercased)"
    )]
    Invalid {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A tenant name in canonical form. The only way to make one is
/// [`Tenant::parse`] (deserializing parses too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);

impl Tenant {
    /// Parses `name` into canonical form (ASCII capitals lowered), refusing
    /// anything outside it.
    pub fn parse(name: &str) -> Result<Tenant, TenantError> {
        if name.is_empty() {
            return Err(TenantError::Empty);
        }
        if name.len() > MAX_TENANT_BYTES {
            let mut end = MAX_TENANT_BYTES;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            return Err(TenantError::TooLong {
                name: name.get(..end).unwrap_or_default().to_string(),
                len: name.len(),
            });
        }
        let invalid = |why: String| TenantError::Invalid {
            name: name.to_string(),
            why,
        };
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(invalid(format!("{c:?} is not allowed")));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(invalid("it starts or ends with `-`".into()));
        }
        if name.contains("--") {
            return Err(invalid("it contains `--`".into()));
        }
        Ok(Tenant(name.to_ascii_lowercase()))
    }

    /// The canonical name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Tenant {
    type Error = TenantError;
    fn try_from(s: String) -> Result<Tenant, TenantError> {
        Tenant::parse(&s)
    }
}

impl From<Tenant> for String {
    fn from(t: Tenant) -> String {
        t.0
    }
}

/// Which tenants a principal may submit requests for (`tenants = [...]` of
/// a `[[principal]]` in `warden.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TenantBinding {
    /// No `tenants` key (or an empty list): tenant-less requests only.
    #[default]
    TenantLess,
    /// `tenants = ["acme", ...]`: requests for exactly these tenants; a
    /// tenant-less request is refused too (it would reach the tenant-less
    /// namespace, which is not one of the principal's tenants).
    Only(BTreeSet<Tenant>),
    /// `tenants = ["*"]`: any tenant, and tenant-less requests.
    Any,
}

impl TenantBinding {
    /// The binding a `tenants = [...]` list declares; `"*"` must stand alone.
    pub fn parse(names: &[String]) -> Result<TenantBinding, String> {
        if names.iter().any(|n| n == "*") {
            return if names.len() == 1 {
                Ok(TenantBinding::Any)
            } else {
                Err("`*` (any tenant) must be the only entry of `tenants`".into())
            };
        }
        if names.is_empty() {
            return Ok(TenantBinding::TenantLess);
        }
        let mut set = BTreeSet::new();
        for n in names {
            set.insert(Tenant::parse(n).map_err(|e| e.to_string())?);
        }
        Ok(TenantBinding::Only(set))
    }

    /// Whether a request for `tenant` (`None`: tenant-less) is allowed.
    pub fn admits(&self, tenant: Option<&Tenant>) -> bool {
        match (self, tenant) {
            (TenantBinding::Any, _) => true,
            (TenantBinding::TenantLess, None) => true,
            (TenantBinding::Only(set), Some(t)) => set.contains(t),
            (TenantBinding::TenantLess, Some(_)) | (TenantBinding::Only(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_parse_and_capitals_are_lowered() {
        for (given, canonical) in [
            ("acme", "acme"),
            ("ACME", "acme"),
            ("Globex-EU", "globex-eu"),
            ("42", "42"),
            ("a", "a"),
        ] {
            assert_eq!(
                Tenant::parse(given).map(|t| t.to_string()),
                Ok(canonical.to_string()),
                "{given}"
            );
        }
        let longest = "a".repeat(MAX_TENANT_BYTES);
        assert!(Tenant::parse(&longest).is_ok());
    }

    #[test]
    fn names_outside_the_canonical_form_are_refused_and_named() {
        assert_eq!(Tenant::parse(""), Err(TenantError::Empty));
        let long = "a".repeat(MAX_TENANT_BYTES + 1);
        assert!(matches!(
            Tenant::parse(&long),
            Err(TenantError::TooLong { len, .. }) if len == MAX_TENANT_BYTES + 1
        ));
        // A multi-byte character at the cut does not panic.
        let wide = "é".repeat(40);
        assert!(matches!(
            Tenant::parse(&wide),
            Err(TenantError::TooLong { .. })
        ));
        for bad in [
            " acme",
            "acme ",
            "ac me",
            "acme\n",
            "acmé",
            "ａｃｍｅ",
            "acme/x",
            "-acme",
            "acme-",
            "ac--me",
            "acme_x",
            "*",
            "acme\0",
        ] {
            let e = Tenant::parse(bad).expect_err(bad);
            assert!(
                e.to_string().contains(&format!("{bad:?}")),
                "names the input: {e}"
            );
        }
    }

    #[test]
    fn deserializing_parses_into_canonical_form() {
        let t: Tenant = serde_json::from_str("\"ACME\"").expect("parses");
        assert_eq!(t.as_str(), "acme");
        assert!(serde_json::from_str::<Tenant>("\"ac me\"").is_err());
        assert_eq!(serde_json::to_string(&t).expect("ser"), "\"acme\"");
    }

    #[test]
    fn bindings_admit_exactly_their_tenants() {
        let acme = Tenant::parse("acme").expect("tenant");
        let globex = Tenant::parse("globex").expect("tenant");
        let none = TenantBinding::parse(&[]).expect("binding");
        assert!(none.admits(None));
        assert!(!none.admits(Some(&acme)));
        let only = TenantBinding::parse(&["ACME".into()]).expect("binding");
        assert!(only.admits(Some(&acme)));
        assert!(!only.admits(Some(&globex)));
        assert!(!only.admits(None));
        let any = TenantBinding::parse(&["*".into()]).expect("binding");
        assert!(any.admits(None) && any.admits(Some(&globex)));
        assert!(TenantBinding::parse(&["*".into(), "acme".into()]).is_err());
        assert!(TenantBinding::parse(&["ac me".into()]).is_err());
    }
}
