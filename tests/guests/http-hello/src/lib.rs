//! Hello-world `wasi:http` handler for `wasmtime serve` (benchmark peer of
//! `warden serve` + `echo`, see benches/http.sh): answers 200 with the
//! request body echoed back (at most 64 KiB), or `hello` when it is empty.
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "warden-test:http-hello/http-hello",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

const MAX_BODY: usize = 64 << 10;

struct Hello;

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut data = Vec::new();
    let Ok(body) = request.consume() else {
        return data;
    };
    let Ok(stream) = body.stream() else {
        return data;
    };
    while data.len() < MAX_BODY {
        match stream.blocking_read(16 << 10) {
            Ok(chunk) => data.extend(chunk),
            Err(StreamError::Closed | StreamError::LastOperationFailed(_)) => break,
        }
    }
    data
}

impl Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let mut body = read_body(&request);
        if body.is_empty() {
            body = b"hello".to_vec();
        }
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"application/octet-stream".to_vec(),
        )])
        .unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let Ok(outgoing) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = outgoing.write() {
            // blocking_write_and_flush takes at most 4096 bytes a call.
            for chunk in body.chunks(4096) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
            drop(stream);
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

export!(Hello);
