//! `warden:host/log`: structured log lines to tracing, with the capability
//! and request id, bounded per invocation.
//!
//! Lines past `max_lines`, or bytes past `max_bytes`, are dropped (the WIT
//! promises logging never fails); the count of dropped lines is reported in
//! the invocation record so a flood is visible. Every part of a line counts
//! against `max_bytes` as the host writes it — the message and each field
//! escaped, plus fixed framing per line and per field — so empty fields
//! cannot slip past the budget, and a line carries at most
//! [`MAX_FIELDS_PER_LINE`] fields. Guest text is written escaped (`{:?}`),
//! so a guest cannot forge log lines with newlines or control characters.
//!
//! Owns the log grant ([`LogLimits`]), the per-invocation state
//! ([`LogState`]) and linking. It has no budget outcome (a flood is dropped,
//! never an error) and no host-call summaries: lines go to the invocation
//! record, never into the audit entry.

use super::bindings::warden::host::log::{Host, Level};
use super::catalogue::{Entry, GrantKind, Unit, empty_table, read_settings};
use super::{HostInterface, InvocationIdentity};
use crate::units::ByteSize;
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

/// Limits on `warden:host/log` per invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLimits {
    /// Most log lines one invocation may write. By default 100.
    #[serde(default = "LogLimits::default_lines")]
    pub max_lines: u32,
    /// Most log bytes (messages) one invocation may write. By default 16KiB.
    #[serde(default = "LogLimits::default_bytes")]
    pub max_bytes: ByteSize,
}

impl LogLimits {
    fn default_lines() -> u32 {
        100
    }
    fn default_bytes() -> ByteSize {
        ByteSize(16 << 10)
    }
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_lines: Self::default_lines(),
            max_bytes: Self::default_bytes(),
        }
    }
}

/// `warden:host/log`'s place in the catalogue.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Log,
    names: &["warden:host/log"],
    grant: |id, settings| Ok(GrantKind::Log(read_settings(id, settings)?)),
    default_settings: empty_table,
};

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// `trace` .. `error`.
    pub level: &'static str,
    /// The message (truncated to the byte budget).
    pub message: String,
    /// Structured fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// Most fields one log line may carry; a line with more is dropped (and
/// counted). Stops a guest from making the host format and store a huge
/// number of (possibly empty) fields.
pub const MAX_FIELDS_PER_LINE: usize = 32;

/// Bytes every line counts against `max_bytes` besides its text (level,
/// capability and request id are the host's, but a line of empty text must
/// still cost something).
pub const LINE_FRAMING: u64 = 16;

/// Bytes every field counts against `max_bytes` besides its key and value
/// (the quotes and separators the host writes around them).
pub const FIELD_FRAMING: u64 = 10;

/// Bytes `text` takes once escaped for the host's log.
fn escaped_len(text: &str) -> u64 {
    text.chars()
        .map(|c| c.escape_debug().count() as u64)
        .fold(0u64, u64::saturating_add)
}

/// What one line costs against `max_bytes`.
fn line_cost(message: &str, fields: &[(String, String)]) -> u64 {
    fields.iter().fold(
        escaped_len(message).saturating_add(LINE_FRAMING),
        |sum, (k, v)| {
            sum.saturating_add(escaped_len(k))
                .saturating_add(escaped_len(v))
                .saturating_add(FIELD_FRAMING)
        },
    )
}

/// Per-invocation log state.
pub struct LogState {
    limits: LogLimits,
    capability: String,
    request_id: String,
    bytes: u64,
    pub(crate) lines: Vec<LogLine>,
    pub(crate) dropped: u64,
}

impl LogState {
    /// The state of one invocation: named after the capability and request
    /// when log is granted (`limits`), nameless otherwise (nothing can write
    /// lines then).
    pub(crate) fn for_invocation(
        limits: Option<LogLimits>,
        id: &InvocationIdentity<'_>,
    ) -> LogState {
        match limits {
            Some(limits) => {
                LogState::new(limits, id.capability.to_string(), id.request_id.to_string())
            }
            None => LogState::new(LogLimits::default(), String::new(), String::new()),
        }
    }

    /// Fresh state for one invocation.
    pub fn new(limits: LogLimits, capability: String, request_id: String) -> LogState {
        LogState {
            limits,
            capability,
            request_id,
            bytes: 0,
            lines: Vec::new(),
            dropped: 0,
        }
    }

    fn record(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let over_lines = self.lines.len() as u64 >= u64::from(self.limits.max_lines);
        let too_many_fields = fields.len() > MAX_FIELDS_PER_LINE;
        let over_bytes = || {
            self.bytes.saturating_add(line_cost(&message, &fields)) > self.limits.max_bytes.bytes()
        };
        if over_lines || too_many_fields || over_bytes() {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.bytes = self.bytes.saturating_add(line_cost(&message, &fields));
        let level = level_name(level);
        match level {
            "error" => {
                tracing::error!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message:?}")
            }
            "warn" => {
                tracing::warn!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message:?}")
            }
            "info" => {
                tracing::info!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message:?}")
            }
            "debug" => {
                tracing::debug!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message:?}")
            }
            _ => {
                tracing::trace!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message:?}")
            }
        }
        self.lines.push(LogLine {
            level,
            message,
            fields,
        });
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl Host for LogState {
    fn log(&mut self, level: Level, message: String) {
        self.record(level, message, Vec::new());
    }

    fn log_fields(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        self.record(level, message, fields);
    }
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = &'a mut LogState;
}

/// Links `warden:host/log` into `linker`; `get` finds the invocation's
/// [`LogState`] in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogState,
) -> wasmtime::Result<()> {
    super::bindings::warden::host::log::add_to_linker::<T, HasLog>(linker, get)
}

/// Nothing to report: lines past a limit are dropped and counted in the
/// invocation record, never a budget outcome.
impl HostInterface for LogState {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::ByteSize;

    #[test]
    fn lines_past_the_budget_are_dropped_and_counted() {
        let mut s = LogState::new(
            LogLimits {
                max_lines: 2,
                max_bytes: ByteSize(1000),
            },
            "c".into(),
            "r".into(),
        );
        for i in 0..5 {
            s.log(Level::Info, format!("line {i}"));
        }
        assert_eq!(s.lines.len(), 2);
        assert_eq!(s.dropped, 3);
    }

    #[test]
    fn bytes_past_the_budget_are_dropped() {
        let mut s = LogState::new(
            LogLimits {
                max_lines: 100,
                // "12345" costs 5 + LINE_FRAMING = 21, "1234567" 23.
                max_bytes: ByteSize(40),
            },
            "c".into(),
            "r".into(),
        );
        s.log(Level::Warn, "12345".into());
        s.log(Level::Warn, "1234567".into());
        assert_eq!(s.lines.len(), 1);
        assert_eq!(s.dropped, 1);
    }

    #[test]
    fn empty_fields_count_against_the_byte_budget() {
        let mut s = LogState::new(
            LogLimits {
                max_lines: 1000,
                max_bytes: ByteSize(1000),
            },
            "c".into(),
            "r".into(),
        );
        let empty = vec![(String::new(), String::new()); MAX_FIELDS_PER_LINE];
        for _ in 0..100 {
            s.log_fields(Level::Info, String::new(), empty.clone());
        }
        let cost = LINE_FRAMING + FIELD_FRAMING * MAX_FIELDS_PER_LINE as u64;
        assert_eq!(s.lines.len() as u64, 1000 / cost);
        assert_eq!(s.dropped, 100 - 1000 / cost);
        assert!(s.bytes <= 1000);
    }

    #[test]
    fn a_line_with_more_fields_than_the_cap_is_dropped() {
        let mut s = LogState::new(LogLimits::default(), "c".into(), "r".into());
        let many = vec![(String::new(), String::new()); MAX_FIELDS_PER_LINE + 1];
        s.log_fields(Level::Info, "m".into(), many);
        assert!(s.lines.is_empty());
        assert_eq!(s.dropped, 1);
    }

    #[test]
    fn control_characters_count_as_the_escapes_the_log_writes() {
        assert_eq!(escaped_len("a\nb"), 4);
        assert_eq!(escaped_len("\u{1b}"), "\\u{1b}".len() as u64);
    }
}
