//! `warden:host/log`: structured log lines to tracing, with the capability
//! and request id, bounded per invocation.
//!
//! Lines past `max_lines`, or bytes past `max_bytes`, are dropped (the WIT
//! promises logging never fails); the count of dropped lines is reported in
//! the invocation record so a flood is visible.

use super::bindings::warden::host::log::{Host, Level};
use crate::policy::LogLimits;
use serde::Serialize;
use wasmtime::component::{HasData, Linker};

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
        let size: u64 =
            (message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()) as u64;
        let over_lines = self.lines.len() as u64 >= u64::from(self.limits.max_lines);
        let over_bytes = self.bytes.saturating_add(size) > self.limits.max_bytes.bytes();
        if over_lines || over_bytes {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.bytes += size;
        let level = level_name(level);
        match level {
            "error" => {
                tracing::error!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message}")
            }
            "warn" => {
                tracing::warn!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message}")
            }
            "info" => {
                tracing::info!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message}")
            }
            "debug" => {
                tracing::debug!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message}")
            }
            _ => {
                tracing::trace!(capability = %self.capability, request_id = %self.request_id, fields = ?fields, "{message}")
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

/// Links `warden:host/log` into `linker`.
pub fn add_to_linker(linker: &mut Linker<crate::sandbox::InvocationState>) -> wasmtime::Result<()> {
    super::bindings::warden::host::log::add_to_linker::<_, HasLog>(linker, |s| &mut s.log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ByteSize;

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
                max_bytes: ByteSize(10),
            },
            "c".into(),
            "r".into(),
        );
        s.log(Level::Warn, "12345".into());
        s.log(Level::Warn, "1234567".into());
        assert_eq!(s.lines.len(), 1);
        assert_eq!(s.dropped, 1);
    }
}
