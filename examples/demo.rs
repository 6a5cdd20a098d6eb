//! The quickstart demo: builds the example capabilities (the root build
//! script does that), loads them under their policies, runs requests through
//! the host, and prints outputs and usage.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example demo
//! ```

use serde_json::{Value, json};
use std::path::PathBuf;
use warden_host::policy::Policy;
use warden_host::{Call, Host, HostConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let components = PathBuf::from(env!("WARDEN_GUESTS_DIR"));
    let mut host = Host::new(HostConfig::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;

    println!("== loading capabilities from policies/ ==");
    for name in ["echo", "invoice-reconcile", "pii-redact"] {
        let policy = Policy::load(&repo.join("policies").join(format!("{name}.toml")))?;
        let component = components.join(&policy.capability.component);
        let cap = host.load_files(&policy.source, &component)?;
        println!(
            "  {:<18} {} imports granted, digest {}",
            cap.name(),
            cap.shape.imports.len(),
            short(&cap.digest)
        );
    }

    println!("\n== requests ==");
    let requests: Vec<(&str, &str, Value)> = vec![
        ("echo", "echo", json!({"message": "hello, warden"})),
        (
            "invoice-reconcile",
            "reconcile",
            json!({
                "invoices": [
                    {"id": "INV-1", "customer": "acme", "amount-cents": 12_000},
                    {"id": "INV-2", "customer": "acme", "amount-cents": 4_500},
                    {"id": "INV-3", "customer": "globex", "amount-cents": 990},
                ],
                "ledger": [
                    {"ref": "INV-1", "customer": "acme", "amount-cents": 12_000},
                    {"ref": "INV-2", "customer": "acme", "amount-cents": 4_000},
                    {"ref": "PAY-9", "customer": "initech", "amount-cents": 1},
                ],
            }),
        ),
        (
            "pii-redact",
            "redact",
            json!({"text": "Reach Dana at dana@example.com or +1 415-555-0100; card 4111 1111 1111 1111."}),
        ),
        // A hostile-ish request: wrong input type, refused before any guest code runs.
        ("echo", "echo", json!({"message": 42})),
    ];
    for (capability, function, input) in requests {
        let r = host.invoke(Call::new(capability, function, input)).await;
        println!("\n{capability}.{function} -> {}", r.outcome);
        match (&r.output, &r.error) {
            (Some(out), _) => println!("  output: {}", serde_json::to_string(out)?),
            (None, Some(err)) => println!("  error:  {err}"),
            _ => {}
        }
        for line in &r.logs {
            println!("  log {}: {}", line.level, line.message);
        }
        println!(
            "  usage:  fuel {}  peak memory {} KiB  wall {} us  replayable {}",
            r.usage.fuel,
            r.usage.peak_memory / 1024,
            r.usage.wall_time_us,
            r.replayable
        );
    }
    Ok(())
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
