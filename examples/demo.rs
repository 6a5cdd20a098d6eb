//! The quickstart demo: builds the example capabilities (the root build
//! script does that), generates a development signing key, signs the
//! components, loads them under their policies with a trust file, runs
//! requests through the host, prints outputs and usage, and verifies the
//! audit chain the requests left behind.
//!
//! Everything it writes goes to `target/demo/` (recreated on every run).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example demo
//! ```

#[path = "../tests/e2e/doubles.rs"]
mod doubles;

use serde_json::{Value, json};
use std::path::PathBuf;
use warden_host::audit::hostkey;
use warden_host::policy::Policy;
use warden_host::signing::{self, TrustStore};
use warden_host::{Call, Host, HostConfig, keys};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let built = PathBuf::from(env!("WARDEN_GUESTS_DIR"));
    let work = repo.join("target").join("demo");
    let _ = std::fs::remove_dir_all(&work);
    let signed_dir = work.join("components");
    std::fs::create_dir_all(&signed_dir)?;

    println!("== signing the example capabilities with a development key ==");
    let dev = keys::generate();
    keys::write_key_pair(&work.join("keys"), "dev", &dev)?;
    let names = [
        "echo",
        "invoice-reconcile",
        "pii-redact",
        "order-notes",
        "ticket-triage",
        "fx-rate",
    ];

    println!("\n== local stand-ins for external services (loopback) ==");
    let model_server = doubles::ticket_classifier(0).await?;
    println!(
        "  model backend `small` (OpenAI-compatible): {}",
        model_server.origin()
    );
    let fx_server = doubles::fx_rates(18080).await;
    match &fx_server {
        Ok(s) => println!("  exchange-rate API: {}", s.origin()),
        Err(e) => println!(
            "  exchange-rate API: port 18080 unavailable ({e}); fx-rate will report the failure"
        ),
    }
    let mut models = std::collections::BTreeMap::new();
    models.insert(
        "small".to_string(),
        warden_host::interfaces::model::ModelBackend::new(&model_server.origin(), "demo-model"),
    );
    let trust_text = format!(
        "# Development trust file written by the demo.\n[[key]]\nname = \"dev\"\npublic_key = \"{}\"\ncapabilities = [{}]\n",
        keys::public_key_text(&dev.verifying_key()),
        names.map(|n| format!("\"{n}\"")).join(", ")
    );
    let trust_path = work.join("trust.toml");
    std::fs::write(&trust_path, trust_text)?;
    println!(
        "  key dev ({}), trust file {}",
        keys::key_id(&dev.verifying_key()),
        trust_path.display()
    );

    let mut host = Host::new(HostConfig {
        trust: Some(TrustStore::load(&trust_path)?),
        data_dir: Some(work.join("data")),
        models,
        ..HostConfig::default()
    })?;

    println!("\n== loading capabilities from policies/ ==");
    for name in names {
        let policy = Policy::load(&repo.join("policies").join(format!("{name}.toml")))?;
        let unsigned = std::fs::read(built.join(&policy.capability.component))?;
        let component = signed_dir.join(&policy.capability.component);
        std::fs::write(&component, signing::sign(&unsigned, &dev)?)?;
        let cap = host.load_files(&policy.source, &component)?;
        println!(
            "  {:<18} signed by {}, {} imports granted, digest {}",
            cap.name(),
            cap.signer.as_deref().unwrap_or("-"),
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
        (
            "order-notes",
            "add-note",
            json!({"order-id": "A-17", "text": "customer asked for gift wrap"}),
        ),
        ("order-notes", "list-notes", json!({"order-id": "A-17"})),
        (
            "ticket-triage",
            "triage",
            json!({"subject": "Charged twice", "body": "My card was billed twice for the March invoice."}),
        ),
        ("fx-rate", "rate", json!({"base": "EUR", "quote": "USD"})),
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
        for c in &r.host_calls {
            println!("  host call: {} {} ({})", c.interface, c.target, c.status);
        }
        println!(
            "  usage:  fuel {}  peak memory {} KiB  wall {} us  replayable {}",
            r.usage.fuel,
            r.usage.peak_memory / 1024,
            r.usage.wall_time_us,
            r.replayable
        );
        if let Some(a) = &r.audit {
            println!("  audit:  entry {} {}", a.seq, short(&a.hash));
        }
    }

    println!("\n== verifying the audit chain with only the host's public key ==");
    host.shutdown().await?;
    let data = work.join("data");
    let pubkey = hostkey::read_public_key(&data.join(hostkey::PUBLIC_FILE))?;
    let report = warden_host::store::verify_db(&data.join("warden.db"), Some(&pubkey))?;
    println!(
        "  {} entries, {} signed checkpoints: {}",
        report.entries_checked,
        report.checkpoints_checked,
        if report.passed(false) {
            "chain verifies"
        } else {
            "CHAIN BROKEN"
        }
    );
    println!(
        "  (try: cargo run -p warden-host --bin warden -- audit show --data-dir {})",
        data.display()
    );
    Ok(())
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
