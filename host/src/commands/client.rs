//! Commands that talk to a running daemon: `warden submit`, `warden
//! capabilities` (and `warden audit tail`, in `audit.rs`).
//!
//! The token comes from `--token-file`, `WARDEN_TOKEN_FILE` or
//! `WARDEN_TOKEN` (never a command-line argument: it would show in `ps`).
//!
//! Exit codes: `warden submit` maps the outcome like `warden run` (0 ok,
//! 10..19); 2 the daemon refused the request (4xx/5xx error) or could not be
//! reached.

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::Outcome;
use warden_host::server::client::{Client, Response};

/// Where the daemon is and how to authenticate.
#[derive(ClapArgs, Debug, Clone)]
pub struct Connection {
    /// The daemon's base URL.
    #[arg(long, env = "WARDEN_URL", default_value = "http://127.0.0.1:7878")]
    pub url: String,
    /// A file holding the bearer token (else `WARDEN_TOKEN`).
    #[arg(long, env = "WARDEN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl Connection {
    /// A client with the token.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading the token file {}", p.display()))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("WARDEN_TOKEN").ok(),
        };
        if token.is_none() {
            bail!("no token: set WARDEN_TOKEN or give --token-file");
        }
        Ok(Client::new(&self.url, token)?)
    }
}

/// Fails with the daemon's error message unless the status is 2xx.
pub fn ok_json(resp: Response) -> anyhow::Result<Value> {
    let body = resp.json();
    if !(200..300).contains(&resp.status) {
        let code = body["error"]["code"].as_str().unwrap_or("?");
        let msg = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| resp.text());
        bail!("daemon answered {} ({code}): {msg}", resp.status);
    }
    Ok(body)
}

/// `warden submit`.
#[derive(ClapArgs, Debug)]
pub struct SubmitArgs {
    /// Request kind (routed by the daemon's route table).
    #[arg(long)]
    pub kind: String,
    /// Input JSON.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Idempotency key: a retry with the same key returns the first answer.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// A request attribute `key=value` (routes may match on attributes;
    /// docs/routes.md); repeatable.
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
    pub attrs: Vec<(String, String)>,
    /// Print the whole response JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// Runs `warden submit`.
pub fn submit(a: SubmitArgs) -> anyhow::Result<ExitCode> {
    let input: Value = serde_json::from_str(&a.input)
        .with_context(|| format!("--input is not valid JSON: {}", a.input))?;
    let mut body = json!({"kind": a.kind, "input": input});
    if let Some(t) = a.tenant {
        body["tenant"] = json!(t);
    }
    if let Some(k) = a.idempotency_key {
        body["idempotency_key"] = json!(k);
    }
    if !a.attrs.is_empty() {
        let attributes: serde_json::Map<String, Value> =
            a.attrs.into_iter().map(|(k, v)| (k, json!(v))).collect();
        body["attributes"] = Value::Object(attributes);
    }
    let resp = a.conn.client()?.post_json("/v1/requests", &body)?;
    let out = resp.json();
    let Some(outcome) = out["outcome"].as_str().and_then(Outcome::parse) else {
        ok_json(resp)?;
        bail!("the daemon's answer has no outcome");
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        match outcome {
            Outcome::Ok => println!("{}", out["output"]),
            // The capability's `err` payload is its answer: print it as `ok`
            // prints its output, so scripts see what the capability said.
            Outcome::CapabilityError if !out["output"].is_null() => {
                eprintln!("{outcome}: {}", out["error"].as_str().unwrap_or(""));
                println!("{}", out["output"]);
            }
            _ => eprintln!("{outcome}: {}", out["error"].as_str().unwrap_or("")),
        }
        eprintln!(
            "request {} via {} (audit #{}){}",
            out["request_id"].as_str().unwrap_or("?"),
            out["route"].as_str().unwrap_or("-"),
            out["audit"]["seq"],
            if out["replayed"] == json!(true) {
                ", replayed"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::from(outcome.exit_code()))
}

/// `--attr key=value`.
fn parse_attr(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// `warden capabilities`.
#[derive(ClapArgs, Debug)]
pub struct CapabilitiesArgs {
    /// One capability (with schemas); all when absent.
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// Runs `warden capabilities`.
pub fn capabilities(a: CapabilitiesArgs) -> anyhow::Result<ExitCode> {
    let client = a.conn.client()?;
    let path = match &a.name {
        Some(n) => format!("/v1/capabilities/{n}"),
        None => "/v1/capabilities".into(),
    };
    let body = ok_json(client.get(&path)?)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitCode::SUCCESS);
    }
    let caps = match &a.name {
        Some(_) => vec![body],
        None => body["capabilities"].as_array().cloned().unwrap_or_default(),
    };
    for c in caps {
        let exports: Vec<String> = c["exports"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|x| {
                        format!(
                            "{}: {}",
                            x["id"].as_str().unwrap_or("?"),
                            x["signature"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{}  {}  signer={}  breaker={}  concurrency={}/{}",
            c["name"].as_str().unwrap_or("?"),
            c["digest"].as_str().unwrap_or("?"),
            c["signer"].as_str().unwrap_or("(unsigned)"),
            c["breaker"].as_str().unwrap_or("?"),
            c["concurrency"]["in_flight"],
            c["concurrency"]["limit"],
        );
        for e in exports {
            println!("    {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
