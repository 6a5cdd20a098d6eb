//! The MCP server (issue 19) driven by a real MCP client: the official
//! Python SDK (`mcp`, pinned in tests/mcp/requirements.txt, installed into
//! target/mcp-client/venv by tests/mcp/setup.sh on first use) runs the
//! scripted session tests/mcp/client.py over streamable HTTP (`/mcp` on
//! `warden serve`, protocol 2026-07-28) and over stdio (`warden mcp`,
//! the 2025-11-25 handshake); a raw JSON-RPC session over `warden mcp`'s
//! pipes checks answers by id and cancellation. Every case is checked in
//! the audit chain.
//!
//! A missing python3/venv or an unreachable PyPI fails these tests saying
//! which; they never skip.

use crate::daemon::{APPROVE, AUDIT, Cap, Daemon, SUBMIT, cap, deploy};
use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use warden_host::server::auth::token_hash;
use warden_host::server::client::Client;

const BOSS: &str = "tok-boss";
const ORIGIN: &str = "http://localhost:5173";
const CLIENT: &str = "warden-e2e-client/1.2.3";

/// `pay` notes need one approval.
const GATED: &str = r#"
[[approval]]
function = "echo"
when = "input.message starts_with \"pay\""
mode = "single"
"#;

/// `[mcp]`, and `boss`, the only principal that sees `secret`.
fn mcp_section() -> String {
    format!(
        r#"[[principal]]
name = "boss"
token_sha256 = "{}"
roles = ["submit"]

[mcp]
stdio_principal = "alice"
allowed_origins = ["{ORIGIN}"]

[[mcp.tool]]
name = "greet"
kind = "greet"
title = "Greet"
description = "Echo a message back."
idempotent = true

[[mcp.tool]]
name = "tight"
kind = "tight"
description = "Echo, with almost no fuel."

[[mcp.tool]]
name = "pay"
kind = "pay"
description = "Echo a payment note; notes starting with `pay` wait for a human approval."

[[mcp.tool]]
name = "counter"
kind = "count"
description = "Store a value under a key."

[[mcp.tool]]
name = "secret"
kind = "greet"
description = "Only boss sees this one."
principals = ["boss"]
"#,
        token_hash(BOSS)
    )
}

fn mcp_deploy(name: &str) -> PathBuf {
    let echo = cap("echo", "echo");
    let mut tight = cap("tight", "echo");
    tight.extra = "[budget]\nfuel = 100\n";
    let mut gated = cap("gated", "echo");
    gated.extra = GATED;
    let mut counter: Cap = cap("counter", "kv-user");
    counter.imports = Box::leak(
        format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}\n\"warden:host/kv\" = {{}}")
            .into_boxed_str(),
    );
    deploy(
        &format!("mcp-{name}"),
        &[echo, tight, gated, counter],
        &[
            ("greet", "greet", "echo", "echo"),
            ("tight", "tight", "tight", "echo"),
            ("pay", "pay", "gated", "echo"),
            ("count", "count", "counter", "put"),
        ],
        &mcp_section(),
    )
}

/// The venv's python with the pinned SDK, installed on first use.
fn python() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = repo().join("target/mcp-client/venv");
        let out = Command::new("bash")
            .arg(repo().join("tests/mcp/setup.sh"))
            .arg(&venv)
            .output()
            .expect("running tests/mcp/setup.sh (is bash installed?)");
        assert!(
            out.status.success(),
            "tests/mcp/setup.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        venv.join("bin/python")
    })
}

/// Runs tests/mcp/client.py `what` with `env`; returns its JSON report.
fn client(what: &str, env: &[(&str, String)]) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/mcp/client.py"))
        .arg(what)
        .env("WARDEN_BIN", warden_bin())
        .env("WARDEN_APPROVER_TOKEN", APPROVE);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py {what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("client output ({e}): {stdout}"))
}

/// Every audit entry (the `entry` objects) in `data/warden.db` of `dir`,
/// read offline with `warden audit show`.
fn audit_offline(dir: &Path) -> Vec<Value> {
    let db = dir.join("data/warden.db");
    let (code, out, err) = warden(&[
        "audit",
        "show",
        "--db",
        db.to_str().expect("utf-8"),
        "--limit",
        "10000",
        "--json",
    ]);
    assert_eq!(code, 0, "audit show: {err}");
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line")["entry"].clone())
        .collect()
}

/// The entries of request `id`.
fn of(audit: &[Value], id: &str) -> Vec<Value> {
    audit
        .iter()
        .filter(|e| e["request_id"] == id)
        .cloned()
        .collect()
}

/// The one invocation entry of the request answered in a tool result's
/// (or protocol error's) `dev.warden/answer`.
fn entry_of(audit: &[Value], answer: &Value) -> Value {
    let id = answer["request_id"]
        .as_str()
        .expect("request id in the answer");
    let entries = of(audit, id);
    assert_eq!(entries.len(), 1, "one audit entry for {id}: {entries:#?}");
    entries[0].clone()
}

fn answer(result: &Value) -> &Value {
    &result["_meta"]["dev.warden/answer"]
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// Came through MCP from the scripted client, as `principal`.
fn assert_mcp(entry: &Value, principal: &str, outcome: &str, client: Option<&str>) {
    assert_eq!(entry["request_kind"], "mcp", "{entry:#}");
    assert_eq!(entry["principal"], principal, "{entry:#}");
    assert_eq!(entry["outcome"], outcome, "{entry:#}");
    let detail: Value = entry["detail"].as_str().map_or(Value::Null, |d| {
        serde_json::from_str(d).expect("detail json")
    });
    match client {
        Some(c) => assert_eq!(detail["client"], c, "{entry:#}"),
        None => assert!(detail.get("client").is_none(), "{entry:#}"),
    }
}

/// What both transports must show for the scripted session.
fn check_session(out: &Value, audit: &[Value], client: Option<&str>) {
    // Discovery: only alice's tools, in config order; schemas from WIT;
    // annotations from the grants.
    let tools = out["tools"].as_array().expect("tools listed");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["greet", "tight", "pay", "counter"], "{out:#}");
    let greet = &tools[0];
    assert_eq!(greet["title"], "Greet");
    assert_eq!(
        greet["inputSchema"]["properties"]["message"]["type"],
        "string"
    );
    assert_eq!(greet["inputSchema"]["required"], json!(["message"]));
    assert_eq!(
        greet["outputSchema"]["properties"]["output"]["type"],
        "string"
    );
    assert_eq!(
        greet["annotations"],
        json!({"title": "Greet", "readOnlyHint": true, "openWorldHint": false, "idempotentHint": true})
    );
    let counter = &tools[3];
    assert_eq!(counter["annotations"]["readOnlyHint"], false);
    assert_eq!(counter["annotations"]["destructiveHint"], true);
    assert!(counter["annotations"].get("idempotentHint").is_none());

    // A good call: structured output plus text, one audit entry via mcp.
    let good = &out["good"];
    assert_eq!(good["isError"], false, "{good:#}");
    assert_eq!(good["structuredContent"], json!({"output": "hi"}));
    assert_eq!(text(good), "\"hi\"");
    let e = entry_of(audit, answer(good));
    assert_mcp(&e, "alice", "ok", client);
    assert_eq!(e["capability"], "echo");
    assert!(answer(good)["audit"]["seq"].as_u64().is_some(), "{good:#}");

    // The idempotency key from `_meta` replays the recorded answer.
    let (one, two) = (answer(&out["idem1"]), answer(&out["idem2"]));
    assert_eq!(one["request_id"], two["request_id"], "{out:#}");
    assert_eq!(
        (one["replayed"].clone(), two["replayed"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(of(audit, one["request_id"].as_str().expect("id")).len(), 1);

    // Bad input: a tool error naming the outcome, audited.
    let bad = &out["bad"];
    assert_eq!(bad["isError"], true, "{bad:#}");
    assert!(text(bad).starts_with("invalid_input: "), "{bad:#}");
    assert!(bad.get("structuredContent").is_none());
    assert_mcp(
        &entry_of(audit, answer(bad)),
        "alice",
        "invalid_input",
        client,
    );

    // Budget exhaustion: a tool error, audited.
    let budget = &out["budget"];
    assert_eq!(budget["isError"], true, "{budget:#}");
    assert!(
        text(budget).starts_with("budget_exhausted:fuel: "),
        "{budget:#}"
    );
    assert_mcp(
        &entry_of(audit, answer(budget)),
        "alice",
        "budget_exhausted:fuel",
        client,
    );

    // Unknown and hidden tools: the same protocol error; the audit tells them apart.
    for (step, outcome) in [("unknown", "no_route"), ("hidden", "denied")] {
        let err = &out[step]["mcp_error"];
        assert_eq!(err["code"], -32602, "{step}: {out:#}");
        assert!(
            err["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("unknown tool"),
            "{err}"
        );
        assert_mcp(
            &entry_of(audit, &err["data"]["dev.warden/answer"]),
            "alice",
            outcome,
            client,
        );
    }

    // A gated call is held; `warden approvals approve` runs it; the
    // request's resource then has the output. Every step is audited, the
    // run after the approval still as an MCP request of alice.
    let held = &out["held"];
    assert_eq!(held["isError"], true, "{held:#}");
    let id = out["held_id"].as_str().expect("held request id");
    assert!(text(held).starts_with("pending_approval: "), "{held:#}");
    assert!(
        text(held).contains(&format!("Approval id: {id}")),
        "{held:#}"
    );
    assert!(
        text(held).contains(&format!("warden://requests/{id}")),
        "{held:#}"
    );
    assert_eq!(out["approve"]["rc"], 0, "{:#}", out["approve"]);
    assert_eq!(out["after"]["status"], 200, "{:#}", out["after"]);
    assert_eq!(out["after"]["response"]["outcome"], "ok");
    assert_eq!(out["after"]["response"]["output"], "pay 100");
    let steps: Vec<(String, String, String)> = of(audit, id)
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("event"), s("outcome"), s("request_kind"))
        })
        .collect();
    let step = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        steps,
        [
            step("invocation", "pending_approval", "mcp"),
            step("approval", "ok", "http"),
            step("invocation", "ok", "mcp"),
        ]
    );
    assert_mcp(&of(audit, id)[2], "alice", "ok", client);

    // Resources: the inventory and the manifests of visible tools only.
    let resources: Vec<&str> = out["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        resources,
        [
            "warden://capabilities",
            "warden://tools/greet/permissions",
            "warden://tools/tight/permissions",
            "warden://tools/pay/permissions",
            "warden://tools/counter/permissions",
        ]
    );
    assert_eq!(out["templates"], json!(["warden://requests/{request_id}"]));
    let manifest = &out["manifest"];
    assert_eq!(manifest["capability"], "counter", "{manifest:#}");
    assert_eq!(manifest["function"], "put");
    assert!(
        manifest["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["interface"] == "warden:host/kv"),
        "{manifest:#}"
    );
    assert!(
        manifest["wit_imports"]
            .as_array()
            .expect("imports")
            .iter()
            .any(|i| i["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("warden:host/kv")
                && i["granted"] == true),
        "{manifest:#}"
    );
    let caps: Vec<&str> = out["capabilities"]["capabilities"]
        .as_array()
        .expect("inventory")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(caps, ["counter", "echo", "gated", "tight"]);
    // Resource not found: -32002 until 2025-11-25, -32602 from 2026-07-28 (SEP-2164).
    let not_found = if out["protocol_version"] == "2026-07-28" {
        -32602
    } else {
        -32002
    };
    assert_eq!(
        out["hidden_manifest"]["mcp_error"]["code"], not_found,
        "{out:#}"
    );
    assert!(
        out["hidden_manifest"]["mcp_error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("no resource `warden://tools/secret/permissions`"),
        "{out:#}"
    );
}

#[test]
fn a_python_sdk_client_over_streamable_http_lists_calls_and_waits_for_approval_and_every_call_is_audited()
 {
    let dir = mcp_deploy("http");
    let d = Daemon::start(&dir);
    let out = client(
        "session",
        &[
            ("MCP_TRANSPORT", "http".into()),
            ("MCP_MODE", "auto".into()),
            ("MCP_URL", format!("{}/mcp", d.url())),
            ("MCP_TOKEN", SUBMIT.into()),
            ("MCP_ORIGIN", ORIGIN.into()),
            ("WARDEN_URL", d.url()),
        ],
    );
    assert_eq!(out["protocol_version"], "2026-07-28", "{out:#}");
    assert_eq!(out["sdk_version"], "2.3.0");
    let audit: Vec<Value> = d.audit().into_iter().map(|e| e["entry"].clone()).collect();
    check_session(&out, &audit, Some(CLIENT));
}

#[test]
fn a_2025_11_25_client_over_streamable_http_is_served_statelessly_with_the_same_results_and_its_identity()
 {
    let dir = mcp_deploy("http-legacy");
    let d = Daemon::start(&dir);
    let out = client(
        "session",
        &[
            ("MCP_TRANSPORT", "http".into()),
            ("MCP_MODE", "legacy".into()),
            ("MCP_URL", format!("{}/mcp", d.url())),
            ("MCP_TOKEN", SUBMIT.into()),
            ("WARDEN_URL", d.url()),
        ],
    );
    assert_eq!(out["protocol_version"], "2025-11-25", "{out:#}");
    let audit: Vec<Value> = d.audit().into_iter().map(|e| e["entry"].clone()).collect();
    // The client's identity, sent only with `initialize`, comes back in
    // the session id that answered it (docs/mcp.md "Audit"): no state.
    check_session(&out, &audit, Some(CLIENT));
}

/// The scripted session over `warden mcp` in `mode`; the protocol
/// version it negotiated, checked like the HTTP sessions.
fn stdio_session(name: &str, mode: &str) -> Value {
    let dir = mcp_deploy(name);
    let out = client(
        "session",
        &[
            ("MCP_TRANSPORT", "stdio".into()),
            ("MCP_MODE", mode.into()),
            (
                "WARDEN_CONFIG",
                dir.join("warden.toml").display().to_string(),
            ),
            ("MCP_READY_FILE", dir.join("ready").display().to_string()),
        ],
    );
    // The session ended: the daemon drained and closed its log.
    let audit = audit_offline(&dir);
    check_session(&out, &audit, Some(CLIENT));
    out["protocol_version"].clone()
}

#[test]
fn a_python_sdk_client_on_the_2025_11_25_handshake_drives_warden_mcp_over_stdio_as_the_configured_principal()
 {
    assert_eq!(stdio_session("stdio", "legacy"), "2025-11-25");
}

#[test]
fn a_python_sdk_client_on_2026_07_28_drives_warden_mcp_over_stdio_with_the_same_results() {
    assert_eq!(stdio_session("stdio-current", "auto"), "2026-07-28");
}

#[test]
fn a_wrong_origin_and_a_token_without_the_submit_role_are_refused_at_mcp_and_audited() {
    let dir = mcp_deploy("door");
    let d = Daemon::start(&dir);
    let url = format!("{}/mcp", d.url());
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});

    // The raw answers.
    let evil = d
        .client(SUBMIT)
        .send(
            "POST",
            "/mcp",
            Some(ping.to_string().as_bytes()),
            &[("origin", "http://evil.example")],
        )
        .expect("post");
    assert_eq!(evil.status, 403, "{}", evil.text());
    assert_eq!(evil.json()["error"]["code"], "forbidden_origin");
    let auditor = d
        .client(AUDIT)
        .send("POST", "/mcp", Some(ping.to_string().as_bytes()), &[])
        .expect("post");
    assert_eq!(auditor.status, 403, "{}", auditor.text());
    assert_eq!(auditor.json()["error"]["code"], "forbidden");

    // The real client cannot connect either way.
    for (token, origin) in [(SUBMIT, "http://evil.example"), (AUDIT, ORIGIN)] {
        let out = client(
            "connect",
            &[
                ("MCP_TRANSPORT", "http".into()),
                ("MCP_URL", url.clone()),
                ("MCP_TOKEN", token.into()),
                ("MCP_ORIGIN", origin.into()),
            ],
        );
        assert_eq!(out["connected"], false, "{out:#}");
        assert!(
            out["error"]
                .as_str()
                .unwrap_or_default()
                .contains("Server returned an error response"),
            "{out:#}"
        );
    }
    // And the allowed origin with a submitter's token can.
    let ok = client(
        "connect",
        &[
            ("MCP_TRANSPORT", "http".into()),
            ("MCP_URL", url.clone()),
            ("MCP_TOKEN", BOSS.into()),
            ("MCP_ORIGIN", ORIGIN.into()),
        ],
    );
    assert_eq!(
        ok["tools"],
        json!(["greet", "tight", "pay", "counter", "secret"]),
        "{ok:#}"
    );

    let audit: Vec<Value> = d.audit().into_iter().map(|e| e["entry"].clone()).collect();
    let refusals: Vec<&str> = audit
        .iter()
        .filter(|e| e["request_kind"] == "mcp" && e["outcome"] == "denied")
        .filter_map(|e| e["principal"].as_str())
        .collect();
    let origin_refusals = refusals.iter().filter(|p| **p == "alice").count();
    let role_refusals = refusals.iter().filter(|p| **p == "auditor").count();
    assert!(
        origin_refusals >= 2,
        "raw + client origin refusals audited: {refusals:#?}"
    );
    assert!(
        role_refusals >= 2,
        "raw + client role refusals audited: {refusals:#?}"
    );
}

#[test]
fn an_mcp_tool_whose_kind_routes_nowhere_refuses_the_start_naming_the_tool() {
    let dir = mcp_deploy("noroute");
    let config = dir.join("warden.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("kind = \"count\"", "kind = \"counting\""),
    )
    .expect("write");
    let (code, out, err) = warden(&[
        "serve",
        "--check",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("[[mcp.tool]] `counter` (kind `counting`): no route matches kind `counting`"),
        "{err}"
    );
}

/// `warden mcp` driven line by line over its pipes, as an agent's own
/// JSON-RPC code would.
struct RawStdio {
    child: std::process::Child,
    to: std::process::ChildStdin,
    from: std::io::BufReader<std::process::ChildStdout>,
    /// Every message read so far.
    seen: Vec<Value>,
}

impl RawStdio {
    fn start(dir: &Path) -> RawStdio {
        let stderr = std::fs::File::create(dir.join("mcp.log")).expect("log file");
        let mut child = Command::new(warden_bin())
            .args(["mcp", "--config"])
            .arg(dir.join("warden.toml"))
            .arg("--ready-file")
            .arg(dir.join("ready"))
            .env("WARDEN_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("warden mcp");
        let to = child.stdin.take().expect("stdin");
        let from = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        RawStdio {
            child,
            to,
            from,
            seen: Vec::new(),
        }
    }

    /// [`start`](Self::start), then the 2025-11-25 handshake (request id 0)
    /// as client `raw/1`.
    fn initialized(dir: &Path) -> RawStdio {
        let mut mcp = RawStdio::start(dir);
        mcp.send(&[
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        ]);
        assert!(mcp.answer(0)["result"]["serverInfo"].is_object());
        mcp.send(&[json!({"jsonrpc": "2.0", "method": "notifications/initialized"})]);
        mcp
    }

    /// Ends the input; `warden mcp` must exit cleanly.
    fn close(self) {
        let RawStdio { mut child, to, .. } = self;
        drop(to);
        let status = child.wait().expect("warden mcp exit");
        assert!(status.success(), "warden mcp exited with {status}");
    }

    /// Writes `messages` as lines in one write.
    fn send(&mut self, messages: &[Value]) {
        use std::io::Write;
        let text: String = messages.iter().map(|m| format!("{m}\n")).collect();
        self.to.write_all(text.as_bytes()).expect("write");
        self.to.flush().expect("flush");
    }

    /// The answer to request `id`: read already (answers come in the
    /// order calls end), or read until it comes.
    fn answer(&mut self, id: u64) -> Value {
        self.first(&format!("the answer to {id}"), |m| m["id"] == id)
    }

    /// The first message that is `what`: read already, or read until it
    /// comes.
    fn first(&mut self, what: &str, is: impl Fn(&Value) -> bool) -> Value {
        use std::io::BufRead;
        if let Some(message) = self.seen.iter().find(|m| is(m)) {
            return message.clone();
        }
        loop {
            let mut line = String::new();
            let n = self.from.read_line(&mut line).expect("read");
            assert!(n > 0, "warden mcp closed stdout before {what}");
            let message: Value = serde_json::from_str(&line).expect("a JSON line");
            self.seen.push(message.clone());
            if is(&message) {
                return message;
            }
        }
    }

    /// The daemon's API address from the ready file.
    fn api(&self, dir: &Path) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(addr) = std::fs::read_to_string(dir.join("ready"))
                && !addr.trim().is_empty()
            {
                return format!("http://{}", addr.trim());
            }
            assert!(std::time::Instant::now() < deadline, "no ready file");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn tools_call(id: u64, message: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "greet", "arguments": {"message": message}}})
}

#[test]
fn over_stdio_calls_sent_together_are_each_answered_by_id_and_a_cancelled_call_runs_to_its_audit_entry_unanswered()
 {
    let dir = mcp_deploy("stdio-raw");
    let mut mcp = RawStdio::initialized(&dir);

    // Three calls in one write, one of them bad: each answered under its id.
    mcp.send(&[
        tools_call(1, json!("one")),
        tools_call(2, json!("two")),
        tools_call(3, json!(5)),
    ]);
    for (id, output) in [(1, "one"), (2, "two")] {
        let result = &mcp.answer(id)["result"];
        assert_eq!(result["isError"], false, "{result:#}");
        assert_eq!(result["structuredContent"], json!({"output": output}));
    }
    let bad = &mcp.answer(3)["result"];
    assert_eq!(bad["isError"], true, "{bad:#}");
    assert!(text(bad).starts_with("invalid_input: "), "{bad:#}");

    // A call cancelled right after it was sent: warden still runs it to
    // its audit entry (nothing is cut off half-way), but does not answer it.
    mcp.send(&[
        tools_call(4, json!("cancelled")),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": 4, "reason": "the user changed their mind"}}),
        json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}),
    ]);
    assert_eq!(mcp.answer(5)["result"], json!({}));
    let api = Client::new(&mcp.api(&dir), Some(AUDIT.to_string())).expect("url");
    let ok_entries = || -> Vec<Value> {
        let body = api
            .get("/v1/audit?after=0&limit=1000")
            .expect("audit")
            .json();
        body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e["entry"].clone())
            .filter(|e| e["request_kind"] == "mcp" && e["outcome"] == "ok")
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let entries = loop {
        let entries = ok_entries();
        if entries.len() == 3 || std::time::Instant::now() > deadline {
            break entries;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(
        entries.len(),
        3,
        "calls 1, 2 and the cancelled 4: {entries:#?}"
    );
    for e in &entries {
        assert_mcp(e, "alice", "ok", Some("raw/1"));
    }
    // Anything answered for 4 would have been written by now.
    mcp.send(&[json!({"jsonrpc": "2.0", "id": 6, "method": "ping"})]);
    mcp.answer(6);
    assert!(
        !mcp.seen.iter().any(|m| m["id"] == 4),
        "the cancelled call was answered: {:#?}",
        mcp.seen
    );

    mcp.close();
}

#[test]
fn over_stdio_a_burst_of_more_messages_than_the_reader_queues_for_the_sdk_is_answered_in_full() {
    // The reading task holds at most 32 decoded messages for rmcp and
    // then stops reading until rmcp takes them (stdio_transport.rs); calls
    // it starts itself. 200 pings and 20 calls in one write cross that
    // bound many times over: every one is answered under its id.
    let dir = mcp_deploy("stdio-burst");
    let mut mcp = RawStdio::initialized(&dir);
    let mut burst = Vec::new();
    for id in 1..=220u64 {
        burst.push(if id % 11 == 0 {
            tools_call(id, json!(format!("call {id}")))
        } else {
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
        });
    }
    mcp.send(&burst);
    for id in 1..=220u64 {
        let answer = mcp.answer(id);
        if id % 11 == 0 {
            let result = &answer["result"];
            assert_eq!(result["isError"], false, "{result:#}");
            assert_eq!(
                result["structuredContent"],
                json!({"output": format!("call {id}")})
            );
        } else {
            assert_eq!(answer["result"], json!({}), "ping {id}: {answer:#}");
        }
    }
    mcp.close();
}

#[test]
fn over_stdio_a_line_over_16_mib_is_discarded_garbage_is_ignored_and_json_that_is_no_message_is_an_invalid_request()
 {
    use std::io::Write;
    let dir = mcp_deploy("stdio-lines");
    let mut mcp = RawStdio::initialized(&dir);

    // A tools/call one byte over the 16 MiB bound, written in pieces as a
    // pipe takes them: discarded as it arrives, never run, and the session
    // goes on.
    let head = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"greet\",\"arguments\":{\"message\":\"";
    let tail = b"\"}}}\n";
    let bound = 16 * 1024 * 1024;
    let filler = vec![b'a'; bound + 1 - head.len() - (tail.len() - 1)];
    mcp.to.write_all(head).expect("write");
    mcp.to.write_all(&filler).expect("write");
    mcp.to.write_all(tail).expect("write");
    // Not JSON: ignored (no id to answer). JSON that is not a message:
    // `Invalid Request` with a null id.
    mcp.to.write_all(b"this is not json\n").expect("write");
    mcp.send(&[
        json!({"not": "a message"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
    ]);
    assert_eq!(mcp.answer(2)["result"], json!({}));
    let invalid = mcp.first("an answer without an id", |m| m["id"].is_null());
    assert_eq!(invalid["error"]["code"], -32600, "{invalid:#}");
    assert_eq!(
        mcp.seen.iter().filter(|m| m["id"].is_null()).count(),
        1,
        "only the JSON that is no message is answered: {:#?}",
        mcp.seen
    );
    assert!(
        !mcp.seen.iter().any(|m| m["id"] == 1),
        "the oversized call was answered: {:#?}",
        mcp.seen
    );
    // A call of exactly 16 MiB (not counting its newline) is read and
    // answered.
    let under = vec![b'b'; bound - head.len() - (tail.len() - 1)];
    mcp.to.write_all(&head[..]).expect("write");
    mcp.to.write_all(&under).expect("write");
    mcp.to.write_all(tail).expect("write");
    mcp.to.flush().expect("flush");
    let answer = mcp.answer(1);
    assert!(
        answer["result"]["content"].is_array(),
        "the 16 MiB call is answered with a tool result: {:?}",
        answer.get("error")
    );

    mcp.close();
}
