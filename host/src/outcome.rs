//! Outcome classes: how every request ends.
//!
//! Every request warden admits ends in exactly one [`Outcome`]; every outcome
//! is audited and none of them takes the host down. The string form
//! (`Outcome::as_str`) is part of the audit format and the HTTP API: never
//! rename a variant's string.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which budget an invocation crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// Wasm fuel (deterministic instruction budget).
    Fuel,
    /// Linear memory and tables.
    Memory,
    /// Wall-clock time (epoch deadline).
    Time,
    /// Size of the returned output JSON.
    Output,
    /// Captured stdout/stderr bytes.
    Stdout,
    /// Outbound HTTP requests or bytes.
    Http,
    /// Model tokens.
    Tokens,
    /// Scoped key-value quotas.
    Kv,
    /// Log lines or bytes.
    Log,
    /// Bytes written under a preopened directory (`max_write_bytes`).
    Fs,
}

impl Budget {
    /// The budget's stable name, as used in policies, audit entries and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Budget::Fuel => "fuel",
            Budget::Memory => "memory",
            Budget::Time => "time",
            Budget::Output => "output",
            Budget::Stdout => "stdout",
            Budget::Http => "http",
            Budget::Tokens => "tokens",
            Budget::Kv => "kv",
            Budget::Log => "log",
            Budget::Fs => "fs",
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of a request's outcome (DESIGN.md "Outcomes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "class", content = "budget")]
pub enum Outcome {
    /// The function returned normally.
    Ok,
    /// The input did not type-check against the export's WIT signature.
    InvalidInput,
    /// No route matched the request.
    NoRoute,
    /// Refused by policy, signature/trust checks or authentication.
    Denied,
    /// Held until humans approve.
    PendingApproval,
    /// An approver denied the request.
    ApprovalDenied,
    /// Nobody approved in time.
    ApprovalExpired,
    /// A budget was crossed.
    BudgetExhausted(Budget),
    /// The guest crashed (trap, panic, stack overflow).
    Trap,
    /// The guest returned its own error (an `err` result).
    CapabilityError,
    /// Host-side I/O failure; retryable by policy.
    Transient,
}

impl Outcome {
    /// The outcome class name (`budget_exhausted` for every budget).
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::InvalidInput => "invalid_input",
            Outcome::NoRoute => "no_route",
            Outcome::Denied => "denied",
            Outcome::PendingApproval => "pending_approval",
            Outcome::ApprovalDenied => "approval_denied",
            Outcome::ApprovalExpired => "approval_expired",
            Outcome::BudgetExhausted(_) => "budget_exhausted",
            Outcome::Trap => "trap",
            Outcome::CapabilityError => "capability_error",
            Outcome::Transient => "transient",
        }
    }

    /// The budget crossed, for `budget_exhausted`.
    pub fn budget(self) -> Option<Budget> {
        match self {
            Outcome::BudgetExhausted(b) => Some(b),
            _ => None,
        }
    }

    /// Stable one-word form: the class, or `budget_exhausted:<budget>`.
    pub fn as_string(self) -> String {
        match self {
            Outcome::BudgetExhausted(b) => format!("budget_exhausted:{b}"),
            other => other.class().to_string(),
        }
    }

    /// Parses [`Outcome::as_string`]'s form back.
    pub fn parse(s: &str) -> Option<Outcome> {
        if let Some(b) = s.strip_prefix("budget_exhausted:") {
            let budget = match b {
                "fuel" => Budget::Fuel,
                "memory" => Budget::Memory,
                "time" => Budget::Time,
                "output" => Budget::Output,
                "stdout" => Budget::Stdout,
                "http" => Budget::Http,
                "tokens" => Budget::Tokens,
                "kv" => Budget::Kv,
                "log" => Budget::Log,
                "fs" => Budget::Fs,
                _ => return None,
            };
            return Some(Outcome::BudgetExhausted(budget));
        }
        Some(match s {
            "ok" => Outcome::Ok,
            "invalid_input" => Outcome::InvalidInput,
            "no_route" => Outcome::NoRoute,
            "denied" => Outcome::Denied,
            "pending_approval" => Outcome::PendingApproval,
            "approval_denied" => Outcome::ApprovalDenied,
            "approval_expired" => Outcome::ApprovalExpired,
            "trap" => Outcome::Trap,
            "capability_error" => Outcome::CapabilityError,
            "transient" => Outcome::Transient,
            _ => return None,
        })
    }

    /// Process exit code used by `warden run` for this outcome (documented in README).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::InvalidInput => 10,
            Outcome::NoRoute => 11,
            Outcome::Denied => 12,
            Outcome::PendingApproval => 13,
            Outcome::ApprovalDenied => 14,
            Outcome::ApprovalExpired => 15,
            Outcome::BudgetExhausted(_) => 16,
            Outcome::Trap => 17,
            Outcome::CapabilityError => 18,
            Outcome::Transient => 19,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// Resources one invocation used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Fuel consumed (0 when fuel metering is off).
    pub fuel: u64,
    /// Peak linear memory + table bytes the guest grew to.
    pub peak_memory: u64,
    /// Wall time of the invocation in microseconds.
    pub wall_time_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_strings_round_trip() {
        let all = [
            Outcome::Ok,
            Outcome::InvalidInput,
            Outcome::NoRoute,
            Outcome::Denied,
            Outcome::PendingApproval,
            Outcome::ApprovalDenied,
            Outcome::ApprovalExpired,
            Outcome::BudgetExhausted(Budget::Fuel),
            Outcome::BudgetExhausted(Budget::Memory),
            Outcome::BudgetExhausted(Budget::Time),
            Outcome::BudgetExhausted(Budget::Output),
            Outcome::BudgetExhausted(Budget::Stdout),
            Outcome::BudgetExhausted(Budget::Http),
            Outcome::BudgetExhausted(Budget::Tokens),
            Outcome::BudgetExhausted(Budget::Kv),
            Outcome::BudgetExhausted(Budget::Log),
            Outcome::BudgetExhausted(Budget::Fs),
            Outcome::Trap,
            Outcome::CapabilityError,
            Outcome::Transient,
        ];
        for o in all {
            assert_eq!(Outcome::parse(&o.as_string()), Some(o));
        }
        assert_eq!(Outcome::parse("budget_exhausted:nope"), None);
    }
}
