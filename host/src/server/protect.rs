//! Per-capability protection: a concurrency limit and a circuit breaker.
//!
//! The breaker opens after `failures` consecutive `transient` attempts,
//! refuses every request while open, lets exactly one probe through after
//! the cool-down (half-open), and closes when a probe ends in anything but
//! `transient`. State survives reloads (it is keyed by capability name).

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Breaker state, as shown in metrics and `/v1/capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests pass.
    Closed,
    /// Requests are refused until the cool-down ends.
    Open,
    /// One probe is running; others are refused.
    HalfOpen,
}

impl BreakerState {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// Metric value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
struct Breaker {
    consecutive: u32,
    state: BreakerState,
    opened_at: Option<Instant>,
}

/// One capability's limits and breaker.
#[derive(Debug)]
pub struct Protection {
    /// Concurrent invocations of the capability.
    pub slots: Arc<Semaphore>,
    /// Its configured concurrency.
    pub concurrency: u32,
    failures: u32,
    cool_down: Duration,
    breaker: Mutex<Breaker>,
}

/// Whether the breaker let a request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Pass,
    /// Go ahead as the half-open probe.
    Probe,
    /// Refused; retry after this long.
    Refused(Duration),
}

impl Protection {
    /// A closed breaker and `concurrency` free slots.
    pub fn new(concurrency: u32, failures: u32, cool_down: Duration) -> Protection {
        Protection {
            slots: Arc::new(Semaphore::new(concurrency as usize)),
            concurrency,
            failures,
            cool_down,
            breaker: Mutex::new(Breaker {
                consecutive: 0,
                state: BreakerState::Closed,
                opened_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Asks the breaker whether an attempt may run.
    pub fn admit(&self) -> Admission {
        let mut b = self.lock();
        match b.state {
            BreakerState::Closed => Admission::Pass,
            BreakerState::HalfOpen => Admission::Refused(self.cool_down),
            BreakerState::Open => {
                let since = b.opened_at.map_or(self.cool_down, |t| t.elapsed());
                if since >= self.cool_down {
                    b.state = BreakerState::HalfOpen;
                    Admission::Probe
                } else {
                    Admission::Refused(self.cool_down - since)
                }
            }
        }
    }

    /// Records how an attempt ended (`transient` or not).
    pub fn record(&self, transient: bool) {
        let mut b = self.lock();
        if transient {
            b.consecutive = b.consecutive.saturating_add(1);
            let trip = b.state == BreakerState::HalfOpen
                || (self.failures > 0 && b.consecutive >= self.failures);
            if trip {
                b.state = BreakerState::Open;
                b.opened_at = Some(Instant::now());
            }
        } else {
            b.consecutive = 0;
            b.state = BreakerState::Closed;
            b.opened_at = None;
        }
    }

    /// Gives back a half-open probe that never ran (it timed out in the
    /// queue): the next request probes instead.
    pub fn record_not_run(&self) {
        let mut b = self.lock();
        if b.state == BreakerState::HalfOpen {
            b.state = BreakerState::Open;
        }
    }

    /// Invocations running now.
    pub fn busy(&self) -> u32 {
        self.concurrency
            .saturating_sub(u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_k_transients_probes_and_closes() {
        let p = Protection::new(1, 3, Duration::from_millis(20));
        for _ in 0..2 {
            assert_eq!(p.admit(), Admission::Pass);
            p.record(true);
        }
        assert_eq!(p.state(), BreakerState::Closed);
        p.record(true);
        assert_eq!(p.state(), BreakerState::Open);
        assert!(matches!(p.admit(), Admission::Refused(_)));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(p.admit(), Admission::Probe);
        assert!(
            matches!(p.admit(), Admission::Refused(_)),
            "one probe at a time"
        );
        p.record(false);
        assert_eq!(p.state(), BreakerState::Closed);
        assert_eq!(p.admit(), Admission::Pass);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let p = Protection::new(1, 1, Duration::from_millis(1));
        p.record(true);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(p.admit(), Admission::Probe);
        p.record(true);
        assert_eq!(p.state(), BreakerState::Open);
    }

    #[test]
    fn a_success_resets_the_count() {
        let p = Protection::new(1, 2, Duration::from_secs(1));
        p.record(true);
        p.record(false);
        p.record(true);
        assert_eq!(p.state(), BreakerState::Closed);
    }
}
