//! The audit chain: what warden records about every request, and how anyone
//! can check that the record was not altered.
//!
//! Every request outcome (and later, reloads and approval decisions) becomes one
//! [`AuditEntry`]. Entries form a hash chain: `hash = SHA-256(prev_hash ||
//! encode(entry))`, with the encoding specified byte for byte in `docs/audit.md`
//! so another implementation can verify an export. Periodic [`Checkpoint`]s sign
//! `(size, head hash, time)` with the host's Ed25519 key, so truncation and
//! wholesale rewriting are detected too.
//!
//! This folder is the *pure* part: encoding, hashing, checkpoint signing and
//! verification over plain data. It must never do I/O, touch SQLite or
//! wasmtime, or read the clock; the durable log lives in [`crate::store`].
//! The one exception is [`hostkey`], which reads or creates the host key
//! files in the data directory.

pub mod anchor;
pub mod checkpoint;
pub mod entry;
pub mod export;
pub mod hostkey;
pub mod verify;

pub use anchor::{AnchorError, ExpectedCheckpoint};
pub use checkpoint::{Checkpoint, CheckpointError, SignatureBytes, key_id};
pub use entry::{
    Approval, ApprovalDecision, AuditEntry, DecodeError, EventKind, HostCall, NewEntry,
    RouteDecision, entry_hash,
};

/// Re-export shim: the hash type lives in [`crate::digest`]; callers still
/// naming `audit::Hash256` move there when the lead merges issue 15.
pub use crate::digest::Hash256;

/// Re-export shim: canonical JSON as bytes, for callers still naming
/// `audit::canonical_json` (the one definition is
/// [`crate::digest::canonical_json`]).
pub fn canonical_json(v: &serde_json::Value) -> Vec<u8> {
    crate::digest::canonical_json(v).into_bytes()
}
pub use verify::{ChainVerifier, Problem, ProblemKind, VerifyReport, verify_chain};

/// Re-export shim: SHA-256 of the canonical JSON of `v`, for callers still
/// naming `audit::canonical_json_hash` (host/examples/audit_fill.rs); the
/// one definition is [`crate::digest::Hash256::of_json`].
pub fn canonical_json_hash(v: &serde_json::Value) -> [u8; 32] {
    crate::digest::Hash256::of_json(v).0
}
