//! `wasi:random`: wasmtime-wasi's random sources, seeded from the request id
//! unless a policy grants the system's entropy.
//!
//! Owns the random grant (`mode = "seeded" | "system"`), the seed
//! derivation that keeps an invocation replayable, and linking. It must
//! never hand a guest host entropy unless the grant says `system`.

use super::catalogue::{Entry, GrantKind, Unit, read_settings};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
    /// The host's entropy source. Invocations are not replayable.
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
