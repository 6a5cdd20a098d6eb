//! The stdio session's transport: newline-delimited JSON-RPC on the
//! process's stdin/stdout (rmcp's non-blocking pipes, its codec and its
//! message types), handed to rmcp's service loop — with one shortcut.
//!
//! rmcp's loop answers a request in three tasks: a handler task it spawns,
//! the loop itself (which the handler's answer is sent to over a channel),
//! and a task it spawns again to write that answer. On a two-core machine
//! each hand-off can wake the other, idle worker, and a `tools/call` over
//! stdio cost ×1.2 the in-process path (BENCHMARKS.md, section 11). So
//! stdin is read by a task of its own ([`Reader`]), and once the session
//! is established a `tools/call` is taken out of the stream there: it is
//! handled by the same [`Service::handle_request`] rmcp would call (the
//! same protocol-version checks and result shaping), with a
//! [`RequestContext`] built the way rmcp builds it, in one task that also
//! writes its answer, spawned by the reading task ([`Reader::spawn_call`]).
//! Every other message, and any call before
//! the session is established, goes to rmcp unchanged, in order, over a
//! bounded channel (rmcp's `receive`). A call's line is also
//! decoded here when it has exactly a call's shape ([`tools_call`]):
//! straight into rmcp's parameters type, not through the codec's message
//! enums (whose untagged and flattened serde types buffer every message).
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
use bytes::{Buf, BytesMut};
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, ErrorData, GetExtensions, JsonRpcMessage, JsonRpcNotification, JsonRpcRequest,
    RequestId, RequestMetaObject, ServerJsonRpcMessage,
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

/// A `tools/call` line as [`Reader::fast_call`] takes it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CallLine<'a> {
    #[serde(borrow)]
    jsonrpc: std::borrow::Cow<'a, str>,
    id: RequestId,
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    params: CallToolRequestParams,
}

/// `line` (without its newline) as the `tools/call` request rmcp would
/// decode it to, when it has exactly [`CallLine`]'s shape; `None` for
/// anything else (left to rmcp's codec).
fn tools_call(line: &[u8]) -> Option<(RequestId, ClientRequest)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let call = serde_json::from_slice::<CallLine<'_>>(line).ok()?;
    if call.jsonrpc != "2.0" || call.method != "tools/call" {
        return None;
    }
    let (id, mut params) = (call.id, call.params);
    let meta = params.meta.take();
    let mut request = CallToolRequest::new(params);
    if let Some(meta) = meta {
        request.extensions.insert(meta);
    }
    Some((id, ClientRequest::CallToolRequest(request)))
}

/// The transport for [`super::stdio::serve`]: what rmcp receives comes
/// from the reading task ([`Reader`]) over a bounded channel; what it sends
/// is written as one line under the writer's lock.
pub struct StdioTransport {
    messages: tokio::sync::mpsc::Receiver<ClientJsonRpcMessage>,
    writer: Writer,
}

/// How many messages the reading task may hold decoded for rmcp before it
/// waits (and stops reading): a client that floods the session is held
/// back by the pipe, not buffered.
const QUEUED_FOR_RMCP: usize = 32;

/// The reading task: reads and decodes stdin, starts each `tools/call` of
/// the established session itself ([`Reader::fast_call`]), and
/// hands every other message to rmcp. It is a task of its own, not a
/// future rmcp polls in its loop, so that a call's line is taken when it
/// arrives without a pass through rmcp's `select!` over its six branches
/// (BENCHMARKS.md section 11).
struct Reader {
    reader: StdioReader,
    buffer: BytesMut,
    codec: JsonRpcMessageCodec<ClientJsonRpcMessage>,
    /// The reader has reached its end (what is buffered is still decoded).
    eof: bool,
    /// The codec holds no state about the buffer (no line half scanned,
    /// not discarding an over-long one): a line may be taken off the front
    /// without it ([`Reader::fast_call`]).
    codec_clean: bool,
    writer: Writer,
    shortcut: Arc<Shortcut>,
    to_rmcp: tokio::sync::mpsc::Sender<ClientJsonRpcMessage>,
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
    /// The transport over `reader`/`writer` (rmcp's `stdio_pipes()`), with
    /// its reading task started, and the handle to call
    /// [`Session::established`] on. Must be called within the runtime.
    pub fn new(server: McpServer, reader: StdioReader, writer: StdioWriter) -> (Self, Session) {
        let shortcut = Arc::new(Shortcut {
            server,
            peer: OnceLock::new(),
            in_flight: Mutex::new(HashMap::new()),
        });
        let writer: Writer = Arc::new(tokio::sync::Mutex::new(Some(writer)));
        let (to_rmcp, messages) = tokio::sync::mpsc::channel(QUEUED_FOR_RMCP);
        let reading = Reader {
            reader,
            buffer: BytesMut::with_capacity(8 * 1024),
            codec: JsonRpcMessageCodec::new_with_max_length(DEFAULT_MAX_LINE_LENGTH),
            eof: false,
            codec_clean: true,
            writer: writer.clone(),
            shortcut: shortcut.clone(),
            to_rmcp,
        };
        tokio::spawn(reading.run());
        (StdioTransport { messages, writer }, Session(shortcut))
    }
}

impl Reader {
    /// Reads until the end of input, or until rmcp's side of the session
    /// is gone; the end of input reaches rmcp as the channel closing.
    async fn run(mut self) {
        while let Some(message) = self.next_message().await {
            if self.to_rmcp.send(message).await.is_err() {
                return;
            }
        }
    }

    /// The next message for rmcp, `None` at the end of input (or once
    /// rmcp's side is gone: no call is started for a session that ended).
    async fn next_message(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            if self.to_rmcp.is_closed() {
                return None;
            }
            if self.codec_clean && self.fast_call() {
                continue;
            }
            let before = self.buffer.len();
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buffer)
            } else {
                self.codec.decode(&mut self.buffer)
            };
            // Clean again once it has taken a whole line (a message, or a
            // line that is not one) and left nothing half read.
            self.codec_clean = match &decoded {
                Ok(Some(_)) | Err(JsonRpcMessageCodecError::Serde(_)) => true,
                Ok(None) => self.buffer.is_empty(),
                Err(_) => false,
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

    /// Takes the first buffered line off when it is a plain `tools/call`
    /// of an established session, and starts it ([`Self::spawn_call`]); `false`
    /// (nothing taken) for anything else, which the codec then decodes as
    /// it would have. rmcp's codec decodes every line into its message
    /// enums, whose untagged and flattened serde types buffer the whole
    /// message first (~5 % of a stdio call's CPU in `warden mcp`,
    /// BENCHMARKS.md section 11); a call's line is read here straight
    /// into the parameters type rmcp would end with, and its `_meta` moved
    /// into the request's extensions as rmcp moves it. Only the exact
    /// shape `{"jsonrpc":"2.0","id":…,"method":"tools/call","params":{…}}`
    /// (no other member, no byte-order mark, within the line bound)
    /// is taken: a line this path declines is left for the codec, so what
    /// is refused, ignored or answered with an error stays rmcp's.
    fn fast_call(&mut self) -> bool {
        let Some(peer) = self.shortcut.peer.get() else {
            return false;
        };
        // A line within the codec's bound, or nothing (the codec refuses
        // an over-long one).
        let within = self.buffer.len().min(DEFAULT_MAX_LINE_LENGTH + 1);
        let Some(end) = self.buffer[..within].iter().position(|b| *b == b'\n') else {
            return false;
        };
        let Some((id, request)) = tools_call(&self.buffer[..end]) else {
            return false;
        };
        let peer = peer.clone();
        self.buffer.advance(end + 1);
        self.spawn_call(id, request, peer);
        true
    }

    /// `message` for rmcp, or `None` when it was a `tools/call` of an
    /// established session, started here ([`Self::spawn_call`]).
    fn take_out(&self, message: ClientJsonRpcMessage) -> Option<ClientJsonRpcMessage> {
        let message = match message {
            JsonRpcMessage::Request(JsonRpcRequest {
                id,
                request: request @ ClientRequest::CallToolRequest(_),
                ..
            }) => match self.shortcut.peer.get() {
                Some(peer) => {
                    self.spawn_call(id, request, peer.clone());
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

    /// One `tools/call` run as rmcp's loop would run it, writing its
    /// answer, in a task of its own (a panic in it ends that task, not the
    /// session). Spawned from the reading task, it is the worker's next
    /// task: it runs as soon as the reading task waits again, and the
    /// guest's task it spawns in turn runs next on the same worker.
    fn spawn_call(&self, id: RequestId, mut request: ClientRequest, peer: Peer<RoleServer>) {
        let mut context = RequestContext::new(id.clone(), peer);
        // The meta moved out as rmcp's `get_meta_mut` + take would, without
        // inserting an empty one first when there is none.
        context.meta = request
            .extensions_mut()
            .remove::<RequestMetaObject>()
            .unwrap_or_default();
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
    // A tool result with its `_meta` answer is under 1 KiB: one allocation.
    let mut line = Vec::with_capacity(2048);
    serde_json::to_writer(&mut line, &message).map_err(std::io::Error::other)?;
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
        self.messages.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let mut writer = self.writer.lock().await;
        if let Some(mut out) = writer.take() {
            out.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::GetMeta;
    use serde_json::Value;

    /// What rmcp's own decoding makes of `line`: the request's id and the
    /// request as it serializes (its `_meta` put back from the extensions).
    fn rmcp_decodes(line: &str) -> (RequestId, Value) {
        match serde_json::from_str::<ClientJsonRpcMessage>(line).expect("rmcp decodes it") {
            JsonRpcMessage::Request(r) => (r.id, to_json(&r.request)),
            other => panic!("not a request: {other:?}"),
        }
    }

    fn to_json(request: &ClientRequest) -> Value {
        serde_json::to_value(request).expect("serializes")
    }

    fn fast(line: &str) -> Option<(RequestId, Value)> {
        tools_call(line.as_bytes()).map(|(id, r)| (id, to_json(&r)))
    }

    #[test]
    fn a_plain_tools_call_line_decodes_to_what_rmcp_decodes_it_to() {
        for line in [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"greet","arguments":{"message":"hi"}}}"#,
            r#"{"id":"a-1","method":"tools/call","jsonrpc":"2.0","params":{"name":"greet"}}"#,
            r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"greet","arguments":{},"_meta":{"dev.warden/idempotency-key":"k-1","progressToken":3}}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"_meta":null,"name":"gr\u0065et","arguments":{"a":[1,{"b":null}]}}}"#,
            "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":\"greet\"}}\r",
        ] {
            let rmcp = rmcp_decodes(line.trim_end_matches('\r'));
            assert_eq!(fast(line), Some(rmcp), "{line}");
        }
    }

    #[test]
    fn the_meta_of_a_call_is_where_rmcp_puts_it_for_the_context() {
        let line = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"greet","_meta":{"k":"v"}}}"#;
        let (_, mut request) = tools_call(line.as_bytes()).expect("taken");
        assert_eq!(request.get_meta_mut().0.0.get("k"), Some(&Value::from("v")));
    }

    #[test]
    fn any_other_line_is_left_to_rmcps_codec() {
        for line in [
            // other members, methods, versions, shapes
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"greet"},"extra":1}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"1.0","id":7,"method":"tools/call","params":{"name":"greet"}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"greet"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":7,"id":8,"method":"tools/call","params":{"name":"greet"}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"greet"}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"greet\"}}",
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
            "not json",
            "",
        ] {
            assert!(fast(line).is_none(), "{line}");
        }
    }
}
