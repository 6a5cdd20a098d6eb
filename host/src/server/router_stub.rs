//! TEMPORARY stand-in for `crate::router` (branch `router`), with the same
//! API, so the daemon compiles before the route table lands. Deleted at the
//! merge: `server` then uses `crate::router` directly.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Route-table problems.
#[derive(Debug, Clone)]
pub struct RouteErrors(pub Vec<String>);

impl fmt::Display for RouteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// One rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Rule id.
    pub id: String,
    /// Request kind.
    pub kind: String,
    /// Optional tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Target capability.
    pub capability: String,
    /// Target function.
    pub function: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    route: Vec<Rule>,
}

/// The route table.
#[derive(Debug, Clone)]
pub struct RouteTable {
    rules: Vec<Rule>,
    hash: String,
}

/// A request to route.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    /// Request kind.
    pub kind: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Matched.
    Route {
        /// Rule id.
        rule_id: String,
        /// Capability.
        capability: String,
        /// Function.
        function: String,
    },
    /// Nothing matched.
    NoRoute,
}

impl RouteTable {
    /// Reads a route table.
    pub fn load(path: &Path) -> Result<RouteTable, RouteErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RouteErrors(vec![format!("{}: {e}", path.display())]))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| RouteErrors(vec![format!("{}: {}", path.display(), e.message())]))?;
        Ok(RouteTable {
            hash: crate::canonical::json_digest(&serde_json::json!(file.route)),
            rules: file.route,
        })
    }

    /// Checks targets against a catalog.
    pub fn check(&self, catalog: &dyn Fn(&str) -> Option<Vec<String>>) -> Result<(), RouteErrors> {
        let mut errs = Vec::new();
        for r in &self.rules {
            match catalog(&r.capability) {
                None => errs.push(format!(
                    "route `{}`: no capability `{}`",
                    r.id, r.capability
                )),
                Some(f) if !f.contains(&r.function) => errs.push(format!(
                    "route `{}`: capability `{}` has no function `{}`",
                    r.id, r.capability, r.function
                )),
                Some(_) => {}
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(RouteErrors(errs))
        }
    }

    /// First match wins.
    pub fn decide(&self, req: &RouteRequest) -> Decision {
        for r in &self.rules {
            if r.kind == req.kind && (r.tenant.is_none() || r.tenant == req.tenant) {
                return Decision::Route {
                    rule_id: r.id.clone(),
                    capability: r.capability.clone(),
                    function: r.function.clone(),
                };
            }
        }
        Decision::NoRoute
    }

    /// `sha256:<hex>`.
    pub fn hash(&self) -> String {
        self.hash.clone()
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}
