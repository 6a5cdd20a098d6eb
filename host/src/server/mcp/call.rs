//! `tools/call`: one tool call becomes one request through
//! [`Daemon::submit_via`] (the path of `POST /v1/requests`), and its
//! [`Answer`] becomes a tool result: `ok` as `structuredContent` plus a
//! text rendering; every other outcome as a tool error (`isError`) whose
//! text starts with the outcome class. Protocol errors are only for a tool
//! the caller cannot see (unknown, or hidden from it), and that refusal is
//! audited too.
//!
//! This module must never run, type or gate the input itself.

use super::tools::OUTPUT_KEY;
use super::{META_ANSWER, META_IDEMPOTENCY_KEY, META_TENANT};
use crate::pipeline::answer::Answer;
use crate::pipeline::{Refusal, admit};
use crate::server::Daemon;
use crate::server::auth::Principal;
use crate::server::submit::{SubmitBody, Transport};
use crate::{Call, Outcome};
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, MetaObject};
use serde_json::{Value, json};
use std::sync::Arc;

/// Runs one `tools/call` for `principal` to the end: a client that goes
/// away does not cancel the audit entry or the idempotency record.
/// `detach`: run the request in a task of its own, for a transport that
/// drops the handler's future when its client disconnects (streamable
/// HTTP); over stdio the SDK already runs every request in a task it never
/// aborts, so the request is awaited in it (one task and one thread
/// wake-up fewer per call).
pub(super) async fn call_tool(
    daemon: Arc<Daemon>,
    principal: Principal,
    client: Option<String>,
    meta: serde_json::Map<String, Value>,
    request: CallToolRequestParams,
    detach: bool,
) -> Result<CallToolResult, McpError> {
    let name: &str = &request.name;
    let tool = daemon.config.mcp.tool.iter().find(|t| t.name == name);
    let visible = tool.is_some_and(|t| {
        t.admits(&principal.name) && principal.roles.contains(&crate::server::Role::Submit)
    });
    let Some(kind) = tool.filter(|_| visible).map(|t| t.kind.clone()) else {
        // Unknown and hidden tools get the same protocol error (a hidden
        // tool's existence is not revealed); the audit entry tells them apart.
        let (outcome, why) = if tool.is_some() {
            (
                Outcome::Denied,
                format!(
                    "MCP tool `{name}` is not exposed to principal `{}`",
                    principal.name
                ),
            )
        } else {
            (Outcome::NoRoute, format!("no MCP tool named `{name}`"))
        };
        let mut call = Call {
            client: client.clone(),
            ..Call::new("", "", Value::Null).from_principal(&principal.name, "mcp")
        };
        admit::admit(&mut call);
        let answer = daemon
            .refused(&Refusal::new(outcome, why), &call, None, "policy")
            .await;
        return Err(McpError::invalid_params(
            format!("unknown tool `{name}`"),
            Some(json!({ META_ANSWER: answer.to_json() })),
        ));
    };
    let meta_string = |key: &str| -> Result<Option<String>, McpError> {
        match meta.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(McpError::invalid_params(
                format!("_meta[\"{key}\"] must be a string, not {other}"),
                None,
            )),
        }
    };
    let idempotency_key = meta_string(META_IDEMPOTENCY_KEY)?;
    let tenant = meta_string(META_TENANT)?;
    let body = SubmitBody {
        kind,
        input: Value::Object(request.arguments.unwrap_or_default()),
        tenant,
        attributes: Default::default(),
        idempotency_key,
        wait: None,
    };
    let transport = Transport { via: "mcp", client };
    let submitted = if detach {
        match tokio::spawn(daemon.submit_via(principal, body, transport)).await {
            Ok(submitted) => submitted,
            Err(e) => {
                return Err(McpError::internal_error(
                    format!("the tool call's task failed: {e}"),
                    None,
                ));
            }
        }
    } else {
        daemon.submit_via(principal, body, transport).await
    };
    let answer = match submitted {
        Ok(answer) => answer,
        Err(e) => return Ok(refused_before_running(e.code, &e.message)),
    };
    Ok(result_of(answer))
}

/// A tool error for a request refused before it was admitted (draining,
/// idempotency conflict, bad tenant or key): nothing ran, and the message
/// names the API error code.
fn refused_before_running(code: &str, message: &str) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!("{code}: {message}"))]);
    result.meta = Some(answer_meta(json!({"error_code": code, "error": message})));
    result
}

/// The tool result for an answer (docs/mcp.md "Results"). Built as the
/// SDK's type directly (one conversion: the answer's JSON body into
/// `_meta`), not through a JSON value that is then deserialized: on stdio
/// that round trip was a tenth of a call's own CPU (BENCHMARKS.md, section
/// 11). The wire form is the same: `content`, `structuredContent`,
/// `isError`, `_meta` and `resultType: "complete"`.
pub(super) fn result_of(answer: Answer) -> CallToolResult {
    let meta = answer_meta(answer.to_json());
    let mut result = if answer.outcome == Outcome::Ok {
        let output = answer.output.unwrap_or(Value::Null);
        let text = serde_json::to_string(&output).unwrap_or_default();
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        let mut structured = serde_json::Map::with_capacity(1);
        structured.insert(OUTPUT_KEY.to_string(), output);
        result.structured_content = Some(Value::Object(structured));
        result
    } else {
        CallToolResult::error(vec![ContentBlock::text(error_text(&answer))])
    };
    result.meta = Some(meta);
    result
}

/// A result's `_meta`: `{ "<META_ANSWER>": answer }`.
fn answer_meta(answer: Value) -> MetaObject {
    let mut meta = serde_json::Map::with_capacity(1);
    meta.insert(META_ANSWER.to_string(), answer);
    MetaObject(meta)
}

/// `<outcome>: <message>` plus how to follow the request up.
fn error_text(answer: &Answer) -> String {
    let id = &answer.request_id;
    let outcome = answer.outcome.as_string();
    if let Some(hold) = &answer.approval {
        let approvers = if hold.approvers.is_empty() {
            "any principal with the approve role".to_string()
        } else {
            hold.approvers.join(", ")
        };
        return format!(
            "{outcome}: the call is held for {} approval ({} needed; rule {}: {}) by {approvers}, \
             expiring at unix ms {}. Approval id: {id}. An approver runs \
             `warden approvals approve {id} --reason …`; the result is then at resource \
             warden://requests/{id} (append ?wait=60s to wait for it).",
            hold.mode.as_str(),
            hold.approvals_needed,
            hold.rule,
            hold.reason,
            hold.expires_at_ms,
        );
    }
    let mut text = format!(
        "{outcome}: {}",
        answer.error.as_deref().unwrap_or("(no message)")
    );
    if let (Outcome::CapabilityError, Some(out)) = (answer.outcome, &answer.output) {
        text.push_str(&format!(
            " (error value: {})",
            serde_json::to_string(out).unwrap_or_default()
        ));
    }
    if let Some(code) = &answer.error_code {
        text.push_str(&format!(" [{code}]"));
    }
    if let Some(secs) = answer.retry_after {
        text.push_str(&format!("; retry after {secs}s"));
    }
    text.push_str(&format!(" (request {id})"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(outcome: Outcome, output: Option<Value>, error: Option<&str>) -> Answer {
        Answer {
            outcome,
            output,
            error: error.map(str::to_string),
            retry_after: None,
            ..crate::pipeline::answer::tests::answer()
        }
    }

    /// A tool error's wire form: one text block, the answer in `_meta`.
    fn tool_error(text: &str, answer: Value) -> Value {
        json!({
            "resultType": "complete",
            "content": [{"type": "text", "text": text}],
            "isError": true,
            "_meta": {"dev.warden/answer": answer},
        })
    }

    fn wire(result: CallToolResult) -> Value {
        serde_json::to_value(result).expect("a tool result serializes")
    }

    #[test]
    fn an_ok_answer_is_its_output_as_structured_content_and_text_with_the_answer_in_meta() {
        let a = answer(Outcome::Ok, Some(json!("hi")), None);
        let body = a.to_json();
        assert_eq!(
            wire(result_of(a)),
            json!({
                "resultType": "complete",
                "content": [{"type": "text", "text": "\"hi\""}],
                "structuredContent": {"output": "hi"},
                "isError": false,
                "_meta": {"dev.warden/answer": body},
            })
        );
    }

    #[test]
    fn any_other_outcome_is_a_tool_error_whose_text_starts_with_the_outcome_class() {
        let a = answer(
            Outcome::BudgetExhausted(crate::Budget::Fuel),
            None,
            Some("fuel ran out"),
        );
        let body = a.to_json();
        assert_eq!(
            wire(result_of(a)),
            tool_error("budget_exhausted:fuel: fuel ran out (request r-1)", body)
        );
    }

    #[test]
    fn a_request_refused_before_it_ran_is_a_tool_error_naming_the_api_error_code() {
        assert_eq!(
            wire(refused_before_running(
                "draining",
                "the daemon is shutting down"
            )),
            tool_error(
                "draining: the daemon is shutting down",
                json!({"error_code": "draining", "error": "the daemon is shutting down"})
            )
        );
    }
}
