//! The filesystem ledger of one invocation: its call summaries, aggregated
//! per (target, status) and bounded, and the write budget of each preopen.
//!
//! Shared (behind a mutex) between the calls and the stream wrappers, which
//! outlive the call that opened them. It must never let a write through
//! before it is charged, nor grow past [`MAX_FS_SUMMARIES`] summaries.

use super::{FURTHER_CALLS, INTERFACE, MAX_FS_SUMMARIES};
use crate::audit::HostCall;
use crate::digest::Hash256;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One summary being accumulated.
struct Tally {
    target: String,
    status: String,
    calls: u64,
    bytes_in: u64,
    bytes_out: u64,
    request: Sha256,
    response: Sha256,
    /// Folded summaries count bytes but hash nothing (unrelated data).
    hashed: bool,
}

/// The write budget of one preopen (by its guest path).
#[derive(Debug, Clone)]
pub struct WriteBudget {
    /// The preopen's guest path.
    pub preopen: Arc<str>,
    /// Most bytes one invocation may write under it; `None`: read-only
    /// (wasmtime-wasi refuses every write there itself).
    pub limit: Option<u64>,
    /// Bytes charged so far.
    pub used: u64,
}

/// The filesystem summaries of one invocation, shared with the stream
/// wrappers (which outlive the call that opened them), and the write
/// budgets they charge.
#[derive(Default)]
pub struct FsLog {
    tallies: Vec<Tally>,
    index: HashMap<(String, String), usize>,
    itemised: usize,
    budgets: Vec<WriteBudget>,
    /// Why a write was refused for its budget: the invocation then ends
    /// `budget_exhausted:fs`.
    pub(super) overrun: Option<String>,
}

impl FsLog {
    /// An empty ledger charging writes to `budgets` (one per preopen).
    pub(super) fn with_budgets(budgets: Vec<WriteBudget>) -> FsLog {
        FsLog {
            budgets,
            ..FsLog::default()
        }
    }

    /// Charges `n` bytes a guest asks to write under `preopen`, before the
    /// write happens. Refuses (and remembers why) past the budget.
    pub(super) fn charge(&mut self, preopen: &str, n: u64) -> Result<(), String> {
        let why = match self.budgets.iter_mut().find(|b| &*b.preopen == preopen) {
            Some(WriteBudget { limit: None, .. }) => return Ok(()),
            Some(b) => match (b.used.checked_add(n), b.limit) {
                (Some(total), Some(limit)) if total <= limit => {
                    b.used = total;
                    return Ok(());
                }
                (_, limit) => format!(
                    "writes under preopen `{preopen}` would pass its max_write_bytes of {} bytes \
                     ({} written, {n} more asked)",
                    limit.unwrap_or(0),
                    b.used
                ),
            },
            None => {
                format!("a write through a descriptor of unknown origin (`{preopen}`) was refused")
            }
        };
        self.overrun.get_or_insert_with(|| why.clone());
        Err(why)
    }

    /// Counts one call under (`target`, `status`); returns its tally.
    pub(super) fn call(&mut self, target: String, status: String) -> usize {
        let folded = self.itemised >= MAX_FS_SUMMARIES;
        let key = if folded && !self.index.contains_key(&(target.clone(), status.clone())) {
            (FURTHER_CALLS.to_string(), status)
        } else {
            (target, status)
        };
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let hashed = key.0 != FURTHER_CALLS;
                self.itemised += usize::from(hashed);
                self.tallies.push(Tally {
                    target: key.0.clone(),
                    status: key.1.clone(),
                    calls: 0,
                    bytes_in: 0,
                    bytes_out: 0,
                    request: Sha256::new(),
                    response: Sha256::new(),
                    hashed,
                });
                let i = self.tallies.len() - 1;
                self.index.insert(key, i);
                i
            }
        };
        if let Some(t) = self.tallies.get_mut(i) {
            t.calls = t.calls.saturating_add(1);
        }
        i
    }

    /// Bytes the guest sent (written) under tally `i`.
    pub(super) fn sent(&mut self, i: usize, data: &[u8]) {
        if let Some(t) = self.tallies.get_mut(i) {
            t.bytes_in = t.bytes_in.saturating_add(data.len() as u64);
            if t.hashed {
                t.request.update(data);
            }
        }
    }

    /// Bytes returned to the guest under tally `i`.
    pub(super) fn received(&mut self, i: usize, data: &[u8]) {
        if let Some(t) = self.tallies.get_mut(i) {
            t.bytes_out = t.bytes_out.saturating_add(data.len() as u64);
            if t.hashed {
                t.response.update(data);
            }
        }
    }

    /// A directory entry name returned under tally `i` (names are joined by
    /// `\n`).
    pub(super) fn name(&mut self, i: usize, name: &str) {
        let first = self.tallies.get(i).is_none_or(|t| t.bytes_out == 0);
        if !first {
            self.received(i, b"\n");
        }
        self.received(i, name.as_bytes());
    }

    /// `n` zero bytes written through a stream (`write-zeroes`).
    pub(super) fn sent_zeroes(&mut self, i: usize, mut n: usize) {
        const ZEROES: [u8; 4096] = [0; 4096];
        while n > 0 {
            let chunk = n.min(ZEROES.len());
            self.sent(i, &ZEROES[..chunk]);
            n -= chunk;
        }
    }

    /// The summaries, in order of first occurrence.
    pub fn summaries(&self) -> Vec<HostCall> {
        self.tallies
            .iter()
            .map(|t| {
                let hash = |h: &Sha256, n: u64| {
                    (t.hashed && n > 0).then(|| Hash256(h.clone().finalize().into()))
                };
                HostCall {
                    interface: INTERFACE.into(),
                    target: t.target.clone(),
                    bytes_in: t.bytes_in,
                    bytes_out: t.bytes_out,
                    status: if t.calls > 1 {
                        format!("{} calls={}", t.status, t.calls)
                    } else {
                        t.status.clone()
                    },
                    request_sha256: hash(&t.request, t.bytes_in),
                    response_sha256: hash(&t.response, t.bytes_out),
                }
            })
            .collect()
    }
}

pub(super) fn lock(log: &Mutex<FsLog>) -> MutexGuard<'_, FsLog> {
    // A poisoned lock only means a panic elsewhere; the tallies are plain data.
    log.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_aggregate_per_target_and_status() {
        let mut log = FsLog::default();
        let a = log.call("read /in x".into(), "ok".into());
        log.received(a, b"hello ");
        let b = log.call("read /in x".into(), "ok".into());
        assert_eq!(a, b);
        log.received(b, b"world");
        log.call("read /in x".into(), "bad-descriptor".into());
        let s = log.summaries();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].status, "ok calls=2");
        assert_eq!(s[0].bytes_out, 11);
        assert_eq!(s[0].response_sha256, Some(Hash256::of(b"hello world")));
        assert_eq!(s[0].request_sha256, None);
        assert_eq!(s[1].status, "bad-descriptor");
        assert_eq!(s[1].response_sha256, None);
    }

    #[test]
    fn distinct_summaries_are_bounded_and_further_calls_folded_per_status() {
        let mut log = FsLog::default();
        for n in 0..MAX_FS_SUMMARIES + 50 {
            let i = log.call(format!("stat-at /in {n}"), "no-entry".into());
            log.received(i, b"ab");
        }
        log.call("open-at /in y".into(), "not-permitted".into());
        log.call("open-at /in z".into(), "not-permitted".into());
        // An itemised target keeps counting after the bound.
        log.call("stat-at /in 0".into(), "no-entry".into());
        let s = log.summaries();
        assert_eq!(s.len(), MAX_FS_SUMMARIES + 2);
        assert_eq!(s[0].status, "no-entry calls=2");
        let folded = &s[MAX_FS_SUMMARIES];
        assert_eq!(folded.target, FURTHER_CALLS);
        assert_eq!(folded.status, "no-entry calls=50");
        assert_eq!(folded.bytes_out, 100);
        assert_eq!(folded.response_sha256, None);
        let refused = &s[MAX_FS_SUMMARIES + 1];
        assert_eq!(refused.target, FURTHER_CALLS);
        assert_eq!(refused.status, "not-permitted calls=2");
    }

    #[test]
    fn directory_names_are_joined_by_newlines() {
        let mut log = FsLog::default();
        let i = log.call("read-directory /in".into(), "ok".into());
        log.name(i, "a.txt");
        log.name(i, "b");
        let s = log.summaries();
        assert_eq!(s[0].bytes_out, 7);
        assert_eq!(s[0].response_sha256, Some(Hash256::of(b"a.txt\nb")));
    }

    #[test]
    fn writes_are_charged_to_their_preopen_and_refused_past_its_budget() {
        let mut log = FsLog {
            budgets: vec![
                WriteBudget {
                    preopen: "/out".into(),
                    limit: Some(10),
                    used: 0,
                },
                WriteBudget {
                    preopen: "/in".into(),
                    limit: None,
                    used: 0,
                },
            ],
            ..FsLog::default()
        };
        assert!(log.charge("/out", 6).is_ok());
        assert!(log.charge("/out", 4).is_ok());
        assert!(log.overrun.is_none());
        let why = log.charge("/out", 1).expect_err("over");
        assert!(why.contains("max_write_bytes of 10"), "{why}");
        assert!(
            log.charge("/in", u64::MAX).is_ok(),
            "read-only: wasmtime refuses"
        );
        assert!(log.charge("?", 1).is_err(), "unknown origin never writes");
        assert!(log.charge("/out", u64::MAX).is_err(), "no overflow");
        assert!(log.overrun.is_some());
    }
}
