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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// The header.
    Header(ExportHeader),
    /// A chain entry.
    Entry(AuditEntry),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
}

/// Just the `type` of a line, to skip lines cheaply.
#[derive(Deserialize)]
struct LineType<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// A line that is not a valid export line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export line {line}: {reason}")]
pub struct BadLine {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// The line's `type` field (`header`, `entry`, `checkpoint`).
pub fn line_type(text: &str, line: u64) -> Result<String, BadLine> {
    serde_json::from_str::<LineType<'_>>(text)
        .map(|t| t.kind.into_owned())
        .map_err(|e| BadLine {
            line,
            reason: e.to_string(),
        })
}

/// Parses one line.
pub fn parse_line(text: &str, line: u64) -> Result<ExportLine, BadLine> {
    serde_json::from_str(text).map_err(|e| BadLine {
        line,
        reason: e.to_string(),
    })
}

/// Serializes one line (no trailing newline).
pub fn to_line(l: &ExportLine) -> String {
    // Serializing these types cannot fail: no maps with non-string keys, no
    // custom serializers that error.
    serde_json::to_string(l).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::{Hash256, tests::worked_example};

    #[test]
    fn an_entry_line_round_trips() {
        let e = AuditEntry::link(1, Hash256::ZERO, worked_example());
        let text = to_line(&ExportLine::Entry(e.clone()));
        assert!(text.starts_with("{\"type\":\"entry\""), "{text}");
        assert_eq!(line_type(&text, 1).as_deref(), Ok("entry"));
        assert_eq!(parse_line(&text, 1), Ok(ExportLine::Entry(e)));
    }
}
