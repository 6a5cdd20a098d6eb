//! Idempotency keys store only final answers (issue 14, item 4): a
//! retryable `503` releases the key, so a client that retries after
//! `Retry-After` with the same key runs the request again.

use crate::daemon::{Daemon, cap, deploy};
use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

fn greet(message: &str, key: &str) -> Value {
    json!({"kind": "greet", "input": {"message": message}, "idempotency_key": key})
}

/// Submits `body` and returns (status, body, idempotent-replayed header).
fn submit(d: &Daemon, body: &Value) -> (u16, Value, bool) {
    let r = d.submit(body.clone());
    let replayed = r.header("idempotent-replayed") == Some("true");
    (r.status, r.json(), replayed)
}

/// The retry after a released key runs (a new request id, `ok`), and from
/// then on the key replays that final answer.
fn assert_retry_runs_then_replays(d: &Daemon, body: &Value, refused: &Value) {
    let (status, retried, replayed) = submit(d, body);
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["outcome"], "ok");
    assert_eq!(retried["replayed"], false);
    assert!(!replayed);
    assert_ne!(
        retried["request_id"], refused["request_id"],
        "the retry ran as a new request"
    );
    let (status, again, replayed) = submit(d, body);
    assert_eq!(status, 200);
    assert!(replayed, "{again}");
    assert_eq!(again["request_id"], retried["request_id"]);
}

#[test]
fn an_overloaded_answer_releases_the_idempotency_key() {
    let mut spin = cap("spin", "spin-loop");
    spin.extra = "[budget]\nfuel = \"off\"\nwall_time = \"1500ms\"";
    let dir = deploy(
        "idem-overload",
        &[cap("echo", "echo"), spin],
        &[
            ("greet", "greet", "echo", "echo"),
            ("spin", "spin", "spin", "spin"),
        ],
        "[limits]\nmax_in_flight = 1\nqueue_timeout = \"200ms\"",
    );
    let d = Daemon::start(&dir);
    let body = greet("after the queue frees", "k-overload");
    let spin_body = json!({"kind": "spin", "input": {"n": 1}, "idempotency_key": "k-spin"});
    let (refused, spun) = std::thread::scope(|s| {
        let slow = s.spawn(|| submit(&d, &spin_body));
        std::thread::sleep(Duration::from_millis(400));
        let (status, refused, _) = submit(&d, &body);
        assert_eq!(status, 503, "{refused}");
        assert_eq!(refused["error_code"], "overloaded");
        (refused, slow.join().expect("thread"))
    });
    assert_eq!(spun.1["outcome"], "budget_exhausted:time");
    assert_retry_runs_then_replays(&d, &body, &refused);
    // A final failure still replays: budget_exhausted is not retryable.
    let (status, replay, replayed) = submit(&d, &spin_body);
    assert_eq!(status, 422);
    assert!(replayed, "{replay}");
    assert_eq!(replay["request_id"], spun.1["request_id"]);
}

#[test]
fn a_transient_answer_releases_the_idempotency_key() {
    let dir = deploy(
        "idem-transient",
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "[testing]\ntransient_faults = { echo = 1 }",
    );
    let d = Daemon::start(&dir);
    let body = greet("after a transient failure", "k-transient");
    let (status, refused, _) = submit(&d, &body);
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["outcome"], "transient");
    assert_retry_runs_then_replays(&d, &body, &refused);
    // The refused attempt stays audited under its own request id.
    let id = &refused["request_id"];
    assert!(
        d.audit().iter().any(|e| &e["entry"]["request_id"] == id),
        "{id} audited"
    );
}

#[test]
fn final_outcomes_still_replay_under_their_idempotency_key() {
    let mut panicker = cap("panicker", "panicker");
    panicker.imports = STD_IMPORTS;
    let dir = deploy(
        "idem-final",
        &[cap("echo", "echo"), panicker],
        &[
            ("greet", "greet", "echo", "echo"),
            ("crash", "crash", "panicker", "boom"),
        ],
        "",
    );
    let d = Daemon::start(&dir);
    let cases = [
        (
            json!({"kind": "greet", "input": {"message": "ok"}, "idempotency_key": "k-ok"}),
            200,
            "ok",
        ),
        (
            json!({"kind": "greet", "input": {"wrong": 1}, "idempotency_key": "k-invalid"}),
            422,
            "invalid_input",
        ),
        (
            json!({"kind": "nowhere", "input": {}, "idempotency_key": "k-no-route"}),
            404,
            "no_route",
        ),
        (
            json!({"kind": "crash", "input": {"message": "x"}, "idempotency_key": "k-trap"}),
            502,
            "trap",
        ),
    ];
    for (body, status, outcome) in cases {
        let (s1, first, _) = submit(&d, &body);
        assert_eq!(
            (s1, first["outcome"].as_str()),
            (status, Some(outcome)),
            "{first}"
        );
        let (s2, second, replayed) = submit(&d, &body);
        assert_eq!(s2, status);
        assert!(replayed, "{outcome} replays: {second}");
        assert_eq!(second["request_id"], first["request_id"]);
    }
}

#[test]
fn a_503_stored_under_a_key_by_an_earlier_version_no_longer_replays() {
    let dir = deploy(
        "idem-legacy",
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    // Creates state.db, then stops.
    let (code, _) = Daemon::start(&dir).terminate();
    assert_eq!(code, 0);
    let db = rusqlite::Connection::open(dir.join("data/state.db")).expect("state.db");
    let stuck =
        json!({"request_id": "req-stuck", "outcome": "transient", "error_code": "overloaded"});
    db.execute(
        "INSERT INTO requests (id, principal, status, response, at_ms) VALUES ('req-stuck', 'alice', 503, ?1, 0)",
        [stuck.to_string()],
    )
    .expect("request row");
    db.execute(
        "INSERT INTO idempotency (principal, key, fingerprint, request_id) VALUES ('alice', 'k-stuck', 'sha256:old', 'req-stuck')",
        [],
    )
    .expect("key row");
    drop(db);
    let d = Daemon::start(&dir);
    let body = greet("unstuck", "k-stuck");
    assert_retry_runs_then_replays(&d, &body, &stuck);
}

#[test]
fn an_answer_refused_while_shutting_down_releases_the_key_for_the_next_daemon() {
    let mut spin = cap("spin", "spin-loop");
    spin.extra = "[budget]\nfuel = \"off\"\nwall_time = \"1500ms\"";
    let dir = deploy(
        "idem-shutdown",
        &[cap("echo", "echo"), spin],
        &[
            ("greet", "greet", "echo", "echo"),
            ("spin", "spin", "spin", "spin"),
        ],
        "",
    );
    let d = Daemon::start(&dir);
    let body = greet("after the restart", "k-shutdown");
    let refused = std::thread::scope(|s| {
        // A running request keeps the daemon draining for a while.
        let slow = s.spawn(|| d.submit(json!({"kind": "spin", "input": {"n": 1}})));
        std::thread::sleep(Duration::from_millis(400));
        d.signal("-TERM");
        std::thread::sleep(Duration::from_millis(300));
        let refused = d
            .client(crate::daemon::SUBMIT)
            .post_json("/v1/requests", &body)
            .ok();
        let _ = slow.join();
        refused
    });
    if let Some(r) = &refused {
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "shutting_down", "{}", r.text());
    }
    let (code, err) = d.terminate_after_signal();
    assert_eq!(code, 0, "{err}");
    let d = Daemon::start(&dir);
    let (status, ran, replayed) = submit(&d, &body);
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["outcome"], "ok");
    assert!(
        !replayed,
        "the key was not taken by the refused answer: {ran}"
    );
}

#[test]
fn a_stored_answer_that_does_not_decode_is_an_error_naming_the_request_never_a_replay() {
    let dir = deploy(
        "idem-undecodable",
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    let (code, _) = Daemon::start(&dir).terminate();
    assert_eq!(code, 0);
    // The same request's fingerprint, so only the stored answer is at fault.
    let fingerprint = warden_host::digest::json_digest(&json!({
        "kind": "greet", "input": {"message": "odd"}, "tenant": null, "attributes": {},
    }));
    let db = rusqlite::Connection::open(dir.join("data/state.db")).expect("state.db");
    let odd = json!({"request_id": "req-odd", "outcome": "not-an-outcome"});
    db.execute(
        "INSERT INTO requests (id, principal, status, response, at_ms) VALUES ('req-odd', 'alice', 200, ?1, 0)",
        [odd.to_string()],
    )
    .expect("request row");
    db.execute(
        "INSERT INTO idempotency (principal, key, fingerprint, request_id) VALUES ('alice', 'k-odd', ?1, 'req-odd')",
        [fingerprint],
    )
    .expect("key row");
    drop(db);
    let d = Daemon::start(&dir);
    let (status, body, replayed) = submit(&d, &greet("odd", "k-odd"));
    assert_eq!(status, 500, "{body}");
    assert!(!replayed);
    assert_eq!(body["error"]["code"], "internal", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("req-odd") && message.contains("does not decode"),
        "{message}"
    );
}
