//! `warden workflow start|status|list|cancel|resume`: workflow runs on a
//! running daemon, over its HTTP API (docs/workflows.md, docs/api.md
//! "Runs") with the client `warden submit` uses. It only sends requests
//! and prints answers; it must never read runs.db or decide anything about
//! a run itself.
//!
//! Exit codes: 0 the daemon accepted the request (for `start --wait`: the
//! run completed); 1 a waited-for run ended in any other state; 2 the
//! daemon refused the request or could not be reached.

use super::client::{Connection, ok_json};
use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use std::process::ExitCode;

/// `warden workflow start`.
#[derive(ClapArgs, Debug)]
pub struct StartArgs {
    /// The request kind the route table sends to the workflow
    /// (conventionally the workflow's name).
    pub kind: String,
    /// The workflow input (JSON).
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Idempotency key: a retry with the same key returns the same run.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait (up to 60s) for the run to end before printing it.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `warden workflow status`.
#[derive(ClapArgs, Debug)]
pub struct StatusArgs {
    /// The run id.
    pub run: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// `warden workflow list`.
#[derive(ClapArgs, Debug)]
pub struct ListArgs {
    /// Only runs in this state (running, waiting, compensating, completed,
    /// compensated, needs_attention, cancelled).
    #[arg(long)]
    pub state: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `warden workflow cancel`.
#[derive(ClapArgs, Debug)]
pub struct CancelArgs {
    /// The run id.
    pub run: String,
    /// Why (audited).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `warden workflow resume`.
#[derive(ClapArgs, Debug)]
pub struct ResumeArgs {
    /// The run id.
    pub run: String,
    /// Why the run may continue (required, audited).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub conn: Connection,
}

fn print(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `warden workflow start`.
pub fn start(a: StartArgs) -> anyhow::Result<ExitCode> {
    let input: Value = serde_json::from_str(&a.input)
        .with_context(|| format!("--input is not valid JSON: {}", a.input))?;
    let mut body = json!({"kind": a.kind, "input": input});
    if let Some(t) = a.tenant {
        body["tenant"] = json!(t);
    }
    if let Some(k) = a.idempotency_key {
        body["idempotency_key"] = json!(k);
    }
    if a.wait {
        body["wait"] = json!("60s");
    }
    let client = a.conn.client()?;
    let answer = ok_json(client.post_json("/v1/requests", &body)?)?;
    let Some(run_id) = answer["run"]["run_id"].as_str() else {
        anyhow::bail!(
            "kind `{}` did not start a run (it routes to a capability, not a workflow): {answer}",
            body["kind"].as_str().unwrap_or_default()
        );
    };
    let run = ok_json(client.get(&format!("/v1/runs/{run_id}"))?)?;
    print(&run)?;
    if a.wait && run["state"] != "completed" {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `warden workflow status`.
pub fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let run = ok_json(a.conn.client()?.get(&format!("/v1/runs/{}", a.run))?)?;
    print(&run)?;
    Ok(ExitCode::SUCCESS)
}

/// `warden workflow list`: one line per run.
pub fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let path = match &a.state {
        Some(s) => format!("/v1/runs?state={s}"),
        None => "/v1/runs".to_string(),
    };
    let body = ok_json(a.conn.client()?.get(&path)?)?;
    for r in body["runs"].as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}  {}",
            r["run_id"].as_str().unwrap_or("?"),
            r["workflow"].as_str().unwrap_or("?"),
            r["state"].as_str().unwrap_or("?"),
            r["principal"].as_str().unwrap_or("?"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `warden workflow cancel`.
pub fn cancel(a: CancelArgs) -> anyhow::Result<ExitCode> {
    let body = json!({"reason": a.reason});
    let out = ok_json(
        a.conn
            .client()?
            .post_json(&format!("/v1/runs/{}/cancel", a.run), &body)?,
    )?;
    print(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `warden workflow resume`.
pub fn resume(a: ResumeArgs) -> anyhow::Result<ExitCode> {
    let body = json!({"reason": a.reason});
    let out = ok_json(
        a.conn
            .client()?
            .post_json(&format!("/v1/runs/{}/resume", a.run), &body)?,
    )?;
    print(&out)?;
    Ok(ExitCode::SUCCESS)
}
