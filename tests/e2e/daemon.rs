//! `warden serve` end to end: a real daemon process on loopback, signed
//! components, a trust file, a route table, bearer tokens (issue 5).

use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden_host::keys;
use warden_host::server::auth::token_hash;
use warden_host::server::client::{Client, Response};
use warden_host::signing;

/// Tokens of the test principals, one per role.
pub(crate) const SUBMIT: &str = "tok-submit";
pub(crate) const AUDIT: &str = "tok-audit";
pub(crate) const ADMIN: &str = "tok-admin";
pub(crate) const APPROVE: &str = "tok-approve";

/// One capability of a test deployment.
pub(crate) struct Cap {
    pub(crate) name: &'static str,
    pub(crate) guest: &'static str,
    pub(crate) imports: &'static str,
    pub(crate) extra: &'static str,
}

pub(crate) fn cap(name: &'static str, guest: &'static str) -> Cap {
    Cap {
        name,
        guest,
        imports: "",
        extra: "",
    }
}

/// A route: `(id, kind, capability, function)`.
pub(crate) type Route = (&'static str, &'static str, &'static str, &'static str);

pub(crate) fn routes_toml(routes: &[Route]) -> String {
    routes
        .iter()
        .map(|(id, kind, cap, func)| {
            format!(
                "[[route]]\nid = \"{id}\"\nmatch = {{ kind = \"{kind}\" }}\ncapability = \"{cap}\"\nfunction = \"{func}\"\n\n"
            )
        })
        .collect()
}

pub(crate) fn policy_toml(c: &Cap) -> String {
    format!(
        "[capability]\nname = \"{}\"\ncomponent = \"{}.wasm\"\nsigners = [\"ops\"]\n\n[imports]\n{}\n{}\n",
        c.name,
        c.guest.replace('-', "_"),
        c.imports,
        c.extra
    )
}

/// Writes a deployment (signed components, trust, policies, routes, config)
/// into a fresh directory and returns it.
pub(crate) fn deploy(name: &str, caps: &[Cap], routes: &[Route], config_extra: &str) -> PathBuf {
    let dir = scratch(&format!("daemon-{name}"));
    let key = keys::generate();
    std::fs::create_dir_all(dir.join("components")).expect("mkdir");
    std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
    let mut signed = std::collections::BTreeSet::new();
    for c in caps {
        if signed.insert(c.guest) {
            let bytes = std::fs::read(guest(c.guest)).expect("guest built");
            let bytes = signing::sign(&bytes, &key).expect("sign");
            let file = format!("{}.wasm", c.guest.replace('-', "_"));
            std::fs::write(dir.join("components").join(file), bytes).expect("write");
        }
        std::fs::write(
            dir.join("policies").join(format!("{}.toml", c.name)),
            policy_toml(c),
        )
        .expect("write policy");
    }
    std::fs::write(
        dir.join("trust.toml"),
        format!(
            "[[key]]\nname = \"ops\"\npublic_key = \"{}\"\ncapabilities = [{}]\n",
            keys::public_key_text(&key.verifying_key()),
            caps.iter()
                .map(|c| format!("\"{}\"", c.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .expect("trust");
    std::fs::write(dir.join("routes.toml"), routes_toml(routes)).expect("routes");
    let principals: String = [
        ("alice", SUBMIT, "submit"),
        ("auditor", AUDIT, "audit"),
        ("ops", ADMIN, "admin"),
        ("approver", APPROVE, "approve"),
    ]
    .iter()
    .map(|(n, t, r)| {
        format!(
            "[[principal]]\nname = \"{n}\"\ntoken_sha256 = \"{}\"\nroles = [\"{r}\"]\n\n",
            token_hash(t)
        )
    })
    .collect();
    let config =
        format!("listen = \"127.0.0.1:0\"\ntrust = \"trust.toml\"\n{config_extra}\n\n{principals}");
    std::fs::write(dir.join("warden.toml"), config).expect("config");
    dir
}

/// A running `warden serve`; killed (SIGKILL) when dropped if still running.
pub(crate) struct Daemon {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Daemon {
    pub(crate) fn start(dir: &Path) -> Daemon {
        let mut d = Daemon::spawn(dir);
        d.wait_ready();
        d
    }

    /// `warden serve` started, not yet ready (`addr` is empty until
    /// [`wait_ready`](Self::wait_ready)).
    pub(crate) fn spawn(dir: &Path) -> Daemon {
        let _ = std::fs::remove_file(dir.join("ready"));
        let child = Command::new(warden_bin())
            .args(["serve", "--config"])
            .arg(dir.join("warden.toml"))
            .arg("--ready-file")
            .arg(dir.join("ready"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warden serve");
        Daemon {
            child,
            addr: String::new(),
            dir: dir.to_owned(),
        }
    }

    /// Waits for the ready file; panics with the daemon's stderr if it exits.
    pub(crate) fn wait_ready(&mut self) {
        let ready = self.dir.join("ready");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&ready)
                && !addr.is_empty()
            {
                self.addr = addr;
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("warden serve exited early ({status}):\n{err}");
            }
            assert!(Instant::now() < deadline, "warden serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn client(&self, token: &str) -> Client {
        Client::new(&self.url(), Some(token.to_string())).expect("url")
    }

    pub(crate) fn submit(&self, body: Value) -> Response {
        self.client(SUBMIT)
            .post_json("/v1/requests", &body)
            .expect("request")
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM, then wait for the exit; returns (exit code, stderr).
    pub(crate) fn terminate(mut self) -> (i32, String) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return (status.code().unwrap_or(-1), err);
            }
            assert!(Instant::now() < deadline, "warden serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn audit(&self) -> Vec<Value> {
        let body = self
            .client(AUDIT)
            .get("/v1/audit?after=0&limit=1000")
            .expect("audit")
            .json();
        body["entries"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn echo_deploy(name: &str, echo_extra: &'static str, config_extra: &str) -> PathBuf {
    let mut echo = cap("echo", "echo");
    echo.extra = echo_extra;
    let mut panicker = cap("panicker", "panicker");
    panicker.imports = STD_IMPORTS;
    deploy(
        name,
        &[echo, panicker],
        &[
            ("greet", "greet", "echo", "echo"),
            ("crash", "crash", "panicker", "boom"),
        ],
        config_extra,
    )
}

pub(crate) fn greet(message: &str) -> Value {
    json!({"kind": "greet", "input": {"message": message}})
}

#[test]
fn daemon_refuses_to_start_and_lists_every_problem() {
    let dir = echo_deploy("broken", "", "");
    std::fs::write(
        dir.join("policies/bad.toml"),
        "[capability]\nname = \"Bad\"\ncomponent = \"x.wasm\"\nfule = 1\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("policies/missing.toml"),
        "[capability]\nname = \"missing\"\ncomponent = \"nope.wasm\"\n",
    )
    .expect("write");
    let (code, _out, err) = warden(&[
        "serve",
        "--config",
        dir.join("warden.toml").to_str().expect("utf8"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.toml:4"),
        "unknown field with its line:\n{err}"
    );
    assert!(err.contains("nope.wasm"), "missing component:\n{err}");
    assert!(
        err.contains("2 problem(s)"),
        "every problem, not the first:\n{err}"
    );
}

#[test]
fn serve_check_is_read_only_and_runs_beside_a_serving_daemon() {
    let dir = echo_deploy("check", "", "");
    let check = || {
        Command::new(warden_bin())
            .args(["serve", "--check", "--config"])
            .arg(dir.join("warden.toml"))
            .output()
            .expect("run warden serve --check")
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("validates"));
    assert!(
        !dir.join("data").exists(),
        "--check created the data directory"
    );
    let d = Daemon::start(&dir);
    let out = check();
    assert!(
        out.status.success(),
        "--check beside a running daemon: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = d.submit(greet("after the check"));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_config_with_an_unknown_field_is_refused_with_its_line() {
    let dir = echo_deploy("badconfig", "", "[limits]\nmax_bdy = \"1KiB\"");
    let (code, _out, err) = warden(&[
        "serve",
        "--config",
        dir.join("warden.toml").to_str().expect("utf8"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("warden.toml:4") && err.contains("max_bdy"),
        "{err}"
    );
}

#[test]
fn requests_are_routed_audited_and_answered_with_a_status_per_outcome() {
    let d = Daemon::start(&echo_deploy("route", "", ""));
    let r = d.submit(greet("hi"));
    let body = r.json();
    assert_eq!(r.status, 200, "{body}");
    assert_eq!(body["outcome"], "ok");
    assert_eq!(body["output"], "hi");
    assert_eq!(body["route"], "greet");
    assert_eq!(body["capability"], "echo");
    let seq = body["audit"]["seq"].as_u64().expect("audited");
    assert!(
        body["audit"]["hash"]
            .as_str()
            .expect("hash")
            .starts_with("sha256:")
    );

    let r = d.submit(json!({"kind": "unknown-kind", "input": {}}));
    assert_eq!(
        (r.status, r.json()["outcome"].clone()),
        (404, json!("no_route"))
    );
    assert!(
        r.json()["audit"]["seq"].as_u64().is_some(),
        "no_route is audited"
    );

    let r = d.submit(json!({"kind": "greet", "input": {"wrong": 1}}));
    assert_eq!(
        (r.status, r.json()["outcome"].clone()),
        (422, json!("invalid_input"))
    );

    let r = d.submit(json!({"kind": "crash", "input": {"message": "x"}}));
    assert_eq!(
        (r.status, r.json()["outcome"].clone()),
        (502, json!("trap"))
    );

    let entries = d.audit();
    let first = entries
        .iter()
        .find(|e| e["seq"] == seq)
        .expect("entry listed");
    assert_eq!(first["entry"]["route"]["rule_id"], "greet");
    assert_eq!(first["entry"]["principal"], "alice");
    assert!(entries.iter().any(|e| e["entry"]["outcome"] == "no_route"));

    let id = body["request_id"].as_str().expect("id");
    let got = d
        .client(SUBMIT)
        .get(&format!("/v1/requests/{id}"))
        .expect("get");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["response"]["output"], "hi");
    assert_eq!(
        d.client(SUBMIT)
            .get("/v1/requests/r-nope")
            .expect("get")
            .status,
        404
    );

    let (code, err) = d.terminate();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn client_mistakes_get_4xx_with_machine_readable_codes() {
    let d = Daemon::start(&echo_deploy(
        "mistakes",
        "",
        "[limits]\nmax_body = \"1KiB\"",
    ));
    let c = d.client(SUBMIT);
    let send = |body: &[u8]| {
        c.send(
            "POST",
            "/v1/requests",
            Some(body),
            &[("Content-Type", "application/json")],
        )
        .expect("send")
    };
    let code = |r: &Response| r.json()["error"]["code"].as_str().unwrap_or("").to_string();
    let big = format!(
        "{{\"kind\":\"greet\",\"input\":{{\"message\":\"{}\"}}}}",
        "x".repeat(4096)
    );
    let r = send(big.as_bytes());
    assert_eq!((r.status, code(&r).as_str()), (413, "body_too_large"));
    let r = send(b"{not json");
    assert_eq!((r.status, code(&r).as_str()), (400, "malformed_json"));
    let r = send(br#"{"kind":"greet","input":{},"colour":"red"}"#);
    assert_eq!((r.status, code(&r).as_str()), (400, "unknown_field"));
    let r = send(br#"{"input":{}}"#);
    assert_eq!((r.status, code(&r).as_str()), (400, "invalid_request"));
    let r = send(br#"{"kind":"","input":{}}"#);
    assert_eq!((r.status, code(&r).as_str()), (400, "invalid_request"));
    let r = c.get("/v1/nowhere").expect("get");
    assert_eq!((r.status, code(&r).as_str()), (404, "not_found"));
    let r = d.client(AUDIT).get("/v1/audit?after=abc").expect("get");
    assert_eq!((r.status, code(&r).as_str()), (400, "invalid_query"));
    // The daemon is still fine.
    assert_eq!(d.submit(greet("ok")).status, 200);
}

#[test]
fn every_endpoint_checks_its_role() {
    // A checkpoint per entry, so the transparency endpoints have one to serve.
    let d = Daemon::start(&echo_deploy(
        "auth",
        "",
        "[checkpoints]\nevery_entries = 1\n",
    ));
    let ok = d.submit(greet("mine")).json();
    let id = ok["request_id"].as_str().expect("id").to_string();
    let req_path = format!("/v1/requests/{id}");
    // (method, path, roles allowed)
    let endpoints: Vec<(&str, String, &[&str])> = vec![
        ("POST", "/v1/requests".into(), &["submit"]),
        ("GET", req_path, &["submit", "audit"]),
        (
            "GET",
            "/v1/capabilities".into(),
            &["submit", "audit", "admin"],
        ),
        (
            "GET",
            "/v1/capabilities/echo".into(),
            &["submit", "audit", "admin"],
        ),
        ("GET", "/v1/routes".into(), &["audit", "admin"]),
        ("GET", "/v1/audit".into(), &["audit"]),
        ("GET", "/v1/audit/checkpoints".into(), &["audit"]),
        ("GET", "/v1/audit/checkpoint".into(), &["audit"]),
        (
            "GET",
            "/v1/audit/proof/inclusion?index=0".into(),
            &["audit"],
        ),
        (
            "GET",
            "/v1/audit/proof/consistency?old=0".into(),
            &["audit"],
        ),
        ("POST", "/v1/admin/reload".into(), &["admin"]),
        ("GET", "/metrics".into(), &["audit", "admin"]),
    ];
    let roles = [
        ("submit", SUBMIT),
        ("audit", AUDIT),
        ("admin", ADMIN),
        ("approve", APPROVE),
    ];
    let body = greet("matrix").to_string();
    for (method, path, allowed) in &endpoints {
        let send = |extra: &[(&str, &str)]| {
            let client = Client::new(&d.url(), None).expect("url");
            let b = (*method == "POST").then_some(body.as_bytes());
            client.send(method, path, b, extra).expect("send")
        };
        for (role, token) in roles {
            let auth = format!("Bearer {token}");
            let r = send(&[("Authorization", &auth)]);
            if allowed.contains(&role) {
                assert!(
                    r.status < 400,
                    "{method} {path} as {role}: {} {}",
                    r.status,
                    r.text()
                );
            } else {
                assert_eq!(r.status, 403, "{method} {path} as {role}: {}", r.text());
                assert_eq!(r.json()["error"]["code"], "forbidden");
            }
        }
        for (extra, code) in [
            (vec![], "missing_token"),
            (
                vec![("Authorization", "Basic dG9rLXN1Ym1pdA==")],
                "malformed_token",
            ),
            (vec![("Authorization", "Bearer")], "malformed_token"),
            (vec![("Authorization", "Bearer tok-submi")], "unknown_token"),
            (
                vec![("Authorization", "Bearer tok-submit2")],
                "unknown_token",
            ),
        ] {
            let r = send(&extra);
            assert_eq!(r.status, 401, "{method} {path} {extra:?}");
            assert_eq!(r.json()["error"]["code"], code, "{method} {path} {extra:?}");
        }
    }
    // Probes need no token.
    let anon = Client::new(&d.url(), None).expect("url");
    assert_eq!(anon.get("/healthz").expect("get").status, 200);
    assert_eq!(anon.get("/readyz").expect("get").status, 200);
}

#[test]
fn idempotency_keys_answer_once_wait_for_duplicates_and_refuse_conflicts() {
    let mut spin = cap("spin", "spin-loop");
    spin.extra = "[budget]\nfuel = \"off\"\nwall_time = \"400ms\"";
    let dir = deploy(
        "idem",
        &[cap("echo", "echo"), spin],
        &[
            ("greet", "greet", "echo", "echo"),
            ("spin", "spin", "spin", "spin"),
        ],
        "",
    );
    let d = Daemon::start(&dir);
    // Sequential.
    let mut body = greet("once");
    body["idempotency_key"] = json!("k-1");
    let first = d.submit(body.clone());
    let second = d.submit(body.clone());
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    let (a, b) = (first.json(), second.json());
    assert_eq!(a["request_id"], b["request_id"]);
    assert_eq!(a["audit"], b["audit"]);
    assert_eq!(a["replayed"], false);
    assert_eq!(b["replayed"], true);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    // Conflicting.
    let mut other = greet("different");
    other["idempotency_key"] = json!("k-1");
    let r = d.submit(other);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (409, json!("idempotency_conflict"))
    );
    // Concurrent: four at once on a slow capability; it runs once.
    let slow = json!({"kind": "spin", "input": {"n": 1}, "idempotency_key": "k-slow"});
    let answers: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| d.submit(slow.clone()).json()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|a| a["request_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a["replayed"] == false).count(), 1);
    let id = answers[0]["request_id"].as_str().expect("id");
    let runs = d
        .audit()
        .iter()
        .filter(|e| e["entry"]["request_id"] == id)
        .count();
    assert_eq!(runs, 1, "the slow request ran once");
}

#[test]
fn a_transient_failure_is_retried_then_succeeds() {
    let dir = echo_deploy(
        "retry",
        "[retry]\ntransient = { attempts = 3, base = \"10ms\" }",
        "[testing]\ntransient_faults = { echo = 2 }",
    );
    let d = Daemon::start(&dir);
    let r = d.submit(greet("again"));
    let body = r.json();
    assert_eq!(r.status, 200, "{body}");
    assert_eq!(body["attempts"], 3);
    let id = body["request_id"].as_str().expect("id");
    let attempts: Vec<(Value, Value)> = d
        .audit()
        .iter()
        .filter(|e| e["entry"]["request_id"] == id)
        .map(|e| (e["entry"]["attempt"].clone(), e["entry"]["outcome"].clone()))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (json!(1), json!("transient")),
            (json!(2), json!("transient")),
            (json!(3), json!("ok"))
        ]
    );
    let metrics = d.client(AUDIT).get("/metrics").expect("metrics").text();
    assert!(
        metrics.contains("warden_retries_total{capability=\"echo\",outcome=\"transient\"} 2"),
        "{metrics}"
    );
}

#[test]
fn the_breaker_opens_after_consecutive_transient_failures_and_recovers() {
    let dir = echo_deploy(
        "breaker",
        "",
        "[capability.echo]\nbreaker_failures = 3\nbreaker_cool_down = \"700ms\"\n\n[testing]\ntransient_faults = { echo = 3 }",
    );
    let d = Daemon::start(&dir);
    for _ in 0..3 {
        let r = d.submit(greet("x"));
        assert_eq!(
            (r.status, r.json()["outcome"].clone()),
            (503, json!("transient"))
        );
    }
    let r = d.submit(greet("refused"));
    assert_eq!(r.status, 503);
    assert!(
        r.json()["error"]
            .as_str()
            .expect("why")
            .contains("circuit breaker"),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    let inv = d
        .client(ADMIN)
        .get("/v1/capabilities/echo")
        .expect("get")
        .json();
    assert_eq!(inv["breaker"], "open");
    let metrics = d.client(ADMIN).get("/metrics").expect("metrics").text();
    assert!(
        metrics.contains("warden_breaker_state{capability=\"echo\"} 1"),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_millis(800));
    let r = d.submit(greet("probe"));
    assert_eq!(r.status, 200, "the half-open probe succeeds: {}", r.text());
    let inv = d
        .client(ADMIN)
        .get("/v1/capabilities/echo")
        .expect("get")
        .json();
    assert_eq!(inv["breaker"], "closed");
    assert_eq!(d.submit(greet("again")).status, 200);
}

#[test]
fn a_full_capability_answers_503_with_retry_after() {
    let mut spin = cap("spin", "spin-loop");
    spin.extra = "[budget]\nfuel = \"off\"\nwall_time = \"1500ms\"";
    let dir = deploy(
        "backpressure",
        &[spin],
        &[("spin", "spin", "spin", "spin")],
        "[limits]\nqueue_timeout = \"200ms\"\n\n[capability.spin]\nconcurrency = 1",
    );
    let d = Daemon::start(&dir);
    let body = json!({"kind": "spin", "input": {"n": 1}});
    std::thread::scope(|s| {
        let first = s.spawn(|| d.submit(body.clone()));
        std::thread::sleep(Duration::from_millis(400));
        let r = d.submit(body.clone());
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error_code"], "overloaded");
        assert!(r.header("retry-after").is_some());
        let first = first.join().expect("thread");
        assert_eq!(first.json()["outcome"], "budget_exhausted:time");
    });
    let metrics = d.client(AUDIT).get("/metrics").expect("metrics").text();
    assert!(
        metrics.contains("warden_queue_timeouts_total{capability=\"spin\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warden_stage_seconds_bucket{stage=\"queue\""),
        "{metrics}"
    );
}

/// Invocations run on the daemon's async workers; a guest yields at every
/// epoch tick, so more spinning guests than there are workers (2 on the
/// CI machine, at most `nproc`) cannot stall health checks or other requests.
#[test]
fn the_daemon_keeps_answering_while_more_guests_spin_than_it_has_workers() {
    let mut spin = cap("spin", "spin-loop");
    spin.extra = "[budget]\nfuel = \"off\"\nwall_time = \"3s\"";
    let echo = cap("echo", "echo");
    let dir = deploy(
        "spinning",
        &[spin, echo],
        &[
            ("spin", "spin", "spin", "spin"),
            ("greet", "greet", "echo", "echo"),
        ],
        "[capability.spin]\nconcurrency = 16",
    );
    let d = Daemon::start(&dir);
    let spinners = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2 + 2;
    let body = json!({"kind": "spin", "input": {"n": 1}});
    std::thread::scope(|s| {
        let spins: Vec<_> = (0..spinners)
            .map(|_| s.spawn(|| d.submit(body.clone())))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let health = d.client(AUDIT).get("/healthz").expect("healthz");
        assert_eq!(health.status, 200, "{}", health.text());
        let r = d.submit(greet("still here"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["output"], "still here");
        let running = spins.iter().filter(|h| !h.is_finished()).count();
        assert_eq!(
            running, spinners,
            "every spinning guest is still running when the other requests were answered"
        );
        for h in spins {
            let r = h.join().expect("thread");
            assert_eq!(r.json()["outcome"], "budget_exhausted:time", "{}", r.text());
        }
    });
    let metrics = d.client(AUDIT).get("/metrics").expect("metrics").text();
    let waited: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("warden_audit_commit_wait_seconds_total "))
        .and_then(|v| v.parse().ok())
        .expect("the commit-wait counter is exported");
    assert!(waited > 0.0, "{metrics}");
}

#[test]
fn reload_applies_a_valid_set_and_a_broken_one_changes_nothing() {
    let dir = echo_deploy("reload", "", "");
    let d = Daemon::start(&dir);
    let admin = d.client(ADMIN);
    let hash =
        |d: &Daemon| d.client(ADMIN).get("/v1/routes").expect("routes").json()["hash"].clone();
    let before = hash(&d);
    assert_eq!(
        d.submit(json!({"kind": "shout", "input": {"message": "a"}}))
            .status,
        404
    );
    std::fs::write(
        dir.join("routes.toml"),
        routes_toml(&[
            ("greet", "greet", "echo", "echo"),
            ("shout", "shout", "echo", "echo"),
        ]),
    )
    .expect("write");
    let r = admin
        .send("POST", "/v1/admin/reload", None, &[])
        .expect("reload");
    assert_eq!(r.status, 200, "{}", r.text());
    let after = hash(&d);
    assert_ne!(before, after);
    assert_eq!(
        d.submit(json!({"kind": "shout", "input": {"message": "a"}}))
            .status,
        200
    );
    let reloads: Vec<Value> = d
        .audit()
        .into_iter()
        .filter(|e| e["entry"]["event"] == "reload")
        .collect();
    assert_eq!(reloads.len(), 1);
    let detail: Value =
        serde_json::from_str(reloads[0]["entry"]["detail"].as_str().expect("detail"))
            .expect("json");
    assert_eq!(detail["old"]["routes_hash"], before);
    assert_eq!(detail["new"]["routes_hash"], after);
    assert!(detail["new"]["capabilities"]["echo"]["digest"].is_string());

    // A broken policy and a route to nowhere: rejected, nothing changes.
    std::fs::write(
        dir.join("policies/echo.toml"),
        "[capability]\nname = \"echo\"\ncomponent = \"echo.wasm\"\n[budget]\nfuel = 0\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("routes.toml"),
        routes_toml(&[
            ("greet", "greet", "echo", "echo"),
            ("gone", "gone", "nothing", "x"),
        ]),
    )
    .expect("write");
    let r = admin
        .send("POST", "/v1/admin/reload", None, &[])
        .expect("reload");
    assert_eq!(r.status, 422, "{}", r.text());
    let err = r.json();
    assert_eq!(err["error"]["code"], "reload_rejected");
    assert!(
        err["error"]["details"].to_string().contains("echo.toml"),
        "{err}"
    );
    assert_eq!(hash(&d), after, "routes unchanged");
    assert_eq!(
        d.submit(json!({"kind": "shout", "input": {"message": "b"}}))
            .status,
        200
    );
    let reloads = d
        .audit()
        .into_iter()
        .filter(|e| e["entry"]["event"] == "reload")
        .count();
    assert_eq!(reloads, 2, "a rejected reload is audited too");

    // SIGHUP reloads the same way.
    std::fs::write(
        dir.join("policies/echo.toml"),
        policy_toml(&cap("echo", "echo")),
    )
    .expect("write");
    std::fs::write(
        dir.join("routes.toml"),
        routes_toml(&[("greet", "greet", "echo", "echo")]),
    )
    .expect("write");
    d.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    while hash(&d) == after {
        assert!(Instant::now() < deadline, "SIGHUP reload did not apply");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        d.submit(json!({"kind": "shout", "input": {"message": "c"}}))
            .status,
        404
    );
}

/// Whether process `pid` catches signal `signo` (its `SigCgt` mask).
fn catches(pid: u32, signo: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signo - 1)) != 0)
}

/// A SIGHUP that arrives while the daemon is still loading its deployment
/// (e.g. an operator reloading right after a restart) must not kill it with
/// the default action: it is applied as a reload once the daemon is up.
#[test]
fn a_sighup_during_start_up_is_a_reload_not_a_kill() {
    const SIGHUP: u32 = 1;
    const SIGTERM: u32 = 15;
    let dir = echo_deploy("early-hup", "", "");
    let mut d = Daemon::spawn(&dir);
    let pid = d.child.id();
    // The SIGTERM handler is installed first thing; send SIGHUP then.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !catches(pid, SIGTERM) {
        assert!(Instant::now() < deadline, "no SIGTERM handler installed");
        assert!(d.child.try_wait().expect("wait").is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(1));
    }
    let before_ready = !dir.join("ready").exists();
    d.signal("-HUP");
    // Dies here (panicking with its stderr) if the SIGHUP killed it.
    d.wait_ready();
    assert!(catches(pid, SIGHUP));
    let r = d.submit(greet("after an early SIGHUP"));
    assert_eq!(r.status, 200, "{}", r.text());
    if before_ready {
        // The held signal became a reload, recorded in the chain.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.audit().iter().any(|e| e["entry"]["event"] == "reload") {
            assert!(
                Instant::now() < deadline,
                "no reload entry: {:?}",
                d.audit()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn sigterm_drains_in_flight_requests_and_writes_a_final_checkpoint() {
    let mut spin = cap("spin", "spin-loop");
    spin.extra = "[budget]\nfuel = \"off\"\nwall_time = \"1500ms\"";
    let dir = deploy(
        "drain",
        &[cap("echo", "echo"), spin],
        &[
            ("greet", "greet", "echo", "echo"),
            ("spin", "spin", "spin", "spin"),
        ],
        "",
    );
    let d = Daemon::start(&dir);
    let body = json!({"kind": "spin", "input": {"n": 1}});
    let answers: Vec<Result<Response, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    d.client(SUBMIT)
                        .post_json("/v1/requests", &body)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        // Signal while requests are running (on a loaded machine not all
        // four may be admitted yet: those are refused, never half-run).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = d.client(AUDIT).get("/metrics").expect("metrics").text();
            if m.contains("warden_requests_active 4")
                || (Instant::now() > deadline - Duration::from_secs(25)
                    && !m.contains("warden_requests_active 0"))
            {
                break;
            }
            assert!(Instant::now() < deadline, "no request ever ran:\n{m}");
            std::thread::sleep(Duration::from_millis(10));
        }
        d.signal("-TERM");
        std::thread::sleep(Duration::from_millis(100));
        // Stopped accepting: a new request is refused, never half-run.
        if let Ok(r) = d.client(SUBMIT).post_json("/v1/requests", &greet("late")) {
            assert_eq!(r.status, 503, "a request after SIGTERM: {}", r.text());
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let data_dir = d.dir.join("data");
    let (code, err) = d.terminate_after_signal();
    assert_eq!(code, 0, "{err}");
    let mut seqs = Vec::new();
    for a in answers.iter().flatten() {
        if a.status == 503 {
            assert_eq!(a.json()["error"]["code"], "shutting_down", "{}", a.text());
            continue;
        }
        assert_eq!(a.status, 422, "an admitted request finished: {}", a.text());
        seqs.push(
            a.json()["audit"]["seq"]
                .as_u64()
                .expect("acknowledged with its audit entry"),
        );
    }
    assert!(
        !seqs.is_empty(),
        "in-flight requests were drained: {answers:?}"
    );
    let (code, out, err) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        data_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(
        code, 0,
        "the chain verifies and the final checkpoint covers it:\n{out}\n{err}"
    );
    let (_, shown, _) = warden(&[
        "audit",
        "show",
        "--json",
        "--data-dir",
        data_dir.to_str().expect("utf8"),
    ]);
    for seq in seqs {
        assert!(
            shown.contains(&format!("\"seq\":{seq}")),
            "acknowledged entry {seq} is on disk"
        );
    }
}

impl Daemon {
    /// Runs a `warden` client command against this daemon as `token`:
    /// (exit code, stdout, stderr).
    pub(crate) fn cli(&self, args: &[&str], token: &str) -> (i32, String, String) {
        let out = Command::new(warden_bin())
            .args(args)
            .env("WARDEN_URL", self.url())
            .env("WARDEN_TOKEN", token)
            .output()
            .expect("run warden");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits for a daemon that was already sent SIGTERM.
    pub(crate) fn terminate_after_signal(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return (status.code().unwrap_or(-1), err);
            }
            assert!(Instant::now() < deadline, "warden serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_cli_submits_lists_capabilities_and_tails_the_audit() {
    let d = Daemon::start(&echo_deploy("cli", "", ""));
    let run = |args: &[&str], token: &str| d.cli(args, token);
    let (code, out, err) = run(
        &[
            "submit",
            "--kind",
            "greet",
            "--input",
            r#"{"message":"cli"}"#,
        ],
        SUBMIT,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "\"cli\"");
    let (code, _, _) = run(&["submit", "--kind", "nothing", "--input", "{}"], SUBMIT);
    assert_eq!(code, 11, "no_route exit code");
    let (code, out, err) = run(&["capabilities"], SUBMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("echo") && out.contains("signer=ops"), "{out}");
    let (code, out, err) = run(&["audit", "tail", "-n", "5"], AUDIT);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("echo.echo") && out.contains("no_route"),
        "{out}"
    );
    let metrics = d.client(AUDIT).get("/metrics").expect("metrics").text();
    assert!(
        metrics.contains(
            "warden_requests_total{capability=\"(none)\",route=\"(none)\",outcome=\"no_route\"} 1"
        ),
        "a request refused before routing is labelled (none), never \"\": {metrics}"
    );
    assert!(
        !metrics.contains("=\"\""),
        "no empty label value: {metrics}"
    );
    let (code, _, err) = run(&["audit", "tail"], SUBMIT);
    assert_eq!(code, 2, "a submitter cannot read the audit: {err}");
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_request_and_the_chain_verifies_after_restart() {
    let dir = echo_deploy("crash-kill", "", "");
    let d = Daemon::start(&dir);
    let acked = std::sync::Mutex::new(Vec::<String>::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (d, acked, stop) = (&d, &acked, &stop);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    // A dead daemon ends this client: every error stops it.
                    let Ok(r) = d
                        .client(SUBMIT)
                        .post_json("/v1/requests", &greet(&format!("t{t}-{i}")))
                    else {
                        break;
                    };
                    if r.status == 200 {
                        let id = r.json()["request_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        acked.lock().expect("lock").push(id);
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().expect("lock").len() < 100 {
            assert!(
                Instant::now() < deadline,
                "the daemon acknowledged too few requests"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        d.signal("-KILL"); // mid-load: clients are still sending
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let acked = acked.into_inner().expect("lock");
    let data_dir = dir.join("data");
    drop(d);
    // Restart on the same data directory: the chain head is recovered; a
    // clean stop writes the checkpoint that covers the entries written
    // before the kill.
    let restarted = Daemon::start(&dir);
    let (code, err) = restarted.terminate();
    assert_eq!(code, 0, "{err}");
    let data = data_dir.to_str().expect("utf8");
    let (code, out, err) = warden(&["audit", "verify", "--data-dir", data]);
    assert_eq!(
        code, 0,
        "the chain verifies after SIGKILL + restart:\n{out}\n{err}"
    );
    let (_, shown, _) = warden(&[
        "audit",
        "show",
        "--json",
        "--limit",
        "100000",
        "--data-dir",
        data,
    ]);
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !shown.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged requests are missing from the chain: {missing:?}",
        missing.len(),
        acked.len()
    );
}
