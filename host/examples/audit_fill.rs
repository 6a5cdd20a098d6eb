//! Fills an audit database with synthetic entries, for trying `warden audit`.
//!
//! Run: `cargo run -p warden-host --example audit_fill -- .warden 1000`
//! then `cargo run -p warden-host --bin warden -- audit verify --data-dir .warden`.

use std::path::PathBuf;
use warden_host::audit::{EventKind, NewEntry};
use warden_host::digest::{Hash256, canonical_json};
use warden_host::outcome::{Outcome, Usage};
use warden_host::store::hostkey;
use warden_host::store::{AuditLog, CheckpointPolicy, DB_FILE, Payloads};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(args.next().unwrap_or_else(|| ".warden".into()));
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let key = hostkey::load_or_create(&data_dir)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let log = AuditLog::open(&data_dir.join(DB_FILE), key, CheckpointPolicy::default())?;
        let start = log.head().0;
        for i in 1..=n {
            let input = serde_json::json!({"n": start + i});
            let entry = NewEntry {
                event: EventKind::Invocation,
                admitted_at_ms: 1_700_000_000_000 + i,
                request_id: format!("demo-{}", start + i),
                principal: "demo".into(),
                request_kind: "cli".into(),
                route: None,
                capability: if i % 3 == 0 { "fx-rate" } else { "echo" }.into(),
                component_digest: Some(Hash256([1; 32])),
                policy_hash: Some(Hash256([2; 32])),
                function: "run".into(),
                input_sha256: Some(Hash256::of_json(&input)),
                output_sha256: None,
                outcome: if i % 5 == 0 {
                    Outcome::Denied
                } else {
                    Outcome::Ok
                },
                usage: Usage {
                    fuel: 1000 * i,
                    peak_memory: 65536,
                    wall_time_us: 100,
                },
                replayable: true,
                unsigned_allowed: false,
                attempt: 1,
                approvals: vec![],
                host_calls: vec![],
                detail: None,
                evidence: Default::default(),
            };
            let payloads = Payloads {
                input: Some(canonical_json(&input).into_bytes()),
                output: None,
                results: Vec::new(),
            };
            log.append(entry, payloads).await?;
        }
        log.close().await?;
        anyhow::Ok(())
    })?;
    println!(
        "appended {n} entries to {}",
        data_dir.join(DB_FILE).display()
    );
    Ok(())
}
