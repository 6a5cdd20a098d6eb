//! The quickstart demo: builds the example capabilities (the root build
//! script does that), generates a development signing key, signs the
//! components, loads them under their policies with a trust file, runs
//! requests through the host, prints outputs and usage, and verifies the
//! audit chain the requests left behind. Then it runs the daemon in-process
//! with the `refund` capability behind human approval gates (single and
//! dual approval, a denial) over its real HTTP API, and verifies the
//! daemon's chain too. Last, an agent's scripted MCP session calls the same
//! `refund` as a tool over the daemon's `/mcp` endpoint: it lists the tools,
//! gets a small refund done, has a large one held for a human, and reads
//! the result once an approver has decided. Then the order workflow
//! (`examples/workflows/order.toml`: reserve stock in KV, score the risk
//! with the model within a token budget, note the order,
//! dual approval above 1000.00, charge through the payments double as the
//! pivot, confirm) runs three orders through the same daemon: one
//! completes, one is denied by an approver and compensated (its audit
//! trail printed), one waits for approvers and is approved.
//!
//! Everything it writes goes to `target/demo/` (recreated on every run).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example demo
//! ```

#[path = "../tests/e2e/doubles.rs"]
mod doubles;

use serde_json::{Value, json};
use std::path::PathBuf;
use warden_host::policy::Policy;
use warden_host::signing::{self, TrustStore};
use warden_host::store::hostkey;
use warden_host::{Call, Host, HostConfig, keys};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let built = PathBuf::from(env!("WARDEN_GUESTS_DIR"));
    let work = repo.join("target").join("demo");
    let _ = std::fs::remove_dir_all(&work);
    let signed_dir = work.join("components");
    std::fs::create_dir_all(&signed_dir)?;

    println!("== signing the example capabilities with a development key ==");
    let dev = keys::generate();
    keys::write_key_pair(&work.join("keys"), "dev", &dev)?;
    let names = [
        "echo",
        "invoice-reconcile",
        "pii-redact",
        "order-notes",
        "ticket-triage",
        "fx-rate",
        "refund",
        "inventory",
        "payments",
        "risk-score",
    ];

    println!("\n== local stand-ins for external services (loopback) ==");
    let model_server = doubles::ticket_classifier(0).await?;
    println!(
        "  model backend `small` (OpenAI-compatible): {}",
        model_server.origin()
    );
    let fx_server = doubles::fx_rates(18080).await;
    match &fx_server {
        Ok(s) => println!("  exchange-rate API: {}", s.origin()),
        Err(e) => println!(
            "  exchange-rate API: port 18080 unavailable ({e}); fx-rate will report the failure"
        ),
    }
    let mut models = std::collections::BTreeMap::new();
    models.insert(
        "small".to_string(),
        warden_host::interfaces::model::ModelBackend::new(&model_server.origin(), "demo-model"),
    );
    let trust_text = format!(
        "# Development trust file written by the demo.\n[[key]]\nname = \"dev\"\npublic_key = \"{}\"\ncapabilities = [{}]\n",
        keys::public_key_text(&dev.verifying_key()),
        names.map(|n| format!("\"{n}\"")).join(", ")
    );
    let trust_path = work.join("trust.toml");
    std::fs::write(&trust_path, trust_text)?;
    println!(
        "  key dev ({}), trust file {}",
        keys::key_id(&dev.verifying_key()),
        trust_path.display()
    );

    let mut host = Host::new(HostConfig {
        trust: Some(TrustStore::load(&trust_path)?),
        data_dir: Some(work.join("data")),
        models,
        ..HostConfig::default()
    })?;

    println!("\n== loading capabilities from policies/ ==");
    for name in names {
        let policy = Policy::load(&repo.join("policies").join(format!("{name}.toml")))?;
        let unsigned = std::fs::read(built.join(&policy.capability.component))?;
        let component = signed_dir.join(&policy.capability.component);
        std::fs::write(&component, signing::sign(&unsigned, &dev)?)?;
        let cap = host.load_files(&policy.source, &component)?;
        println!(
            "  {:<18} signed by {}, {} imports granted, digest {}",
            cap.name(),
            cap.signer.as_deref().unwrap_or("-"),
            cap.shape.imports.len(),
            short(&cap.digest.tagged())
        );
    }

    println!("\n== requests ==");
    let requests: Vec<(&str, &str, Value)> = vec![
        ("echo", "echo", json!({"message": "hello, warden"})),
        (
            "invoice-reconcile",
            "reconcile",
            json!({
                "invoices": [
                    {"id": "INV-1", "customer": "acme", "amount-cents": 12_000},
                    {"id": "INV-2", "customer": "acme", "amount-cents": 4_500},
                    {"id": "INV-3", "customer": "globex", "amount-cents": 990},
                ],
                "ledger": [
                    {"ref": "INV-1", "customer": "acme", "amount-cents": 12_000},
                    {"ref": "INV-2", "customer": "acme", "amount-cents": 4_000},
                    {"ref": "PAY-9", "customer": "initech", "amount-cents": 1},
                ],
            }),
        ),
        (
            "pii-redact",
            "redact",
            json!({"text": "Reach Dana at dana@example.com or +1 415-555-0100; card 4111 1111 1111 1111."}),
        ),
        (
            "order-notes",
            "add-note",
            json!({"order-id": "A-17", "text": "customer asked for gift wrap"}),
        ),
        ("order-notes", "list-notes", json!({"order-id": "A-17"})),
        (
            "ticket-triage",
            "triage",
            json!({"subject": "Charged twice", "body": "My card was billed twice for the March invoice."}),
        ),
        ("fx-rate", "rate", json!({"base": "EUR", "quote": "USD"})),
        // A hostile-ish request: wrong input type, refused before any guest code runs.
        ("echo", "echo", json!({"message": 42})),
    ];
    for (capability, function, input) in requests {
        let r = host.invoke(Call::new(capability, function, input)).await;
        println!("\n{capability}.{function} -> {}", r.outcome);
        match (&r.output, &r.error) {
            (Some(out), _) => println!("  output: {}", serde_json::to_string(out)?),
            (None, Some(err)) => println!("  error:  {err}"),
            _ => {}
        }
        for line in &r.logs {
            println!("  log {}: {}", line.level, line.message);
        }
        for c in &r.host_calls {
            println!("  host call: {} {} ({})", c.interface, c.target, c.status);
        }
        println!(
            "  usage:  fuel {}  peak memory {} KiB  wall {} us  replayable {}",
            r.usage.fuel,
            r.usage.peak_memory / 1024,
            r.usage.wall_time_us,
            r.replayable
        );
        if let Some(a) = &r.audit {
            println!("  audit:  entry {} {}", a.seq, short(&a.hash));
        }
    }

    println!("\n== verifying the audit chain with only the host's public key ==");
    host.shutdown().await?;
    let data = work.join("data");
    verify_chain("host chain", &data)?;
    println!(
        "  (try: cargo run -p warden-host --bin warden -- audit show --data-dir {})",
        data.display()
    );

    approvals(&repo, &signed_dir, &trust_path, &work.join("daemon")).await
}

/// Tokens of the demo daemon's principals (development only).
const SHOP: &str = "demo-shop-token";
const ANA: &str = "demo-ana-token";
const BEN: &str = "demo-ben-token";
const AGENT: &str = "demo-agent-token";

/// The daemon in-process, `refund` behind approval gates, driven over HTTP.
async fn approvals(
    repo: &std::path::Path,
    signed: &std::path::Path,
    trust: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    use warden_host::server::{self, DaemonConfig, ServeOptions, auth::token_hash};
    println!("\n== approvals: `refund` behind the daemon (policies/refund.toml) ==");
    let payments = doubles::payments(18081).await;
    match &payments {
        Ok(s) => println!("  payments API: {}", s.origin()),
        Err(e) => println!(
            "  payments API: port 18081 unavailable ({e}); refunds will report the failure"
        ),
    }
    std::fs::create_dir_all(dir.join("policies"))?;
    // The model `risk-score` calls, for the order workflow.
    let scorer = doubles::risk_scorer(0).await?;
    println!(
        "  model backend `small` for risk-score: {}",
        scorer.origin()
    );
    for name in [
        "refund",
        "inventory",
        "order-notes",
        "payments",
        "echo",
        "risk-score",
    ] {
        std::fs::copy(
            repo.join("policies").join(format!("{name}.toml")),
            dir.join("policies").join(format!("{name}.toml")),
        )?;
    }
    // The order workflow (examples/workflows/order.toml), routed from kind `order`.
    std::fs::create_dir_all(dir.join("workflows"))?;
    std::fs::copy(
        repo.join("examples/workflows/order.toml"),
        dir.join("workflows/order.toml"),
    )?;
    std::fs::write(
        dir.join("routes.toml"),
        "[[route]]\nid = \"refunds\"\nmatch = { kind = \"refund\" }\ncapability = \"refund\"\nfunction = \"refund\"\n\n\
         [[route]]\nid = \"orders\"\nmatch = { kind = \"order\" }\nworkflow = \"order\"\n",
    )?;
    let principal = |name: &str, token: &str, roles: &str, groups: &str| {
        format!(
            "[[principal]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nroles = {roles}\ngroups = {groups}\n\n",
            token_hash(token)
        )
    };
    std::fs::write(
        dir.join("warden.toml"),
        format!(
            "components_dir = \"{}\"\ntrust = \"{}\"\n\n[models.small]\nendpoint = \"{}\"\nmodel = \"demo-model\"\n\n{}{}{}{}{}",
            signed.display(),
            trust.display(),
            scorer.origin(),
            principal("shop", SHOP, "[\"submit\"]", "[]"),
            principal("ana", ANA, "[\"approve\", \"audit\"]", "[\"finance\"]"),
            principal("ben", BEN, "[\"approve\"]", "[\"finance\"]"),
            principal("agent", AGENT, "[\"submit\"]", "[]"),
            "[mcp]\n[[mcp.tool]]\nname = \"refund\"\nkind = \"refund\"\ntitle = \"Refund an order\"\n\
             description = \"Refund an order; large refunds wait for a human.\"\n",
        ),
    )?;
    let config = DaemonConfig::load(&dir.join("warden.toml"))?;
    let ready = dir.join("ready");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(server::serve_until(
        config,
        ServeOptions {
            listen: Some(([127, 0, 0, 1], 0).into()),
            ready_file: Some(ready.clone()),
        },
        async {
            let _ = stopped.await;
        },
    ));
    let url = loop {
        if let Ok(addr) = std::fs::read_to_string(&ready) {
            break format!("http://{addr}");
        }
        if daemon.is_finished() {
            daemon.await??;
            anyhow::bail!("the daemon stopped before it was ready");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let at = url.clone();
    tokio::task::spawn_blocking(move || refunds(&at)).await??;
    let at = url.clone();
    tokio::task::spawn_blocking(move || agent_session(&at)).await??;
    tokio::task::spawn_blocking(move || orders(&url)).await??;
    let _ = stop.send(());
    daemon.await??;

    println!();
    verify_chain("daemon chain", &dir.join("data"))
}

/// Verifies the chain in `data` with only the host's public key; prints the report.
fn verify_chain(label: &str, data: &std::path::Path) -> anyhow::Result<()> {
    let pubkey = hostkey::read_public_key(&data.join(hostkey::PUBLIC_FILE))?;
    let report = warden_host::store::verify_db(&data.join("warden.db"), Some(&pubkey))?;
    println!(
        "  {label}: {} entries, {} signed checkpoints: {}",
        report.entries_checked,
        report.checkpoints_checked,
        if report.passed(false) {
            "chain verifies"
        } else {
            "CHAIN BROKEN"
        }
    );
    Ok(())
}

/// Four refunds: one runs at once, one needs a single approval, one two
/// distinct approvers (the requester cannot approve), one is denied.
fn refunds(url: &str) -> anyhow::Result<()> {
    use warden_host::server::client::Client;
    let as_ = |token: &str| Client::new(url, Some(token.to_string()));
    let submit = |order: &str, amount: u64, currency: &str| -> anyhow::Result<Value> {
        let r = as_(SHOP)?.post_json(
            "/v1/requests",
            &json!({"kind": "refund", "input": {"order": order, "amount": amount, "currency": currency}}),
        )?;
        let body = r.json();
        println!(
            "\n  shop: refund {order} {}.{:02} {currency} -> {} {}",
            amount / 100,
            amount % 100,
            r.status,
            body["outcome"].as_str().unwrap_or("?")
        );
        if let Some(a) = body.get("approval") {
            println!(
                "        held: {} approval, rule {} ({})",
                a["mode"].as_str().unwrap_or("?"),
                a["rule"],
                a["reason"].as_str().unwrap_or("")
            );
        } else if body["output"].is_object() {
            println!("        receipt: {}", body["output"]["ok"]);
        }
        Ok(body)
    };
    let decide =
        |token: &str, who: &str, id: &str, verb: &str, reason: &str| -> anyhow::Result<Value> {
            let r = as_(token)?.post_json(
                &format!("/v1/approvals/{id}/{verb}"),
                &json!({"reason": reason}),
            )?;
            let body = r.json();
            match body["error"]["code"].as_str() {
                Some(code) => println!("  {who}: {verb} -> {} {code}", r.status),
                None => println!(
                    "  {who}: {verb} -> {} ({}/{} approvals){}",
                    body["state"].as_str().unwrap_or("?"),
                    body["approvals_given"],
                    body["approvals_needed"],
                    body["result"]["output"]["ok"]
                        .as_object()
                        .map(|o| format!(", receipt {}", Value::Object(o.clone())))
                        .unwrap_or_default()
                ),
            }
            Ok(body)
        };
    let id = |v: &Value| v["request_id"].as_str().unwrap_or_default().to_string();

    submit("A-17", 2_500, "EUR")?;
    let single = id(&submit("A-18", 12_000, "EUR")?);
    decide(
        ANA,
        "ana",
        &single,
        "approve",
        "customer returned the parcel",
    )?;
    let dual = id(&submit("B-2", 250_000, "EUR")?);
    decide(
        ANA,
        "ana",
        &dual,
        "approve",
        "matches the signed return form",
    )?;
    decide(ANA, "ana", &dual, "approve", "approving twice")?;
    decide(BEN, "ben", &dual, "approve", "second check done")?;
    let denied = id(&submit("C-9", 8_000, "GBP")?);
    decide(
        BEN,
        "ben",
        &denied,
        "deny",
        "order C-9 was never paid in GBP",
    )?;

    let audit = as_(ANA)?.get("/v1/audit?after=0&limit=1000")?.json();
    println!("\n  audit entries of the dual-approval request {dual}:");
    for e in audit["entries"].as_array().into_iter().flatten() {
        let entry = &e["entry"];
        if entry["request_id"] == dual.as_str() {
            println!(
                "    #{} {:<10} {:<16} by {}",
                e["seq"],
                entry["event"].as_str().unwrap_or("?"),
                entry["outcome"].as_str().unwrap_or("?"),
                entry["principal"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

/// The order workflow (examples/workflows/order.toml) behind the daemon:
/// a small order completes at once; a large one waits for two approvers
/// from finance and is denied, so its reservation and note are
/// compensated; another large one waits and is approved.
fn orders(url: &str) -> anyhow::Result<()> {
    use warden_host::server::client::Client;
    println!(
        "\n== the order workflow: reserve -> risk score (model) -> note -> dual approval above 1000.00 -> charge (pivot) -> confirm =="
    );
    let as_ = |token: &str| Client::new(url, Some(token.to_string()));
    let start = |order: &str, amount: u64| -> anyhow::Result<Value> {
        let r = as_(SHOP)?.post_json(
            "/v1/requests",
            &json!({"kind": "order", "wait": "10s", "input": {"order": order, "sku": "mug",
                     "units": 2, "amount": amount, "currency": "EUR"}}),
        )?;
        let run = r.json()["run"].clone();
        println!(
            "\n  shop: order {order} {}.{:02} EUR -> {} run {} {}",
            amount / 100,
            amount % 100,
            r.status,
            run["run_id"].as_str().unwrap_or("?"),
            run["state"].as_str().unwrap_or("?")
        );
        Ok(run)
    };
    // Polls the run until it leaves `running`/`waiting` (or is waiting with
    // its approval held, when `waiting` is what we wait for).
    let settle = |id: &str, want: &[&str]| -> anyhow::Result<Value> {
        for _ in 0..500 {
            let run = as_(ANA)?.get(&format!("/v1/runs/{id}"))?.json();
            if want.contains(&run["state"].as_str().unwrap_or("")) {
                return Ok(run);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        anyhow::bail!("run {id} never reached {want:?}")
    };
    let steps = |run: &Value| {
        for s in run["steps"].as_array().into_iter().flatten() {
            println!(
                "    step {:<8} {:<12} {}",
                s["step"].as_str().unwrap_or("?"),
                s["state"].as_str().unwrap_or("?"),
                s["output"]
            );
        }
    };
    let decide =
        |token: &str, who: &str, id: &str, verb: &str, reason: &str| -> anyhow::Result<()> {
            let r = as_(token)?.post_json(
                &format!("/v1/approvals/{id}/{verb}"),
                &json!({"reason": reason}),
            )?;
            let body = r.json();
            println!(
                "  {who}: {verb} {id} -> {} ({}/{} approvals)",
                body["state"].as_str().unwrap_or("?"),
                body["approvals_given"],
                body["approvals_needed"]
            );
            Ok(())
        };
    let wait_held = |id: &str| -> anyhow::Result<()> {
        for _ in 0..500 {
            if as_(ANA)?.get(&format!("/v1/approvals/{id}"))?.status == 200 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        anyhow::bail!("approval {id} was never held")
    };

    // 1. Small: no human needed.
    let run = start("O-1", 2_500)?;
    let id = run["run_id"].as_str().unwrap_or_default().to_string();
    let run = settle(&id, &["completed", "compensated", "needs_attention"])?;
    println!("  run {id}: {}", run["state"].as_str().unwrap_or("?"));
    steps(&run);

    // 2. Large, denied: the reservation and the note are compensated.
    let run = start("O-2", 250_000)?;
    let id = run["run_id"].as_str().unwrap_or_default().to_string();
    let gate = format!("{id}.approve");
    wait_held(&gate)?;
    let held = as_(ANA)?.get(&format!("/v1/approvals/{gate}"))?.json();
    println!(
        "  waiting for approvers: approval {gate} (dual, group:finance); they see risk {}",
        held["input"]["steps"]["score"]["level"]
            .as_str()
            .unwrap_or("?")
    );
    decide(
        BEN,
        "ben",
        &gate,
        "deny",
        "customer is over their credit limit",
    )?;
    let run = settle(&id, &["compensated", "needs_attention", "completed"])?;
    println!("  run {id}: {}", run["state"].as_str().unwrap_or("?"));
    steps(&run);
    let audit = as_(ANA)?.get("/v1/audit?after=0&limit=1000")?.json();
    println!("\n  audit entries of run {id}:");
    for e in audit["entries"].as_array().into_iter().flatten() {
        let entry = &e["entry"];
        let rid = entry["request_id"].as_str().unwrap_or("");
        let detail = entry["detail"].as_str().unwrap_or("");
        if rid.starts_with(&id) || detail.contains(&id) {
            let event = serde_json::from_str::<Value>(detail)
                .ok()
                .and_then(|d| d["event"].as_str().map(str::to_string));
            println!(
                "    #{} {:<10} {:<16} {:<28} {}",
                e["seq"],
                entry["event"].as_str().unwrap_or("?"),
                entry["outcome"].as_str().unwrap_or("?"),
                rid.strip_prefix(&id)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("(run)"),
                event.map(|e| format!("[{e}]")).unwrap_or_default()
            );
        }
    }

    // 3. Large, waits for two approvers, then approved.
    let run = start("O-3", 180_000)?;
    let id = run["run_id"].as_str().unwrap_or_default().to_string();
    let gate = format!("{id}.approve");
    wait_held(&gate)?;
    let run = settle(&id, &["waiting"])?;
    println!(
        "  run {id}: {} for approvers: approval {gate} (dual, group:finance)",
        run["state"].as_str().unwrap_or("?")
    );
    decide(ANA, "ana", &gate, "approve", "known customer")?;
    decide(BEN, "ben", &gate, "approve", "stock confirmed")?;
    let run = settle(&id, &["completed", "compensated", "needs_attention"])?;
    println!("  run {id}: {}", run["state"].as_str().unwrap_or("?"));
    steps(&run);
    Ok(())
}

/// An agent's MCP session over streamable HTTP (`/mcp`, protocol
/// 2026-07-28, stateless: every message carries its `_meta`), as the
/// principal `agent`: the tools it may call, a refund that runs, one that
/// is held for a human, and its result once `ana` approved it.
fn agent_session(url: &str) -> anyhow::Result<()> {
    use warden_host::server::client::Client;
    println!("\n== an agent calls `refund` as an MCP tool (POST /mcp, protocol 2026-07-28) ==");
    let agent = Client::new(url, Some(AGENT.to_string()))?;
    let mut id = 0;
    let mut rpc = |method: &str, name: &str, params: Value| -> anyhow::Result<Value> {
        id += 1;
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "demo-agent", "version": "1.0"},
        });
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = agent.send(
            "POST",
            "/mcp",
            Some(body.to_string().as_bytes()),
            &[
                ("Accept", "application/json, text/event-stream"),
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", method),
                ("Mcp-Name", name),
            ],
        )?;
        let answer = r.json();
        match answer.get("result") {
            Some(result) if r.status == 200 => Ok(result.clone()),
            _ => anyhow::bail!("{method}: {} {}", r.status, r.text()),
        }
    };
    let tools = rpc("tools/list", "", json!({}))?;
    for tool in tools["tools"].as_array().into_iter().flatten() {
        println!(
            "  tools/list: {} ({}), annotations {}",
            tool["name"].as_str().unwrap_or("?"),
            tool["description"].as_str().unwrap_or(""),
            tool["annotations"]
        );
    }
    let call = |rpc: &mut dyn FnMut(&str, &str, Value) -> anyhow::Result<Value>,
                order: &str,
                amount: u64|
     -> anyhow::Result<Value> {
        let result = rpc(
            "tools/call",
            "refund",
            json!({"name": "refund", "arguments": {"order": order, "amount": amount, "currency": "EUR"}}),
        )?;
        let text = result["content"][0]["text"].as_str().unwrap_or("");
        println!(
            "\n  agent: tools/call refund {order} {}.{:02} EUR -> {}{}",
            amount / 100,
            amount % 100,
            if result["isError"] == true {
                "tool error: "
            } else {
                ""
            },
            text.lines().next().unwrap_or("")
        );
        Ok(result)
    };
    call(&mut rpc, "D-4", 1_900)?;
    let held = call(&mut rpc, "D-5", 14_000)?;
    let request = held["_meta"]["dev.warden/answer"]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = Client::new(url, Some(ANA.to_string()))?.post_json(
        &format!("/v1/approvals/{request}/approve"),
        &json!({"reason": "agent's refund checked against the return"}),
    )?;
    println!(
        "  ana: approve {request} -> {}",
        r.json()["state"].as_str().unwrap_or("?")
    );
    let uri = format!("warden://requests/{request}?wait=5s");
    let read = rpc("resources/read", &uri, json!({"uri": uri}))?;
    let stored: Value = serde_json::from_str(read["contents"][0]["text"].as_str().unwrap_or("{}"))?;
    println!(
        "  agent: resources/read {uri} -> {} {}",
        stored["status"], stored["response"]["output"]
    );

    let audit = Client::new(url, Some(ANA.to_string()))?
        .get("/v1/audit?after=0&limit=1000")?
        .json();
    println!("\n  audit entries the agent's calls left (request_kind mcp):");
    for e in audit["entries"].as_array().into_iter().flatten() {
        let entry = &e["entry"];
        if entry["request_kind"] == "mcp" {
            // `detail` is canonical JSON text: {"client": "<name>/<version>"}.
            let detail: Value = entry["detail"]
                .as_str()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            println!(
                "    #{} {:<10} {:<16} by {} via {}",
                e["seq"],
                entry["event"].as_str().unwrap_or("?"),
                entry["outcome"].as_str().unwrap_or("?"),
                entry["principal"].as_str().unwrap_or("?"),
                detail["client"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
