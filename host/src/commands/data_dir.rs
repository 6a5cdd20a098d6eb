//! The data directory of the commands that open one without a daemon
//! (`warden run`, `warden audit …`): the same default as the daemon's
//! (`data`), so `warden audit verify` run where `warden.toml` lives finds
//! what `warden serve` wrote.
//!
//! Resolution, first that applies: `--data-dir` (or `WARDEN_DATA_DIR`);
//! the directory holding `--db`; `data` — or `.warden`, the default of
//! earlier versions, when only that exists (said on stderr).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The default data directory, as the daemon's `data_dir` default.
pub const DEFAULT: &str = "data";

/// The default of earlier versions of `warden run` and `warden audit`.
const LEGACY: &str = ".warden";

/// The data directory to use, given what the command line said.
pub fn resolve(explicit: Option<&Path>, db: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_owned();
    }
    if let Some(parent) = db.and_then(Path::parent) {
        return if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_owned()
        };
    }
    let legacy = Path::new(LEGACY);
    if !Path::new(DEFAULT).exists() && legacy.join("warden.db").exists() {
        static NOTED: AtomicBool = AtomicBool::new(false);
        if !NOTED.swap(true, Ordering::Relaxed) {
            eprintln!(
                "note: using {LEGACY}/ (the old default data directory); move it to {DEFAULT}/ or pass --data-dir"
            );
        }
        return legacy.to_owned();
    }
    PathBuf::from(DEFAULT)
}
