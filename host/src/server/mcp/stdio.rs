//! `warden mcp --config warden.toml`: the daemon with one MCP session on
//! stdin/stdout, for a local agent that starts warden as a subprocess.
//!
//! The session acts as `[mcp] stdio_principal` — named by the operator in
//! config, never chosen by the client. The daemon's HTTP API keeps
//! listening (`listen`) so that approvers can decide held calls; when the
//! client closes stdin the daemon drains and stops like on SIGTERM.
//! Nothing but MCP messages is ever written to stdout.

use super::McpServer;
use super::stdio_transport::StdioTransport;
use crate::server::auth::Principal;
use crate::server::{Daemon, DaemonConfig, ServeError, ServeOptions, Session};
use rmcp::ServiceExt;
use std::sync::Arc;

/// Why `warden mcp` cannot start before the daemon is even opened.
pub fn stdio_principal(config: &DaemonConfig) -> Result<Principal, String> {
    let Some(name) = &config.mcp.stdio_principal else {
        return Err(format!(
            "{}: [mcp] stdio_principal is not set: name the [[principal]] (with the submit role) that `warden mcp` acts as",
            config.source.display()
        ));
    };
    let p = config
        .principals
        .iter()
        .find(|p| &p.name == name)
        .ok_or_else(|| format!("[mcp] stdio_principal `{name}` names no [[principal]]"))?;
    Ok(Principal {
        name: p.name.clone(),
        roles: p.roles.clone(),
        groups: p.groups.clone(),
        tenants: p.tenant_binding().unwrap_or_default(),
    })
}

/// Runs the daemon and the stdio session until the session ends (stdin
/// closed) or SIGTERM/SIGINT; then drains and writes the final checkpoint.
pub async fn serve(config: DaemonConfig, options: ServeOptions) -> Result<(), ServeError> {
    let principal = stdio_principal(&config).map_err(|e| ServeError::Invalid(vec![e]))?;
    let session: Session = Box::new(move |daemon: Arc<Daemon>| {
        let run: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            Box::pin(async move {
                let server = McpServer::stdio(daemon, principal);
                // The pipes an agent starts a subprocess with are driven by
                // the runtime's reactor (no blocking-thread hand-off per
                // message); a file or terminal falls back to blocking stdio.
                let (reader, writer) = rmcp::transport::stdio_pipes();
                let (transport, session) = StdioTransport::new(server.clone(), reader, writer);
                match server.serve(transport).await {
                    Ok(running) => {
                        // Established: `tools/call`s now take the transport's
                        // shorter way (stdio_transport.rs).
                        session.established(running.peer().clone());
                        if let Err(e) = running.waiting().await {
                            tracing::error!("mcp stdio session failed: {e}");
                        }
                    }
                    Err(e) => eprintln!("warden: mcp stdio session did not start: {e}"),
                }
            });
        run
    });
    crate::server::serve_session(config, options, session).await
}
