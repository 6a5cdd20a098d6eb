//! Summaries of the host calls one invocation made, for its audit entry.
//!
//! Every call through an interface with authority (kv, model, outbound HTTP,
//! filesystem) is recorded: interface, target, bytes in/out, status, and
//! SHA-256 of the request and response bodies. Bodies themselves are never
//! recorded here (results from outside the sandbox are recorded, for
//! replay, by [`super::recording`]). Filesystem calls are aggregated and bounded on their own
//! (see [`super::fs`]) and listed after the other calls.

use crate::audit::HostCall;
use crate::digest::Hash256;

/// Most calls one invocation itemises. A guest looping over `kv.get` must
/// not be able to grow its audit entry without bound; calls past this are
/// counted in one final `truncated` summary.
pub const MAX_ITEMISED_CALLS: usize = 256;

/// Per-invocation list of host-call summaries.
#[derive(Debug, Default)]
pub struct HostCallLog {
    calls: Vec<HostCall>,
    unitemised: u64,
    /// `wasi:filesystem` summaries (already aggregated and bounded).
    filesystem: Vec<HostCall>,
    /// Whether any call reached outside the host (HTTP, model). Their
    /// results are recorded ([`super::recording`]), so this no longer
    /// decides replayability.
    pub(crate) external: bool,
}

impl HostCallLog {
    /// Records one call.
    pub fn record(&mut self, call: HostCall) {
        if self.calls.len() < MAX_ITEMISED_CALLS {
            self.calls.push(call);
        } else {
            self.unitemised = self.unitemised.saturating_add(1);
        }
    }

    /// Marks the invocation as having made an external call.
    pub fn mark_external(&mut self) {
        self.external = true;
    }

    /// Sets the invocation's `wasi:filesystem` summaries.
    pub fn set_filesystem(&mut self, summaries: Vec<HostCall>) {
        self.filesystem = summaries;
    }

    /// The summaries: itemised calls, then filesystem summaries, then a
    /// final `truncated` entry counting unitemised calls.
    pub fn into_summaries(mut self) -> Vec<HostCall> {
        self.calls.append(&mut self.filesystem);
        if self.unitemised > 0 {
            self.calls.push(HostCall {
                interface: "warden:host".into(),
                target: format!("{} further calls not itemised", self.unitemised),
                bytes_in: 0,
                bytes_out: 0,
                status: "truncated".into(),
                request_sha256: None,
                response_sha256: None,
            });
        }
        self.calls
    }
}

/// `SHA-256` of a body, or `None` when there was no body.
pub fn body_hash(body: &[u8]) -> Option<Hash256> {
    (!body.is_empty()).then(|| Hash256::of(body))
}

/// A summary with the given fields and no hashes.
pub fn summary(interface: &str, target: String, status: &str) -> HostCall {
    HostCall {
        interface: interface.into(),
        target,
        bytes_in: 0,
        bytes_out: 0,
        status: status.into(),
        request_sha256: None,
        response_sha256: None,
    }
}
