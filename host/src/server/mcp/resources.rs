//! Read-only MCP resources (docs/mcp.md "Resources"): the capability
//! inventory, each visible tool's permission manifest (the policy's grants
//! beside the component's WIT imports), and a request's stored answer (how
//! a held call's result is followed up).
//!
//! Nothing here writes: reading a resource never changes a grant, a
//! policy, a route, a budget or a request.

use super::tools;
use crate::server::Daemon;
use crate::server::auth::Principal;
use crate::server::config::Role;
use rmcp::ErrorData as McpError;
use serde_json::{Value, json};

const CAPABILITIES: &str = "warden://capabilities";
const TOOLS: &str = "warden://tools/";
const PERMISSIONS: &str = "/permissions";
const REQUESTS: &str = "warden://requests/";

/// `resources/list`: the inventory and the manifests of the tools the
/// principal may call.
pub(super) fn list(daemon: &Daemon, principal: &Principal) -> Value {
    let dep = daemon.deployment();
    let mut out = vec![json!({
        "uri": CAPABILITIES,
        "name": "capabilities",
        "title": "Capability inventory",
        "description": "Every loaded capability: digest, signer, policy hash, imports with their grants, exports with JSON Schemas, budgets",
        "mimeType": "application/json",
    })];
    for t in daemon.visible_tools(principal, &dep) {
        let name = t["name"].as_str().unwrap_or_default();
        out.push(json!({
            "uri": format!("{TOOLS}{name}{PERMISSIONS}"),
            "name": format!("{name}-permissions"),
            "title": format!("What `{name}` may touch"),
            "description": format!("Permission manifest of tool `{name}`: its capability's grants beside the component's WIT imports, budgets, approval rules"),
            "mimeType": "application/json",
        }));
    }
    json!({ "resources": out })
}

/// `resources/templates/list`.
pub(super) fn templates() -> Value {
    json!({"resourceTemplates": [{
        "uriTemplate": format!("{REQUESTS}{{request_id}}"),
        "name": "request",
        "title": "A request's answer",
        "description": "The stored answer of one of your requests (a held call's approval id is its request id); append ?wait=60s to wait while it is held",
        "mimeType": "application/json",
    }]})
}

/// `resources/read`.
pub(super) async fn read(
    daemon: &Daemon,
    principal: &Principal,
    uri: &str,
) -> Result<Value, McpError> {
    let body = if uri == CAPABILITIES {
        if !principal
            .roles
            .iter()
            .any(|r| crate::server::api::roles::INVENTORY.contains(r))
        {
            return Err(not_found(uri));
        }
        let dep = daemon.deployment();
        let caps: Vec<Value> = dep
            .capabilities
            .values()
            .map(|c| crate::server::api::inventory(daemon, c))
            .collect();
        json!({ "capabilities": caps })
    } else if let Some(name) = uri
        .strip_prefix(TOOLS)
        .and_then(|r| r.strip_suffix(PERMISSIONS))
    {
        manifest(daemon, principal, name).ok_or_else(|| not_found(uri))?
    } else if let Some(rest) = uri.strip_prefix(REQUESTS) {
        let (id, query) = rest.split_once('?').unwrap_or((rest, ""));
        let wait = match query.strip_prefix("wait=") {
            Some(w) => crate::policy::HumanDuration::parse(w)
                .map_err(|e| McpError::invalid_params(format!("{uri}: wait: {e}"), None))?
                .get(),
            None if query.is_empty() => std::time::Duration::ZERO,
            None => {
                return Err(McpError::invalid_params(
                    format!("{uri}: the only query is `wait=<duration>` (at most 60s)"),
                    None,
                ));
            }
        };
        if !principal
            .roles
            .iter()
            .any(|r| matches!(r, Role::Submit | Role::Audit))
        {
            return Err(not_found(uri));
        }
        daemon
            .stored_request(principal, id, wait)
            .await
            .map_err(|e| McpError::resource_not_found(format!("{uri}: {}", e.message), None))?
    } else {
        return Err(not_found(uri));
    };
    Ok(json!({"contents": [{
        "uri": uri,
        "mimeType": "application/json",
        "text": serde_json::to_string_pretty(&body).unwrap_or_default(),
    }]}))
}

fn not_found(uri: &str) -> McpError {
    McpError::resource_not_found(format!("no resource `{uri}` visible to you"), None)
}

/// What tool `name` may touch, if the principal may call it.
fn manifest(daemon: &Daemon, principal: &Principal, name: &str) -> Option<Value> {
    let dep = daemon.deployment();
    let tool = daemon
        .config
        .mcp
        .tool
        .iter()
        .find(|t| t.name == name && t.admits(&principal.name))
        .filter(|_| principal.roles.contains(&Role::Submit))?;
    let target = tools::target(&dep, &tool.kind).ok()?;
    let cap = &target.cap;
    let inventory = crate::server::api::inventory(daemon, cap);
    let grants: Vec<Value> = cap
        .policy
        .imports
        .iter()
        .map(|g| json!({"interface": g.name.to_string(), "settings": g.kind}))
        .collect();
    Some(json!({
        "tool": tool.name,
        "kind": tool.kind,
        "capability": cap.name(),
        "function": target.export.id,
        "signature": target.export.signature(),
        "component_digest": cap.digest,
        "policy_hash": cap.policy_hash,
        "signer": cap.signer,
        "annotations": tools::Reach::of(cap).annotations(tool),
        "wit_imports": inventory["imports"],
        "grants": grants,
        "budget": cap.policy.budget,
        "retry": cap.policy.retry,
        "approval_rules": cap.policy.approvals.len(),
    }))
}
