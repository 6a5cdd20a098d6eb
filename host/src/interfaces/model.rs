//! `warden:host/model`: text generation through a host-configured backend
//! speaking the OpenAI-compatible chat completions protocol.
//!
//! The policy grants model *names* and a per-invocation token budget
//! (input + output, as the provider reports them). Endpoints and API keys
//! are host configuration ([`ModelBackend`]); a guest never sees them.
//!
//! Budget rules: a call is refused (`error::budget-exhausted`) when nothing
//! is left; otherwise its `max_tokens` is clamped to what is left minus a
//! conservative estimate of the input (about four characters per token). If
//! the provider then reports more tokens than were left, the tokens are
//! spent: the guest gets `budget-exhausted` and the invocation ends
//! `budget_exhausted:tokens` whatever the guest does next. Each backend
//! response (or failure) is recorded ([`super::recording`]), so a replay
//! answers the same call without the backend.
//!
//! Owns the model grant ([`ModelGrant`]), the per-invocation state
//! ([`ModelState`]), linking, its budget outcome (`tokens`) and its
//! host-call summaries. Backends ([`ModelBackend`]) are host configuration
//! shared across invocations ([`HostServices`]); it must never let a guest
//! name an endpoint or see a key.

use super::bindings::warden::host::model::{GenerateRequest, GenerateResponse, Host};
use super::bindings::warden::host::types::Error;
use super::calls::{HostCallLog, body_hash};
use super::catalogue::{Entry, GrantKind, Unit, read_settings};
use super::kv::error_status;
use super::recording::{self, Replayed};
use super::{BudgetOverrun, HostInterface, HostServices, net};
use crate::audit::HostCall;
use crate::outcome::Budget;
use crate::units::HumanDuration;
use bytes::Bytes;
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasData, Linker};

const INTERFACE: &str = "warden:host/model";

/// Largest provider response read, in bytes. A broken or hostile backend
/// cannot make the host buffer more.
pub const MAX_RESPONSE_BYTES: u64 = 4 << 20;

/// Most messages in one request, and most bytes of message text: the guest
/// decides the prompt, and this bounds what the host forwards (the token
/// budget bounds the cost).
pub const MAX_MESSAGES: usize = 256;
/// See [`MAX_MESSAGES`].
pub const MAX_PROMPT_BYTES: usize = 1 << 20;

/// Characters per token assumed when estimating a prompt's size before the
/// call (deliberately low, so the estimate errs towards refusing).
const CHARS_PER_TOKEN: usize = 4;

/// `warden:host/model`: which host-configured models, and the token budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelGrant {
    /// Model names (as configured on the host) the capability may call.
    /// Required; any other name is `error::denied`.
    pub models: Vec<String>,
    /// Tokens (input + output, as reported by the provider) one invocation
    /// may use across all its calls. By default 2000.
    #[serde(default = "ModelGrant::default_tokens")]
    pub max_tokens: u32,
}

impl ModelGrant {
    fn default_tokens() -> u32 {
        2000
    }
}

/// `warden:host/model`'s place in the catalogue.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Model,
    names: &[INTERFACE],
    grant,
    default_settings: |_| "{ models = [], max_tokens = 2000 }",
};

/// Reads a model grant; a grant naming no model is refused (no call could
/// ever succeed).
fn grant(id: &str, settings: toml::Value) -> Result<GrantKind, String> {
    let grant: ModelGrant = read_settings(id, settings)?;
    if grant.models.is_empty() {
        return Err(format!(
            "bad settings for `{id}`: `models` is empty, so no call could ever succeed"
        ));
    }
    Ok(GrantKind::Model(grant))
}

/// One model backend in the host configuration (`[models.<name>]` in
/// `warden.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelBackend {
    /// Base URL of an OpenAI-compatible API (`https://api.example.com`);
    /// requests go to `<endpoint>/v1/chat/completions`.
    pub endpoint: String,
    /// The provider's model id sent in requests.
    pub model: String,
    /// Environment variable holding the API key. By default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// File holding the API key (trailing whitespace trimmed). By default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// Per-call time limit. By default 60s. The invocation's `wall_time`
    /// still bounds the total.
    #[serde(default = "ModelBackend::default_timeout")]
    pub timeout: HumanDuration,
}

impl ModelBackend {
    fn default_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }

    /// A backend at `endpoint` with no key and the default timeout.
    pub fn new(endpoint: &str, model: &str) -> ModelBackend {
        ModelBackend {
            endpoint: endpoint.to_string(),
            model: model.to_string(),
            api_key_env: None,
            api_key_file: None,
            timeout: Self::default_timeout(),
        }
    }

    /// The API key, read now (so a rotated key is picked up without a restart).
    fn api_key(&self) -> Result<Option<String>, String> {
        if let Some(var) = &self.api_key_env {
            return std::env::var(var)
                .map(Some)
                .map_err(|_| format!("environment variable {var} is not set"));
        }
        if let Some(file) = &self.api_key_file {
            return std::fs::read_to_string(file)
                .map(|k| Some(k.trim().to_string()))
                .map_err(|e| format!("{}: {e}", file.display()));
        }
        Ok(None)
    }
}

/// One invocation's model grant and token use.
pub struct ModelState {
    grant: ModelGrant,
    services: Arc<HostServices>,
    /// Tokens charged so far (input + output).
    pub(crate) used: u64,
    /// Set when the provider used more tokens than were left: the
    /// invocation ends `budget_exhausted:tokens`.
    pub(crate) overrun: Option<String>,
    /// Set when a call was refused because nothing was left: a failing
    /// invocation is then `budget_exhausted:tokens`.
    pub(crate) refused: Option<String>,
    /// Where backend responses are recorded (or, replaying, answered from).
    recording: recording::Shared,
}

impl ModelState {
    /// Fresh state for one invocation.
    pub fn new(grant: ModelGrant, services: Arc<HostServices>) -> ModelState {
        ModelState {
            grant,
            services,
            used: 0,
            overrun: None,
            refused: None,
            recording: recording::Shared::default(),
        }
    }

    /// Records backend responses in `recording` (or answers from it when
    /// it replays).
    pub fn recorded_in(mut self, recording: recording::Shared) -> ModelState {
        self.recording = recording;
        self
    }

    fn remaining(&self) -> u64 {
        u64::from(self.grant.max_tokens).saturating_sub(self.used)
    }

    async fn generate(&mut self, req: GenerateRequest) -> (Result<GenerateResponse, Error>, Call) {
        let mut call = Call::default();
        let result = self.generate_inner(req, &mut call).await;
        (result, call)
    }

    async fn generate_inner(
        &mut self,
        req: GenerateRequest,
        call: &mut Call,
    ) -> Result<GenerateResponse, Error> {
        if !self.grant.models.contains(&req.model) {
            return Err(Error::Denied(format!(
                "model `{}` is not granted; granted: {}",
                req.model,
                self.grant.models.join(", ")
            )));
        }
        if req.messages.is_empty() {
            return Err(Error::Invalid("model: the message list is empty".into()));
        }
        let prompt_bytes: usize = req
            .messages
            .iter()
            .map(|m| m.content.len() + m.role.len())
            .sum();
        if req.messages.len() > MAX_MESSAGES || prompt_bytes > MAX_PROMPT_BYTES {
            return Err(Error::Invalid(format!(
                "model: at most {MAX_MESSAGES} messages and {MAX_PROMPT_BYTES} bytes of text"
            )));
        }
        if let Some(m) = req
            .messages
            .iter()
            .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
        {
            return Err(Error::Invalid(format!(
                "model: role `{}` is not system, user or assistant",
                m.role
            )));
        }
        let backend = self.services.models.get(&req.model).cloned();
        {
            // A model the host does not configure is an answer from
            // outside too (the host's configuration): recorded, so a
            // replay (which has no backends) answers it the same way.
            let unconfigured = format!("model {} unconfigured", req.model);
            let mut rec = recording::lock(&self.recording);
            let is_unconfigured = if rec.is_replay() {
                rec.next_is(&unconfigured) && rec.replay(&unconfigured).is_some()
            } else if backend.is_none() {
                rec.record(unconfigured, serde_json::Value::Null);
                true
            } else {
                false
            };
            if is_unconfigured {
                return Err(Error::Unavailable(format!(
                    "model `{}` is granted but not configured on this host",
                    req.model
                )));
            }
        }
        let remaining = self.remaining();
        let estimate = (prompt_bytes / CHARS_PER_TOKEN) as u64;
        if remaining == 0 || estimate >= remaining {
            let why = format!(
                "tokens: {remaining} of max_tokens = {} left, the prompt needs about {estimate}",
                self.grant.max_tokens
            );
            self.refused = Some(why.clone());
            return Err(Error::BudgetExhausted(why));
        }
        let left_for_output = remaining - estimate;
        let max_tokens = req
            .max_tokens
            .map_or(left_for_output, |m| u64::from(m).min(left_for_output));
        let messages: Vec<serde_json::Value> = req
            .messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect();
        // What the guest asked for (the backend's model id is host
        // configuration, recorded with the result).
        let asked = serde_json::json!({
            "messages": messages, "max_tokens": max_tokens, "temperature": req.temperature,
        });
        let descriptor = format!(
            "model {} {}",
            req.model,
            crate::digest::Hash256::of_json(&asked)
        );
        let replayed = recording::lock(&self.recording).replay(&descriptor);
        let (backend_model, outcome) = match replayed {
            Some(Replayed::Answer(v)) => {
                let backend_model = v["backend_model"].as_str().unwrap_or("").to_string();
                let outcome = match (v.get("ok").and_then(recording::bytes_of), v["err"].as_str()) {
                    (Some(bytes), _) => Ok(bytes),
                    (None, Some(err)) => Err(err.to_string()),
                    (None, None) => Err("the recorded result is malformed".to_string()),
                };
                (backend_model, Some(outcome))
            }
            Some(Replayed::Diverged) => {
                return Err(Error::Unavailable(format!(
                    "model `{}`: the replay diverged from the recorded calls",
                    req.model
                )));
            }
            None => (
                backend.as_ref().map_or(String::new(), |b| b.model.clone()),
                None,
            ),
        };
        let body = serde_json::json!({
            "model": backend_model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": req.temperature,
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        call.bytes_in = body.len() as u64;
        call.request_sha256 = body_hash(&body);
        call.external = true;
        let outcome = match (outcome, backend) {
            (Some(recorded), _) => recorded,
            (None, Some(backend)) => {
                let key = backend.api_key().map_err(|e| {
                    tracing::error!(model = %req.model, "model API key: {e}");
                    Error::Unavailable(format!("model `{}`: no API key available", req.model))
                })?;
                let timeout = backend.timeout.get();
                let outcome =
                    match tokio::time::timeout(timeout, post(&backend, key, body, &self.services))
                        .await
                    {
                        Err(_) => Err(format!("no answer within {}", backend.timeout)),
                        Ok(r) => r,
                    };
                let recorded = match &outcome {
                    Ok(bytes) => serde_json::json!({
                        "backend_model": backend.model, "ok": recording::hex_bytes(bytes),
                    }),
                    Err(e) => serde_json::json!({ "backend_model": backend.model, "err": e }),
                };
                recording::lock(&self.recording).record(descriptor, recorded);
                outcome
            }
            (None, None) => Err("not configured on this host".to_string()),
        };
        let response = outcome.map_err(|e| {
            tracing::warn!(model = %req.model, "model backend: {e}");
            Error::Unavailable(format!("model `{}`: {e}", req.model))
        })?;
        call.bytes_out = response.len() as u64;
        call.response_sha256 = body_hash(&response);
        let parsed = parse_completion(&response)
            .map_err(|e| Error::Unavailable(format!("model `{}`: {e}", req.model)))?;
        let spent = u64::from(parsed.input_tokens) + u64::from(parsed.output_tokens);
        call.tokens = Some((parsed.input_tokens, parsed.output_tokens));
        self.used = self.used.saturating_add(spent);
        if spent > remaining {
            let why = format!(
                "tokens: the call used {spent} tokens with {remaining} of max_tokens = {} left",
                self.grant.max_tokens
            );
            self.overrun = Some(why.clone());
            return Err(Error::BudgetExhausted(why));
        }
        Ok(parsed)
    }
}

/// What one call adds to its summary beyond the outcome.
#[derive(Default)]
struct Call {
    bytes_in: u64,
    bytes_out: u64,
    request_sha256: Option<crate::digest::Hash256>,
    response_sha256: Option<crate::digest::Hash256>,
    tokens: Option<(u32, u32)>,
    external: bool,
}

/// POSTs `body` to `<endpoint>/v1/chat/completions`; the response body on 2xx.
async fn post(
    backend: &ModelBackend,
    key: Option<String>,
    body: Vec<u8>,
    services: &HostServices,
) -> Result<Vec<u8>, String> {
    let base: http::Uri = backend
        .endpoint
        .parse()
        .map_err(|e| format!("endpoint `{}`: {e}", backend.endpoint))?;
    let https = match base.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(format!(
                "endpoint `{}` must be http(s)://",
                backend.endpoint
            ));
        }
    };
    let host = base
        .host()
        .ok_or_else(|| format!("endpoint `{}` has no host", backend.endpoint))?;
    let port = base.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = format!("{}/v1/chat/completions", base.path().trim_end_matches('/'));
    let addrs = net::resolve(host, port, &services.hosts)
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?;
    let stream = net::connect(&addrs, https.then_some(host))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let authority = base
        .authority()
        .map_or_else(|| host.to_string(), |a| a.to_string());
    let mut request = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json");
    if let Some(key) = key {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = net::send(stream, request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = net::read_limited(response.into_body(), MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            net::ReadError::TooLarge => format!("response over {MAX_RESPONSE_BYTES} bytes"),
            net::ReadError::Io(e) => format!("reading the response: {e}"),
        })?;
    if !status.is_success() {
        return Err(format!("backend answered HTTP {}", status.as_u16()));
    }
    Ok(body)
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    usage: CompletionUsage,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct CompletionUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// Reads `choices[0].message.content`, `choices[0].finish_reason` and
/// `usage`. A response without usage is refused: the budget cannot be
/// charged without it.
fn parse_completion(body: &[u8]) -> Result<GenerateResponse, String> {
    let c: Completion = serde_json::from_slice(body)
        .map_err(|e| format!("unexpected response from the backend: {e}"))?;
    let first = c
        .choices
        .into_iter()
        .next()
        .ok_or("the backend returned no choices")?;
    Ok(GenerateResponse {
        content: first.message.content.unwrap_or_default(),
        input_tokens: c.usage.prompt_tokens,
        output_tokens: c.usage.completion_tokens,
        finish_reason: first.finish_reason.unwrap_or_else(|| "unknown".into()),
    })
}

/// The borrowed state a model call works on.
pub struct ModelView<'a> {
    /// The invocation's model state (`None` only if not granted, in which
    /// case the interface is not linked either).
    pub model: Option<&'a mut ModelState>,
    /// Where the call is summarised.
    pub calls: &'a mut HostCallLog,
}

impl Host for ModelView<'_> {
    async fn generate(&mut self, req: GenerateRequest) -> Result<GenerateResponse, Error> {
        let target = req.model.clone();
        let Some(state) = self.model.as_deref_mut() else {
            return Err(Error::Denied("model is not granted".into()));
        };
        let (result, call) = state.generate(req).await;
        if call.external {
            self.calls.mark_external();
        }
        let mut status = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => error_status(e).to_string(),
        };
        if let Some((i, o)) = call.tokens {
            status.push_str(&format!(" tokens={i}+{o}"));
        }
        self.calls.record(HostCall {
            interface: INTERFACE.into(),
            target,
            bytes_in: call.bytes_in,
            bytes_out: call.bytes_out,
            status,
            request_sha256: call.request_sha256,
            response_sha256: call.response_sha256,
        });
        result
    }
}

struct HasModel;

impl HasData for HasModel {
    type Data<'a> = ModelView<'a>;
}

/// Links `warden:host/model` into `linker`; `get` borrows the invocation's
/// [`ModelView`] from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> ModelView<'_>,
) -> wasmtime::Result<()> {
    super::bindings::warden::host::model::add_to_linker::<T, HasModel>(linker, get)
}

/// Tokens spent past `max_tokens` end the invocation
/// `budget_exhausted:tokens`; a call refused because nothing was left names
/// the outcome of a failing invocation. Calls are summarised as they are
/// made.
impl HostInterface for ModelState {
    fn overrun(&self) -> Option<BudgetOverrun> {
        self.overrun.as_ref().map(|why| BudgetOverrun {
            budget: Budget::Tokens,
            why: why.clone(),
        })
    }

    fn refused(&self) -> Option<BudgetOverrun> {
        self.refused.as_ref().map(|why| BudgetOverrun {
            budget: Budget::Tokens,
            why: why.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_are_parsed_with_usage() {
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"bug"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}"#;
        let r = parse_completion(body).expect("parses");
        assert_eq!(r.content, "bug");
        assert_eq!((r.input_tokens, r.output_tokens), (12, 1));
        assert_eq!(r.finish_reason, "stop");
    }

    #[test]
    fn completions_without_usage_are_refused() {
        let body = br#"{"choices":[{"message":{"content":"x"}}]}"#;
        assert!(parse_completion(body).is_err());
    }

    #[test]
    fn backend_config_refuses_unknown_fields() {
        let ok: Result<ModelBackend, _> =
            toml::from_str("endpoint = \"http://127.0.0.1:9\"\nmodel = \"m\"\napi_key_env = \"K\"");
        assert!(ok.is_ok());
        let bad: Result<ModelBackend, _> =
            toml::from_str("endpoint = \"http://x\"\nmodel = \"m\"\napi_key = \"sk-...\"");
        assert!(bad.is_err(), "keys never go in config directly");
    }
}
