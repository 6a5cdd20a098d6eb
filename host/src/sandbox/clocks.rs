//! Virtual clocks and seeded random: what makes an invocation replayable.

use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// A wall clock fixed at the request's admission time.
pub struct FixedWallClock {
    pub since_epoch: Duration,
}

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.since_epoch
    }
}

/// A monotonic clock that starts at zero and advances by exactly one
/// microsecond per reading: deterministic, yet never stuck for guests that
/// measure elapsed time in a loop.
#[derive(Default)]
pub struct CountingMonotonicClock {
    readings: AtomicU64,
}

impl HostMonotonicClock for CountingMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.readings
            .fetch_add(1, Ordering::Relaxed)
            .saturating_mul(1_000)
    }
}

/// A 32-byte seed derived from the request id and a purpose label, so that
/// the secure and insecure generators never share a stream.
pub fn seed(request_id: &str, purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"warden-random-v1\0");
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(request_id.as_bytes());
    h.finalize().into()
}
