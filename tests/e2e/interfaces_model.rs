//! `warden:host/model`: granted calls through a loopback OpenAI-compatible
//! double, refusal at load, denied models, token clamping and exhaustion,
//! API keys kept host-side, audit summaries.

use crate::doubles::{CannedCompletion, Server, chat_completions};
use crate::support::*;
use serde_json::json;
use warden_host::interfaces::model::ModelBackend;
use warden_host::{Budget, Host, HostConfig, LoadError, Outcome};

fn canned(content: &str, prompt: u32, completion: u32) -> CannedCompletion {
    CannedCompletion {
        content: content.into(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        ignore_max_tokens: false,
    }
}

fn model_host(server: &Server, data_dir: Option<std::path::PathBuf>) -> Host {
    // A key file rather than an env var: tests must not change the
    // process environment other tests run in.
    let key_file = scratch("model-key").join("key");
    std::fs::write(&key_file, "test-key-123\n").expect("key file");
    let mut backend = ModelBackend::new(&server.origin(), "provider-small-v1");
    backend.api_key_file = Some(key_file);
    let mut config = HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir,
        ..HostConfig::default()
    };
    config.models.insert("small".into(), backend);
    Host::new(config).expect("host")
}

fn grant(max_tokens: u32) -> String {
    format!(
        "{STD_IMPORTS}\n\"warden:host/types\" = {{}}\n\"warden:host/model\" = {{ models = [\"small\"], max_tokens = {max_tokens} }}"
    )
}

#[tokio::test]
async fn a_granted_model_call_reaches_the_backend_with_the_host_key() {
    let server = chat_completions(0, |_| canned("bug", 12, 1))
        .await
        .expect("double");
    let mut h = model_host(&server, None);
    load(&mut h, policy("model-user", &grant(2000), ""), "model-user");
    let r = call(
        &h,
        "model-user",
        "generate",
        json!({"model": "small", "prompt": "the app crashes", "max-tokens": 5, "times": 1}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(
            json!({"ok": [{"content": "bug", "input-tokens": 12, "output-tokens": 1, "finish-reason": "stop"}]})
        )
    );
    let req = server.last().expect("the double was called");
    assert_eq!(req.header("authorization"), Some("Bearer test-key-123"));
    let body = req.json();
    assert_eq!(body["model"], "provider-small-v1", "{body}");
    assert_eq!(body["messages"][0]["content"], "the app crashes");
    assert_eq!(body["max_tokens"], 5);
    assert!(
        r.replayable,
        "model responses are recorded, so replayable: {r:?}"
    );
    let record = serde_json::to_string(&r).expect("json");
    assert!(
        !record.contains("test-key-123"),
        "the key never reaches the record"
    );
}

#[test]
fn model_without_a_grant_is_refused_at_load() {
    let mut h = host();
    let bytes = std::fs::read(guest("model-user")).expect("built");
    let err = h
        .load(
            policy(
                "model-user",
                &format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}"),
                "",
            ),
            &bytes,
            "model-user",
        )
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Link { .. }), "{err:?}");
    assert!(err.to_string().contains("warden:host/model"), "{err}");
}

#[tokio::test]
async fn a_model_name_not_granted_is_denied_without_a_call() {
    let server = chat_completions(0, |_| canned("x", 1, 1))
        .await
        .expect("double");
    let mut h = model_host(&server, None);
    load(&mut h, policy("model-user", &grant(2000), ""), "model-user");
    let r = call(
        &h,
        "model-user",
        "generate",
        json!({"model": "big", "prompt": "hi", "max-tokens": null, "times": 1}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert!(err_text(&r).contains("Denied"), "{r:?}");
    assert_eq!(server.hits(), 0, "nothing was sent");
    assert_eq!(r.host_calls.len(), 1, "{:?}", r.host_calls);
    assert_eq!(r.host_calls[0].status, "denied");
}

#[tokio::test]
async fn max_tokens_is_clamped_to_what_is_left_of_the_budget() {
    let server = chat_completions(0, |_| canned("ok", 10, 1))
        .await
        .expect("double");
    let mut h = model_host(&server, None);
    load(&mut h, policy("model-user", &grant(100), ""), "model-user");
    for asked in [json!(1000), json!(null)] {
        let r = call(
            &h,
            "model-user",
            "generate",
            json!({"model": "small", "prompt": "abcdefgh", "max-tokens": asked, "times": 1}),
        )
        .await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        let sent = server.last().expect("called").json()["max_tokens"].as_u64();
        // 100 left, minus the prompt estimate ("user" + "abcdefgh" = 12
        // bytes / 4 = 3 tokens).
        assert_eq!(sent, Some(97), "asked {asked}");
    }
    // The second call in one invocation sees what the first used (10 + 1).
    let r = call(
        &h,
        "model-user",
        "generate",
        json!({"model": "small", "prompt": "abcdefgh", "max-tokens": 1000, "times": 2}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let sent = server.last().expect("called").json()["max_tokens"].as_u64();
    assert_eq!(sent, Some(100 - 11 - 3));
}

#[tokio::test]
async fn a_call_with_no_tokens_left_is_refused_and_the_invocation_is_budget_exhausted() {
    // Each call uses exactly 50 tokens; the budget is 100.
    let server = chat_completions(0, |_| canned("ok", 40, 10))
        .await
        .expect("double");
    let mut h = model_host(&server, None);
    load(&mut h, policy("model-user", &grant(100), ""), "model-user");
    let r = call(
        &h,
        "model-user",
        "generate",
        json!({"model": "small", "prompt": "hi", "max-tokens": 10, "times": 3}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Tokens), "{r:?}");
    assert_eq!(server.hits(), 2, "the third call never left the host");
    let statuses: Vec<&str> = r.host_calls.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["ok tokens=40+10", "ok tokens=40+10", "budget_exhausted"],
        "{r:?}"
    );
}

#[tokio::test]
async fn a_backend_reporting_more_tokens_than_were_left_exhausts_the_budget() {
    let server = chat_completions(0, |_| CannedCompletion {
        ignore_max_tokens: true,
        ..canned("long answer", 30, 500)
    })
    .await
    .expect("double");
    let mut h = model_host(&server, None);
    load(&mut h, policy("model-user", &grant(100), ""), "model-user");
    let r = call(
        &h,
        "model-user",
        "generate",
        json!({"model": "small", "prompt": "hi", "max-tokens": null, "times": 1}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Tokens), "{r:?}");
    assert_eq!(r.output, None, "output is withheld: {r:?}");
    assert!(r.error.as_deref().unwrap_or("").contains("530"), "{r:?}");
}

#[tokio::test]
async fn model_calls_are_summarised_in_the_audit_entry() {
    let server = chat_completions(0, |_| canned("billing", 20, 1))
        .await
        .expect("double");
    let mut h = model_host(&server, Some(scratch("model-audit")));
    load(&mut h, policy("model-user", &grant(500), ""), "model-user");
    let r = call(
        &h,
        "model-user",
        "generate",
        json!({"model": "small", "prompt": "refund please", "max-tokens": 3, "times": 1}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let entry = audit_entry_of(&h, &r);
    assert!(entry.entry.replayable);
    assert_eq!(
        entry.entry.evidence.results.len(),
        1,
        "the response is recorded"
    );
    let c = &entry.entry.host_calls[0];
    assert_eq!(c.interface, "warden:host/model");
    assert_eq!(c.target, "small");
    assert_eq!(c.status, "ok tokens=20+1");
    let sent = server.last().expect("called").body;
    assert_eq!(c.bytes_in, sent.len() as u64);
    assert_eq!(
        c.request_sha256.map(|h| h.hex()),
        Some(warden_host::digest::Hash256::of(&sent).hex())
    );
    assert!(c.response_sha256.is_some() && c.bytes_out > 0, "{c:?}");
}
