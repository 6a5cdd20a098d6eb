//! The filesystem grant: which host directories are preopened, where the
//! guest sees them, whether it may write, and how much.
//!
//! Validation is pure (guest paths absolute, distinct, free of `.` and
//! `..`); resolving host paths and opening the directories happens at load
//! ([`check_preopens_exist`]) and per invocation ([`open_preopens`]). It
//! must never preopen anything the policy does not name.

use super::super::catalogue::Grant;
use super::WriteBudget;
use crate::interfaces::catalogue::{
    Entry, GrantKind, Unit, empty_table, no_settings, read_settings,
};
use crate::units::ByteSize;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::path::PathBuf;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Whether a preopened directory may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirMode {
    /// Read files and list directories only.
    ReadOnly,
    /// Also create, write, rename and remove files and directories.
    ReadWrite,
}

/// One preopened directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreopenDir {
    /// Directory on the host: absolute, or relative to the policy file's
    /// directory. Must exist when the capability is loaded.
    pub host: String,
    /// Path the guest sees it at (for example `/in`).
    pub guest: String,
    /// `read-only` or `read-write`. Required: no default for write access.
    pub mode: DirMode,
    /// Most bytes one invocation may write under this directory (writes,
    /// stream writes, zero fills, and file sizes set); past it writes are
    /// refused and the invocation ends `budget_exhausted:fs`. By default
    /// 16MiB. Ignored for `read-only`.
    #[serde(default = "PreopenDir::default_write_bytes")]
    pub max_write_bytes: ByteSize,
}

impl PreopenDir {
    fn default_write_bytes() -> ByteSize {
        ByteSize(16 << 20)
    }
}

/// `wasi:filesystem/preopens` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreopenDirs {
    /// The directories. By default none (the guest sees no filesystem).
    #[serde(default)]
    pub dirs: Vec<PreopenDir>,
}

const PREOPENS: &str = "wasi:filesystem/preopens";

/// `wasi:filesystem`'s place in the catalogue: `types` is authority-free
/// (without a preopen there is nothing to open), `preopens` carries the
/// directories.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Fs,
    names: &["wasi:filesystem/types", PREOPENS],
    grant,
    default_settings: empty_table,
};

fn grant(id: &str, settings: toml::Value) -> Result<GrantKind, String> {
    if id != PREOPENS {
        return no_settings(id, settings);
    }
    let dirs: PreopenDirs = read_settings(id, settings)?;
    check_preopens(&dirs).map_err(|e| format!("bad settings for `{id}`: {e}"))?;
    Ok(GrantKind::Preopens(dirs))
}

/// Guest paths must be absolute, distinct and free of `..`; host paths non-empty.
fn check_preopens(dirs: &PreopenDirs) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for d in &dirs.dirs {
        if d.host.trim().is_empty() {
            return Err("a preopen's `host` path is empty".into());
        }
        if !d.guest.starts_with('/') || d.guest.split('/').any(|c| c == ".." || c == ".") {
            return Err(format!(
                "guest path `{}` must be absolute and contain no `.` or `..`",
                d.guest
            ));
        }
        if !seen.insert(d.guest.trim_end_matches('/')) {
            return Err(format!("guest path `{}` is preopened twice", d.guest));
        }
    }
    Ok(())
}

/// Where a preopen's host directory is: absolute as written, or relative to
/// the directory of the policy file (`policy_file`).
pub fn preopen_host_path(policy_file: &Path, dir: &PreopenDir) -> PathBuf {
    let path = PathBuf::from(&dir.host);
    if path.is_absolute() {
        return path;
    }
    policy_file
        .parent()
        .map_or(path.clone(), |base| base.join(&path))
}

/// A preopened directory that is missing (or not a directory) at load.
#[derive(Debug)]
pub(crate) struct MissingPreopen {
    /// The guest path.
    pub guest: String,
    /// The resolved host path.
    pub host: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// Every preopened directory the `grants` of the policy in `policy_file`
/// name must exist (and be a directory) at load; the first that does not
/// is returned.
pub(crate) fn check_preopens_exist(
    grants: &[Grant],
    policy_file: &Path,
) -> Result<(), MissingPreopen> {
    for g in grants {
        let GrantKind::Preopens(p) = &g.kind else {
            continue;
        };
        for dir in &p.dirs {
            let host = preopen_host_path(policy_file, dir);
            let problem = match std::fs::metadata(&host) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => "not a directory".to_string(),
                Err(e) => e.to_string(),
            };
            return Err(MissingPreopen {
                guest: dir.guest.clone(),
                host,
                message: problem,
            });
        }
    }
    Ok(())
}

/// Opens `dirs` (granted by the policy in `policy_file`) into `builder` for one invocation
/// and returns their write budgets. Fails only if a directory cannot be
/// opened (it was checked at load, so it vanished since).
pub fn open_preopens(
    builder: &mut WasiCtxBuilder,
    policy_file: &Path,
    dirs: &PreopenDirs,
    budgets: &mut Vec<WriteBudget>,
) -> std::io::Result<()> {
    for dir in &dirs.dirs {
        let perms = match dir.mode {
            DirMode::ReadOnly => FsPerms::ReadOnly,
            DirMode::ReadWrite => FsPerms::ReadWrite,
        };
        builder
            .preopened_dir(preopen_host_path(policy_file, dir), &dir.guest, perms)
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    }
    budgets.extend(write_budgets(dirs));
    Ok(())
}

/// The write budgets of `dirs`, one per preopen (a replay needs them
/// without opening anything).
pub fn write_budgets(dirs: &PreopenDirs) -> Vec<WriteBudget> {
    dirs.dirs
        .iter()
        .map(|dir| WriteBudget {
            preopen: dir.guest.as_str().into(),
            limit: (dir.mode == DirMode::ReadWrite).then(|| dir.max_write_bytes.bytes()),
            used: 0,
        })
        .collect()
}
