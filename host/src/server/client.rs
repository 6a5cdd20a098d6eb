//! A minimal blocking HTTP/1.1 client for the daemon's API (plain HTTP,
//! one request per connection). Used by `warden submit`, `warden
//! capabilities`, `warden audit tail` and the end-to-end tests; the daemon
//! is meant to sit behind a TLS-terminating proxy or on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Most response bytes read (a runaway or hostile server cannot exhaust memory).
pub const MAX_RESPONSE: u64 = 64 << 20;

/// Why a call failed (not an HTTP error status: those are responses).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port[/...]`.
    #[error("`{0}` is not an http://host:port URL")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The response is not HTTP/1.x.
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// One response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client for one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    authority: String,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// `base` is `http://host:port` (a trailing path is ignored).
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::Url(base.into()))?;
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        if authority.is_empty() {
            return Err(ClientError::Url(base.into()));
        }
        Ok(Client {
            authority,
            token,
            timeout: Duration::from_secs(120),
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.send("GET", path, None, &[])
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<Response, ClientError> {
        self.send("POST", path, Some(body.to_string().as_bytes()), &[])
    }

    /// Any request; `extra` headers are sent as given (tests use it for
    /// malformed Authorization headers).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let mut stream = TcpStream::connect(&self.authority)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.authority
        );
        if let Some(t) = &self.token
            && !extra
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if let Some(b) = body {
            // The server may answer (413) and close before reading it all.
            let _ = stream.write_all(b);
        }
        let mut raw = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut raw)?;
        parse(&raw)
    }
}

fn parse(raw: &[u8]) -> Result<Response, ClientError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| ClientError::Malformed("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Malformed(status_line.to_string()))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| ClientError::Malformed("truncated chunk".into()))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| ClientError::Malformed(format!("bad chunk size `{size_text}`")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data
            .get(..size)
            .ok_or_else(|| ClientError::Malformed("truncated chunk".into()))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").expect("parses");
        assert_eq!((r.status, r.text().as_str()), (200, "hi"));
        let r = parse(b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
            .expect("parses");
        assert_eq!((r.status, r.text().as_str()), (503, "abc"));
        assert_eq!(r.header("Retry-After"), Some("3"));
    }

    proptest::proptest! {
        /// A hostile or broken server's answer parses or is refused; no panic.
        #[test]
        fn any_response_bytes_parse_or_are_refused_without_a_panic(
            head in "HTTP/1.1 [0-9]{0,4} [A-Z]{0,3}\r\n(Transfer-Encoding: chunked\r\n)?\r\n",
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            chunks in proptest::collection::vec("[0-9a-fA-F;x]{0,18}\r\n[a-z]{0,4}\r\n", 0..4),
        ) {
            let mut raw = head.into_bytes();
            raw.extend_from_slice(chunks.concat().as_bytes());
            raw.extend_from_slice(&body);
            let _ = parse(&raw);
            let _ = dechunk(&body);
        }
    }
}
