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
//! wasmtime, or read the clock; the durable log (and the host key files
//! in the data directory, [`crate::store::hostkey`]) live in [`crate::store`].

pub mod anchor;
pub mod checkpoint;
pub mod entry;
pub mod export;
pub mod merkle;
pub mod note;
pub mod proof_file;
#[cfg(test)]
mod test_vectors;
pub mod tiles;
pub mod verify;
pub mod witness;

pub use anchor::{AnchorError, ExpectedCheckpoint};
pub use checkpoint::{Checkpoint, CheckpointError, SignatureBytes, key_id};
pub use entry::{
    Approval, ApprovalDecision, AuditEntry, DecodeError, EventKind, Evidence, HostCall, NewEntry,
    RouteDecision, entry_hash,
};

pub use verify::{ChainVerifier, Problem, ProblemKind, VerifyReport, verify_chain};
