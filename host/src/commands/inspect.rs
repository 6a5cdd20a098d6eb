//! `warden inspect`: what a component asks for and what it offers.

use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::component::Shape;
use warden_host::policy::Policy;
use warden_host::sandbox::{Sandbox, SandboxConfig};

/// Show a component's imports (granted or refused by a policy, with the
/// grant's settings), its exports with WIT signatures and JSON Schemas, its
/// size and sha256 digest. For security reviewers.
///
/// Exit code 0; 3 when a policy is given and refuses at least one import.
#[derive(ClapArgs)]
pub struct Args {
    /// The component file (.wasm).
    pub component: PathBuf,
    /// Judge the imports against this policy.
    #[arg(long, short = 'p')]
    pub policy: Option<PathBuf>,
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
    let report = describe(&args, &bytes, &shape, policy.as_ref());
    let refused = report["imports"]
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i["status"] == "refused"));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if refused {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn describe(args: &Args, bytes: &[u8], shape: &Shape, policy: Option<&Policy>) -> Value {
    let imports: Vec<Value> = shape
        .imports
        .iter()
        .map(|i| {
            let grant = policy.and_then(|p| i.interface.as_ref().and_then(|n| p.grants(n)));
            let status = match (policy, grant) {
                (None, _) => "not judged",
                (Some(_), Some(_)) => "granted",
                (Some(_), None) => "refused",
            };
            json!({
                "name": i.name,
                "status": status,
                "grant": grant.map(|g| json!({"as": g.name.to_string(), "settings": g.kind})),
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
        "imports": imports,
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
    println!("\nimports (the authority it asks for):");
    for i in r["imports"].as_array().into_iter().flatten() {
        let settings = match &i["grant"] {
            Value::Null => String::new(),
            g => format!("  {}", g["settings"]),
        };
        println!(
            "  {:<11} {}{settings}",
            i["status"].as_str().unwrap_or(""),
            i["name"].as_str().unwrap_or("")
        );
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
