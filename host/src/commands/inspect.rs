//! `warden inspect`: what a component asks for and what it offers.

use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::component::Shape;
use warden_host::policy::Policy;
use warden_host::review::{self, Review};
use warden_host::sandbox::{Sandbox, SandboxConfig};

/// Show a component's imports (granted or refused by a policy, with the
/// grant's settings), its exports with WIT signatures and JSON Schemas, its
/// size and sha256 digest. For security reviewers.
///
/// With `--policy`: the effective budgets, retry and approval rules, the
/// digest and signer pins and the payloads mode, every grant beside the
/// import that needs it, and a warning for every grant no import uses.
///
/// Exit code 0; 3 when an import is refused by the policy or can never be
/// granted (raw sockets, unknown interfaces) — with or without a policy —
/// or, with `--deny-warnings`, when there is a warning.
#[derive(ClapArgs)]
pub struct Args {
    /// The component file (.wasm).
    pub component: PathBuf,
    /// Judge the imports against this policy.
    #[arg(long, short = 'p')]
    pub policy: Option<PathBuf>,
    /// Treat warnings (grants no import uses) as failures: exit code 3.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading {}", args.component.display()))?;
    let policy = match &args.policy {
        Some(p) => Some(Policy::load(p).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent_instances: 1,
        ..SandboxConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let component =
        wasmtime::component::Component::from_binary(sandbox.engine(), &bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid component: {e:#}",
                args.component.display()
            )
        })?;
    let shape = Shape::of(sandbox.engine(), &component);
    let review = review::review(&shape, policy.as_ref());
    let report = describe(&args, &bytes, &shape, policy.as_ref(), &review);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    let failed = review.blocks_loading() || (args.deny_warnings && !review.warnings.is_empty());
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn describe(
    args: &Args,
    bytes: &[u8],
    shape: &Shape,
    policy: Option<&Policy>,
    review: &Review<'_>,
) -> Value {
    let imports: Vec<Value> = review
        .imports
        .iter()
        .map(|i| {
            let why = match &i.status {
                review::Status::NeverGrantable(why) => Some(why.clone()),
                _ => None,
            };
            json!({
                "name": i.name,
                "status": i.status.as_str(),
                "grant": i.grant.map(|g| json!({"as": g.name.to_string(), "settings": g.kind})),
                "why": why,
            })
        })
        .collect();
    let exports: Vec<Value> = shape
        .exports
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "signature": e.signature(),
                "callable": e.callable,
                "input_schema": e.input_schema(),
                "output_schema": e.output_schema(),
            })
        })
        .collect();
    json!({
        "component": args.component.display().to_string(),
        "size": bytes.len(),
        "digest": warden_host::signing::digest(bytes).map(|d| d.to_string()).unwrap_or_default(),
        "signatures": warden_host::signing::signatures(bytes)
            .map(|sigs| sigs.iter().map(|s| s.key_id()).collect::<Vec<_>>())
            .unwrap_or_default(),
        "policy": args.policy.as_ref().map(|p| p.display().to_string()),
        "policy_hash": policy.map(|p| p.hash()),
        "effective_policy": policy.map(|p| p.effective()),
        "imports": imports,
        "warnings": review.warnings,
        "exports": exports,
    })
}

fn print_text(r: &Value) {
    println!("component  {}", r["component"].as_str().unwrap_or(""));
    println!("size       {} bytes", r["size"]);
    println!(
        "digest     {} (signature sections excluded)",
        r["digest"].as_str().unwrap_or("")
    );
    println!(
        "signed by  {} (key ids; `warden verify` checks them)",
        r["signatures"]
    );
    if let Some(p) = r["policy"].as_str() {
        println!(
            "policy     {p} ({})",
            r["policy_hash"].as_str().unwrap_or("")
        );
    }
    if let Some(p) = r.get("effective_policy").filter(|p| !p.is_null()) {
        print_policy(p);
    }
    println!("\nimports (the authority it asks for):");
    for i in r["imports"].as_array().into_iter().flatten() {
        let detail = match (&i["grant"], i["why"].as_str()) {
            (Value::Null, Some(why)) => format!("  ({why})"),
            (Value::Null, None) => String::new(),
            (g, _) => format!("  <- {} {}", g["as"].as_str().unwrap_or(""), g["settings"]),
        };
        println!(
            "  {:<16} {}{detail}",
            i["status"].as_str().unwrap_or(""),
            i["name"].as_str().unwrap_or("")
        );
    }
    for w in r["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", w.as_str().unwrap_or(""));
    }
    println!("\nexports (the operations it offers):");
    for e in r["exports"].as_array().into_iter().flatten() {
        let note = if e["callable"] == true {
            ""
        } else {
            "  (not callable with JSON)"
        };
        println!(
            "  {}: {}{note}",
            e["id"].as_str().unwrap_or(""),
            e["signature"].as_str().unwrap_or("")
        );
    }
    println!("\n(JSON Schemas of inputs and outputs: --json)");
}

/// Budgets, retry and approval rules, pins and payloads mode, as the policy
/// takes effect (defaults filled in).
fn print_policy(p: &Value) {
    let cap = &p["capability"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    println!(
        "pins       digest {}; signers {}",
        match &cap["digest"] {
            Value::Null => "not pinned".to_owned(),
            d => text(d),
        },
        match cap["signers"].as_array() {
            Some(s) if !s.is_empty() => s.iter().map(text).collect::<Vec<_>>().join(", "),
            _ => "any key trusted for it".to_owned(),
        }
    );
    println!("payloads   {}", text(&cap["payloads"]));
    let b = &p["budget"];
    println!(
        "budget     fuel {}, memory {}, wall time {}, output {}, stdout {}, table elements {}",
        text(&b["fuel"]),
        text(&b["memory"]),
        text(&b["wall_time"]),
        text(&b["max_output"]),
        text(&b["max_stdout"]),
        text(&b["table_elements"])
    );
    match p.get("retry") {
        Some(r) => println!("retry      {r}"),
        None => println!("retry      none (the daemon never retries it)"),
    }
    match p["approval"].as_array() {
        Some(rules) if !rules.is_empty() => {
            for (i, rule) in rules.iter().enumerate() {
                let approvers = match rule["approvers"].as_array() {
                    Some(a) if !a.is_empty() => a.iter().map(text).collect::<Vec<_>>().join(", "),
                    _ => "anyone with the approve role".to_owned(),
                };
                println!(
                    "approval   #{} {} {} when {}; expires {}; approvers {approvers}",
                    i + 1,
                    text(&rule["function"]),
                    text(&rule["mode"]),
                    match &rule["when"] {
                        Value::Null => "always".to_owned(),
                        w => text(w),
                    },
                    text(&rule["expires"]),
                );
            }
        }
        _ => println!("approval   none (every call runs at once)"),
    }
}
