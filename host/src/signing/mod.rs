//! Component signatures: the digest a signature covers, embedding and
//! reading signatures, and (in [`trust`]) deciding whether a component may
//! run as a given capability.
//!
//! This folder is for turning component bytes plus an operator's trust file
//! into a yes/no (with the reason) *before* anything is compiled. It must
//! never compile or instantiate a component, never trust a signature because
//! of its key id alone (trust always compares the full public key), and never
//! let a key's trust for one capability count for another.
//!
//! Format (see `docs/signing.md` for the byte-level reference): each signature
//! is one top-level custom section named [`SECTION_NAME`] whose payload is
//! [`PAYLOAD_LEN`] bytes:
//!
//! | offset | len | field                                   |
//! |--------|-----|-----------------------------------------|
//! | 0      | 1   | format version, `0x01`                  |
//! | 1      | 1   | algorithm, `0x01` = Ed25519             |
//! | 2      | 1   | hash, `0x01` = SHA-256                  |
//! | 3      | 32  | signer public key                       |
//! | 35     | 32  | the digest that was signed              |
//! | 67     | 64  | Ed25519 signature over [`MESSAGE_PREFIX`] ‖ digest |
//!
//! The digest is SHA-256 over the component with every top-level
//! `warden-signature` section removed, so signatures are independent: adding
//! or removing one never changes what another covers.

mod section;
pub mod trust;

use crate::digest::Hash256;
use crate::keys::{self, SigningKey, VerifyingKey};
use ed25519_dalek::{Signature, Signer as _};

pub use trust::{Refusal, SignatureReport, SignerPins, TrustError, TrustStore, Verified};

/// Name of the custom section that holds one signature.
pub const SECTION_NAME: &str = "warden-signature";

/// Length of one signature payload (and of one record in a detached file).
pub const PAYLOAD_LEN: usize = 3 + 32 + 32 + 64;

/// Domain separation: the signed message is this prefix followed by the 32
/// digest bytes, so a warden signature can never be replayed as a signature
/// over anything else made with the same key (for example an audit checkpoint).
pub const MESSAGE_PREFIX: &[u8] = b"warden-component-signature-v1\0";

const FORMAT_VERSION: u8 = 1;
const ALG_ED25519: u8 = 1;
const HASH_SHA256: u8 = 1;

/// Why component bytes or a signature could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The bytes do not start with the WebAssembly magic.
    #[error("not a WebAssembly binary (no `\\0asm` header); pass the .wasm component file")]
    NotWasm,
    /// A core module was given where a component is required.
    #[error(
        "this is a core WebAssembly module, not a component; build for wasm32-wasip2 or wrap it \
         with `wasm-tools component new` before signing"
    )]
    CoreModule,
    /// The section structure is broken.
    #[error("malformed component at byte {offset}: {reason}; rebuild the component")]
    Malformed {
        /// Byte offset of the section that could not be read.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A `warden-signature` section (or detached record) has the wrong shape.
    #[error("malformed signature ({reason}); re-sign the component with `warden sign`")]
    MalformedSignature {
        /// What is wrong.
        reason: String,
    },
    /// A detached signature file is not a whole number of records.
    #[error(
        "detached signature file is {len} bytes, not a non-empty multiple of {PAYLOAD_LEN}; \
         regenerate it with `warden sign --detached`"
    )]
    DetachedLength {
        /// The file's length.
        len: usize,
    },
}

/// One signature as found in a component (or a detached file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedSignature {
    /// The key that claims to have signed.
    pub public_key: VerifyingKey,
    /// The digest the signer saw when signing.
    pub signed_digest: Hash256,
    /// The Ed25519 signature over [`MESSAGE_PREFIX`] ‖ `signed_digest`.
    pub signature: Signature,
}

/// Why a present signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    /// The component changed after it was signed.
    #[error("component changed after signing (signed {signed}, now {actual})")]
    ContentChanged {
        /// What was signed.
        signed: Hash256,
        /// What the component hashes to now.
        actual: Hash256,
    },
    /// The signature bytes do not verify under the embedded key.
    #[error("signature bytes do not verify under the embedded public key")]
    Invalid,
}

impl EmbeddedSignature {
    /// The signer's key id (see [`keys::key_id`]).
    pub fn key_id(&self) -> String {
        keys::key_id(&self.public_key)
    }

    /// Checks this signature against the component's actual digest.
    pub fn verify(&self, actual: &Hash256) -> Result<(), SignatureProblem> {
        if self.signed_digest != *actual {
            return Err(SignatureProblem::ContentChanged {
                signed: self.signed_digest,
                actual: *actual,
            });
        }
        self.public_key
            .verify_strict(&message(actual), &self.signature)
            .map_err(|_| SignatureProblem::Invalid)
    }

    /// The [`PAYLOAD_LEN`]-byte encoding.
    pub fn to_payload(&self) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        out[0] = FORMAT_VERSION;
        out[1] = ALG_ED25519;
        out[2] = HASH_SHA256;
        out[3..35].copy_from_slice(self.public_key.as_bytes());
        out[35..67].copy_from_slice(&self.signed_digest.0);
        out[67..].copy_from_slice(&self.signature.to_bytes());
        out
    }

    /// Decodes one payload.
    pub fn from_payload(payload: &[u8]) -> Result<Self, SigningError> {
        let bad = |reason: String| SigningError::MalformedSignature { reason };
        if payload.len() != PAYLOAD_LEN {
            return Err(bad(format!(
                "payload is {} bytes, expected {PAYLOAD_LEN}",
                payload.len()
            )));
        }
        if payload[0] != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} is not supported (this warden reads version {FORMAT_VERSION})",
                payload[0]
            )));
        }
        if payload[1] != ALG_ED25519 || payload[2] != HASH_SHA256 {
            return Err(bad(format!(
                "algorithm {} / hash {} is not Ed25519 / SHA-256",
                payload[1], payload[2]
            )));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&payload[3..35]);
        let public_key = VerifyingKey::from_bytes(&key)
            .map_err(|_| bad("embedded public key is not a valid Ed25519 point".to_owned()))?;
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&payload[35..67]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&payload[67..]);
        Ok(Self {
            public_key,
            signed_digest: Hash256(digest),
            signature: Signature::from_bytes(&signature),
        })
    }
}

fn message(digest: &Hash256) -> Vec<u8> {
    let mut message = Vec::with_capacity(MESSAGE_PREFIX.len() + 32);
    message.extend_from_slice(MESSAGE_PREFIX);
    message.extend_from_slice(&digest.0);
    message
}

/// The digest of a component: SHA-256 over its bytes with every top-level
/// `warden-signature` section removed.
pub fn digest(component_bytes: &[u8]) -> Result<Hash256, SigningError> {
    let stripped = section::strip(component_bytes)?;
    Ok(Hash256::of(&stripped))
}

/// The component with every top-level `warden-signature` section removed.
pub fn strip(component_bytes: &[u8]) -> Result<Vec<u8>, SigningError> {
    section::strip(component_bytes)
}

/// Every embedded signature, in file order.
pub fn signatures(component_bytes: &[u8]) -> Result<Vec<EmbeddedSignature>, SigningError> {
    section::sections(component_bytes)?
        .into_iter()
        .filter_map(|section| section.signature_payload)
        .map(|payload| EmbeddedSignature::from_payload(&component_bytes[payload]))
        .collect()
}

/// A signature by `key` over the component's digest.
pub fn signature_for(
    component_bytes: &[u8],
    key: &SigningKey,
) -> Result<EmbeddedSignature, SigningError> {
    let digest = digest(component_bytes)?;
    Ok(EmbeddedSignature {
        public_key: key.verifying_key(),
        signed_digest: digest,
        signature: key.sign(&message(&digest)),
    })
}

/// The component with a signature by `key` appended as a new section.
///
/// Existing signatures are kept and stay valid. Signing again with a key that
/// already signed returns the bytes unchanged (Ed25519 is deterministic, so
/// the new section would be an exact duplicate).
pub fn sign(component_bytes: &[u8], key: &SigningKey) -> Result<Vec<u8>, SigningError> {
    let new = signature_for(component_bytes, key)?;
    if signatures(component_bytes)?.contains(&new) {
        return Ok(component_bytes.to_vec());
    }
    let mut out = component_bytes.to_vec();
    out.extend_from_slice(&section::encode_signature_section(&new.to_payload()));
    Ok(out)
}

/// A detached signature record: the same [`PAYLOAD_LEN`] bytes an embedded
/// section would hold. A detached file is one or more records concatenated.
pub fn sign_detached(component_bytes: &[u8], key: &SigningKey) -> Result<Vec<u8>, SigningError> {
    Ok(signature_for(component_bytes, key)?.to_payload().to_vec())
}

/// Reads a detached signature file (one or more concatenated records).
pub fn detached_signatures(file_bytes: &[u8]) -> Result<Vec<EmbeddedSignature>, SigningError> {
    if file_bytes.is_empty() || !file_bytes.len().is_multiple_of(PAYLOAD_LEN) {
        return Err(SigningError::DetachedLength {
            len: file_bytes.len(),
        });
    }
    file_bytes
        .chunks_exact(PAYLOAD_LEN)
        .map(EmbeddedSignature::from_payload)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
