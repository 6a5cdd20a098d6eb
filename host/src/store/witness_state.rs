//! A witness's own state file (docs/audit.md "Witnesses"): for each log
//! origin, the last checkpoint it accepted and cosigned. One JSON object,
//! replaced whole (temp file, fsync, rename, fsync of the directory), under
//! an exclusive lock file so two witness processes never interleave a
//! check with an update.
//!
//! This module must never decide what to cosign ([`crate::audit::witness`]
//! does) and never leave a partly written state file.

use super::StoreError;
use crate::audit::witness::WitnessedLog;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `format` of the state file.
pub const WITNESS_STATE_FORMAT: &str = "warden-witness-state-v1";

/// Largest state file read (one small record per log).
const MAX_STATE_BYTES: u64 = 4 * 1024 * 1024;

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessState {
    /// Always [`WITNESS_STATE_FORMAT`].
    pub format: String,
    /// One record per log origin.
    pub logs: Vec<WitnessedLog>,
}

impl Default for WitnessState {
    fn default() -> Self {
        WitnessState {
            format: WITNESS_STATE_FORMAT.to_owned(),
            logs: Vec::new(),
        }
    }
}

impl WitnessState {
    /// The record for `origin`.
    pub fn log(&self, origin: &str) -> Option<&WitnessedLog> {
        self.logs.iter().find(|l| l.origin == origin)
    }

    /// Replaces (or adds) the record for its origin.
    pub fn set(&mut self, log: WitnessedLog) {
        match self.logs.iter_mut().find(|l| l.origin == log.origin) {
            Some(slot) => *slot = log,
            None => self.logs.push(log),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Holds `<state>.lock` until dropped.
#[derive(Debug)]
pub struct WitnessLock {
    _file: std::fs::File,
}

/// Takes the state file's lock, waiting for another holder.
pub fn lock_state(path: &Path) -> Result<WitnessLock, StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    file.lock().map_err(io(&lock_path))?;
    Ok(WitnessLock { _file: file })
}

/// Reads the state (empty when the file does not exist yet).
pub fn read_state(path: &Path) -> Result<WitnessState, StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WitnessState::default()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_STATE_BYTES + 1),
        &mut text,
    )
    .map_err(io(path))?;
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    if text.len() as u64 > MAX_STATE_BYTES {
        return Err(corrupt(format!(
            "witness state is larger than {MAX_STATE_BYTES} bytes"
        )));
    }
    let state: WitnessState = serde_json::from_str(&text)
        .map_err(|e| corrupt(format!("not a witness state file: {e}")))?;
    if state.format != WITNESS_STATE_FORMAT {
        return Err(corrupt(format!(
            "format {:?}, expected {WITNESS_STATE_FORMAT:?}",
            state.format
        )));
    }
    Ok(state)
}

/// Replaces the state file whole.
pub fn write_state(path: &Path, state: &WitnessState) -> Result<(), StoreError> {
    let mut text = serde_json::to_string_pretty(state).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    super::anchor::replace_durably(path, text.as_bytes())
}
