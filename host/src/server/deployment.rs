//! A deployment: the route table, the trust file and every capability,
//! validated together. The daemon serves one deployment at a time and swaps
//! it whole (startup, `POST /v1/admin/reload`, SIGHUP); an in-flight request
//! keeps the `Arc` of the deployment it started with.

use super::config::DaemonConfig;
use crate::router::RouteTable;
use crate::signing::TrustStore;
use crate::{Capability, Host};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Routes, trust and capabilities that validated together.
pub struct Deployment {
    /// The route table.
    pub routes: RouteTable,
    /// Capabilities by name.
    pub capabilities: BTreeMap<String, Arc<Capability>>,
    /// `sha256:` of the trust file bytes (`None`: no trust file).
    pub trust_hash: Option<String>,
    /// Checked workflow plans by name (`workflows_dir`).
    pub workflows: BTreeMap<String, Arc<super::workflows::Loaded>>,
}

impl Deployment {
    /// What identifies this deployment: route-table hash, trust hash, and
    /// each capability's digest and policy hash (the reload audit detail).
    pub fn fingerprint(&self) -> Value {
        let caps: serde_json::Map<String, Value> = self
            .capabilities
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    json!({"digest": c.digest, "policy_hash": c.policy_hash}),
                )
            })
            .collect();
        json!({
            "routes_hash": self.routes.hash(),
            "trust_hash": self.trust_hash,
            "capabilities": caps,
        })
    }

    /// What changed from the deployment fingerprinted `old` to the one
    /// fingerprinted `new` ([`Deployment::fingerprint`]), one line each:
    /// capabilities added, removed or changed (digest, policy), then the
    /// route table and the trust file. Empty when nothing changed.
    pub fn changes(old: &Value, new: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let empty = serde_json::Map::new();
        let caps = |v: &Value| {
            v["capabilities"]
                .as_object()
                .cloned()
                .unwrap_or_else(|| empty.clone())
        };
        let (before, after) = (caps(old), caps(new));
        for (name, now) in &after {
            match before.get(name) {
                None => out.push(format!(
                    "capability `{name}` added (digest {})",
                    short(&now["digest"])
                )),
                Some(was) => {
                    if was["digest"] != now["digest"] {
                        out.push(format!(
                            "capability `{name}`: component {} -> {}",
                            short(&was["digest"]),
                            short(&now["digest"])
                        ));
                    }
                    if was["policy_hash"] != now["policy_hash"] {
                        out.push(format!(
                            "capability `{name}`: policy {} -> {}",
                            short(&was["policy_hash"]),
                            short(&now["policy_hash"])
                        ));
                    }
                }
            }
        }
        for name in before.keys().filter(|n| !after.contains_key(*n)) {
            out.push(format!("capability `{name}` removed"));
        }
        if old["routes_hash"] != new["routes_hash"] {
            out.push(format!(
                "route table {} -> {}",
                short(&old["routes_hash"]),
                short(&new["routes_hash"])
            ));
        }
        if old["trust_hash"] != new["trust_hash"] {
            out.push(format!(
                "trust file {} -> {}",
                short(&old["trust_hash"]),
                short(&new["trust_hash"])
            ));
        }
        out
    }

    /// Reads and validates everything the config names. Returns every
    /// problem found (each one line, naming its file), never only the first.
    pub fn load(host: &Host, config: &DaemonConfig) -> Result<Deployment, Vec<String>> {
        let mut errors = Vec::new();
        let (trust, trust_hash) = match &config.trust {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => match TrustStore::parse(&String::from_utf8_lossy(&bytes), path) {
                    Ok(t) => (Some(t), Some(crate::digest::Hash256::of(&bytes).tagged())),
                    Err(e) => {
                        errors.push(e.to_string());
                        (None, None)
                    }
                },
                Err(e) => {
                    errors.push(format!("{}: cannot read trust file: {e}", path.display()));
                    (None, None)
                }
            },
            None => (None, None),
        };
        let trust_ok = errors.is_empty();
        let mut capabilities: BTreeMap<String, Arc<Capability>> = BTreeMap::new();
        let mut known: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in policy_files(config, &mut errors) {
            let policy = match crate::policy::Policy::load(&path) {
                Ok(p) => p,
                Err(e) => {
                    errors.extend(e.0.iter().map(ToString::to_string));
                    continue;
                }
            };
            let name = policy.capability.name.clone();
            if let Some(other) = known.insert(name.clone(), path.clone()) {
                errors.push(format!(
                    "{}: capability `{name}` is also defined by {}",
                    path.display(),
                    other.display()
                ));
                continue;
            }
            let component = config.components_dir.join(&policy.capability.component);
            let bytes = match std::fs::read(&component) {
                Ok(b) => b,
                Err(e) => {
                    errors.push(format!(
                        "{}: component {} of capability `{name}` cannot be read: {e}",
                        path.display(),
                        component.display()
                    ));
                    continue;
                }
            };
            if !trust_ok {
                continue;
            }
            check_approvers(&policy, config, &mut errors);
            match host.prepare_with(
                trust.as_ref(),
                policy,
                &bytes,
                &component.display().to_string(),
            ) {
                Ok(cap) => {
                    capabilities.insert(name, Arc::new(cap));
                }
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        let workflows = super::workflows::load(config, &capabilities, &mut errors);
        let routes = match RouteTable::load(&config.routes) {
            Ok(table) => {
                if let Err(e) = table.check_workflows(&|name| workflows.contains_key(name)) {
                    errors.extend(e.to_string().lines().map(str::to_string));
                }
                let catalog = |name: &str| -> Option<Vec<String>> {
                    capabilities
                        .get(name)
                        .map(|c| c.shape.exports.iter().map(|e| e.id.clone()).collect())
                };
                if let Err(e) = table.check(&catalog) {
                    errors.extend(e.to_string().lines().map(str::to_string));
                }
                if let Err(e) = host.store_route_table(&table) {
                    errors.push(format!("{}: {e}", config.routes.display()));
                }
                Some(table)
            }
            Err(e) => {
                errors.extend(e.to_string().lines().map(str::to_string));
                None
            }
        };
        match routes {
            Some(routes) if errors.is_empty() => {
                let deployment = Deployment {
                    routes,
                    capabilities,
                    trust_hash,
                    workflows,
                };
                // Every MCP tool must route to a callable function.
                let problems = super::mcp::tools::check(&config.mcp, &deployment);
                if problems.is_empty() {
                    Ok(deployment)
                } else {
                    Err(problems)
                }
            }
            _ => Err(errors),
        }
    }
}

/// Every `[[approval]]` rule can be satisfied by the configured
/// principals: each named approver exists with the `approve` role, and a
/// rule has at least as many eligible approvers as it needs approvals.
fn check_approvers(
    policy: &crate::policy::Policy,
    config: &DaemonConfig,
    errors: &mut Vec<String>,
) {
    for (i, rule) in policy.approvals.iter().enumerate() {
        let at = format!("{}: [[approval]] rule {}", policy.source.display(), i + 1);
        config.check_gate(&at, &rule.approvers, rule.mode, errors);
    }
}

fn policy_files(config: &DaemonConfig, errors: &mut Vec<String>) -> Vec<PathBuf> {
    let dir = &config.policies_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!(
                "{}: cannot read the policies directory: {e}",
                dir.display()
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// `sha256:0123abcd…` (the first 8 hex digits), or `none`.
fn short(v: &Value) -> String {
    match v.as_str() {
        Some(s) => {
            let cut = s
                .char_indices()
                .nth("sha256:".len() + 8)
                .map_or(s.len(), |(i, _)| i);
            if cut < s.len() {
                format!("{}…", &s[..cut])
            } else {
                s.to_owned()
            }
        }
        None => "none".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(caps: Value, routes: &str) -> Value {
        json!({"routes_hash": routes, "trust_hash": "sha256:aa", "capabilities": caps})
    }

    #[test]
    fn changes_name_each_added_removed_and_changed_part() {
        let old = fp(
            json!({"echo": {"digest": "sha256:1111111111", "policy_hash": "sha256:p1"},
                   "gone": {"digest": "sha256:2", "policy_hash": "sha256:p2"}}),
            "sha256:r1",
        );
        let new = fp(
            json!({"echo": {"digest": "sha256:1111111111", "policy_hash": "sha256:p9"},
                   "fresh": {"digest": "sha256:3", "policy_hash": "sha256:p3"}}),
            "sha256:r2",
        );
        assert_eq!(
            Deployment::changes(&old, &new),
            [
                "capability `echo`: policy sha256:p1 -> sha256:p9",
                "capability `fresh` added (digest sha256:3)",
                "capability `gone` removed",
                "route table sha256:r1 -> sha256:r2",
            ]
        );
        assert!(Deployment::changes(&old, &old).is_empty());
    }
}
