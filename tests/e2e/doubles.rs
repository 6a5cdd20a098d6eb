//! Loopback test doubles for the external services capabilities reach:
//! a tiny HTTP/1.1 server (hand-rolled on tokio, no extra crates) with a
//! handler per test, and an OpenAI-compatible chat completions double.
//!
//! Only tokio and serde_json are needed, so the demo can include this file
//! too (`#[path = "../tests/e2e/doubles.rs"] mod doubles;`). Servers listen
//! on 127.0.0.1 with an OS-chosen port (or a fixed one for the demo) and
//! stop when the [`Server`] is dropped.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the double received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, q) = self.target.split_once('?')?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }
}

/// What the double answers.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (Content-Length and Connection are added).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Response {
    /// A 200 with a JSON body.
    pub fn json(v: &Value) -> Response {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(v).unwrap_or_default(),
            delay: Duration::ZERO,
        }
    }

    /// A response with `status` and a text body.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }
}

type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running loopback server; stops when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Starts a server on 127.0.0.1:`port` (0: any free port).
    pub async fn start(
        port: u16,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> std::io::Result<Server> {
        let listener = bind(port).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, handler, seen).await;
                });
            }
        });
        Ok(Server {
            addr,
            requests,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.requests.lock().map_or(0, |r| r.len())
    }

    /// The last request received.
    pub fn last(&self) -> Option<Request> {
        self.requests.lock().ok().and_then(|r| r.last().cloned())
    }
}

/// Binds 127.0.0.1:`port`. A fixed port that the test before held (under
/// the port's lock, `support::FX_PORT`) is free only once that test's
/// runtime drops its server's aborted accept task, which can be just after
/// the lock was released: wait for it, 10 s at most.
async fn bind(port: u16) -> std::io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && port != 0
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            bound => return bound,
        }
    }
}

/// One connection: one request, one response, close.
async fn serve(
    mut conn: TcpStream,
    handler: Handler,
    seen: Arc<Mutex<Vec<Request>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 << 10 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        while rest.len() < len {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            if let Some(body) = dechunk(&rest) {
                break body;
            }
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                break Vec::new();
            }
            rest.extend_from_slice(&chunk[..n]);
        }
    } else {
        Vec::new()
    };
    let request = Request {
        method,
        target,
        headers,
        body,
    };
    let response = handler(&request);
    if let Ok(mut s) = seen.lock() {
        s.push(request);
    }
    if !response.delay.is_zero() {
        tokio::time::sleep(response.delay).await;
    }
    let mut out = format!("HTTP/1.1 {} X\r\n", response.status);
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        response.body.len()
    ));
    conn.write_all(out.as_bytes()).await?;
    conn.write_all(&response.body).await?;
    conn.shutdown().await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A complete chunked body, or `None` if more bytes are needed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// How the chat completions double answers one request.
#[derive(Debug, Clone)]
pub struct CannedCompletion {
    /// `choices[0].message.content`.
    pub content: String,
    /// `usage.prompt_tokens`.
    pub prompt_tokens: u32,
    /// `usage.completion_tokens` (capped at the request's `max_tokens`
    /// unless `ignore_max_tokens`).
    pub completion_tokens: u32,
    /// Report `completion_tokens` even past the request's `max_tokens`
    /// (a backend that overspends).
    pub ignore_max_tokens: bool,
}

/// An OpenAI-compatible `POST /v1/chat/completions` double answering with
/// `reply(request JSON)`; any other path is a 404.
pub async fn chat_completions(
    port: u16,
    reply: impl Fn(&Value) -> CannedCompletion + Send + Sync + 'static,
) -> std::io::Result<Server> {
    Server::start(port, move |req| {
        if req.method != "POST" || req.target != "/v1/chat/completions" {
            return Response::text(404, "not found");
        }
        let body = req.json();
        let canned = reply(&body);
        let max = body
            .get("max_tokens")
            .and_then(Value::as_u64)
            .map_or(u32::MAX, |m| u32::try_from(m).unwrap_or(u32::MAX));
        let (completion, finish) = if canned.ignore_max_tokens || canned.completion_tokens <= max {
            (canned.completion_tokens, "stop")
        } else {
            (max, "length")
        };
        Response::json(&json!({
            "id": "chatcmpl-double",
            "object": "chat.completion",
            "model": body.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": canned.content},
                "finish_reason": finish,
            }],
            "usage": {
                "prompt_tokens": canned.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": canned.prompt_tokens + completion,
            },
        }))
    })
    .await
}

/// A support-ticket classifier double: answers `billing`, `bug`, `account`
/// or `other` by keywords in the last user message (the stand-in for the
/// model `ticket-triage` calls in the demo).
pub async fn ticket_classifier(port: u16) -> std::io::Result<Server> {
    chat_completions(port, |body| {
        let text = body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.last())
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let label =
            if text.contains("invoice") || text.contains("charge") || text.contains("refund") {
                "billing"
            } else if text.contains("crash") || text.contains("error") || text.contains("broken") {
                "bug"
            } else if text.contains("password") || text.contains("login") {
                "account"
            } else {
                "other"
            };
        CannedCompletion {
            content: label.into(),
            prompt_tokens: u32::try_from(text.len() / 4 + 20).unwrap_or(u32::MAX),
            completion_tokens: 1,
            ignore_max_tokens: false,
        }
    })
    .await
}

/// A model double scoring orders for `risk-score`: `low` below an amount
/// of 100000 (minor units) in the prompt, `medium` from there, `high`
/// from 1000000.
pub async fn risk_scorer(port: u16) -> std::io::Result<Server> {
    chat_completions(port, |body| {
        let text = body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.last())
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let amount: u64 = text
            .split_once("amount ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        let level = match amount {
            0..100_000 => "low",
            100_000..1_000_000 => "medium",
            _ => "high",
        };
        CannedCompletion {
            content: level.into(),
            prompt_tokens: u32::try_from(text.len() / 4 + 20).unwrap_or(u32::MAX),
            completion_tokens: 1,
            ignore_max_tokens: false,
        }
    })
    .await
}

/// An exchange-rate API double: `GET /rate?from=EUR&to=USD` answers
/// `{"from","to","rate"}` from a small fixed table (the stand-in for the
/// service `fx-rate` calls in the demo).
pub async fn fx_rates(port: u16) -> std::io::Result<Server> {
    Server::start(port, |req| {
        if req.method != "GET" || !req.target.starts_with("/rate") {
            return Response::text(404, "not found");
        }
        let from = req.query("from").unwrap_or_default().to_ascii_uppercase();
        let to = req.query("to").unwrap_or_default().to_ascii_uppercase();
        let usd = |c: &str| match c {
            "USD" => Some(1.0),
            "EUR" => Some(1.08),
            "GBP" => Some(1.27),
            "JPY" => Some(0.0067),
            "CHF" => Some(1.12),
            _ => None,
        };
        match (usd(&from), usd(&to)) {
            (Some(f), Some(t)) => Response::json(&json!({
                "from": from, "to": to, "rate": ((f / t) * 1e6_f64).round() / 1e6,
            })),
            _ => Response::text(404, "unknown currency"),
        }
    })
    .await
}

/// What a payments double has done, by idempotency key: the effects it
/// applied (refunds issued), every request that arrived, and which orders
/// it stalls. Shared between the double's handler and the test.
#[derive(Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<LedgerState>>,
}

#[derive(Default)]
struct LedgerState {
    /// Key -> (the request's fingerprint, the receipt first answered).
    receipts: std::collections::BTreeMap<String, (String, Value)>,
    /// The key of every effect applied (`None`: sent without a key).
    effects: Vec<Option<String>>,
    /// `(key, order)` of every request that arrived, in order.
    arrivals: Vec<(Option<String>, String)>,
    /// Orders whose first effect is answered only after this long.
    stalls: std::collections::BTreeMap<String, Duration>,
}

impl Ledger {
    fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Effects applied in all.
    pub fn effects(&self) -> usize {
        self.state().effects.len()
    }

    /// Effects applied under idempotency key `key`.
    pub fn effects_for(&self, key: &str) -> usize {
        self.state()
            .effects
            .iter()
            .filter(|k| k.as_deref() == Some(key))
            .count()
    }

    /// Requests that arrived for `order` (repeats included).
    pub fn arrivals_for(&self, order: &str) -> usize {
        self.state()
            .arrivals
            .iter()
            .filter(|(_, o)| o == order)
            .count()
    }

    /// The idempotency keys requests for `order` carried, in order.
    pub fn keys_for(&self, order: &str) -> Vec<Option<String>> {
        self.state()
            .arrivals
            .iter()
            .filter(|(_, o)| o == order)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Answers the first effect for `order` only after `delay` (the effect
    /// is applied at once, as a service that commits before its answer is
    /// lost): a test kills the caller while it waits.
    pub fn stall(&self, order: &str, delay: Duration) {
        self.state().stalls.insert(order.to_string(), delay);
    }
}

/// A payments API double: `POST /refunds` with `{"order","amount","currency"}`
/// answers `201 {"refund_id": "rf-<order>-<amount>", "status": "issued"}`
/// (the stand-in for the service `refund` calls in the demo and tests);
/// `POST /charges` with the same body answers `201 {"charge_id":
/// "ch-<order>-<amount>", "status": "charged"}` (`payments` calls it).
///
/// It honours `Idempotency-Key` as a payments service should: the first
/// request under a key applies the effect and its receipt is kept; a repeat
/// answers that receipt again (`idempotent-replayed: true`) and applies
/// nothing; a repeat with another body is refused `422`. A request without
/// a key is a new effect every time.
pub async fn payments(port: u16) -> std::io::Result<Server> {
    payments_with(port, Ledger::default()).await
}

/// [`payments`] keeping its effects in `ledger`, which the test reads.
pub async fn payments_with(port: u16, ledger: Ledger) -> std::io::Result<Server> {
    Server::start(port, move |req| {
        let charge = match (req.method.as_str(), req.target.as_str()) {
            ("POST", "/refunds") => false,
            ("POST", "/charges") => true,
            _ => return Response::text(404, "not found"),
        };
        let body = req.json();
        let (Some(order), Some(amount)) = (body["order"].as_str(), body["amount"].as_u64()) else {
            return Response::text(400, "order and amount are required");
        };
        let key = req.header("idempotency-key").map(str::to_string);
        let fingerprint = String::from_utf8_lossy(&req.body).into_owned();
        let mut state = ledger.state();
        state.arrivals.push((key.clone(), order.to_string()));
        if let Some(k) = &key
            && let Some((seen, receipt)) = state.receipts.get(k)
        {
            if *seen != fingerprint {
                return Response::text(422, "idempotency key reused with another request");
            }
            let mut r = Response {
                status: 201,
                ..Response::json(receipt)
            };
            r.headers
                .push(("idempotent-replayed".into(), "true".into()));
            return r;
        }
        let receipt = if charge {
            json!({ "charge_id": format!("ch-{order}-{amount}"), "status": "charged" })
        } else {
            json!({ "refund_id": format!("rf-{order}-{amount}"), "status": "issued" })
        };
        state.effects.push(key.clone());
        if let Some(k) = key {
            state.receipts.insert(k, (fingerprint, receipt.clone()));
        }
        Response {
            status: 201,
            delay: state.stalls.remove(order).unwrap_or(Duration::ZERO),
            ..Response::json(&receipt)
        }
    })
    .await
}
