//! Every invocation through the host leaves exactly one audit entry with the
//! right fields, durable before the caller sees the result.

use crate::support::*;
use serde_json::{Value, json};
use warden_host::audit::hostkey;
use warden_host::canonical::{canonical_json, json_digest};
use warden_host::store::{EntryFilter, verify_db};
use warden_host::{Budget, Call, Host, HostConfig, InvocationRecord, Outcome};

fn audited_host(dir: &std::path::Path) -> Host {
    let mut h = Host::new(HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    })
    .expect("host");
    load(&mut h, policy("echo", "", ""), "echo");
    load(
        &mut h,
        policy("spin-loop", "", "fuel = 1_000_000"),
        "spin-loop",
    );
    load(&mut h, policy("panicker", STD_IMPORTS, ""), "panicker");
    load(&mut h, policy("all-types", STD_IMPORTS, ""), "all-types");
    load(
        &mut h,
        policy("big-output", STD_IMPORTS, "max_output = \"1KiB\"").with_payloads_hash_only(),
        "big-output",
    );
    h
}

trait HashOnly {
    fn with_payloads_hash_only(self) -> Self;
}

impl HashOnly for warden_host::policy::Policy {
    fn with_payloads_hash_only(mut self) -> Self {
        self.capability.payloads = warden_host::policy::PayloadRetention::HashOnly;
        self
    }
}

#[tokio::test]
async fn every_outcome_class_produces_exactly_one_entry_with_the_right_fields() {
    let dir = scratch("audit-outcomes");
    let h = audited_host(&dir);
    let calls: Vec<(Call, Outcome)> = vec![
        (
            Call::new("echo", "echo", json!({"message": "hi"})),
            Outcome::Ok,
        ),
        (
            Call::new("echo", "echo", json!({"message": 1})),
            Outcome::InvalidInput,
        ),
        (
            Call::new("echo", "no-such-fn", json!({})),
            Outcome::InvalidInput,
        ),
        (Call::new("nope", "echo", json!({})), Outcome::Denied),
        (
            Call::new("spin-loop", "spin", json!({"n": 1})),
            Outcome::BudgetExhausted(Budget::Fuel),
        ),
        (
            Call::new("panicker", "boom", json!({"message": "x"})),
            Outcome::Trap,
        ),
        (
            Call::new("all-types", "try-it", json!({"v": "fail"})),
            Outcome::CapabilityError,
        ),
        (
            Call::new("big-output", "make", json!({"bytes": 5000})),
            Outcome::BudgetExhausted(Budget::Output),
        ),
    ];
    let mut records: Vec<(InvocationRecord, Value)> = Vec::new();
    for (call, expected) in calls {
        let input = call.input.clone();
        let r = h.invoke(call.from_principal("alice", "test")).await;
        assert_eq!(r.outcome, expected, "{r:?}");
        assert!(r.audit.is_some(), "every outcome is audited: {r:?}");
        records.push((r, input));
    }
    let log = h.audit().expect("audit log");
    let entries = log
        .entries(1, 100, &EntryFilter::default())
        .expect("entries");
    assert_eq!(
        entries.len(),
        records.len(),
        "exactly one entry per invocation"
    );
    for (entry, (record, input)) in entries.iter().zip(&records) {
        let a = record.audit.as_ref().expect("audit ref");
        assert_eq!(entry.seq, a.seq);
        assert_eq!(entry.hash.to_string(), a.hash);
        let e = &entry.entry;
        assert_eq!(e.request_id, record.request_id);
        assert_eq!(e.principal, "alice");
        assert_eq!(e.request_kind, "test");
        assert_eq!(e.capability, record.capability);
        assert_eq!(e.function, record.function);
        assert_eq!(e.outcome, record.outcome);
        assert_eq!(e.usage, record.usage);
        assert!(e.unsigned_allowed, "the dev switch is recorded");
        assert_eq!(e.attempt, 1);
        assert_eq!(e.admitted_at_ms, record.admitted_at_ms);
        let input_hash = json_digest(input);
        assert_eq!(
            e.input_sha256.map(|h| h.to_string()),
            Some(input_hash.clone())
        );
        assert_eq!(
            e.output_sha256.map(|h| h.to_string()),
            Some(record.output_hash.clone())
        );
        assert_eq!(record.output_hash, json_digest(&record.output_document()));
        match h.capability(&record.capability) {
            Some(cap) => {
                assert_eq!(
                    e.component_digest.map(|d| d.to_string()),
                    Some(cap.digest.clone())
                );
                assert_eq!(
                    e.policy_hash.map(|d| d.to_string()),
                    Some(cap.policy_hash.clone())
                );
                assert_eq!(e.replayable, cap.policy.is_replayable());
            }
            None => assert_eq!(e.component_digest, None, "unknown capability: no digest"),
        }
        // Payloads are stored beside the chain, except for hash-only capabilities.
        let stored = e
            .input_sha256
            .and_then(|h| log.payload(&h).expect("payload lookup"));
        if record.capability == "big-output" {
            assert_eq!(stored, None, "hash-only capability stores no payloads");
        } else {
            assert_eq!(stored, Some(canonical_json(input).into_bytes()));
        }
    }
    h.shutdown().await.expect("clean shutdown");
    let pubkey = hostkey::read_public_key(&dir.join(hostkey::PUBLIC_FILE)).expect("host.pub");
    let report = verify_db(&dir.join("warden.db"), Some(&pubkey)).expect("verify");
    assert!(report.passed(false), "{report:?}");
    assert_eq!(report.entries_checked, records.len() as u64);
}

/// `warden run` of echo with `message`, appending to the audit store in `data_dir`.
fn warden_run_echo(data_dir: &str, message: &str) {
    let input = serde_json::to_string(&json!({"message": message})).expect("json");
    let (code, _, err) = warden(&[
        "run",
        &guest("echo").display().to_string(),
        "--policy",
        &repo().join("policies/echo.toml").display().to_string(),
        "--call",
        "echo",
        "--input",
        &input,
        "--allow-unsigned",
        "--data-dir",
        data_dir,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("audit: entry"), "{err}");
}

/// `warden audit prune` deletes stored payloads past the retention period;
/// the entries keep the payloads' hashes, so the chain still verifies.
#[test]
fn audit_prune_deletes_old_payloads_and_the_chain_still_verifies() {
    let data = scratch("prune");
    let d = data.display().to_string();
    warden_run_echo(&d, "kept until pruned");
    let db = data.join("warden.db");
    let input_hash = {
        let reader = warden_host::store::AuditReader::open(&db).expect("db");
        let entry = reader
            .entries(1, 10, &EntryFilter::default())
            .expect("entries")
            .into_iter()
            .next()
            .expect("one entry");
        let hash = entry.entry.input_sha256.expect("input hash");
        assert!(reader.payload(&hash).expect("read").is_some());
        hash
    };
    // A long retention keeps everything.
    let (code, out, err) = warden(&["audit", "prune", "--older-than", "30d", "--data-dir", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted 0 payloads"), "{out}");
    let (code, out, err) = warden(&["audit", "prune", "--older-than", "0s", "--data-dir", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted 2 payloads"), "{out}");
    let reader = warden_host::store::AuditReader::open(&db).expect("db");
    assert_eq!(reader.payload(&input_hash).expect("read"), None);
    let (code, out, err) = warden(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 0, "the chain verifies without payloads: {out}\n{err}");
    let (code, _, err) = warden(&["audit", "prune", "--older-than", "soon", "--data-dir", &d]);
    assert_eq!(code, 2, "a bad duration is a usage error: {err}");
    assert!(err.contains("soon"), "{err}");
}

#[test]
fn warden_run_appends_to_the_audit_store_and_audit_verify_passes() {
    let data = scratch("run-audit");
    let d = data.display().to_string();
    for message in ["one", "two"] {
        warden_run_echo(&d, message);
    }
    let (code, out, err) = warden(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = warden(&["audit", "show", "--data-dir", &d, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("\"request_id\"").count(), 2, "{out}");
}
