//! `wasi:random`: wasmtime-wasi's random sources, seeded from the request id
//! unless a policy grants the system's entropy.
//!
//! Owns the random grant (`mode = "seeded" | "system"`), the seed
//! derivation that keeps an invocation replayable, the recorded system
//! generator, and linking. Granted system random draws from the host's
//! entropy and records every byte handed out (one byte stream per
//! generator), so `warden audit replay` hands out the same bytes. It must
//! never hand a guest host entropy unless the grant says `system`, and
//! never a replayed guest anything but the recording.

use super::catalogue::{Entry, GrantKind, Unit, read_settings};
use super::recording;
use rand::{SeedableRng, TryRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use wasmtime::component::Linker;
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::random::{WasiRandom, WasiRandomCtx};

/// How a random import behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomMode {
    /// A generator seeded from the request id. Invocations stay replayable.
    #[default]
    Seeded,
    /// The host's entropy source; the bytes are recorded for replay.
    System,
}

/// The random sources' place in the catalogue.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Random,
    names: &[
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
    ],
    grant,
    default_settings: |_| "{ mode = \"seeded\" }",
};

fn grant(id: &str, settings: toml::Value) -> Result<GrantKind, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RandomSettings {
        #[serde(default)]
        mode: RandomMode,
    }
    let s: RandomSettings = read_settings(id, settings)?;
    Ok(GrantKind::Random { mode: s.mode })
}

/// Links the random interface `id` (one of [`ENTRY`]'s names).
pub fn add_to_linker<T: Send + 'static>(
    l: &mut Linker<T>,
    id: &str,
    get: fn(&mut T) -> &mut WasiRandomCtx,
) -> wasmtime::Result<()> {
    match id {
        "wasi:random/random" => wasi::random::random::add_to_linker::<T, WasiRandom>(l, get),
        "wasi:random/insecure" => wasi::random::insecure::add_to_linker::<T, WasiRandom>(l, get),
        _ => wasi::random::insecure_seed::add_to_linker::<T, WasiRandom>(l, get),
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

/// A system generator whose bytes are recorded as the byte stream
/// `wasi:random/<purpose> bytes` (or, replaying, read from the recording;
/// then the host's entropy is never drawn).
pub struct RecordedRng {
    recording: recording::Shared,
    call: String,
    /// Seeded from the host's entropy, like wasmtime-wasi's default.
    inner: Option<rand::rngs::StdRng>,
}

impl RecordedRng {
    /// The generator for `purpose` (`random` or `insecure`).
    pub fn new(recording: recording::Shared, purpose: &str) -> RecordedRng {
        let replaying = recording::lock(&recording).is_replay();
        RecordedRng {
            recording,
            call: format!("wasi:random/{purpose} bytes"),
            inner: (!replaying).then(|| rand::rngs::StdRng::from_rng(&mut rand::rng())),
        }
    }

    /// The recorded `insecure-seed` value: drawn from the host's entropy
    /// and recorded, or read from the recording.
    pub fn insecure_seed(recording: &recording::Shared) -> u128 {
        let mut seed = [0u8; 16];
        let mut r = RecordedRng::new(recording.clone(), "insecure-seed");
        r.fill(&mut seed);
        u128::from_le_bytes(seed)
    }

    fn fill(&mut self, dst: &mut [u8]) {
        let mut rec = recording::lock(&self.recording);
        match rec.replay_bytes(&self.call, dst.len()) {
            Some(Some(bytes)) if bytes.len() == dst.len() => dst.copy_from_slice(&bytes),
            // Diverged or malformed (kept as the divergence): zeros.
            Some(_) => dst.fill(0),
            None => {
                if let Some(inner) = &mut self.inner {
                    rand::Rng::fill_bytes(inner, dst);
                }
                rec.record_bytes(&self.call, dst);
            }
        }
    }
}

impl TryRng for RecordedRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interfaces::recording::{Recorded, Recording};
    use std::sync::{Arc, Mutex};

    #[test]
    fn system_random_bytes_are_recorded_as_one_stream_and_replayed_exactly() {
        let rec: recording::Shared = Arc::new(Mutex::new(Recording::default()));
        let mut rng = RecordedRng::new(rec.clone(), "random");
        let a = rand::Rng::next_u32(&mut rng);
        let b = rand::Rng::next_u64(&mut rng);
        let mut c = [0u8; 33];
        rand::Rng::fill_bytes(&mut rng, &mut c);
        let (results, why) = recording::lock(&rec).finish();
        assert_eq!(why, None);
        assert_eq!(results.len(), 1, "one stream for consecutive draws");
        let feed: Vec<Recorded> = results
            .iter()
            .map(|b| Recorded::from_bytes(b).expect("parse"))
            .collect();
        let replay: recording::Shared = Arc::new(Mutex::new(Recording::replaying(feed)));
        let mut rng = RecordedRng::new(replay.clone(), "random");
        assert_eq!(rand::Rng::next_u32(&mut rng), a);
        assert_eq!(rand::Rng::next_u64(&mut rng), b);
        let mut again = [0u8; 33];
        rand::Rng::fill_bytes(&mut rng, &mut again);
        assert_eq!(again, c);
        let r = recording::lock(&replay);
        assert_eq!(r.divergence(), None);
        assert!(r.unconsumed().is_none());
    }

    #[test]
    fn a_replayed_guest_drawing_more_random_bytes_than_recorded_diverges() {
        let feed = vec![Recorded {
            call: "wasi:random/random bytes".into(),
            result: serde_json::json!({"bytes": "01020304"}),
        }];
        let rec: recording::Shared = Arc::new(Mutex::new(Recording::replaying(feed)));
        let mut rng = RecordedRng::new(rec.clone(), "random");
        assert_eq!(rand::Rng::next_u64(&mut rng), 0);
        assert!(
            recording::lock(&rec)
                .divergence()
                .is_some_and(|d| d.contains("wasi:random/random bytes")),
        );
    }
}
