//! Chain verification over plain data: recompute every hash, check linkage,
//! sequence numbers and checkpoints, and report the *first* problem by
//! sequence number.
//!
//! Streaming: [`ChainVerifier`] takes entries one at a time in stored order and
//! keeps O(checkpoints) state, so a million-entry chain needs no buffering.

use super::anchor::ExpectedCheckpoint;
use super::checkpoint::Checkpoint;
use super::entry::AuditEntry;
use crate::digest::Hash256;
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use std::fmt;

/// What is wrong, at a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The entry's fields (or its stored prev_hash) do not hash to its stored hash.
    HashMismatch,
    /// The entry is intact but its `prev_hash` is not the previous entry's hash.
    BrokenLink,
    /// Entries are missing: the expected sequence number never appears.
    Gap,
    /// The expected entry appears, but later, or an earlier entry appears again.
    Reordered,
    /// The stored bytes or the export line are not a valid entry.
    Malformed,
    /// A checkpoint's signature or key does not verify.
    BadCheckpointSignature,
    /// A checkpoint's head hash is not the hash of entry `size`.
    CheckpointMismatch,
    /// A checkpoint covers more entries than the chain has: the tail was cut.
    Truncated,
    /// Entries after the last checkpoint: nothing signed covers them.
    UncoveredTail,
}

impl ProblemKind {
    /// Stable snake_case name, as printed by `warden audit verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::BrokenLink => "broken_link",
            ProblemKind::Gap => "gap",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Malformed => "malformed",
            ProblemKind::BadCheckpointSignature => "bad_checkpoint_signature",
            ProblemKind::CheckpointMismatch => "checkpoint_mismatch",
            ProblemKind::Truncated => "truncated",
            ProblemKind::UncoveredTail => "uncovered_tail",
        }
    }
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Sequence number of the first bad (or first missing / uncovered) entry;
    /// 0 for problems not tied to an entry (a malformed checkpoint line).
    pub seq: u64,
    /// What is wrong.
    pub kind: ProblemKind,
    /// Human-readable specifics.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq {}: {}: {}",
            self.seq,
            self.kind.as_str(),
            self.detail
        )
    }
}

/// Result of verifying a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries whose hash, sequence and link were verified (the good prefix).
    pub entries_checked: u64,
    /// Checkpoints whose signature and head were both verified.
    pub checkpoints_checked: u64,
    /// Whether signatures were checked at all (a public key was given).
    pub signatures_checked: bool,
    /// Sequence number and hash of the last verified entry.
    pub head_seq: u64,
    /// Hash of the last verified entry.
    pub head_hash: Hash256,
    /// The first problem by sequence number. An [`ProblemKind::UncoveredTail`]
    /// is reported only when nothing else is wrong.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong; an uncovered tail passes only if allowed.
    pub fn passed(&self, allow_uncovered_tail: bool) -> bool {
        match &self.problem {
            None => true,
            Some(p) => allow_uncovered_tail && p.kind == ProblemKind::UncoveredTail,
        }
    }
}

/// Streaming verifier: [`push`](Self::push) entries in stored order, then
/// [`finish`](Self::finish).
pub struct ChainVerifier<'k> {
    pubkey: Option<&'k VerifyingKey>,
    checkpoints: Vec<Checkpoint>,
    /// Index into `checkpoints` (sorted by size) of the next one to match.
    next_cp: usize,
    checkpoint_problem: Option<Problem>,
    checkpoints_matched: Vec<bool>,
    expected_seq: u64,
    head: Hash256,
    checked: u64,
    entry_problem: Option<Problem>,
    /// After an out-of-order entry: the sequence number we still look for,
    /// to tell a gap (never appears) from a reordering (appears later).
    looking_for: Option<u64>,
    /// A checkpoint given from outside the chain ([`expect`](Self::expect)).
    expected: Option<ExpectedCheckpoint>,
    /// Hash of entry `expected.size`, once verified up to it.
    expected_found: Option<Hash256>,
    scratch: Vec<u8>,
}

impl<'k> ChainVerifier<'k> {
    /// A verifier for a chain with these checkpoints. Without `pubkey`,
    /// signatures are not checked (the report says so).
    pub fn new(checkpoints: &[Checkpoint], pubkey: Option<&'k VerifyingKey>) -> Self {
        let mut checkpoints = checkpoints.to_vec();
        checkpoints.sort_by_key(|c| c.size);
        let n = checkpoints.len();
        let mut v = ChainVerifier {
            pubkey,
            checkpoints,
            next_cp: 0,
            checkpoint_problem: None,
            checkpoints_matched: vec![false; n],
            expected_seq: 1,
            head: Hash256::ZERO,
            checked: 0,
            entry_problem: None,
            looking_for: None,
            expected: None,
            expected_found: None,
            scratch: Vec::with_capacity(512),
        };
        v.match_checkpoints(0);
        v
    }

    /// Also require that the chain contains entry `expected.size` with hash
    /// `expected.head_hash` (a checkpoint held outside the chain, e.g. from
    /// an earlier export). Fails as [`ProblemKind::Truncated`] when the
    /// verified chain is shorter, [`ProblemKind::CheckpointMismatch`] when
    /// that entry's hash differs (the history was rewritten).
    pub fn expect(&mut self, expected: ExpectedCheckpoint) {
        if expected.size == 0 {
            self.expected_found = Some(Hash256::ZERO);
        }
        self.expected = Some(expected);
    }

    fn match_checkpoints(&mut self, size: u64) {
        while let Some(cp) = self.checkpoints.get(self.next_cp) {
            if cp.size != size {
                break;
            }
            if cp.head_hash == self.head {
                self.checkpoints_matched[self.next_cp] = true;
            } else if self.checkpoint_problem.is_none() {
                self.checkpoint_problem = Some(Problem {
                    seq: size,
                    kind: ProblemKind::CheckpointMismatch,
                    detail: format!(
                        "checkpoint signed at {} ms says entry {size} has hash {}, chain has {}",
                        cp.at_ms, cp.head_hash, self.head
                    ),
                });
            }
            self.next_cp += 1;
        }
    }

    fn fail(&mut self, kind: ProblemKind, detail: String) {
        self.entry_problem = Some(Problem {
            seq: self.expected_seq,
            kind,
            detail,
        });
    }

    /// The next stored item failed to parse or decode.
    pub fn push_malformed(&mut self, detail: String) {
        if self.entry_problem.is_none() {
            self.fail(ProblemKind::Malformed, detail);
        }
    }

    /// The next stored entry.
    pub fn push(&mut self, entry: &AuditEntry) {
        if self.skip_after_problem(entry.seq) {
            return;
        }
        let recomputed = entry.recompute_hash(&mut self.scratch);
        self.check(entry.seq, &entry.prev_hash, &entry.hash, &recomputed);
    }

    /// The next stored entry as its stored bytes: `encoded` is the canonical
    /// encoding (docs/audit.md). Only the version byte and `seq` are read; the
    /// hash covers every byte, so this is as strict as [`push`](Self::push)
    /// without decoding (the fast path for databases).
    pub fn push_encoded(&mut self, prev_hash: &Hash256, hash: &Hash256, encoded: &[u8]) {
        let seq = match encoded {
            [version, rest @ ..]
                if crate::audit::entry::is_known_version(*version) && rest.len() >= 8 =>
            {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rest[..8]);
                u64::from_be_bytes(b)
            }
            _ => {
                if self.entry_problem.is_none() {
                    self.fail(
                        ProblemKind::Malformed,
                        "stored entry has an unknown version or is too short".into(),
                    );
                }
                return;
            }
        };
        if self.skip_after_problem(seq) {
            return;
        }
        let recomputed = crate::audit::entry::entry_hash(prev_hash, encoded);
        self.check(seq, prev_hash, hash, &recomputed);
    }

    /// After the first problem only one thing is still looked for: whether the
    /// missing sequence number appears later (reordering) or never (gap).
    fn skip_after_problem(&mut self, seq: u64) -> bool {
        if self.entry_problem.is_none() {
            return false;
        }
        if self.looking_for == Some(seq) {
            self.looking_for = None;
            if let Some(p) = &mut self.entry_problem {
                p.kind = ProblemKind::Reordered;
                p.detail = format!(
                    "{}; entry {seq} appears later in the stored order",
                    p.detail
                );
            }
        }
        true
    }

    fn check(&mut self, seq: u64, prev_hash: &Hash256, hash: &Hash256, recomputed: &Hash256) {
        let e = self.expected_seq;
        if recomputed != hash {
            let claimed = if seq == e {
                String::new()
            } else {
                format!(" (it claims seq {})", seq)
            };
            return self.fail(
                ProblemKind::HashMismatch,
                format!(
                    "entry at position {e}{claimed}: stored hash {}, recomputed {recomputed}",
                    hash
                ),
            );
        }
        if seq > e {
            self.looking_for = Some(e);
            return self.fail(
                ProblemKind::Gap,
                format!("expected entry {e}, found entry {}", seq),
            );
        }
        if seq < e {
            return self.fail(
                ProblemKind::Reordered,
                format!("expected entry {e}, found entry {} again", seq),
            );
        }
        if *prev_hash != self.head {
            return self.fail(
                ProblemKind::BrokenLink,
                format!(
                    "prev_hash {} is not the hash of entry {} ({})",
                    prev_hash,
                    e - 1,
                    self.head
                ),
            );
        }
        self.head = *hash;
        self.checked += 1;
        self.expected_seq += 1;
        if self.expected.as_ref().is_some_and(|x| x.size == e) {
            self.expected_found = Some(*hash);
        }
        if self
            .checkpoints
            .get(self.next_cp)
            .is_some_and(|c| c.size == e)
        {
            self.match_checkpoints(e);
        }
    }

    /// Checks signatures and coverage and returns the report.
    pub fn finish(self) -> VerifyReport {
        let mut candidates: Vec<Problem> = Vec::new();
        if let Some(p) = self.entry_problem.clone() {
            candidates.push(p);
        }
        if let Some(p) = self.checkpoint_problem.clone() {
            candidates.push(p);
        }
        if self.entry_problem.is_none()
            && let Some(cp) = self.checkpoints.get(self.next_cp)
        {
            candidates.push(Problem {
                seq: self.checked + 1,
                kind: ProblemKind::Truncated,
                detail: format!(
                    "checkpoint signed at {} ms covers {} entries, the chain ends at entry {}",
                    cp.at_ms, cp.size, self.checked
                ),
            });
        }
        if let Some(x) = &self.expected {
            match self.expected_found {
                None => candidates.push(Problem {
                    seq: self.checked + 1,
                    kind: ProblemKind::Truncated,
                    detail: format!(
                        "expected checkpoint ({}) covers {} entries with head {}, \
                         the verified chain ends at entry {}",
                        x.source, x.size, x.head_hash, self.checked
                    ),
                }),
                Some(found) if found != x.head_hash => candidates.push(Problem {
                    seq: x.size,
                    kind: ProblemKind::CheckpointMismatch,
                    detail: format!(
                        "expected checkpoint ({}) says entry {} has hash {}, the chain has {} \
                         (history rewritten)",
                        x.source, x.size, x.head_hash, found
                    ),
                }),
                Some(_) => {}
            }
        }
        let mut signatures_ok = vec![true; self.checkpoints.len()];
        if let Some(key) = self.pubkey {
            for (i, cp) in self.checkpoints.iter().enumerate() {
                if let Err(err) = cp.verify(key) {
                    signatures_ok[i] = false;
                    candidates.push(Problem {
                        seq: cp.size,
                        kind: ProblemKind::BadCheckpointSignature,
                        detail: err.to_string(),
                    });
                    break;
                }
            }
        }
        // Stable: at equal seq, entry problems (pushed first) win.
        let mut problem = candidates.into_iter().min_by_key(|p| p.seq);
        if problem.is_none() {
            let covered = self.checkpoints.last().map_or(0, |c| c.size);
            if covered < self.checked {
                problem = Some(Problem {
                    seq: covered + 1,
                    kind: ProblemKind::UncoveredTail,
                    detail: format!(
                        "entries {}..={} are not covered by a signed checkpoint",
                        covered + 1,
                        self.checked
                    ),
                });
            }
        }
        let checkpoints_checked = self
            .checkpoints_matched
            .iter()
            .zip(&signatures_ok)
            .filter(|(m, s)| **m && **s)
            .count() as u64;
        VerifyReport {
            entries_checked: self.checked,
            checkpoints_checked,
            signatures_checked: self.pubkey.is_some(),
            head_seq: self.checked,
            head_hash: self.head,
            problem,
        }
    }
}

/// Verifies a whole chain held in memory (or any iterator of entries).
pub fn verify_chain(
    entries: impl IntoIterator<Item = AuditEntry>,
    checkpoints: &[Checkpoint],
    pubkey: Option<&VerifyingKey>,
) -> VerifyReport {
    let mut v = ChainVerifier::new(checkpoints, pubkey);
    for e in entries {
        v.push(&e);
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::worked_example;
    use ed25519_dalek::SigningKey;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = Hash256::ZERO;
        (1..=n)
            .map(|seq| {
                let mut e = worked_example();
                e.request_id = format!("req-{seq}");
                let a = AuditEntry::link(seq, prev, e);
                prev = a.hash;
                a
            })
            .collect()
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn cp(entries: &[AuditEntry], size: u64) -> Checkpoint {
        let head = if size == 0 {
            Hash256::ZERO
        } else {
            entries[size as usize - 1].hash
        };
        Checkpoint::sign(size, head, 1, &key())
    }

    fn first(entries: Vec<AuditEntry>, cps: &[Checkpoint]) -> Option<(u64, ProblemKind)> {
        let vk = key().verifying_key();
        verify_chain(entries, cps, Some(&vk))
            .problem
            .map(|p| (p.seq, p.kind))
    }

    #[test]
    fn an_intact_checkpointed_chain_passes() {
        let c = chain(20);
        let cps = [cp(&c, 0), cp(&c, 10), cp(&c, 20)];
        let vk = key().verifying_key();
        let r = verify_chain(c, &cps, Some(&vk));
        assert_eq!(r.problem, None);
        assert_eq!((r.entries_checked, r.checkpoints_checked), (20, 3));
    }

    #[test]
    fn an_empty_chain_passes() {
        assert_eq!(first(vec![], &[]), None);
    }

    #[test]
    fn a_changed_field_is_a_hash_mismatch_at_that_entry() {
        let mut c = chain(10);
        let cps = [cp(&c, 10)];
        c[4].entry.usage.fuel += 1;
        assert_eq!(first(c, &cps), Some((5, ProblemKind::HashMismatch)));
    }

    #[test]
    fn a_deleted_entry_is_a_gap_at_its_sequence() {
        let mut c = chain(10);
        let cps = [cp(&c, 10)];
        c.remove(3);
        assert_eq!(first(c, &cps), Some((4, ProblemKind::Gap)));
    }

    #[test]
    fn swapped_entries_are_reordered_at_the_first_position() {
        let mut c = chain(10);
        let cps = [cp(&c, 10)];
        c.swap(2, 7);
        assert_eq!(first(c, &cps), Some((3, ProblemKind::Reordered)));
    }

    #[test]
    fn a_cut_tail_below_a_checkpoint_is_truncation_at_the_first_missing_entry() {
        let mut c = chain(10);
        let cps = [cp(&c, 5), cp(&c, 10)];
        c.truncate(7);
        assert_eq!(first(c, &cps), Some((8, ProblemKind::Truncated)));
    }

    #[test]
    fn a_replaced_signature_is_reported_at_its_checkpoint() {
        let c = chain(10);
        let mut cps = [cp(&c, 5), cp(&c, 10)];
        cps[1].signature = Checkpoint::sign(10, Hash256([1; 32]), 1, &key()).signature;
        assert_eq!(
            first(c, &cps),
            Some((10, ProblemKind::BadCheckpointSignature))
        );
    }

    #[test]
    fn entries_after_the_last_checkpoint_are_an_uncovered_tail() {
        let c = chain(10);
        let cps = [cp(&c, 6)];
        let vk = key().verifying_key();
        let r = verify_chain(c, &cps, Some(&vk));
        let p = r.problem.clone().expect("uncovered tail");
        assert_eq!((p.seq, p.kind), (7, ProblemKind::UncoveredTail));
        assert!(r.passed(true));
        assert!(!r.passed(false));
    }

    #[test]
    fn a_checkpoint_over_a_different_head_is_a_mismatch() {
        let c = chain(10);
        let cps = [Checkpoint::sign(4, Hash256([3; 32]), 1, &key())];
        assert_eq!(first(c, &cps), Some((4, ProblemKind::CheckpointMismatch)));
    }

    fn expecting(
        entries: Vec<AuditEntry>,
        cps: &[Checkpoint],
        size: u64,
        head: Hash256,
    ) -> Option<(u64, ProblemKind)> {
        let vk = key().verifying_key();
        let mut v = ChainVerifier::new(cps, Some(&vk));
        v.expect(ExpectedCheckpoint {
            size,
            head_hash: head,
            source: "test".into(),
        });
        for e in &entries {
            v.push(e);
        }
        v.finish().problem.map(|p| (p.seq, p.kind))
    }

    #[test]
    fn an_expected_checkpoint_the_chain_extends_passes() {
        let c = chain(10);
        let cps = [cp(&c, 10)];
        assert_eq!(expecting(c.clone(), &cps, 6, c[5].hash), None);
        assert_eq!(expecting(c.clone(), &cps, 10, c[9].hash), None);
        assert_eq!(expecting(c, &cps, 0, Hash256::ZERO), None);
    }

    #[test]
    fn a_chain_shorter_than_the_expected_checkpoint_is_truncated_even_with_matching_checkpoints() {
        let full = chain(10);
        let mut c = full.clone();
        c.truncate(7);
        // The attacker also dropped the checkpoints above 7 and signed nothing new.
        let cps = [cp(&c, 7)];
        assert_eq!(
            expecting(c, &cps, 10, full[9].hash),
            Some((8, ProblemKind::Truncated))
        );
    }

    #[test]
    fn a_rechained_history_under_the_expected_checkpoint_is_a_mismatch_at_its_size() {
        let original = chain(10);
        // Rewrite entry 5 and re-chain everything after it: every hash
        // verifies and a re-signed checkpoint over the forged head matches.
        let mut forged = Vec::new();
        let mut prev = Hash256::ZERO;
        for e in &original {
            let mut n = e.entry.clone();
            if e.seq == 5 {
                n.principal = "mallory".into();
            }
            let linked = AuditEntry::link(e.seq, prev, n);
            prev = linked.hash;
            forged.push(linked);
        }
        let cps = [cp(&forged, 10)];
        assert_eq!(first(forged.clone(), &cps), None, "alone it verifies");
        assert_eq!(
            expecting(forged, &cps, 8, original[7].hash),
            Some((8, ProblemKind::CheckpointMismatch))
        );
    }

    #[test]
    fn an_expected_empty_chain_head_must_be_zero() {
        assert_eq!(
            expecting(chain(3), &[], 0, Hash256([1; 32])),
            Some((0, ProblemKind::CheckpointMismatch))
        );
    }

    #[test]
    fn an_entry_relinked_after_a_deletion_breaks_the_link() {
        let mut c = chain(5);
        // Remove entry 3 and renumber entry 4 as 3, recomputing its own hash:
        // the attacker cannot fix entry 3's successor without rewriting all.
        let mut moved = c.remove(3);
        c.remove(2);
        moved.seq = 3;
        let moved = AuditEntry::link(3, moved.prev_hash, moved.entry);
        c.insert(2, moved);
        c.truncate(3);
        assert_eq!(first(c, &[]), Some((3, ProblemKind::BrokenLink)));
    }
}
