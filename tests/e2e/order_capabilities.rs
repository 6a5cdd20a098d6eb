//! The order workflow's example capabilities (issue 20): `inventory`
//! reserves and releases stock idempotently in its KV namespace,
//! `risk-score` scores with the model within its token budget and falls
//! back to `high`, and `payments` charges through the one service its
//! policy allows.

use crate::support::*;
use serde_json::json;
use warden_host::Outcome;
use warden_host::policy::Policy;

fn example(name: &str) -> Policy {
    Policy::load(&repo().join(format!("policies/{name}.toml"))).expect("example policy is valid")
}

#[tokio::test]
async fn inventory_reserves_once_per_order_refuses_past_the_stock_and_releases() {
    let mut h = host();
    load(&mut h, example("inventory"), "inventory");
    let reserve = |order: &str, units: u32| {
        call(
            &h,
            "inventory",
            "reserve",
            json!({"order": order, "sku": "mug", "units": units}),
        )
    };
    let r = reserve("A-1", 30).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"ok": {"order": "A-1", "sku": "mug", "units": 30, "left": 70}}))
    );
    // Reserving again (a re-run step) holds nothing more.
    let again = reserve("A-1", 30).await;
    assert_eq!(
        again.output,
        Some(json!({"ok": {"order": "A-1", "sku": "mug", "units": 30, "left": 70}}))
    );
    let short = reserve("A-2", 71).await;
    assert_eq!(short.outcome, Outcome::CapabilityError, "{short:?}");
    assert!(
        format!("{short:?}").contains("only 70 of `mug` left, 71 asked for"),
        "{short:?}"
    );
    let release = call(
        &h,
        "inventory",
        "release",
        json!({"order": "A-1", "sku": "mug"}),
    )
    .await;
    assert_eq!(release.output, Some(json!({"ok": 30})), "{release:?}");
    let twice = call(
        &h,
        "inventory",
        "release",
        json!({"order": "A-1", "sku": "mug"}),
    )
    .await;
    assert_eq!(twice.output, Some(json!({"ok": 0})), "released once");
    let r = reserve("A-2", 100).await;
    assert_eq!(
        r.output.as_ref().map(|o| o["ok"]["left"].clone()),
        Some(json!(0)),
        "{r:?}"
    );
}

#[tokio::test]
async fn risk_score_asks_the_model_within_its_budget_and_falls_back_to_high() {
    // No backend for `small`: unavailable, so the score is `high`.
    let mut h = host();
    load(&mut h, example("risk-score"), "risk-score");
    let input =
        json!({"order": "O-1", "sku": "mug", "units": 2, "amount": 2500, "currency": "EUR"});
    let r = call(&h, "risk-score", "score", input.clone()).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"level": "high", "from-model": false, "tokens": 0}))
    );
    // With the demo's scoring double.
    let server = crate::doubles::risk_scorer(0).await.expect("double");
    let mut config = warden_host::HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        ..warden_host::HostConfig::default()
    };
    config.models.insert(
        "small".into(),
        warden_host::interfaces::model::ModelBackend::new(&server.origin(), "risk-model"),
    );
    let mut h = warden_host::Host::new(config).expect("host");
    load(&mut h, example("risk-score"), "risk-score");
    let r = call(&h, "risk-score", "score", input).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output.as_ref().map(|o| o["level"].clone()),
        Some(json!("low"))
    );
    assert_eq!(
        r.output.as_ref().map(|o| o["from-model"].clone()),
        Some(json!(true))
    );
    let sent = server.last().expect("called").json();
    assert_eq!(sent["max_tokens"], 3, "{sent}");
    let big =
        json!({"order": "O-2", "sku": "mug", "units": 2, "amount": 250000, "currency": "EUR"});
    let r = call(&h, "risk-score", "score", big).await;
    assert_eq!(
        r.output.as_ref().map(|o| o["level"].clone()),
        Some(json!("medium"))
    );
}

#[tokio::test]
async fn payments_charges_through_the_one_allowed_service() {
    // The policy names 127.0.0.1:18081 (the demo's stand-in service).
    let _port = crate::support::FX_PORT.lock().await;
    let server = match crate::doubles::payments(18081).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("port 18081 is busy ({e}); skipping the payments example test");
            return;
        }
    };
    let mut h = host();
    load(&mut h, example("payments"), "payments");
    let r = call(
        &h,
        "payments",
        "charge",
        json!({"order": "O-9", "amount": 1234, "currency": "eur"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(
            json!({"ok": {"charge-id": "ch-O-9-1234", "order": "O-9", "amount": 1234, "currency": "EUR"}})
        )
    );
    let sent = server.last().expect("called").json();
    assert_eq!(
        sent,
        json!({"order": "O-9", "amount": 1234, "currency": "EUR"})
    );
    let r = call(
        &h,
        "payments",
        "charge",
        json!({"order": "O-9", "amount": 0, "currency": "EUR"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert!(
        format!("{r:?}").contains("a charge of 0 is not a charge"),
        "{r:?}"
    );
    assert!(
        server.last().expect("called").json()["amount"] == 1234,
        "the refused charge never reached the service"
    );
}
