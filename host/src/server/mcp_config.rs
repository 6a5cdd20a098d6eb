//! `[mcp]` in `warden.toml` (docs/config.md, docs/mcp.md): which route
//! kinds are MCP tools, what they are called, which principal `warden mcp`
//! (stdio) acts as, and which browser origins may reach `/mcp`.
//!
//! Parsing and the checks that need only the config live here; whether a
//! tool's kind routes to a loaded function is checked with the deployment
//! ([`super::mcp::tools::check`]). A module of its own (not inside
//! `mcp/`) so that the config does not depend on the MCP server. This
//! module must never look at requests.

use serde::Deserialize;

/// `[mcp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// The principal `warden mcp` (stdio) acts as: a `[[principal]]` name
    /// with the `submit` role. By default none: `warden mcp` refuses to start.
    #[serde(default)]
    pub stdio_principal: Option<String>,
    /// `Origin` values `/mcp` accepts (`scheme://host[:port]`, or `null`).
    /// A request carrying any other `Origin` is `403` and audited; a request
    /// without `Origin` (not from a browser) passes. By default empty: every
    /// request that carries an `Origin` is refused.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The tools, in the order `tools/list` shows them.
    #[serde(default)]
    pub tool: Vec<ToolConfig>,
}

/// One `[[mcp.tool]]`: a route kind exposed as a tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// The tool's name (what the client calls). 1-64 of `A-Z a-z 0-9 _ - .`.
    pub name: String,
    /// The exact route kind a call is submitted as (no `*`).
    pub kind: String,
    /// Human-readable title.
    #[serde(default)]
    pub title: Option<String>,
    /// What the tool does, for the model. Required: a tool without a
    /// description is guessed at.
    pub description: String,
    /// `idempotentHint`: set only when declared here. By default absent.
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Overrides the derived `destructiveHint` of a tool that is not
    /// read-only. By default derived (`true` for anything that writes).
    #[serde(default)]
    pub destructive: Option<bool>,
    /// Principals that see and may call the tool. By default every
    /// principal with the `submit` role.
    #[serde(default)]
    pub principals: Option<Vec<String>>,
}

impl ToolConfig {
    /// Whether `principal` may see and call this tool (the role and tenant
    /// binding are checked by the caller).
    pub fn admits(&self, principal: &str) -> bool {
        self.principals
            .as_ref()
            .is_none_or(|p| p.iter().any(|n| n == principal))
    }
}

/// Longest tool name (the MCP spec's recommendation).
pub const MAX_TOOL_NAME: usize = 64;

/// Whether `name` is a valid tool name: 1-64 of `A-Z a-z 0-9 _ - .`.
pub fn check_tool_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TOOL_NAME {
        return Err(format!(
            "tool name `{name}` must be 1-{MAX_TOOL_NAME} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "tool name `{name}` contains `{c}`: use only letters, digits, `_`, `-` and `.`"
        ));
    }
    Ok(())
}

/// Whether `origin` is a valid `allowed_origins` entry.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "null" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| {
            format!(
                "allowed_origins: `{origin}` must start with `http://` or `https://` (or be `null`)"
            )
        })?;
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(format!(
            "allowed_origins: `{origin}` must be `scheme://host[:port]`, without a path"
        ));
    }
    Ok(())
}

impl McpConfig {
    /// Every problem with the section that the config alone shows, as
    /// `(text to find the line by, message)`; each message names the key.
    /// `principals` is every `[[principal]]` as `(name, has submit role)`.
    pub fn problems(&self, principals: &[(String, bool)]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let known = |n: &str| principals.iter().find(|(p, _)| p == n);
        if let Some(p) = &self.stdio_principal {
            match known(p) {
                None => out.push((
                    "stdio_principal".into(),
                    format!("mcp.stdio_principal = \"{p}\" names no [[principal]]"),
                )),
                Some((_, false)) => out.push((
                    "stdio_principal".into(),
                    format!(
                        "mcp.stdio_principal = \"{p}\": that principal lacks the `submit` role"
                    ),
                )),
                Some(_) => {}
            }
        }
        for o in &self.allowed_origins {
            if let Err(why) = check_origin(o) {
                out.push((o.clone(), format!("mcp.{why}")));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &self.tool {
            let needle = format!("\"{}\"", t.name);
            if let Err(why) = check_tool_name(&t.name) {
                out.push((needle.clone(), format!("mcp.tool.name: {why}")));
            }
            if !names.insert(t.name.as_str()) {
                out.push((
                    needle.clone(),
                    format!("mcp.tool.name: tool `{}` is listed twice", t.name),
                ));
            }
            if t.kind.is_empty() || t.kind.contains('*') {
                out.push((
                    format!("\"{}\"", t.kind),
                    format!(
                        "mcp.tool.kind: tool `{}`: kind `{}` must be one exact route kind (no `*`)",
                        t.name, t.kind
                    ),
                ));
            }
            if t.description.trim().is_empty() {
                out.push((
                    needle.clone(),
                    format!(
                        "mcp.tool.description: tool `{}` has an empty description",
                        t.name
                    ),
                ));
            }
            for p in t.principals.iter().flatten() {
                if known(p).is_none() {
                    out.push((
                        format!("\"{p}\""),
                        format!(
                            "mcp.tool.principals: tool `{}` names `{p}`, which is no [[principal]]",
                            t.name
                        ),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, kind: &str) -> ToolConfig {
        ToolConfig {
            name: name.into(),
            kind: kind.into(),
            title: None,
            description: "d".into(),
            idempotent: None,
            destructive: None,
            principals: None,
        }
    }

    #[test]
    fn tool_names_outside_the_allowed_characters_and_length_are_refused() {
        assert!(check_tool_name("greet_v1.ok-2").is_ok());
        assert!(check_tool_name("").is_err());
        assert!(check_tool_name("has space").is_err());
        assert!(check_tool_name("slash/no").is_err());
        assert!(check_tool_name(&"a".repeat(MAX_TOOL_NAME)).is_ok());
        assert!(check_tool_name(&"a".repeat(MAX_TOOL_NAME + 1)).is_err());
    }

    #[test]
    fn every_problem_names_its_key() {
        let c = McpConfig {
            stdio_principal: Some("ghost".into()),
            allowed_origins: vec!["localhost:3000".into(), "http://a/b".into()],
            tool: vec![
                tool("x", "a.*"),
                tool("x", "b"),
                ToolConfig {
                    principals: Some(vec!["nobody".into()]),
                    description: " ".into(),
                    ..tool("y", "c")
                },
            ],
        };
        let problems: Vec<String> = c
            .problems(&[("alice".into(), true)])
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        for key in [
            "mcp.stdio_principal",
            "mcp.allowed_origins: `localhost:3000`",
            "mcp.allowed_origins: `http://a/b`",
            "mcp.tool.kind",
            "mcp.tool.name: tool `x` is listed twice",
            "mcp.tool.description",
            "mcp.tool.principals",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key} missing from {problems:#?}"
            );
        }
        assert_eq!(problems.len(), 7, "{problems:#?}");
    }

    #[test]
    fn the_stdio_principal_needs_the_submit_role() {
        let c = McpConfig {
            stdio_principal: Some("auditor".into()),
            ..McpConfig::default()
        };
        let p = c.problems(&[("auditor".into(), false)]);
        assert_eq!(p.len(), 1);
        assert!(p[0].1.contains("lacks the `submit` role"), "{p:?}");
    }
}
