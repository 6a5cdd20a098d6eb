//! Signed checkpoints: the host's Ed25519 signature over `(size, head hash, time)`.
//!
//! A checkpoint commits to the first `size` entries, so deleting entries below
//! it, or rewriting the whole chain without the host key, is detected.

use crate::digest::Hash256;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Domain separator: the first bytes of every signed checkpoint message.
pub const CHECKPOINT_DOMAIN: &[u8] = b"warden-checkpoint-v1\0";

/// A 64-byte Ed25519 signature; text form is 128 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureBytes(pub [u8; 64]);

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for SignatureBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(s.as_bytes(), &mut out).map_err(|_| {
            serde::de::Error::custom(format!("signature is not 128 hex digits: {s:?}"))
        })?;
        Ok(SignatureBytes(out))
    }
}

/// `(size, head_hash, at_ms)` signed by the host key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Number of entries covered: entries `1..=size`.
    pub size: u64,
    /// Hash of entry `size` ([`Hash256::ZERO`] when `size` is 0).
    pub head_hash: Hash256,
    /// When the checkpoint was written, unix milliseconds.
    pub at_ms: u64,
    /// [`key_id`] of the signing key (a hint; not signed).
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::signed_message`].
    pub signature: SignatureBytes,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Signed by a different key than the one we verify with.
    #[error("checkpoint at size {size} names key {found}, expected key {expected}")]
    WrongKey {
        /// Checkpoint size.
        size: u64,
        /// Key id in the checkpoint.
        found: String,
        /// Key id of the verifying key.
        expected: String,
    },
    /// The signature does not match the message.
    #[error("checkpoint at size {size}: signature does not verify with key {key_id}")]
    BadSignature {
        /// Checkpoint size.
        size: u64,
        /// Key id used.
        key_id: String,
    },
}

/// First 16 hex digits of SHA-256 of the 32 public-key bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

impl Checkpoint {
    /// `CHECKPOINT_DOMAIN || size (u64 BE) || head_hash (32) || at_ms (u64 BE)`.
    pub fn signed_message(size: u64, head_hash: &Hash256, at_ms: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 48);
        m.extend_from_slice(CHECKPOINT_DOMAIN);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&head_hash.0);
        m.extend_from_slice(&at_ms.to_be_bytes());
        m
    }

    /// Signs a checkpoint over the first `size` entries.
    pub fn sign(size: u64, head_hash: Hash256, at_ms: u64, key: &SigningKey) -> Checkpoint {
        let sig = key.sign(&Self::signed_message(size, &head_hash, at_ms));
        Checkpoint {
            size,
            head_hash,
            at_ms,
            key_id: key_id(&key.verifying_key()),
            signature: SignatureBytes(sig.to_bytes()),
        }
    }

    /// Checks the key id and the signature.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let expected = key_id(key);
        if self.key_id != expected {
            return Err(CheckpointError::WrongKey {
                size: self.size,
                found: self.key_id.clone(),
                expected,
            });
        }
        let msg = Self::signed_message(self.size, &self.head_hash, self.at_ms);
        key.verify(&msg, &Signature::from_bytes(&self.signature.0))
            .map_err(|_| CheckpointError::BadSignature {
                size: self.size,
                key_id: expected,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_only() {
        let cp = Checkpoint::sign(10, Hash256([5; 32]), 1234, &key(1));
        assert_eq!(cp.verify(&key(1).verifying_key()), Ok(()));
        assert!(matches!(
            cp.verify(&key(2).verifying_key()),
            Err(CheckpointError::WrongKey { .. })
        ));
    }

    #[test]
    fn changing_any_signed_field_breaks_the_signature() {
        let k = key(1);
        let cp = Checkpoint::sign(10, Hash256([5; 32]), 1234, &k);
        let vk = k.verifying_key();
        let mut a = cp.clone();
        a.size = 9;
        let mut b = cp.clone();
        b.head_hash = Hash256([6; 32]);
        let mut c = cp.clone();
        c.at_ms = 1235;
        let mut d = cp;
        d.signature.0[7] ^= 1;
        for bad in [a, b, c, d] {
            assert!(matches!(
                bad.verify(&vk),
                Err(CheckpointError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn checkpoint_json_round_trips() {
        let cp = Checkpoint::sign(3, Hash256([1; 32]), 9, &key(3));
        let text = serde_json::to_string(&cp).expect("serializes");
        let back: Checkpoint = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, cp);
    }
}
