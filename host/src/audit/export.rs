//! The portable export: one JSON object per line (JSONL), checked offline by
//! `warden audit verify --export` with only the host's public key.
//!
//! Lines: one `header`, then every `entry` in sequence order, then every
//! `checkpoint`. Verifiers must not rely on the order of checkpoint lines;
//! entry lines are verified in file order (that order is what is checked).

use super::checkpoint::Checkpoint;
use super::entry::AuditEntry;
use serde::{Deserialize, Serialize};

/// The `format` value of the header line.
pub const EXPORT_FORMAT: &str = "warden-audit-export-v1";

/// First line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// When the export was written, unix milliseconds.
    pub exported_at_ms: u64,
    /// The host's public key text (`ed25519:<hex>`), informational only:
    /// verification uses the key the verifier brings.
    pub public_key: Option<String>,
}

/// One line of an export.
// Lines are transient (parsed, checked, dropped); boxing the entry would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLine {
    /// The header.
    Header(ExportHeader),
    /// A chain entry.
    Entry(AuditEntry),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
}

/// Every line starts with exactly one of these; the rest of the line is the
/// serde_json serialization of the line's value minus its opening `{`.
const HEADER_PREFIX: &str = "{\"type\":\"header\",";
const ENTRY_PREFIX: &str = "{\"type\":\"entry\",";
const CHECKPOINT_PREFIX: &str = "{\"type\":\"checkpoint\",";

/// A line that is not a valid export line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export line {line}: {reason}")]
pub struct BadLine {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// The line's type (`header`, `entry`, `checkpoint`) judged by its prefix.
pub fn line_kind(text: &str) -> Option<&'static str> {
    [
        (ENTRY_PREFIX, "entry"),
        (CHECKPOINT_PREFIX, "checkpoint"),
        (HEADER_PREFIX, "header"),
    ]
    .into_iter()
    .find(|(p, _)| text.starts_with(p))
    .map(|(_, k)| k)
}

fn parse_body<T: serde::de::DeserializeOwned>(
    text: &str,
    prefix: &str,
    line: u64,
) -> Result<T, BadLine> {
    let mut body = String::with_capacity(text.len());
    body.push('{');
    body.push_str(&text[prefix.len()..]);
    serde_json::from_str(&body).map_err(|e| BadLine {
        line,
        reason: e.to_string(),
    })
}

/// Parses one line and checks that it is byte-identical to the canonical
/// serialization of what it parses to, so no byte can change unnoticed.
pub fn parse_line(text: &str, line: u64) -> Result<ExportLine, BadLine> {
    let parsed = match line_kind(text) {
        Some("entry") => ExportLine::Entry(parse_body(text, ENTRY_PREFIX, line)?),
        Some("checkpoint") => ExportLine::Checkpoint(parse_body(text, CHECKPOINT_PREFIX, line)?),
        Some(_) => ExportLine::Header(parse_body(text, HEADER_PREFIX, line)?),
        None => {
            return Err(BadLine {
                line,
                reason: "does not start with a known line type".into(),
            });
        }
    };
    if to_line(&parsed) != text {
        return Err(BadLine {
            line,
            reason: "not in canonical export form".into(),
        });
    }
    Ok(parsed)
}

fn with_prefix<T: Serialize>(prefix: &str, value: &T) -> String {
    // Serializing these types cannot fail: no maps with non-string keys and
    // no custom serializers that error.
    let json = serde_json::to_string(value).unwrap_or_default();
    let mut out = String::with_capacity(prefix.len() + json.len());
    out.push_str(prefix);
    out.push_str(json.get(1..).unwrap_or_default());
    out
}

/// Serializes one line (no trailing newline).
pub fn to_line(l: &ExportLine) -> String {
    match l {
        ExportLine::Header(h) => with_prefix(HEADER_PREFIX, h),
        ExportLine::Entry(e) => with_prefix(ENTRY_PREFIX, e),
        ExportLine::Checkpoint(c) => with_prefix(CHECKPOINT_PREFIX, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::worked_example;
    use crate::digest::Hash256;

    #[test]
    fn an_entry_line_round_trips() {
        let e = AuditEntry::link(1, Hash256::ZERO, worked_example());
        let text = to_line(&ExportLine::Entry(e.clone()));
        assert!(text.starts_with("{\"type\":\"entry\""), "{text}");
        assert_eq!(line_kind(&text), Some("entry"));
        assert_eq!(parse_line(&text, 1), Ok(ExportLine::Entry(e)));
        let reordered = text.replacen(
            "{\"type\":\"entry\",\"seq\":1,",
            "{\"type\":\"entry\",\"seq\":01,",
            1,
        );
        assert!(parse_line(&reordered, 1).is_err());
    }
}
