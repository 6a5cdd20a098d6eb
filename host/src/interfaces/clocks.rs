//! `wasi:clocks`: wasmtime-wasi's clocks, virtual unless a policy grants
//! the system clock.
//!
//! Owns the clock grant (`mode = "virtual" | "system"`), the virtual clocks
//! that keep an invocation replayable, the recorded system clocks, and
//! linking. A virtual wall clock reads the request's admission time; a
//! virtual monotonic clock counts readings. A granted system clock reads
//! the host's clock and records every reading (and resolution) in the
//! invocation's recording, so `warden audit replay` answers the same
//! readings. It must never hand a guest the host's clock unless the grant
//! says `system`, and never a replayed guest anything but the recording.

use super::catalogue::{Entry, GrantKind, Unit, read_settings};
use super::recording::{self, Replayed};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi::clocks::{MonotonicClock, WallClock, WasiClocks, WasiClocksCtxView};
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// How a clock import behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    /// Fixed at the request's admission time (wall clock); a deterministic
    /// counter (monotonic clock). Invocations stay replayable.
    #[default]
    Virtual,
    /// The host's real clock; its readings are recorded for replay.
    System,
}

/// The wall clock's interface name (the other is the monotonic clock).
pub const WALL_CLOCK: &str = "wasi:clocks/wall-clock";

/// The monotonic clock's interface name.
pub const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock";

/// The clocks' place in the catalogue.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Clocks,
    names: &[WALL_CLOCK, MONOTONIC_CLOCK],
    grant,
    default_settings: |_| "{ mode = \"virtual\" }",
};

fn grant(id: &str, settings: toml::Value) -> Result<GrantKind, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ClockSettings {
        #[serde(default)]
        mode: ClockMode,
    }
    let s: ClockSettings = read_settings(id, settings)?;
    Ok(GrantKind::Clock { mode: s.mode })
}

/// Links the clock interface `id` (one of [`ENTRY`]'s names).
pub fn add_to_linker<T: Send + 'static>(
    l: &mut Linker<T>,
    id: &str,
    get: fn(&mut T) -> WasiClocksCtxView<'_>,
) -> wasmtime::Result<()> {
    match id {
        WALL_CLOCK => wasi::clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, get),
        _ => wasi::clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, get),
    }
}

/// A wall clock fixed at the request's admission time.
pub struct FixedWallClock {
    /// The admission time, since the Unix epoch.
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

/// One reading of a recorded system clock: from the recording when
/// replaying (a mismatch is kept as the divergence; the guest then reads
/// `decode(None)`), else `real()`, recorded as the next reading of `call`.
fn reading<T>(
    recording: &recording::Shared,
    call: &str,
    real: impl FnOnce() -> T,
    encode: impl FnOnce(&T) -> Value,
    decode: impl FnOnce(&Value) -> Option<T>,
    fallback: T,
) -> T {
    let mut r = recording::lock(recording);
    match r.replay_run(call) {
        Some(Replayed::Answer(v)) => decode(&v).unwrap_or_else(|| {
            r.malformed(call);
            fallback
        }),
        Some(Replayed::Diverged) => fallback,
        None => {
            let t = real();
            r.record_run(call, encode(&t));
            t
        }
    }
}

fn duration_json(d: &Duration) -> Value {
    json!([d.as_secs(), d.subsec_nanos()])
}

fn duration_of(v: &Value) -> Option<Duration> {
    let secs = v.get(0)?.as_u64()?;
    let nanos = u32::try_from(v.get(1)?.as_u64()?).ok()?;
    (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
}

/// The host's wall clock, every reading recorded (or, replaying, answered
/// from the recording; then the host's clock is never read).
pub struct RecordedWallClock {
    /// The invocation's recording.
    pub recording: recording::Shared,
}

impl HostWallClock for RecordedWallClock {
    fn resolution(&self) -> Duration {
        reading(
            &self.recording,
            "wasi:clocks/wall-clock resolution",
            || WallClock::new().resolution(),
            duration_json,
            duration_of,
            Duration::from_nanos(1),
        )
    }
    fn now(&self) -> Duration {
        reading(
            &self.recording,
            "wasi:clocks/wall-clock now",
            || WallClock::new().now(),
            duration_json,
            duration_of,
            Duration::ZERO,
        )
    }
}

/// The host's monotonic clock, every reading recorded (or, replaying,
/// answered from the recording).
pub struct RecordedMonotonicClock {
    /// The invocation's recording.
    pub recording: recording::Shared,
    /// The host's clock (its zero is when the invocation first read it).
    pub clock: MonotonicClock,
}

impl HostMonotonicClock for RecordedMonotonicClock {
    fn resolution(&self) -> u64 {
        reading(
            &self.recording,
            "wasi:clocks/monotonic-clock resolution",
            || self.clock.resolution(),
            |n| json!(n),
            Value::as_u64,
            1,
        )
    }
    fn now(&self) -> u64 {
        reading(
            &self.recording,
            "wasi:clocks/monotonic-clock now",
            || self.clock.now(),
            |n| json!(n),
            Value::as_u64,
            0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interfaces::recording::{Recorded, Recording};
    use std::sync::{Arc, Mutex};

    #[test]
    fn system_clock_readings_are_recorded_as_one_run_and_replayed_without_the_host_clock() {
        let rec: recording::Shared = Arc::new(Mutex::new(Recording::default()));
        let wall = RecordedWallClock {
            recording: rec.clone(),
        };
        let mono = RecordedMonotonicClock {
            recording: rec.clone(),
            clock: MonotonicClock::new(),
        };
        let w: Vec<Duration> = (0..3).map(|_| wall.now()).collect();
        let m = mono.now();
        let (results, why) = recording::lock(&rec).finish();
        assert_eq!(why, None);
        assert_eq!(results.len(), 2, "three wall readings are one run");
        let feed: Vec<Recorded> = results
            .iter()
            .map(|b| Recorded::from_bytes(b).expect("parse"))
            .collect();
        let replay: recording::Shared = Arc::new(Mutex::new(Recording::replaying(feed)));
        let wall = RecordedWallClock {
            recording: replay.clone(),
        };
        let mono = RecordedMonotonicClock {
            recording: replay.clone(),
            clock: MonotonicClock::new(),
        };
        assert_eq!((0..3).map(|_| wall.now()).collect::<Vec<_>>(), w);
        assert_eq!(mono.now(), m);
        let r = recording::lock(&replay);
        assert_eq!(r.divergence(), None);
        assert!(r.unconsumed().is_none());
    }

    #[test]
    fn a_replayed_guest_reading_the_clock_once_more_than_recorded_diverges() {
        let feed = vec![Recorded {
            call: "wasi:clocks/wall-clock now".into(),
            result: json!({"run": [[5, 0]]}),
        }];
        let rec: recording::Shared = Arc::new(Mutex::new(Recording::replaying(feed)));
        let wall = RecordedWallClock {
            recording: rec.clone(),
        };
        assert_eq!(wall.now(), Duration::from_secs(5));
        assert_eq!(wall.now(), Duration::ZERO);
        assert_eq!(
            recording::lock(&rec).divergence(),
            Some("diverged at call 2: expected no further call, got wasi:clocks/wall-clock now")
        );
    }
}
