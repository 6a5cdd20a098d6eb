//! Recorded host-call results: what came into the sandbox from outside it
//! (KV reads, model responses, HTTP responses, filesystem results, system
//! clock readings and system random bytes), kept in call order so that
//! `warden audit replay` can answer the same calls without the outside
//! world.
//!
//! One [`Recording`] per invocation, shared (behind a mutex) by the
//! interfaces whose results come from outside. In *record* mode each call
//! appends `{"call": <descriptor>, "result": <what the host got>}` (its
//! canonical JSON is a payload of the audit entry; the entry commits to its
//! SHA-256). In *replay* mode the next recorded result answers the call if
//! its descriptor matches, and the first mismatch is kept as the
//! divergence (`diverged at call N: expected …, got …`).
//!
//! Readings a guest may take many times in a row (clock readings, random
//! bytes, stream chunks) are kept as *runs*: consecutive calls with the
//! same descriptor share one record `{"call": …, "result": {"run": [...]}}`,
//! so a loop reading the clock does not make one payload per reading.
//!
//! Recording is bounded as it happens: at most [`MAX_RECORDED_BYTES`] per
//! invocation (each interface's own limits bound each result); past it
//! nothing more is kept and the entry says it is not replayable.
//!
//! This module must never perform a call itself, and must never answer a
//! replayed call with anything but the recorded result.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Most bytes of recorded results one invocation keeps. HTTP bodies are
/// already bounded by the grant's `max_response_bytes`, KV values by
/// `max_value_bytes` and `max_calls`; this stops the sum of them (a guest
/// reading a 64 KiB value 10,000 times) from holding hundreds of MiB until
/// the entry is committed.
pub const MAX_RECORDED_BYTES: usize = 16 << 20;

/// Why an entry of a `payloads = "hash-only"` policy is not replayable.
pub const HASH_ONLY: &str =
    "payloads = \"hash-only\": the input and recorded host-call results are not kept";

/// One recorded call: what was asked, and what the host got.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The call's descriptor (interface, operation, target hash).
    pub call: String,
    /// The result as the host got it.
    pub result: Value,
}

impl Recorded {
    /// The canonical JSON bytes stored as a payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::digest::canonical_json(&json!({"call": self.call, "result": self.result}))
            .into_bytes()
    }

    /// Parses [`Recorded::to_bytes`]'s form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Recorded, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not a recorded result: {e}"))?;
        let call = v["call"]
            .as_str()
            .ok_or("a recorded result without `call`")?
            .to_string();
        Ok(Recorded {
            call,
            result: v["result"].clone(),
        })
    }
}

/// A replayed call's answer, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Replayed {
    /// The recorded result.
    Answer(Value),
    /// The guest made another call than recorded (or one too many).
    Diverged,
}

/// One invocation's recording (or replay feed).
#[derive(Debug, Default)]
pub struct Recording {
    /// `Some` in replay mode: the results still to hand out.
    feed: Option<VecDeque<Recorded>>,
    /// Record mode: the results so far, by slot (`None`: still pending).
    results: Vec<Option<Recorded>>,
    bytes: usize,
    calls: usize,
    not_replayable: Option<String>,
    divergence: Option<String>,
    /// Record mode: the slot of the run still open (the last slot).
    open_run: Option<usize>,
    /// Replay mode: how many readings of the front run were handed out.
    run_at: usize,
}

/// Shared between the interfaces (and HTTP bodies, which outlive calls).
pub type Shared = Arc<Mutex<Recording>>;

/// Locks a shared recording (a poisoned lock still holds valid data).
pub fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Recording> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recording {
    /// A recording that answers from `feed` instead of recording.
    pub fn replaying(feed: Vec<Recorded>) -> Recording {
        Recording {
            feed: Some(feed.into()),
            ..Recording::default()
        }
    }

    /// Whether calls are answered from a recording.
    pub fn is_replay(&self) -> bool {
        self.feed.is_some()
    }

    /// Replay mode: the recorded answer to `call`, the next call. Record
    /// mode: `None` (make the call, then [`record`](Self::record) it).
    pub fn replay(&mut self, call: &str) -> Option<Replayed> {
        let feed = self.feed.as_mut()?;
        self.run_at = 0;
        self.calls += 1;
        let n = self.calls;
        match feed.pop_front() {
            Some(r) if r.call == call => Some(Replayed::Answer(r.result)),
            Some(r) => {
                self.divergence.get_or_insert_with(|| {
                    format!("diverged at call {n}: expected {}, got {call}", r.call)
                });
                // Nothing later can line up again.
                feed.clear();
                Some(Replayed::Diverged)
            }
            None => {
                self.divergence.get_or_insert_with(|| {
                    format!("diverged at call {n}: expected no further call, got {call}")
                });
                Some(Replayed::Diverged)
            }
        }
    }

    /// Replay mode: whether the next recorded call is `call` (nothing is
    /// consumed). Record mode: `false`.
    pub fn next_is(&self, call: &str) -> bool {
        self.feed
            .as_ref()
            .and_then(|f| f.front())
            .is_some_and(|r| r.call == call)
    }

    /// Records the result of `call` (record mode; ignored in replay mode).
    pub fn record(&mut self, call: String, result: Value) {
        if let Some(slot) = self.reserve() {
            self.fill(slot, call, result);
        }
    }

    /// Reserves the next slot in call order for a result that completes
    /// later (an HTTP body); `None` in replay mode.
    pub fn reserve(&mut self) -> Option<usize> {
        if self.feed.is_some() {
            return None;
        }
        self.open_run = None;
        self.results.push(None);
        Some(self.results.len() - 1)
    }

    /// Fills a reserved slot. Past [`MAX_RECORDED_BYTES`] the result is
    /// dropped and the invocation marked not replayable.
    pub fn fill(&mut self, slot: usize, call: String, result: Value) {
        if self.not_replayable.is_some() {
            return;
        }
        let r = Recorded { call, result };
        let size = r.call.len() + crate::digest::canonical_json(&r.result).len();
        if !self.fits(size) {
            return;
        }
        self.bytes += size;
        if let Some(s) = self.results.get_mut(slot) {
            *s = Some(r);
        }
    }

    /// Whether `size` more bytes of results fit under
    /// [`MAX_RECORDED_BYTES`]; if not, the recording is dropped and the
    /// invocation marked not replayable, before the result is encoded.
    pub fn fits(&mut self, size: usize) -> bool {
        if self.not_replayable.is_some() {
            return false;
        }
        if self.bytes.saturating_add(size) > MAX_RECORDED_BYTES {
            self.results.clear();
            self.open_run = None;
            self.not_replayable = Some(format!(
                "the recorded host-call results exceed {MAX_RECORDED_BYTES} bytes, so they were not kept"
            ));
            return false;
        }
        true
    }

    /// Records `result` as the next reading of `call` (record mode; ignored
    /// in replay mode): appended to the open run when the previous record
    /// is a run of the same call, else the start of a new run.
    pub fn record_run(&mut self, call: &str, result: Value) {
        if self.feed.is_some() {
            return;
        }
        let size = crate::digest::canonical_json(&result).len() + 1;
        let open = self.open_run.filter(|&i| {
            i + 1 == self.results.len() && self.results[i].as_ref().is_some_and(|r| r.call == call)
        });
        let size = if open.is_some() {
            size
        } else {
            size + call.len()
        };
        if !self.fits(size) {
            return;
        }
        self.bytes += size;
        if let Some(i) = open
            && let Some(Some(r)) = self.results.get_mut(i)
            && let Some(Value::Array(run)) = r.result.get_mut("run")
        {
            run.push(result);
            return;
        }
        self.results.push(Some(Recorded {
            call: call.to_string(),
            result: json!({ "run": [result] }),
        }));
        self.open_run = Some(self.results.len() - 1);
    }

    /// Replay mode: the next reading of `call` from the run at the front of
    /// the recording (a mismatch is a divergence, as in
    /// [`replay`](Self::replay)). Record mode: `None`.
    pub fn replay_run(&mut self, call: &str) -> Option<Replayed> {
        let feed = self.feed.as_mut()?;
        if let Some(front) = feed.front()
            && front.call == call
            && let Some(run) = front.result.get("run").and_then(Value::as_array)
            && self.run_at < run.len()
        {
            let v = run[self.run_at].clone();
            if self.run_at == 0 {
                self.calls += 1;
            }
            self.run_at += 1;
            if self.run_at == run.len() {
                feed.pop_front();
                self.run_at = 0;
            }
            return Some(Replayed::Answer(v));
        }
        self.run_at = 0;
        self.replay(call)
    }

    /// Records `bytes` as the next part of the byte stream `call` (record
    /// mode; ignored in replay mode): appended to the open stream record
    /// `{"bytes": "<hex>"}` when the previous record is that stream, else
    /// the start of a new one. Random bytes are kept this way, however the
    /// guest's calls cut them into words.
    pub fn record_bytes(&mut self, call: &str, bytes: &[u8]) {
        if self.feed.is_some() {
            return;
        }
        let open = self.open_run.filter(|&i| {
            i + 1 == self.results.len() && self.results[i].as_ref().is_some_and(|r| r.call == call)
        });
        let size = bytes.len().saturating_mul(2) + if open.is_some() { 0 } else { call.len() + 16 };
        if !self.fits(size) {
            return;
        }
        self.bytes += size;
        if let Some(i) = open
            && let Some(Some(r)) = self.results.get_mut(i)
            && let Some(Value::String(hex)) = r.result.get_mut("bytes")
        {
            hex.push_str(&hex::encode(bytes));
            return;
        }
        self.results.push(Some(Recorded {
            call: call.to_string(),
            result: json!({ "bytes": hex::encode(bytes) }),
        }));
        self.open_run = Some(self.results.len() - 1);
    }

    /// Replay mode: the next `n` bytes of the stream `call` at the front of
    /// the recording (`None` inside: diverged or malformed, kept as the
    /// divergence). Record mode: `None`.
    pub fn replay_bytes(&mut self, call: &str, n: usize) -> Option<Option<Vec<u8>>> {
        let feed = self.feed.as_mut()?;
        if let Some(front) = feed.front()
            && front.call == call
            && let Some(hex) = front.result.get("bytes").and_then(Value::as_str)
        {
            let from = self.run_at.saturating_mul(2);
            let to = from.saturating_add(n.saturating_mul(2));
            let Some(part) = hex.get(from..to).and_then(|h| hex::decode(h).ok()) else {
                self.malformed(call);
                return Some(None);
            };
            if self.run_at == 0 {
                self.calls += 1;
            }
            self.run_at += n;
            if to == hex.len() {
                feed.pop_front();
                self.run_at = 0;
            }
            return Some(Some(part));
        }
        match self.replay(call) {
            Some(Replayed::Answer(_)) => {
                self.malformed(call);
                Some(None)
            }
            _ => Some(None),
        }
    }

    /// Replay mode: how many recorded results the replay has reached (the
    /// `N` of `diverged at call N`).
    pub fn call_number(&self) -> usize {
        self.calls
    }

    /// Replay mode: the guest departed from the recording (`why` says
    /// how); kept as the divergence unless there is one already.
    pub fn diverged(&mut self, why: String) {
        self.divergence.get_or_insert(why);
    }

    /// Replay mode: the recorded answer to `call` could not be read back
    /// (a tampered or foreign recording); kept as the divergence.
    pub fn malformed(&mut self, call: &str) {
        self.divergence
            .get_or_insert_with(|| format!("diverged: the recorded result of {call} is malformed"));
    }

    /// Record mode: keeps nothing from now on (a `payloads = "hash-only"`
    /// policy: nothing would be stored, so nothing is encoded either).
    pub fn keep_nothing(&mut self) {
        if self.feed.is_none() {
            self.results.clear();
            self.not_replayable(HASH_ONLY.into());
        }
    }

    /// Marks the invocation not replayable (the first reason wins).
    pub fn not_replayable(&mut self, why: String) {
        self.not_replayable.get_or_insert(why);
    }

    /// The first divergence from the recording (replay mode).
    pub fn divergence(&self) -> Option<&str> {
        self.divergence.as_deref()
    }

    /// Replay mode: recorded calls the guest never made.
    pub fn unconsumed(&self) -> Option<&Recorded> {
        self.feed.as_ref().and_then(|f| f.front())
    }

    /// The recorded results in call order (a slot never filled is recorded
    /// as `null`), and why the invocation is not replayable, if it is not.
    pub fn finish(&mut self) -> (Vec<Vec<u8>>, Option<String>) {
        if let Some(why) = &self.not_replayable {
            return (Vec::new(), Some(why.clone()));
        }
        let results = std::mem::take(&mut self.results)
            .into_iter()
            .map(|r| {
                r.unwrap_or(Recorded {
                    call: "unfinished".into(),
                    result: Value::Null,
                })
                .to_bytes()
            })
            .collect();
        (results, None)
    }
}

/// Bytes as lowercase hex (recorded values are JSON).
pub fn hex_bytes(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

/// [`hex_bytes`] back; `None` if the recording is malformed.
pub fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    hex::decode(v.as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_kept_in_call_order_including_slots_filled_later() {
        let mut r = Recording::default();
        let slot = r.reserve().expect("record mode");
        r.record("kv get a".into(), json!({"ok": "00"}));
        r.fill(slot, "http GET x".into(), json!({"ok": {"status": 200}}));
        let (results, why) = r.finish();
        assert_eq!(why, None);
        let calls: Vec<String> = results
            .iter()
            .map(|b| Recorded::from_bytes(b).expect("parse").call)
            .collect();
        assert_eq!(calls, ["http GET x", "kv get a"]);
    }

    #[test]
    fn a_replay_answers_matching_calls_and_reports_the_first_divergence() {
        let feed = vec![
            Recorded {
                call: "kv get a".into(),
                result: json!({"ok": null}),
            },
            Recorded {
                call: "kv get b".into(),
                result: json!({"ok": null}),
            },
        ];
        let mut r = Recording::replaying(feed);
        assert_eq!(
            r.replay("kv get a"),
            Some(Replayed::Answer(json!({"ok": null})))
        );
        assert_eq!(r.replay("kv get c"), Some(Replayed::Diverged));
        assert_eq!(
            r.divergence(),
            Some("diverged at call 2: expected kv get b, got kv get c")
        );
        assert_eq!(r.replay("kv get b"), Some(Replayed::Diverged));
        assert_eq!(
            r.divergence(),
            Some("diverged at call 2: expected kv get b, got kv get c")
        );
    }

    #[test]
    fn recording_past_the_byte_limit_keeps_nothing_and_says_why() {
        let mut r = Recording::default();
        let big = "x".repeat(MAX_RECORDED_BYTES / 2);
        r.record("kv get a".into(), json!({"ok": big}));
        r.record("kv get a".into(), json!({"ok": big}));
        r.record("kv get a".into(), json!({"ok": big}));
        let (results, why) = r.finish();
        assert!(results.is_empty());
        assert!(why.expect("not replayable").contains("exceed"));
    }
}
