//! Embedding warden in your own service: load a capability from a policy
//! written in code, then serve many concurrent invocations from one `Host`.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example embed
//! ```
//!
//! An edge service would call `host.invoke` from its request handler; every
//! call gets a fresh sandbox, the policy's budgets, and an invocation record
//! with the outcome, usage and input/output hashes.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_host::policy::Policy;
use warden_host::sandbox::SandboxConfig;
use warden_host::{Call, Host, HostConfig, Outcome};

const POLICY: &str = r#"
[capability]
name = "echo"
component = "echo.wasm"

[budget]
fuel = 10_000_000
memory = "4MiB"
wall_time = "100ms"
max_output = "4KiB"
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let components = PathBuf::from(env!("WARDEN_GUESTS_DIR"));
    let mut host = Host::new(HostConfig {
        sandbox: SandboxConfig {
            max_concurrent_instances: 64,
            ..SandboxConfig::default()
        },
        // This example skips signing to stay short; see demo.rs for a signed setup.
        allow_unsigned: true,
        ..HostConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let policy = Policy::parse(Path::new("<embedded echo policy>"), POLICY)?;
    let bytes = std::fs::read(components.join("echo.wasm"))?;
    host.load(policy, &bytes, "echo.wasm")?;
    let host = Arc::new(host);

    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..256 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            host.invoke(Call::new(
                "echo",
                "echo",
                json!({ "message": format!("request {i}") }),
            ))
            .await
        }));
    }
    let mut ok = 0;
    let mut fuel = 0;
    for t in tasks {
        let record = t.await?;
        if record.outcome == Outcome::Ok {
            ok += 1;
        }
        fuel += record.usage.fuel;
    }
    println!(
        "{ok}/256 invocations ok in {:?} ({} fuel in total); each ran in a fresh sandbox",
        started.elapsed(),
        fuel
    );
    Ok(())
}
