//! `warden:host/kv`: granted use, refusal at load, isolation between
//! capabilities, quotas, commit-on-success, audit summaries.

use crate::support::*;
use serde_json::json;
use warden_host::{Budget, Host, LoadError, Outcome};

const KV: &str = "\"warden:host/types\" = {}\n\"warden:host/kv\" = {}";

fn kv_host(names: &[&str], grant: &str) -> Host {
    let mut h = host_with_echo();
    for name in names {
        let imports =
            format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}\n\"warden:host/kv\" = {grant}");
        load(&mut h, policy(name, &imports, ""), "kv-user");
    }
    h
}

#[tokio::test]
async fn granted_kv_stores_values_across_invocations() {
    let h = kv_host(&["kv-user"], "{}");
    let put = call(
        &h,
        "kv-user",
        "put",
        json!({"key": "order/1", "value": "paid"}),
    )
    .await;
    assert_eq!(put.outcome, Outcome::Ok, "{put:?}");
    let got = call(&h, "kv-user", "fetch", json!({"key": "order/1"})).await;
    assert_eq!(got.output, Some(json!({"ok": "paid"})), "{got:?}");
    call(
        &h,
        "kv-user",
        "put",
        json!({"key": "order/2", "value": "open"}),
    )
    .await;
    call(&h, "kv-user", "put", json!({"key": "other", "value": "x"})).await;
    let listed = call(&h, "kv-user", "list-keys", json!({"prefix": "order/"})).await;
    assert_eq!(
        listed.output,
        Some(json!({"ok": ["order/1", "order/2"]})),
        "{listed:?}"
    );
    let removed = call(&h, "kv-user", "remove", json!({"key": "order/1"})).await;
    assert_eq!(removed.outcome, Outcome::Ok, "{removed:?}");
    let gone = call(&h, "kv-user", "fetch", json!({"key": "order/1"})).await;
    assert_eq!(gone.output, Some(json!({"ok": null})), "{gone:?}");
}

#[test]
fn kv_without_a_grant_is_refused_at_load() {
    let mut h = host();
    let bytes = std::fs::read(guest("kv-user")).expect("built");
    let err = h
        .load(
            policy(
                "kv-user",
                &format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}"),
                "",
            ),
            &bytes,
            "kv-user",
        )
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Link { .. }), "{err:?}");
    assert!(err.to_string().contains("warden:host/kv"), "{err}");
}

#[tokio::test]
async fn two_capabilities_cannot_see_each_others_keys() {
    let h = kv_host(&["kv-a", "kv-b"], "{}");
    let put = call(
        &h,
        "kv-a",
        "put",
        json!({"key": "secret", "value": "a-only"}),
    )
    .await;
    assert_eq!(put.outcome, Outcome::Ok, "{put:?}");
    let b = call(&h, "kv-b", "fetch", json!({"key": "secret"})).await;
    assert_eq!(
        b.output,
        Some(json!({"ok": null})),
        "kv-b must not see kv-a's key: {b:?}"
    );
    let b_list = call(&h, "kv-b", "list-keys", json!({"prefix": ""})).await;
    assert_eq!(b_list.output, Some(json!({"ok": []})), "{b_list:?}");
    call(
        &h,
        "kv-b",
        "put",
        json!({"key": "secret", "value": "b-own"}),
    )
    .await;
    let a = call(&h, "kv-a", "fetch", json!({"key": "secret"})).await;
    assert_eq!(a.output, Some(json!({"ok": "a-only"})), "{a:?}");
}

#[tokio::test]
async fn writes_of_a_trapping_invocation_are_rolled_back() {
    let h = kv_host(&["kv-user"], "{}");
    let r = call(
        &h,
        "kv-user",
        "put-then-trap",
        json!({"key": "k", "value": "v"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Trap, "{r:?}");
    let got = call(&h, "kv-user", "fetch", json!({"key": "k"})).await;
    assert_eq!(
        got.output,
        Some(json!({"ok": null})),
        "write was kept: {got:?}"
    );
}

#[tokio::test]
async fn writes_of_an_invocation_returning_an_error_are_rolled_back() {
    let h = kv_host(&["kv-user"], "{}");
    let r = call(
        &h,
        "kv-user",
        "put-then-err",
        json!({"key": "k", "value": "v"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    let got = call(&h, "kv-user", "fetch", json!({"key": "k"})).await;
    assert_eq!(
        got.output,
        Some(json!({"ok": null})),
        "write was kept: {got:?}"
    );
}

#[tokio::test]
async fn an_invocation_reads_its_own_buffered_writes() {
    let h = kv_host(&["kv-user"], "{}");
    let r = call(
        &h,
        "kv-user",
        "put-and-read",
        json!({"key": "k", "value": "mine"}),
    )
    .await;
    assert_eq!(r.output, Some(json!({"ok": "mine"})), "{r:?}");
}

#[tokio::test]
async fn a_value_over_max_value_bytes_is_budget_exhausted_kv() {
    let h = kv_host(&["kv-user"], "{ max_value_bytes = \"100B\" }");
    let ok = call(
        &h,
        "kv-user",
        "fill",
        json!({"prefix": "k", "count": 1, "size": 100}),
    )
    .await;
    assert_eq!(ok.outcome, Outcome::Ok, "{ok:?}");
    let r = call(
        &h,
        "kv-user",
        "fill",
        json!({"prefix": "big", "count": 1, "size": 101}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Kv), "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or("").contains("max_value_bytes"),
        "{r:?}"
    );
}

#[tokio::test]
async fn more_keys_than_max_keys_is_budget_exhausted_kv_and_nothing_is_kept() {
    let h = kv_host(&["kv-user"], "{ max_keys = 3 }");
    let r = call(
        &h,
        "kv-user",
        "fill",
        json!({"prefix": "k", "count": 4, "size": 1}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Kv), "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or("").contains("max_keys"),
        "{r:?}"
    );
    let listed = call(&h, "kv-user", "list-keys", json!({"prefix": ""})).await;
    assert_eq!(listed.output, Some(json!({"ok": []})), "{listed:?}");
    let fits = call(
        &h,
        "kv-user",
        "fill",
        json!({"prefix": "k", "count": 3, "size": 1}),
    )
    .await;
    assert_eq!(fits.outcome, Outcome::Ok, "{fits:?}");
}

#[tokio::test]
async fn more_bytes_than_max_bytes_is_budget_exhausted_kv() {
    let h = kv_host(&["kv-user"], "{ max_bytes = \"1KiB\" }");
    let first = call(
        &h,
        "kv-user",
        "fill",
        json!({"prefix": "a", "count": 2, "size": 400}),
    )
    .await;
    assert_eq!(first.outcome, Outcome::Ok, "{first:?}");
    let r = call(
        &h,
        "kv-user",
        "fill",
        json!({"prefix": "b", "count": 1, "size": 400}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Kv), "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or("").contains("max_bytes"),
        "{r:?}"
    );
}

#[tokio::test]
async fn kv_calls_are_summarised_in_the_audit_entry_with_hashed_keys() {
    let mut h = audited_host("kv-audit");
    let imports = format!("{STD_IMPORTS}\n{KV}");
    load(&mut h, policy("kv-user", &imports, ""), "kv-user");
    let r = call(
        &h,
        "kv-user",
        "put",
        json!({"key": "order/7", "value": "hello"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(
        r.replayable,
        "kv alone keeps an invocation replayable: {r:?}"
    );
    let entry = audit_entry_of(&h, &r);
    let calls = &entry.entry.host_calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(c.interface, "warden:host/kv");
    assert!(c.target.starts_with("set sha256:"), "{c:?}");
    assert!(!c.target.contains("order/7"), "keys are hashed: {c:?}");
    assert_eq!(c.status, "ok");
    assert_eq!(c.bytes_in, ("order/7".len() + "hello".len()) as u64);
    assert_eq!(
        c.request_sha256.map(|h| h.hex()),
        Some(warden_host::digest::Hash256::of(b"hello").hex())
    );
    let got = call(&h, "kv-user", "fetch", json!({"key": "order/7"})).await;
    let entry = audit_entry_of(&h, &got);
    let c = &entry.entry.host_calls[0];
    assert!(c.target.starts_with("get sha256:"), "{c:?}");
    assert_eq!(c.bytes_out, 5);
    assert_eq!(
        c.response_sha256.map(|h| h.hex()),
        Some(warden_host::digest::Hash256::of(b"hello").hex())
    );
}

#[tokio::test]
async fn kv_survives_a_host_restart_with_a_data_dir() {
    let dir = scratch("kv-restart");
    let imports = format!("{STD_IMPORTS}\n{KV}");
    let config = || warden_host::HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir: Some(dir.clone()),
        ..warden_host::HostConfig::default()
    };
    {
        let mut h = Host::new(config()).expect("host");
        load(&mut h, policy("kv-user", &imports, ""), "kv-user");
        let r = call(&h, "kv-user", "put", json!({"key": "k", "value": "kept"})).await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        h.shutdown().await.expect("shutdown");
    }
    let mut h = Host::new(config()).expect("host");
    load(&mut h, policy("kv-user", &imports, ""), "kv-user");
    let got = call(&h, "kv-user", "fetch", json!({"key": "k"})).await;
    assert_eq!(got.output, Some(json!({"ok": "kept"})), "{got:?}");
}

#[tokio::test]
async fn more_calls_than_max_calls_is_budget_exhausted_kv_whatever_the_guest_does() {
    let h = kv_host(&["kv-user"], "{ max_calls = 5 }");
    let r = call(&h, "kv-user", "get-many", json!({"key": "k", "count": 5})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.output, Some(json!({"ok": 5})), "{r:?}");

    // The sixth call is refused; the guest ignores the error and returns
    // `ok`, yet the invocation ends budget_exhausted:kv, output withheld.
    let r = call(&h, "kv-user", "get-many", json!({"key": "k", "count": 8})).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Kv), "{r:?}");
    assert_eq!(r.output, None, "{r:?}");
    assert_eq!(
        r.error.as_deref(),
        Some("kv: more than max_calls = 5 calls in one invocation"),
        "{r:?}"
    );
    let statuses: Vec<&str> = r.host_calls.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "ok",
            "ok",
            "ok",
            "ok",
            "ok",
            "budget_exhausted",
            "budget_exhausted",
            "budget_exhausted"
        ]
    );

    // Writes made before the crossing are not kept.
    let r = call(
        &h,
        "kv-user",
        "fill",
        json!({"prefix": "f", "count": 6, "size": 1}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Kv), "{r:?}");
    let listed = call(&h, "kv-user", "list-keys", json!({"prefix": "f"})).await;
    assert_eq!(listed.output, Some(json!({"ok": []})), "{listed:?}");
}
