//! `wasi:clocks`: wasmtime-wasi's clocks, virtual unless a policy grants
//! the system clock.
//!
//! Owns the clock grant (`mode = "virtual" | "system"`), the virtual clocks
//! that keep an invocation replayable, and linking. A virtual wall clock
//! reads the request's admission time; a virtual monotonic clock counts
//! readings. It must never hand a guest the host's clock unless the grant
//! says `system`.

use super::catalogue::{Entry, GrantKind, Unit, read_settings};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksCtxView};
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
    /// The host's real clock. Invocations are not replayable.
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
