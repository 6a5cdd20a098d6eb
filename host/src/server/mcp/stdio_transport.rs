//! The stdio session's transport: newline-delimited JSON-RPC on the
//! process's stdin/stdout (rmcp's non-blocking pipes, its codec and its
//! message types), handed to rmcp's service loop — with one shortcut.
//!
//! rmcp's loop answers a request in three tasks: a handler task it spawns,
//! the loop itself (which the handler's answer is sent to over a channel),
//! and a task it spawns again to write that answer. On a two-core machine
//! each hand-off can wake the other, idle worker, and a `tools/call` over
//! stdio cost ×1.2 the in-process path (BENCHMARKS.md, section 11). So once
//! the session is established, a `tools/call` is taken out of the stream
//! here: it is handled by the same [`Service::handle_request`] rmcp would
//! call (the same protocol-version checks and result shaping), with a
//! [`RequestContext`] built the way rmcp builds it, in one task that also
//! writes its answer. Every other message, and any call before the session
//! is established, goes through rmcp unchanged.
//!
//! What rmcp's loop does for a request and this path must do too: the
//! request's `_meta` and extensions move into the context; a
//! `notifications/cancelled` for a call in flight means its answer is not
//! sent (the call itself runs to its end: warden never cancels an audit
//! entry or an idempotency record half-way, docs/mcp.md). Reading is
//! bounded as rmcp bounds it (16 MiB a line); a line that is not JSON is
//! ignored, a JSON value that is not a message is answered with `Invalid
//! Request`.

use super::McpServer;
use bytes::BytesMut;
use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, ErrorData, GetExtensions, GetMeta,
    JsonRpcMessage, JsonRpcNotification, JsonRpcRequest, RequestId, ServerJsonRpcMessage,
};
use rmcp::service::{Peer, RequestContext, Service};
use rmcp::transport::async_rw::{
    DEFAULT_MAX_LINE_LENGTH, JsonRpcMessageCodec, JsonRpcMessageCodecError,
};
use rmcp::transport::{StdioReader, StdioWriter, Transport};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

/// The shared writing end: every message is one whole line, written under
/// the lock. `None` once the transport is closed.
type Writer = Arc<tokio::sync::Mutex<Option<StdioWriter>>>;

/// Where a `tools/call` taken out of the stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Running,
    /// The client cancelled it: its answer is not sent.
    Cancelled,
}

/// What the transport and the calls it runs share.
struct Shortcut {
    server: McpServer,
    /// Set once rmcp has established the session (its `serve` returned).
    peer: OnceLock<Peer<RoleServer>>,
    in_flight: Mutex<HashMap<RequestId, InFlight>>,
}

/// The transport for [`super::stdio::serve`]; [`StdioTransport::session`]
/// hands the session's peer over once rmcp has established it.
pub struct StdioTransport {
    reader: StdioReader,
    buffer: BytesMut,
    codec: JsonRpcMessageCodec<ClientJsonRpcMessage>,
    /// The reader has reached its end (what is buffered is still decoded).
    eof: bool,
    writer: Writer,
    shortcut: Arc<Shortcut>,
}

/// The handle that establishes the shortcut (see [`StdioTransport::new`]).
pub struct Session(Arc<Shortcut>);

impl Session {
    /// From now on `tools/call`s are handled by the transport, with
    /// `peer` (rmcp's peer of the established session) in their context.
    pub fn established(&self, peer: Peer<RoleServer>) {
        let _ = self.0.peer.set(peer);
    }
}

impl StdioTransport {
    /// The transport over `reader`/`writer` (rmcp's `stdio_pipes()`), and
    /// the handle to call [`Session::established`] on.
    pub fn new(server: McpServer, reader: StdioReader, writer: StdioWriter) -> (Self, Session) {
        let shortcut = Arc::new(Shortcut {
            server,
            peer: OnceLock::new(),
            in_flight: Mutex::new(HashMap::new()),
        });
        (
            StdioTransport {
                reader,
                buffer: BytesMut::with_capacity(8 * 1024),
                codec: JsonRpcMessageCodec::new_with_max_length(DEFAULT_MAX_LINE_LENGTH),
                eof: false,
                writer: Arc::new(tokio::sync::Mutex::new(Some(writer))),
                shortcut: shortcut.clone(),
            },
            Session(shortcut),
        )
    }

    /// The next message for rmcp, `None` at the end of input. Cancel-safe:
    /// rmcp polls this in a `select!`, so everything read is kept in
    /// `self.buffer` and nothing awaits between decoding and returning.
    async fn next_message(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            let before = self.buffer.len();
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buffer)
            } else {
                self.codec.decode(&mut self.buffer)
            };
            match decoded {
                Ok(Some(message)) => match self.take_out(message) {
                    Some(message) => return Some(message),
                    None => continue,
                },
                // A line was consumed without a message (a notification
                // rmcp ignores): there may be more lines buffered.
                Ok(None) if self.buffer.len() < before => continue,
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(JsonRpcMessageCodecError::Serde(e)) => {
                    use serde_json::error::Category;
                    match e.classify() {
                        // Not JSON: there is no id to answer, and answering
                        // garbage can start an echo storm (as rmcp does).
                        Category::Syntax | Category::Eof => {
                            tracing::debug!("mcp stdio: ignoring a line that is not JSON: {e}");
                        }
                        Category::Data | Category::Io => {
                            tracing::debug!("mcp stdio: a line is not a JSON-RPC message: {e}");
                            let answer = ServerJsonRpcMessage::error(
                                ErrorData::invalid_request("Invalid request", None),
                                None,
                            );
                            tokio::spawn(write(self.writer.clone(), answer));
                        }
                    }
                    continue;
                }
                Err(JsonRpcMessageCodecError::MaxLineLengthExceeded) => {
                    tracing::error!(
                        max_line_length = DEFAULT_MAX_LINE_LENGTH,
                        "mcp stdio: a message exceeded the maximum line length; discarding it"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::error!("mcp stdio: cannot read standard input: {e}");
                    return None;
                }
            }
            match self.reader.read_buf(&mut self.buffer).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("mcp stdio: cannot read standard input: {e}");
                    return None;
                }
            }
        }
    }

    /// `message` for rmcp, or `None` when it was a `tools/call` of an
    /// established session, now running in a task of its own.
    fn take_out(&self, message: ClientJsonRpcMessage) -> Option<ClientJsonRpcMessage> {
        let message = match message {
            JsonRpcMessage::Request(JsonRpcRequest {
                id,
                request: request @ ClientRequest::CallToolRequest(_),
                ..
            }) => match self.shortcut.peer.get() {
                Some(peer) => {
                    self.call(id, request, peer.clone());
                    return None;
                }
                None => ClientJsonRpcMessage::request(request, id),
            },
            other => other,
        };
        if let JsonRpcMessage::Notification(JsonRpcNotification {
            notification: ClientNotification::CancelledNotification(cancelled),
            ..
        }) = &message
            && let Some(id) = &cancelled.params.request_id
            && let Ok(mut in_flight) = self.shortcut.in_flight.lock()
            && let Some(state) = in_flight.get_mut(id)
        {
            *state = InFlight::Cancelled;
        }
        Some(message)
    }

    /// Runs one `tools/call` as rmcp's loop would, and writes its answer.
    fn call(&self, id: RequestId, mut request: ClientRequest, peer: Peer<RoleServer>) {
        let mut context = RequestContext::new(id.clone(), peer);
        context.meta = std::mem::take(request.get_meta_mut());
        context.extensions = std::mem::take(request.extensions_mut());
        if let Ok(mut in_flight) = self.shortcut.in_flight.lock() {
            in_flight.insert(id.clone(), InFlight::Running);
        }
        let shortcut = self.shortcut.clone();
        let writer = self.writer.clone();
        tokio::spawn(async move {
            let answer = match shortcut.server.handle_request(request, context).await {
                Ok(result) => ServerJsonRpcMessage::response(result, id.clone()),
                Err(error) => ServerJsonRpcMessage::error(error, Some(id.clone())),
            };
            let cancelled = shortcut
                .in_flight
                .lock()
                .ok()
                .and_then(|mut in_flight| in_flight.remove(&id))
                == Some(InFlight::Cancelled);
            if cancelled {
                tracing::debug!(%id, "mcp stdio: not answering a cancelled tools/call");
                return;
            }
            if let Err(e) = write(writer, answer).await {
                tracing::error!("mcp stdio: cannot write a tools/call answer: {e}");
            }
        });
    }
}

/// Writes `message` as one line and flushes it.
async fn write(writer: Writer, message: ServerJsonRpcMessage) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut writer = writer.lock().await;
    let Some(out) = writer.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the stdio transport is closed",
        ));
    };
    out.write_all(&line).await?;
    out.flush().await
}

impl Transport<RoleServer> for StdioTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        write(self.writer.clone(), item)
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        self.next_message().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let mut writer = self.writer.lock().await;
        if let Some(mut out) = writer.take() {
            out.flush().await?;
        }
        Ok(())
    }
}
