//! `warden approvals list|show|approve|deny`: decide on requests a running
//! daemon holds for approval (docs/approvals.md). Needs a token with the
//! `approve` role (`list`/`show` also work with `audit`).

use super::client::{Connection, ok_json};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Value, json};
use std::process::ExitCode;

/// `warden approvals`.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List held requests (pending by default).
    List {
        /// pending, approved, executed, denied, expired or all.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one held request with its full context (input, rule, digest, policy hash).
    Show {
        /// The request id.
        id: String,
        /// Print the daemon's JSON instead of the readable form.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Approve a held request; the last approval runs it and prints its result.
    Approve(Decide),
    /// Deny a held request (it ends as `approval_denied`).
    Deny(Decide),
}

/// Arguments of `approve` and `deny`.
#[derive(ClapArgs, Debug)]
pub struct Decide {
    /// The request id.
    pub id: String,
    /// Why (recorded; the audit chain keeps its SHA-256).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// Runs `warden approvals ...`.
pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::List { state, json, conn } => {
            let body = ok_json(
                conn.client()?
                    .get(&format!("/v1/approvals?state={state}"))?,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(ExitCode::SUCCESS);
            }
            let items = body["approvals"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                eprintln!("no {state} requests");
            }
            for h in items {
                println!("{}", summary(&h));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Show { id, json, conn } => {
            let body = ok_json(conn.client()?.get(&format!("/v1/approvals/{id}"))?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print!("{}", details(&body)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Approve(d) => decide(d, "approve"),
        Cmd::Deny(d) => decide(d, "deny"),
    }
}

fn decide(d: Decide, verb: &str) -> anyhow::Result<ExitCode> {
    let resp = d.conn.client()?.post_json(
        &format!("/v1/approvals/{}/{verb}", d.id),
        &json!({"reason": d.reason}),
    )?;
    let body = ok_json(resp)?;
    println!("{}", summary(&body));
    if let Some(result) = body.get("result") {
        println!("{}", serde_json::to_string_pretty(result)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line: id, state, approvals, capability/function, requester, and
/// either when it expires (still waiting) or how it ended.
fn summary(h: &Value) -> String {
    format!(
        "{}  {}  {}/{} approvals  {}  by {}  {}",
        h["request_id"].as_str().unwrap_or("?"),
        h["state"].as_str().unwrap_or("?"),
        h["approvals_given"],
        h["approvals_needed"],
        what(h),
        h["requester"].as_str().unwrap_or("?"),
        timing(h),
    )
}

/// `capability#function` for a held request; `run <id> step <step>
/// (workflow <name>)` for a workflow's approval step.
fn what(h: &Value) -> String {
    match h["run"].as_object() {
        Some(run) => format!(
            "run {} step {} (workflow {})",
            run.get("run_id").and_then(Value::as_str).unwrap_or("?"),
            run.get("step").and_then(Value::as_str).unwrap_or("?"),
            run.get("workflow").and_then(Value::as_str).unwrap_or("?"),
        ),
        None => format!(
            "{}#{}",
            h["capability"].as_str().unwrap_or("?"),
            h["function"].as_str().unwrap_or("?")
        ),
    }
}

/// "expires in Ns" while the request waits; "ended -> outcome" once it has.
fn timing(h: &Value) -> String {
    match (h["ended_at_ms"].as_u64(), h["outcome"].as_str()) {
        (Some(_), Some(outcome)) => format!("ended -> {outcome}"),
        (Some(_), None) => "ended".to_owned(),
        (None, _) => format!(
            "expires in {}s",
            h["expires_in_ms"].as_u64().unwrap_or(0) / 1000
        ),
    }
}

/// Who may decide, in words.
fn approvers(rule: &Value) -> String {
    match rule["approvers"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|a| a.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "anyone with the approve role (the rule names no approvers)".to_owned(),
    }
}

/// The readable form of `approvals show`: everything an approver decides on.
fn details(h: &Value) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let rule = &h["rule"];
    let mut out = String::new();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    writeln!(out, "request     {}", text(&h["request_id"]))?;
    writeln!(out, "state       {}  ({})", text(&h["state"]), timing(h))?;
    if h["run"].is_object() {
        writeln!(
            out,
            "step        {}  (tenant {})",
            what(h),
            text(&h["tenant"])
        )?;
        writeln!(out, "context     {}", h["input"])?;
    } else {
        writeln!(
            out,
            "call        {}#{}  (kind {}, route {}, tenant {})",
            text(&h["capability"]),
            text(&h["function"]),
            text(&h["kind"]),
            text(&h["route"]),
            text(&h["tenant"])
        )?;
    }
    writeln!(out, "requester   {}", text(&h["requester"]))?;
    writeln!(
        out,
        "rule        #{} {}: {}",
        rule["index"],
        text(&rule["mode"]),
        text(&rule["reason"])
    )?;
    writeln!(out, "approvers   {}", approvers(rule))?;
    writeln!(
        out,
        "approvals   {} of {}",
        h["approvals_given"], h["approvals_needed"]
    )?;
    for d in h["decisions"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  - {} {} at {} ms: {}",
            text(&d["principal"]),
            text(&d["decision"]),
            d["at_ms"],
            text(&d["reason"])
        )?;
    }
    writeln!(out, "component   {}", text(&h["component_digest"]))?;
    writeln!(out, "policy      {}", text(&h["policy_hash"]))?;
    if let Some(reason) = h["end_reason"].as_str() {
        writeln!(out, "ended       {reason}")?;
    }
    writeln!(out, "input")?;
    writeln!(out, "{}", serde_json::to_string_pretty(&h["input"])?)?;
    Ok(out)
}
