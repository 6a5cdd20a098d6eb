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

#[tokio::test]
async fn order_notes_adds_and_lists_notes_per_order() {
    let h = example_host("order-notes");
    for (order, text) in [
        ("A-1", "called customer"),
        ("A-1", "refund issued"),
        ("B-2", "other"),
    ] {
        let r = call(
            &h,
            "order-notes",
            "add-note",
            json!({"order-id": order, "text": text}),
        )
        .await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
    let r = call(&h, "order-notes", "list-notes", json!({"order-id": "A-1"})).await;
    assert_eq!(
        r.output,
        Some(json!({"ok": [
            {"number": 1, "text": "called customer"},
            {"number": 2, "text": "refund issued"},
        ]})),
        "{r:?}"
    );
    let bad = call(
        &h,
        "order-notes",
        "add-note",
        json!({"order-id": "../x", "text": "t"}),
    )
    .await;
    assert_eq!(bad.outcome, Outcome::CapabilityError, "{bad:?}");
}

#[tokio::test]
async fn ticket_triage_classifies_through_the_model_double_within_budget() {
    let server = crate::doubles::ticket_classifier(0).await.expect("double");
    let mut config = warden_host::HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        ..warden_host::HostConfig::default()
    };
    config.models.insert(
        "small".into(),
        warden_host::interfaces::model::ModelBackend::new(&server.origin(), "triage-model"),
    );
    let mut h = warden_host::Host::new(config).expect("host");
    let policy = Policy::load(&repo().join("policies/ticket-triage.toml")).expect("policy");
    load(&mut h, policy, "ticket-triage");
    for (body, label) in [
        ("I was charged twice on my invoice", "billing"),
        ("The app crashes when I upload", "bug"),
        ("I cannot reset my password", "account"),
        ("Do you have a dark mode?", "other"),
    ] {
        let r = call(
            &h,
            "ticket-triage",
            "triage",
            json!({"subject": "help", "body": body}),
        )
        .await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        let out = r.output.clone().unwrap_or_default();
        assert_eq!(out["label"], label, "{body}: {r:?}");
        assert_eq!(out["from-model"], true, "{r:?}");
        assert_eq!(r.host_calls.len(), 1, "{r:?}");
        assert!(r.replayable, "the model's response is recorded: {r:?}");
    }
    let sent = server.last().expect("called").json();
    assert_eq!(sent["max_tokens"], 3, "{sent}");
}

#[tokio::test]
async fn ticket_triage_falls_back_to_other_when_the_model_is_unavailable() {
    // No backend configured for `small`: the call is `unavailable`.
    let h = example_host("ticket-triage");
    let r = call(
        &h,
        "ticket-triage",
        "triage",
        json!({"subject": "x", "body": "y"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"label": "other", "from-model": false, "tokens": 0}))
    );
}

#[tokio::test]
async fn fx_rate_fetches_a_quote_from_the_one_allowed_service() {
    // The policy names 127.0.0.1:18080 (the demo's stand-in service).
    let _port = crate::support::FX_PORT.lock().await;
    let server = match crate::doubles::fx_rates(18080).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("port 18080 is busy ({e}); skipping the fx-rate example test");
            return;
        }
    };
    let h = example_host("fx-rate");
    let r = call(
        &h,
        "fx-rate",
        "rate",
        json!({"base": "eur", "quote": "USD"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"ok": {"base": "EUR", "quote": "USD", "rate": 1.08}}))
    );
    assert_eq!(server.hits(), 1);
    assert_eq!(r.host_calls[0].target, "http://127.0.0.1:18080");
    assert!(r.replayable, "the response is recorded: {r:?}");
}
