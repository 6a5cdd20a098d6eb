//! `wasi:http/outgoing-handler` with an allow-list (wasmtime-wasi-http,
//! with warden's own `send_request` hook).
//!
//! Every request is checked *before any connection is made*:
//!
//! 1. the per-invocation request count (`max_requests`);
//! 2. the requested origin (`scheme://host:port`) against the grant's
//!    allow-list ([`OriginPattern::matches`]);
//! 3. the host name is resolved once (host static table, then DNS) and every
//!    resolved address must be allowed by the matching pattern
//!    ([`OriginPattern::allows_address`]: internal ranges only when the
//!    pattern names them); the connection goes to exactly those addresses.
//!
//! A refusal is an HTTP error code for the guest (`HTTP-request-denied`,
//! `destination-IP-prohibited`, ...), never a trap. Redirects are never
//! followed by the host: a 3xx goes back to the guest, and a request to its
//! `Location` is checked like any other. Request and response body bytes
//! are counted across the invocation; past a limit the body fails with a
//! size error code. Crossing any HTTP limit ends the invocation
//! `budget_exhausted:http`.
//!
//! Owns the HTTP grant ([`HttpGrant`]), the per-invocation state
//! ([`HttpState`]: wasmtime-wasi-http's context and warden's hooks),
//! linking, its budget outcome (`http`) and its host-call summaries. Policy
//! *evaluation* (does an origin or address match a pattern) is pure and
//! lives in `interfaces::egress`; this module enforces it and must never
//! connect before the checks pass.

use super::calls::HostCallLog;
use super::catalogue::{Entry, GrantKind, Unit, no_settings, read_settings};
use super::egress::{Origin, OriginPattern};
use super::recording::{self, Replayed};
use super::{BudgetOverrun, HostInterface, HostServices, net};
use crate::audit::HostCall;
use crate::digest::Hash256;
use crate::outcome::Budget;
use crate::units::{ByteSize, HumanDuration};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttp, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
};

const INTERFACE: &str = "wasi:http/outgoing-handler";

/// `wasi:http/outgoing-handler`: where requests may go, and per-invocation limits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Origins (`scheme://host[:port]`, `*.domain` wildcards) requests may
    /// go to. Required; everything else is refused before connecting.
    pub allow: Vec<OriginPattern>,
    /// Requests per invocation. By default 10.
    #[serde(default = "HttpGrant::default_requests")]
    pub max_requests: u32,
    /// Request body bytes per invocation (all requests). By default 1MiB.
    #[serde(default = "HttpGrant::default_request_bytes")]
    pub max_request_bytes: ByteSize,
    /// Response body bytes per invocation (all responses). By default 1MiB.
    #[serde(default = "HttpGrant::default_response_bytes")]
    pub max_response_bytes: ByteSize,
    /// Per-request time limit: connect, headers and body. By default 10s.
    /// The invocation's `wall_time` still bounds the total.
    #[serde(default = "HttpGrant::default_timeout")]
    pub timeout: HumanDuration,
}

impl HttpGrant {
    fn default_requests() -> u32 {
        10
    }
    fn default_request_bytes() -> ByteSize {
        ByteSize(1 << 20)
    }
    fn default_response_bytes() -> ByteSize {
        ByteSize(1 << 20)
    }
    fn default_timeout() -> HumanDuration {
        HumanDuration(std::time::Duration::from_secs(10))
    }
}

/// `wasi:http/types` (authority-free: building requests does nothing).
const TYPES: &str = "wasi:http/types";

/// `wasi:http`'s place in the catalogue.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Http,
    names: &[TYPES, INTERFACE],
    grant,
    default_settings: |id| match id {
        INTERFACE => "{ allow = [], max_requests = 10 }",
        _ => "{}",
    },
};

/// Reads an HTTP grant; an empty allow-list is refused (every request
/// would be).
fn grant(id: &str, settings: toml::Value) -> Result<GrantKind, String> {
    if id == TYPES {
        return no_settings(id, settings);
    }
    let grant: HttpGrant = read_settings(id, settings)?;
    if grant.allow.is_empty() {
        return Err(format!(
            "bad settings for `{id}`: `allow` is empty, so every request would be refused"
        ));
    }
    Ok(GrantKind::Http(grant))
}

/// Most bytes of names and values one `wasi:http` `fields` (a header block
/// the guest builds) may hold; an `append`/`set` past it traps the guest
/// (`wasi:http@0.2` has no error case for it). wasmtime-wasi-http's default
/// is 128 KiB.
pub const MAX_HTTP_FIELDS_BYTES: usize = 16 << 10;

/// One invocation's `wasi:http` state: wasmtime-wasi-http's context and
/// warden's egress hooks, built the first time the guest uses `wasi:http`
/// (most invocations never do, and then pay for neither).
pub struct HttpState {
    /// What the context and hooks are built from.
    grant: Option<HttpGrant>,
    services: Arc<HostServices>,
    recording: recording::Shared,
    /// The context and hooks, once the guest has used `wasi:http`.
    live: Option<Box<(WasiHttpCtx, EgressHooks)>>,
}

impl HttpState {
    /// The state of one invocation; `grant` is `None` when outbound HTTP is
    /// not granted.
    pub(crate) fn new(
        grant: Option<HttpGrant>,
        services: Arc<HostServices>,
        recording: recording::Shared,
    ) -> HttpState {
        HttpState {
            grant,
            services,
            recording,
            live: None,
        }
    }

    /// The view wasmtime-wasi-http's calls work on.
    pub fn view<'a>(
        &'a mut self,
        table: &'a mut wasmtime::component::ResourceTable,
    ) -> WasiHttpCtxView<'a> {
        let HttpState {
            grant,
            services,
            recording,
            live,
        } = self;
        let (ctx, hooks) = &mut **live.get_or_insert_with(|| {
            let mut ctx = WasiHttpCtx::new();
            ctx.set_field_size_limit(MAX_HTTP_FIELDS_BYTES);
            let mut hooks = EgressHooks::new(grant.take(), services.clone());
            hooks.recording = recording.clone();
            Box::new((ctx, hooks))
        });
        WasiHttpCtxView { ctx, table, hooks }
    }
}

/// Links the `wasi:http` interface `id` (one of [`ENTRY`]'s names); `get`
/// borrows the invocation's view from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    l: &mut Linker<T>,
    id: &str,
    get: fn(&mut T) -> WasiHttpCtxView<'_>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi_http::p2::bindings::{LinkOptions, http};
    match id {
        INTERFACE => http::outgoing_handler::add_to_linker::<T, WasiHttp>(l, get),
        _ => {
            let options = LinkOptions::default();
            http::types::add_to_linker::<T, WasiHttp>(l, &options.into(), get)
        }
    }
}

/// Any HTTP limit crossed ends the invocation `budget_exhausted:http`.
/// Summaries are completed as bodies finish (bodies may outlive the call),
/// so they are handed over once the invocation has ended.
impl HostInterface for HttpState {
    fn overrun(&self) -> Option<BudgetOverrun> {
        let (_, hooks) = &**self.live.as_ref()?;
        let why = hooks.log.lock().map_or(None, |l| l.exhausted.clone())?;
        Some(BudgetOverrun {
            budget: Budget::Http,
            why,
        })
    }

    fn summarise(&mut self, calls: &mut HostCallLog) {
        let Some(live) = &self.live else {
            return;
        };
        let egress = std::mem::take(&mut *live.1.log.lock().unwrap_or_else(|p| p.into_inner()));
        for c in egress.calls {
            calls.record(c);
        }
        if egress.external {
            calls.mark_external();
        }
    }
}

/// Counters and summaries shared between the hook and the bodies it wraps
/// (which outlive the hook call).
#[derive(Debug, Default)]
pub struct EgressLog {
    requests: u32,
    request_bytes: u64,
    response_bytes: u64,
    /// Why an HTTP limit was crossed, if one was.
    exhausted: Option<String>,
    /// Whether any request left the host.
    external: bool,
    /// One summary per request, completed as its bodies finish.
    calls: Vec<HostCall>,
}

type Shared = Arc<Mutex<EgressLog>>;

fn with<R>(shared: &Shared, f: impl FnOnce(&mut EgressLog) -> R) -> R {
    let mut log = shared.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut log)
}

/// The per-invocation `WasiHttpHooks`: the grant and the shared log.
pub struct EgressHooks {
    grant: Option<HttpGrant>,
    services: Arc<HostServices>,
    /// Shared with in-flight bodies.
    log: Shared,
    /// Where responses are recorded (or, replaying, answered from).
    recording: recording::Shared,
}

impl EgressHooks {
    /// Hooks for one invocation; `grant` is `None` when HTTP is not granted
    /// (then every request is refused; the handler is not linked anyway).
    pub fn new(grant: Option<HttpGrant>, services: Arc<HostServices>) -> EgressHooks {
        EgressHooks {
            grant,
            services,
            log: Shared::default(),
            recording: recording::Shared::default(),
        }
    }

    /// Records a refused request and returns the error the guest sees.
    fn refuse(&self, target: String, status: &str, error: Error) -> Error {
        tracing::info!(target = %target, status, "outbound HTTP refused");
        with(&self.log, |l| {
            l.calls
                .push(super::calls::summary(INTERFACE, target, status))
        });
        error
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        match self.admit(&request) {
            Ok((grant, pattern, origin)) => {
                let log = self.log.clone();
                let services = self.services.clone();
                let recording = self.recording.clone();
                Box::new(send(
                    request, options, grant, pattern, origin, log, services, recording,
                ))
            }
            Err(e) => Box::new(async move { Err(e) }),
        }
    }
}

impl EgressHooks {
    /// The synchronous checks: count and allow-list. Nothing is resolved
    /// or connected unless they pass.
    fn admit(
        &mut self,
        request: &http::Request<WasiBody>,
    ) -> Result<(HttpGrant, OriginPattern, Origin), Error> {
        let uri = request.uri();
        let target = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let Some(grant) = self.grant.clone() else {
            return Err(self.refuse(target, "denied", Error::HttpRequestDenied));
        };
        let over = with(&self.log, |l| {
            l.requests = l.requests.saturating_add(1);
            if l.requests > grant.max_requests {
                let why = format!("http: more than max_requests = {}", grant.max_requests);
                l.exhausted.get_or_insert(why);
                true
            } else {
                false
            }
        });
        if over {
            return Err(self.refuse(target, "budget_exhausted", Error::ConnectionLimitReached));
        }
        let origin = match Origin::from_parts(
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str()),
        ) {
            Ok(o) => o,
            Err(_) => return Err(self.refuse(target, "denied", Error::HttpRequestDenied)),
        };
        let Some(pattern) = grant.allow.iter().find(|p| p.matches(&origin)).cloned() else {
            return Err(self.refuse(origin.to_string(), "denied", Error::HttpRequestDenied));
        };
        Ok((grant, pattern, origin))
    }
}

/// Resolves, checks addresses, connects, sends, wraps the response body;
/// records what came back (or, replaying, answers from the recording).
#[allow(clippy::too_many_arguments)]
async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    grant: HttpGrant,
    pattern: OriginPattern,
    origin: Origin,
    log: Shared,
    services: Arc<HostServices>,
    recording: recording::Shared,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let target = origin.to_string();
    let slot = with(&log, |l| {
        l.calls
            .push(super::calls::summary(INTERFACE, target.clone(), "pending"));
        l.calls.len() - 1
    });
    let set_status = |status: &str| {
        with(&log, |l| {
            if let Some(c) = l.calls.get_mut(slot) {
                c.status = status.to_string();
            }
        })
    };
    let descriptor = format!(
        "http {} {target} {}",
        request.method(),
        crate::digest::Hash256::of(
            request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes()
        )
    );
    let replayed = recording::lock(&recording).replay(&descriptor);
    let recorded = match replayed {
        Some(Replayed::Diverged) => {
            set_status("diverged");
            return Err(Error::InternalError(Some(
                "the replay diverged from the recorded calls".into(),
            )));
        }
        Some(Replayed::Answer(v)) => Some(v),
        None => None,
    };
    let rslot = recording::lock(&recording).reserve();
    let record_err = |kind: &str, detail: String| {
        if let Some(rslot) = rslot {
            recording::lock(&recording).fill(
                rslot,
                descriptor.clone(),
                serde_json::json!({"err": {"kind": kind, "detail": detail}}),
            );
        }
    };
    if let Some(recorded) = recorded {
        return replay_response(recorded, request, grant, log, slot).await;
    }
    let addrs = match net::resolve(&origin.host, origin.port, &services.hosts).await {
        Ok(a) => a,
        Err(e) => {
            set_status("dns_error");
            tracing::info!(target = %target, "resolving failed: {e}");
            record_err("dns_error", e.to_string());
            return Err(Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            });
        }
    };
    if let Some(bad) = addrs.iter().find(|a| !pattern.allows_address(a.ip())) {
        set_status("denied");
        tracing::warn!(
            target = %target,
            address = %bad.ip(),
            "outbound HTTP refused: the name resolved to an internal address the allow-list does not name"
        );
        record_err("destination_ip_prohibited", String::new());
        return Err(Error::DestinationIpProhibited);
    }
    let timeout = per_request_timeout(&grant, options);
    // Policy durations are at most 100 years, but never panic on a clock edge.
    let now = tokio::time::Instant::now();
    let deadline = now
        .checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(86_400 * 365));
    let limit = grant.max_request_bytes.bytes();
    let used = with(&log, |l| l.request_bytes);
    let metered_request = MeteredBody::new(
        std::mem::replace(request.body_mut(), empty_body()),
        log.clone(),
        slot,
        Direction::Request,
        limit.saturating_sub(used),
        deadline,
    );
    // Only path and query go on the wire (no proxy form).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let (mut parts, _) = request.into_parts();
    parts.uri = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    let request = http::Request::from_parts(parts, metered_request);
    with(&log, |l| l.external = true);
    let sent = tokio::time::timeout_at(deadline, async {
        let stream = net::connect(&addrs, (origin.scheme == "https").then_some(&origin.host))
            .await
            .map_err(|e| {
                if origin.scheme == "https" {
                    Error::Tls(e)
                } else {
                    Error::Connect(e)
                }
            })?;
        net::send(stream, request).await.map_err(Error::from)
    })
    .await;
    let response = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let exhausted = with(&log, |l| l.exhausted.is_some());
            set_status(if exhausted {
                "budget_exhausted"
            } else {
                "error"
            });
            if exhausted {
                record_err("request_body_over", String::new());
            } else {
                // The guest sees a transport error replay cannot reproduce
                // exactly (its variant carries the OS's error).
                record_err("transport", format!("{e:?}"));
                recording::lock(&recording).not_replayable(format!(
                    "an outbound HTTP request to {target} failed in transport ({e}); \
                     transport errors are not reproduced by replay"
                ));
            }
            return Err(if exhausted {
                Error::HttpRequestBodySize(Some(limit))
            } else {
                e
            });
        }
        Err(_) => {
            record_err("timeout", String::new());
            set_status("timeout");
            with(&log, |l| {
                l.exhausted.get_or_insert(format!(
                    "http: a request took longer than timeout = {}",
                    grant.timeout
                ));
            });
            return Err(Error::ConnectionTimeout);
        }
    };
    set_status(response.status().as_str());
    let used = with(&log, |l| l.response_bytes);
    let (parts, body) = response.into_parts();
    let mut body = MeteredBody::new(
        body.map_err(Error::from).boxed_unsync(),
        log.clone(),
        slot,
        Direction::Response {
            max: grant.max_response_bytes.bytes(),
        },
        grant.max_response_bytes.bytes().saturating_sub(used),
        deadline,
    );
    if let Some(rslot) = rslot {
        let headers: Vec<serde_json::Value> = parts
            .headers
            .iter()
            .map(|(k, v)| serde_json::json!([k.as_str(), recording::hex_bytes(v.as_bytes())]))
            .collect();
        body.tape = Some(Tape {
            recording: recording.clone(),
            slot: rslot,
            descriptor,
            status: parts.status.as_u16(),
            headers,
            chunks: Vec::new(),
            overflow: None,
        });
    }
    let response = http::Response::from_parts(parts, body.boxed_unsync());
    Ok((response, Box::new(async { Ok(()) })))
}

/// A replayed request: the guest's request body is consumed and metered
/// as if sent, then the recorded response (or error) is handed back,
/// metered like a live one, in the chunks it arrived in.
async fn replay_response(
    recorded: serde_json::Value,
    mut request: http::Request<WasiBody>,
    grant: HttpGrant,
    log: Shared,
    slot: usize,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let set_status = |status: &str| {
        with(&log, |l| {
            if let Some(c) = l.calls.get_mut(slot) {
                c.status = status.to_string();
            }
        })
    };
    let malformed = || Error::InternalError(Some("the recorded HTTP result is malformed".into()));
    if let Some(err) = recorded.get("err") {
        let detail = err["detail"].as_str().unwrap_or("").to_string();
        return Err(match err["kind"].as_str().unwrap_or("") {
            "dns_error" => {
                set_status("dns_error");
                Error::DnsError {
                    rcode: Some(detail),
                    info_code: None,
                }
            }
            "destination_ip_prohibited" => {
                set_status("denied");
                Error::DestinationIpProhibited
            }
            "timeout" => {
                set_status("timeout");
                with(&log, |l| {
                    l.exhausted.get_or_insert(format!(
                        "http: a request took longer than timeout = {}",
                        grant.timeout
                    ));
                });
                Error::ConnectionTimeout
            }
            "request_body_over" => {
                // Re-metering the request body below reproduces it.
                drain_request(&mut request, &grant, &log, slot).await?;
                set_status("budget_exhausted");
                Error::HttpRequestBodySize(Some(grant.max_request_bytes.bytes()))
            }
            _ => {
                set_status("error");
                Error::InternalError(Some(detail))
            }
        });
    }
    let ok = recorded.get("ok").ok_or_else(malformed)?;
    let limit = grant.max_request_bytes.bytes();
    if let Err(e) = drain_request(&mut request, &grant, &log, slot).await {
        set_status("budget_exhausted");
        let _ = e;
        return Err(Error::HttpRequestBodySize(Some(limit)));
    }
    let status = ok["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .ok_or_else(malformed)?;
    let mut builder = http::Response::builder().status(status);
    for h in ok["headers"].as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (h[0].as_str(), recording::bytes_of(&h[1])) else {
            return Err(malformed());
        };
        builder = builder.header(name, value);
    }
    let mut chunks = std::collections::VecDeque::new();
    for c in ok["chunks"].as_array().into_iter().flatten() {
        chunks.push_back(Bytes::from(recording::bytes_of(c).ok_or_else(malformed)?));
    }
    if let Some(n) = ok["overflow"].as_u64() {
        // The chunk that crossed the response limit was not kept; one of
        // the same size crosses it again (the grant bounds it).
        let n =
            usize::try_from(n.min(grant.max_response_bytes.bytes().saturating_add(1))).unwrap_or(0);
        chunks.push_back(Bytes::from(vec![0u8; n]));
    }
    set_status(status.as_str());
    let body = ReplayedBody { chunks }.boxed_unsync();
    let used = with(&log, |l| l.response_bytes);
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let body = MeteredBody::new(
        body,
        log.clone(),
        slot,
        Direction::Response {
            max: grant.max_response_bytes.bytes(),
        },
        grant.max_response_bytes.bytes().saturating_sub(used),
        far,
    );
    let response = builder.body(body.boxed_unsync()).map_err(|_| malformed())?;
    Ok((response, Box::new(async { Ok(()) })))
}

/// A recorded response body, handed out in the chunks it arrived in.
struct ReplayedBody {
    chunks: std::collections::VecDeque<Bytes>,
}

impl Body for ReplayedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Consumes the guest's request body through the request meter (what
/// sending it would have done).
async fn drain_request(
    request: &mut http::Request<WasiBody>,
    grant: &HttpGrant,
    log: &Shared,
    slot: usize,
) -> Result<(), Error> {
    let limit = grant.max_request_bytes.bytes();
    let used = with(log, |l| l.request_bytes);
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut body = MeteredBody::new(
        std::mem::replace(request.body_mut(), empty_body()),
        log.clone(),
        slot,
        Direction::Request,
        limit.saturating_sub(used),
        far,
    );
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(())
}

fn per_request_timeout(grant: &HttpGrant, options: Option<RequestOptions>) -> Duration {
    // The guest may ask for less time, never more.
    let asked = options.and_then(|o| {
        [o.connect_timeout, o.first_byte_timeout]
            .into_iter()
            .flatten()
            .min()
    });
    asked.map_or(grant.timeout.get(), |a| a.min(grant.timeout.get()))
}

fn empty_body() -> WasiBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[derive(Clone, Copy)]
enum Direction {
    Request,
    Response { max: u64 },
}

/// A body that counts its bytes against what is left of the invocation's
/// budget, hashes them, enforces the per-request deadline, and completes
/// the request's summary when it ends.
struct MeteredBody {
    inner: WasiBody,
    log: Shared,
    slot: usize,
    direction: Direction,
    left: u64,
    seen: u64,
    hasher: Option<Sha256>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Recording a live response: what the guest was handed, as it was.
    tape: Option<Tape>,
}

/// A live response being recorded: status, headers, and the body in the
/// chunks it arrived in (bounded by the grant's `max_response_bytes`: a
/// chunk over it is not kept, only its size).
struct Tape {
    recording: recording::Shared,
    slot: usize,
    descriptor: String,
    status: u16,
    headers: Vec<serde_json::Value>,
    chunks: Vec<serde_json::Value>,
    overflow: Option<u64>,
}

impl Tape {
    fn fill(self) {
        let mut ok = serde_json::json!({
            "status": self.status, "headers": self.headers, "chunks": self.chunks,
        });
        if let Some(n) = self.overflow {
            ok["overflow"] = n.into();
        }
        recording::lock(&self.recording).fill(
            self.slot,
            self.descriptor,
            serde_json::json!({ "ok": ok }),
        );
    }
}

impl MeteredBody {
    fn new(
        inner: WasiBody,
        log: Shared,
        slot: usize,
        direction: Direction,
        left: u64,
        deadline: tokio::time::Instant,
    ) -> MeteredBody {
        MeteredBody {
            inner,
            log,
            slot,
            direction,
            left,
            seen: 0,
            hasher: Some(Sha256::new()),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            tape: None,
        }
    }

    fn finish(&mut self) {
        if let Some(tape) = self.tape.take() {
            tape.fill();
        }
        let Some(hasher) = self.hasher.take() else {
            return;
        };
        let hash = (self.seen > 0).then(|| Hash256(hasher.finalize().into()));
        let (seen, slot, direction) = (self.seen, self.slot, self.direction);
        with(&self.log, |l| {
            if let Some(c) = l.calls.get_mut(slot) {
                match direction {
                    Direction::Request => {
                        c.bytes_in = seen;
                        c.request_sha256 = hash;
                    }
                    Direction::Response { .. } => {
                        c.bytes_out = seen;
                        c.response_sha256 = hash;
                    }
                }
            }
        });
    }

    fn over(&mut self) -> Error {
        let direction = self.direction;
        let slot = self.slot;
        with(&self.log, |l| {
            let why = match direction {
                Direction::Request => "http: request bodies over max_request_bytes".to_string(),
                Direction::Response { max } => {
                    format!("http: response bodies over max_response_bytes = {max} bytes")
                }
            };
            l.exhausted.get_or_insert(why);
            if let Some(c) = l.calls.get_mut(slot) {
                c.status = "budget_exhausted".into();
            }
        });
        self.finish();
        match direction {
            Direction::Request => Error::HttpRequestBodySize(Some(self.seen)),
            Direction::Response { max } => Error::HttpResponseBodySize(Some(max)),
        }
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if this.seen + n > this.left {
                        if let Some(tape) = this.tape.as_mut() {
                            tape.overflow = Some(n);
                        }
                        return Poll::Ready(Some(Err(this.over())));
                    }
                    this.seen += n;
                    if let Some(h) = this.hasher.as_mut() {
                        h.update(data);
                    }
                    if let Some(tape) = this.tape.as_mut() {
                        tape.chunks.push(recording::hex_bytes(data));
                    }
                    let counter = this.direction;
                    with(&this.log, |l| match counter {
                        Direction::Request => l.request_bytes += n,
                        Direction::Response { .. } => l.response_bytes += n,
                    });
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    with(&this.log, |l| {
                        l.exhausted
                            .get_or_insert("http: a request body took longer than timeout".into());
                    });
                    this.finish();
                    return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        self.finish();
    }
}
