//! The text forms of proofs (docs/audit.md "Proofs"), and their offline
//! verification with only the host's public key.
//!
//! An inclusion proof is a C2SP `tlog-proof@v1` file whose `extra` line is
//! the base64 of the entry's 32-byte chain hash (the leaf is
//! `SHA-256(0x00 ‖ hash)`). A consistency proof is warden's own format,
//! modelled on the tlog-witness request body:
//!
//! ```text
//! warden-consistency-proof-v1
//! old <size>
//! old-root <base64 root>
//! <base64 hash>            (zero or more)
//!
//! <checkpoint note of the new size>
//! ```
//!
//! This module must never do I/O and never accept a proof whose checkpoint
//! is not signed by the key given.

use super::merkle::{
    MAX_PROOF_HASHES, ProofError, leaf_hash, verify_consistency, verify_inclusion,
};
use super::note::{NoteError, TreeHead, verify_checkpoint};
use crate::digest::Hash256;
use base64ct::{Base64, Encoding};
use ed25519_dalek::VerifyingKey;

/// First line of an inclusion proof.
pub const INCLUSION_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// First line of a consistency proof.
pub const CONSISTENCY_HEADER: &str = "warden-consistency-proof-v1";

/// Why a proof file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofFileError {
    /// Not the documented layout.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The checkpoint it carries does not verify.
    #[error("the proof's checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// The hashes do not prove the claim.
    #[error("{0}")]
    Proof(#[from] ProofError),
}

/// An inclusion proof of one entry against a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Leaf index (`seq - 1`).
    pub index: u64,
    /// The entry's chain hash.
    pub entry_hash: Hash256,
    /// RFC 6962 audit path, leaf's sibling first.
    pub hashes: Vec<Hash256>,
    /// The signed checkpoint note the path leads to.
    pub checkpoint: String,
}

/// A consistency proof from an old tree to a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Old tree size.
    pub old_size: u64,
    /// Old tree root.
    pub old_root: Hash256,
    /// RFC 6962 consistency proof.
    pub hashes: Vec<Hash256>,
    /// The signed checkpoint note of the new size.
    pub checkpoint: String,
}

fn b64(h: &Hash256) -> String {
    Base64::encode_string(&h.0)
}

fn hash_line(line: &str) -> Result<Hash256, ProofFileError> {
    let raw = Base64::decode_vec(line)
        .map_err(|_| ProofFileError::Malformed(format!("{line:?} is not base64")))?;
    <[u8; 32]>::try_from(&raw[..])
        .map(Hash256)
        .map_err(|_| ProofFileError::Malformed(format!("{line:?} is not a 32-byte hash")))
}

fn decimal(what: &str, s: &str) -> Result<u64, ProofFileError> {
    s.parse::<u64>()
        .ok()
        .filter(|n| n.to_string() == s)
        .ok_or_else(|| {
            ProofFileError::Malformed(format!(
                "{what} {s:?} is not a decimal without leading zeros"
            ))
        })
}

/// Splits `<lines>\n\n<note>`; the lines are returned without newlines.
fn split_body(text: &str) -> Result<(Vec<&str>, &str), ProofFileError> {
    let at = text
        .find("\n\n")
        .ok_or_else(|| ProofFileError::Malformed("no blank line before the checkpoint".into()))?;
    Ok((text[..at].split('\n').collect(), &text[at + 2..]))
}

impl InclusionProof {
    /// The `tlog-proof@v1` text.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{INCLUSION_HEADER}\nextra {}\nindex {}\n",
            b64(&self.entry_hash),
            self.index
        );
        for h in &self.hashes {
            out.push_str(&b64(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses the text form strictly.
    pub fn parse(text: &str) -> Result<InclusionProof, ProofFileError> {
        let (lines, checkpoint) = split_body(text)?;
        let mut it = lines.into_iter();
        if it.next() != Some(INCLUSION_HEADER) {
            return Err(ProofFileError::Malformed(format!(
                "first line is not {INCLUSION_HEADER}"
            )));
        }
        let extra = it
            .next()
            .and_then(|l| l.strip_prefix("extra "))
            .ok_or_else(|| {
                ProofFileError::Malformed("no `extra <base64 entry hash>` line".into())
            })?;
        let entry_hash = hash_line(extra)?;
        let index = it
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .ok_or_else(|| ProofFileError::Malformed("no `index <n>` line".into()))?;
        let index = decimal("index", index)?;
        let hashes = it.map(hash_line).collect::<Result<Vec<_>, _>>()?;
        if hashes.len() > MAX_PROOF_HASHES {
            return Err(ProofError::TooLong(hashes.len()).into());
        }
        Ok(InclusionProof {
            index,
            entry_hash,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Verifies the checkpoint's signature with `key` and the path from the
    /// entry's leaf to its root; returns the checkpoint.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        origin: Option<&str>,
    ) -> Result<TreeHead, ProofFileError> {
        let (_, head) = verify_checkpoint(self.checkpoint.as_bytes(), key, origin)?;
        verify_inclusion(
            &leaf_hash(&self.entry_hash),
            self.index,
            head.size,
            &self.hashes,
            &head.root,
        )?;
        Ok(head)
    }
}

impl ConsistencyProof {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{CONSISTENCY_HEADER}\nold {}\nold-root {}\n",
            self.old_size,
            b64(&self.old_root)
        );
        for h in &self.hashes {
            out.push_str(&b64(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses the text form strictly.
    pub fn parse(text: &str) -> Result<ConsistencyProof, ProofFileError> {
        let (lines, checkpoint) = split_body(text)?;
        let mut it = lines.into_iter();
        if it.next() != Some(CONSISTENCY_HEADER) {
            return Err(ProofFileError::Malformed(format!(
                "first line is not {CONSISTENCY_HEADER}"
            )));
        }
        let old = it
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or_else(|| ProofFileError::Malformed("no `old <size>` line".into()))?;
        let old_size = decimal("old size", old)?;
        let root = it
            .next()
            .and_then(|l| l.strip_prefix("old-root "))
            .ok_or_else(|| ProofFileError::Malformed("no `old-root <base64>` line".into()))?;
        let old_root = hash_line(root)?;
        let hashes = it.map(hash_line).collect::<Result<Vec<_>, _>>()?;
        if hashes.len() > MAX_PROOF_HASHES {
            return Err(ProofError::TooLong(hashes.len()).into());
        }
        Ok(ConsistencyProof {
            old_size,
            old_root,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Verifies the new checkpoint's signature with `key` and that it
    /// extends `(old_size, old_root)`; returns the new checkpoint.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        origin: Option<&str>,
    ) -> Result<TreeHead, ProofFileError> {
        let (_, head) = verify_checkpoint(self.checkpoint.as_bytes(), key, origin)?;
        verify_consistency(
            self.old_size,
            head.size,
            &self.old_root,
            &head.root,
            &self.hashes,
        )?;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{Frontier, NodeSource, prove_consistency, prove_inclusion};
    use crate::audit::note::sign_checkpoint;
    use ed25519_dalek::SigningKey;
    use std::collections::HashMap;

    struct Memory(HashMap<(u32, u64), Hash256>);
    impl NodeSource for Memory {
        fn node(&self, level: u32, index: u64) -> Result<Hash256, ProofError> {
            self.0
                .get(&(level, index))
                .copied()
                .ok_or(ProofError::Node {
                    level,
                    index,
                    reason: "absent".into(),
                })
        }
    }

    fn log(n: u64) -> (Memory, Vec<Hash256>, Vec<Hash256>) {
        let mut f = Frontier::new();
        let mut m = HashMap::new();
        let mut entries = Vec::new();
        let mut roots = vec![f.root()];
        for i in 0..n {
            let e = Hash256::of(&i.to_be_bytes());
            entries.push(e);
            f.append(leaf_hash(&e), |(l, x, h)| {
                m.insert((l, x), h);
            });
            roots.push(f.root());
        }
        (Memory(m), entries, roots)
    }

    fn note(size: u64, root: Hash256, key: &SigningKey) -> String {
        sign_checkpoint(
            &TreeHead {
                origin: "warden/test".into(),
                size,
                root,
            },
            key,
        )
        .expect("signs")
    }

    #[test]
    fn an_inclusion_proof_file_round_trips_and_any_bit_flip_fails() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let (mem, entries, roots) = log(21);
        let proof = InclusionProof {
            index: 6,
            entry_hash: entries[6],
            hashes: prove_inclusion(&mem, 6, 21).expect("proves"),
            checkpoint: note(21, roots[21], &key),
        };
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
        let back = InclusionProof::parse(&text).expect("parses");
        assert_eq!(back, proof);
        back.verify(&key.verifying_key(), Some("warden/test"))
            .expect("verifies");
        let bytes = text.into_bytes();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let ok = std::str::from_utf8(&bad)
                    .ok()
                    .and_then(|t| InclusionProof::parse(t).ok())
                    .map(|p| p.verify(&key.verifying_key(), Some("warden/test")).is_ok())
                    .unwrap_or(false);
                assert!(!ok, "byte {i} bit {bit} still verifies");
            }
        }
    }

    #[test]
    fn a_consistency_proof_file_round_trips_and_any_bit_flip_fails() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let (mem, _, roots) = log(13);
        let proof = ConsistencyProof {
            old_size: 5,
            old_root: roots[5],
            hashes: prove_consistency(&mem, 5, 13).expect("proves"),
            checkpoint: note(13, roots[13], &key),
        };
        let text = proof.to_text();
        let back = ConsistencyProof::parse(&text).expect("parses");
        assert_eq!(back, proof);
        back.verify(&key.verifying_key(), None).expect("verifies");
        let bytes = text.into_bytes();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let ok = std::str::from_utf8(&bad)
                    .ok()
                    .and_then(|t| ConsistencyProof::parse(t).ok())
                    .map(|p| p.verify(&key.verifying_key(), Some("warden/test")).is_ok())
                    .unwrap_or(false);
                assert!(!ok, "byte {i} bit {bit} still verifies");
            }
        }
    }

    #[test]
    fn a_proof_against_another_key_is_refused() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let other = SigningKey::from_bytes(&[5; 32]);
        let (mem, entries, roots) = log(3);
        let proof = InclusionProof {
            index: 0,
            entry_hash: entries[0],
            hashes: prove_inclusion(&mem, 0, 3).expect("proves"),
            checkpoint: note(3, roots[3], &key),
        };
        assert!(matches!(
            proof.verify(&other.verifying_key(), None),
            Err(ProofFileError::Checkpoint(NoteError::NotSignedBy { .. }))
        ));
    }
}
