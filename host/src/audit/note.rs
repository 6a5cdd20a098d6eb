//! C2SP signed notes carrying C2SP `tlog-checkpoint` tree heads, and C2SP
//! `tlog-cosignature/v1` witness cosignatures (docs/audit.md "Checkpoints").
//!
//! A checkpoint note is
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root>\n\n— <origin> <base64(key id ‖ signature)>\n
//! ```
//!
//! signed with Ed25519 by the host key over the body (the first three
//! lines). The key id is `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4]`; a
//! cosignature's is the same with `0x04`, and it signs `"cosignature/v1\n"
//! "time <secs>\n"` followed by the body, prefixing the 8-byte timestamp.
//!
//! This module must never do I/O or read the clock (times are passed in),
//! and must never accept a note in which a line names a key we trust but
//! its signature does not verify.

use super::merkle::empty_root;
use crate::digest::Hash256;
use base64ct::{Base64, Encoding};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature-type byte of an Ed25519 note signature (C2SP signed-note).
pub const ED25519_TYPE: u8 = 0x01;
/// Signature-type byte of an Ed25519 `cosignature/v1` (C2SP tlog-cosignature).
pub const COSIGNATURE_TYPE: u8 = 0x04;
/// Largest note accepted by [`SignedNote::parse`]: checkpoints are a few
/// hundred bytes, but C2SP requires accepting 16 signatures of up to ~5 kB
/// (post-quantum cosignatures); this bounds what a peer can make a
/// verifier buffer.
pub const MAX_NOTE_BYTES: usize = 128 * 1024;
/// Most signature lines accepted in one note (bounds verification work).
pub const MAX_SIGNATURES: usize = 64;

const EM_DASH: &str = "\u{2014} ";

/// Why a note or checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a well-formed signed note.
    #[error("malformed signed note: {0}")]
    Malformed(String),
    /// Not a well-formed checkpoint body.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    /// A key name that a note may not carry.
    #[error("key name {0:?} is not allowed: it must be non-empty, without spaces or '+'")]
    BadName(String),
    /// No signature line from the key asked for.
    #[error(
        "the note carries no signature by {name} (key id {key_id}); is it the right key and origin?"
    )]
    NotSignedBy {
        /// Key name looked for.
        name: String,
        /// Key id (hex) looked for.
        key_id: String,
    },
    /// A line names the trusted key but does not verify: the note is forged or altered.
    #[error(
        "the signature by {name} (key id {key_id}) does not verify: the note was altered or forged"
    )]
    BadSignature {
        /// Key name.
        name: String,
        /// Key id (hex).
        key_id: String,
    },
}

/// The origin line (and note key name) of a host's audit log:
/// `warden/audit/<key id>`, where the key id is [`crate::audit::key_id`]
/// (16 hex digits of SHA-256 of the public key). A log's identity is its
/// key: a new host key starts a new log, so witnesses never see two
/// histories under one origin.
pub fn default_origin(key: &VerifyingKey) -> String {
    format!("warden/audit/{}", crate::audit::key_id(key))
}

/// `SHA-256(name ‖ "\n" ‖ type ‖ public key)[:4]`.
pub fn note_key_id(name: &str, sig_type: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([sig_type]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The C2SP verifier-key text `<name>+<hex key id>+<base64(type ‖ key)>`.
pub fn verifier_key(name: &str, sig_type: u8, key: &VerifyingKey) -> String {
    let mut material = vec![sig_type];
    material.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(note_key_id(name, sig_type, key)),
        Base64::encode_string(&material)
    )
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
        return Err(NoteError::BadName(name.to_owned()));
    }
    Ok(())
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// The 4-byte key id.
    pub key_id: [u8; 4],
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line `— <name> <base64(key id ‖ signature)>\n`.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{EM_DASH}{} {}\n", self.name, Base64::encode_string(&raw))
    }

    fn parse(line: &str) -> Result<NoteSignature, NoteError> {
        let bad = |why: &str| NoteError::Malformed(format!("signature line {line:?}: {why}"));
        let rest = line
            .strip_prefix(EM_DASH)
            .ok_or_else(|| bad("does not start with \"— \""))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| bad("no space before the signature"))?;
        check_name(name)?;
        let raw = Base64::decode_vec(b64).map_err(|_| bad("signature is not base64"))?;
        if raw.len() < 5 {
            return Err(bad("signature shorter than a key id"));
        }
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id: [raw[0], raw[1], raw[2], raw[3]],
            signature: raw[4..].to_vec(),
        })
    }
}

/// A parsed signed note: the text (every line ending in `\n`) and its
/// signature lines, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// The signature lines.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a note strictly: UTF-8 without control characters other than
    /// `\n`; the text ends at the last blank line, then one or more
    /// signature lines each ending in `\n`.
    pub fn parse(bytes: &[u8]) -> Result<SignedNote, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed(format!(
                "{} bytes, more than the {MAX_NOTE_BYTES} a note may have",
                bytes.len()
            )));
        }
        let s =
            std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed("not UTF-8".to_owned()))?;
        if s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed(
                "contains a control character".to_owned(),
            ));
        }
        // The text may hold empty lines; the last one separates it from
        // the signatures (C2SP signed-note).
        let split = s.rfind("\n\n").ok_or_else(|| {
            NoteError::Malformed("no blank line before the signatures".to_owned())
        })?;
        let text = &s[..split + 1];
        let sigs = &s[split + 2..];
        if !sigs.ends_with('\n') || sigs.len() < 2 {
            return Err(NoteError::Malformed(
                "signature block is empty or does not end with a newline".to_owned(),
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed(format!(
                    "more than {MAX_SIGNATURES} signature lines"
                )));
            }
            signatures.push(NoteSignature::parse(line)?);
        }
        Ok(SignedNote {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note's bytes: text, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        out
    }

    /// The signatures by `name` with `key_id` (normally zero or one).
    fn by(&self, name: &str, key_id: [u8; 4]) -> impl Iterator<Item = &NoteSignature> {
        self.signatures
            .iter()
            .filter(move |s| s.name == name && s.key_id == key_id)
    }
}

/// The three lines of a C2SP checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The log's origin (first line).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root of the first `size` leaves.
    pub root: Hash256,
}

impl TreeHead {
    /// `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            Base64::encode_string(&self.root.0)
        )
    }

    /// Parses a checkpoint body (extension lines after the third are refused:
    /// warden writes none).
    pub fn parse_body(text: &str) -> Result<TreeHead, NoteError> {
        let bad = |why: String| NoteError::MalformedCheckpoint(why);
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("body does not end with a newline".to_owned()))?
            .split('\n')
            .collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad(format!(
                "body has {} lines; a warden checkpoint has origin, size and root",
                lines.len()
            )));
        };
        if origin.is_empty() {
            return Err(bad("empty origin line".to_owned()));
        }
        let n: u64 = size
            .parse()
            .ok()
            .filter(|n: &u64| n.to_string() == size)
            .ok_or_else(|| {
                bad(format!(
                    "tree size {size:?} is not a decimal without leading zeros"
                ))
            })?;
        let raw =
            Base64::decode_vec(root).map_err(|_| bad(format!("root {root:?} is not base64")))?;
        let root: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad(format!("root {root:?} is not 32 bytes")))?;
        let head = TreeHead {
            origin: origin.to_owned(),
            size: n,
            root: Hash256(root),
        };
        if head.size == 0 && head.root != empty_root() {
            return Err(bad("a tree of size 0 must have the empty root".to_owned()));
        }
        Ok(head)
    }
}

/// Signs `head` as a checkpoint note; the key name is the origin.
pub fn sign_checkpoint(head: &TreeHead, key: &SigningKey) -> Result<String, NoteError> {
    check_name(&head.origin)?;
    let text = head.body();
    let sig = key.sign(text.as_bytes());
    Ok(SignedNote {
        text,
        signatures: vec![NoteSignature {
            name: head.origin.clone(),
            key_id: note_key_id(&head.origin, ED25519_TYPE, &key.verifying_key()),
            signature: sig.to_bytes().to_vec(),
        }],
    }
    .to_text())
}

/// Verifies that `note` is a checkpoint signed by `key` under the name
/// equal to its origin (and, if given, that the origin is `origin`).
/// Unknown signature lines are ignored, as C2SP requires.
pub fn verify_checkpoint(
    note: &[u8],
    key: &VerifyingKey,
    origin: Option<&str>,
) -> Result<(SignedNote, TreeHead), NoteError> {
    let parsed = SignedNote::parse(note)?;
    let head = TreeHead::parse_body(&parsed.text)?;
    if let Some(o) = origin
        && o != head.origin
    {
        return Err(NoteError::MalformedCheckpoint(format!(
            "origin is {:?}, expected {o:?}",
            head.origin
        )));
    }
    let id = note_key_id(&head.origin, ED25519_TYPE, key);
    let mut found = false;
    for s in parsed.by(&head.origin, id) {
        let ok = <[u8; 64]>::try_from(&s.signature[..])
            .map(|b| {
                key.verify(parsed.text.as_bytes(), &Signature::from_bytes(&b))
                    .is_ok()
            })
            .unwrap_or(false);
        if !ok {
            return Err(NoteError::BadSignature {
                name: head.origin.clone(),
                key_id: hex::encode(id),
            });
        }
        found = true;
    }
    if !found {
        return Err(NoteError::NotSignedBy {
            name: head.origin.clone(),
            key_id: hex::encode(id),
        });
    }
    Ok((parsed, head))
}

fn cosigned_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// A `cosignature/v1` line by witness `name` over the checkpoint `body`.
pub fn cosign(
    body: &str,
    name: &str,
    key: &SigningKey,
    timestamp: u64,
) -> Result<NoteSignature, NoteError> {
    check_name(name)?;
    let sig = key.sign(&cosigned_message(body, timestamp));
    let mut signature = timestamp.to_be_bytes().to_vec();
    signature.extend_from_slice(&sig.to_bytes());
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: note_key_id(name, COSIGNATURE_TYPE, &key.verifying_key()),
        signature,
    })
}

/// Verifies witness `name`'s cosignature in `note`; returns its timestamp.
pub fn verify_cosignature(
    note: &SignedNote,
    name: &str,
    key: &VerifyingKey,
) -> Result<u64, NoteError> {
    let id = note_key_id(name, COSIGNATURE_TYPE, key);
    let mut newest = None;
    for s in note.by(name, id) {
        let bad = || NoteError::BadSignature {
            name: name.to_owned(),
            key_id: hex::encode(id),
        };
        if s.signature.len() != 72 {
            return Err(bad());
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&s.signature[..8]);
        let ts = u64::from_be_bytes(ts);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&s.signature[8..]);
        if ts > i64::MAX as u64
            || key
                .verify(
                    &cosigned_message(&note.text, ts),
                    &Signature::from_bytes(&sig),
                )
                .is_err()
        {
            return Err(bad());
        }
        newest = newest.max(Some(ts));
    }
    newest.ok_or_else(|| NoteError::NotSignedBy {
        name: name.to_owned(),
        key_id: hex::encode(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn head() -> TreeHead {
        TreeHead {
            origin: "example.com/warden".to_owned(),
            size: 5,
            root: Hash256([7; 32]),
        }
    }

    #[test]
    fn a_checkpoint_note_has_the_c2sp_layout_and_verifies() {
        let note = sign_checkpoint(&head(), &key(1)).expect("signs");
        let lines: Vec<&str> = note.split('\n').collect();
        assert_eq!(lines[0], "example.com/warden");
        assert_eq!(lines[1], "5");
        assert_eq!(lines[2], "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} example.com/warden "));
        assert_eq!(lines[5], "");
        let (_, h) =
            verify_checkpoint(note.as_bytes(), &key(1).verifying_key(), None).expect("verifies");
        assert_eq!(h, head());
    }

    #[test]
    fn every_single_bit_change_of_a_checkpoint_note_fails() {
        let note = sign_checkpoint(&head(), &key(1))
            .expect("signs")
            .into_bytes();
        let vk = key(1).verifying_key();
        for i in 0..note.len() {
            for bit in 0..8 {
                let mut bad = note.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    verify_checkpoint(&bad, &vk, Some("example.com/warden")).is_err(),
                    "byte {i} bit {bit} accepted"
                );
            }
        }
    }

    #[test]
    fn a_note_signed_by_another_key_is_not_signed_by_ours() {
        let note = sign_checkpoint(&head(), &key(2)).expect("signs");
        assert!(matches!(
            verify_checkpoint(note.as_bytes(), &key(1).verifying_key(), None),
            Err(NoteError::NotSignedBy { .. })
        ));
    }

    #[test]
    fn unknown_signature_lines_are_ignored_and_cosignatures_verify() {
        let note = sign_checkpoint(&head(), &key(1)).expect("signs");
        let mut parsed = SignedNote::parse(note.as_bytes()).expect("parses");
        let cs =
            cosign(&parsed.text, "witness.example/w1", &key(9), 1_700_000_000).expect("cosigns");
        parsed.signatures.push(cs);
        let text = parsed.to_text();
        let (reparsed, _) = verify_checkpoint(text.as_bytes(), &key(1).verifying_key(), None)
            .expect("still verifies");
        assert_eq!(
            verify_cosignature(&reparsed, "witness.example/w1", &key(9).verifying_key()),
            Ok(1_700_000_000)
        );
        assert!(
            verify_cosignature(&reparsed, "witness.example/w2", &key(9).verifying_key()).is_err()
        );
    }

    #[test]
    fn a_malformed_body_is_refused_with_the_reason() {
        for body in [
            "o\n05\nAA==\n",
            "o\n1\nAA==\n",
            "\n1\nAA==\n",
            "o\n1\n",
            "o\n1\nx\ny\n",
        ] {
            assert!(TreeHead::parse_body(body).is_err(), "{body:?}");
        }
        let zero = TreeHead {
            origin: "o".into(),
            size: 0,
            root: Hash256([1; 32]),
        };
        assert!(TreeHead::parse_body(&zero.body()).is_err());
    }

    #[test]
    fn the_text_ends_at_the_last_empty_line_as_c2sp_says() {
        let k = key(1);
        let text = "first\n\nsecond\n".to_owned();
        let note = SignedNote {
            signatures: vec![NoteSignature {
                name: "n".into(),
                key_id: note_key_id("n", ED25519_TYPE, &k.verifying_key()),
                signature: k.sign(text.as_bytes()).to_bytes().to_vec(),
            }],
            text: text.clone(),
        };
        let parsed = SignedNote::parse(note.to_text().as_bytes()).expect("parses");
        assert_eq!(parsed.text, text);
        assert_eq!(parsed, note);
    }

    #[test]
    fn a_note_over_the_size_limit_is_refused() {
        let big = vec![b'a'; MAX_NOTE_BYTES + 1];
        assert!(matches!(
            SignedNote::parse(&big),
            Err(NoteError::Malformed(_))
        ));
    }

    #[test]
    fn verifier_key_text_matches_the_c2sp_vkey_layout() {
        let vk = verifier_key("example.com/warden", ED25519_TYPE, &key(1).verifying_key());
        let parts: Vec<&str> = vk.split('+').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].len(), 8);
    }
}
