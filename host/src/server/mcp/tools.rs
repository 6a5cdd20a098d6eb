//! The tool catalogue: what `tools/list` shows a principal, derived — never
//! hand-written — from the `[mcp]` config, the route table and the loaded
//! capabilities: the schemas from the function's WIT signature, the
//! annotations from what the policy grants (docs/mcp.md "Annotations").
//!
//! Pure over a [`Deployment`]: no I/O, no requests run here. It must never
//! grant anything: a tool is only a name for a route kind.

use crate::Capability;
use crate::component::ExportFunc;
use crate::interfaces::catalogue::GrantKind;
use crate::interfaces::fs::DirMode;
use crate::router::{Decision, RouteRequest};
use crate::server::Deployment;
use crate::server::mcp_config::{McpConfig, ToolConfig};
use serde_json::{Value, json};
use std::sync::Arc;

/// The key under which a tool result's `structuredContent` carries the
/// function's output (MCP structured content must be an object; a WIT
/// function may return any type).
pub const OUTPUT_KEY: &str = "output";

/// What a tool runs, as the route table decides for a tenant-less call
/// without attributes.
pub struct Target {
    /// The capability.
    pub cap: Arc<Capability>,
    /// The export, canonical.
    pub export: ExportFunc,
}

/// The capability and function `kind` routes to (tenant-less, no
/// attributes), or why it routes nowhere callable.
pub fn target(dep: &Deployment, kind: &str) -> Result<Target, String> {
    let decision = dep.routes.decide(&RouteRequest {
        kind: kind.to_string(),
        tenant: None,
        attributes: Default::default(),
    });
    let Decision::Route {
        capability,
        function,
        rule_id,
    } = decision
    else {
        return Err(format!("no route matches kind `{kind}`"));
    };
    let cap = dep.capabilities.get(&capability).cloned().ok_or_else(|| {
        format!("route `{rule_id}` names capability `{capability}`, which is not loaded")
    })?;
    let export =
        cap.shape.export(&function).cloned().ok_or_else(|| {
            format!("route `{rule_id}`: `{function}` is no export of `{capability}`")
        })?;
    if !export.callable {
        return Err(format!(
            "route `{rule_id}`: `{}` of `{capability}` has types that cannot cross JSON",
            export.id
        ));
    }
    Ok(Target { cap, export })
}

/// Every tool whose kind does not route to a callable function: checked at
/// start and at every reload, so a listed tool always has a schema.
pub fn check(mcp: &McpConfig, dep: &Deployment) -> Vec<String> {
    mcp.tool
        .iter()
        .filter_map(|t| {
            target(dep, &t.kind)
                .err()
                .map(|why| format!("[[mcp.tool]] `{}` (kind `{}`): {why}", t.name, t.kind))
        })
        .collect()
}

/// What the policy lets a capability do beyond computing, as far as the
/// annotations care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reach {
    /// `wasi:http/outgoing-handler` is granted.
    pub http: bool,
    /// `warden:host/model` is granted.
    pub model: bool,
    /// `warden:host/kv` is granted (KV grants read and write).
    pub kv: bool,
    /// A preopened directory is granted `read-write`.
    pub fs_write: bool,
}

impl Reach {
    /// From a capability's grants.
    pub fn of(cap: &Capability) -> Reach {
        let mut r = Reach::default();
        for g in &cap.policy.imports {
            match &g.kind {
                GrantKind::Http(_) => r.http = true,
                GrantKind::Model(_) => r.model = true,
                GrantKind::Kv(_) => r.kv = true,
                GrantKind::Preopens(dirs) => {
                    r.fs_write |= dirs.dirs.iter().any(|d| d.mode == DirMode::ReadWrite);
                }
                _ => {}
            }
        }
        r
    }

    /// The tool annotations (docs/mcp.md "Annotations"):
    /// `readOnlyHint` when nothing is written and nothing is sent out over
    /// HTTP; otherwise `destructiveHint` unless the operator says it is
    /// not; `idempotentHint` only where declared; `openWorldHint` when it
    /// reaches outside warden (HTTP or a model).
    pub fn annotations(self, tool: &ToolConfig) -> Value {
        let read_only = !(self.http || self.kv || self.fs_write);
        let mut a = json!({
            "readOnlyHint": read_only,
            "openWorldHint": self.http || self.model,
        });
        if let Some(m) = a.as_object_mut() {
            if let Some(t) = &tool.title {
                m.insert("title".into(), json!(t));
            }
            if !read_only {
                m.insert(
                    "destructiveHint".into(),
                    json!(tool.destructive.unwrap_or(true)),
                );
            }
            if let Some(i) = tool.idempotent {
                m.insert("idempotentHint".into(), json!(i));
            }
        }
        a
    }
}

/// The schema of a tool's `structuredContent`: the output under
/// [`OUTPUT_KEY`].
pub fn output_schema(export: &ExportFunc) -> Value {
    let mut inner = export.output_schema();
    let dialect = inner
        .as_object_mut()
        .and_then(|m| m.remove("$schema"))
        .unwrap_or(Value::Null);
    let mut s = json!({
        "type": "object",
        "properties": { OUTPUT_KEY: inner },
        "required": [OUTPUT_KEY],
        "additionalProperties": false,
    });
    if let (Some(m), Value::String(d)) = (s.as_object_mut(), dialect) {
        m.insert("$schema".into(), Value::String(d));
    }
    s
}

/// One tool's `tools/list` entry.
pub fn describe(tool: &ToolConfig, target: &Target) -> Value {
    let mut t = json!({
        "name": tool.name,
        "description": tool.description,
        "inputSchema": target.export.input_schema(),
        "outputSchema": output_schema(&target.export),
        "annotations": Reach::of(&target.cap).annotations(tool),
    });
    if let (Some(title), Some(m)) = (&tool.title, t.as_object_mut()) {
        m.insert("title".into(), json!(title));
    }
    t
}

/// The tools `principal` may call, in config order, described.
pub fn list(mcp: &McpConfig, dep: &Deployment, principal: &str) -> Vec<Value> {
    mcp.tool
        .iter()
        .filter(|t| t.admits(principal))
        .filter_map(|t| target(dep, &t.kind).ok().map(|target| describe(t, &target)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool() -> ToolConfig {
        ToolConfig {
            name: "t".into(),
            kind: "k".into(),
            title: Some("T".into()),
            description: "d".into(),
            idempotent: None,
            destructive: None,
            principals: None,
        }
    }

    #[test]
    fn a_capability_that_writes_nothing_and_sends_nothing_is_read_only() {
        let a = Reach::default().annotations(&tool());
        assert_eq!(a["readOnlyHint"], true);
        assert_eq!(a["openWorldHint"], false);
        assert!(a.get("destructiveHint").is_none(), "{a}");
        assert!(a.get("idempotentHint").is_none(), "{a}");
        let model_only = Reach {
            model: true,
            ..Reach::default()
        };
        let a = model_only.annotations(&tool());
        assert_eq!(
            (a["readOnlyHint"].clone(), a["openWorldHint"].clone()),
            (json!(true), json!(true))
        );
    }

    #[test]
    fn writes_or_outbound_http_are_destructive_unless_the_operator_says_otherwise() {
        for reach in [
            Reach {
                kv: true,
                ..Reach::default()
            },
            Reach {
                fs_write: true,
                ..Reach::default()
            },
            Reach {
                http: true,
                ..Reach::default()
            },
        ] {
            let a = reach.annotations(&tool());
            assert_eq!(a["readOnlyHint"], false, "{reach:?}");
            assert_eq!(a["destructiveHint"], true, "{reach:?}");
            let marked = ToolConfig {
                destructive: Some(false),
                idempotent: Some(true),
                ..tool()
            };
            let a = reach.annotations(&marked);
            assert_eq!(a["destructiveHint"], false, "{reach:?}");
            assert_eq!(a["idempotentHint"], true, "{reach:?}");
        }
    }
}
