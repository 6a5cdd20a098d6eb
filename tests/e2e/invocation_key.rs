//! `warden:host/invocation`: the idempotency key a capability reads and
//! passes on (issue 20). The `refund` example sends it as
//! `Idempotency-Key`; the payments double applies each key's effect once.
//! The interface is granted like any other import, and an entry that read
//! the key replays and matches.

use crate::daemon::{Daemon, SUBMIT, cap, deploy};
use crate::doubles::{Ledger, payments_with};
use crate::replay::{assert_all_matched, recording_host, replay_all};
use crate::support::*;
use serde_json::json;
use warden_host::policy::Policy;
use warden_host::{Call, Host};

fn refund_policy() -> Policy {
    Policy::load(&repo().join("policies/refund.toml")).expect("example policy")
}

fn refund(order: &str, amount: u64) -> Call {
    Call::new(
        "refund",
        "refund",
        json!({"order": order, "amount": amount, "currency": "EUR"}),
    )
}

async fn payments_double() -> (crate::doubles::Server, Ledger) {
    let ledger = Ledger::default();
    let server = payments_with(18081, ledger.clone())
        .await
        .expect("port 18081 (the refund example's payments service) is free");
    (server, ledger)
}

#[test]
fn a_component_importing_the_invocation_interface_loads_only_when_its_policy_grants_it() {
    let text = std::fs::read_to_string(repo().join("policies/refund.toml")).expect("policy");
    let without = text.replace("\"warden:host/invocation\" = {}\n", "");
    assert_ne!(text, without, "the example policy grants the interface");
    let policy = Policy::parse(&repo().join("policies/refund.toml"), &without).expect("policy");
    let bytes = std::fs::read(guest("refund")).expect("refund was built");
    let mut h = host();
    let err = match h.load(policy, &bytes, "refund") {
        Ok(_) => panic!("refund loaded without the grant it imports"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("warden:host/invocation"), "{err}");
    // Granted, it loads.
    let mut h = host();
    h.load(refund_policy(), &bytes, "refund")
        .expect("loads with the grant");
}

#[tokio::test]
async fn refund_sends_its_key_and_a_repeated_key_is_one_effect_at_the_payments_double() {
    let _port = crate::support::FX_PORT.lock().await;
    let (_server, ledger) = payments_double().await;
    let mut h = host();
    h.load(
        refund_policy(),
        &std::fs::read(guest("refund")).expect("built"),
        "refund",
    )
    .expect("load");
    // A workflow step's request id is its key: the same on every attempt.
    let first = h
        .invoke(refund("K-1", 1900).with_request_id("run-7.pay"))
        .await;
    let again = h
        .invoke(refund("K-1", 1900).with_request_id("run-7.pay"))
        .await;
    assert_eq!(first.outcome.as_string(), "ok", "{first:?}");
    assert_eq!(again.outcome.as_string(), "ok", "{again:?}");
    assert_eq!(
        first.output, again.output,
        "the repeat answers the first receipt"
    );
    assert_eq!(
        ledger.keys_for("K-1"),
        vec![Some("run-7.pay".to_string()); 2]
    );
    assert_eq!(
        ledger.effects_for("run-7.pay"),
        1,
        "one effect for two attempts"
    );
    // A client's key (scoped to its principal) wins over the request id.
    let mut c = refund("K-2", 500).with_request_id("r-any");
    c.idempotency_key = Some("alice:order-K-2".into());
    assert_eq!(h.invoke(c).await.outcome.as_string(), "ok");
    assert_eq!(
        ledger.keys_for("K-2"),
        vec![Some("alice:order-K-2".to_string())]
    );
    // Without either, the generated request id is the key.
    let r = h.invoke(refund("K-3", 700)).await;
    assert_eq!(ledger.keys_for("K-3"), vec![Some(r.request_id.clone())]);
    assert_eq!(ledger.effects(), 3);
}

#[tokio::test]
async fn an_entry_that_read_the_idempotency_key_replays_and_matches_without_the_service() {
    let _port = crate::support::FX_PORT.lock().await;
    let dir = scratch("invocation-key-replay");
    {
        let (_server, _ledger) = payments_double().await;
        let mut h: Host = recording_host(&dir, |_| {});
        h.load(
            refund_policy(),
            &std::fs::read(guest("refund")).expect("built"),
            "refund",
        )
        .expect("load");
        let mut c = refund("R-1", 1200).with_request_id("r-replayed");
        c.idempotency_key = Some("alice:k-1".into());
        let r = h.invoke(c).await;
        assert_eq!(r.outcome.as_string(), "ok", "{r:?}");
        let step = h
            .invoke(refund("R-2", 1300).with_request_id("run-1.refund"))
            .await;
        assert_eq!(step.outcome.as_string(), "ok", "{step:?}");
    }
    // The double is gone: the key and the response come from the recording.
    let (results, summary) = replay_all(&dir).await;
    assert_eq!(results.len(), 2, "{summary:?}");
    assert_all_matched(&results);
}

#[test]
fn a_daemon_request_key_is_the_principal_scoped_client_key_else_the_request_id() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _port = crate::support::FX_PORT.blocking_lock();
    let (_server, ledger) = rt.block_on(payments_double());
    let refund_text = std::fs::read_to_string(repo().join("policies/refund.toml")).expect("policy");
    let imports = refund_text
        .split("[imports]\n")
        .nth(1)
        .and_then(|s| s.split("\n[budget]").next())
        .expect("the example's [imports]");
    let mut c = cap("refund", "refund");
    c.imports = Box::leak(imports.to_string().into_boxed_str());
    let dir = deploy(
        "invocation-key",
        &[c],
        &[("refund", "refund", "refund", "refund")],
        "",
    );
    let d = Daemon::start(&dir);
    let body = |order: &str| json!({"order": order, "amount": 900, "currency": "EUR"});
    let r = d
        .client(SUBMIT)
        .post_json(
            "/v1/requests",
            &json!({"kind": "refund", "input": body("D-1"), "idempotency_key": "ik-1"}),
        )
        .expect("submit");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(ledger.keys_for("D-1"), vec![Some("alice:ik-1".to_string())]);
    let r = d.submit(json!({"kind": "refund", "input": body("D-2")}));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["request_id"].as_str().expect("id").to_string();
    assert_eq!(ledger.keys_for("D-2"), vec![Some(id)]);
}
