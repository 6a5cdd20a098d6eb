//! `warden:host/invocation`: what a capability may know about the
//! invocation it runs in, for passing on to the services it calls. Today
//! one function, `idempotency-key`.
//!
//! The key is decided by the pipeline, never by the guest
//! ([`super::InvocationIdentity::idempotency_key`]): a workflow step's
//! `<run id>.<step id>` (the same for every attempt and after a crash and
//! resume), a request's `<principal>:<Idempotency-Key>` when the client
//! sent one, else the request id. The first read is recorded as a host-call
//! result (`warden:host/invocation.idempotency-key`), so `warden audit
//! replay` answers it with the recorded value, whatever the replayed
//! call's own identity; later reads in the same invocation answer the same
//! value without recording again (a loop of reads costs one record).
//!
//! Owns the grant (no settings: `{}` only; the grant carries no authority
//! beyond reading the key, so it is [`GrantKind::AuthorityFree`]), the
//! per-invocation state and linking. It has no budgets and no summaries,
//! and must never let the guest choose or change the key.

use super::HostInterface;
use super::bindings::warden::host::invocation::Host;
use super::catalogue::{Entry, GrantKind, Unit, empty_table, no_settings};
use super::recording::{self, Replayed, Shared};
use serde_json::Value;
use wasmtime::component::{HasData, Linker};

/// The recorded call's descriptor.
pub const CALL: &str = "warden:host/invocation.idempotency-key";

/// `warden:host/invocation`'s place in the catalogue.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Invocation,
    names: &["warden:host/invocation"],
    grant: |id, settings| no_settings(id, settings).map(|_| GrantKind::AuthorityFree),
    default_settings: empty_table,
};

/// Per-invocation state: the key, and the recording its first read goes to.
pub struct InvocationState {
    key: String,
    /// The value answered once read (recorded, or replayed).
    answered: Option<String>,
    recording: Shared,
}

impl InvocationState {
    /// The state of one invocation whose idempotency key is `key`.
    pub(crate) fn new(key: &str, recording: Shared) -> InvocationState {
        InvocationState {
            key: key.to_string(),
            answered: None,
            recording,
        }
    }

    fn read(&mut self) -> String {
        if let Some(key) = &self.answered {
            return key.clone();
        }
        let mut r = recording::lock(&self.recording);
        let key = match r.replay(CALL) {
            // Replay: the recorded value, whatever this call's own identity.
            Some(Replayed::Answer(Value::String(recorded))) => recorded,
            Some(Replayed::Answer(_)) => {
                r.malformed(CALL);
                self.key.clone()
            }
            // The divergence is kept by the recording and fails the replay.
            Some(Replayed::Diverged) => self.key.clone(),
            None => {
                r.record(CALL.to_string(), Value::String(self.key.clone()));
                self.key.clone()
            }
        };
        drop(r);
        self.answered = Some(key.clone());
        key
    }
}

impl Host for InvocationState {
    fn idempotency_key(&mut self) -> String {
        self.read()
    }
}

struct HasInvocation;

impl HasData for HasInvocation {
    type Data<'a> = &'a mut InvocationState;
}

/// Links `warden:host/invocation` into `linker`; `get` finds the
/// invocation's [`InvocationState`] in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut InvocationState,
) -> wasmtime::Result<()> {
    super::bindings::warden::host::invocation::add_to_linker::<T, HasInvocation>(linker, get)
}

/// Nothing to report: reading the key has no budget and no effect.
impl HostInterface for InvocationState {}

#[cfg(test)]
mod tests {
    use super::recording::{Recorded, Recording};
    use super::*;
    use std::sync::{Arc, Mutex};

    fn state(key: &str, recording: Recording) -> (InvocationState, Shared) {
        let shared: Shared = Arc::new(Mutex::new(recording));
        (InvocationState::new(key, shared.clone()), shared)
    }

    #[test]
    fn the_key_is_the_identitys_and_only_its_first_read_is_recorded() {
        let (mut s, shared) = state("run-1.pay", Recording::default());
        for _ in 0..5 {
            assert_eq!(s.idempotency_key(), "run-1.pay");
        }
        let (results, not_replayable) = recording::lock(&shared).finish();
        assert_eq!(not_replayable, None);
        assert_eq!(results.len(), 1, "one record for five reads");
        let r = Recorded::from_bytes(&results[0]).expect("recorded");
        assert_eq!(
            (r.call.as_str(), r.result),
            (CALL, Value::String("run-1.pay".into()))
        );
    }

    #[test]
    fn a_replay_answers_the_recorded_key_not_its_own() {
        let feed = vec![Recorded {
            call: CALL.into(),
            result: Value::String("alice:client-key-7".into()),
        }];
        let (mut s, shared) = state("r-1", Recording::replaying(feed));
        assert_eq!(s.idempotency_key(), "alice:client-key-7");
        assert_eq!(s.idempotency_key(), "alice:client-key-7");
        let r = recording::lock(&shared);
        assert_eq!(r.divergence(), None);
        assert!(r.unconsumed().is_none());
    }

    #[test]
    fn a_replay_that_recorded_another_call_first_diverges() {
        let feed = vec![Recorded {
            call: "warden:host/kv.get".into(),
            result: Value::Null,
        }];
        let (mut s, shared) = state("r-1", Recording::replaying(feed));
        assert_eq!(s.idempotency_key(), "r-1");
        let r = recording::lock(&shared);
        assert!(
            r.divergence().is_some_and(|d| d.contains(CALL)),
            "{:?}",
            r.divergence()
        );
    }
}
