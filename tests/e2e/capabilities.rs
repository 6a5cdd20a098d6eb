//! The example capabilities return the right answers.

use crate::support::*;
use serde_json::json;
use warden_host::Outcome;
use warden_host::policy::Policy;

fn example_host(name: &str) -> warden_host::Host {
    let mut h = host();
    let policy = Policy::load(&repo().join(format!("policies/{name}.toml")))
        .expect("example policy is valid");
    load(&mut h, policy, name);
    h
}

#[tokio::test]
async fn echo_returns_its_input() {
    let h = example_host("echo");
    let r = call(&h, "echo", "echo", json!({"message": "héllo ✓"})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.output, Some(json!("héllo ✓")));
    assert!(
        r.usage.fuel > 0 && r.usage.peak_memory > 0 && r.usage.wall_time_us > 0,
        "{:?}",
        r.usage
    );
}

#[tokio::test]
async fn invoice_reconcile_matches_flags_discrepancies_and_leftovers() {
    let h = example_host("invoice-reconcile");
    let input = json!({
        "invoices": [
            {"id": "INV-1", "customer": "acme", "amount-cents": 10_000},
            {"id": "INV-2", "customer": "acme", "amount-cents": 2_500},
            {"id": "INV-3", "customer": "globex", "amount-cents": 999},
        ],
        "ledger": [
            {"ref": "INV-2", "customer": "acme", "amount-cents": 2_000},
            {"ref": "INV-1", "customer": "acme", "amount-cents": 10_000},
            {"ref": "PAY-77", "customer": "initech", "amount-cents": 1},
        ],
    });
    let r = call(&h, "invoice-reconcile", "reconcile", input).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({
            "matched": ["INV-1"],
            "unmatched-invoices": ["INV-3"],
            "unmatched-lines": ["PAY-77"],
            "discrepancies": [{"invoice-id": "INV-2", "expected-cents": 2_500, "actual-cents": 2_000}],
        }))
    );
}

#[tokio::test]
async fn pii_redact_removes_emails_phones_and_valid_cards_only() {
    let h = example_host("pii-redact");
    let text = "Contact jane.doe@example.org or (555) 123-4567. Card 4111-1111-1111-1111; order 1234567890123 stays.";
    let r = call(&h, "pii-redact", "redact", json!({"text": text})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let out = r.output.expect("output");
    let redacted = out["text"].as_str().expect("text");
    assert!(!redacted.contains("jane.doe@example.org"), "{redacted}");
    assert!(!redacted.contains("123-4567"), "{redacted}");
    assert!(!redacted.contains("4111-1111-1111-1111"), "{redacted}");
    assert!(
        redacted.contains("[EMAIL]") && redacted.contains("[PHONE]") && redacted.contains("[CARD]"),
        "{redacted}"
    );
    let kinds: Vec<&str> = out["redactions"]
        .as_array()
        .expect("redactions")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["email", "phone", "card"], "{out}");
    // Offsets point into the original text.
    let first = &out["redactions"][0];
    let (s, e) = (
        first["start"].as_u64().expect("start") as usize,
        first["end"].as_u64().expect("end") as usize,
    );
    assert_eq!(&text[s..e], "jane.doe@example.org");
    assert_eq!(
        r.logs.len(),
        1,
        "pii-redact logs one summary line: {:?}",
        r.logs
    );
}
