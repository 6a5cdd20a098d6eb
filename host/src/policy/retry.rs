//! `[retry]`: which failure classes are retried, how often and how fast.
//!
//! Pure: [`RetryPolicy::next_delay`] is a function of the outcome, the
//! attempt number, the request id and the time already spent. Only
//! `transient` (host-side I/O), `trap` and `timeout` (an attempt that ran
//! out of wall time: `budget_exhausted:time`, a workflow step's `timeout`
//! included; a slow service may answer the next attempt in time) may be
//! retried: `denied`, `invalid_input` and the other budgets would fail the
//! same way again, so naming them is an error.

use super::HumanDuration;
use crate::outcome::{Budget, Outcome};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Retry settings of one failure class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRule {
    /// Total attempts, the first included (1 = no retry).
    pub attempts: u32,
    /// Backoff shape; only `"exponential"`.
    #[serde(default)]
    pub backoff: Backoff,
    /// Delay before the second attempt; doubles each time. By default 50ms.
    #[serde(default = "defaults::base")]
    pub base: HumanDuration,
    /// Largest delay between attempts. By default 5s.
    #[serde(default = "defaults::max_delay")]
    pub max_delay: HumanDuration,
    /// No attempt starts after this long since the first. By default 30s.
    #[serde(default = "defaults::deadline")]
    pub deadline: HumanDuration,
}

/// Backoff shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `base * 2^(attempt-1)`, capped by `max_delay`, with seeded jitter in
    /// its upper half.
    #[default]
    Exponential,
}

mod defaults {
    use super::*;
    pub fn base() -> HumanDuration {
        HumanDuration(Duration::from_millis(50))
    }
    pub fn max_delay() -> HumanDuration {
        HumanDuration(Duration::from_secs(5))
    }
    pub fn deadline() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
}

/// `[retry]`: retry rules per failure class (none by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Host-side I/O failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient: Option<RetryRule>,
    /// Guest crashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trap: Option<RetryRule>,
    /// Attempts that ran out of wall time (`budget_exhausted:time`: the
    /// policy's `wall_time` or a workflow step's `timeout`). Absent from
    /// the canonical form when unset, so existing policies hash as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<RetryRule>,
}

impl RetryPolicy {
    /// Whether nothing is retried.
    pub fn is_empty(&self) -> bool {
        self.transient.is_none() && self.trap.is_none() && self.timeout.is_none()
    }

    /// How long to wait before attempt `attempt + 1` after `outcome`, or
    /// `None` when it must not be retried. Jitter is seeded from
    /// `request_id` and the attempt, so a request retries on the same
    /// schedule every time.
    pub fn next_delay(
        &self,
        outcome: Outcome,
        attempt: u32,
        request_id: &str,
        elapsed: Duration,
    ) -> Option<Duration> {
        let rule = match outcome {
            Outcome::Transient => self.transient?,
            Outcome::Trap => self.trap?,
            Outcome::BudgetExhausted(Budget::Time) => self.timeout?,
            _ => return None,
        };
        if attempt >= rule.attempts {
            return None;
        }
        let exp = rule
            .base
            .get()
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20));
        let full = exp.min(rule.max_delay.get());
        let seed = Sha256::digest(format!("{request_id}#{attempt}").as_bytes());
        let r = u64::from_le_bytes(seed[..8].try_into().unwrap_or([0; 8]));
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(if nanos == 0 { 0 } else { r % nanos });
        let delay = half + jitter;
        (elapsed + delay <= rule.deadline.get()).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> RetryPolicy {
        toml::from_str(text).expect("valid retry section")
    }

    #[test]
    fn only_the_configured_classes_are_retried() {
        let p = policy("transient = { attempts = 3 }");
        let d = |o, a| p.next_delay(o, a, "r-1", Duration::ZERO);
        assert!(d(Outcome::Transient, 1).is_some());
        assert!(d(Outcome::Transient, 2).is_some());
        assert!(d(Outcome::Transient, 3).is_none(), "three attempts in all");
        assert!(d(Outcome::Trap, 1).is_none());
        assert!(d(Outcome::Denied, 1).is_none());
        assert!(d(Outcome::InvalidInput, 1).is_none());
    }

    #[test]
    fn a_timeout_rule_retries_only_attempts_that_ran_out_of_wall_time() {
        let p = policy("timeout = { attempts = 2 }");
        let d = |o, a| p.next_delay(o, a, "r-1", Duration::ZERO);
        assert!(d(Outcome::BudgetExhausted(Budget::Time), 1).is_some());
        assert!(
            d(Outcome::BudgetExhausted(Budget::Time), 2).is_none(),
            "two attempts in all"
        );
        assert!(d(Outcome::BudgetExhausted(Budget::Fuel), 1).is_none());
        assert!(d(Outcome::Transient, 1).is_none());
        assert!(!p.is_empty());
    }

    #[test]
    fn never_retried_classes_cannot_be_configured() {
        for class in ["denied", "invalid_input", "budget_exhausted"] {
            let e = toml::from_str::<RetryPolicy>(&format!("{class} = {{ attempts = 2 }}"));
            assert!(e.is_err(), "{class} must be refused");
        }
    }

    #[test]
    fn backoff_grows_is_capped_is_deterministic_and_respects_the_deadline() {
        let p = policy(
            "trap = { attempts = 10, base = \"100ms\", max_delay = \"1s\", deadline = \"2s\" }",
        );
        let d = |a, e| p.next_delay(Outcome::Trap, a, "r-x", e);
        let first = d(1, Duration::ZERO).expect("retried");
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let fifth = d(5, Duration::ZERO).expect("retried");
        assert!(fifth >= Duration::from_millis(500) && fifth <= Duration::from_secs(1));
        assert_eq!(d(3, Duration::ZERO), d(3, Duration::ZERO), "seeded jitter");
        assert!(
            d(2, Duration::from_millis(1990)).is_none(),
            "past the deadline"
        );
    }
}
