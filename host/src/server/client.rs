//! The blocking HTTP/1.1 client for the daemon's API (plain HTTP, one
//! request per connection), on hyper. Used by `warden submit`, `warden
//! capabilities`, `warden approvals`, `warden audit tail`, the demo and the
//! end-to-end tests; the daemon is meant to sit behind a TLS-terminating
//! proxy or on loopback, so there is no TLS here.
//!
//! Owns turning one call into one exchange: the bearer token, the request
//! head, reading the whole (plain or chunked) body within [`MAX_RESPONSE`]
//! bytes and one deadline. It must never follow redirects, retry, keep a
//! connection open past its exchange, or put the token anywhere but the
//! `Authorization` header; every error names the URL it was for.
//!
//! Each call runs on its own current-thread tokio runtime, so it is safe to
//! call from plain threads and (on a scoped helper thread) from inside an
//! async runtime.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Most response body bytes read (a runaway or hostile server cannot
/// exhaust memory).
pub const MAX_RESPONSE: usize = 64 << 20;

/// How long one exchange (connect, send, read the whole answer) may take
/// by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a call failed (not an HTTP error status: those are responses).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port[/...]`.
    #[error("`{0}` is not an http://host:port URL")]
    Url(String),
    /// A header or method the caller gave cannot be sent.
    #[error("cannot send {url}: {reason}")]
    Request {
        /// The URL of the request.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The daemon could not be reached.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL of the request.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange failed (the connection broke, or the answer is not HTTP/1.x).
    #[error("{url}: {source}")]
    Http {
        /// The URL of the request.
        url: String,
        /// Why.
        source: hyper::Error,
    },
    /// No whole answer within the timeout.
    #[error("{url} did not answer within {after:?}")]
    Timeout {
        /// The URL of the request.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The body is larger than [`MAX_RESPONSE`].
    #[error("the answer from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL of the request.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The client's runtime could not be started.
    #[error("cannot start the HTTP client: {0}")]
    Runtime(std::io::Error),
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
    max_response: usize,
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
            timeout: DEFAULT_TIMEOUT,
            max_response: MAX_RESPONSE,
        })
    }

    /// The same client with another deadline for one exchange
    /// (by default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
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
    /// malformed Authorization headers). A body is sent as
    /// `application/json` unless `extra` names a `Content-Type`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let url = format!("http://{}{path}", self.authority);
        let request = self.request(&url, method, path, body, extra)?;
        let run = || -> Result<Response, ClientError> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(ClientError::Runtime)?;
            runtime.block_on(self.exchange(&url, request))
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return run();
        }
        // Inside an async runtime a nested one cannot block this thread:
        // the exchange runs on a helper thread instead.
        std::thread::scope(|s| {
            s.spawn(run).join().unwrap_or_else(|_| {
                Err(ClientError::Runtime(std::io::Error::other(
                    "the client thread panicked",
                )))
            })
        })
    }

    fn request(
        &self,
        url: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let bad = |reason: String| ClientError::Request {
            url: url.to_string(),
            reason,
        };
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| bad(format!("`{method}` is not an HTTP method")))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.authority.as_str());
        let names = |name: &str| extra.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if let Some(t) = &self.token
            && !names("authorization")
        {
            let mut value = HeaderValue::try_from(format!("Bearer {t}"))
                .map_err(|_| bad("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        for (k, v) in extra {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("`{k}` is not a header name")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| bad(format!("the value of `{k}` is not a header value")))?;
            builder = builder.header(name, value);
        }
        if body.is_some() && !names("content-type") {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::copy_from_slice(body.unwrap_or_default()));
        builder.body(body).map_err(|e| bad(e.to_string()))
    }

    /// One exchange on a fresh connection, within the timeout.
    async fn exchange(
        &self,
        url: &str,
        request: Request<Full<Bytes>>,
    ) -> Result<Response, ClientError> {
        let exchange = async {
            let http = |source| ClientError::Http {
                url: url.to_string(),
                source,
            };
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|source| ClientError::Connect {
                    url: url.to_string(),
                    source,
                })?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(http)?;
            let driver = tokio::spawn(connection);
            let answer = sender.send_request(request).await.map_err(http)?;
            let (head, body) = answer.into_parts();
            let body = Limited::new(body, self.max_response)
                .collect()
                .await
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(e) => http(*e),
                    Err(_) => ClientError::TooLarge {
                        url: url.to_string(),
                        limit: self.max_response,
                    },
                })?
                .to_bytes();
            driver.abort();
            let headers = head
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
                    )
                })
                .collect();
            Ok(Response {
                status: head.status.as_u16(),
                headers,
                body: body.to_vec(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.to_string(),
                after: self.timeout,
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-connection HTTP server on loopback: reads the request head
    /// (and a body of `Content-Length` bytes), answers `reply(head)`.
    fn serve_once(reply: impl FnOnce(&str) -> Vec<u8> + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&seen).into_owned();
            let _ = conn.write_all(&reply(&head));
            // Read what the client still sends until it closes, so closing
            // here is never a reset that could overtake the answer.
            let _ = conn.shutdown(std::net::Shutdown::Write);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        });
        format!("http://{addr}")
    }

    #[test]
    fn plain_and_chunked_bodies_are_read_whole() {
        let url = serve_once(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec());
        let r = Client::new(&url, None)
            .expect("url")
            .get("/x")
            .expect("get");
        assert_eq!((r.status, r.text().as_str()), (200, "hi"));
        let url = serve_once(|_| {
            b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
                .to_vec()
        });
        let r = Client::new(&url, None)
            .expect("url")
            .get("/x")
            .expect("get");
        assert_eq!((r.status, r.text().as_str()), (503, "abc"));
        assert_eq!(r.header("Retry-After"), Some("3"));
    }

    #[test]
    fn the_bearer_token_is_sent_unless_the_caller_gives_an_authorization_header() {
        let echo = |head: &str| {
            let body = head.to_ascii_lowercase();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        };
        let url = serve_once(echo);
        let c = Client::new(&url, Some("s3cret".into())).expect("url");
        let head = c
            .post_json("/v1/requests", &serde_json::json!({"a": 1}))
            .expect("post")
            .text();
        assert!(head.starts_with("post /v1/requests http/1.1\r\n"), "{head}");
        assert!(head.contains("authorization: bearer s3cret\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains("content-length: 7\r\n"), "{head}");
        assert!(head.contains(&format!("host: {}\r\n", &url[7..])), "{head}");
        let url = serve_once(echo);
        let c = Client::new(&url, Some("s3cret".into())).expect("url");
        let head = c
            .send(
                "POST",
                "/x",
                Some(b"{}"),
                &[
                    ("Authorization", "Basic abc"),
                    ("Content-Type", "text/plain"),
                ],
            )
            .expect("send")
            .text();
        assert!(head.contains("authorization: basic abc\r\n"), "{head}");
        assert!(!head.contains("s3cret"), "{head}");
        assert_eq!(head.matches("content-type:").count(), 1, "{head}");
    }

    #[test]
    fn an_answer_larger_than_the_limit_is_refused_naming_the_url() {
        let url = serve_once(|_| {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
            r.extend_from_slice(&[b'x'; 100]);
            r
        });
        let mut c = Client::new(&url, None).expect("url");
        c.max_response = 99;
        let err = c.get("/big").expect_err("too large");
        assert!(
            matches!(err, ClientError::TooLarge { limit: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("{url}/big")), "{err}");
        let url = serve_once(|_| {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n".to_vec();
            r.extend_from_slice(&[b'x'; 99]);
            r
        });
        let mut c = Client::new(&url, None).expect("url");
        c.max_response = 99;
        assert_eq!(c.get("/fits").expect("at the limit").body.len(), 99);
    }

    #[test]
    fn a_server_that_never_answers_times_out_naming_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let c = Client::new(&url, None)
            .expect("url")
            .with_timeout(Duration::from_millis(200));
        let err = c.get("/slow").expect_err("times out");
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{url}/slow")), "{err}");
        drop(listener);
    }

    #[test]
    fn an_unreachable_daemon_is_an_error_naming_the_url() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let err = Client::new(&url, None)
            .expect("url")
            .get("/healthz")
            .expect_err("nothing listens");
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{url}/healthz")), "{err}");
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for answer in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"",
        ] {
            let url = serve_once(move |_| answer.to_vec());
            let err = Client::new(&url, None)
                .expect("url")
                .get("/x")
                .expect_err("malformed");
            assert!(err.to_string().contains(&url), "{err}");
        }
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for bad in ["https://127.0.0.1:1", "127.0.0.1:1", "http://", "http:///x"] {
            assert!(
                matches!(Client::new(bad, None), Err(ClientError::Url(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn the_client_works_from_inside_an_async_runtime() {
        let url = serve_once(|_| b"HTTP/1.1 204 No Content\r\n\r\n".to_vec());
        let r = Client::new(&url, None).expect("url").get("/").expect("get");
        assert_eq!(r.status, 204);
    }
}
