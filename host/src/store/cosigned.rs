//! What the daemon keeps of its witnesses beside `warden.db`
//! (docs/audit.md "Witnesses"):
//!
//! - `<db>.cosigned`: the newest checkpoint note with every witness
//!   cosignature obtained for it (a C2SP signed note, log signature first);
//! - `<db>.witnesses`: for each configured witness (name and key), the tree
//!   size it last cosigned, so the pusher proves from there after a restart
//!   instead of relearning it from the witness's `409`.
//!
//! Both are replaced whole and durably ([`super::anchor::replace_durably`]:
//! temp file, fsync, rename, fsync of the directory). Only the pusher writes
//! them; readers (`GET /v1/audit/checkpoint`, `warden audit checkpoint`,
//! `audit verify --witnesses`) take the cosignatures only for the note whose
//! body they are serving.
//!
//! This module must never write a cosigned note whose log signature does
//! not verify, and never attach cosignatures to a note with another body.

use super::StoreError;
use crate::audit::note::{SignedNote, verify_checkpoint};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `format` of `<db>.witnesses`.
pub const PUSH_STATE_FORMAT: &str = "warden-witness-push-v1";

/// Largest `<db>.cosigned` / `<db>.witnesses` read (a note with at most
/// 64 signatures, or one small record per witness).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `<db>.cosigned`: the newest note with its witnesses' cosignatures.
pub fn cosigned_path(db: &Path) -> PathBuf {
    beside(db, ".cosigned")
}

/// `<db>.witnesses`: the size each witness holds.
pub fn push_state_path(db: &Path) -> PathBuf {
    beside(db, ".witnesses")
}

fn read_bounded(path: &Path) -> Result<Option<String>, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
        &mut text,
    )
    .map_err(io)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(Some(text))
}

/// The cosigned note kept beside `db`, if there is one and its log
/// signature verifies with `key`. A file that does not verify is reported
/// as [`StoreError::Corrupt`] (it is never silently used).
pub fn read_cosigned(db: &Path, key: &VerifyingKey) -> Result<Option<SignedNote>, StoreError> {
    let path = cosigned_path(db);
    let Some(text) = read_bounded(&path)? else {
        return Ok(None);
    };
    verify_checkpoint(text.as_bytes(), key, None)
        .map(|(note, _)| Some(note))
        .map_err(|e| StoreError::Corrupt {
            path,
            detail: format!("the cosigned checkpoint does not verify with the host key: {e}"),
        })
}

/// Replaces the cosigned note kept beside `db`.
pub fn write_cosigned(db: &Path, note: &SignedNote) -> Result<(), StoreError> {
    super::anchor::replace_durably(&cosigned_path(db), note.to_text().as_bytes())
}

/// `note` (a checkpoint note as stored) with the cosignature lines kept
/// beside `db` for the same body appended, each once. Without a cosigned
/// file, or when it is for another checkpoint, `note` is returned as it is.
pub fn with_cosignatures(db: &Path, key: &VerifyingKey, note: &str) -> Result<String, StoreError> {
    let Some(cosigned) = read_cosigned(db, key)? else {
        return Ok(note.to_owned());
    };
    let Ok(mut out) = SignedNote::parse(note.as_bytes()) else {
        return Ok(note.to_owned());
    };
    if out.text != cosigned.text {
        return Ok(note.to_owned());
    }
    for s in cosigned.signatures {
        if !out.signatures.contains(&s) {
            out.signatures.push(s);
        }
    }
    Ok(out.to_text())
}

/// What `<db>.witnesses` records for one witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldSize {
    /// The witness's cosignature key name.
    pub name: String,
    /// Its public key (`ed25519:<hex>`): a witness with a new key starts over.
    pub key: String,
    /// The tree size it last cosigned (or told us it holds).
    pub size: u64,
}

/// The whole `<db>.witnesses` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushState {
    /// Always [`PUSH_STATE_FORMAT`].
    pub format: String,
    /// One record per witness.
    pub witnesses: Vec<HeldSize>,
}

impl Default for PushState {
    fn default() -> Self {
        PushState {
            format: PUSH_STATE_FORMAT.to_owned(),
            witnesses: Vec::new(),
        }
    }
}

impl PushState {
    /// The size recorded for the witness `name` with key `key`.
    pub fn held(&self, name: &str, key: &str) -> Option<u64> {
        self.witnesses
            .iter()
            .find(|w| w.name == name && w.key == key)
            .map(|w| w.size)
    }
}

/// Reads `<db>.witnesses` (empty when it does not exist yet).
pub fn read_push_state(db: &Path) -> Result<PushState, StoreError> {
    let path = push_state_path(db);
    let Some(text) = read_bounded(&path)? else {
        return Ok(PushState::default());
    };
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.clone(),
        detail,
    };
    let state: PushState = serde_json::from_str(&text)
        .map_err(|e| corrupt(format!("not a witness push state file: {e}")))?;
    if state.format != PUSH_STATE_FORMAT {
        return Err(corrupt(format!(
            "format {:?}, expected {PUSH_STATE_FORMAT:?}",
            state.format
        )));
    }
    Ok(state)
}

/// Replaces `<db>.witnesses` whole.
pub fn write_push_state(db: &Path, state: &PushState) -> Result<(), StoreError> {
    let path = push_state_path(db);
    let mut text = serde_json::to_string_pretty(state).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    super::anchor::replace_durably(&path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::note::{TreeHead, cosign, sign_checkpoint};
    use crate::digest::Hash256;
    use ed25519_dalek::SigningKey;

    fn note(size: u64) -> String {
        sign_checkpoint(
            &TreeHead {
                origin: "warden/audit/test".into(),
                size,
                root: Hash256([size as u8; 32]),
            },
            &SigningKey::from_bytes(&[1; 32]),
        )
        .expect("signs")
    }

    #[test]
    fn cosignatures_are_attached_only_to_the_note_they_cosign() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("warden.db");
        let log = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let n5 = note(5);
        assert_eq!(with_cosignatures(&db, &log, &n5).expect("read"), n5);
        let mut cosigned = SignedNote::parse(n5.as_bytes()).expect("parses");
        let line =
            cosign(&cosigned.text, "w1", &SigningKey::from_bytes(&[9; 32]), 7).expect("cosigns");
        cosigned.signatures.push(line.clone());
        write_cosigned(&db, &cosigned).expect("write");
        let served = with_cosignatures(&db, &log, &n5).expect("read");
        assert_eq!(served, format!("{n5}{}", line.line()));
        // Another checkpoint gets none of them.
        let n6 = note(6);
        assert_eq!(with_cosignatures(&db, &log, &n6).expect("read"), n6);
        // A cosigned file the host key did not sign is refused, not used.
        let other = SigningKey::from_bytes(&[2; 32]).verifying_key();
        assert!(matches!(
            with_cosignatures(&db, &other, &n5),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn the_held_sizes_survive_a_rewrite_and_a_new_key_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("warden.db");
        assert_eq!(read_push_state(&db).expect("empty"), PushState::default());
        let mut s = PushState::default();
        s.witnesses.push(HeldSize {
            name: "w1".into(),
            key: "ed25519:aa".into(),
            size: 42,
        });
        write_push_state(&db, &s).expect("write");
        let back = read_push_state(&db).expect("read");
        assert_eq!(back.held("w1", "ed25519:aa"), Some(42));
        assert_eq!(back.held("w1", "ed25519:bb"), None);
        std::fs::write(
            push_state_path(&db),
            "{\"format\":\"other\",\"witnesses\":[]}",
        )
        .expect("write");
        assert!(matches!(
            read_push_state(&db),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
