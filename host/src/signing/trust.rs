//! The operator's trust file and the load-time decision: may these component
//! bytes run as capability `name` under these pins?
//!
//! Trust is per capability and never inherited: a key listed for `pii-*` can
//! sign `pii-redact` but not `refund`, however valid its signature.
//!
//! ```toml
//! [[key]]
//! name = "dev"
//! public_key = "ed25519:…"
//! capabilities = ["echo", "pii-*"]
//! ```

use super::{EmbeddedSignature, SignatureProblem, SigningError};
use crate::digest::Hash256;
use crate::keys::{self, VerifyingKey};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a trust file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file could not be read.
    #[error("{path}: cannot read trust file: {source}")]
    Io {
        /// The trust file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the trust file schema.
    #[error("{path}: {message}")]
    Syntax {
        /// The trust file.
        path: PathBuf,
        /// The parser's message, including line and column.
        message: String,
    },
    /// One entry is invalid.
    #[error("{path}: key {name:?}: {reason}")]
    Entry {
        /// The trust file.
        path: PathBuf,
        /// The `name` of the offending `[[key]]` entry.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// Operator-pinned expectations from the capability's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerPins {
    /// `sha256:<hex>`; if set, the component's digest must equal it.
    pub digest: Option<String>,
    /// Trust store key names; if non-empty, the verifying key must be one of them.
    pub signers: Vec<String>,
}

/// A component that may run as the requested capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `sha256:<hex>` of the component without signature sections.
    pub digest: String,
    /// Trust store name of the key whose signature was accepted.
    pub signer: String,
    /// Key id of that key.
    pub key_id: String,
}

/// Why a component may not run as the requested capability: one variant per
/// check, in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The component (or its signature) could not be parsed.
    #[error("signature check failed: {0}")]
    Malformed(#[from] SigningError),
    /// No signature at all.
    #[error(
        "signature check failed: the component is unsigned; sign it with `warden sign --key <key> <component>` \
         (for local authoring only, start the host with --allow-unsigned)"
    )]
    Unsigned,
    /// Signatures are present but none verifies.
    #[error(
        "signature check failed: the signature by key {key_id} does not verify ({problem}); the component was \
         modified after signing or the signature is corrupt: rebuild and re-sign it, and find out who changed it"
    )]
    BadSignature {
        /// Key id of the (first) signature that does not verify.
        key_id: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Valid signatures, but by keys the trust file does not list.
    #[error(
        "trust check failed: signed only by unknown key(s) {}; add the signer's public key to the trust file \
         if you trust it for this capability, or have a trusted key sign the component",
        key_ids.join(", ")
    )]
    UnknownKey {
        /// Key ids of the valid signatures.
        key_ids: Vec<String>,
    },
    /// Valid signatures by known keys, none trusted for this capability.
    #[error(
        "trust check failed: key {key} is not trusted to sign capability {capability:?}; trust is per \
         capability: add {capability:?} (or a matching `prefix-*` pattern) to that key's `capabilities` \
         in the trust file, or have a key trusted for it sign the component"
    )]
    NotTrustedFor {
        /// Trust store name(s) of the keys that did sign.
        key: String,
        /// The capability that was requested.
        capability: String,
    },
    /// The policy's `digest` pin does not match.
    #[error(
        "digest pin check failed: the policy pins {pinned} but the component is {actual}; if this \
         component is the intended new version, update `digest` in the policy"
    )]
    DigestMismatch {
        /// The policy's pin.
        pinned: String,
        /// The component's digest.
        actual: String,
    },
    /// The policy's `signers` pin excludes every trusted signer.
    #[error(
        "signer pin check failed: signed by {key}, but the policy allows only [{}]; have one of those \
         keys sign the component, or add {key:?} to `signers` in the policy",
        allowed.join(", ")
    )]
    SignerNotPinned {
        /// Trust store name(s) of the trusted keys that did sign.
        key: String,
        /// The policy's `signers`.
        allowed: Vec<String>,
    },
}

/// One `[[key]]` entry of a loaded trust file.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The operator's name for the key (what policies' `signers` refer to).
    pub name: String,
    /// The public key.
    pub public_key: VerifyingKey,
    /// Capability names or `prefix-*` patterns this key may sign.
    pub capabilities: Vec<String>,
}

impl TrustedKey {
    /// Whether this key may sign capability `name`.
    pub fn trusted_for(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|pattern| pattern_matches(pattern, name))
    }
}

/// Exact name, or a trailing `*` matching any (non-empty) rest.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.len() > prefix.len() && name.starts_with(prefix),
        None => pattern == name,
    }
}

fn validate_pattern(pattern: &str) -> Result<(), String> {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    if body.is_empty() {
        return Err(format!(
            "capability pattern {pattern:?} would trust the key for every capability; \
             list capability names or `prefix-*` patterns"
        ));
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "capability pattern {pattern:?} is not a name or `prefix-*` (only a trailing `*` is allowed)"
        ));
    }
    Ok(())
}

/// The per-signature report for `warden verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureReport {
    /// Key id of the signer.
    pub key_id: String,
    /// Public key text of the signer.
    pub public_key: String,
    /// `None` if the signature verifies, else why not.
    pub problem: Option<String>,
    /// Trust store name of the key, if listed.
    pub trusted_as: Option<String>,
    /// Capability patterns the key may sign (empty if not listed).
    pub capabilities: Vec<String>,
}

impl SignatureReport {
    /// Whether the signature is cryptographically valid for this component.
    pub fn verifies(&self) -> bool {
        self.problem.is_none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default)]
    key: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    public_key: String,
    capabilities: Vec<String>,
}

/// The loaded trust file: which keys may sign which capabilities.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
}

impl TrustStore {
    /// Loads and validates a trust file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses trust file text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TrustError> {
        let file: TrustFile = toml::from_str(text).map_err(|err| TrustError::Syntax {
            path: path.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let mut keys: Vec<TrustedKey> = Vec::with_capacity(file.key.len());
        for entry in file.key {
            let fail = |reason: String| TrustError::Entry {
                path: path.to_owned(),
                name: entry.name.clone(),
                reason,
            };
            keys::validate_key_name(&entry.name).map_err(|err| fail(err.to_string()))?;
            let public_key =
                keys::parse_public_key(&entry.public_key).map_err(|err| fail(err.to_string()))?;
            if entry.capabilities.is_empty() {
                return Err(fail(
                    "`capabilities` is empty; list the capability names this key may sign".into(),
                ));
            }
            for pattern in &entry.capabilities {
                validate_pattern(pattern).map_err(fail)?;
            }
            if let Some(other) = keys.iter().find(|k| k.name == entry.name) {
                return Err(fail(format!("duplicate key name {:?}", other.name)));
            }
            if let Some(other) = keys.iter().find(|k| k.public_key == public_key) {
                return Err(fail(format!(
                    "same public key as {:?}; list each key once with all its capabilities",
                    other.name
                )));
            }
            keys.push(TrustedKey {
                name: entry.name,
                public_key,
                capabilities: entry.capabilities,
            });
        }
        Ok(Self { keys })
    }

    /// A store holding exactly `keys` (for embedders and tests).
    pub fn from_keys(keys: Vec<TrustedKey>) -> Self {
        Self { keys }
    }

    /// The listed keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// The entry for `public_key`, compared in full (never by key id).
    pub fn lookup(&self, public_key: &VerifyingKey) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.public_key == *public_key)
    }

    /// Decides whether `component_bytes` may run as `capability` under `pins`,
    /// using the embedded signatures.
    pub fn verify(
        &self,
        component_bytes: &[u8],
        capability: &str,
        pins: &SignerPins,
    ) -> Result<Verified, Refusal> {
        let digest = super::digest(component_bytes)?;
        let signatures = super::signatures(component_bytes)?;
        self.decide(&digest, &signatures, capability, pins)
    }

    /// Like [`TrustStore::verify`], with the signatures of a detached file
    /// added to the embedded ones.
    pub fn verify_with_detached(
        &self,
        component_bytes: &[u8],
        detached_file: &[u8],
        capability: &str,
        pins: &SignerPins,
    ) -> Result<Verified, Refusal> {
        let digest = super::digest(component_bytes)?;
        let mut signatures = super::signatures(component_bytes)?;
        signatures.extend(super::detached_signatures(detached_file)?);
        self.decide(&digest, &signatures, capability, pins)
    }

    /// The checks, in order: signed at all; at least one signature verifies;
    /// a verifying key is listed; a listed one is trusted for `capability`;
    /// the digest pin matches; a trusted signer is among the pinned signers.
    pub fn decide(
        &self,
        digest: &Hash256,
        signatures: &[EmbeddedSignature],
        capability: &str,
        pins: &SignerPins,
    ) -> Result<Verified, Refusal> {
        let Some(first) = signatures.first() else {
            return Err(Refusal::Unsigned);
        };
        let valid: Vec<&EmbeddedSignature> = signatures
            .iter()
            .filter(|sig| sig.verify(digest).is_ok())
            .collect();
        if valid.is_empty() {
            let problem = first
                .verify(digest)
                .err()
                .unwrap_or(SignatureProblem::Invalid);
            return Err(Refusal::BadSignature {
                key_id: first.key_id(),
                problem: problem.to_string(),
            });
        }
        let known: Vec<(&EmbeddedSignature, &TrustedKey)> = valid
            .iter()
            .filter_map(|sig| self.lookup(&sig.public_key).map(|key| (*sig, key)))
            .collect();
        if known.is_empty() {
            return Err(Refusal::UnknownKey {
                key_ids: valid.iter().map(|sig| sig.key_id()).collect(),
            });
        }
        let trusted: Vec<(&EmbeddedSignature, &TrustedKey)> = known
            .iter()
            .copied()
            .filter(|(_, key)| key.trusted_for(capability))
            .collect();
        if trusted.is_empty() {
            return Err(Refusal::NotTrustedFor {
                key: names(&known),
                capability: capability.to_owned(),
            });
        }
        if let Some(pinned) = &pins.digest {
            let actual = digest.to_string();
            if pinned.trim().to_ascii_lowercase() != actual {
                return Err(Refusal::DigestMismatch {
                    pinned: pinned.clone(),
                    actual,
                });
            }
        }
        let accepted = if pins.signers.is_empty() {
            trusted.first().copied()
        } else {
            trusted
                .iter()
                .copied()
                .find(|(_, key)| pins.signers.contains(&key.name))
        };
        let Some((sig, key)) = accepted else {
            return Err(Refusal::SignerNotPinned {
                key: names(&trusted),
                allowed: pins.signers.clone(),
            });
        };
        Ok(Verified {
            digest: digest.to_string(),
            signer: key.name.clone(),
            key_id: sig.key_id(),
        })
    }

    /// One report per signature (embedded first, then `detached`), for
    /// `warden verify`. Never decides anything.
    pub fn describe(
        &self,
        digest: &Hash256,
        signatures: &[EmbeddedSignature],
    ) -> Vec<SignatureReport> {
        signatures
            .iter()
            .map(|sig| {
                let listed = self.lookup(&sig.public_key);
                SignatureReport {
                    key_id: sig.key_id(),
                    public_key: keys::public_key_text(&sig.public_key),
                    problem: sig.verify(digest).err().map(|p| p.to_string()),
                    trusted_as: listed.map(|k| k.name.clone()),
                    capabilities: listed.map(|k| k.capabilities.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

fn names(keys: &[(&EmbeddedSignature, &TrustedKey)]) -> String {
    let mut names: Vec<&str> = keys.iter().map(|(_, key)| key.name.as_str()).collect();
    names.dedup();
    names.join(", ")
}
