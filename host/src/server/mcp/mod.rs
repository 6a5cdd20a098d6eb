//! The MCP server (docs/mcp.md): agents call governed capabilities as
//! tools, over stdio (`warden mcp`) and streamable HTTP (`/mcp` on
//! `warden serve`), on the official Rust SDK `rmcp`.
//!
//! This folder owns the protocol edge only: it turns `tools/list` into the
//! catalogue the config, routes and policies imply ([`tools`]), a
//! `tools/call` into one request through [`Daemon::submit_via`] — the same
//! straight line as `POST /v1/requests`: admit, idempotency, route, type
//! check, gate or hold, attempts, audit — and answers into tool results
//! ([`call`]), and serves read-only resources ([`resources`]).
//!
//! It must never run guest code, type inputs, evaluate approval rules or
//! append audit entries except through the daemon's stages, and it offers
//! nothing that changes a grant, a policy, a route or a budget: the client
//! chooses only which exposed tool to call with which input.

mod call;
pub mod client_id;
pub mod http;
mod resources;
pub mod stdio;
mod stdio_transport;
pub mod tools;

use super::Daemon;
use super::auth::Principal;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// `_meta` key of a `tools/call` carrying the idempotency key (an MCP
/// request id is not one: it is unique per message, and a retry is a new
/// message).
pub const META_IDEMPOTENCY_KEY: &str = "dev.warden/idempotency-key";
/// `_meta` key of a `tools/call` naming the tenant the call is made for.
pub const META_TENANT: &str = "dev.warden/tenant";
/// `_meta` key of every tool result carrying warden's whole answer
/// (request id, outcome, usage, audit reference; docs/api.md).
pub const META_ANSWER: &str = "dev.warden/answer";

/// The authenticated principal of one HTTP request to `/mcp`, put into the
/// request's extensions by [`http`] before `rmcp` sees it.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// The client label an HTTP request's `Mcp-Session-Id` carried
/// ([`client_id`]), put into the request's extensions by [`http`].
#[derive(Debug, Clone)]
pub struct SessionClient(pub String);

/// One MCP server handler over the daemon. For stdio the principal is
/// fixed by config; over HTTP it is each request's bearer token's.
#[derive(Clone)]
pub struct McpServer {
    daemon: Arc<Daemon>,
    stdio: Option<Principal>,
    /// The stdio session's client label, once its `initialize` named the
    /// client ([`McpServer::client`]): one session, one client, so it is
    /// built once rather than per call.
    stdio_client: Arc<OnceLock<String>>,
}

impl McpServer {
    /// A handler for `/mcp` (principal per request).
    pub fn http(daemon: Arc<Daemon>) -> McpServer {
        McpServer {
            daemon,
            stdio: None,
            stdio_client: Arc::default(),
        }
    }

    /// A handler for `warden mcp`, acting as `principal`.
    pub fn stdio(daemon: Arc<Daemon>, principal: Principal) -> McpServer {
        McpServer {
            daemon,
            stdio: Some(principal),
            stdio_client: Arc::default(),
        }
    }

    /// Who makes this request.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
        if let Some(p) = &self.stdio {
            return Ok(p.clone());
        }
        ctx.extensions
            .get::<::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .map(|c| c.0.clone())
            .ok_or_else(|| McpError::internal_error("the request carries no principal", None))
    }

    /// The client program's label ([`client_id::label`]), from the
    /// request's `_meta` (2026-07-28) or, on stdio, the session's
    /// `initialize`; over HTTP a 2025-11-25 client's comes back in the
    /// session id its `initialize` was answered with. (The SDK's stand-in
    /// peer info for a stateless HTTP request names the SDK, not the
    /// client, so it is not used.)
    fn client(&self, ctx: &RequestContext<RoleServer>) -> Option<String> {
        if self.stdio.is_some() {
            if let Some(label) = self.stdio_client.get() {
                return Some(label.clone());
            }
            let label = ctx
                .client_info()
                .map(|i| client_id::label(&i.name, &i.version))?;
            return Some(self.stdio_client.get_or_init(|| label).clone());
        }
        if let Some(i) = ctx.meta.client_info() {
            return Some(client_id::label(&i.name, &i.version));
        }
        ctx.extensions
            .get::<::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<SessionClient>())
            .map(|c| c.0.clone())
    }
}

/// Builds an `rmcp` result from its JSON form (the form the spec defines,
/// so nothing depends on the SDK's constructors), marked `resultType:
/// "complete"` as 2026-07-28 requires (the SDK strips it for older peers).
fn model<T: serde::de::DeserializeOwned>(mut value: Value) -> Result<T, McpError> {
    if let Some(m) = value.as_object_mut() {
        m.entry("resultType")
            .or_insert_with(|| Value::String("complete".into()));
    }
    serde_json::from_value(value)
        .map_err(|e| McpError::internal_error(format!("cannot build an MCP result: {e}"), None))
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let info = json!({
            "protocolVersion": "2026-07-28",
            "capabilities": {"tools": {}, "resources": {}},
            "serverInfo": {"name": "warden", "version": env!("CARGO_PKG_VERSION")},
            "instructions": "Each tool is a signed WebAssembly capability run under a deny-by-default policy; \
                every call is routed, type-checked, possibly held for human approval, budgeted and audited. \
                A held call returns its approval id; read warden://requests/{id}?wait=60s for its result.",
        });
        serde_json::from_value(info).unwrap_or_default()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let principal = self.caller(&ctx)?;
        let dep = self.daemon.deployment();
        let tools = self.daemon.visible_tools(&principal, &dep);
        model(json!({ "tools": tools }))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let principal = self.caller(&ctx)?;
        let client = self.client(&ctx);
        // The SDK moves the request's `_meta` into the context.
        let mut meta = std::mem::take(&mut ctx.meta.0.0);
        if let Some(m) = &request.meta {
            meta.extend(m.0.0.clone());
        }
        let detach = self.stdio.is_none();
        let result = call::call_tool(
            self.daemon.clone(),
            principal,
            client,
            meta,
            request,
            detach,
        )
        .await?;
        Ok(CallToolResponse::Complete(result))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let principal = self.caller(&ctx)?;
        model(resources::list(&self.daemon, &principal))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        model(resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let principal = self.caller(&ctx)?;
        let result = resources::read(&self.daemon, &principal, &request.uri).await?;
        Ok(ReadResourceResponse::Complete(model(result)?))
    }
}

impl Daemon {
    /// The `[[mcp.tool]]`s `principal` may call, described: it has the
    /// `submit` role, the tool admits it, and it may make tenant-less
    /// requests or the call names a tenant (checked at the call).
    pub(crate) fn visible_tools(
        &self,
        principal: &Principal,
        dep: &super::Deployment,
    ) -> Vec<Value> {
        if !principal.roles.contains(&super::Role::Submit) {
            return Vec::new();
        }
        tools::list(&self.config.mcp, dep, &principal.name)
    }
}
