//! Trusted checkpoints held outside the chain: the *anchor* file a writer
//! keeps beside its database, and checkpoints a verifier brings from
//! elsewhere (`warden audit verify --expect-checkpoint`).
//!
//! Why: a checkpoint stored in the database can be deleted by whoever can
//! write the database. A copy kept somewhere else (the anchor file, an old
//! export, a `GET /v1/audit/checkpoints` answer someone saved) lets a writer
//! refuse to sign over a rewritten history, and lets anyone detect
//! truncation or rewriting below a checkpoint they hold.
//!
//! Pure: text in, values out. Reading and writing the file is in
//! [`crate::store`].

use super::checkpoint::Checkpoint;
use crate::digest::Hash256;
use serde::{Deserialize, Serialize};

/// The `format` value of an anchor file.
pub const ANCHOR_FORMAT: &str = "warden-trusted-checkpoint-v1";

/// Longest line (or whole small file) parsed when looking for checkpoints.
/// An export can hold millions of entry lines; only its checkpoint lines
/// matter. Bounds memory for `--expect-checkpoint` given any file: longer
/// lines are skipped, never buffered whole.
pub const MAX_CHECKPOINT_LINE: usize = 1 << 20;

/// What must be in a chain: entry `size` exists and has hash `head_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedCheckpoint {
    /// Entries `1..=size` must exist.
    pub size: u64,
    /// Hash of entry `size` ([`Hash256::ZERO`] for size 0).
    pub head_hash: Hash256,
    /// Where the expectation came from, for messages (`--expect-size/--expect-head`,
    /// a file name).
    pub source: String,
}

impl ExpectedCheckpoint {
    /// The expectation a signed checkpoint makes.
    pub fn from_checkpoint(cp: &Checkpoint, source: impl Into<String>) -> ExpectedCheckpoint {
        ExpectedCheckpoint {
            size: cp.size,
            head_hash: cp.head_hash,
            source: source.into(),
        }
    }
}

/// The anchor file: one JSON object, one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AnchorFile {
    format: String,
    #[serde(flatten)]
    checkpoint: Checkpoint,
}

/// Why an anchor file or a file of checkpoints is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// Not the JSON this module writes.
    #[error("not a trusted-checkpoint file: {0}")]
    Malformed(String),
    /// A well-formed file of another format version.
    #[error("unknown trusted-checkpoint format {0:?} (this build reads {ANCHOR_FORMAT:?})")]
    UnknownFormat(String),
    /// No checkpoint anywhere in the file.
    #[error(
        "no checkpoint found (expected an anchor file, a checkpoint JSON object, \
         a `GET /v1/audit/checkpoints` answer or an export)"
    )]
    NoCheckpoint,
}

/// The anchor file's text for `cp` (one line, trailing newline).
pub fn anchor_text(cp: &Checkpoint) -> String {
    let file = AnchorFile {
        format: ANCHOR_FORMAT.to_owned(),
        checkpoint: cp.clone(),
    };
    // Serializing plain strings and numbers cannot fail.
    let mut text = serde_json::to_string(&file).unwrap_or_default();
    text.push('\n');
    text
}

/// Parses an anchor file written by [`anchor_text`]. Does not check the
/// signature (the caller has the key).
pub fn parse_anchor(text: &str) -> Result<Checkpoint, AnchorError> {
    let file: AnchorFile =
        serde_json::from_str(text.trim_end()).map_err(|e| AnchorError::Malformed(e.to_string()))?;
    if file.format != ANCHOR_FORMAT {
        return Err(AnchorError::UnknownFormat(
            file.format.chars().take(80).collect(),
        ));
    }
    Ok(file.checkpoint)
}

/// Served list form: `{"checkpoints": [...]}`.
#[derive(Deserialize)]
struct Served {
    checkpoints: Vec<Checkpoint>,
}

/// Every checkpoint in one line of text, in any of the forms warden writes:
/// an anchor file, one checkpoint object (as served, or an export's
/// `{"type":"checkpoint",…}` line), or a `GET /v1/audit/checkpoints` answer.
/// Lines that are none of these yield nothing.
pub fn checkpoints_in_line(line: &str) -> Vec<Checkpoint> {
    let line = line.trim();
    if !line.starts_with('{') {
        return Vec::new();
    }
    if let Ok(s) = serde_json::from_str::<Served>(line) {
        return s.checkpoints;
    }
    // Export entry lines also parse as objects; only lines whose type (if
    // any) is `checkpoint` count.
    if line.starts_with("{\"type\":") && !line.starts_with("{\"type\":\"checkpoint\",") {
        return Vec::new();
    }
    serde_json::from_str::<Checkpoint>(line)
        .map(|c| vec![c])
        .unwrap_or_default()
}

/// The newest (largest) checkpoint among `found`, or [`AnchorError::NoCheckpoint`].
pub fn newest(found: Vec<Checkpoint>) -> Result<Checkpoint, AnchorError> {
    found
        .into_iter()
        .max_by_key(|c| (c.size, c.at_ms))
        .ok_or(AnchorError::NoCheckpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn cp(size: u64) -> Checkpoint {
        Checkpoint::sign(
            size,
            Hash256([size as u8; 32]),
            7,
            &SigningKey::from_bytes(&[1; 32]),
        )
    }

    #[test]
    fn an_anchor_file_round_trips_and_names_its_format() {
        let text = anchor_text(&cp(5));
        assert!(text.starts_with("{\"format\":\"warden-trusted-checkpoint-v1\","));
        assert_eq!(parse_anchor(&text), Ok(cp(5)));
        let other = text.replace("-v1", "-v9");
        assert!(matches!(
            parse_anchor(&other),
            Err(AnchorError::UnknownFormat(_))
        ));
        assert!(matches!(
            parse_anchor("garbage"),
            Err(AnchorError::Malformed(_))
        ));
    }

    #[test]
    fn checkpoints_are_found_in_every_form_warden_writes() {
        let one = serde_json::to_string(&cp(3)).expect("json");
        assert_eq!(checkpoints_in_line(&one), vec![cp(3)]);
        let served = format!(
            "{{\"checkpoints\":[{one},{}]}}",
            serde_json::to_string(&cp(9)).expect("json")
        );
        assert_eq!(checkpoints_in_line(&served), vec![cp(3), cp(9)]);
        let export_line = format!("{{\"type\":\"checkpoint\",{}", &one[1..]);
        assert_eq!(checkpoints_in_line(&export_line), vec![cp(3)]);
        assert_eq!(checkpoints_in_line(anchor_text(&cp(4)).trim()), vec![cp(4)]);
        assert!(checkpoints_in_line("{\"type\":\"entry\",\"seq\":1}").is_empty());
        assert!(checkpoints_in_line("not json").is_empty());
        assert_eq!(newest(vec![cp(3), cp(9), cp(4)]), Ok(cp(9)));
        assert_eq!(newest(vec![]), Err(AnchorError::NoCheckpoint));
    }
}
