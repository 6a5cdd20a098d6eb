//! Guest making outbound HTTP requests through `wasi:http` (allow-list,
//! resolution, limits and redirect tests).
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "warden-test:http-fetch/http-fetch",
    generate_all,
});

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

struct G;

fn dbg<E: core::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn request(method: &str, url: &str, body: Option<&str>) -> Result<Reply, String> {
    let (scheme, rest) = url.split_once("://").ok_or("url needs a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        other => Method::Other(other.into()),
    };
    req.set_method(&method).map_err(|()| "method")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.into()),
    };
    req.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    req.set_authority(Some(authority)).map_err(|()| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let out_body = req.body().map_err(|()| "body")?;
    let future = outgoing_handler::handle(req, None).map_err(dbg)?;
    if let Some(b) = body {
        let stream = out_body.write().map_err(|()| "body stream")?;
        for chunk in b.as_bytes().chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                drop(stream);
                return Err(match wait(&future) {
                    Err(code) => code,
                    Ok(_) => dbg(e),
                });
            }
        }
        drop(stream);
    }
    OutgoingBody::finish(out_body, None).map_err(dbg)?;
    let resp = wait(&future)?;
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = resp.consume().map_err(|()| "consume")?;
    let stream = incoming.stream().map_err(|()| "stream")?;
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(65536) {
            Ok(chunk) => data.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("body: {}", e.to_debug_string()));
            }
        }
    }
    Ok(Reply {
        status,
        location,
        body: String::from_utf8_lossy(&data).into_owned(),
    })
}

fn wait(
    future: &outgoing_handler::FutureIncomingResponse,
) -> Result<wasi::http::types::IncomingResponse, String> {
    loop {
        match future.get() {
            Some(r) => {
                return r.map_err(|()| "response taken".to_string())?.map_err(dbg);
            }
            None => future.subscribe().block(),
        }
    }
}

fn hoard(count: u32, bytes: u32) -> u32 {
    let value = vec![b'v'; bytes as usize];
    let mut kept = Vec::new();
    for _ in 0..count {
        let fields = Fields::new();
        if fields.append("x-hoard", &value).is_err() {
            break;
        }
        kept.push(fields);
    }
    kept.len() as u32
}

impl Guest for G {
    fn hoard_fields(count: u32, bytes: u32) -> u32 {
        hoard(count, bytes)
    }

    fn fetch(method: String, url: String, body: Option<String>) -> Result<Reply, String> {
        request(&method, &url, body.as_deref())
    }

    fn fetch_many(url: String, times: u32) -> Result<Vec<u16>, String> {
        (0..times)
            .map(|_| request("GET", &url, None).map(|r| r.status))
            .collect()
    }
}

export!(G);
