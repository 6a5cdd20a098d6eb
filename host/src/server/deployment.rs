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
        let routes = match RouteTable::load(&config.routes) {
            Ok(table) => {
                let catalog = |name: &str| -> Option<Vec<String>> {
                    capabilities
                        .get(name)
                        .map(|c| c.shape.exports.iter().map(|e| e.id.clone()).collect())
                };
                if let Err(e) = table.check(&catalog) {
                    errors.extend(e.to_string().lines().map(str::to_string));
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
    use super::config::Role;
    use crate::policy::approval::Approver;
    let approvers: Vec<_> = config
        .principals
        .iter()
        .filter(|p| p.roles.contains(&Role::Approve))
        .collect();
    for (i, rule) in policy.approvals.iter().enumerate() {
        let at = format!("{}: [[approval]] rule {}", policy.source.display(), i + 1);
        for a in &rule.approvers {
            if !approvers.iter().any(|p| a.admits(&p.name, &p.groups)) {
                errors.push(format!(
                    "{at}: approver `{a}` is not a principal with the `approve` role{} in the daemon config",
                    if matches!(a, Approver::Group(_)) { " (no member of that group has it)" } else { "" }
                ));
            }
        }
        let eligible = approvers
            .iter()
            .filter(|p| {
                rule.approvers.is_empty()
                    || rule.approvers.iter().any(|a| a.admits(&p.name, &p.groups))
            })
            .count();
        if eligible < rule.mode.required() {
            errors.push(format!(
                "{at}: mode `{}` needs {} distinct approvers but only {eligible} configured principal(s) may approve it",
                rule.mode.as_str(),
                rule.mode.required()
            ));
        }
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
