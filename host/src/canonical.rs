//! Re-export shim for callers that still name `crate::canonical`: canonical
//! JSON and digests live in [`crate::digest`]. Removed when the lead merges
//! issue 15 and moves the last callers (host.rs, server/submit.rs,
//! server/approvals.rs, server/deployment.rs, server/mod.rs, invocation.rs).

pub use crate::digest::{canonical_json, json_digest};

/// `sha256:<hex>` of `bytes` (`Hash256::of(bytes).tagged()`).
pub fn sha256_tagged(bytes: &[u8]) -> String {
    crate::digest::Hash256::of(bytes).tagged()
}
