//! A witness for warden logs (C2SP tlog-witness, docs/audit.md
//! "Witnesses"): the last checkpoint it accepted per log, the
//! `add-checkpoint` request body, and the decision to cosign a new
//! checkpoint or refuse it.
//!
//! The decision is pure: given what the witness holds and what it is
//! offered, either the new state and a cosignature, or a refusal naming
//! the old and new size and root. This module must never do I/O, and must
//! never cosign a checkpoint that is not consistent with the last one it
//! accepted for that origin.

use super::merkle::{MAX_PROOF_HASHES, empty_root, verify_consistency};
use super::note::{NoteError, NoteSignature, SignedNote, TreeHead, cosign, verify_checkpoint};
use crate::digest::Hash256;
use base64ct::{Base64, Encoding};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// What a witness remembers about one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessedLog {
    /// The log's origin line.
    pub origin: String,
    /// Size of the last checkpoint accepted.
    pub size: u64,
    /// Its root.
    pub root: Hash256,
    /// The checkpoint note as accepted (log signature only).
    pub checkpoint: String,
    /// This witness's cosignature line on it (`— <name> <base64>\n`),
    /// served to monitors with the note. Absent in state files written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosignature: Option<String>,
}

impl WitnessedLog {
    /// The checkpoint with this witness's cosignature appended: what it
    /// serves to monitors (`GET /logs/<id>/checkpoint`).
    pub fn cosigned(&self) -> String {
        format!(
            "{}{}",
            self.checkpoint,
            self.cosignature.as_deref().unwrap_or_default()
        )
    }
}

/// Why a witness refuses, with the C2SP tlog-witness status for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The request body is not an `add-checkpoint` body (400).
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(String),
    /// The checkpoint is for a log this witness does not follow (404).
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// The checkpoint is not signed by the log's key (403).
    #[error("the checkpoint is not validly signed by the log: {0}")]
    Signature(NoteError),
    /// `old` is not the size the witness holds (409; the body is that size).
    #[error(
        "the request says the witness holds size {claimed}, it holds size {held}: \
         resend with `old {held}` and a proof from there"
    )]
    OldSizeMismatch {
        /// The size the request claimed.
        claimed: u64,
        /// The size the witness holds.
        held: u64,
    },
    /// The new checkpoint is smaller than the one witnessed: the log was
    /// truncated (409 with the held size, per tlog-witness).
    #[error(
        "refused: log {} was truncated: the witness holds size {} (root {}), \
         the log now offers size {} (root {})",
        .0.origin, .0.old_size, .0.old_root, .0.new_size, .0.new_root
    )]
    Truncated(Box<Sides>),
    /// The new checkpoint does not extend the witnessed one (422).
    #[error(
        "refused: log {} was rewritten: the witness holds size {} (root {}), \
         the offered size {} (root {}) does not extend it: {}",
        .0.origin, .0.old_size, .0.old_root, .0.new_size, .0.new_root, .1
    )]
    Inconsistent(Box<Sides>, String),
}

/// The two checkpoints a refusal names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sides {
    /// The log.
    pub origin: String,
    /// Witnessed size.
    pub old_size: u64,
    /// Witnessed root.
    pub old_root: Hash256,
    /// Offered size.
    pub new_size: u64,
    /// Offered root.
    pub new_root: Hash256,
}

impl WitnessError {
    /// The HTTP status C2SP tlog-witness gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) => 400,
            WitnessError::UnknownOrigin(_) => 404,
            WitnessError::Signature(_) => 403,
            WitnessError::OldSizeMismatch { .. } | WitnessError::Truncated(_) => 409,
            WitnessError::Inconsistent(..) => 422,
        }
    }
}

/// The body of `POST <prefix>/add-checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the log believes the witness holds.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint.
    pub proof: Vec<Hash256>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// `old <n>\n<base64 hash>\n…\n\n<checkpoint>`.
    pub fn to_text(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&Base64::encode_string(&h.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a request body strictly.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessError> {
        let bad = |s: &str| WitnessError::Malformed(s.to_owned());
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let at = text
            .find("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = text[..at].split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or_else(|| bad("first line is not `old <size>`"))?;
        let old_size = old
            .parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == old)
            .ok_or_else(|| bad("old size is not a decimal without leading zeros"))?;
        let mut proof = Vec::new();
        for l in lines {
            if proof.len() == MAX_PROOF_HASHES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let raw = Base64::decode_vec(l).map_err(|_| bad("a proof line is not base64"))?;
            proof.push(Hash256(
                raw.try_into()
                    .map_err(|_| bad("a proof line is not a 32-byte hash"))?,
            ));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: text[at + 2..].to_owned(),
        })
    }
}

/// Decides whether to cosign `req` for the log `origin` with key `log_key`,
/// given what the witness holds (`held`, `None` if it never accepted one).
/// On success returns the new state and the cosignature line's signature.
pub fn add_checkpoint(
    held: Option<&WitnessedLog>,
    origin: &str,
    log_key: &VerifyingKey,
    req: &AddCheckpoint,
    witness_name: &str,
    witness_key: &SigningKey,
    now_secs: u64,
) -> Result<(WitnessedLog, NoteSignature), WitnessError> {
    let parsed = SignedNote::parse(req.checkpoint.as_bytes())
        .map_err(|e| WitnessError::Malformed(e.to_string()))?;
    let head =
        TreeHead::parse_body(&parsed.text).map_err(|e| WitnessError::Malformed(e.to_string()))?;
    if head.origin != origin {
        return Err(WitnessError::UnknownOrigin(head.origin));
    }
    verify_checkpoint(req.checkpoint.as_bytes(), log_key, Some(origin))
        .map_err(WitnessError::Signature)?;
    let (held_size, held_root) = held.map_or((0, empty_root()), |h| (h.size, h.root));
    let sides = || {
        Box::new(Sides {
            origin: origin.to_owned(),
            old_size: held_size,
            old_root: held_root,
            new_size: head.size,
            new_root: head.root,
        })
    };
    if head.size < held_size {
        return Err(WitnessError::Truncated(sides()));
    }
    if req.old_size > head.size {
        return Err(WitnessError::Malformed(format!(
            "old size {} is above the checkpoint's size {}",
            req.old_size, head.size
        )));
    }
    if req.old_size != held_size {
        return Err(WitnessError::OldSizeMismatch {
            claimed: req.old_size,
            held: held_size,
        });
    }
    verify_consistency(held_size, head.size, &held_root, &head.root, &req.proof)
        .map_err(|e| WitnessError::Inconsistent(sides(), e.to_string()))?;
    let line = cosign(&parsed.text, witness_name, witness_key, now_secs)
        .map_err(|e| WitnessError::Malformed(e.to_string()))?;
    Ok((
        WitnessedLog {
            origin: origin.to_owned(),
            size: head.size,
            root: head.root,
            checkpoint: parsed.to_text(),
            cosignature: Some(line.line()),
        },
        line,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{Frontier, NodeSource, ProofError, leaf_hash, prove_consistency};
    use crate::audit::note::{sign_checkpoint, verify_cosignature};
    use std::collections::HashMap;

    struct Log {
        nodes: HashMap<(u32, u64), Hash256>,
        roots: Vec<Hash256>,
    }
    impl NodeSource for Log {
        fn node(&self, level: u32, index: u64) -> Result<Hash256, ProofError> {
            self.nodes
                .get(&(level, index))
                .copied()
                .ok_or(ProofError::Node {
                    level,
                    index,
                    reason: "absent".into(),
                })
        }
    }

    fn log(leaves: &[u64]) -> Log {
        let mut f = Frontier::new();
        let mut nodes = HashMap::new();
        let mut roots = vec![f.root()];
        for l in leaves {
            f.append(leaf_hash(&Hash256::of(&l.to_be_bytes())), |(a, b, h)| {
                nodes.insert((a, b), h);
            });
            roots.push(f.root());
        }
        Log { nodes, roots }
    }

    const ORIGIN: &str = "warden/audit/test";

    fn note(l: &Log, size: u64) -> String {
        sign_checkpoint(
            &TreeHead {
                origin: ORIGIN.into(),
                size,
                root: l.roots[size as usize],
            },
            &SigningKey::from_bytes(&[1; 32]),
        )
        .expect("signs")
    }

    fn offer(
        held: Option<&WitnessedLog>,
        l: &Log,
        old: u64,
        new: u64,
    ) -> Result<(WitnessedLog, NoteSignature), WitnessError> {
        let req = AddCheckpoint {
            old_size: old,
            proof: prove_consistency(l, old, new).expect("proof"),
            checkpoint: note(l, new),
        };
        let req = AddCheckpoint::parse(req.to_text().as_bytes()).expect("round trip");
        add_checkpoint(
            held,
            ORIGIN,
            &SigningKey::from_bytes(&[1; 32]).verifying_key(),
            &req,
            "witness.example/w1",
            &SigningKey::from_bytes(&[9; 32]),
            1_700_000_000,
        )
    }

    #[test]
    fn a_witness_cosigns_a_log_that_only_grows() {
        let l = log(&(0..20).collect::<Vec<_>>());
        let (s1, _) = offer(None, &l, 0, 5).expect("first");
        let (s2, line) = offer(Some(&s1), &l, 5, 20).expect("extends");
        assert_eq!((s2.size, s2.root), (20, l.roots[20]));
        let mut cosigned = SignedNote::parse(s2.checkpoint.as_bytes()).expect("parses");
        cosigned.signatures.push(line);
        assert_eq!(
            verify_cosignature(
                &cosigned,
                "witness.example/w1",
                &SigningKey::from_bytes(&[9; 32]).verifying_key()
            ),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn a_witness_holding_a_newer_checkpoint_catches_dropped_entries() {
        let l = log(&(0..20).collect::<Vec<_>>());
        let (held, _) = offer(None, &l, 0, 20).expect("witnessed 20");
        // The log drops entries 13..20 with their checkpoints and signs 12.
        let err = offer(Some(&held), &l, 0, 12).expect_err("refused");
        assert_eq!(err.status(), 409);
        let msg = err.to_string();
        assert!(msg.contains("truncated"), "{msg}");
        assert!(msg.contains("size 20") && msg.contains("size 12"), "{msg}");
        assert!(
            msg.contains(&l.roots[20].to_string()) && msg.contains(&l.roots[12].to_string()),
            "{msg}"
        );
    }

    #[test]
    fn a_witness_refuses_history_rewritten_after_an_older_checkpoint_naming_the_sizes() {
        let honest = log(&(0..10).collect::<Vec<_>>());
        let (held, _) = offer(None, &honest, 0, 8).expect("witnessed 8");
        // Rewrite entry 6 onwards and re-sign at 15.
        let forged_leaves: Vec<u64> = (0..6).chain(100..109).collect();
        let forged = log(&forged_leaves);
        let err = offer(Some(&held), &forged, 8, 15).expect_err("refused");
        assert_eq!(err.status(), 422);
        let msg = err.to_string();
        assert!(msg.contains("rewritten"), "{msg}");
        assert!(msg.contains("size 8") && msg.contains("size 15"), "{msg}");
        assert!(msg.contains(&honest.roots[8].to_string()), "{msg}");
        // And a same-size rewrite.
        let err = offer(Some(&held), &forged, 8, 8).expect_err("refused");
        assert_eq!(err.status(), 422);
    }

    #[test]
    fn a_wrong_old_size_is_a_conflict_naming_the_held_size() {
        let l = log(&(0..10).collect::<Vec<_>>());
        let (held, _) = offer(None, &l, 0, 4).expect("witnessed 4");
        assert_eq!(
            offer(Some(&held), &l, 3, 9).expect_err("conflict"),
            WitnessError::OldSizeMismatch {
                claimed: 3,
                held: 4
            }
        );
    }

    #[test]
    fn a_checkpoint_by_another_key_or_origin_is_refused() {
        let l = log(&[1, 2, 3]);
        let req = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: note(&l, 3),
        };
        let wk = SigningKey::from_bytes(&[9; 32]);
        let other = SigningKey::from_bytes(&[2; 32]).verifying_key();
        assert_eq!(
            add_checkpoint(None, ORIGIN, &other, &req, "w", &wk, 1)
                .expect_err("403")
                .status(),
            403
        );
        let vk = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert_eq!(
            add_checkpoint(None, "other/log", &vk, &req, "w", &wk, 1)
                .expect_err("404")
                .status(),
            404
        );
    }
}
