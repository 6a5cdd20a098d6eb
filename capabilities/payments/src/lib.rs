//! `payments`: one POST to the payments service per charge, answered with
//! the service's charge id.
//!
//! The service origin is fixed at build time ([`SERVICE`]); the policy's
//! allow-list must name exactly it. In the demo and tests the service is a
//! loopback stand-in, named explicitly in `policies/payments.toml`. The
//! invocation's idempotency key (`warden:host/invocation`; in a workflow
//! `<run>.<step>`) goes with the charge as `Idempotency-Key`, so a step
//! re-run after a crash charges once.

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:payments/payments",
    generate_all,
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Authority of the payments service (`http` scheme).
pub const SERVICE: &str = "127.0.0.1:18081";

/// Largest response read, in bytes.
const MAX_RESPONSE: usize = 16 << 10;

struct Payments;

/// The string value of `"key":"..."` in a small flat JSON object.
pub fn string_field(body: &str, key: &str) -> Option<String> {
    let tag = format!("\"{key}\"");
    let at = body.find(&tag)? + tag.len();
    let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

fn valid_order(order: &str) -> bool {
    !order.is_empty()
        && order.len() <= 64
        && order
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn post(path: &str, body: &[u8], idempotency_key: &str) -> Result<(u16, String), String> {
    let headers = Fields::new();
    headers
        .append("content-type", b"application/json")
        .map_err(|e| format!("{e:?}"))?;
    headers
        .append("idempotency-key", idempotency_key.as_bytes())
        .map_err(|e| format!("idempotency key: {e:?}"))?;
    let req = OutgoingRequest::new(headers);
    req.set_method(&Method::Post).map_err(|()| "method")?;
    req.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
    req.set_authority(Some(SERVICE)).map_err(|()| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let out = req.body().map_err(|()| "body")?;
    let future = outgoing_handler::handle(req, None).map_err(|e| format!("refused: {e:?}"))?;
    {
        let stream = out.write().map_err(|()| "body stream")?;
        stream
            .blocking_write_and_flush(body)
            .map_err(|e| format!("{e:?}"))?;
    }
    OutgoingBody::finish(out, None).map_err(|e| format!("{e:?}"))?;
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

impl Guest for Payments {
    fn charge(order: String, amount: u64, currency: String) -> Result<Charge, String> {
        if !valid_order(&order) {
            return Err(format!("`{order}` is not an order id (1-64 of A-Z a-z 0-9 - _)"));
        }
        if amount == 0 {
            return Err("a charge of 0 is not a charge".into());
        }
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!("`{currency}` is not a three-letter currency code"));
        }
        let currency = currency.to_ascii_uppercase();
        let body = format!(r#"{{"order":"{order}","amount":{amount},"currency":"{currency}"}}"#);
        let key = warden::host::invocation::idempotency_key();
        let (status, answer) = post("/charges", body.as_bytes(), &key)?;
        if status != 200 && status != 201 {
            return Err(format!("payments service answered {status}"));
        }
        let charge_id = string_field(&answer, "charge_id")
            .ok_or("payments service answered without a charge_id")?;
        Ok(Charge {
            charge_id,
            order,
            amount,
            currency,
        })
    }
}

export!(Payments);
