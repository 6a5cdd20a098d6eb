//! `fx-rate`: one GET to the rates service, parsed into a quote.
//!
//! The service origin is fixed at build time ([`SERVICE`]); the policy's
//! allow-list must name exactly it. In the demo and tests the service is a
//! loopback stand-in, named explicitly in `policies/fx-rate.toml` (loopback
//! is only reachable through an allow-list entry that names it).

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:fx-rate/fx-rate",
    generate_all,
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Authority of the rates service (`http` scheme).
pub const SERVICE: &str = "127.0.0.1:18080";

/// Largest response read, in bytes.
const MAX_RESPONSE: usize = 16 << 10;

struct FxRate;

fn currency(code: &str) -> Result<String, String> {
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(format!("`{code}` is not a three-letter currency code"))
    }
}

/// The number after `"rate":` in a small JSON object.
pub fn parse_rate(body: &str) -> Option<f64> {
    let at = body.find("\"rate\"")? + "\"rate\"".len();
    let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok().filter(|r: &f64| r.is_finite() && *r > 0.0)
}

fn get(path: &str) -> Result<(u16, String), String> {
    let req = OutgoingRequest::new(Fields::new());
    req.set_method(&Method::Get).map_err(|()| "method")?;
    req.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
    req.set_authority(Some(SERVICE)).map_err(|()| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let body = req.body().map_err(|()| "body")?;
    let future = outgoing_handler::handle(req, None).map_err(|e| format!("refused: {e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match future.get() {
            Some(r) => break r.map_err(|()| "response taken")?.map_err(|e| format!("{e:?}"))?,
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "consume")?;
    let stream = incoming.stream().map_err(|()| "stream")?;
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(4096) {
            Ok(chunk) => {
                data.extend(chunk);
                if data.len() > MAX_RESPONSE {
                    return Err("response too large".into());
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    Ok((status, String::from_utf8_lossy(&data).into_owned()))
}

impl Guest for FxRate {
    fn rate(base: String, quote: String) -> Result<Quote, String> {
        let (base, quote) = (currency(&base)?, currency(&quote)?);
        let (status, body) = get(&format!("/rate?from={base}&to={quote}"))?;
        if status != 200 {
            return Err(format!("rates service answered {status}"));
        }
        let rate = parse_rate(&body).ok_or("rates service answered without a rate")?;
        Ok(Quote { base, quote, rate })
    }
}

export!(FxRate);
