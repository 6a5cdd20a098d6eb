//! `wasi:http/outgoing-handler`: allow-list, name resolution, redirects,
//! per-invocation limits and audit summaries, against loopback doubles.

use crate::doubles::{Response, Server};
use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;
use warden_host::{Budget, Host, HostConfig, LoadError, Outcome};

fn http_imports(grant: &str) -> String {
    format!(
        "{STD_IMPORTS}\n\"wasi:clocks/monotonic-clock\" = {{}}\n\"wasi:http/types\" = {{}}\n\"wasi:http/outgoing-handler\" = {grant}"
    )
}

async fn service() -> Server {
    Server::start(0, |req| match req.target.as_str() {
        "/big" => Response::text(200, &"x".repeat(4096)),
        "/slow" => Response {
            delay: Duration::from_secs(3),
            ..Response::text(200, "late")
        },
        "/echo" => Response::text(200, &String::from_utf8_lossy(&req.body)),
        t if t.starts_with("/redirect") => Response {
            status: 302,
            headers: vec![("location".into(), req.query("to").unwrap_or_default())],
            body: Vec::new(),
            delay: Duration::ZERO,
        },
        _ => Response::json(&json!({"rate": 1.08})),
    })
    .await
    .expect("double")
}

fn http_host(grant: &str, config: HostConfig) -> Host {
    let mut h = Host::new(HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        ..config
    })
    .expect("host");
    load(
        &mut h,
        policy("http-fetch", &http_imports(grant), ""),
        "http-fetch",
    );
    h
}

async fn get(h: &Host, url: &str) -> warden_host::InvocationRecord {
    call(
        h,
        "http-fetch",
        "fetch",
        json!({"method": "GET", "url": url, "body": null}),
    )
    .await
}

fn ok_reply(r: &warden_host::InvocationRecord) -> Value {
    r.output
        .as_ref()
        .and_then(|o| o.get("ok"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_request_to_an_allowed_origin_works() {
    let s = service().await;
    let h = http_host(
        &format!("{{ allow = [\"{}\"] }}", s.origin()),
        HostConfig::default(),
    );
    let r = get(&h, &format!("{}/rate?from=EUR&to=USD", s.origin())).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(ok_reply(&r)["status"], 200, "{r:?}");
    assert_eq!(ok_reply(&r)["body"], "{\"rate\":1.08}");
    assert_eq!(s.last().expect("hit").target, "/rate?from=EUR&to=USD");
    assert!(
        r.replayable,
        "HTTP responses are recorded, so replayable: {r:?}"
    );
}

#[test]
fn http_without_a_grant_is_refused_at_load() {
    let mut h = host();
    let bytes = std::fs::read(guest("http-fetch")).expect("built");
    let imports = format!(
        "{STD_IMPORTS}\n\"wasi:clocks/monotonic-clock\" = {{}}\n\"wasi:http/types\" = {{}}"
    );
    let err = h
        .load(policy("http-fetch", &imports, ""), &bytes, "http-fetch")
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Link { .. }), "{err:?}");
    assert!(
        err.to_string().contains("wasi:http/outgoing-handler"),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_not_on_the_allow_list_is_refused_before_connecting() {
    let s = service().await;
    let h = http_host(
        "{ allow = [\"https://rates.example.com\"] }",
        HostConfig::default(),
    );
    let r = get(&h, &format!("{}/rate", s.origin())).await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert!(err_text(&r).contains("HttpRequestDenied"), "{r:?}");
    assert_eq!(s.hits(), 0, "no connection was made");
    assert_eq!(r.host_calls[0].status, "denied", "{:?}", r.host_calls);
    // Same host, other port; other scheme.
    let h = http_host(
        &format!("{{ allow = [\"{}\"] }}", s.origin()),
        HostConfig::default(),
    );
    let other_port = format!("http://127.0.0.1:{}/", s.addr.port().wrapping_add(1));
    let r = get(&h, &other_port).await;
    assert!(err_text(&r).contains("HttpRequestDenied"), "{r:?}");
    let r = get(&h, &format!("https://{}/", s.addr)).await;
    assert!(err_text(&r).contains("HttpRequestDenied"), "{r:?}");
}

#[tokio::test]
async fn loopback_by_ip_is_refused_unless_named() {
    let s = service().await;
    let h = http_host(
        &format!("{{ allow = [\"http://localhost:{}\"] }}", s.addr.port()),
        HostConfig::default(),
    );
    for url in [
        format!("http://127.0.0.1:{}/", s.addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/", s.addr.port()),
    ] {
        let r = get(&h, &url).await;
        assert_eq!(r.outcome, Outcome::CapabilityError, "{url}: {r:?}");
        assert!(err_text(&r).contains("HttpRequestDenied"), "{url}: {r:?}");
    }
    assert_eq!(s.hits(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused() {
    let s = service().await;
    let mut config = HostConfig::default();
    config
        .hosts
        .insert("rates.test".into(), vec!["127.0.0.1".parse().expect("ip")]);
    let h = http_host(
        &format!("{{ allow = [\"http://rates.test:{}\"] }}", s.addr.port()),
        config,
    );
    let r = get(&h, &format!("http://rates.test:{}/rate", s.addr.port())).await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert!(err_text(&r).contains("DestinationIpProhibited"), "{r:?}");
    assert_eq!(
        s.hits(),
        0,
        "no connection to the resolved loopback address"
    );
    // The same request is fine when the pattern names localhost itself.
    let h = http_host(
        &format!("{{ allow = [\"http://localhost:{}\"] }}", s.addr.port()),
        HostConfig::default(),
    );
    let r = get(&h, &format!("http://localhost:{}/rate", s.addr.port())).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
}

#[tokio::test]
async fn redirects_are_not_followed_and_their_target_is_checked_again() {
    let s = service().await;
    let elsewhere = service().await;
    let h = http_host(
        &format!("{{ allow = [\"{}\"] }}", s.origin()),
        HostConfig::default(),
    );
    let target = format!("{}/secret", elsewhere.origin());
    let r = get(&h, &format!("{}/redirect?to={target}", s.origin())).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        ok_reply(&r)["status"],
        302,
        "the guest sees the redirect: {r:?}"
    );
    assert_eq!(ok_reply(&r)["location"], json!(target));
    assert_eq!(elsewhere.hits(), 0, "the host never followed it");
    let r = get(&h, &target).await;
    assert!(err_text(&r).contains("HttpRequestDenied"), "{r:?}");
    assert_eq!(elsewhere.hits(), 0);
}

#[tokio::test]
async fn more_requests_than_max_requests_is_budget_exhausted_http() {
    let s = service().await;
    let h = http_host(
        &format!("{{ allow = [\"{}\"], max_requests = 2 }}", s.origin()),
        HostConfig::default(),
    );
    let url = format!("{}/rate", s.origin());
    let ok = call(
        &h,
        "http-fetch",
        "fetch-many",
        json!({"url": url, "times": 2}),
    )
    .await;
    assert_eq!(ok.outcome, Outcome::Ok, "{ok:?}");
    let r = call(
        &h,
        "http-fetch",
        "fetch-many",
        json!({"url": url, "times": 3}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Http), "{r:?}");
    assert_eq!(
        s.hits(),
        4,
        "the third request of the second invocation never left"
    );
}

#[tokio::test]
async fn a_response_over_max_response_bytes_is_budget_exhausted_http() {
    let s = service().await;
    let h = http_host(
        &format!(
            "{{ allow = [\"{}\"], max_response_bytes = \"1KiB\" }}",
            s.origin()
        ),
        HostConfig::default(),
    );
    let r = get(&h, &format!("{}/big", s.origin())).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Http), "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("max_response_bytes"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_request_body_over_max_request_bytes_is_budget_exhausted_http() {
    let s = service().await;
    let h = http_host(
        &format!(
            "{{ allow = [\"{}\"], max_request_bytes = \"100B\" }}",
            s.origin()
        ),
        HostConfig::default(),
    );
    let url = format!("{}/echo", s.origin());
    let ok = call(
        &h,
        "http-fetch",
        "fetch",
        json!({"method": "POST", "url": url, "body": "small"}),
    )
    .await;
    assert_eq!(ok_reply(&ok)["body"], "small", "{ok:?}");
    let big = "y".repeat(1000);
    let r = call(
        &h,
        "http-fetch",
        "fetch",
        json!({"method": "POST", "url": url, "body": big}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Http), "{r:?}");
}

#[tokio::test]
async fn a_slow_response_is_cut_off_at_the_timeout() {
    let s = service().await;
    let h = http_host(
        &format!("{{ allow = [\"{}\"], timeout = \"300ms\" }}", s.origin()),
        HostConfig::default(),
    );
    let r = get(&h, &format!("{}/slow", s.origin())).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Http), "{r:?}");
    assert!(r.usage.wall_time_us < 2_500_000, "{:?}", r.usage);
}

#[tokio::test]
async fn http_calls_are_summarised_in_the_audit_entry() {
    let s = service().await;
    let mut h = audited_host("http-audit");
    let grant = format!("{{ allow = [\"{}\"] }}", s.origin());
    load(
        &mut h,
        policy("http-fetch", &http_imports(&grant), ""),
        "http-fetch",
    );
    let url = format!("{}/echo", s.origin());
    let r = call(
        &h,
        "http-fetch",
        "fetch",
        json!({"method": "POST", "url": url, "body": "ping"}),
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
    assert_eq!(c.interface, "wasi:http/outgoing-handler");
    assert_eq!(c.target, s.origin() /* scheme://host:port */);
    assert_eq!(c.status, "200");
    assert_eq!((c.bytes_in, c.bytes_out), (4, 4), "{c:?}");
    let ping = Some(warden_host::digest::Hash256::of(b"ping").hex());
    assert_eq!(c.request_sha256.map(|h| h.hex()), ping);
    assert_eq!(c.response_sha256.map(|h| h.hex()), ping);
}
