//! The host's own HTTP/1.1 client plumbing, shared by outbound HTTP
//! (`interfaces::http`) and model calls (`interfaces::model`): resolve a
//! name once, connect to exactly the resolved addresses, optional TLS
//! (webpki roots), send one request, read a body under a byte limit.

use bytes::Bytes;
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connected byte stream (plain TCP or TLS over TCP).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Resolves `host` once: an IP literal is itself; a name in the host's
/// static table gets those addresses; anything else goes to the system
/// resolver.
pub async fn resolve(
    host: &str,
    port: u16,
    static_hosts: &BTreeMap<String, Vec<IpAddr>>,
) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Some(ips) = static_hosts.get(&bare.to_ascii_lowercase()) {
        return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port)).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("`{bare}` resolved to no address"),
        ));
    }
    Ok(addrs)
}

/// Connects to the first of `addrs` that answers (never resolving again),
/// then, when `tls_name` is given, runs a TLS handshake verifying the
/// certificate for that name against the webpki roots.
pub async fn connect(addrs: &[SocketAddr], tls_name: Option<&str>) -> io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect(addrs).await?;
    let _ = tcp.set_nodelay(true);
    let Some(name) = tls_name else {
        return Ok(Box::new(tcp));
    };
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = match bare.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::from(ip),
        Err(_) => rustls::pki_types::ServerName::try_from(bare.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
    };
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await?;
    Ok(Box::new(tls))
}

/// Sends one request over `stream` (HTTP/1.1) and returns the response
/// head with its streaming body. The connection is driven by a task that
/// ends with the connection.
pub async fn send<B>(
    stream: Box<dyn Stream>,
    request: http::Request<B>,
) -> Result<http::Response<hyper::body::Incoming>, hyper::Error>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(request).await
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The body is longer than the limit.
    TooLarge,
    /// The connection failed.
    Io(String),
}

/// Reads a whole body, refusing (and stopping) past `limit` bytes.
pub async fn read_limited<B>(mut body: B, limit: u64) -> Result<Vec<u8>, ReadError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Io(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > limit {
                return Err(ReadError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}
